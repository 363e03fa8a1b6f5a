"""Movie files read and written with PyAV (the only module of vfxswap that imports ``av``).

:class:`MovieSource` decodes the first video stream of anything FFmpeg opens (mp4, mov, mkv, mxf...)
into :class:`~vfxswap.types.Frame` objects: ``(H, W, 3)`` RGB, ``uint8`` for 8-bit sources and
``uint16`` (full 16-bit range) for 10/12/16-bit sources, so a ProRes 4:2:2 10-bit plate keeps its
precision. Every FFmpeg error is turned into a one-line :class:`~vfxswap.errors.MediaError`.

:class:`MovieWriter` encodes frames back into a movie (codec family, bit depth, timestamps, audio,
timecode and colour tags of the source kept; see :func:`plan_encoder`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from fractions import Fraction
from types import TracebackType
from typing import Any

import av
import av.error
import cv2
import numpy as np

from ..atomic import commit_temp, create_temp, prepare_folder, remove_quietly, write_error
from ..errors import ConfigError, MediaError, OutputError, ShortMediaError, VfxSwapError, one_line
from ..types import Frame, VideoInfo
from .sequences import display_code_values, with_alpha
from .source import is_stream
from .writer import MOVIE_EXTENSIONS

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


def stream_fps(stream: Any) -> Fraction:
    """Frame rate of a video stream (average, else guessed, else 24 with a warning)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    logger.warning("%s does not say its frame rate; assuming 24 fps", stream.container.name)
    return Fraction(24)


def _discarded(stream: Any) -> int:
    """Samples an edit list hides (pre-roll before the cut): counted in ``stream.frames``, never shown."""
    return sum(1 for e in stream.index_entries if e.is_discard)


def _frame_count(container: Any, stream: Any, fps: Fraction) -> int:
    """Frames in the stream: the container's count (less edit-list pre-roll), else an estimate from
    the duration."""
    if stream.frames and stream.frames > 0:
        return max(0, int(stream.frames) - _discarded(stream))
    if stream.duration and stream.time_base:
        seconds = stream.duration * Fraction(stream.time_base)
    elif container.duration:
        seconds = Fraction(container.duration, av.time_base)
    else:
        return 0
    return max(0, round(seconds * fps))


def timecode_tag(container: Any, stream: Any) -> str | None:
    """The start timecode tag of the video stream, the container or a timecode (tmcd) stream."""
    candidates = [stream.metadata, container.metadata] + [s.metadata for s in container.streams]
    # mov/mp4 say "timecode", Matroska "TIMECODE"
    tag = next((v.strip() for m in candidates for k, v in m.items() if k.lower() == "timecode" and v.strip()), None)
    if tag is not None and _TIMECODE_RE.fullmatch(tag) is None:
        logger.warning("ignoring malformed timecode tag %r in %s", tag, container.name)
        return None
    return tag


def open_container(path: str) -> Any:
    """Open ``path`` with PyAV, checking first that it is a non-empty file (streams: see :func:`is_stream`)."""
    if is_stream(path):
        try:
            return av.open("pipe:0" if path == "-" else path, mode="r")
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise MediaError(f"cannot read the stream {path}: {one_line(exc)}; check the address and that "
                             "the stream is a container FFmpeg can read without seeking (ts, mkv, fragmented mp4)") from exc
    if not os.path.exists(path):
        raise MediaError(f"no such file: {path}")
    if os.path.isdir(path):
        raise MediaError(f"{path} is a folder, not a movie file; pass the folder to read its images")
    if os.path.getsize(path) == 0:
        raise MediaError(f"{path} is empty (0 bytes); re-copy or re-render it")
    try:
        return av.open(path, mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"cannot read {path} as a movie: {one_line(exc)}; is the file complete?") from exc


def _video_stream(container: Any, path: str) -> Any:
    """The first video stream of ``container``."""
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        raise MediaError(f"{path} has no video stream (streams: {kinds}); pass a movie with picture")
    return container.streams.video[0]


