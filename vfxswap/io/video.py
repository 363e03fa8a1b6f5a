"""Movie files read with PyAV (the only module of vfxswap that imports ``av``).

:class:`MovieSource` decodes the first video stream of anything FFmpeg opens (mp4, mov, mkv, mxf...)
into :class:`~vfxswap.types.Frame` objects: ``(H, W, 3)`` RGB, ``uint8`` for 8-bit sources and
``uint16`` (full 16-bit range) for 10/12/16-bit sources, so a ProRes 4:2:2 10-bit plate keeps its
precision. Every FFmpeg error is turned into a one-line :class:`~vfxswap.errors.MediaError`.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterator
from fractions import Fraction
from types import TracebackType
from typing import Any

import av
import av.error

from ..errors import MediaError, VfxSwapError
from ..types import Frame, VideoInfo

logger = logging.getLogger(__name__)

# FFmpeg's names (av_color_*_name) for the values of AVColorPrimaries, AVColorTransferCharacteristic,
# AVColorSpace and AVColorRange; PyAV exposes these tags as plain ints. Unspecified values map to None.
_PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
              9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
_TRC = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
        9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1",
        14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}
_MATRIX = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco",
           9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc",
           13: "chroma-derived-c", 14: "ictcp"}
_RANGE = {1: "tv", 2: "pc"}

# Demuxers whose sample tables give an exact frame count (used to detect truncated files).
_EXACT_COUNT_FORMATS = frozenset({"mov", "mp4"})

_TIMECODE_RE = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})")


def _one_line(reason: object) -> str:
    """``reason`` as text on one line: an FFmpeg error's own words, without errno or newlines."""
    text = getattr(reason, "strerror", None) if isinstance(reason, BaseException) else None
    return " ".join(str(text or reason).split())


