"""Frozen, validated configuration dataclasses shared by the CLI, the library API and host nodes."""

from __future__ import annotations

import dataclasses
from typing import Literal

from .errors import ConfigError
from .types import FACE_TYPES, FaceType


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExtractConfig:
    """Settings of ``vfxswap extract``.

    Attributes:
        every: run the detector on every Nth frame; track landmarks in between (1 = detect always).
        size: side of the aligned crops in pixels.
        face_type: crop coverage: ``half``, ``full``, ``whole_face`` or ``head``.
        min_size: drop faces whose landmark box is smaller than this many source pixels. Also sets
            the detection proxy: frames are downscaled so a face of ``min_size`` is just large enough
            for the detector.
        min_sharpness: drop crops whose Laplacian variance is below this (0 keeps all).
        reference: image (or folder of images) of the person to keep; ``None`` keeps everyone.
        identity_threshold: largest identity distance to the reference that counts as the same
            person; ``None`` uses the backend's default.
        detect_scale: explicit proxy scale for detection in (0, 1]; ``None`` derives it from ``min_size``.
        backend: face-analysis backend (``dlib`` or ``insightface``).
        detector: dlib detector kind (``hog`` or ``cnn``).
        face_models: folder of an insightface model pack (insightface backend).
        resume: continue an existing faceset instead of refusing to touch it.
    """

    every: int = 5
    size: int = 256
    face_type: FaceType = "whole_face"
    min_size: int = 64
    min_sharpness: float = 0.0
    reference: str | None = None
    identity_threshold: float | None = None
    detect_scale: float | None = None
    backend: Literal["dlib", "insightface"] = "dlib"
    detector: Literal["hog", "cnn"] = "hog"
    face_models: str | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"--every must be >= 1, got {self.every}")
        if not 32 <= self.size <= 2048:
            raise ConfigError(f"--size must be between 32 and 2048 pixels, got {self.size}")
        if self.face_type not in FACE_TYPES:
            raise ConfigError(f"--face-type must be one of {', '.join(FACE_TYPES)}, got {self.face_type!r}")
        if self.min_size < 0:
            raise ConfigError(f"--min-size must be >= 0, got {self.min_size}")
        if self.min_sharpness < 0:
            raise ConfigError(f"--min-sharpness must be >= 0, got {self.min_sharpness}")
        if self.detect_scale is not None and not 0.0 < self.detect_scale <= 1.0:
            raise ConfigError(f"--detect-scale must be in (0, 1], got {self.detect_scale}")
        if self.identity_threshold is not None and self.identity_threshold <= 0:
            raise ConfigError(f"--identity-threshold must be > 0, got {self.identity_threshold}")
        if self.backend not in ("dlib", "insightface"):
            raise ConfigError(f"--backend must be dlib or insightface, got {self.backend!r}")
        if self.detector not in ("hog", "cnn"):
            raise ConfigError(f"--detector must be hog or cnn, got {self.detector!r}")
        if self.backend == "insightface" and not self.face_models:
            raise ConfigError("the insightface backend needs --face-models DIR (a local model pack such as buffalo_l)")

    def analyzer_options(self) -> dict[str, object]:
        """Keyword options for :func:`vfxswap.faces.analysis.open_analyzer`."""
        if self.backend == "dlib":
            return {"detector": self.detector}
        return {"face_models": self.face_models}
