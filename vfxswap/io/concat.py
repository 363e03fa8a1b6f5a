"""Join movie chunks into one movie by stream copy (no re-encode), with PyAV.

A second PyAV importer beside :mod:`vfxswap.io.video` (whose audio copier and container helpers it
reuses). Farm chunks of one shot (``swap.chunks/swap.1001-1050.mov`` ...) are encoded alike, so
their packets can be copied one after another:

* every chunk's first video stream must match the first chunk's: codec, codec parameters
  (extradata), size, pixel format, time base and frame rate; anything else is refused;
* timestamps continue: given ``starts`` (the plate's time of each chunk's first frame,
  :func:`frame_times`), each chunk is placed exactly there, which undoes any shift a muxer applied
  to a chunk (Matroska delays video by the audio priming); without, a chunk that starts where the
  previous one ended keeps its times, a chunk whose times restart (from 0) is shifted to follow
  the previous one, and one starting later than the previous end leaves a hole and is refused;
  decoding timestamps must keep increasing (overlaps are refused);
* audio is copied once from ``audio_from`` (the original plate) over the joined video's time
  span, never from the chunks (their audio overlaps at the cuts);
* the first chunk's start timecode is kept; the movie is written under an exclusive ``.tmp-RANDOM-NAME`` and renamed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import av
import av.error

from ..atomic import commit_temp, remove_quietly
from ..errors import ConfigError, MediaError, OutputError, one_line
from .video import AudioCopy, create_output_temp, open_container, stream_fps, timecode_tag
from .writer import MOVIE_EXTENSIONS

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ConcatReport:
    """What :func:`concat_movies` wrote.

    Attributes:
        output: the joined movie.
        chunks: the chunk files, in the order joined.
        frames: video packets (frames) copied.
        audio_packets: audio packets copied from ``audio_from``.
        start, end: the joined video's time span in seconds.
    """

    output: str
    chunks: tuple[str, ...]
    frames: int
    audio_packets: int
    start: Fraction
    end: Fraction


@dataclasses.dataclass(frozen=True)
class _Layout:
    """The parameters two chunks must share to be joined by copying packets."""

    codec: str
    width: int
    height: int
    pix_fmt: str
    time_base: Fraction
    rate: Fraction
    extradata: bytes

    def differences(self, other: _Layout) -> list[str]:
        labels = {"codec": "codec", "width": "width", "height": "height", "pix_fmt": "pixel format",
                  "time_base": "time base", "rate": "frame rate"}
        out = [f"{label} {getattr(self, f)} vs {getattr(other, f)}" for f, label in labels.items()
               if getattr(self, f) != getattr(other, f)]
        if not out and self.extradata != other.extradata:
            out.append("encoder settings (codec extradata)")
        return out


def _layout(stream: Any) -> _Layout:
    ctx = stream.codec_context
    return _Layout(codec=ctx.name or "", width=int(ctx.width), height=int(ctx.height), pix_fmt=ctx.pix_fmt or "",
                   time_base=Fraction(stream.time_base), rate=stream_fps(stream), extradata=bytes(ctx.extradata or b""))


def _video(container: Any, path: str) -> Any:
    if not container.streams.video:
        raise MediaError(f"{path} has no video stream; pass the chunk movies of one render")
    return container.streams.video[0]


def _source_span(path: str) -> tuple[Fraction, Fraction]:
    """``(start, end)`` seconds of the first video stream of the audio source."""
    container = open_container(path)
    try:
        stream = _video(container, path) if container.streams.video else None
        if stream is None:
            return Fraction(0), Fraction(0)
        tb = Fraction(stream.time_base)
        start = Fraction(stream.start_time or 0) * tb
        if stream.duration:
            return start, start + stream.duration * tb
        fps = stream_fps(stream)
        return start, start + Fraction(stream.frames or 0) / fps
    finally:
        container.close()


def concat_movies(chunks: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
                  audio_from: str | os.PathLike[str] | None = None,
                  starts: Sequence[Fraction] | None = None) -> ConcatReport:
    """Join the first video stream of ``chunks`` into ``output`` by copying packets.

    Args:
        chunks: movie files in frame order (``.mov``/``.mp4``/``.mkv``/``.mxf``/``.avi``).
        output: movie to write; its container must hold the chunks' codec (FFV1: ``.mkv``).
        audio_from: movie whose audio streams are copied (packet for packet) over the joined
            video's time span; ``None`` writes no audio.
        starts: the time (seconds) each chunk's first frame must have in the output, e.g. the
            plate's time of that frame (:func:`frame_times`). A muxer may have shifted a chunk's
            times (Matroska moves video later by the audio priming delay), so with the plate at
            hand this keeps picture and sound in sync exactly. ``None``: chunks follow on.

    Returns:
        A :class:`ConcatReport`.

    Raises:
        ConfigError: no chunks, an output extension that is not a movie, or a codec the output
            container cannot hold.
        MediaError: a chunk is missing, unreadable or has no video; chunks whose streams differ
            (codec, size, pixel format, time base, frame rate, encoder settings); a hole or an
            overlap in the chunks' timestamps.
        OutputError: the output cannot be written, or is one of the chunks.
    """
    paths = [os.fspath(c) for c in chunks]
    out_path = os.fspath(output)
    if not paths:
        raise ConfigError("nothing to join: no chunk movies given")
    ext = os.path.splitext(out_path)[1][1:].lower()
    if ext not in MOVIE_EXTENSIONS:
        raise ConfigError(f"cannot write a movie with extension .{ext or '(none)'}; use one of "
                          f"{', '.join('.' + e for e in MOVIE_EXTENSIONS)}")
    for path in paths:
        if os.path.exists(out_path) and os.path.exists(path) and os.path.samefile(path, out_path):
            raise OutputError(f"refusing to write {out_path} over one of its chunks; pick another name")
    inputs = [open_container(p) for p in paths]  # MediaError for a missing/unreadable chunk
    try:
        streams = [_video(c, p) for c, p in zip(inputs, paths)]
        layouts = [_layout(s) for s in streams]
        for path, layout in zip(paths[1:], layouts[1:]):
            diff = layouts[0].differences(layout)
            if diff:
                raise MediaError(f"cannot join {os.path.basename(path)} to {os.path.basename(paths[0])} without "
                                 f"re-encoding: {'; '.join(diff)}; render every chunk with the same settings")
        if starts is not None and len(starts) != len(paths):
            raise ConfigError(f"got {len(starts)} start times for {len(paths)} chunks")
        return _write(paths, inputs, streams, out_path, ext, None if audio_from is None else os.fspath(audio_from),
                      None if starts is None else [Fraction(t) for t in starts])
    finally:
        for container in inputs:
            container.close()


def _write(paths: list[str], inputs: list[Any], streams: list[Any], out_path: str, ext: str,
           audio_from: str | None, starts: list[Fraction] | None) -> ConcatReport:
    temp = create_output_temp(out_path)
    container: Any = None
    audio: AudioCopy | None = None
    try:
        container = av.open(temp, mode="w")
        try:
            out = container.add_stream_from_template(streams[0])
        except ValueError as exc:
            raise ConfigError(f"{streams[0].codec_context.name} video cannot be stored in .{ext} without "
                              f"re-encoding; write the chunks' container (.{_ext(paths[0])})") from exc
        out.codec_context.framerate = stream_fps(streams[0])  # the stream's frame rate (mov timecode tracks need it)
        tag = timecode_tag(inputs[0], streams[0])
        if tag:
            out.metadata["timecode"] = tag
            container.metadata["timecode"] = tag
        if audio_from is not None:
            audio = AudioCopy(audio_from, container, ext, target=out_path)
        if container.format.name in ("mov", "mp4"):  # exact start offsets in the edit list (see MovieWriter)
            scale = math.lcm(*(Fraction(s.time_base).denominator for s in container.streams if s.time_base))
            if scale < 2**31:
                container.container_options["movie_timescale"] = str(scale)
        half = 1 / (2 * stream_fps(streams[0]))
        if audio is not None:  # copy the audio under the joined video only (as MovieWriter does)
            src_start, src_end = _source_span(audio_from)  # type: ignore[arg-type]
            first = starts[0] if starts is not None else _start(streams[0])
            audio.start = first if first > src_start + half else None
        frames, start, end = _copy_video(paths, inputs, streams, container, out, audio, starts)
        if audio is not None:
            audio.end = end if end < src_end - half else None
            audio.mux_until(container, None)
            audio.close()
        copied = audio.copied if audio is not None else 0
        container.close()
        container = None
        commit_temp(temp, out_path)
    except BaseException as exc:
        if audio is not None:
            try:
                audio.close()
            except Exception:  # noqa: BLE001 - already failing; the first error is reported
                pass
        if container is not None:
            try:
                container.close()
            except Exception:  # noqa: BLE001
                pass
        remove_quietly(temp)
        if isinstance(exc, (av.error.FFmpegError, OSError)):
            raise OutputError(f"cannot write {out_path}: {one_line(exc)}") from exc
        raise
    logger.info("joined %d chunks into %s: %d frames, %d audio packets", len(paths), out_path, frames, copied)
    return ConcatReport(output=out_path, chunks=tuple(paths), frames=frames, audio_packets=copied, start=start,
                        end=end)


def _ext(path: str) -> str:
    return os.path.splitext(path)[1][1:].lower() or "mov"


def _start(stream: Any) -> Fraction:
    """Presentation time (seconds) of a stream's first frame."""
    return Fraction(stream.start_time or 0) * Fraction(stream.time_base)


