"""From an editorial timeline to convert jobs, and back to a relinked timeline.

Frame numbers are the converter's (``--frames``): a movie's frame ``i`` is ``start_frame + i``
(1001 + i), an image sequence keeps its file numbers. A clip's media time (its ``source_range``,
often timecode frames such as 86410 for 01:00:00:10) maps to those numbers through a
:class:`MediaClock`:

* a movie: media time ``available_range.start_time`` (else the movie's start timecode, else 0) is
  frame ``start_frame``;
* an :class:`~opentimelineio.schema.ImageSequenceReference`: OTIO's own mapping
  (``available_range.start_time`` is file ``start_frame``);
* a sequence pattern in an ``ExternalReference``: ``available_range.start_time`` is the first file;
  without an available range the times are taken as file numbers when they fall inside the
  sequence, else as offsets from its first file.

Each selected clip uses its visible range (``source_range`` plus the media under adjacent
transitions; time warps scale it), widened by ``handles`` frames clamped to the media. The ranges of
one media file are merged, so a file the cut uses twice is converted once; each merged range is one
:class:`~vfxswap.timeline.farm.SwapJob`. Converted media is an image sequence
``OUTPUT_DIR/NAME_vfxswap.####.EXT`` numbered like the converter numbers its frames (or one movie
per media file for movie extensions).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import opentimelineio as otio

from .. import __version__
from ..config import ConvertConfig
from ..errors import ConfigError, MediaError, TimelineError
from ..io.source import probe
from ..io.writer import MOVIE_EXTENSIONS
from ..types import VideoInfo
from ..types import SwapJob
from .otio import (Cut, SelectedClip, Selection, check_media_roots, media_candidates, movie_reference, provenance,
                   reference_url, relink_clip, resolve_media, select_clips, sequence_reference)
from .verify import VerifyReport, verify_output

logger = logging.getLogger(__name__)

RationalTime = otio.opentime.RationalTime
TimeRange = otio.opentime.TimeRange

SEQUENCE_EXTENSIONS: tuple[str, ...] = ("exr", "dpx", "tif", "tiff", "png")
OUTPUT_EXTENSIONS: tuple[str, ...] = SEQUENCE_EXTENSIONS + MOVIE_EXTENSIONS
Status = Literal["planned", "converted", "missing media", "no face", "not converted", "error"]
ProgressFn = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class MediaClock:
    """A linear map between media time and converter frame numbers.

    Attributes:
        origin: media time of frame ``number``.
        number: the frame number at ``origin``.
        rate: frames per second that media time is counted in (e.g. 24 for timecode frames of a
            23.976 movie: one timecode frame is one frame).
    """

    origin: RationalTime
    number: int
    rate: float

    def number_at(self, time: RationalTime) -> int:
        """The frame shown at media ``time`` (a time inside a frame gives that frame)."""
        offset = (time - self.origin).value_rescaled_to(self.rate)
        return self.number + math.floor(round(offset, 6))

    def time_of(self, number: int) -> RationalTime:
        """Media time of frame ``number``."""
        return self.origin.rescaled_to(self.rate) + RationalTime(number - self.number, self.rate)


@dataclasses.dataclass
class ClipJob:
    """One selected clip and what happens to it.

    Attributes:
        selected: the selected clip (its ``clip`` is the live OTIO object of the timeline).
        status: ``planned`` until run; then ``converted``, ``missing media``, ``no face``,
            ``not converted`` (relink-only: converted frames missing) or ``error``.
        message: why, for anything but ``planned``/``converted``.
        media: the resolved media path (``None`` for offline clips).
        first, last: the frame numbers the clip shows (transitions included, handles not).
        span: ``first``..``last`` widened by the handles, clamped to the media.
        clock: media time <-> frame numbers of its media.
        shot: the job that converts its frames.
    """

    selected: SelectedClip
    status: Status = "planned"
    message: str = ""
    media: str | None = None
    first: int | None = None
    last: int | None = None
    span: tuple[int, int] | None = None
    clock: MediaClock | None = None
    shot: SwapJob | None = None

    @property
    def clip(self) -> otio.schema.Clip:
        """The OTIO clip."""
        return self.selected.clip

    @property
    def label(self) -> str:
        """``TRACK/NAME`` (see :class:`~vfxswap.timeline.otio.SelectedClip`)."""
        return self.selected.label

    @property
    def frames(self) -> str:
        """``first-last``, or ``""``."""
        return f"{self.first}-{self.last}" if self.first is not None else ""


@dataclasses.dataclass
class Conform:
    """The plan for one cut: its selected clips and the shots (convert jobs) they need.

    Attributes:
        cut: the cut (its timeline is relinked in place by :func:`relink`).
        clips: one :class:`ClipJob` per selected clip, in track and time order.
        shots: the convert jobs, each media range once.
    """

    cut: Cut
    clips: list[ClipJob]
    shots: list[SwapJob]

    def clips_of(self, shot: SwapJob) -> list[ClipJob]:
        """The clips whose frames ``shot`` converts."""
        return [c for c in self.clips if c.shot is shot]


@dataclasses.dataclass(frozen=True)
class ShotResult:
    """What converting one shot did: frames written and swapped, or the error that stopped it."""

    frames: int = 0
    frames_swapped: int = 0
    error: str | None = None


# --- media time ---------------------------------------------------------------------------------

def _nominal(rate: float) -> int:
    return round(rate)


def _counting_rate(time_rate: float, media_rate: float) -> float:
    """Count frames in the clip's time rate when it is the media's nominal rate (24 vs 23.976),
    else in the media's rate (a cut timed in seconds or in another rate)."""
    return time_rate if _nominal(time_rate) == _nominal(media_rate) else media_rate


