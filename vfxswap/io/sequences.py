"""Image sequences and folders of stills, read with OpenImageIO.

A *sequence* is a set of numbered files named by a pattern: ``shot.%04d.exr``, ``shot.####.png`` or
``shot.@@@@.dpx`` (the count of ``#``/``@`` is the padding). A folder whose image files all share one
numbered pattern is read as a sequence; any other folder of images is read as *stills*, sorted by
name. Images come back as ``(H, W, 3)`` RGB: 8-bit files as ``uint8``, 10/12/16-bit files (DPX,
TIFF, PNG) as ``uint16`` scaled to the full 16-bit range, half/float files (EXR) as scene-linear
``float32``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import TracebackType
from typing import Literal

import numpy as np
import OpenImageIO as oiio

from ..errors import MediaError
from ..types import Frame, VideoInfo

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = ("exr", "dpx", "tif", "tiff", "png", "jpg", "jpeg", "bmp", "webp")
DEFAULT_FPS = Fraction(24)

# A frame-number token in a file name: %04d / %d, #### or @@@@ (the last one in the name counts).
_TOKEN_RE = re.compile(r"%(0\d+)?d|#+|@+")
# A file stem split around its last run of digits.
_NUMBERED_RE = re.compile(r"(.*?)([0-9]+)([^0-9]*)")
_MAX_GAPS_LISTED = 5


def _one_line(reason: object) -> str:
    """``reason`` as text on one line (OpenImageIO messages may hold newlines)."""
    return " ".join(str(reason).split())


def _extension(name: str) -> str:
    """Lower-case extension of ``name`` without the dot."""
    return os.path.splitext(name)[1][1:].lower()


def is_image_path(path: str) -> bool:
    """Whether ``path`` names a file type this module reads (by extension)."""
    return _extension(path) in IMAGE_EXTENSIONS


def is_sequence_pattern(path: str) -> bool:
    """Whether the file name of ``path`` holds a frame-number token (``%04d``, ``####``, ``@@@@``)."""
    return _TOKEN_RE.search(os.path.basename(path)) is not None


@dataclass(frozen=True)
class _Pattern:
    """A parsed sequence pattern: ``folder/prefix<number padded to pad digits>suffix``."""

    folder: str
    prefix: str
    pad: int
    suffix: str

    def number(self, name: str) -> int | None:
        """The frame number of file ``name`` if it belongs to the sequence, else ``None``."""
        if not (name.startswith(self.prefix) and name.endswith(self.suffix)):
            return None
        digits = name[len(self.prefix):len(name) - len(self.suffix)]
        if not digits.isascii() or not digits.isdigit() or f"{int(digits):0{self.pad}d}" != digits:
            return None
        return int(digits)


def _parse_pattern(pattern: str) -> _Pattern:
    folder, name = os.path.split(pattern)
    token = list(_TOKEN_RE.finditer(name))[-1]
    text = token.group(0)
    pad = int(token.group(1)) if token.group(1) else 1 if text.startswith("%") else len(text)
    return _Pattern(folder or ".", name[:token.start()], pad, name[token.end():])


def _list_images(folder: str) -> list[str]:
    """Names of the image files directly inside ``folder`` (hidden files such as ``._x.exr`` skipped)."""
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in entries
                    if not e.name.startswith(".") and is_image_path(e.name) and e.is_file()]
    except OSError as exc:
        raise MediaError(f"cannot list {folder}: {_one_line(exc.strerror or exc)}") from exc


def _missing_ranges(numbers: Sequence[int]) -> list[str]:
    """The gaps in sorted ``numbers`` as ``"A-B"`` / ``"A"`` strings."""
    gaps = []
    for a, b in zip(numbers, numbers[1:]):
        if b - a > 1:
            gaps.append(f"{a + 1}" if b - a == 2 else f"{a + 1}-{b - 1}")
    return gaps


def _warn_gaps(source: str, numbers: Sequence[int]) -> None:
    gaps = _missing_ranges(numbers)
    if gaps:
        more = f" and {len(gaps) - _MAX_GAPS_LISTED} more gaps" if len(gaps) > _MAX_GAPS_LISTED else ""
        logger.warning("%s has missing frames: %s%s", source, ", ".join(gaps[:_MAX_GAPS_LISTED]), more)