def frame_times(path: str | os.PathLike[str]) -> list[Fraction]:
    """Presentation times (seconds, ascending) of the frames of a movie's first video stream,
    read from its packets (nothing is decoded): ``frame_times(plate)[i]`` is frame ``i``'s time.

    Raises:
        MediaError: the movie is missing, unreadable or has no video.
    """
    text = os.fspath(path)
    container = open_container(text)
    try:
        stream = _video(container, text)
        tb = Fraction(stream.time_base)
        times = sorted(p.pts * tb for p in container.demux(stream) if p.pts is not None and p.size)
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot read {text}: {one_line(exc)}; is the file complete?") from exc
    finally:
        container.close()
    return times


def _copy_video(paths: list[str], inputs: list[Any], streams: list[Any], container: Any, out: Any,
                audio: AudioCopy | None, starts: list[Fraction] | None) -> tuple[int, Fraction, Fraction]:
    """Copy each chunk's video packets with continuing timestamps; returns (frames, start, end)."""
    tb = Fraction(streams[0].time_base)
    frame = 1 / stream_fps(streams[0])
    half = frame / 2
    previous_end: Fraction | None = None
    first_start: Fraction | None = None
    last_dts: int | None = None
    frames = 0
    for index, (path, chunk, stream) in enumerate(zip(paths, inputs, streams)):
        start = _start(stream)
        if starts is not None:
            offset = round((starts[index] - start) / tb)  # put the chunk's first frame where it belongs
            if first_start is None:
                first_start = start + offset * tb
        elif previous_end is None:
            offset = 0
            first_start = start
        elif abs(start - previous_end) <= half:
            offset = 0  # the chunk carries the plate's times and follows on
        elif start < previous_end:
            offset = round((previous_end - start) / tb)  # times restart in each chunk: shift it
        else:
            raise MediaError(f"{os.path.basename(path)} starts at {float(start):.3f} s but the previous chunk ends at "
                             f"{float(previous_end):.3f} s: a chunk is missing or out of order")
        chunk_end = None
        try:
            for packet in chunk.demux(stream):
                if packet.pts is None and packet.dts is None:
                    continue  # demuxer flush packet
                if packet.pts is not None:
                    packet.pts += offset
                if packet.dts is not None:
                    packet.dts += offset
                    if last_dts is not None and packet.dts <= last_dts:
                        raise MediaError(f"the timestamps of {os.path.basename(path)} overlap the previous chunk; "
                                         "pass the chunks in frame order, each once")
                    last_dts = packet.dts
                pts = packet.pts if packet.pts is not None else packet.dts
                duration = (packet.duration or 0) * tb
                if abs(duration - frame) <= tb:  # Matroska rounds 1/24 s down to 41 ms: take the exact rate
                    duration = frame
                packet_end = pts * tb + duration
                chunk_end = packet_end if chunk_end is None else max(chunk_end, packet_end)
                packet.stream = out
                container.mux(packet)
                frames += 1
                if audio is not None:
                    audio.mux_until(container, pts * tb)
        except av.error.FFmpegError as exc:
            raise MediaError(f"cannot read {path}: {one_line(exc)}; is the chunk complete?") from exc
        if chunk_end is None:
            raise MediaError(f"{path} holds no video frames; render the chunk again")
        previous_end = chunk_end
    assert first_start is not None and previous_end is not None
    return frames, first_start, previous_end
