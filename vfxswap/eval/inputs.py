"""The inputs of a shot evaluation: PLATE, SWAPPED, the matte and the patches, read frame by frame.

Frames are matched by number: a movie's frame ``i`` is ``start_frame + i`` (default 1001), a
sequence keeps its file numbers. A swapped *movie* made with ``convert --frames A-B`` holds only
those frames; its settings file (``NAME.vfxswap.json`` beside it) says which, and also names the
matte, the patches folder, the start frame and the model, so :func:`resolve_spec` finds them
itself. Explicit arguments win over the settings file.

A frame's mask (where faces were swapped) is the matte pass, else the patches' learned masks placed
by their ``frame_from_face``, else the region where SWAPPED differs from PLATE.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import MediaError
from ..io import open_source, parse_frames
from ..io.colorspace import to_display_uint8
from ..io.writer import settings_file
from ..types import Frame
from . import metrics

#: Smallest mask region counted as a face, as a fraction of the frame's area (and at least 64 px).
MIN_REGION = 1e-4
#: Difference (luma code values in [0, 1]) above which SWAPPED counts as changed (no matte, no patches).
DIFF_THRESHOLD = 0.04


@dataclasses.dataclass(frozen=True)
class ShotSpec:
    """What to evaluate, resolved.

    Attributes:
        plate, swapped: the plate and the converter's output (movies, sequences or folders).
        matte: the blend-mask pass (movie or sequence), or ``None``.
        patches: the ``--patches`` folder (``patches.jsonl`` + RGBA crops), or ``None``.
        frames: the frame numbers to evaluate, or ``None`` for every frame of SWAPPED.
        start_frame: number of a movie's first frame.
        swapped_numbers: numbers of a swapped/matte *movie*'s frames in order (from its settings
            ``frames``), or ``None`` for ``start_frame + i``.
        model: the model folder named by the settings file or the caller, or ``None``.
        settings: the convert settings file's contents (``NAME.vfxswap.json``), or ``None``.
    """

    plate: str
    swapped: str
    matte: str | None = None
    patches: str | None = None
    frames: tuple[int, ...] | None = None
    start_frame: int = 1001
    swapped_numbers: tuple[int, ...] | None = None
    model: str | None = None
    settings: dict[str, Any] | None = None


def read_run_settings(swapped: str | os.PathLike) -> tuple[dict[str, Any] | None, Path]:
    """The convert settings written beside ``swapped`` (``NAME.vfxswap.json``) and that file's path.

    Returns:
        ``(settings or None when there is no file, path)``.

    Raises:
        MediaError: the file exists but is not a vfxswap settings JSON.
    """
    path = settings_file(swapped)
    if not path.is_file():
        return None, path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MediaError(f"cannot read the convert settings {path} ({exc}); delete it or pass --matte, "
                         f"--patches and --frames yourself") from None
    if not isinstance(data, dict) or not isinstance(data.get("settings", {}), dict):
        raise MediaError(f"{path} is not a vfxswap settings file (no 'settings' object)")
    return data, path


def _settings_path(value: str | None, base: Path) -> str | None:
    """A path from a settings file: as written when it exists from here, else relative to the file."""
    if not value:
        return None
    if os.path.isabs(value) or os.path.exists(value) or _pattern_exists(value):
        return value
    return str(base / value)


def _pattern_exists(path: str) -> bool:
    folder = os.path.dirname(path) or "."
    return ("#" in path or "%" in path or "@" in path) and os.path.isdir(folder)


def resolve_spec(plate: str | os.PathLike, swapped: str | os.PathLike, *, matte: str | None = None,
                 patches: str | None = None, frames: str | None = None, start_frame: int | None = None,
                 model: str | None = None) -> ShotSpec:
    """Fill in a :class:`ShotSpec` from the arguments and the swapped output's settings file.

    Raises:
        ConfigError: a bad ``frames`` expression.
        MediaError: an unreadable settings file.
    """
    data, path = read_run_settings(swapped)
    settings = (data or {}).get("settings", {})
    base = path.parent
    if matte is None:
        matte = _settings_path(settings.get("matte"), base)
    if patches is None:
        patches = _settings_path(settings.get("patches"), base)
    if start_frame is None:
        start_frame = int(settings.get("start_frame") or 1001)
    if model is None and data and data.get("model"):
        model = _settings_path(str(data["model"]), base)
    written = settings.get("frames")
    numbers = tuple(parse_frames(written)) if written else None
    return ShotSpec(plate=os.fspath(plate), swapped=os.fspath(swapped), matte=matte, patches=patches,
                    frames=tuple(parse_frames(frames)) if frames else None, start_frame=start_frame,
                    swapped_numbers=numbers, model=model, settings=data)


# ----------------------------------------------------------------------------------------- patches
@dataclasses.dataclass(frozen=True)
class Patch:
    """One line of ``patches.jsonl``: a swapped face's crop and where the converter placed it."""

    frame: int
    track: int | None
    name: str
    size: int
    frame_from_face: np.ndarray  # (2, 3) crop pixels -> frame pixels