def _info(path: str, container: Any, stream: Any) -> VideoInfo:
    """Describe the opened video stream without decoding it."""
    ctx = stream.codec_context
    fps = stream_fps(stream)
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
        timecode=timecode_tag(container, stream),
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
    container = open_container(path)
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
        self._container = open_container(path)
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

        With ``start``, a constant-rate mov/mp4 is seeked to the keyframe at or before it, and
        other movies demux whole GOPs before that keyframe without decoding them (a farm chunk late
        in a long plate does not decode the plate up to it); streams whose keyframes are not clean
        entry points (open GOPs, no timestamps) are decoded from the first frame, and frames before
        ``start`` are not converted to arrays. Frame indexes are
        the same either way. Calling ``frames`` again rewinds to the first frame and ends the
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
        start = -1 if start is None else start
        skipped = (self._seek_to_keyframe(start) or self._skip_to_keyframe(start)) if start > 0 else None
        if skipped is None:
            self._decoder = self._container.decode(self._stream)
            return self._decode(self._decoder, start)
        first_index, key_pts, packets = skipped
        self._decoder = self._decode_packets(packets)
        return self._decode(self._decoder, start, first_index, key_pts)

    def _seek_to_keyframe(self, start: int) -> tuple[int, int, Iterator[Any]] | None:
        """Seek a constant-rate mov/mp4 (no edit list) straight to the keyframe at or before ``start``.

        The sample table gives the keyframe's decode position ``k``; its frame must then be presented
        at ``start_time + k`` frame durations, which :meth:`_decode` checks on the first decoded frame
        (an open GOP or reordering across the keyframe fails it, and decoding restarts from frame 0).
        Returns ``k``, that pts and the packets from the keyframe on, or ``None`` when the file is not
        such a movie (the caller then demuxes up to the keyframe instead).
        """
        if not set(self._container.format.name.split(",")) & _EXACT_COUNT_FORMATS:
            return None
        entries = self._stream.index_entries
        tb = Fraction(self._stream.time_base or 0)
        if len(entries) < 2 or not tb or start >= len(entries):
            return None
        step = 1 / (Fraction(self.info.fps) * tb)  # one frame in time-base ticks
        stamps = [e.timestamp for e in entries]  # decode times
        if step.denominator != 1 or any(e.is_discard for e in entries) or any(
                b - a != step for a, b in zip(stamps, stamps[1:])):
            return None  # variable rate, an edit list, or a frame duration off the time base
        k = next((i for i in range(start, 0, -1) if entries[i].is_keyframe), 0)
        if k == 0:
            return None
        pts = int((self._stream.start_time or 0) + k * step)  # the sample table holds decode times
        try:
            self._container.seek(pts, stream=self._stream, backward=True)
        except (av.error.FFmpegError, OSError, ValueError):
            self._rewind()
            return None
        return k, pts, self._container.demux(self._stream)

    def _skip_to_keyframe(self, start: int) -> tuple[int, int, Iterator[Any]] | None:
        """Demux (without decoding) up to a clean keyframe at or before frame ``start``.

        A keyframe ``K`` is clean when every packet before it is presented before it and no packet of
        its GOP is presented before it (no open-GOP leading pictures): then the frames decoded from
        ``K`` on are exactly those from presentation index "packets before ``K``". Returns that index,
        ``K``'s pts and the packets from ``K`` on (the buffered GOP, then the rest of the demuxer);
        ``None`` (rewound) when there is no clean keyframe to start from: decode everything instead.
        """
        demuxer = self._container.demux(self._stream)
        count = 0  # non-discarded video packets seen, in decode order
        key: tuple[int, int] | None = None  # (index, pts) of the last clean keyframe at or before start
        gop: list[Any] = []
        max_pts = None
        stop = None  # the first packet of the GOP after the one holding start
        try:
            for packet in demuxer:
                if packet.size == 0 or packet.is_discard:  # the final flush packet; edit-list pre-roll
                    if key is not None:
                        gop.append(packet)  # decoded (references, flush) but not counted
                    continue
                if packet.pts is None or len(gop) > 1000:  # no timestamps, or an endless GOP
                    key = None
                    break
                if packet.is_keyframe and (max_pts is None or packet.pts > max_pts):
                    if count > start:
                        stop = packet
                        break
                    key, gop = (count, packet.pts), []
                if key is not None:
                    if packet.pts < key[1]:
                        key = None  # a leading picture presented before its keyframe: not clean
                    else:
                        gop.append(packet)
                max_pts = packet.pts if max_pts is None else max(max_pts, packet.pts)
                count += 1
        except (av.error.FFmpegError, OSError, ValueError):
            key = None
        if key is None:
            self._rewind()
            return None
        return key[0], key[1], itertools.chain(gop, [stop] if stop is not None else [], demuxer)

    def _decode_packets(self, packets: Iterator[Any]) -> Iterator[Any]:
        """Decoded frames of ``packets`` (then the decoder's flush), like ``container.decode``."""
        for packet in packets:
            yield from self._stream.decode(packet)  # the demuxer's last, empty packet flushes

    def _rewind(self) -> None:
        try:
            self._container.seek(0, stream=self._stream)
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot rewind {self._path}: {one_line(exc)}; open it again") from exc

    def _decode(self, decoder: Iterator[Any], start: int, first_index: int = 0,
                key_pts: int | None = None) -> Iterator[Frame]:
        """Frames from ``start`` on; ``decoder`` yields decoded frames from presentation index
        ``first_index``, whose first frame must have ``key_pts`` (else decode again from frame 0)."""
        index = first_index
        try:
            while True:
                if self._decoder is not decoder:
                    raise MediaError(f"{self._path} was closed or re-read while this frames() iterator "
                                     "was live; call frames() again on an open source")
                frame = next(decoder, None)
                if frame is None:
                    break
                if key_pts is not None:  # the first frame decoded after skipping (nothing yielded yet)
                    wanted_pts, key_pts = key_pts, None
                    if frame.pts != wanted_pts:
                        logger.debug("%s: the keyframe skip landed on pts %s, not %s; decoding from the start",
                                     self._path, frame.pts, wanted_pts)
                        decoder.close()
                        self._rewind()
                        decoder = self._decoder = self._container.decode(self._stream)
                        index = 0
                        continue
                if index >= start:
                    yield self._frame(frame, index)
                index += 1
        except av.error.InvalidDataError as exc:
            raise self._truncated(index) from exc
        except VfxSwapError:
            raise
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise MediaError(f"cannot decode {self._path} at frame {index}: {one_line(exc)}; "
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
        """Frames the container promises exactly (the mp4/mov sample count less edit-list pre-roll:
        a corrupt sample table that indexes fewer samples still promises them all), else 0."""
        names = set(self._container.format.name.split(","))
        if not names & _EXACT_COUNT_FORMATS or not self._stream.frames:
            return 0
        return max(0, int(self._stream.frames) - _discarded(self._stream))

    def _truncated(self, decoded: int, expected: int | None = None) -> MediaError:
        expected = expected or self._exact_frame_count()
        total = f"{expected}" if expected else f"~{self.info.frame_count}"
        return ShortMediaError(f"{self._path} is truncated or corrupt: decoding stopped after {decoded} "
                               f"of {total} frames", decoded=decoded, expected=expected or self.info.frame_count)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

MOVIE_CODECS: tuple[str, ...] = ("libx264", "libx265", "prores_ks", "dnxhd", "ffv1")
PRORES_PROFILES: dict[str, int] = {"proxy": 0, "lt": 1, "standard": 2, "hq": 3, "4444": 4, "4444xq": 5}
# DNxHR profile -> pixel format (DNxHR takes any frame size from 256x120 up).
DNXHR_PROFILES: dict[str, str] = {"dnxhr_lb": "yuv422p", "dnxhr_sq": "yuv422p", "dnxhr_hq": "yuv422p",
                                  "dnxhr_hqx": "yuv422p10le", "dnxhr_444": "yuv444p10le"}
DNXHR_MIN_SIZE = (256, 120)
DEFAULT_PRESET = "fast"  # the encoder preset is the largest cost of a CPU converter (PERF_NOTES)
_DEFAULT_CRF = {"libx264": 18, "libx265": 20}
_CODEC_ALIASES = {"h264": "libx264", "x264": "libx264", "avc": "libx264", "hevc": "libx265",
                  "h265": "libx265", "x265": "libx265", "prores": "prores_ks", "dnxhr": "dnxhd"}
# Source codec family -> encoder (anything else, e.g. png, mjpeg, vp9, av1: libx264).
_FAMILY = {"h264": "libx264", "hevc": "libx265", "prores": "prores_ks", "dnxhd": "dnxhd", "ffv1": "ffv1"}
_CONTAINERS_FOR = {"prores_ks": "mov or mkv", "dnxhd": "mov or mxf", "ffv1": "mkv or avi"}

# (Kr, Kb) of the Y'CbCr matrices by AVColorSpace value, as swscale (and so MovieSource) uses them
# to decode; unspecified and anything else decodes as BT.601.
_BT601 = (0.299, 0.114)
_KR_KB = {1: (0.2126, 0.0722), 4: (0.30, 0.11), 5: _BT601, 6: _BT601, 7: (0.212, 0.087),
          9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}
_SWS_COLORSPACE = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}  # AVColorSpace -> SWS_CS_*
_PRIMARIES_ID = {v: k for k, v in _PRIMARIES.items()}
_TRC_ID = {v: k for k, v in _TRC.items()}
_MATRIX_ID = {v: k for k, v in _MATRIX.items()}
_RANGE_ID = {v: k for k, v in _RANGE.items()}