def _match_pattern(pattern: str) -> list[tuple[int, str]]:
    """``(number, path)`` of the files of a sequence pattern, sorted by number."""
    if not is_image_path(pattern):
        raise MediaError(f"{pattern} is not an image-sequence pattern of a supported type "
                         f"(supported: {', '.join(IMAGE_EXTENSIONS)})")
    parsed = _parse_pattern(pattern)
    if not os.path.isdir(parsed.folder):
        raise MediaError(f"no such folder: {parsed.folder} (from sequence pattern {pattern})")
    found = []
    for name in _list_images(parsed.folder):
        number = parsed.number(name)
        if number is not None:
            found.append((number, os.path.join(os.path.dirname(pattern), name)))
    if not found:
        raise MediaError(f"no files match the sequence pattern {pattern}; check the name and the "
                         f"padding (#### and %04d mean 4 digits)")
    found.sort()
    return found


def _folder_pattern(names: Sequence[str]) -> _Pattern | None:
    """The one numbered pattern shared by all ``names``, or ``None`` if they do not share one."""
    keys = set()
    digits = []
    for name in names:
        stem, dot_ext = os.path.splitext(name)
        match = _NUMBERED_RE.fullmatch(stem)
        if match is None:
            return None
        keys.add((match.group(1), match.group(3) + dot_ext))
        digits.append(match.group(2))
        if len(keys) > 1:
            return None
    pad = min(len(d) for d in digits)
    if any(f"{int(d):0{pad}d}" != d for d in digits):
        return None
    prefix, suffix = keys.pop()
    return _Pattern("", prefix, pad, suffix)


@dataclass(frozen=True)
class _Listing:
    """The files of an image source, in reading order, with their frame numbers."""

    kind: Literal["sequence", "stills"]
    items: list[tuple[int, str]]


def _scan(path: str) -> _Listing:
    """List the images of a sequence pattern, a folder or a single image file."""
    if os.path.isfile(path):
        return _Listing("stills", [(0, path)])
    if not os.path.isdir(path):
        items = _match_pattern(path)
        _warn_gaps(path, [n for n, _ in items])
        return _Listing("sequence", items)
    names = _list_images(path)
    if not names:
        raise MediaError(f"no images in {path} (looked for: {', '.join(IMAGE_EXTENSIONS)}); "
                         "pass a movie, a sequence pattern or a folder of images")
    pattern = _folder_pattern(names)
    if pattern is None:
        return _Listing("stills", [(i, os.path.join(path, n)) for i, n in enumerate(sorted(names))])
    numbered = ((pattern.number(n), os.path.join(path, n)) for n in names)
    items = sorted((number, file) for number, file in numbered if number is not None)
    _warn_gaps(path, [n for n, _ in items])
    return _Listing("sequence", items)


def _read_format(spec: oiio.ImageSpec) -> str:
    """The OIIO pixel type to read a file's pixels as: ``uint8``, ``uint16`` or ``float``."""
    base = spec.format.basetype
    if base in (oiio.UINT8, oiio.INT8):
        return "uint8"
    if base in (oiio.HALF, oiio.FLOAT, oiio.DOUBLE):
        return "float"
    return "uint16"


def _fps(spec: oiio.ImageSpec) -> Fraction:
    """The file's ``FramesPerSecond`` attribute (EXR), else 24."""
    value = spec.getattribute("FramesPerSecond")
    try:
        fps = Fraction(*value) if isinstance(value, tuple) else Fraction(value).limit_denominator(1001)
    except (TypeError, ValueError, ZeroDivisionError):
        return DEFAULT_FPS
    return fps if fps > 0 else DEFAULT_FPS


@functools.lru_cache(maxsize=1)
def _read_config() -> oiio.ImageSpec:
    """Reader hints: keep the colour of files with unassociated alpha (PNG, TIFF) as stored."""
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    return config


def _open_image(path: str) -> oiio.ImageInput:
    inp = oiio.ImageInput.open(path, _read_config())
    if inp is None:
        reason = oiio.geterror() or "unknown format"
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise MediaError(f"{path} is empty (0 bytes); re-copy or re-render it")
        raise MediaError(f"cannot read image {path}: {_one_line(reason)}; is the file complete?")
    return inp


@contextlib.contextmanager
def _image_errors(path: str) -> Iterator[None]:
    """Turn whatever OpenImageIO raises (assorted exception types) into a one-line MediaError."""
    try:
        yield
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(f"cannot read image {path}: {_one_line(exc)}; is the file complete?") from exc


