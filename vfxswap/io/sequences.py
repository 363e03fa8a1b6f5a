"""Image sequences and folders of stills, read and written with OpenImageIO.

A *sequence* is a set of numbered files named by a pattern: ``shot.%04d.exr``, ``shot.####.png`` or
``shot.@@@@.dpx`` (the count of ``#``/``@`` is the padding). A folder whose image files all share one
numbered pattern is read as a sequence; any other folder of images is read as *stills*, sorted by
name. Images come back as ``(H, W, 3)`` RGB: 8-bit files as ``uint8``, 10/12/16-bit files (DPX,
TIFF, PNG) as ``uint16`` scaled to the full 16-bit range, half/float files (EXR) as scene-linear
``float32``. :class:`SequenceWriter` writes frames back as a numbered sequence.
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

import cv2
import numpy as np
import OpenImageIO as oiio

from ..atomic import commit_temp, create_temp, prepare_folder, remove_quietly, write_error
from ..errors import ConfigError, MediaError, OutputError, one_line
from ..types import Frame, VideoInfo
from .png import check_png_file

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = ("exr", "dpx", "tif", "tiff", "png", "jpg", "jpeg", "bmp", "webp")
DEFAULT_FPS = Fraction(24)

# A frame-number token in a file name: %04d / %d, #### or @@@@ (the last one in the name counts).
_TOKEN_RE = re.compile(r"%(0\d+)?d|#+|@+")
# A file stem split around its last run of digits.
_NUMBERED_RE = re.compile(r"(.*?)([0-9]+)([^0-9]*)")
_MAX_GAPS_LISTED = 5


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
        raise MediaError(f"cannot list {folder}: {one_line(exc.strerror or exc)}") from exc


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
    if _extension(path) == "png":
        check_png_file(path)  # before libpng, which prints its own complaints on stderr
    inp = oiio.ImageInput.open(path, _read_config())
    if inp is None:
        reason = oiio.geterror() or "unknown format"
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise MediaError(f"{path} is empty (0 bytes); re-copy or re-render it")
        raise MediaError(f"cannot read image {path}: {one_line(reason)}; is the file complete?")
    return inp


@contextlib.contextmanager
def _image_errors(path: str) -> Iterator[None]:
    """Turn whatever OpenImageIO raises (assorted exception types) into a one-line MediaError."""
    try:
        yield
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(f"cannot read image {path}: {one_line(exc)}; is the file complete?") from exc


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
                raise MediaError(f"cannot read image {path}: {one_line(inp.geterror())}; "
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

    @property
    def numbers(self) -> list[int]:
        """The ``Frame.index`` of every file, ascending (sequence numbers; positions for stills)."""
        return [index for index, _ in self._listing.items]

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


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

# Bits per channel each writable file type stores (defaults: see SequenceWriter._bits).
_WRITE_BITS: dict[str, tuple[int, ...]] = {
    "exr": (16, 32),  # half, float
    "dpx": (16, 10, 12, 8),
    "tif": (16, 8),
    "tiff": (16, 8),
    "png": (16, 8),
    "jpg": (8,),
    "jpeg": (8,),
    "bmp": (8,),
    "webp": (8,),
}
ALPHA_EXTENSIONS: tuple[str, ...] = ("exr", "png", "tif", "tiff", "dpx")  # files that hold RGBA
EXR_COMPRESSIONS: tuple[str, ...] = ("zip", "zips", "dwaa", "dwab", "piz", "rle", "none")
_LINEAR = "lin_rec709_srgb"  # what a float EXR holds when read back as color_space "linear"


def _resolve(color_space: str) -> str:
    """The OCIO colour space name behind a ``Frame.color_space`` (``linear``/``srgb`` are aliases)."""
    from .colorspace import _ALIASES

    return _ALIASES.get(color_space, color_space)


@functools.lru_cache(maxsize=16)
def _float_processor(source: str, target: str) -> object:
    """A cached float32 OpenColorIO processor between two colour spaces of the built-in config."""
    from .colorspace import OCIO_CONFIG, _config

    config = _config()
    for name in (source, target):
        if config.getColorSpace(_resolve(name)) is None:
            raise ConfigError(f"unknown colour space {name!r}; use 'linear', 'srgb' or a colour "
                              f"space of {OCIO_CONFIG} such as 'lin_rec709_srgb' or 'lin_ap1_scene'")
    return config.getProcessor(_resolve(source), _resolve(target)).getDefaultCPUProcessor()


def _convert_float(image: np.ndarray, source: str, target: str) -> np.ndarray:
    """``(H, W, 3)`` float32 ``image`` from colour space ``source`` to ``target`` (a new array)."""
    out = np.array(image, dtype=np.float32, order="C", copy=True)
    if _resolve(source) != _resolve(target):
        _float_processor(source, target).applyRGB(out)  # type: ignore[attr-defined]
    return out


def display_code_values(frame: Frame, bits: int) -> np.ndarray:
    """A frame's image as display-referred integer code values for an integer file or a movie.

    Args:
        frame: ``uint8``/``uint16`` display code values, or ``float32`` in ``frame.color_space``
            (``"srgb"``: display-encoded in [0, 1]; ``"linear"`` or an OCIO name: converted to
            sRGB-encoded Rec.709 with OpenColorIO's built-in CG config, no tone mapping).
        bits: 8 for a ``uint8`` result; anything larger for ``uint16`` (full 16-bit range).

    Returns:
        ``(H, W, 3)`` C-contiguous ``uint8`` in [0, 255] or ``uint16`` in [0, 65535]; 8 <-> 16 bit
        integer conversions use ``v * 257`` and ``round(v / 257)``. May be ``frame.image`` itself.

    Raises:
        ConfigError: a float frame's ``color_space`` is unknown to the config.
    """
    image = frame.image
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image) if bits <= 8 else image.astype(np.uint16) * np.uint16(257)
    if image.dtype == np.uint16:
        if bits > 8:
            return np.ascontiguousarray(image)
        return cv2.convertScaleAbs(np.ascontiguousarray(image), alpha=1.0 / 257.0)
    if frame.color_space not in ("srgb", "data"):
        from .colorspace import DISPLAY_SPACE

        image = _convert_float(image, frame.color_space, DISPLAY_SPACE)
    scale = 255.0 if bits <= 8 else 65535.0
    dtype = np.uint8 if bits <= 8 else np.uint16
    return (np.clip(image, 0.0, 1.0) * scale + 0.5).astype(dtype)


def _write_pixels(frame: Frame, extension: str, bits: int) -> tuple[np.ndarray, str]:
    """The array to hand OpenImageIO and the file's pixel type for a frame."""
    if extension == "exr":
        image = frame.image
        if image.dtype != np.float32:  # display code values -> scene-linear, the EXR convention
            scale = np.float32(255.0 if image.dtype == np.uint8 else 65535.0)
            image = image.astype(np.float32) / scale
            if frame.color_space != "data":
                image = _convert_float(image, frame.color_space, _LINEAR)
        elif frame.color_space == "srgb":  # display-encoded floats in [0, 1]
            image = _convert_float(image, "srgb", _LINEAR)
        return np.ascontiguousarray(image), "half" if bits == 16 else "float"
    pixels = display_code_values(frame, bits)
    return pixels, "uint8" if bits <= 8 else "uint16"


def with_alpha(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """``(H, W, 3)`` pixels plus ``alpha`` (float [0, 1], ``None`` = 0) in the same type: ``(H, W, 4)``."""
    height, width = pixels.shape[:2]
    a = np.zeros((height, width), np.float32) if alpha is None else np.clip(alpha, 0.0, 1.0)
    if pixels.dtype != np.float32:
        a = a * np.float32(np.iinfo(pixels.dtype).max) + np.float32(0.5)
    return np.dstack([pixels, a.astype(pixels.dtype)])


def _format_number(parsed: _Pattern, number: int) -> str:
    if number < 0:
        raise OutputError(f"cannot name frame {number} of a sequence: frame numbers must be >= 0")
    return f"{parsed.prefix}{number:0{parsed.pad}d}{parsed.suffix}"


_SHORT_WRITE = ("Write error", "could only write", "No space left", "write failed")


def _check_room_for_jpeg(path: str, pixels: np.ndarray) -> None:
    """Refuse a JPEG when the disk has less room than its raw pixels: libjpeg ends the whole
    process on a failed write instead of reporting it."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        stat = os.statvfs(folder)
    except OSError:
        return
    free = stat.f_bavail * stat.f_frsize
    if free < pixels.size * pixels.itemsize:
        raise OutputError(f"cannot write {path}: only {free} bytes free in {folder}; check free space")


class SequenceWriter:
    """Writes frames as a numbered image sequence with OpenImageIO; a context manager.

    Each frame goes to the file numbered ``frame.index + offset`` (frames are expected to carry
    their output number already: a sequence source keeps its numbering; map a movie's 0-based
    positions yourself, or pass ``offset``). Every file is written under an exclusive
    ``.tmp-RANDOM-NAME`` in the same folder, flushed to disk and renamed into place once complete, so
    a killed job or a full disk never leaves a half file under a final name (nor writes through a
    symlink there); the first failed write raises.

    File types and pixels:
        * ``exr``: half (``bit_depth=16``, default) or float (32), ``compression`` (``zip``
          default, ``dwaa``...). Float frames are written as they are (scene-linear for frames read
          from EXR; an OCIO working space such as ``lin_ap1_scene`` stays in it), except
          ``color_space="srgb"``; ``uint8``/``uint16`` frames and ``"srgb"`` floats are display
          values and are linearised (sRGB curve, Rec.709 primaries) so that the EXR reads back as
          ``color_space="linear"``.
        * ``png``/``tif``/``tiff``: 8 or 16 bits; ``dpx``: 8, 10, 12 or 16; ``jpg``/``bmp``/``webp``:
          8. Default: 8 for ``uint8`` frames, else the source's depth when the type stores it
          (a 10-bit source to DPX stays 10-bit), else 16. Float frames are converted to display
          code values (see :func:`display_code_values`).
        * ``alpha=True``: RGBA files (``exr``, ``png``, ``tif``, ``dpx``); the alpha channel is
          ``frame.alpha`` (0 where a frame has none), stored as is: RGB is not premultiplied by it.

    Attributes:
        pattern: the output pattern as given.
        info: the source's :class:`VideoInfo` (its ``fps`` is stored as the EXR
            ``FramesPerSecond`` attribute).
    """

    def __init__(self, pattern: str, info: VideoInfo, *, skip_existing: bool = False,
                 bit_depth: int | None = None, compression: str = "zip", offset: int = 0,
                 alpha: bool = False) -> None:
        """Check the pattern and create its folder.

        Args:
            pattern: ``out.####.exr``, ``out.%04d.png`` or ``out.@@@@.dpx``.
            info: the source's :class:`VideoInfo`.
            skip_existing: make :meth:`exists` report frames already on disk (to resume a render).
            bit_depth: bits per channel to store (see the class docstring); ``None`` picks.
            compression: EXR compression, one of :data:`EXR_COMPRESSIONS`.
            offset: added to ``frame.index`` to get the file number.
            alpha: write RGBA files with ``frame.alpha`` as the alpha channel.

        Raises:
            ConfigError: no frame-number token, an unsupported file type, bit depth or compression,
                or ``alpha`` for a file type without alpha.
            OutputError: the folder cannot be created or written.
        """
        if not isinstance(pattern, str) or not is_sequence_pattern(pattern):
            raise ConfigError(f"output sequence {pattern!r} has no frame-number token; use a "
                              "pattern such as out.####.exr or out.%04d.png")
        self._extension = _extension(pattern)
        if self._extension not in _WRITE_BITS:
            raise ConfigError(f"cannot write .{self._extension} sequences; use one of "
                              f"{', '.join(_WRITE_BITS)}")
        if alpha and self._extension not in ALPHA_EXTENSIONS:
            raise ConfigError(f".{self._extension} files have no alpha channel; write the matte as alpha "
                              f"into one of {', '.join(ALPHA_EXTENSIONS)}, or use --matte PATH")
        self._alpha = bool(alpha)
        allowed = _WRITE_BITS[self._extension]
        if bit_depth is not None and bit_depth not in allowed:
            raise ConfigError(f"bit_depth {bit_depth} is not stored by .{self._extension}; use one "
                              f"of {', '.join(map(str, sorted(allowed)))}")
        if compression not in EXR_COMPRESSIONS:
            raise ConfigError(f"unknown EXR compression {compression!r}; use one of "
                              f"{', '.join(EXR_COMPRESSIONS)}")
        self.pattern = pattern
        self.info = info
        self._parsed = _parse_pattern(pattern)
        self._bit_depth = bit_depth
        self._compression = compression
        self._skip_existing = bool(skip_existing)
        self._offset = int(offset)
        self._closed = False
        self.written = 0
        prepare_folder(self._parsed.folder, pattern)

    def __enter__(self) -> SequenceWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Finish (idempotent). Every written file is already complete under its final name."""
        self._closed = True

    def path(self, index: int) -> str:
        """The file a frame of index ``index`` is written to."""
        name = _format_number(self._parsed, index + self._offset)
        return os.path.join(os.path.dirname(self.pattern), name)

    def exists(self, index: int) -> bool:
        """Whether frame ``index`` may be skipped: ``skip_existing`` is on and its file is finished.

        A finished file is a regular file (not a symlink) that decodes whole at the writer's size
        with 3 channels (4 with ``alpha``); anything else (a truncated or zero-byte file left by a
        full disk, a link) is logged and written again. A killed write leaves only a ``.tmp-`` file.
        """
        if not self._skip_existing:
            return False
        path = self.path(index)
        if not os.path.lexists(path):
            return False
        problem = self._unfinished(path)
        if problem:
            logger.warning("rewriting %s: %s", path, problem)
        return not problem

    def _unfinished(self, path: str) -> str:
        """Why the file at ``path`` is not a finished frame, or ``""``."""
        if os.path.islink(path) or not os.path.isfile(path):
            return "not a regular file"
        try:
            with _image_errors(path):
                inp = _open_image(path)
                try:
                    spec = inp.spec()
                    pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
                finally:
                    inp.close()
        except MediaError as exc:
            return str(exc)
        if pixels is None:
            return "it does not decode (truncated?)"
        channels = 4 if self._alpha else 3
        if (spec.width, spec.height, spec.nchannels) != (self.info.width, self.info.height, channels):
            return (f"it is {spec.width}x{spec.height} with {spec.nchannels} channels, not "
                    f"{self.info.width}x{self.info.height} with {channels}")
        return ""

    def _bits(self, frame: Frame) -> int:
        if self._bit_depth is not None:
            return self._bit_depth
        allowed = _WRITE_BITS[self._extension]
        if self._extension == "exr":
            return 16
        if frame.image.dtype == np.uint8 or allowed == (8,):
            return 8
        return self.info.bit_depth if 8 < self.info.bit_depth in allowed else 16

    def _spec(self, pixels: np.ndarray, fmt: str, bits: int) -> oiio.ImageSpec:
        height, width, channels = pixels.shape
        spec = oiio.ImageSpec(width, height, channels, fmt)
        if channels == 4:
            spec.alpha_channel = 3
            spec.attribute("oiio:UnassociatedAlpha", 1)  # RGB as given: never (un)premultiplied
        if fmt == "uint16" and bits != 16:
            spec.attribute("oiio:BitsPerSample", bits)
        if self._extension == "exr":
            spec.attribute("compression", self._compression)
        elif self._extension in ("jpg", "jpeg"):
            spec.attribute("Compression", "jpeg:95")
        fps = Fraction(self.info.fps)
        if fps > 0 and fps.numerator < 2**31 and fps.denominator < 2**31:
            spec.attribute("FramesPerSecond", oiio.TypeDesc("rational2i"),
                           (fps.numerator, fps.denominator))
        return spec

    def write(self, frame: Frame) -> str:
        """Write one frame to the file numbered ``frame.index + offset`` (replacing any old file).

        Args:
            frame: ``(H, W, 3)`` RGB ``uint8``/``uint16``/``float32`` (see the class docstring).

        Returns:
            The path written.

        Raises:
            OutputError: the writer is closed or the file cannot be written (disk full, permissions);
                no file is left under the final name, nor a temp file.
            ConfigError: a float frame's colour space is unknown.
        """
        if self._closed:
            raise OutputError(f"the sequence writer for {self.pattern} is closed")
        path = self.path(frame.index)
        bits = self._bits(frame)
        pixels, fmt = _write_pixels(frame, self._extension, bits)
        if self._alpha:
            pixels = with_alpha(pixels, frame.alpha)
        if self._extension in ("jpg", "jpeg"):
            _check_room_for_jpeg(path, pixels)
        temp = create_temp(path)
        try:
            out = oiio.ImageOutput.create(temp)
            if out is None:
                raise OutputError(f"cannot write {path}: {one_line(oiio.geterror())}")
            try:
                if not out.open(temp, self._spec(pixels, fmt, bits)) or not out.write_image(pixels):
                    raise write_error(path, out.geterror())
            finally:
                closed = out.close()
            # OpenImageIO's PNG writer reports a short write (disk full) only through geterror();
            # other messages there can be harmless (TIFF's "failed TIFFWriteCustomDirectory() of the Exif data").
            problem = out.geterror() if out.has_error else ""
            if not closed or any(key in problem for key in _SHORT_WRITE):
                raise write_error(path, problem or "the file was not finished")
        except BaseException as exc:
            remove_quietly(temp)
            if isinstance(exc, Exception) and not isinstance(exc, OutputError):
                raise write_error(path, exc) from exc
            raise
        commit_temp(temp, path)
        self.written += 1
        return path