@dataclasses.dataclass(frozen=True)
class EncoderPlan:
    """How a movie is encoded: what :func:`plan_encoder` picks.

    Attributes:
        codec: FFmpeg encoder name (one of :data:`MOVIE_CODECS`).
        pix_fmt: encoder pixel format (``yuv420p``, ``yuv422p10le``, ``bgr0``...).
        options: encoder options (``crf``, ``preset``, ``profile``...).
    """

    codec: str
    pix_fmt: str
    options: dict[str, str]

    @property
    def bit_depth(self) -> int:
        """Bits per component of :attr:`pix_fmt`."""
        return _bit_depth(self.pix_fmt)


@functools.lru_cache(maxsize=16)
def _encoder_formats(name: str) -> tuple[str, ...]:
    """The pixel formats FFmpeg's encoder ``name`` takes."""
    return tuple(f.name for f in av.Codec(name, "w").video_formats or ())


def _resolve_codec(codec: str | None, info: VideoInfo) -> str:
    if codec is None:
        return _FAMILY.get(info.codec, "libx264")
    name = _CODEC_ALIASES.get(str(codec).lower(), str(codec).lower())
    if name not in MOVIE_CODECS:
        raise ConfigError(f"unknown movie codec {codec!r}; use one of {', '.join(MOVIE_CODECS)}")
    return name


def _source_chroma(pix_fmt: str) -> str:
    """``"420"``, ``"422"`` or ``"444"``: the chroma layout of a source YUV format (RGB: ``"420"``)."""
    try:
        fmt = av.VideoFormat(pix_fmt, 64, 64)
    except (ValueError, av.error.FFmpegError, TypeError):
        return "420"  # image sequences (rgb48, rgbf32) and unknown formats: delivery default
    if fmt.is_rgb or len(fmt.components) < 3:
        return "420"
    chroma = fmt.components[1]
    if chroma.width == 64:
        return "444"
    return "422" if chroma.height == 64 else "420"


def _fit_chroma(chroma: str, width: int, height: int, codec: str) -> str:
    """Widen the chroma layout when the frame size cannot be subsampled (odd sizes)."""
    fits = {"420": width % 2 == 0 and height % 2 == 0, "422": width % 2 == 0, "444": True}[chroma]
    if not fits:
        logger.info("%s cannot subsample a %dx%d frame as 4:%s; encoding 4:4:4", codec, width,
                    height, {"420": "2:0", "422": "2:2"}[chroma])
        return "444"
    return chroma