def _time_rate(clip: otio.schema.Clip, reference: otio.core.MediaReference) -> float | None:
    for r in (clip.source_range, reference.available_range):
        if r is not None:
            return r.start_time.rate
    return None


def media_clock(clip: otio.schema.Clip, info: VideoInfo, *, start_frame: int = 1001,
                used: TimeRange | None = None) -> MediaClock:
    """How ``clip``'s media time maps to frame numbers of the media ``info`` describes.

    Args:
        clip: the clip (its active media reference is read).
        info: the probed media.
        start_frame: number of a movie's first frame.
        used: the clip's used range, for the sequence heuristic (module docstring).

    Raises:
        TimelineError: an image-sequence reference with ``frame_step`` other than 1.
    """
    reference = clip.media_reference
    media_rate = float(info.fps)
    time_rate = _time_rate(clip, reference) or media_rate
    available = reference.available_range
    if isinstance(reference, otio.schema.ImageSequenceReference):
        if reference.frame_step != 1:
            raise TimelineError(f"image sequence with frame_step {reference.frame_step}: only 1 is supported")
        ref_rate = reference.rate if reference.rate != 1 or time_rate == 1 else time_rate  # rate defaults to 1
        rate = _counting_rate(time_rate, ref_rate)
        origin = available.start_time if available is not None else RationalTime(0, rate)
        return MediaClock(origin, reference.start_frame, rate)
    rate = _counting_rate(time_rate, media_rate)
    if info.kind == "movie":
        if available is not None:
            origin = available.start_time
        elif info.timecode:
            origin = otio.opentime.from_timecode(info.timecode, rate)
        else:
            origin = RationalTime(0, rate)
        return MediaClock(origin, start_frame, rate)
    if available is not None:
        return MediaClock(available.start_time, info.first_frame, rate)
    as_numbers = MediaClock(RationalTime(info.first_frame, rate), info.first_frame, rate)
    if used is not None:
        first = as_numbers.number_at(used.start_time)
        if not info.first_frame <= first < info.first_frame + info.frame_count:
            return MediaClock(RationalTime(0, rate), info.first_frame, rate)
    return as_numbers


def _time_scalar(clip: otio.schema.Clip) -> float:
    scalar = 1.0
    for effect in clip.effects:
        if isinstance(effect, otio.schema.LinearTimeWarp):
            scalar *= effect.time_scalar
    return scalar


def used_range(clip: otio.schema.Clip) -> TimeRange | None:
    """The media time a clip shows: its source range plus the media under adjacent transitions,
    scaled by linear time warps (a freeze frame uses one frame). ``None`` when neither the clip nor
    its reference gives a range (then the whole media counts)."""
    try:
        visible = clip.visible_range() if clip.parent() is not None else clip.trimmed_range()
    except Exception:  # no source range and no available range
        return None
    scalar = abs(_time_scalar(clip))
    if scalar == 1.0:
        return visible
    rate = visible.duration.rate
    frames = max(1.0, visible.duration.value * scalar)
    return TimeRange(visible.start_time, RationalTime(math.ceil(round(frames, 6)), rate))


def clip_frames(clock: MediaClock, used: TimeRange) -> tuple[int, int]:
    """First and last frame numbers (inclusive) that ``used`` covers."""
    first = clock.number_at(used.start_time)
    count = math.ceil(round(used.duration.value_rescaled_to(clock.rate), 6))
    return first, first + max(count, 1) - 1


# --- paths --------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"%0?(\d*)d|#+|@+")


