"""Frozen, validated configuration dataclasses shared by the CLI, the library API and host nodes.

One schema: each field's type hint, plus a numeric range in its metadata (:func:`number`), says what
the field accepts. :func:`check_fields` enforces it in ``__post_init__`` (flags, library calls, host
nodes) and :func:`setting_problem` for a single value (``--config`` files), so the two cannot drift.
Types are strict: ``bool`` is not an ``int``; ``int`` takes only integers; ``float`` takes integers
and finite floats, not bools; ``Literal`` takes its choices; tuples and lists are checked item by
item; ``X | None`` also takes None.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

from .errors import ConfigError
from .types import FaceType

MAX_MIN_SIZE = 8192  # source pixels: larger than any plate's face


def number(default: float | None, *, at_least: float | None = None, at_most: float | None = None,
           above: float | None = None) -> Any:
    """A dataclass field whose numbers must lie in a range (inclusive ``at_least``/``at_most``,
    exclusive ``above``); the type itself comes from the field's hint."""
    return dataclasses.field(default=default, metadata={"at_least": at_least, "at_most": at_most, "above": above})


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _matches(hint: Any, value: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if origin is typing.Union or isinstance(hint, types.UnionType):
        return any(_matches(a, value) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(_matches(a, v) for a, v in zip(args, value))
        return all(_matches(args[0] if args else Any, v) for v in value)
    return isinstance(value, origin or hint)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is typing.Union or isinstance(hint, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))  # None: the default, left unset
    if origin in (tuple, list):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} items: " + ", ".join(_describe(a) for a in args)
        return f"a list, each item {_describe(args[0])}" if args else "a list"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _bounds(field: dataclasses.Field) -> tuple[float | None, float | None, float | None]:
    return field.metadata.get("at_least"), field.metadata.get("at_most"), field.metadata.get("above")


def _range_text(field: dataclasses.Field) -> str:
    low, high, above = _bounds(field)
    if above is not None:
        return f" in ({above}, {high}]" if high is not None else f" > {above}"
    if low is not None and high is not None:
        return f" in {low}..{high}"
    return f" >= {low}" if low is not None else f" <= {high}" if high is not None else ""


def _out_of_range(field: dataclasses.Field, value: Any) -> str | None:
    """The bound ``value`` breaks (``>= 0``), or None; only numbers are compared."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, high, above = _bounds(field)
    if above is not None and not value > above:
        return f"> {above}" if high is None else f"in ({above}, {high}]"
    if low is not None and value < low:
        return f">= {low}"
    if high is not None and value > high:
        return f"<= {high}" if above is None else f"in ({above}, {high}]"
    return None


def _field(cls: type, name: str) -> dataclasses.Field:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise ConfigError(f"{cls.__name__} has no setting {name}")
    return fields[name]


def allowed_values(cls: type, name: str) -> str:
    """What field ``name`` of the config dataclass ``cls`` accepts, in words ("an integer in 0..256")."""
    hint = _hints(cls)[name]
    text = _describe(hint)
    return text + _range_text(_field(cls, name)) if text in ("an integer", "a number") else text


def setting_problem(cls: type, name: str, value: Any) -> str | None:
    """None when ``value`` is allowed for field ``name`` of ``cls``; else what is wrong with it, in
    words ("must be an integer in 0..256", "must be >= 0")."""
    field = _field(cls, name)
    if not _matches(_hints(cls)[name], value):
        return f"must be {allowed_values(cls, name)}"
    bound = _out_of_range(field, value)
    return f"must be {bound}" if bound else None


def value_problem(hint: Any, value: Any) -> str | None:
    """None when ``value`` is of type ``hint`` by the schema's rules, else "must be <what hint allows>"."""
    return None if _matches(hint, value) else f"must be {_describe(hint)}"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_fields(obj: Any, *, label: Callable[[str], str] = _flag) -> None:
    """Raise ConfigError (``--feather must be >= 0, got -1``) for the first field of the dataclass
    instance ``obj`` whose value the schema refuses; ``label`` names a field in the message."""
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        problem = setting_problem(type(obj), field.name, value)
        if problem:
            raise ConfigError(f"{label(field.name)} {problem}, got {value!r}")


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

    every: int = number(5, at_least=1)
    size: int = number(256, at_least=32, at_most=2048)
    face_type: FaceType = "whole_face"
    min_size: int = number(64, at_least=0, at_most=MAX_MIN_SIZE)
    min_sharpness: float = number(0.0, at_least=0)
    reference: str | None = None
    identity_threshold: float | None = number(None, above=0)
    detect_scale: float | None = number(None, above=0, at_most=1)
    backend: Literal["dlib", "insightface"] = "dlib"
    detector: Literal["hog", "cnn"] = "hog"
    face_models: str | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
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
        allow_short: accept a movie that decodes fewer frames than its container says (a corrupt or
            cut-off file): keep what converts, with a warning, instead of failing.
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
    identity_threshold: float | None = number(None, above=0)
    every: int = number(5, at_least=1)
    min_size: int = number(64, at_least=0, at_most=MAX_MIN_SIZE)
    detect_scale: float | None = number(None, above=0, at_most=1)
    smooth: int = number(3, at_least=0, at_most=100)  # frames are held `smooth` frames: bounded memory
    color: str = "rct"
    color_smooth: int = number(1, at_least=1, at_most=1000)
    mask: Literal["hull", "learned", "learned*hull"] = "learned*hull"
    erode: int = number(0, at_least=-128, at_most=128)  # crop pixels (crops are at most 512)
    feather: int = number(8, at_least=0, at_most=256)
    blend: str = "feather"
    backend: Literal["auto", "torch", "compiled", "tensorrt", "onnxruntime"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    compositor: Literal["auto", "opencv", "torch"] = "auto"
    batch: int = number(8, at_least=1, at_most=1024)
    codec: str | None = None
    start_frame: int = number(1001, at_least=0, at_most=10_000_000)
    frames: str | None = None
    skip_existing: bool = False
    allow_short: bool = False
    matte: str | None = None
    face_backend: Literal["dlib", "insightface"] = "dlib"
    face_models: str | None = None
    patches: str | None = None
    alpha: bool = False
    ocio_config: str | None = None
    input_colorspace: str | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        if self.reference and self.faces == "all":
            object.__setattr__(self, "faces", "reference")
        if self.faces == "reference" and not self.reference:
            raise ConfigError("--faces reference needs --reference IMAGE")
        if self.face_backend == "insightface" and not self.face_models:
            raise ConfigError("the insightface backend needs --face-models DIR (a local model pack such as buffalo_l)")

    def extract_view(self) -> ExtractConfig:
        """The face-finding settings as an :class:`ExtractConfig` (shared proxy and analyzer logic)."""
        return ExtractConfig(every=self.every, min_size=self.min_size, detect_scale=self.detect_scale,
                             reference=self.reference, identity_threshold=self.identity_threshold,
                             backend=self.face_backend, face_models=self.face_models)