def plan_encoder(info: VideoInfo, *, codec: str | None = None, pix_fmt: str | None = None,
                 profile: str | None = None, crf: int | None = None, preset: str | None = None,
                 options: Mapping[str, str] | None = None, alpha: bool = False) -> EncoderPlan:
    """Pick the encoder, pixel format and options for a movie made from ``info``'s frames.

    Defaults keep the source's codec family, bit depth and chroma layout:

    ========================  ============  ==========================================================
    source codec              encoder       pixel format
    ========================  ============  ==========================================================
    h264 (png, mjpeg, other)  libx264       yuv420p / yuv420p10le (> 8 bits); 4:2:2 / 4:4:4 sources
                                            keep their layout; crf 18, preset ``fast``
    hevc                      libx265       yuv420p / yuv420p10le / yuv420p12le; crf 20, ``fast``
    prores                    prores_ks     profile ``hq``: yuv422p10le; 4:4:4 sources (or
                                            ``profile="4444"``/``"4444xq"``): yuv444p10le
    dnxhd                     dnxhd         ``dnxhr_hq`` yuv422p (8-bit), ``dnxhr_hqx`` yuv422p10le
                                            (> 8 bits), ``dnxhr_444`` yuv444p10le (4:4:4 > 8 bits)
    ffv1                      ffv1          bgr0 (8-bit) / gbrp16le (> 8 bits): lossless RGB
    ========================  ============  ==========================================================

    x264/x265 need even sizes for 4:2:0 (and an even width for 4:2:2): odd sizes get 4:4:4 at the
    same depth. libx264 stores at most 10 bits, libx265 12.

    Args:
        info: the source's :class:`VideoInfo` (``codec``, ``pix_fmt``, ``bit_depth``, size).
        codec: one of :data:`MOVIE_CODECS` (aliases ``h264``, ``hevc``, ``prores``, ``dnxhr``);
            ``None`` keeps the source's family.
        pix_fmt: force a pixel format the encoder supports.
        profile: ProRes (:data:`PRORES_PROFILES`) or DNxHR (:data:`DNXHR_PROFILES`) profile.
        crf: x264/x265 constant rate factor (lower is better; 0-51).
        preset: x264/x265 preset (``ultrafast`` ... ``veryslow``).
        options: extra encoder options, applied last.
        alpha: carry an alpha channel: ProRes 4444 (yuva444p10le) or FFV1 (bgra / gbrap16le).

    Returns:
        The :class:`EncoderPlan`.

    Raises:
        ConfigError: an unknown codec, profile or pixel format, a profile or crf for a codec that
            has none, or a frame smaller than DNxHR allows.
    """
    name = _resolve_codec(codec, info)
    depth = max(8, int(info.bit_depth or 8))
    chroma = _source_chroma(info.pix_fmt)
    opts: dict[str, str] = {}
    if profile is not None and name not in ("prores_ks", "dnxhd"):
        raise ConfigError(f"profile {profile!r} applies to prores_ks and dnxhd, not {name}")
    if (crf is not None or preset is not None) and name not in _DEFAULT_CRF:
        raise ConfigError(f"crf/preset apply to libx264 and libx265, not {name}")
    if alpha and name not in ("prores_ks", "ffv1"):
        raise ConfigError(f"{name} cannot carry an alpha channel; use --codec prores_ks (4444) or ffv1, "
                          "or an EXR/PNG/TIFF/DPX sequence")
    if name in ("libx264", "libx265"):
        limit = 10 if name == "libx264" else 12
        if depth > limit:
            logger.warning("%s stores at most %d bits; encoding the %d-bit source at %d bits",
                           name, limit, depth, limit)
        bits = 8 if depth <= 8 else min(limit, 10 if depth <= 10 else 12)
        chroma = _fit_chroma(chroma, info.width, info.height, name)
        chosen = f"yuv{chroma}p" + ("" if bits == 8 else f"{bits}le")
        if codec is None and pix_fmt is None and chosen not in _encoder_formats(name):
            # a libx264 built without high bit depth: keep the bits, change the family
            logger.warning("this FFmpeg's %s cannot encode %s; using libx265", name, chosen)
            return plan_encoder(info, codec="libx265", crf=crf, preset=preset, options=options)
        rate = _DEFAULT_CRF[name] if crf is None else int(crf)
        if not 0 <= rate <= 51:
            raise ConfigError(f"crf must be in 0..51, got {crf}")
        opts.update(crf=str(rate), preset=preset or DEFAULT_PRESET)
        if name == "libx265":
            opts["x265-params"] = "log-level=error"  # x265 prints its banner on stderr otherwise
    elif name == "prores_ks":
        label = profile or ("4444" if chroma == "444" or alpha else "hq")
        if label not in PRORES_PROFILES:
            raise ConfigError(f"unknown ProRes profile {profile!r}; use one of {', '.join(PRORES_PROFILES)}")
        if alpha and PRORES_PROFILES[label] < 4:
            raise ConfigError(f"ProRes {label} has no alpha channel; use profile 4444 or 4444xq")
        chosen = "yuv444p10le" if PRORES_PROFILES[label] >= 4 else "yuv422p10le"
        chosen = "yuva444p10le" if alpha else chosen
        opts.update(profile=str(PRORES_PROFILES[label]), vendor="apl0")
    elif name == "dnxhd":
        if depth <= 8:
            label = profile or "dnxhr_hq"
        else:
            label = profile or ("dnxhr_444" if chroma == "444" else "dnxhr_hqx")
        if label not in DNXHR_PROFILES:
            raise ConfigError(f"unknown DNxHR profile {profile!r}; use one of {', '.join(DNXHR_PROFILES)}")
        if info.width < DNXHR_MIN_SIZE[0] or info.height < DNXHR_MIN_SIZE[1]:
            raise ConfigError(f"DNxHR needs frames of at least {DNXHR_MIN_SIZE[0]}x{DNXHR_MIN_SIZE[1]}, "
                              f"got {info.width}x{info.height}; use prores_ks or libx264")
        chosen = DNXHR_PROFILES[label]
        opts["profile"] = label
    else:  # ffv1
        chosen = ("bgra" if alpha else "bgr0") if depth <= 8 else ("gbrap16le" if alpha else "gbrp16le")
        opts.update(level="3", slicecrc="1")
    if pix_fmt is not None:
        supported = _encoder_formats(name)
        if pix_fmt not in supported:
            raise ConfigError(f"{name} cannot encode pix_fmt {pix_fmt!r}; use one of {', '.join(supported)}")
        chosen = pix_fmt
    opts.update({str(k): str(v) for k, v in (options or {}).items()})
    return EncoderPlan(codec=name, pix_fmt=chosen, options=opts)


