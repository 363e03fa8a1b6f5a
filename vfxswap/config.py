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


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvertConfig:
    """Settings of ``vfxswap convert``.

    Attributes:
        faces: which faces to swap: ``all``, ``largest`` (one per frame: the track largest over the
            smoothing window, so near-equal faces do not take turns) or ``reference`` (the person of
            ``reference``; implied when ``reference`` is given).
        reference: image or folder of images of the person to swap.
        identity_threshold: largest identity distance to the reference; ``None``: the backend's default.
        every: detect every Nth frame, track landmarks in between.
        min_size: smallest face swapped (source pixels); also sets the detection proxy scale.
        detect_scale: explicit detection proxy scale in (0, 1].
        smooth: temporal smoothing radius in frames (centred window, zero lag); 0 disables.
        color: colour-match method (``rct``, ``lct``, ``mkl``, ``idt``, ``sot``, ``hist``, ``none``).
        color_smooth: frames over which colour-transfer statistics are averaged (1 = per frame).
        mask: mask source: ``hull``, ``learned`` or ``learned*hull``.
        erode: pixels (in the model's crop) to erode (> 0) or dilate (< 0) the mask.
        feather: soft-edge width in crop pixels.
        blend: ``feather``, ``poisson`` or ``laplacian``.
        backend: runner (``auto``, ``torch``, ``compiled``, ``tensorrt``, ``onnxruntime``); device: ``auto``, ``cpu``, ``cuda``.
        precision: the model's arithmetic (``auto``: fp16 on CUDA, fp32 on the CPU).
        compositor: who aligns, colour-matches and blends the faces: ``opencv`` (host arrays), ``torch``
            (tensors on the runner's device, frames uploaded once) or ``auto`` (torch when the runner
            is on a GPU).
        batch: faces per model call (micro-batching across frames).
        codec: output codec (``None``: the input's codec family and bit depth).
        start_frame: number of a movie's first frame (sequence outputs and ``frames`` use it).
        frames: frame-range expression (``1001-1100``, ``1001-1100x2``, ``1001,1010-1012``) or ``None`` = all.
        skip_existing: image-sequence outputs: leave frames already on disk.
        matte: path (movie or sequence pattern) for the blend-mask pass, or ``None``.
        face_backend, face_models: face-analysis backend and insightface pack folder.
        patches: folder for the raw swapped faces (``NNNNNNNN_tTT.png`` RGBA: swapped RGB + learned mask)
            and ``patches.jsonl`` (frame number, track, ``frame_from_face``), for external compositing.
        alpha: write the blend mask as the output's alpha channel (ProRes 4444, FFV1, EXR/PNG/TIFF/DPX).
        ocio_config: OpenColorIO config (file or ``ocio://`` URI) for the face path; with it or with
            ``input_colorspace`` faces go plate space -> model space -> plate space through OCIO.
        input_colorspace: colour space of the plate (default: what the reader says, ``srgb`` for
            integer frames, ``linear`` (the config's scene_linear role) for float EXRs).
    """

    faces: Literal["all", "largest", "reference"] = "all"
    reference: str | None = None
    identity_threshold: float | None = None
    every: int = 5
    min_size: int = 64
    detect_scale: float | None = None
    smooth: int = 3
    color: str = "rct"
    color_smooth: int = 1
    mask: Literal["hull", "learned", "learned*hull"] = "learned*hull"
    erode: int = 0
    feather: int = 8
    blend: str = "feather"
    backend: Literal["auto", "torch", "compiled", "tensorrt", "onnxruntime"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    compositor: Literal["auto", "opencv", "torch"] = "auto"
    batch: int = 8
    codec: str | None = None
    start_frame: int = 1001
    frames: str | None = None
    skip_existing: bool = False
    matte: str | None = None
    face_backend: Literal["dlib", "insightface"] = "dlib"
    face_models: str | None = None
    patches: str | None = None
    alpha: bool = False
    ocio_config: str | None = None
    input_colorspace: str | None = None

    def __post_init__(self) -> None:
        if self.reference and self.faces == "all":
            object.__setattr__(self, "faces", "reference")
        if self.faces not in ("all", "largest", "reference"):
            raise ConfigError(f"--faces must be all, largest or reference, got {self.faces!r}")
        if self.faces == "reference" and not self.reference:
            raise ConfigError("--faces reference needs --reference IMAGE")
        for name, low in (("every", 1), ("batch", 1), ("color_smooth", 1), ("smooth", 0), ("min_size", 0),
                          ("feather", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(self, name)}")
        if self.mask not in ("hull", "learned", "learned*hull"):
            raise ConfigError(f"--mask must be hull, learned or learned*hull, got {self.mask!r}")
        if self.backend not in ("auto", "torch", "compiled", "tensorrt", "onnxruntime"):
            raise ConfigError(f"--backend must be auto, torch, compiled, tensorrt or onnxruntime, got {self.backend!r}")
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ConfigError(f"--precision must be auto, fp32, fp16 or bf16, got {self.precision!r}")
        if self.compositor not in ("auto", "opencv", "torch"):
            raise ConfigError(f"--compositor must be auto, opencv or torch, got {self.compositor!r}")
        if self.detect_scale is not None and not 0.0 < self.detect_scale <= 1.0:
            raise ConfigError(f"--detect-scale must be in (0, 1], got {self.detect_scale}")
        if self.face_backend == "insightface" and not self.face_models:
            raise ConfigError("the insightface backend needs --face-models DIR (a local model pack such as buffalo_l)")

    def extract_view(self) -> ExtractConfig:
        """The face-finding settings as an :class:`ExtractConfig` (shared proxy and analyzer logic)."""
        return ExtractConfig(every=self.every, min_size=self.min_size, detect_scale=self.detect_scale,
                             reference=self.reference, identity_threshold=self.identity_threshold,
                             backend=self.face_backend, face_models=self.face_models)
