"""OTIO media linker ``vfxswap_linker``: point clips at vfxswap-converted media found by a template.

    otioconvert -i cut.edl -o cut_swapped.otio -a rate=24 --media-linker vfxswap_linker \\
        -M media_dir=/show/converted -M "template={media_dir}/{media}_vfxswap.####.exr"

For each clip it finds the original media (to map the clip's media time to frame numbers: a movie's
first frame is ``start_frame``, a sequence keeps its numbers), fills the template, and when the
converted files hold every frame the clip shows and each decodes (as ``vfxswap verify`` checks),
adds an ``ImageSequenceReference`` (or, for a movie template, an ``ExternalReference``) under the
key ``vfxswap`` and makes it active. The original reference stays beside it; timing is untouched.
Clips it cannot link are left as they are (logged).

Arguments (``media_linker_argument_map``, ``-M key=value`` on the command line):
    media_dir: folder of the converted media (required).
    template: converted media path; fields ``{media_dir}``, ``{media}`` (original file name without
        frame number and extension), ``{clip}`` (clip name), ``{track}`` (its track's name);
        default ``{media_dir}/{media}_vfxswap.####.exr``.
    cut_dir: folder relative original paths are resolved against (default: the current folder).
    search_dir: folder searched for the original media first (like ``vfxswap timeline --media-dir``;
        default: ``cut_dir``, so media beside the cut are found by name).
    start_frame: number of a movie's first frame (default 1001).
    partial: ``true`` links clips whose converted frames are incomplete too (default false).
"""

from __future__ import annotations

import logging
import os
import re

import opentimelineio as otio

from vfxswap.errors import VfxSwapError
from vfxswap.io.source import probe
from vfxswap.io.writer import is_movie_path
from vfxswap.timeline.jobs import clip_frames, frame_path, media_clock, media_stem, provenance_record, used_range
from vfxswap.timeline.otio import (VFXSWAP_KEY, movie_reference, reference_url, relink_clip, resolve_media,
                                   sequence_reference)
from vfxswap.timeline.verify import verify_output

logger = logging.getLogger("vfxswap.otio.linker")

DEFAULT_TEMPLATE = "{media_dir}/{media}_vfxswap.####.exr"
_MAX_RUN = 100_000  # frames scanned around a clip for the extent of the converted sequence


def _flag(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name or "clip").strip("._") or "clip"


def _run(pattern: str, first: int, last: int) -> tuple[int, int] | None:
    """The contiguous run of files of ``pattern`` around ``first``..``last`` that decode (checked as
    ``vfxswap verify`` does: a zero-byte or truncated frame is not converted media); ``None`` if one
    of ``first``..``last`` is missing or does not decode."""
    if not all(os.path.isfile(frame_path(pattern, n)) for n in range(first, last + 1)):
        return None
    low, high = first, last
    while low > 0 and first - low < _MAX_RUN and os.path.isfile(frame_path(pattern, low - 1)):
        low -= 1
    while high - last < _MAX_RUN and os.path.isfile(frame_path(pattern, high + 1)):
        high += 1
    bad = verify_output(pattern, range(low, high + 1)).bad
    if any(first <= n <= last for n in bad):
        return None
    return max((n + 1 for n in bad if n < first), default=low), min((n - 1 for n in bad if n > last), default=high)


def _first_good(pattern: str, first: int, last: int) -> int | None:
    """The first frame of ``first``..``last`` that is there and decodes (``partial=true``)."""
    bad = set(verify_output(pattern, range(first, last + 1)).bad)
    return next((n for n in range(first, last + 1) if n not in bad), None)


def _on_audio_track(clip: otio.schema.Clip) -> bool:
    node = clip.parent()
    while node is not None and not isinstance(node, otio.schema.Track):
        node = node.parent()
    return node is not None and node.kind == otio.schema.TrackKind.Audio


def link_media_reference(in_clip: otio.schema.Clip, media_linker_argument_map: dict | None = None) -> None:
    """Relink ``in_clip`` in place (original kept, ``vfxswap`` active); returns ``None`` so OTIO leaves
    the clip's references as this function set them."""
    args = dict(media_linker_argument_map or {})
    media_dir = args.get("media_dir")
    if not media_dir:
        raise ValueError("vfxswap_linker needs media_dir=FOLDER (-M media_dir=... with otioconvert)")
    if in_clip.active_media_reference_key == VFXSWAP_KEY or _on_audio_track(in_clip):
        return None
    url = reference_url(in_clip.media_reference)
    if url is None:
        return None
    try:
        source = resolve_media(url, base=args.get("cut_dir") or os.getcwd(), media_dir=args.get("search_dir"))
        info = probe(source)
        used = used_range(in_clip)
        if used is None:
            return None
        clock = media_clock(in_clip, info, start_frame=int(args.get("start_frame", 1001)), used=used)
        first, last = clip_frames(clock, used)
    except VfxSwapError as exc:
        logger.warning("clip %s not linked: %s", in_clip.name, exc)
        return None
    track = in_clip.parent().name if in_clip.parent() is not None else ""
    target = args.get("template", DEFAULT_TEMPLATE).format(media_dir=media_dir, media=media_stem(source),
                                                          clip=_safe(in_clip.name), track=_safe(track))
    if is_movie_path(target):
        if not os.path.isfile(target):
            logger.info("clip %s not linked: no %s", in_clip.name, target)
            return None
        try:
            converted = probe(target)
        except VfxSwapError as exc:
            logger.warning("clip %s not linked: %s", in_clip.name, exc)
            return None
        start = (otio.opentime.from_timecode(converted.timecode, clock.rate) if converted.timecode
                 else clock.time_of(first))
        reference = movie_reference(target, start_time=start, frames=converted.frame_count, rate=clock.rate)
        span = (clock.number_at(start), clock.number_at(start) + converted.frame_count - 1)
        if not (span[0] <= first and last <= span[1]):
            logger.info("clip %s not linked: %s holds frames %d-%d, not %d-%d", in_clip.name, target, *span,
                        first, last)
            return None
        if any(first <= n <= last for n in verify_output(target, range(span[0], span[1] + 1)).bad):
            logger.info("clip %s not linked: %s does not decode through frames %d-%d", in_clip.name, target,
                        first, last)
            return None
    else:
        span = _run(target, first, last)
        if span is None and _flag(args.get("partial", False)):
            good = _first_good(target, first, last)
            span = _run(target, good, good) if good is not None else None
        if span is None:
            logger.info("clip %s not linked: %s lacks frames of %d-%d or they do not decode", in_clip.name, target,
                        first, last)
            return None
        reference = sequence_reference(target, first=span[0], last=span[1], start_time=clock.time_of(span[0]),
                                       rate=clock.rate)
    record = provenance_record(target, source=source, frames=f"{span[0]}-{span[1]}")
    relink_clip(in_clip, reference, provenance=record)
    return None
