"""The library side of ``vfxswap assemble``: find a shot's movie chunks, check that they cover its
frames once, and join them by stream copy (:func:`vfxswap.io.concat.concat_movies`) with the plate's
audio and a settings file beside the result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from fractions import Fraction

from .. import __version__
from ..atomic import replace_atomically
from ..errors import ConfigError, MediaError
from ..io.frames import format_frames, parse_frames
from ..io.writer import settings_file
from .farm import _RANGE_NAME_RE, chunk_frames



def find_chunks(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Chunk movies from files and folders, in frame order when every name carries its range.

    A folder contributes its movie files named ``STEM.RANGE.ext`` (``swap.1001-1008.mov``; hidden
    and ``.tmp-`` files skipped). If all chunks' names carry a range they are sorted by first frame;
    otherwise files keep the order given.

    Raises:
        MediaError: a path that does not exist, a folder without chunk movies, or a folder holding
            the chunks of several outputs.
    """
    found: list[str] = []
    for item in paths:
        path = os.fspath(item)
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if not n.startswith(".") and chunk_frames(n) is not None)
            if not names:
                raise MediaError(f"no chunk movies (NAME.A-B.mov) in {path}; render the chunks first")
            outputs = sorted({_chunk_output_name(n) for n in names})
            if len(outputs) > 1:
                raise MediaError(f"{path} holds the chunks of several outputs ({', '.join(outputs)}); "
                                 "pass the chunk files instead")
            found.extend(os.path.join(path, n) for n in names)
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise MediaError(f"no such chunk file or folder: {path}")
    ranges = [chunk_frames(p) for p in found]
    if found and all(ranges):
        found = [p for _, p in sorted(zip(ranges, found), key=lambda pair: pair[0][0])]  # type: ignore[index]
    return found


def _chunk_output_name(chunk: str) -> str:
    """``swap.1001-1008.mov`` -> ``swap.mov``: the output a chunk file belongs to."""
    name, ext = os.path.splitext(os.path.basename(chunk))
    match = _RANGE_NAME_RE.fullmatch(name)
    return (match.group("stem") if match else name) + ext.lower()


def check_coverage(chunks: Sequence[str], frames: Iterable[int] | None) -> list[int] | None:
    """Check that chunk names cover each frame once (and exactly ``frames`` when given).

    Returns:
        All frames the chunks hold, in order; ``None`` when some name carries no range (then
        nothing can be checked and ``frames`` must be ``None``).

    Raises:
        MediaError: chunks overlap, or frames are missing or extra.
        ConfigError: ``frames`` given but a chunk name carries no range.
    """
    ranges = [chunk_frames(c) for c in chunks]
    if not all(ranges):
        if frames is not None:
            unnamed = next(c for c, r in zip(chunks, ranges) if not r)
            raise ConfigError(f"cannot check --frames: {os.path.basename(unnamed)} is not named NAME.A-B.ext")
        return None
    seen: dict[int, str] = {}
    held: list[int] = []
    for chunk, numbers in zip(chunks, ranges):
        for n in numbers or ():
            if n in seen:
                raise MediaError(f"chunks {os.path.basename(seen[n])} and {os.path.basename(chunk)} both hold frame "
                                 f"{n}; delete the stale one")
            seen[n] = chunk
            held.append(n)
    if frames is not None:
        wanted = set(frames)
        missing = sorted(wanted - seen.keys())
        extra = sorted(seen.keys() - wanted)
        if missing:
            raise MediaError(f"no chunk holds frames {format_frames(missing)}; render them first "
                             f"(vfxswap verify lists what is missing)")
        if extra:
            raise MediaError(f"chunks hold frames {format_frames(extra)} outside --frames; move those chunks away")
    return held


def audio_source_of(chunk: str) -> str | None:
    """The movie a chunk was converted from (``"source"`` in its ``.vfxswap.json``); ``None`` when
    there are no settings or the source is an image sequence, a folder or a still.

    Raises:
        MediaError: the settings name a movie that does not exist.
    """
    from ..io.sequences import is_image_path, is_sequence_pattern

    path = settings_file(chunk)
    try:
        source = json.loads(path.read_text(encoding="utf-8")).get("source")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(source, str) or not source or os.path.isdir(source) or is_image_path(source) \
            or is_sequence_pattern(source):
        return None
    if not os.path.isfile(source):
        raise MediaError(f"the plate {source} (from {path.name}) is missing; pass --audio-from PLATE or --no-audio")
    return source


def assemble(chunks: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
             frames: Iterable[int] | str | None = None, audio_from: str | None = None, audio: bool = True):
    """Join chunk movies into ``output`` (stream copy) and write its ``.vfxswap.json``.

    Args:
        chunks: chunk files and/or folders (see :func:`find_chunks`).
        output: the movie to write.
        frames: frames the chunks must cover exactly (expression or numbers); ``None``: no check.
        audio_from: movie whose audio is copied; ``None``: the plate named by the first chunk's
            settings (no audio if it has none or is an image sequence).
        audio: ``False`` writes no audio.

    Returns:
        The :class:`~vfxswap.io.concat.ConcatReport`.

    Raises:
        MediaError, ConfigError, OutputError: see :func:`~vfxswap.io.concat.concat_movies`,
            :func:`find_chunks` and :func:`check_coverage`.
    """
    from ..io.concat import concat_movies

    files = find_chunks(chunks)
    if not files:
        raise ConfigError("assemble needs at least one chunk")
    wanted = parse_frames(frames) if isinstance(frames, str) else (list(frames) if frames is not None else None)
    held = check_coverage(files, wanted)
    plate = audio_from if audio_from is not None else audio_source_of(files[0])
    starts = _plate_starts(files, plate) if plate is not None and held is not None else None
    report = concat_movies(files, output, audio_from=plate if audio else None, starts=starts)
    _write_assembled_settings(files, os.fspath(output), held, plate if audio else None)
    return report


def _plate_starts(chunks: Sequence[str], plate: str) -> list[Fraction] | None:
    """The plate's time of each chunk's first frame (numbered from the chunks' ``--start-frame``),
    so the joined movie keeps the plate's timing exactly; ``None`` without settings."""
    from ..io.concat import frame_times

    try:
        settings = json.loads(settings_file(chunks[0]).read_text(encoding="utf-8")).get("settings", {})
        start_frame = int(settings["start_frame"])
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    try:
        times = frame_times(plate)
    except MediaError:  # audio only (a WAV) or unreadable: concat_movies reports the latter
        return None
    firsts = [(chunk_frames(c) or [start_frame])[0] - start_frame for c in chunks]
    outside = [c for c, i in zip(chunks, firsts) if not 0 <= i < len(times)]
    if outside:
        raise MediaError(f"{os.path.basename(outside[0])} starts outside the plate {plate} ({len(times)} frames "
                         f"numbered from {start_frame}); pass --audio-from with the chunks' plate")
    return [times[i] for i in firsts]


def _write_assembled_settings(chunks: Sequence[str], output: str, frames: list[int] | None,
                              audio_from: str | None) -> None:
    try:
        data = json.loads(settings_file(chunks[0]).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    settings = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    if frames is not None:
        settings["frames"] = format_frames(frames)
    data.update(vfxswap=__version__, settings=settings, chunks=[os.path.basename(c) for c in chunks],
                audio_from=audio_from)
    text = json.dumps(data, indent=2) + "\n"
    replace_atomically(settings_file(output), lambda tmp: tmp.write_text(text, encoding="utf-8"), durable=False)
