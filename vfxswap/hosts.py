"""Helpers for host integrations (ComfyUI, Nuke, Resolve), free of any host's types.

* **Options**: :func:`config_options` describes the fields of a config dataclass (kind, default,
  choices, range, help) so host UIs are generated from the same dataclasses the CLI uses;
  :func:`config_from_options` builds the config back from a host's values.
* **Image batches**: hosts hold clips as ``(B, H, W, 3)`` float32 display-referred RGB in [0, 1]
  (ComfyUI's ``IMAGE`` once it is a NumPy array). :func:`frames_from_images`,
  :func:`images_from_works`, :func:`detect_faces`, :func:`swap_crops`, :func:`match_colors` and
  :func:`composite_faces` run the library on such batches.
* **Sequences**: :func:`load_display_images` / :func:`save_display_images` read and write image
  sequences (EXR...) through an explicit OpenColorIO colour space, display and view.

Nothing here imports torch or a host module.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import cv2
import numpy as np

from .config import ConvertConfig, ExtractConfig
from .errors import ConfigError, MediaError
from .types import AlignedFace, Frame, FrameWork

OptionKind = Literal["choice", "int", "float", "bool", "str"]

#: ``(minimum, maximum, step)`` of the numeric config fields in host UIs. The dataclasses' own
#: ``__post_init__`` checks stay the authority; these bounds only keep sliders sensible.
RANGES: dict[str, tuple[float, float, float]] = {
    "every": (1, 1000, 1),
    "min_size": (0, 8192, 1),
    "detect_scale": (0.0, 1.0, 0.01),
    "identity_threshold": (0.0, 2.0, 0.005),
    "smooth": (0, 100, 1),
    "color_smooth": (1, 1000, 1),
    "erode": (-128, 128, 1),
    "feather": (0, 256, 1),
    "batch": (1, 1024, 1),
    "start_frame": (0, 10_000_000, 1),
    "size": (32, 2048, 16),
    "min_sharpness": (0.0, 100_000.0, 1.0),
}
_INT_RANGE = (-1_000_000_000, 1_000_000_000, 1)
_FLOAT_RANGE = (-1e9, 1e9, 0.01)

#: String fields whose valid values are the names of a registry (``module:ATTRIBUTE``).
REGISTRY_CHOICES: dict[str, str] = {
    "color": "vfxswap.convert.color:COLOR_METHODS",
    "blend": "vfxswap.convert.blend:BLEND_METHODS",
}

#: The label a config's ``reference`` gets when the reference person comes as in-memory images
#: (their embeddings go to :func:`~vfxswap.convert.api.swap_frames` directly).
IN_MEMORY_REFERENCE = "<reference images>"


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """One config field as a host UI shows it.

    Attributes:
        name: the field name (``feather``).
        kind: ``choice``, ``int``, ``float``, ``bool`` or ``str``.
        default: the field's default (``None`` fields: 0, 0.0 or ``""``, see ``optional``).
        choices: valid values of a ``choice``.
        minimum, maximum, step: range of an ``int``/``float`` (see :data:`RANGES`).
        optional: the field may be ``None``; a host shows ``0``/``""`` for it and
            :func:`config_from_options` turns those back into ``None`` (the library's default).
        help: the field's description from the dataclass docstring.
    """

    name: str
    kind: OptionKind
    default: Any
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    optional: bool = False
    help: str = ""


def _registry_names(ref: str) -> tuple[str, ...]:
    import importlib

    from .registry import load_plugins

    module, attr = ref.split(":")
    load_plugins()
    return tuple(getattr(importlib.import_module(module), attr).names())


def field_help(cls: type) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` section of a dataclass docstring
    (``a, b: text`` gives both fields the text)."""
    doc = cls.__doc__ or ""
    section = doc.split("Attributes:", 1)[1] if "Attributes:" in doc else ""
    out: dict[str, str] = {}
    current: list[str] = []
    for line in section.splitlines():
        m = re.match(r"^ {8}([a-z_][a-z0-9_, ]*):\s*(.*)$", line)
        if m:
            current = [n.strip() for n in m.group(1).split(",")]
            for n in current:
                out[n] = m.group(2).strip()
        elif line.startswith(" " * 12) and current:
            for n in current:
                out[n] += " " + line.strip()
        elif line.strip():
            current = []
    return out


def config_options(cls: type = ConvertConfig, *, include: Iterable[str] | None = None,
                   exclude: Iterable[str] = ()) -> dict[str, OptionSpec]:
    """Describe the fields of a config dataclass for a host UI, in declaration order.

    Args:
        cls: a config dataclass (:class:`ConvertConfig`, :class:`ExtractConfig`).
        include: only these fields (in this order); ``None``: all.
        exclude: leave these fields out.

    Returns:
        ``{name: OptionSpec}``. ``Literal`` fields and registry-backed strings (:data:`REGISTRY_CHOICES`)
        are choices; ints and floats get :data:`RANGES`.

    Raises:
        ConfigError: a field name that ``cls`` lacks, or a field type a host cannot show.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(include) if include is not None else list(fields)
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise ConfigError(f"{cls.__name__} has no field {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    helps = field_help(cls)
    skip = set(exclude)
    out: dict[str, OptionSpec] = {}
    for name in names:
        if name in skip:
            continue
        hint, default = hints[name], fields[name].default
        optional = False
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = len(args) < len(typing.get_args(hint))
            if len(args) != 1:
                raise ConfigError(f"{cls.__name__}.{name} has a type hosts cannot show: {hint}")
            hint = args[0]
        help_text = helps.get(name, "").replace("``", "")
        if typing.get_origin(hint) is Literal:
            choices = tuple(str(a) for a in typing.get_args(hint))
            out[name] = OptionSpec(name, "choice", default, choices=choices, optional=optional, help=help_text)
        elif hint is str and name in REGISTRY_CHOICES:
            out[name] = OptionSpec(name, "choice", default, choices=_registry_names(REGISTRY_CHOICES[name]),
                                   help=help_text)
        elif hint is bool:
            out[name] = OptionSpec(name, "bool", bool(default), help=help_text)
        elif hint in (int, float):
            low, high, step = RANGES.get(name, _INT_RANGE if hint is int else _FLOAT_RANGE)
            kind: OptionKind = "int" if hint is int else "float"
            value = (0 if hint is int else 0.0) if default is None else default
            out[name] = OptionSpec(name, kind, value, minimum=low, maximum=high, step=step, optional=optional,
                                   help=help_text + (" 0 means None (the default)." if optional else ""))
        elif hint is str:
            out[name] = OptionSpec(name, "str", "" if default is None else default, optional=optional,
                                   help=help_text)
        else:
            raise ConfigError(f"{cls.__name__}.{name} has a type hosts cannot show: {hint}")
    return out


def config_from_options(cls: type = ConvertConfig, options: Mapping[str, Any] | None = None, **fixed: Any):
    """Build a config dataclass from a host's option values.

    ``0``/``""`` of optional fields become ``None``; keys that are not fields of ``cls`` are ignored
    (hosts pass other inputs alongside); ``fixed`` values win over ``options``.

    Raises:
        ConfigError: an invalid value (the dataclass's own checks).
    """
    specs = config_options(cls)
    values: dict[str, Any] = {}
    for name, value in {**dict(options or {}), **fixed}.items():
        spec = specs.get(name)
        if spec is None:
            continue
        if spec.optional and value in (0, 0.0, "", None) and name not in fixed:
            value = None
        elif spec.kind == "int":
            value = int(value)
        elif spec.kind == "float":
            value = float(value)
        values[name] = value
    return cls(**values)


# ---------------------------------------------------------------------------------------- batches
def _check_batch(images: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[3] not in (3, 4):
        got = f"shape {tuple(images.shape)}" if isinstance(images, np.ndarray) else type(images).__name__
        raise ConfigError(f"{what} must be a (B, H, W, 3) RGB batch, got {got}")
    if images.shape[0] == 0:
        raise ConfigError(f"{what} is an empty batch")
    return images


def frames_from_images(images: np.ndarray) -> list[Frame]:
    """A ``(B, H, W, 3)`` (or RGBA: alpha dropped) display-referred batch in [0, 1] as frames.

    Returns:
        ``B`` :class:`Frame` objects, ``image`` ``(H, W, 3)`` float32 with ``color_space="srgb"``
        (display-encoded floats), ``index`` 0..B-1.
    """
    images = _check_batch(images, "the images")
    return [Frame(image=np.ascontiguousarray(images[i, :, :, :3], dtype=np.float32), index=i, color_space="srgb")
            for i in range(images.shape[0])]


def images_from_works(works: Sequence[FrameWork]) -> tuple[np.ndarray, np.ndarray]:
    """The swapped clip of :func:`~vfxswap.convert.api.swap_frames` as a batch.

    Returns:
        ``(images, mattes)``: ``(B, H, W, 3)`` float32 (clipped to [0, 1]) and ``(B, H, W)`` float32
        blend masks in [0, 1] (zeros where nothing was swapped).
    """
    if not works:
        raise ConfigError("no frames to stack")
    images = np.stack([_as_unit_float(w.result) for w in works])
    np.clip(images, 0.0, 1.0, out=images)
    blank = np.zeros(images.shape[1:3], np.float32)
    mattes = np.stack([work.matte if work.matte is not None else blank for work in works])
    return images, mattes.astype(np.float32, copy=False)


def _as_unit_float(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(65535)
    return image.astype(np.float32, copy=False)


def display_uint8(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` display-referred float [0, 1] -> uint8 sRGB, the face analyzers' input."""
    from .io.colorspace import to_display_uint8

    return to_display_uint8(Frame(image=np.ascontiguousarray(image[..., :3], dtype=np.float32), index=0))


def reference_from_images(analyzer, images: np.ndarray) -> np.ndarray:
    """``(R, D)`` identity embeddings of the largest face of each image of a reference batch.

    Raises:
        MediaError: an image shows no face.
    """
    from .faces.identity import largest_face_embedding

    images = _check_batch(images, "the reference images")
    n = images.shape[0]
    return np.stack([largest_face_embedding(analyzer, display_uint8(images[i]),
                                            what=f"reference image {i + 1} of {n}") for i in range(n)])


def swap_config(options: Mapping[str, Any], *, has_reference: bool) -> ConvertConfig:
    """The converter settings of an in-memory swap from a host's option values.

    Raises:
        ConfigError: ``faces="reference"`` without reference images, or an invalid value.
    """
    if options.get("faces") == "reference" and not has_reference:
        raise ConfigError("faces 'reference' needs reference images of the person to swap; connect them, "
                          "or pick 'all' or 'largest'")
    fixed = {"reference": IN_MEMORY_REFERENCE} if has_reference else {}
    return config_from_options(ConvertConfig, options, **fixed)


# ------------------------------------------------------------------------------------ face crops
@dataclasses.dataclass(frozen=True, repr=False)
class FaceCrop:
    """A face found in image ``frame`` of a batch, cut into an aligned crop.

    Attributes:
        frame: index of the image in its batch.
        aligned: the crop (``image`` ``(S, S, 3)`` float32 display values), its ``face_from_frame``
            affine, size, face type and the source :class:`~vfxswap.types.Face`.
    """

    frame: int
    aligned: AlignedFace

    def __repr__(self) -> str:
        return f"FaceCrop(frame={self.frame}, size={self.aligned.size}, face_type={self.aligned.face_type!r})"


def detect_faces(analyzer, images: np.ndarray, *, size: int = 256, face_type: str = "whole_face",
                 faces: Literal["all", "largest"] = "all", min_size: int = 64,
                 detect_scale: float | None = None) -> list[FaceCrop]:
    """Find the faces of every image of a batch (each image on its own, no tracking) and align them.

    Args:
        analyzer: a :class:`~vfxswap.faces.analysis.FaceAnalyzer`.
        images: ``(B, H, W, 3)`` float32 display-referred RGB in [0, 1].
        size, face_type: crop side in pixels and coverage (DeepFaceLab's face types).
        faces: ``all`` faces, or the ``largest`` of each image.
        min_size: drop faces smaller than this (source pixels); also sets the detection proxy.
        detect_scale: explicit detection proxy scale in (0, 1].

    Returns:
        The crops, image by image, left to right within an image.

    Raises:
        MediaError: no image of the batch shows a face.
    """
    from .extract import detect_full_res, proxy_scale
    from .faces.align import align_face

    if faces not in ("all", "largest"):
        raise ConfigError(f"faces must be 'all' or 'largest', got {faces!r}")
    view = ExtractConfig(size=size, face_type=face_type, min_size=min_size, detect_scale=detect_scale)
    scale = proxy_scale(view, analyzer)
    frames = frames_from_images(images)
    out: list[FaceCrop] = []
    for frame in frames:
        found = [f for f in detect_full_res(analyzer, display_uint8(frame.image), scale) if f.size >= min_size]
        if faces == "largest" and found:
            found = [max(found, key=lambda f: f.size)]
        for face in sorted(found, key=lambda f: f.box[0]):
            out.append(FaceCrop(frame.index, align_face(frame.image, face, size, view.face_type)))
    if not out:
        raise MediaError(f"no face found in {len(frames)} image{'s' if len(frames) != 1 else ''} (smallest face "
                         f"looked for: {min_size} px); lower min_size or use larger images")
    return out


def crops_array(crops: Sequence[FaceCrop]) -> np.ndarray:
    """``(N, S, S, 3)`` float32 crops of :func:`detect_faces` (all of one size)."""
    return np.stack([c.aligned.image for c in crops]).astype(np.float32, copy=False)


def hull_masks(crops: Sequence[FaceCrop]) -> np.ndarray:
    """``(N, S, S)`` float32 landmark-hull masks of the crops (brows lifted to the hairline)."""
    from .faces.align import landmarks_in_face
    from .faces.masks import hull_mask

    return np.stack([hull_mask(landmarks_in_face(c.aligned), c.aligned.size) for c in crops])


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """``(N, s, s, C)`` or ``(N, s, s)`` -> side ``size`` (area when shrinking, cubic when growing)."""
    if images.shape[1] == size:
        return images
    interp = cv2.INTER_AREA if images.shape[1] > size else cv2.INTER_CUBIC
    return np.stack([cv2.resize(np.ascontiguousarray(im), (size, size), interpolation=interp) for im in images])


def swap_crops(model, crops: Sequence[FaceCrop], *, batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Run a model on aligned crops.

    Args:
        model: an open :class:`~vfxswap.convert.api.SwapModel`.
        crops: crops of :func:`detect_faces` with the model's face type (any size: they are resized
            to the model's resolution and the result back).
        batch: faces per model call.

    Returns:
        ``(rgb, mask)``: ``(N, S, S, 3)`` float32 swapped faces in [0, 1] and ``(N, S, S)`` float32
        learned masks (ones without a mask head), at the crops' size ``S``.

    Raises:
        ConfigError: crops of another face type than the model's.
    """
    card = model.card
    wrong = {c.aligned.face_type for c in crops} - {card.face_type}
    if wrong:
        raise ConfigError(f"the crops are {', '.join(sorted(wrong))} faces but the model was trained on "
                          f"{card.face_type} faces; detect with face_type {card.face_type!r} (or connect the model)")
    images = crops_array(crops)
    size = images.shape[1]
    x = np.clip(_resize(images, card.resolution), 0.0, 1.0).astype(np.float32)
    rgbs, masks = [], []
    for start in range(0, len(x), max(1, batch)):
        rgb, mask = model.runner.swap(x[start:start + batch])
        rgbs.append(rgb)
        masks.append(mask)
    rgb = np.clip(_resize(np.concatenate(rgbs), size), 0.0, 1.0).astype(np.float32)
    mask = np.clip(_resize(np.concatenate(masks), size), 0.0, 1.0).astype(np.float32)
    return rgb, mask


def _broadcast(batch: np.ndarray, n: int, what: str) -> np.ndarray:
    if batch.shape[0] == n:
        return batch
    if batch.shape[0] == 1:
        return np.repeat(batch, n, axis=0)
    raise ConfigError(f"{what} has {batch.shape[0]} items but {n} are needed (or 1, used for all)")


def match_colors(method: str, sources: np.ndarray, targets: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
    """Colour-match each swapped crop to its plate crop (:func:`~vfxswap.convert.color.match_color`).

    Args:
        method: a colour method name (``rct``, ``lct``, ``mkl``, ``idt``, ``sot``, ``hist``, ``none``).
        sources: ``(N, S, S, 3)`` float32 swapped faces in [0, 1].
        targets: ``(N, S, S, 3)`` or ``(1, S, S, 3)`` plate faces in the same crops.
        masks: ``(N, S, S)`` or ``(1, S, S)`` float masks whose ``> 0.5`` pixels are measured; ``None``:
            the whole crop.

    Returns:
        ``(N, S, S, 3)`` float32 in [0, 1].
    """
    from .convert.color import match_color

    sources = _check_batch(sources, "the crops")[..., :3].astype(np.float32, copy=False)
    n = sources.shape[0]
    targets = _broadcast(_check_batch(targets, "the target crops")[..., :3].astype(np.float32, copy=False), n,
                         "the target crops")
    if masks is None:
        masks = np.ones(sources.shape[:3], np.float32)
    masks = _broadcast(np.asarray(masks, np.float32), n, "the masks")
    if targets.shape[1:3] != sources.shape[1:3] or masks.shape[1:3] != sources.shape[1:3]:
        raise ConfigError(f"crops {sources.shape[1:3]}, target crops {targets.shape[1:3]} and masks "
                          f"{masks.shape[1:3]} must have one size")
    return np.stack([match_color(method, np.ascontiguousarray(sources[i]), np.ascontiguousarray(targets[i]), masks[i])
                     for i in range(n)])


def composite_faces(images: np.ndarray, crops: Sequence[FaceCrop], swapped: np.ndarray,
                    masks: np.ndarray | None = None, *, blend: str = "feather", erode: int = 0,
                    feather: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Blend swapped crops back into their images.

    Args:
        images: ``(B, H, W, 3)`` float32 plate batch (display-referred [0, 1]).
        crops: where each face sits (:func:`detect_faces`); ``crop.frame`` indexes ``images``.
        swapped: ``(N, S', S', 3)`` float32 faces, one per crop, in the crops' geometry at any size.
        masks: ``(N, S', S')`` float masks in [0, 1]; ``None``: the landmark hulls.
        blend: a blend method (``feather``, ``poisson``, ``laplacian``).
        erode, feather: crop pixels to erode (> 0) / dilate (< 0) the masks by, and their soft edge.

    Returns:
        ``(images, mattes)``: ``(B, H, W, 3)`` float32 composites and ``(B, H, W)`` float32 mattes.
        Images without a face are returned unchanged.
    """
    from .convert.blend import composite, matte
    from .faces.align import face_from_frame, frame_from_face
    from .faces.geometry import transform_points
    from .faces.masks import erode_dilate, feather_mask, hull_mask

    if feather < 0:
        raise ConfigError(f"feather must be >= 0 crop pixels, got {feather}")
    images = _check_batch(images, "the images")[..., :3]
    swapped = _check_batch(swapped, "the swapped crops")[..., :3].astype(np.float32, copy=False)
    if len(crops) != swapped.shape[0]:
        raise ConfigError(f"{swapped.shape[0]} swapped crops for {len(crops)} faces; connect the crops made "
                          "from these faces")
    size = swapped.shape[1]
    if masks is not None:
        masks = _broadcast(np.asarray(masks, np.float32), len(crops), "the masks")
        if masks.shape[1:] != (size, size):
            raise ConfigError(f"masks are {masks.shape[1:]} but the swapped crops {size}x{size}")
    out = np.array(images, dtype=np.float32, order="C", copy=True)
    placed: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for i, crop in enumerate(crops):
        if not 0 <= crop.frame < out.shape[0]:
            raise ConfigError(f"face {i} belongs to image {crop.frame} but the batch has {out.shape[0]} images")
        a = crop.aligned
        m = a.face_from_frame if size == a.size else face_from_frame(a.face.landmarks, size, a.face_type)
        if masks is None:
            mask = hull_mask(transform_points(m, a.face.landmarks), size)
        else:
            mask = np.clip(masks[i], 0.0, 1.0)
        mask = feather_mask(erode_dilate(np.ascontiguousarray(mask), int(erode)), int(feather)).astype(np.float32)
        inverse = frame_from_face(m)
        composite(out[crop.frame], np.ascontiguousarray(swapped[i]), mask, inverse, method=blend)
        placed.setdefault(crop.frame, []).append((mask, inverse))
    mattes = np.stack([matte(out.shape[1:3], placed.get(b, [])) for b in range(out.shape[0])])
    return out, mattes


# -------------------------------------------------------------------------------------- sequences
def load_display_images(path: str | os.PathLike, view, *, frames: str | None = None,
                        start_frame: int = 1001) -> tuple[np.ndarray, list[int]]:
    """Read a sequence (or movie) as display-referred images through an OCIO view.

    Args:
        path: sequence pattern (``shot.####.exr``), folder, movie or image.
        view: a :class:`~vfxswap.io.display_view.DisplayView` (the files' colour space and the
            display and view to see them through).
        frames: frame-range expression (``1001-1010``); ``None``: all.
        start_frame: number of a movie's first frame.

    Returns:
        ``(images, numbers)``: ``(B, H, W, 3)`` float32 in [0, 1] and each image's frame number.

    Raises:
        MediaError: unreadable files, no frame in ``frames``, or frames of different sizes.
    """
    from .convert.api import frame_number
    from .io import open_source, parse_frames

    wanted = set(parse_frames(frames)) if frames else None
    images, numbers = [], []
    with open_source(path) as src:
        info = src.info
        offset = start_frame if info.kind == "movie" else 0  # frame number - Frame.index
        for frame in src.frames(start=max(0, min(wanted) - offset) if wanted else None):
            n = frame_number(frame, info.kind, start_frame)
            if wanted is not None and n not in wanted:
                if n > max(wanted):
                    break
                continue
            if images and frame.image.shape != images[0].shape:
                raise MediaError(f"{frame.source or path}: frame {n} is {frame.image.shape[1]}x{frame.image.shape[0]}, "
                                 f"the first {images[0].shape[1]}x{images[0].shape[0]}; a batch needs one size")
            images.append(view.to_display(frame.image))
            numbers.append(n)
    if not images:
        raise MediaError(f"no frames {frames} in {path} ({info.frame_count} frames from {info.first_frame})")
    return np.stack(images), numbers


def save_display_images(images: np.ndarray, pattern: str | os.PathLike, view, *, first_frame: int = 1001,
                        fps: float = 24.0, bit_depth: int = 16) -> list[str]:
    """Write display-referred images as a numbered sequence in a scene colour space (inverse view).

    Each file is written to a temporary name and renamed into place.

    Args:
        images: ``(B, H, W, 3)`` float32 display-referred RGB in [0, 1].
        pattern: an EXR sequence pattern, ``out.####.exr``.
        view: the :class:`~vfxswap.io.display_view.DisplayView` to invert (``view.colorspace`` is
            what the files hold).
        first_frame: number of the first image.
        fps: stored as the files' frame rate (23.976 is read as 24000/1001).
        bit_depth: EXR: 16 (half) or 32 (float).

    Returns:
        The paths written.
    """
    from .io.sequences import SequenceWriter
    from .types import VideoInfo

    if not os.fspath(pattern).lower().endswith(".exr"):
        raise ConfigError(f"{os.fspath(pattern)}: scene-referred images are written as EXR; use a pattern such "
                          "as out.####.exr")
    images = _check_batch(images, "the images")
    b, h, w = images.shape[:3]
    from .io.frames import parse_rate

    rate = parse_rate(fps)  # 23.976 -> 24000/1001
    info = VideoInfo(path=os.fspath(pattern), kind="sequence", width=w, height=h, fps=rate, time_base=1 / rate,
                     frame_count=b, first_frame=first_frame, pix_fmt="rgbf32", bit_depth=32, codec="exr")
    paths = []
    with SequenceWriter(os.fspath(pattern), info, bit_depth=bit_depth) as writer:
        for i in range(b):
            scene = view.from_display(np.ascontiguousarray(images[i, :, :, :3], dtype=np.float32))
            paths.append(writer.write(Frame(image=scene, index=first_frame + i, color_space=view.colorspace)))
    return paths