def timecode_at(start: str, index: int, fps: Fraction) -> str:
    """The timecode ``index`` frames after ``start``.

    Args:
        start: start timecode ``HH:MM:SS:FF`` (non-drop) or ``HH:MM:SS;FF`` (drop-frame, 29.97/59.94).
        index: frame offset from ``start`` (>= 0).
        fps: frame rate; the timecode counts ``round(fps)`` frames per second (23.976 counts 24).

    Returns:
        The timecode in the same notation as ``start``, wrapping at 24 hours.

    Raises:
        MediaError: ``start`` is not a timecode.
    """
    match = _TIMECODE_RE.fullmatch(start.strip())
    if match is None:
        raise MediaError(f"timecode {start!r} is not of the form HH:MM:SS:FF")
    hh, mm, ss, sep, ff = match.groups()
    nominal = max(1, round(fps))
    drop = 2 * (nominal // 30) if sep in ";," else 0
    minutes = 60 * int(hh) + int(mm)
    number = (minutes * 60 + int(ss)) * nominal + int(ff) - drop * (minutes - minutes // 10) + index
    if drop:  # back from a frame count to drop-frame labels (SMPTE 12M)
        per_minute = 60 * nominal - drop
        per_ten = 10 * per_minute + drop
        tens, rest = divmod(number, per_ten)
        number += 9 * drop * tens + (drop * ((rest - drop) // per_minute) if rest > drop else 0)
    number %= 24 * 3600 * nominal
    seconds, frames = divmod(number, nominal)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{':' if not drop else sep}{frames:02d}"


@functools.lru_cache(maxsize=64)
def _bit_depth(pix_fmt: str | None) -> int:
    """Bits per component of an FFmpeg pixel format (8 when unknown)."""
    if not pix_fmt:
        return 8
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, av.error.FFmpegError):
        return 8


def _rgb_format(pix_fmt: str | None) -> str:
    """The packed RGB format to convert a decoded frame to: ``rgb24`` or ``rgb48le`` (> 8 bits)."""
    return "rgb48le" if _bit_depth(pix_fmt) > 8 else "rgb24"


def _fps(stream: Any) -> Fraction:
    """Frame rate of a video stream (average, else guessed, else 24 with a warning)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    logger.warning("%s does not say its frame rate; assuming 24 fps", stream.container.name)
    return Fraction(24)


def _frame_count(container: Any, stream: Any, fps: Fraction) -> int:
    """Frames in the stream: the container's count, else an estimate from the duration."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    if stream.duration and stream.time_base:
        seconds = stream.duration * Fraction(stream.time_base)
    elif container.duration:
        seconds = Fraction(container.duration, av.time_base)
    else:
        return 0
    return max(0, round(seconds * fps))


def _timecode_tag(container: Any, stream: Any) -> str | None:
    """The start timecode tag of the video stream, the container or a timecode (tmcd) stream."""
    candidates = [stream.metadata, container.metadata] + [s.metadata for s in container.streams]
    tag = next((m["timecode"].strip() for m in candidates if m.get("timecode", "").strip()), None)
    if tag is not None and _TIMECODE_RE.fullmatch(tag) is None:
        logger.warning("ignoring malformed timecode tag %r in %s", tag, container.name)
        return None
    return tag


def _open_container(path: str) -> Any:
    """Open ``path`` with PyAV, checking first that it is a non-empty file."""
    if not os.path.exists(path):
        raise MediaError(f"no such file: {path}")
    if os.path.isdir(path):
        raise MediaError(f"{path} is a folder, not a movie file; pass the folder to read its images")
    if os.path.getsize(path) == 0:
        raise MediaError(f"{path} is empty (0 bytes); re-copy or re-render it")
    try:
        return av.open(path, mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"cannot read {path} as a movie: {_one_line(exc)}; is the file complete?") from exc


def _video_stream(container: Any, path: str) -> Any:
    """The first video stream of ``container``."""
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        raise MediaError(f"{path} has no video stream (streams: {kinds}); pass a movie with picture")
    return container.streams.video[0]


def _info(path: str, container: Any, stream: Any) -> VideoInfo:
    """Describe the opened video stream without decoding it."""
    ctx = stream.codec_context
    fps = _fps(stream)
    return VideoInfo(
        path=path,
        kind="movie",
        width=int(ctx.width),
        height=int(ctx.height),
        fps=fps,
        time_base=Fraction(stream.time_base) if stream.time_base else 1 / fps,
        frame_count=_frame_count(container, stream, fps),
        first_frame=0,
        pix_fmt=ctx.pix_fmt or "",
        bit_depth=_bit_depth(ctx.pix_fmt),
        color_primaries=_PRIMARIES.get(getattr(ctx, "color_primaries", None)),
        color_trc=_TRC.get(getattr(ctx, "color_trc", None)),
        colorspace=_MATRIX.get(getattr(ctx, "colorspace", None)),
        color_range=_RANGE.get(getattr(ctx, "color_range", None)),
        timecode=_timecode_tag(container, stream),
        has_audio=bool(container.streams.audio),
        codec=ctx.name or "",
    )


def probe_movie(path: str) -> VideoInfo:
    """Describe a movie file from its headers (nothing is decoded).

    Args:
        path: a movie file FFmpeg can open.

    Returns:
        The :class:`VideoInfo` of its first video stream (``kind="movie"``).

    Raises:
        MediaError: the file is missing, empty, unreadable or has no video stream.
    """
    container = _open_container(path)
    try:
        return _info(path, container, _video_stream(container, path))
    finally:
        container.close()


class MovieSource:
    """Frames of the first video stream of a movie file; a context manager that owns the container.

    Attributes:
        info: what :func:`probe_movie` reports for the file.
    """

    def __init__(self, path: str) -> None:
        """Open ``path`` (see :func:`probe_movie` for the errors raised)."""
        self._path = path
        self._container = _open_container(path)
        try:
            self._stream = _video_stream(self._container, path)
            self._stream.thread_type = "AUTO"  # PyAV decodes on one thread by default (PERF_NOTES)
            self.info = _info(path, self._container, self._stream)
        except BaseException:
            self._container.close()
            raise
        self._started = False
        self._decoder: Iterator[Any] | None = None  # PyAV's frame generator of the live iterator

    def __enter__(self) -> MovieSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the container (idempotent); a live ``frames()`` iterator then raises MediaError."""
        self._stop_decoder()
        if self._container is not None:
            self._container.close()
            self._container = None

    def _stop_decoder(self) -> None:
        # PyAV's generator must not run again once the container is closed or moved (it would crash).
        if self._decoder is not None:
            self._decoder.close()  # type: ignore[attr-defined]
            self._decoder = None

    def frames(self, start: int | None = None) -> Iterator[Frame]:
        """Decode the frames in order.

        Frames before ``start`` are decoded (a movie cannot be cut between keyframes otherwise) but
        not converted to arrays. Calling ``frames`` again rewinds to the first frame and ends the
        previous iterator (it raises MediaError if resumed).

        Args:
            start: first frame index to yield (``Frame.index >= start``); ``None`` yields all.

        Yields:
            :class:`Frame` with ``image`` ``(H, W, 3)`` RGB, ``uint8`` in [0, 255] for 8-bit sources
            or ``uint16`` in [0, 65535] for deeper ones (rows may be padded: not always
            C-contiguous); ``index`` from 0; ``pts``/``time_base`` from the decoder; ``timecode``
            when the file carries a start timecode; ``color_space="srgb"`` (display-referred).

        Raises:
            MediaError: the source is closed, or decoding fails or stops before the container's
                frame count (a truncated or corrupt file).
        """
        if self._container is None:
            raise MediaError(f"{self._path} is closed; open it again with open_source()")
        self._stop_decoder()
        if self._started:
            self._rewind()
        self._started = True
        self._decoder = self._container.decode(self._stream)
        return self._decode(self._decoder, -1 if start is None else start)

    def _rewind(self) -> None:
        try:
            self._container.seek(0, stream=self._stream)
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot rewind {self._path}: {_one_line(exc)}; open it again") from exc

    def _decode(self, decoder: Iterator[Any], start: int) -> Iterator[Frame]:
        index = 0
        try:
            while True:
                if self._decoder is not decoder:
                    raise MediaError(f"{self._path} was closed or re-read while this frames() iterator "
                                     "was live; call frames() again on an open source")
                frame = next(decoder, None)
                if frame is None:
                    break
                if index >= start:
                    yield self._frame(frame, index)
                index += 1
        except av.error.InvalidDataError as exc:
            raise self._truncated(index) from exc
        except VfxSwapError:
            raise
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise MediaError(f"cannot decode {self._path} at frame {index}: {_one_line(exc)}; "
                             "is the file complete?") from exc
        self._decoder = None
        expected = self._exact_frame_count()
        if expected and index < expected:
            raise self._truncated(index, expected)

    def _frame(self, frame: Any, index: int) -> Frame:
        image = frame.to_ndarray(format=_rgb_format(frame.format.name))
        tag = self.info.timecode
        return Frame(
            image=image,
            index=index,
            color_space="srgb",
            pts=frame.pts,
            time_base=Fraction(frame.time_base) if frame.time_base else self.info.time_base,
            timecode=timecode_at(tag, index, self.info.fps) if tag else None,
        )

    def _exact_frame_count(self) -> int:
        """Frames the container promises exactly (mp4/mov sample tables), else 0."""
        names = set(self._container.format.name.split(","))
        if not names & _EXACT_COUNT_FORMATS or not self._stream.frames:
            return 0
        entries = self._stream.index_entries
        kept = sum(1 for e in entries if not e.is_discard) if len(entries) else 0
        return kept or int(self._stream.frames)  # edit lists may discard samples before the cut

    def _truncated(self, decoded: int, expected: int | None = None) -> MediaError:
        expected = expected or self._exact_frame_count()
        total = f"{expected}" if expected else f"~{self.info.frame_count}"
        return MediaError(f"{self._path} is truncated or corrupt: decoding stopped after {decoded} "
                          f"of {total} frames")