@functools.lru_cache(maxsize=16)
def _yuv_matrix(kr: float, kb: float, full: bool) -> np.ndarray:
    """``(3, 4)`` float32 affine from 8-bit R'G'B' to 8-bit Y'CbCr (limited or full range)."""
    kg = 1.0 - kr - kb
    y_scale, c_scale, y_off = (1.0, 1.0, 0.0) if full else (219.0 / 255.0, 224.0 / 255.0, 16.0)
    cb = 0.5 / (1.0 - kb) * c_scale
    cr = 0.5 / (1.0 - kr) * c_scale
    return np.array([
        [kr * y_scale, kg * y_scale, kb * y_scale, y_off],
        [-kr * cb, -kg * cb, (1.0 - kb) * cb, 128.0],
        [(1.0 - kr) * cr, -kg * cr, -kb * cr, 128.0],
    ], np.float32)


def rgb_to_i420(rgb: np.ndarray, *, colorspace: int | None = None, full_range: bool = False) -> np.ndarray:
    """8-bit RGB to planar 4:2:0 Y'CbCr in one buffer, the fast path of :class:`MovieWriter`.

    BT.601 limited range goes through ``cv2.cvtColor(COLOR_RGB2YUV_I420)``; other matrices (BT.709,
    BT.2020...) and full range through ``cv2.transform`` plus a 2x2 box filter for chroma. Both
    are the inverse, to within rounding, of how swscale (and so :class:`MovieSource`) decodes.

    Args:
        rgb: ``(H, W, 3)`` ``uint8`` RGB with even ``H`` and ``W``.
        colorspace: AVColorSpace value of the matrix (1 BT.709, 5/6 BT.601, 9 BT.2020...);
            ``None`` or unknown values: BT.601.
        full_range: full-range (``pc``) rather than limited-range (``tv``) code values.

    Returns:
        ``(H * 3 // 2, W)`` ``uint8``: the Y plane then the Cb and Cr planes (I420 layout, what
        ``VideoFrame.from_ndarray(..., format="yuv420p")`` takes).
    """
    kr, kb = _KR_KB.get(colorspace if colorspace is not None else 2, _BT601)
    if (kr, kb) == _BT601 and not full_range:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    height, width = rgb.shape[:2]
    ycc = cv2.transform(rgb, _yuv_matrix(kr, kb, full_range))
    out = np.empty((height * 3 // 2, width), np.uint8)
    out[:height] = ycc[:, :, 0]
    half = cv2.resize(ycc, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    flat = out.reshape(-1)
    quarter = (height // 2) * (width // 2)
    start = height * width
    flat[start:start + quarter] = half[:, :, 1].reshape(-1)
    flat[start + quarter:] = half[:, :, 2].reshape(-1)
    return out


def _check_timecode(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or _TIMECODE_RE.fullmatch(value.strip()) is None:
        raise ConfigError(f"start timecode {value!r} is not of the form HH:MM:SS:FF (or HH:MM:SS;FF)")
    return value.strip()


class AudioCopy:
    """Copies the audio packets of a source movie into an output container (no re-encoding).

    Packets are muxed as the video advances (``mux_until``) so the file stays interleaved. Only
    packets overlapping the window ``[start, end)`` (seconds; ``None`` is open) are copied.
    """

    def __init__(self, source: str, output: Any, ext: str, *, target: str) -> None:
        """Add ``source``'s audio streams to ``output`` (the container being written for ``target``)."""
        self._path = source
        self._target = target
        self._input = open_container(source)
        self._pairs: dict[int, Any] = {}
        try:
            for stream in self._input.streams.audio:
                try:
                    out = output.add_stream_from_template(stream)
                except ValueError as exc:
                    raise ConfigError(f"the {stream.codec_context.name} audio of {source} cannot be "
                                      f"stored in .{ext} without re-encoding; write .mov or .mkv") from exc
                self._pairs[stream.index] = out
        except BaseException:
            self._input.close()
            raise
        streams = list(self._input.streams.audio)
        self._packets: Iterator[Any] | None = iter(self._input.demux(streams)) if streams else None
        self._pending: Any = None
        self.start: Fraction | None = None
        self.end: Fraction | None = None
        self.copied = 0

    def _next(self) -> Any:
        while self._pending is None and self._packets is not None:
            packet = next(self._packets, None)
            if packet is None:
                self._packets = None
            elif packet.dts is not None or packet.pts is not None:  # skip demuxer flush packets
                self._pending = packet
        return self._pending

    @staticmethod
    def _span(packet: Any) -> tuple[Fraction, Fraction]:
        base = Fraction(packet.time_base)
        start = (packet.pts if packet.pts is not None else packet.dts) * base
        return start, start + (packet.duration or 0) * base

    def mux_until(self, output: Any, limit: Fraction | None) -> None:
        """Mux the packets that start before ``limit`` seconds (all of them for ``None``)."""
        try:
            while (packet := self._next()) is not None:
                start, end = self._span(packet)
                if limit is not None and start >= limit:
                    return
                self._pending = None
                if self.start is not None and (end <= self.start if end > start else start < self.start):
                    continue
                if self.end is not None and start >= self.end:
                    continue
                packet.stream = self._pairs[packet.stream_index]
                try:
                    output.mux(packet)
                except (av.error.FFmpegError, OSError) as exc:  # the output's fault: disk full, I/O
                    raise write_error(self._target, exc) from exc
                self.copied += 1
        except av.error.FFmpegError as exc:
            raise MediaError(f"cannot copy the audio of {self._path}: {one_line(exc)}") from exc

    def close(self) -> None:
        self._packets = None
        self._pending = None
        self._input.close()


class MovieWriter:
    """Encodes frames into a movie file with PyAV; a context manager.

    The movie is written under an exclusive ``.tmp-RANDOM-NAME.ext`` in the output folder, flushed
    and renamed into place when :meth:`close` succeeds (a symlink at the final name is replaced,
    never written through); an exception inside the ``with`` block (or :meth:`abort`) deletes it,
    so nothing ever appears under the final name half-written.

    * Codec and pixel format: see :func:`plan_encoder` (the source's family and bit depth by
      default). High-bit-depth frames (``uint16``) are encoded from 16-bit RGB: not crushed to 8.
    * Timing: frames keep their ``pts`` (rescaled from ``Frame.time_base``), so variable frame
      rate and the frame count survive; frames without ``pts`` are placed at
      ``(index - info.first_frame) / fps``. A frame whose timestamp does not increase (phones and
      screen recorders write duplicates) is kept, one tick of the time base after the previous
      frame, and listed in ``nudged``. AVI has no timestamps: it
      gets one frame per ``1/fps`` tick (constant rate; same frame count). MKV stores
      milliseconds, so its timestamps are rounded to 1 ms.
    * Audio: every audio stream of ``source`` is copied packet for packet (no re-encode). When the
      frames written do not start at the source's first frame (or stop before its last), only the
      audio packets overlapping the written frames' time span are copied, at their source times.
    * Timecode: ``start_timecode``, else the first frame's ``timecode``, else the source's, goes
      onto the video stream and container (a ``tmcd`` track in mov/mp4).
    * Colour tags (primaries, transfer, matrix, range) of ``info`` are carried; Y'CbCr is encoded
      with the tagged matrix and range (unspecified: BT.601 limited, as FFmpeg decodes it).

    Attributes:
        path: the final movie path.
        info: the source's :class:`VideoInfo`.
        plan: the :class:`EncoderPlan` in use.
        frames_written: frames encoded so far.
        nudged: ``(frame index, pts given, pts written)`` of every frame moved to keep time increasing.
    """

    def __init__(self, path: str | os.PathLike[str], info: VideoInfo, *, source: str | None = None,
                 codec: str | None = None, pix_fmt: str | None = None, profile: str | None = None,
                 crf: int | None = None, preset: str | None = None,
                 options: Mapping[str, str] | None = None, start_timecode: str | None = None,
                 alpha: bool = False) -> None:
        """Plan the encoder, create the temp file and add the streams.

        Args:
            path: ``.mp4``, ``.mov``, ``.mkv``, ``.mxf`` or ``.avi``.
            info: the source's :class:`VideoInfo` (size, fps, codec, bit depth, colour tags).
            source: the input movie whose audio streams are copied (``None``, an image sequence
                or a folder: no audio).
            codec, pix_fmt, profile, crf, preset, options: see :func:`plan_encoder`.
            start_timecode: ``HH:MM:SS:FF`` of the first frame written (overrides the source's).
            alpha: encode ``frame.alpha`` as the alpha channel (ProRes 4444, FFV1); RGB is not
                premultiplied by it.

        Raises:
            ConfigError: an unknown extension, codec or option, or a codec the container cannot
                hold (ProRes in .mp4).
            OutputError: the folder cannot be created or written, or ``path`` is the source.
            MediaError: ``source`` cannot be read.
        """
        self.path = os.fspath(path)
        self.info = info
        ext = os.path.splitext(self.path)[1][1:].lower()
        if ext not in MOVIE_EXTENSIONS:
            raise ConfigError(f"cannot write a movie with extension .{ext or '(none)'}; use one of "
                              f"{', '.join('.' + e for e in MOVIE_EXTENSIONS)}")
        self.plan = plan_encoder(info, codec=codec, pix_fmt=pix_fmt, profile=profile, crf=crf,
                                 preset=preset, options=options, alpha=alpha)
        self._alpha = alpha
        self._start_timecode = _check_timecode(start_timecode)
        if source is not None and os.path.exists(source) and os.path.exists(self.path) \
                and os.path.samefile(source, self.path):
            raise OutputError(f"refusing to write {self.path} over its own source; pick another name")
        self._temp = create_output_temp(self.path)
        self._container: Any = None
        self._audio: AudioCopy | None = None
        try:
            self._container = av.open(self._temp, mode="w")
            self._stream = self._add_video_stream(ext)
            if source is not None and _is_movie_source(os.fspath(source)):
                self._audio = AudioCopy(os.fspath(source), self._container, ext, target=self.path)
        except BaseException:
            self.abort()
            raise
        self._configured = False
        self._constant_rate = ext == "avi"  # AVI stores a frame rate, not timestamps
        self._time_base = Fraction(1)
        self._last_pts: int | None = None
        self._first_index = 0
        self._last_index = 0
        self._last_time = Fraction(0)
        self._closed = False
        self.frames_written = 0
        self.nudged: list[tuple[int, int, int]] = []  # (frame index, pts given, pts written)
        fmt = av.VideoFormat(self.plan.pix_fmt)
        self._is_rgb = bool(fmt.is_rgb)
        matrix = _MATRIX_ID.get(info.colorspace) if info.colorspace else None
        if matrix is not None and matrix not in _KR_KB:
            logger.warning("cannot encode the %s matrix of %s; writing BT.601 without a matrix tag",
                           info.colorspace, info.path)
            matrix = None
        self._matrix = matrix
        self._full_range = info.color_range == "pc"

    def _add_video_stream(self, ext: str) -> Any:
        plan = self.plan
        try:
            stream = self._container.add_stream(plan.codec, rate=self.info.fps, options=dict(plan.options))
        except ValueError as exc:
            where = _CONTAINERS_FOR.get(plan.codec, "mov or mkv")
            raise ConfigError(f"{plan.codec} cannot be stored in .{ext}; write .{where.replace(' or ', ' or .')} "
                              f"(or pick another codec)") from exc
        except av.error.FFmpegError as exc:
            raise ConfigError(f"cannot set up the {plan.codec} encoder: {one_line(exc)}") from exc
        stream.width = self.info.width
        stream.height = self.info.height
        stream.pix_fmt = plan.pix_fmt
        ctx = stream.codec_context
        if ext == "avi" and plan.codec in _DEFAULT_CRF:
            ctx.max_b_frames = 0  # AVI cannot carry reordered frames' timestamps
        if plan.codec == "libx265" and ext in ("mov", "mp4"):
            stream.codec_tag = "hvc1"  # what QuickTime and Apple players require for HEVC
        for attr, table, value in (("color_primaries", _PRIMARIES_ID, self.info.color_primaries),
                                   ("color_trc", _TRC_ID, self.info.color_trc),
                                   ("color_range", _RANGE_ID, self.info.color_range)):
            if value in table:
                setattr(ctx, attr, table[value])
        if not av.VideoFormat(plan.pix_fmt).is_rgb and self.info.colorspace in _MATRIX_ID:
            matrix = _MATRIX_ID[self.info.colorspace]
            if matrix in _KR_KB:
                ctx.colorspace = matrix
        return stream

    def __enter__(self) -> MovieWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    # -- frames -----------------------------------------------------------------------------

    def _configure(self, frame: Frame) -> None:
        """Fix the time base and timecode from the first frame (before the header is written)."""
        if frame.pts is not None and frame.time_base and not self._constant_rate:
            self._time_base = Fraction(frame.time_base)
        else:
            self._time_base = 1 / Fraction(self.info.fps)
        self._stream.codec_context.time_base = self._time_base
        self._stream.time_base = self._time_base
        timecode = self._start_timecode or frame.timecode
        if timecode is None and self.info.timecode:
            timecode = timecode_at(self.info.timecode, max(0, frame.index - self.info.first_frame),
                                   Fraction(self.info.fps))
        if timecode:
            self._stream.metadata["timecode"] = timecode
            self._container.metadata["timecode"] = timecode
        self._first_index = frame.index
        if self._audio is not None and frame.index != self.info.first_frame:
            self._audio.start = self._seconds(frame)
        if self._container.format.name in ("mov", "mp4"):
            # Edit lists (a render starting after 0) are stored in the movie time scale, 1/1000 s by
            # default: use one every track's time base divides, so start offsets stay exact.
            scale = math.lcm(*(Fraction(s.time_base).denominator for s in self._container.streams
                               if s.time_base))
            if scale < 2**31:
                self._container.container_options["movie_timescale"] = str(scale)
        self._configured = True

    def _pts(self, frame: Frame) -> int:
        if frame.pts is not None and frame.time_base:
            tb = Fraction(frame.time_base)
            pts = frame.pts if tb == self._time_base else round(frame.pts * tb / self._time_base)
        else:
            seconds = Fraction(frame.index - self.info.first_frame) / Fraction(self.info.fps)
            pts = round(seconds / self._time_base)
        if self._constant_rate and self._last_pts is not None:
            pts = max(pts, self._last_pts + 1)  # AVI has no timestamps: one frame per tick
        return pts

    def _seconds(self, frame: Frame) -> Fraction:
        return self._pts(frame) * self._time_base

    def _video_frame(self, frame: Frame) -> Any:
        height, width = frame.image.shape[:2]
        if (width, height) != (self.info.width, self.info.height):
            raise MediaError(f"frame {frame.index} is {width}x{height}, but {self.path} is being "
                             f"written at {self.info.width}x{self.info.height} (the plate's first frame): "
                             "a movie has one frame size; conform the plate's odd frames or write a sequence")
        pix_fmt = self.plan.pix_fmt
        if pix_fmt == "yuv420p":  # fast path (PERF_NOTES): cv2 colour conversion, no swscale
            rgb = display_code_values(frame, 8)
            yuv = rgb_to_i420(rgb, colorspace=self._matrix, full_range=self._full_range)
            out = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        else:
            bits = 8 if self.plan.bit_depth <= 8 or frame.image.dtype == np.uint8 else 16
            rgb = display_code_values(frame, bits)
            if self._alpha:
                image = av.VideoFrame.from_ndarray(with_alpha(rgb, frame.alpha),
                                                   format="rgba" if bits == 8 else "rgba64le")
            else:
                image = av.VideoFrame.from_ndarray(rgb, format="rgb24" if bits == 8 else "rgb48le")
            if self._is_rgb:
                out = image.reformat(format=pix_fmt)
            else:
                out = image.reformat(
                    format=pix_fmt,
                    dst_colorspace=_SWS_COLORSPACE.get(self._matrix or 5, 5),
                    dst_color_range=2 if self._full_range else 1,
                    interpolation="BILINEAR",
                )
        if not self._is_rgb:
            out.colorspace = self._matrix if self._matrix is not None else 2
            out.color_range = 2 if self._full_range else (1 if self.info.color_range == "tv" else 0)
        return out

    def write(self, frame: Frame) -> None:
        """Encode one frame (frames must come in presentation order).

        Args:
            frame: ``(H, W, 3)`` RGB at the writer's size: ``uint8``/``uint16`` display code values or
                ``float32`` (see :func:`~vfxswap.io.sequences.display_code_values`).

        Raises:
            MediaError: a frame of another size (the plate changes size).
            OutputError: the writer is closed, or encoding/writing fails (disk full).
        """
        if self._closed:
            raise OutputError(f"the movie writer for {self.path} is closed")
        if not self._configured:
            self._configure(frame)
        pts = self._pts(frame)
        if self._last_pts is not None and pts <= self._last_pts:
            # Phones and screen recorders write frames with equal timestamps: keep the frame, one
            # tick of the output time base after the previous one, and record the move.
            self.nudged.append((frame.index, pts, self._last_pts + 1))
            logger.warning("frame %d of %s has pts %d, not after the previous frame's %d: written at %d "
                           "(%s s later)", frame.index, self.path, pts, self._last_pts, self._last_pts + 1,
                           (self._last_pts + 1 - pts) * self._time_base)
            pts = self._last_pts + 1
        video = self._video_frame(frame)
        video.pts = pts
        video.time_base = self._time_base
        try:
            for packet in self._stream.encode(video):
                self._container.mux(packet)
        except OSError as exc:  # av.error.OSError too: disk full, I/O error
            raise write_error(self.path, exc) from exc
        except (av.error.FFmpegError, ValueError) as exc:
            raise OutputError(f"cannot encode frame {frame.index} into {self.path} "
                              f"({self.plan.codec} {self.plan.pix_fmt}): {one_line(exc)}") from exc
        self._last_pts = pts
        self._last_index = frame.index
        self._last_time = pts * self._time_base
        self.frames_written += 1
        if self._audio is not None:
            self._audio.mux_until(self._container, self._last_time)

    # -- finishing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the encoder, copy the remaining audio and rename the movie into place (idempotent).

        Raises:
            OutputError: no frame was written, or flushing/writing failed; the temp file is removed.
        """
        if self._closed:
            return
        if self.frames_written == 0:
            self.abort()
            raise OutputError(f"no frames were written to {self.path}; nothing was saved")
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                last = self.info.first_frame + self.info.frame_count - 1
                if self.info.frame_count <= 0 or self._last_index < last:
                    self._audio.end = self._last_time + 1 / Fraction(self.info.fps)
                self._audio.mux_until(self._container, None)
                self._audio.close()
            self._container.close()
            self._container = None
        except BaseException as exc:
            self.abort()
            if isinstance(exc, (av.error.FFmpegError, OSError, ValueError)):
                raise write_error(self.path, exc) from exc
            raise
        self._closed = True
        commit_temp(self._temp, self.path)
        logger.info("wrote %s: %d frames, %s %s", self.path, self.frames_written, self.plan.codec,
                    self.plan.pix_fmt)

    def abort(self) -> None:
        """Stop and delete the temp file; nothing appears under the final name (idempotent)."""
        self._closed = True
        if self._audio is not None:
            with contextlib.suppress(Exception):
                self._audio.close()
            self._audio = None
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        remove_quietly(self._temp)


def _is_movie_source(path: str) -> bool:
    """Whether ``path`` is a movie to take audio from (not an image sequence, folder, image or stream)."""
    from .sequences import is_image_path, is_sequence_pattern

    if is_stream(path):
        logger.warning("audio of the stream %s is not copied (a stream cannot be read twice)", path)
        return False
    if os.path.isdir(path) or is_image_path(path) or (not os.path.exists(path) and is_sequence_pattern(path)):
        logger.debug("%s is not a movie: no audio to copy", path)
        return False
    return True


def create_output_temp(path: str) -> str:
    """Create the output folder of ``path`` if needed and an exclusive, unpredictable temp file
    beside it (see :mod:`vfxswap.atomic`); returns the temp file's name."""
    prepare_folder(os.path.dirname(os.path.abspath(path)), path)
    return create_temp(path)
