"""The offline ``dlib`` face-analysis backend.

HOG (or MMOD CNN) detector, the 68-point shape predictor and the 128-d ResNet identity model, all
read from the model files that ship inside the ``face_recognition_models`` package. Nothing is
downloaded. The package's ``__init__`` imports ``pkg_resources``, so its folder is located with
``importlib.util.find_spec`` instead of importing it.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ..errors import ConfigError, ModelError
from ..types import Face
from .analysis import ANALYZERS

MODEL_FILES = {
    "landmarks": "shape_predictor_68_face_landmarks.dat",
    "identity": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn": "mmod_human_face_detector.dat",
}


def models_dir() -> Path:
    """Folder holding dlib's model files inside the installed ``face_recognition_models`` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the dlib backend needs the face_recognition_models package: "
                         "pip install face-recognition-models (it ships dlib's model files)")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _model_path(key: str) -> str:
    path = models_dir() / MODEL_FILES[key]
    if not path.is_file() or path.stat().st_size == 0:
        raise ModelError(f"dlib model file missing or empty: {path}; reinstall face-recognition-models")
    return str(path)


def _import_dlib():
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - dlib-bin is a base dependency
        raise ModelError(f"the dlib backend needs dlib: pip install dlib-bin ({exc})") from None
    return dlib


@ANALYZERS.register("dlib")
class DlibAnalyzer:
    """dlib HOG/CNN detector + 68-point shape predictor + ResNet identity embedding.

    Args:
        detector: ``hog`` (fast, frontal) or ``cnn`` (MMOD, slower on CPU, more poses).
        upsample: times to upsample before detecting (each doubles the smallest face found, ~4x cost).
        min_score: drop detections whose detector score is below this.
    """

    name = "dlib"
    # dlib's HOG and MMOD detectors slide an 80x80 window: smaller faces need upsampling.
    min_face = 80
    # dlib's model separates identities at Euclidean distance 0.6 between raw descriptors, whose
    # norm is ~1.5: after L2 normalisation that is a cosine distance of about 0.6**2 / (2 * 1.5**2)
    # = 0.08. Measured on insightface's t1.jpg: other people >= 0.085, the same face re-framed <= 0.02.
    identity_threshold = 0.075

    def __init__(self, *, detector: Literal["hog", "cnn"] = "hog", upsample: int = 0,
                 min_score: float = 0.0) -> None:
        if detector not in ("hog", "cnn"):
            raise ConfigError(f"dlib detector must be 'hog' or 'cnn', got {detector!r}")
        if upsample < 0:
            raise ConfigError(f"upsample must be >= 0, got {upsample}")
        dlib = _import_dlib()
        self._dlib = dlib
        self.detector_kind = detector
        self.upsample = upsample
        self.min_score = min_score
        self.min_face = 80 // (2**upsample) or 1
        try:
            if detector == "hog":
                self._detector = dlib.get_frontal_face_detector()
            else:
                self._detector = dlib.cnn_face_detection_model_v1(_model_path("cnn"))
            self._predictor = dlib.shape_predictor(_model_path("landmarks"))
        except RuntimeError as exc:
            raise ModelError(f"cannot load dlib model files from {models_dir()}: {exc}") from None
        self._encoder = None
        self._encoder_lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Face]:
        if self.detector_kind == "hog":
            # HOG on grey finds the same faces as on RGB (max-gradient channel) at ~70% of the cost.
            grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            rects, scores, _ = self._detector.run(grey, self.upsample, 0.0)
        else:
            found = self._detector(image, self.upsample)
            rects, scores = [d.rect for d in found], [d.confidence for d in found]
        faces = []
        for rect, score in zip(rects, scores):
            if score < self.min_score:
                continue
            box = (float(rect.left()), float(rect.top()), float(rect.right()), float(rect.bottom()))
            faces.append(Face(box=box, landmarks=self._fit(image, rect), score=float(score)))
        return faces

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        return self._fit(image, self._dlib.rectangle(x0, y0, x1, y1))

    def _fit(self, image: np.ndarray, rect) -> np.ndarray:
        shape = self._predictor(image, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        with self._encoder_lock:
            if self._encoder is None:
                try:
                    self._encoder = self._dlib.face_recognition_model_v1(_model_path("identity"))
                except RuntimeError as exc:
                    raise ModelError(f"cannot load dlib identity model: {exc}") from None
        points = [self._dlib.point(int(round(x)), int(round(y))) for x, y in landmarks]
        x0, y0 = landmarks.min(axis=0)
        x1, y1 = landmarks.max(axis=0)
        rect = self._dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
        shape = self._dlib.full_object_detection(rect, points)
        vec = np.array(self._encoder.compute_face_descriptor(image, shape), dtype=np.float32)
        return vec / (np.linalg.norm(vec) + 1e-12)