def _read_header(path: str) -> oiio.ImageSpec:
    """The spec (size, channels, pixel type, attributes) of an image file; pixels are not read."""
    with _image_errors(path):
        inp = _open_image(path)
        try:
            return inp.spec()
        finally:
            inp.close()


def read_image(path: str) -> tuple[np.ndarray, str]:
    """Read one image file as RGB.

    Args:
        path: an image file OpenImageIO reads.

    Returns:
        ``(image, color_space)``: ``image`` is ``(H, W, 3)`` C-contiguous RGB — ``uint8`` for 8-bit
        files, ``uint16`` (full 16-bit range) for 10/12/16-bit files, ``float32`` for half/float
        files; grey images are replicated to 3 channels and alpha (or any channel after the third)
        is dropped. ``color_space`` is ``"linear"`` for float images, else ``"srgb"``.

    Raises:
        MediaError: the file is missing, truncated or not an image OpenImageIO reads.
    """
    with _image_errors(path):
        inp = _open_image(path)
        try:
            spec = inp.spec()
            fmt = _read_format(spec)
            channels = 3 if spec.nchannels >= 3 else 1
            pixels = inp.read_image(0, 0, 0, channels, fmt)
            if pixels is None:
                raise MediaError(f"cannot read image {path}: {_one_line(inp.geterror())}; "
                                 "is the file complete?")
        finally:
            inp.close()
    if pixels.ndim != 3:
        raise MediaError(f"cannot read image {path}: {pixels.ndim - 1}-D images are not supported")
    if channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels), "linear" if fmt == "float" else "srgb"


def _info(path: str, listing: _Listing) -> VideoInfo:
    """Describe an image source from the header of its first file."""
    first = listing.items[0][1]
    spec = _read_header(first)
    fmt = _read_format(spec)
    bits = spec.get_int_attribute("oiio:BitsPerSample", 0) or 8 * spec.format.size()
    fps = _fps(spec)
    return VideoInfo(
        path=path,
        kind=listing.kind,
        width=int(spec.width),
        height=int(spec.height),
        fps=fps,
        time_base=1 / fps,
        frame_count=len(listing.items),
        first_frame=listing.items[0][0] if listing.kind == "sequence" else 0,
        pix_fmt={"uint8": "rgb24", "uint16": "rgb48", "float": "rgbf32"}[fmt],
        bit_depth=int(bits),
        codec=_extension(first),
    )


def probe_images(path: str) -> VideoInfo:
    """Describe a sequence pattern, a folder of images or one image from the first file's header.

    Args:
        path: a sequence pattern (``shot.%04d.exr``, ``shot.####.png``, ``shot.@@@@.dpx``), a
            folder (one numbered pattern: a sequence; anything else: stills sorted by name) or one
            image file (a single still).

    Returns:
        :class:`VideoInfo` with ``kind`` ``"sequence"`` or ``"stills"``, ``frame_count`` the files
        present, ``first_frame`` the first number (sequences) or 0 (stills), ``fps`` from the EXR
        ``FramesPerSecond`` attribute or 24.

    Raises:
        MediaError: no files match, the folder holds no images, or the first file is unreadable.
    """
    return _info(path, _scan(path))


class ImageSource:
    """Frames of an image sequence, a folder of stills or one image; a context manager.

    Attributes:
        info: what :func:`probe_images` reports for the source.
    """

    def __init__(self, path: str) -> None:
        """List the files of ``path`` and read the first header (see :func:`probe_images`)."""
        self._path = path
        self._listing = _scan(path)
        self.info = _info(path, self._listing)
        self._closed = False

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Mark the source closed (files are opened one at a time while reading)."""
        self._closed = True

    def frames(self, start: int | None = None) -> Iterator[Frame]:
        """Read the images in order.

        Args:
            start: first frame number to yield (``Frame.index >= start``); files before it are not
                opened. ``None`` yields all.

        Yields:
            :class:`Frame` with ``image`` as :func:`read_image` returns it, ``index`` the file's
            frame number (sequences) or its position from 0 (stills), ``source`` the file path.

        Raises:
            MediaError: the source is closed or a file is unreadable (the message names it).
        """
        if self._closed:
            raise MediaError(f"{self._path} is closed; open it again with open_source()")
        return self._read(-1 if start is None else start)

    def _read(self, start: int) -> Iterator[Frame]:
        for index, path in self._listing.items:
            if index < start:
                continue
            image, color_space = read_image(path)
            yield Frame(image=image, index=index, color_space=color_space, source=path)