def _is_pattern(path: str) -> bool:
    return _TOKEN_RE.search(os.path.basename(path)) is not None


def frame_path(pattern: str, number: int) -> str:
    """The file of frame ``number`` of ``pattern`` (``#``/``@`` count or ``%0Nd`` = padding)."""
    folder, name = os.path.split(pattern)
    token = list(_TOKEN_RE.finditer(name))[-1]
    text = token.group(0)
    pad = int(token.group(1) or 1) if text.startswith("%") else len(text)
    return os.path.join(folder, f"{name[:token.start()]}{number:0{pad}d}{name[token.end():]}")


def _present(path: str) -> bool:
    """Whether a media path (a file, folder or sequence pattern with at least one file) exists."""
    if not _is_pattern(path):
        return os.path.exists(path)
    folder, name = os.path.split(path)
    token = list(_TOKEN_RE.finditer(name))[-1]
    prefix, suffix = name[:token.start()], name[token.end():]
    try:
        return any(f.startswith(prefix) and f.endswith(suffix) for f in os.listdir(folder or "."))
    except OSError:
        return False


# --- planning -----------------------------------------------------------------------------------

def media_stem(path: str) -> str:
    """A media file's name for output files: ``plate.mov`` -> ``plate``, ``sh010.####.exr`` -> ``sh010``."""
    name = os.path.basename(path)
    if _is_pattern(name):
        name = _TOKEN_RE.split(name)[0].rstrip("._")
    else:
        name = os.path.splitext(name)[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "media"


def output_path(output_dir: str | os.PathLike, stem: str, ext: str) -> str:
    """Where converted media of a media file named ``stem`` go: ``DIR/stem_vfxswap.####.ext`` (a
    sequence) or ``DIR/stem_vfxswap.ext`` (a movie)."""
    if ext in MOVIE_EXTENSIONS:
        return os.path.join(os.fspath(output_dir), f"{stem}_vfxswap.{ext}")
    return os.path.join(os.fspath(output_dir), f"{stem}_vfxswap.####.{ext}")


def _merge(ranges: Sequence[tuple[int, int]], *, span: bool) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for first, last in sorted(ranges):
        if merged and (span or first <= merged[-1][1] + 1):
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [(a, b) for a, b in merged]


def plan(cut: Cut, *, output_dir: str | os.PathLike, selection: Selection = Selection(), handles: int = 0,
         media_dir: str | os.PathLike | None = None, media_roots: Sequence[str | os.PathLike] = (),
         ext: str = "exr", start_frame: int = 1001) -> Conform:
    """Map the selected clips of a cut to convert jobs.

    Args:
        cut: the cut (see :func:`vfxswap.timeline.otio.read_cut`).
        output_dir: folder of the converted media.
        selection: which clips.
        handles: extra frames converted before and after each clip's range, clamped to the media.
        media_dir: folder searched for media first (see :func:`~vfxswap.timeline.otio.resolve_media`).
        media_roots: allowed media folders; empty allows any.
        ext: converted media type: a sequence (``exr``, ``dpx``, ``tif``, ``png``) or a movie (``mov``...).
        start_frame: number of a movie's first frame.

    Returns:
        The :class:`Conform`; clips with missing or unusable media are in it with their status.

    Raises:
        ConfigError: bad handles or extension, an unknown track.
        TimelineError: a selected clip's media lies outside ``media_roots``.
    """
    if handles < 0:
        raise ConfigError(f"--handles must be >= 0, got {handles}")
    ext = ext.lower().lstrip(".")
    if ext not in OUTPUT_EXTENSIONS:
        raise ConfigError(f"--ext {ext!r} is not written; use one of {', '.join(OUTPUT_EXTENSIONS)}")
    clips = [ClipJob(s) for s in select_clips(cut.timeline, selection)]
    infos: dict[str, VideoInfo | MediaError] = {}
    for job in clips:
        _place(job, cut, infos, media_dir=media_dir, media_roots=media_roots, handles=handles,
               start_frame=start_frame)
    shots = _shots(clips, output_dir=output_dir, ext=ext, start_frame=start_frame)
    return Conform(cut=cut, clips=clips, shots=shots)


def _place(job: ClipJob, cut: Cut, infos: dict[str, VideoInfo | MediaError], *, media_dir, media_roots,
           handles: int, start_frame: int) -> None:
    """Resolve a clip's media, probe it and find its frames; sets ``job``'s fields or status."""
    clip = job.clip
    reference = clip.media_reference
    url = reference_url(reference)
    if url is None:
        kind = type(reference).__name__
        job.status, job.message = "missing media", ("offline (no media reference)" if kind == "MissingReference"
                                                      else f"a {kind}, no media to convert")
        return
    path = resolve_media(url, base=cut.media_base, media_dir=media_dir)
    check_media_roots(path if not _is_pattern(path) else os.path.dirname(path), media_roots, job.label)
    job.media = path
    if path not in infos:
        try:
            infos[path] = probe(path)
        except MediaError as exc:
            infos[path] = exc
    info = infos[path]
    if isinstance(info, MediaError):
        if _present(path):
            job.status, job.message = "error", str(info)
        else:
            looked = media_candidates(url, base=cut.media_base, media_dir=media_dir)
            job.status, job.message = "missing media", f"{url} not found (looked for {', '.join(looked)})"
        return
    if info.kind == "stills":
        job.status, job.message = "error", f"{path} is a folder of unrelated stills, not a shot"
        return
    used = used_range(clip)
    try:
        clock = media_clock(clip, info, start_frame=start_frame, used=used)
    except TimelineError as exc:
        job.status, job.message = "error", str(exc)
        return
    media_first = start_frame if info.kind == "movie" else info.first_frame
    media_last = media_first + info.frame_count - 1
    first, last = clip_frames(clock, used) if used is not None else (media_first, media_last)
    if first < media_first or last > media_last:
        job.status = "error"
        job.message = (f"uses frames {first}-{last} but {os.path.basename(path)} has {media_first}-{media_last} "
                       "(check the cut's source timecodes or --rate)")
        return
    job.first, job.last, job.clock = first, last, clock
    job.span = (max(media_first, first - handles), min(media_last, last + handles))


def _shots(clips: list[ClipJob], *, output_dir, ext: str, start_frame: int) -> list[SwapJob]:
    """One shot per merged range of each media file; sets each clip's ``shot``."""
    by_media: dict[str, list[ClipJob]] = {}
    for job in clips:
        if job.status == "planned":
            by_media.setdefault(os.path.realpath(job.media), []).append(job)
    shots: list[SwapJob] = []
    stems: set[str] = set()
    for jobs in by_media.values():
        stem = base = media_stem(jobs[0].media)
        n = 1
        while stem in stems:
            n += 1
            stem = f"{base}_{n}"
        stems.add(stem)
        out = output_path(output_dir, stem, ext)
        ranges = _merge([j.span for j in jobs], span=ext in MOVIE_EXTENSIONS)
        for first, last in ranges:
            name = stem if len(ranges) == 1 else f"{stem}_{first}-{last}"
            shot = SwapJob(name=name, source=jobs[0].media, output=out, first=first, last=last, start_frame=start_frame)
            shots.append(shot)
            for job in jobs:
                if first <= job.span[0] and job.span[1] <= last:
                    job.shot = shot
    return shots


# --- converting and relinking -------------------------------------------------------------------

def shot_config(config: ConvertConfig, shot: SwapJob) -> ConvertConfig:
    """``config`` for converting one shot: its frame range and movie numbering."""
    return dataclasses.replace(config, frames=f"{shot.first}-{shot.last}", start_frame=shot.start_frame)


def convert_shots(shots: Sequence[SwapJob], model_dir: str | os.PathLike, config: ConvertConfig = ConvertConfig(), *,
                  progress: ProgressFn | None = None) -> dict[str, ShotResult]:
    """Convert each shot in this process with :func:`vfxswap.convert.api.convert`.

    A shot whose media turns out unreadable is reported (``ShotResult.error``) and the others go on;
    a bad model, option or output folder stops the run (those would fail every shot).

    Args:
        shots: the jobs.
        model_dir: trained model folder.
        config: converter settings (``frames`` and ``start_frame`` are set per shot).
        progress: ``progress(frames_done, frames_total)`` over all shots.

    Returns:
        ``shot.name -> ShotResult``.
    """
    from ..convert.api import convert

    total = sum(s.last - s.first + 1 for s in shots)
    done = 0
    results: dict[str, ShotResult] = {}
    for shot in shots:
        def step(n: int, _total: int, base: int = done) -> None:
            if progress is not None:
                progress(base + n, total)

        try:
            Path(shot.output).parent.mkdir(parents=True, exist_ok=True)
            report = convert(shot.source, model_dir, shot.output, shot_config(config, shot), progress=step)
        except MediaError as exc:
            logger.warning("shot %s: %s", shot.name, exc)
            results[shot.name] = ShotResult(error=str(exc))
        else:
            results[shot.name] = ShotResult(frames=report.frames, frames_swapped=report.frames_swapped)
        done += shot.last - shot.first + 1
        if progress is not None:
            progress(done, total)
    return results


def converted_reference(job: ClipJob, *, metadata: dict | None = None) -> otio.core.MediaReference:
    """The media reference of ``job``'s converted media (its shot's output)."""
    shot, clock = job.shot, job.clock
    if Path(shot.output).suffix.lstrip(".").lower() in MOVIE_EXTENSIONS:
        return movie_reference(shot.output, start_time=clock.time_of(shot.first), frames=shot.last - shot.first + 1,
                               rate=clock.rate, metadata=metadata)
    return sequence_reference(shot.output, first=shot.first, last=shot.last, start_time=clock.time_of(shot.first),
                              rate=clock.rate, metadata=metadata)


def verify_shot(shot: SwapJob) -> VerifyReport:
    """Which frames of ``shot``'s output are missing or do not decode, as ``vfxswap verify`` finds
    them (every sequence file decoded; a movie decoded to the end): a zero-byte or truncated frame
    is not converted media."""
    return verify_output(shot.output, range(shot.first, shot.last + 1))


def output_problem(job: ClipJob, report: VerifyReport) -> str | None:
    """What keeps ``job``'s own frames in ``report`` (its shot's :func:`verify_shot`) from being
    relinked, on one line; ``None`` when every frame is there and decodes."""
    from ..io import format_frames

    own = range(job.first, job.last + 1)
    missing = [n for n in report.missing if n in own]
    unreadable = [n for n in report.unreadable if n in own]
    parts = []
    if missing:
        parts.append(f"{len(missing)} converted frames missing ({format_frames(missing)})")
    if unreadable:
        parts.append(f"{len(unreadable)} converted frames unreadable ({format_frames(unreadable)}: "
                     f"{report.reasons.get(unreadable[0], 'cannot decode')})")
    return f"{'; '.join(parts)} in {job.shot.output}" if parts else None


def converter_settings(output: str | os.PathLike) -> dict:
    """The ``NAME.vfxswap.json`` the converter wrote beside ``output`` (``{}`` when absent or unreadable)."""
    from ..io.writer import settings_file

    try:
        data = json.loads(settings_file(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def provenance_record(output: str | os.PathLike, *, source: str, frames: str, model: str | None = None,
                      config: ConvertConfig | None = None) -> dict[str, object]:
    """The ``clip.metadata["vfxswap"]`` record of media converted to ``output``: model, settings
    digest and version from the converter's ``NAME.vfxswap.json`` beside it, else from ``model``,
    ``config`` and this version."""
    saved = converter_settings(output)
    settings = saved.get("settings") or (dataclasses.asdict(config) if config is not None else {})
    return provenance(model=str(saved.get("model") or model or ""), settings=settings,
                      version=str(saved.get("vfxswap") or __version__), source=source, frames=frames,
                      card=saved.get("card"))


def relink(conform: Conform, *, results: dict[str, ShotResult] | None = None, model: str | None = None,
           config: ConvertConfig | None = None) -> list[ClipJob]:
    """Point every converted clip of ``conform.cut.timeline`` at its converted media, in place.

    With ``results`` (after :func:`convert_shots`): a clip is relinked when its shot swapped at least
    one face; otherwise it is marked ``no face`` or ``error``. Without (``--relink-only``, media
    converted elsewhere): a clip is relinked when every frame of its range is on disk and decodes
    (:func:`verify_shot`, once per shot), else marked ``not converted``. Provenance comes from the
    converter's ``NAME.vfxswap.json`` beside the output, else from ``model`` and ``config``. Clips
    not relinked are left exactly as they were.

    Returns:
        ``conform.clips`` with their final status.
    """
    reports: dict[int, VerifyReport] = {}
    for job in conform.clips:
        if job.status != "planned" or job.shot is None:
            continue
        shot = job.shot
        if results is not None:
            result = results.get(shot.name, ShotResult(error="not converted"))
            if result.error is not None:
                job.status, job.message = "error", result.error
                continue
            if result.frames_swapped == 0:
                job.status, job.message = "no face", f"no face swapped in {shot.first}-{shot.last}; clip left as is"
                continue
        else:
            if id(shot) not in reports:
                reports[id(shot)] = verify_shot(shot)
            problem = output_problem(job, reports[id(shot)])
            if problem is not None:
                job.status, job.message = "not converted", problem
                continue
        record = provenance_record(shot.output, source=job.media, frames=f"{shot.first}-{shot.last}",
                                   model=model, config=config)
        relink_clip(job.clip, converted_reference(job), provenance=record)
        job.status, job.message = "converted", ""
    return conform.clips