def read_patches(folder: str | os.PathLike) -> dict[int, list[Patch]]:
    """``patches.jsonl`` of a ``--patches`` folder, by frame number.

    Raises:
        MediaError: no ``patches.jsonl``, or a malformed line (the message names it).
    """
    path = Path(folder) / "patches.jsonl"
    if not path.is_file():
        raise MediaError(f"no patches.jsonl in {folder}: pass the folder convert --patches wrote, "
                         f"or leave --patches out")
    out: dict[int, list[Patch]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            m = np.asarray(d["frame_from_face"], np.float64)
            if m.shape != (2, 3):
                raise ValueError(f"frame_from_face has shape {m.shape}")
            p = Patch(frame=int(d["frame"]), track=d.get("track"), name=str(d["patch"]), size=int(d["size"]),
                      frame_from_face=m)
        except (ValueError, KeyError, TypeError) as exc:
            raise MediaError(f"{path} line {number} is malformed ({exc}); re-run convert --patches") from None
        out.setdefault(p.frame, []).append(p)
    return out


def patch_tracks(patches: dict[int, list[Patch]],
                 numbers: set[int] | None = None) -> dict[int | None, list[list[Patch]]]:
    """Each track's patches as runs of consecutive frame numbers (only ``numbers`` when given)."""
    by_track: dict[int | None, list[Patch]] = {}
    for n in sorted(patches):
        if numbers is None or n in numbers:
            for p in patches[n]:
                by_track.setdefault(p.track, []).append(p)
    runs: dict[int | None, list[list[Patch]]] = {}
    for track, items in by_track.items():
        current: list[Patch] = []
        for p in items:
            if current and p.frame != current[-1].frame + 1:
                runs.setdefault(track, []).append(current)
                current = []
            current.append(p)
        if current:
            runs.setdefault(track, []).append(current)
    return runs


def patches_matte(patches: list[Patch], folder: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` float32 mask of a frame from its patches: each crop's alpha (the model's learned
    mask) placed by its ``frame_from_face``, combined with max. An approximation of the matte (the
    converter also limits the mask to the landmark hull and feathers it)."""
    from ..convert.blend import matte
    from ..io.png import check_png_file

    placed = []
    for p in patches:
        check_png_file(Path(folder) / p.name)  # a clean error, not libpng's own words on stderr
        rgba = cv2.imread(str(Path(folder) / p.name), cv2.IMREAD_UNCHANGED)
        if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
            raise MediaError(f"patch {Path(folder) / p.name} is missing or not an RGBA PNG; re-run convert --patches")
        alpha = rgba[..., 3].astype(np.float32) / (65535.0 if rgba.dtype == np.uint16 else 255.0)
        placed.append((alpha, p.frame_from_face))
    return matte(shape, placed)


def difference_mask(plate: np.ndarray, swapped: np.ndarray, *, threshold: float = DIFF_THRESHOLD) -> np.ndarray:
    """``(H, W)`` float32 0/1 mask of where ``swapped`` differs from ``plate`` (no matte, no patches).

    The luma difference is blurred (sigma 2 px, so compression noise does not count), thresholded,
    closed and hole-filled; regions under :data:`MIN_REGION` of the frame are dropped.
    """
    diff = np.abs(metrics.luma(swapped) - metrics.luma(plate))
    diff = cv2.GaussianBlur(diff, (0, 0), 2.0)
    binary = (diff > threshold).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, k)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros(binary.shape, np.uint8)
    least = max(64.0, MIN_REGION * binary.size)
    for c in contours:
        if cv2.contourArea(c) >= least:
            cv2.drawContours(out, [c], -1, 1, thickness=cv2.FILLED)
    return out.astype(np.float32)


# ------------------------------------------------------------------------------------------ reading
@dataclasses.dataclass(frozen=True, repr=False)
class ShotFrame:
    """One frame of the shot: ``plate`` and ``swapped`` ``(H, W, 3)`` uint8 sRGB, ``mask`` ``(H, W)``
    float32 [0, 1], ``mask_source`` (``matte``, ``patches`` or ``difference``), ``patches``."""

    number: int
    plate: np.ndarray
    swapped: np.ndarray
    mask: np.ndarray
    mask_source: str
    patches: tuple[Patch, ...] = ()

    def __repr__(self) -> str:
        return f"ShotFrame({self.number}, {self.plate.shape}, mask={self.mask_source})"


def _mask_image(frame: Frame) -> np.ndarray:
    """A matte frame's first channel as float32 [0, 1] (code values, no colour conversion)."""
    m = frame.image[..., 0]
    if m.dtype == np.uint8:
        return m.astype(np.float32) / 255.0
    if m.dtype == np.uint16:
        return m.astype(np.float32) / 65535.0
    return np.clip(m, 0.0, 1.0).astype(np.float32)


def _numbered(frames: Iterator[Frame], kind: str, numbers: tuple[int, ...] | None,
              start_frame: int) -> Iterator[tuple[int, Frame]]:
    """``(number, frame)``: a movie's frames numbered from ``numbers`` or ``start_frame``; a
    sequence's frames keep their own numbers."""
    for frame in frames:
        if kind != "movie":
            yield frame.index, frame
        elif numbers is not None:
            if frame.index >= len(numbers):
                return
            yield numbers[frame.index], frame
        else:
            yield start_frame + frame.index, frame


class _Cursor:
    """Forward-only lookup of ``(number, frame)`` pairs by increasing number."""

    def __init__(self, items: Iterator[tuple[int, Frame]]) -> None:
        self._items = items
        self._head: tuple[int, Frame] | None = None

    def get(self, number: int) -> Frame | None:
        while True:
            if self._head is None:
                self._head = next(self._items, None)
                if self._head is None:
                    return None
            n, frame = self._head
            if n == number:
                return frame
            if n > number:
                return None
            self._head = None


def iter_shot(spec: ShotSpec, numbers: set[int] | None = None) -> Iterator[ShotFrame]:
    """The shot's frames in order: SWAPPED's frames (those in ``spec.frames`` and ``numbers`` when
    given), each with the plate frame of the same number and its mask.

    Raises:
        MediaError: an unreadable input, a swapped frame without a plate frame, different frame sizes,
            or a swapped frame without its matte frame.
    """
    patches = read_patches(spec.patches) if spec.patches else {}
    wanted = set(spec.frames) if spec.frames is not None else None
    if numbers is not None:
        wanted = numbers if wanted is None else wanted & numbers
    with open_source(spec.plate) as plate_src, open_source(spec.swapped) as swap_src:
        matte_src = open_source(spec.matte) if spec.matte else None
        try:
            pi, si = plate_src.info, swap_src.info
            if (pi.width, pi.height) != (si.width, si.height):
                raise MediaError(f"{spec.swapped} is {si.width}x{si.height} but the plate {spec.plate} is "
                                 f"{pi.width}x{pi.height}: evaluate a swap against its own plate")
            listed = spec.swapped_numbers
            swap_numbers = listed if listed and len(listed) == si.frame_count else None
            plate = _Cursor(_numbered(plate_src.frames(), pi.kind, None, spec.start_frame))
            matte = (_Cursor(_numbered(matte_src.frames(), matte_src.info.kind, swap_numbers, spec.start_frame))
                     if matte_src is not None else None)
            for number, frame in _numbered(swap_src.frames(), si.kind, swap_numbers, spec.start_frame):
                if wanted is not None and number not in wanted:
                    continue
                pf = plate.get(number)
                if pf is None:
                    raise MediaError(f"frame {number} of {spec.swapped} has no plate frame in {spec.plate}; "
                                     f"check --start-frame (movies are numbered from it, default 1001)")
                plate_img, swap_img = to_display_uint8(pf), to_display_uint8(frame)
                frame_patches = tuple(patches.get(number, ()))
                if matte is not None:
                    mf = matte.get(number)
                    if mf is None:
                        raise MediaError(f"frame {number} has no frame in the matte {spec.matte}; "
                                         f"pass the matte convert wrote with this output")
                    mask, source = _mask_image(mf), "matte"
                elif frame_patches:
                    mask, source = patches_matte(list(frame_patches), spec.patches, plate_img.shape[:2]), "patches"
                elif spec.patches:
                    mask, source = np.zeros(plate_img.shape[:2], np.float32), "patches"
                else:
                    mask, source = difference_mask(plate_img, swap_img), "difference"
                yield ShotFrame(number=number, plate=plate_img, swapped=swap_img, mask=mask, mask_source=source,
                                patches=frame_patches)
        finally:
            if matte_src is not None:
                matte_src.close()
