"""The face-analysis protocol and its registry.

A backend finds faces, fits 68 landmarks and computes identity embeddings. Backends register a
factory in :data:`ANALYZERS`; :func:`open_analyzer` builds one by name. Built in: ``dlib`` (offline
default, models from the ``face_recognition_models`` package) and ``insightface`` (SCRFD, 1k3d68 and
ArcFace from a local model pack). Backend modules are imported only when asked for.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError
from ..registry import Registry
from ..types import Face

ANALYZERS: Registry[Any] = Registry("face analyzer")

# Built-in backends, imported lazily so that ``import vfxswap`` never loads dlib or onnxruntime.
_BUILTIN_MODULES = {
    "dlib": "vfxswap.faces.dlib_backend",
    "insightface": "vfxswap.faces.insightface_backend",
}


@runtime_checkable
class FaceAnalyzer(Protocol):
    """What the extractor and converter need from a face-analysis backend.

    All images are ``(H, W, 3)`` uint8 RGB, display-referred (sRGB); all coordinates are pixels of the
    image passed in.

    Attributes:
        name: registry name of the backend.
        min_face: smallest face side in pixels the detector finds reliably at scale 1 (the extractor
            chooses the detection proxy scale from it).
        identity_threshold: default largest :meth:`identity_distance` at which two faces are the same
            person.
    """

    name: str
    min_face: int
    identity_threshold: float

    def detect(self, image: np.ndarray) -> list[Face]:
        """Find faces; each with a box, 68 landmarks and a score (no embedding, no track)."""
        ...

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """Fit ``(68, 2)`` float32 landmarks inside ``box`` (used to track between detections)."""
        ...

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """``(D,)`` float32 L2-normalised identity embedding of the face with these landmarks."""
        ...


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine distance in [0, 2] between two L2-normalised embeddings (0 = same direction)."""
    return float(1.0 - np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def open_analyzer(name: str, **options: Any) -> FaceAnalyzer:
    """Build the backend registered as ``name`` with backend-specific ``options``.

    Raises:
        ConfigError: unknown backend name or option.
        ModelError: the backend's model files are missing or unreadable.
    """
    module = _BUILTIN_MODULES.get(name)
    if module is not None and name not in ANALYZERS:
        importlib.import_module(module)
    factory = ANALYZERS.get(name)
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise ConfigError(f"bad options for the {name} face analyzer: {exc}") from None
    return factory(**options)
