"""The ``insightface`` face-analysis backend (production, GPU-capable).

SCRFD finds faces, the ``1k3d68`` landmark model fits 68 points (iBUG-300W order) inside each box,
and ArcFace computes a 512-d identity embedding from the crop aligned on five points taken from the
68. The models are insightface's own model classes run by ONNX Runtime, loaded from explicitly named
files in a local model-pack folder. Nothing is ever downloaded: insightface's ``FaceAnalysis`` and
``model_zoo.get_model`` (which may download, default to ``~/.insightface`` and route models by their
tensor shapes) are never called.

Known packs (the folder given as ``face_models`` is one unpacked pack):

==========  ======================  ============  ===============
pack        detector (SCRFD)        landmarks     recognition
==========  ======================  ============  ===============
buffalo_l   det_10g.onnx            1k3d68.onnx   w600k_r50.onnx
buffalo_m   det_2.5g.onnx           1k3d68.onnx   w600k_r50.onnx
buffalo_s   det_500m.onnx           1k3d68.onnx   w600k_mbf.onnx
antelopev2  scrfd_10g_bnkps.onnx    1k3d68.onnx   glintr100.onnx
==========  ======================  ============  ===============

``buffalo_sc`` (detector and recognition only) and the manifest-based ``raccoon_*`` packs carry no
68-point landmark model, so they cannot drive alignment and are not accepted.

insightface and onnxruntime are imported when an analyzer is built, never at module import, so
``import vfxswap`` does not load them.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from ..errors import ConfigError, EngineError, ModelError
from ..types import Face
from .analysis import ANALYZERS

log = logging.getLogger(__name__)

INSTALL_HINT = "the insightface backend needs `pip install vfxswap[insightface]`"


class ModelPack(NamedTuple):
    """File names of one insightface model pack."""

    name: str
    detector: str
    landmarks: str
    recognition: str

    @property
    def files(self) -> tuple[str, str, str]:
        return (self.detector, self.landmarks, self.recognition)


#: Known packs, in order of preference when a folder holds the files of more than one.
KNOWN_PACKS: tuple[ModelPack, ...] = (
    ModelPack("buffalo_l", "det_10g.onnx", "1k3d68.onnx", "w600k_r50.onnx"),
    ModelPack("buffalo_m", "det_2.5g.onnx", "1k3d68.onnx", "w600k_r50.onnx"),
    ModelPack("buffalo_s", "det_500m.onnx", "1k3d68.onnx", "w600k_mbf.onnx"),
    ModelPack("antelopev2", "scrfd_10g_bnkps.onnx", "1k3d68.onnx", "glintr100.onnx"),
)

# Five alignment points from the 68 (iBUG-300W): image-left eye centre (36-41), image-right eye
# centre (42-47), nose tip (30), mouth corners (48, 54) -- the order of ArcFace's template.
_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_LEFT = 48
_MOUTH_RIGHT = 54

_OPTIONS = ("face_models", "det_size", "det_thresh", "providers")


def _pack_table() -> str:
    return "; ".join(f"{p.name} ({', '.join(p.files)})" for p in KNOWN_PACKS)


def _import_runtime() -> tuple[Any, Any]:
    """Import onnxruntime and insightface lazily; EngineError when either is missing."""
    try:
        import onnxruntime
        import insightface  # noqa: F401  (imports onnxruntime itself)
        from insightface.model_zoo import arcface_onnx, landmark, scrfd  # noqa: F401
        from insightface.utils import face_align  # noqa: F401
    except ImportError as exc:
        raise EngineError(f"{INSTALL_HINT} ({exc})") from None
    return onnxruntime, insightface


def find_pack(folder: str | os.PathLike[str]) -> tuple[ModelPack, Path]:
    """The first known pack whose three files are all in ``folder``.

    Args:
        folder: an unpacked insightface model pack.

    Returns:
        The pack and the folder as an absolute path.

    Raises:
        ModelError: the folder does not exist or holds no complete known pack (one line naming the
            folder, the files each known pack needs and what to do).
    """
    path = Path(folder).expanduser().absolute()
    unpack = (f"unpack an insightface model pack such as buffalo_l into {path}; "
              f"vfxswap never downloads models")
    if not path.exists():
        raise ModelError(f"insightface model folder {path} does not exist; {unpack}")
    if not path.is_dir():
        raise ModelError(f"insightface model folder {path} is not a folder; {unpack}")
    for pack in KNOWN_PACKS:
        if all((path / name).is_file() for name in pack.files):
            return pack, path
    onnx_files = sorted(p.name for p in path.glob("*.onnx"))
    found = f"found {', '.join(onnx_files)}" if onnx_files else "found no .onnx files"
    subfolders = sorted(p.name for p in path.iterdir() if p.is_dir() and any(p.glob("*.onnx")))
    hint = f" (did you mean {path / subfolders[0]}?)" if subfolders else ""
    raise ModelError(
        f"no complete insightface model pack in {path}{hint}: expected one of {_pack_table()}; "
        f"{found}; {unpack}"
    )


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """The ``(5, 2)`` float32 ArcFace alignment points (eyes, nose tip, mouth corners) of 68 landmarks."""
    lm = np.asarray(landmarks, dtype=np.float32)
    return np.stack([
        lm[_LEFT_EYE].mean(axis=0),
        lm[_RIGHT_EYE].mean(axis=0),
        lm[_NOSE_TIP],
        lm[_MOUTH_LEFT],
        lm[_MOUTH_RIGHT],
    ]).astype(np.float32)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype}{list(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ConfigError(f"image must be an (H, W, 3) uint8 RGB array, got {got}")
    if image.dtype != np.uint8:
        raise ConfigError(f"image must be uint8 RGB, got dtype {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ConfigError(f"image is empty: shape {list(image.shape)}")


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.shape != (68, 2):
        raise ConfigError(f"landmarks must be a (68, 2) array, got shape {list(lm.shape)}")
    if not np.all(np.isfinite(lm)):
        raise ConfigError("landmarks contain NaN or infinite values")
    return lm


def _check_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ConfigError(f"box must be 4 numbers (x0, y0, x1, y1), got {box!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise ConfigError(f"box must have x1 > x0 and y1 > y0 (finite), got {box!r}")
    return x0, y0, x1, y1


def _first_line(exc: BaseException) -> str:
    """The gist of an exception on one line (ONNX Runtime's C++ source locations removed)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    text = re.sub(r"Load model from \S+ failed:\s*", "", text)
    text = re.sub(r"\S*onnxruntime_src/\S+\s+[\w:~]+\([^()]*\)\s*", "", text)
    return text[:300]


@ANALYZERS.register("insightface")
class InsightFaceAnalyzer:
    """SCRFD detector + 1k3d68 landmarks + ArcFace identity, from a local insightface model pack.

    Args:
        face_models: folder holding one unpacked model pack (see the module docstring for the known
            packs and their files), e.g. ``~/.insightface/models/buffalo_l``.
        det_size: side in pixels of the square SCRFD input; the image is scaled (aspect kept) so its
            long side fits and letterboxed. A multiple of 32.
        det_thresh: SCRFD score in (0, 1) below which detections are dropped.
        providers: ONNX Runtime execution providers in order of preference; default
            ``CUDAExecutionProvider`` (when this onnxruntime build has it) then ``CPUExecutionProvider``.

    Raises:
        ConfigError: a bad option (unknown keyword, det_size, det_thresh, unavailable provider).
        ModelError: the folder is missing, holds no complete known pack, or a model file is corrupt.
        EngineError: insightface/onnxruntime are not installed.

    Attributes:
        name: ``"insightface"``.
        min_face: 20 -- smallest face side, in pixels of the ``det_size`` input, that SCRFD finds
            reliably: its finest anchors are 16 and 32 px at stride 8, and recall on WIDER FACE's
            tiny faces falls off quickly below ~16-20 px. The image is letterboxed into the input,
            so in an image whose long side is L the smallest reliable face is ``20 * L / det_size``
            (scale 1 when the long side equals ``det_size``).
        identity_threshold: 0.6 cosine distance, i.e. cosine similarity >= 0.4: ArcFace (WebFace600K
            / Glint360K) embeddings of one person typically have similarity above ~0.4 and different
            people below ~0.2; insightface's own video matcher (PrivateFrame) also defaults to a
            0.40 similarity threshold.
        pack: the :class:`ModelPack` found in ``face_models``.
        providers: execution providers the sessions were asked for.
    """

    name = "insightface"
    min_face = 20
    identity_threshold = 0.6

    def __init__(
        self,
        *,
        face_models: str | os.PathLike[str],
        det_size: int = 640,
        det_thresh: float = 0.5,
        providers: Sequence[str] | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise ConfigError(
                f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(sorted(unknown))} for the "
                f"insightface analyzer; valid options: {', '.join(_OPTIONS)}"
            )
        if isinstance(det_size, bool) or not isinstance(det_size, (int, np.integer)) \
                or det_size < 32 or det_size % 32:
            raise ConfigError(f"det_size must be a positive multiple of 32 (e.g. 640), got {det_size!r}")
        try:
            det_thresh = float(det_thresh)
        except (TypeError, ValueError):
            raise ConfigError(f"det_thresh must be a number in (0, 1), got {det_thresh!r}") from None
        if not 0.0 < det_thresh < 1.0:
            raise ConfigError(f"det_thresh must be in (0, 1), got {det_thresh}")
        self.det_size = int(det_size)
        self.det_thresh = det_thresh

        self.pack, self.folder = find_pack(face_models)
        onnxruntime, _ = _import_runtime()
        self.providers = self._resolve_providers(onnxruntime, providers)

        from insightface.model_zoo.arcface_onnx import ArcFaceONNX
        from insightface.model_zoo.landmark import Landmark
        from insightface.model_zoo.scrfd import SCRFD

        self._detector = self._load(onnxruntime, "detector", self.pack.detector, SCRFD)
        self._landmarker = self._load(onnxruntime, "landmarks", self.pack.landmarks, Landmark)
        self._recognizer = self._load(onnxruntime, "recognition", self.pack.recognition, ArcFaceONNX)
        self._detector.prepare(0, input_size=(self.det_size, self.det_size), det_thresh=det_thresh)
        self.embedding_size = int(self._recognizer.output_shape[-1])
        log.info("insightface analyzer: pack %s from %s on %s", self.pack.name, self.folder,
                 self._detector.session.get_providers())

    # -- construction helpers -------------------------------------------------------------------

    @staticmethod
    def _resolve_providers(onnxruntime: Any, providers: Sequence[str] | None) -> list[str]:
        available = list(onnxruntime.get_available_providers())
        if providers is None:
            chosen = ["CPUExecutionProvider"]
            if "CUDAExecutionProvider" in available:
                chosen.insert(0, "CUDAExecutionProvider")
            return chosen
        chosen = [providers] if isinstance(providers, str) else list(providers)
        if not chosen or not all(isinstance(p, str) for p in chosen):
            raise ConfigError(f"providers must be a non-empty list of provider names, got {providers!r}")
        missing = [p for p in chosen if p not in available]
        if missing:
            gpu = ("; CUDAExecutionProvider needs onnxruntime-gpu in place of onnxruntime"
                   if "CUDAExecutionProvider" in missing else "")
            raise ConfigError(
                f"execution provider{'s' if len(missing) > 1 else ''} {', '.join(missing)} not available "
                f"in this onnxruntime build; available: {', '.join(available)}{gpu}"
            )
        return chosen

    def _load(self, onnxruntime: Any, role: str, filename: str, model_class: type) -> Any:
        """One ONNX Runtime session wrapped in insightface's class for ``role``; ModelError names the file."""
        path = self.folder / filename
        if path.stat().st_size == 0:
            raise ModelError(f"insightface model file {path} is empty; re-unpack the {self.pack.name} pack")
        if "CUDAExecutionProvider" in self.providers:
            try:  # let ORT find CUDA/cuDNN from pip's nvidia-* wheels (insightface >= 2 helper)
                from insightface.model_zoo.onnxruntime_utils import preload_cuda_libraries
                preload_cuda_libraries(self.providers)
            except Exception as exc:  # noqa: BLE001 - optional helper, best effort
                log.debug("preloading CUDA libraries failed: %s", exc)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        try:
            session = onnxruntime.InferenceSession(str(path), sess_options=options,
                                                   providers=self.providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise ModelError(
                f"cannot load insightface {role} model {path}: {_first_line(exc)}; the file is corrupt "
                f"or not the {self.pack.name} {role} model -- re-unpack the pack"
            ) from None
        self._check_io(role, path, session)
        if self.providers[0] not in session.get_providers():
            log.warning("%s runs on %s, not %s (is CUDA/cuDNN installed?)", path.name,
                        session.get_providers(), self.providers[0])
        try:
            return model_class(model_file=str(path), session=session)
        except Exception as exc:  # noqa: BLE001 - insightface asserts and raises freely
            raise ModelError(f"cannot use insightface {role} model {path}: {_first_line(exc)}") from None

    def _check_io(self, role: str, path: Path, session: Any) -> None:
        """Check the loaded file is the kind of model its name promises (not routing: validation)."""
        inputs, outputs = session.get_inputs(), session.get_outputs()
        shape = list(inputs[0].shape) if inputs else []
        problem = ""
        if len(shape) != 4:
            problem = f"input shape {shape} is not NCHW"
        elif role == "detector":
            if len(outputs) not in (6, 9, 10, 15):
                problem = f"{len(outputs)} outputs, an SCRFD detector has 6, 9, 10 or 15"
            elif all(isinstance(d, int) for d in shape[2:]) and tuple(shape[2:]) != (self.det_size,) * 2:
                raise ConfigError(
                    f"{path} has a fixed {shape[3]}x{shape[2]} input; use det_size={shape[3]}"
                )
        elif role == "landmarks":
            if len(outputs) != 1 or outputs[0].shape[-1] != 3309 or shape[2:] != [192, 192]:
                problem = (f"input {shape} / output {outputs[0].shape if outputs else None}; "
                           f"1k3d68 takes 192x192 and gives 3309 values")
        elif role == "recognition":
            size = shape[2]
            if len(outputs) != 1 or shape[2] != shape[3] or not isinstance(size, int) \
                    or (size % 112 and size % 128):
                problem = f"input {shape}; an ArcFace model takes a square 112 (or 128) px crop"
        if problem:
            raise ModelError(f"insightface {role} model {path} is not what {self.pack.name} ships: {problem}")

    # -- FaceAnalyzer ---------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[Face]:
        """Find faces and fit 68 landmarks in each.

        Args:
            image: ``(H, W, 3)`` uint8 RGB (sRGB).

        Returns:
            Faces in descending score order; ``box`` is SCRFD's ``(x0, y0, x1, y1)`` in image pixels
            (it may reach past the image edge), ``landmarks`` ``(68, 2)`` float32 image pixels,
            ``score`` SCRFD's confidence in [0, 1].
        """
        _check_image(image)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        boxes, _ = self._detector.detect(bgr, input_size=(self.det_size, self.det_size))
        faces = []
        for x0, y0, x1, y1, score in np.asarray(boxes, dtype=np.float64).reshape(-1, 5):
            box = (float(x0), float(y0), float(x1), float(y1))
            faces.append(Face(box=box, landmarks=self._fit(bgr, box), score=float(score)))
        return faces

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """Fit ``(68, 2)`` float32 landmarks (image pixels, iBUG-300W order) inside ``box``.

        Only the region the landmark model samples (a square of 1.5x the box's long side around its
        centre) is converted to BGR, so tracking in 4K frames stays cheap.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            box: ``(x0, y0, x1, y1)`` in image pixels, as SCRFD draws it (or a tracker moves it).
        """
        _check_image(image)
        x0, y0, x1, y1 = _check_box(box)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half = max(x1 - x0, y1 - y0) * 0.75 + 2.0  # +2 px: the bilinear neighbours at the edge
        h, w = image.shape[:2]
        rx0, ry0 = max(0, math.floor(cx - half)), max(0, math.floor(cy - half))
        rx1, ry1 = min(w, math.ceil(cx + half) + 1), min(h, math.ceil(cy + half) + 1)
        if rx1 <= rx0 or ry1 <= ry0:
            raise ConfigError(f"box {box!r} lies outside the {w}x{h} image")
        region = cv2.cvtColor(image[ry0:ry1, rx0:rx1], cv2.COLOR_RGB2BGR)
        local = (x0 - rx0, y0 - ry0, x1 - rx0, y1 - ry0)
        return self._fit(region, local) + np.array([rx0, ry0], dtype=np.float32)

    def _fit(self, bgr: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        from insightface.app.common import Face as InsightFace  # insightface's dict-like record

        pred = self._landmarker.get(bgr, InsightFace(bbox=np.asarray(box, dtype=np.float32)))
        return np.ascontiguousarray(pred[-68:, :2], dtype=np.float32)

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """ArcFace identity of the face with these landmarks.

        The face is aligned with ``insightface.utils.face_align.norm_crop`` on five points from the
        68 (eye centres, nose tip, mouth corners).

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            landmarks: ``(68, 2)`` iBUG-300W points in image pixels.

        Returns:
            ``(512,)`` float32, L2-normalised.
        """
        from insightface.utils.face_align import norm_crop

        _check_image(image)
        lm = _check_landmarks(landmarks)
        crop = norm_crop(image, five_points(lm), image_size=int(self._recognizer.input_size[0]))
        feat = np.asarray(self._recognizer.get_feat(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)),
                          dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(feat))
        if not math.isfinite(norm) or norm == 0.0:
            raise EngineError(f"{self.pack.recognition} returned an invalid embedding (norm {norm})")
        return feat / norm

    def __repr__(self) -> str:
        return (f"InsightFaceAnalyzer(pack={self.pack.name!r}, folder={str(self.folder)!r}, "
                f"det_size={self.det_size}, det_thresh={self.det_thresh}, providers={self.providers})")
