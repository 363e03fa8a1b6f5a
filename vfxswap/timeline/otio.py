"""Helpers over OpenTimelineIO objects: read a cut, select clips, find their media, relink them.

A *cut* is any timeline OTIO reads: ``.otio``, ``.otioz``, ``.otiod`` natively; EDL (``cmx_3600``),
FCP 7 XML (``fcp_xml``), AAF... through the ``opentimelineio-plugins`` adapters. Nothing here
converts media: :mod:`vfxswap.timeline.jobs` maps clips to convert jobs.

Clip selection grammar (``--select KIND:VALUE``, all terms must match; ``--track`` names are OR'ed):

    track:V1          the clip sits (at any depth) in the top-level track named V1, or the 2nd video
                      track when written V2 (EDL and XML tracks often have no names)
    name:REGEX        the clip's name matches REGEX (``re.search``)
    marker:REGEX      a marker whose name matches REGEX (``re.fullmatch``, case-insensitive) lies on
                      the clip, or on its track or the timeline over the clip's range
    color:COLOUR      such a marker has this colour (RED, GREEN, ...; case-insensitive)
    meta:KEY=VALUE    ``clip.metadata`` at KEY (dots walk nested dicts) equals VALUE as text;
                      ``meta:KEY`` alone: KEY is present and truthy

Converted media are attached with OTIO's multiple media references: the original reference stays
under its key and the converted one is added under ``vfxswap`` and made active; provenance goes to
``clip.metadata["vfxswap"]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

from ..errors import ConfigError, OutputError, TimelineError, one_line
from ..io.frames import parse_rate

RationalTime = otio.opentime.RationalTime
TimeRange = otio.opentime.TimeRange

VFXSWAP_KEY = "vfxswap"
SELECTOR_KINDS: tuple[str, ...] = ("track", "name", "marker", "color", "meta")
# Settings that differ between the chunks of one shot; left out of the settings digest.
_PER_RUN_SETTINGS = ("frames", "skip_existing", "start_frame", "matte", "patches")


# --- reading and writing ------------------------------------------------------------------------

@dataclasses.dataclass
class Cut:
    """A timeline read from disk.

    Attributes:
        timeline: the timeline.
        path: the file (or ``.otiod`` folder) it was read from.
        media_base: the folder relative media paths are resolved against: the cut's folder, the
            ``.otiod`` bundle itself, or where an ``.otioz`` bundle was extracted.
        adapter: the OTIO adapter that read it.
    """

    timeline: otio.schema.Timeline
    path: Path
    media_base: Path
    adapter: str


def adapter_names() -> list[str]:
    """Names of the OTIO adapters installed (``otio_json``, ``cmx_3600``, ``fcp_xml``...)."""
    return sorted(otio.adapters.available_adapter_names())


def _adapter_for(path: Path, adapter: str | None) -> str:
    names = adapter_names()
    if adapter is not None:
        if adapter not in names:
            raise ConfigError(f"unknown timeline adapter {adapter!r}; installed: {', '.join(names)} "
                              "(EDL, FCP XML and AAF come with pip install 'vfxswap[adapters]')")
        return adapter
    suffix = path.suffix.lstrip(".").lower()
    try:
        return otio.adapters.from_filepath(str(path)).name
    except Exception:  # NoKnownAdapterForExtensionError and friends
        raise TimelineError(f"no timeline adapter reads .{suffix or '(no extension)'} files ({path}); "
                            f"name one with --adapter ({', '.join(names)}) or install "
                            "'vfxswap[adapters]' for EDL, FCP XML and AAF") from None


def read_cut(path: str | os.PathLike, *, adapter: str | None = None, rate: str | float | Fraction | None = None,
             extract_to: str | os.PathLike | None = None) -> Cut:
    """Read an editorial timeline.

    Args:
        path: ``.otio``, ``.otioz``, ``.otiod``, ``.edl``, ``.xml``, ``.aaf``... file.
        adapter: OTIO adapter name; ``None`` picks it from the file extension.
        rate: frame rate of an EDL (``cmx_3600``; EDLs do not store it; default 24), as
            :func:`vfxswap.io.frames.parse_rate` takes it (``23.976`` is read as 24000/1001).
            Ignored by adapters that read the rate from the file.
        extract_to: ``.otioz`` only: a folder to unpack the bundle's media into (a ``media/``
            folder already there is reused); ``None`` reads only the timeline.

    Returns:
        The :class:`Cut`; a file holding a collection of exactly one timeline gives that timeline.

    Raises:
        TimelineError: a missing, malformed or unsupported file, or one holding no timeline (an
            adapter that crashes on a malformed file is reported as such, naming the adapter).
        ConfigError: an unknown adapter name, a bad rate or one EDL timecode cannot count in.
    """
    path = Path(path)
    if not path.exists():
        raise TimelineError(f"no such timeline: {path}")
    name = _adapter_for(path, adapter)
    kwargs: dict[str, object] = {}
    media_base = path.parent
    if rate is not None:
        rate = parse_rate(rate)
        if name == "cmx_3600":
            kwargs["rate"] = float(rate)
            _check_timecode_rate(rate)
    if name == "otiod":
        kwargs["absolute_media_reference_paths"] = True
        media_base = path
    if name == "otioz" and extract_to is not None:
        media_base = Path(extract_to)
        if not (media_base / "media").exists():
            media_base.mkdir(parents=True, exist_ok=True)
            kwargs["extract_to_directory"] = str(media_base)
    try:
        result = otio.adapters.read_from_file(str(path), adapter_name=name, **kwargs)
    except _ADAPTER_CRASHES as exc:
        raise TimelineError(adapter_crash_message(path, name, exc)) from None
    except Exception as exc:  # adapters raise anything from ValueError to XML and AAF errors
        raise TimelineError(f"cannot read {path} with the {name} adapter: {one_line(exc)}; "
                            "check the file (and --adapter / --rate)") from None
    if isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline, shallow_search=True))
        if len(timelines) != 1:
            raise TimelineError(f"{path} holds {len(timelines)} timelines; vfxswap conforms one at a time "
                                "(split it with otiotool)")
        result = timelines[0]
    if not isinstance(result, otio.schema.Timeline):
        raise TimelineError(f"{path} holds a {type(result).__name__}, not a timeline")
    return Cut(timeline=result, path=path, media_base=media_base, adapter=name)


# What an adapter raises when its own code trips over input it did not expect (a bug it shows on a
# malformed file), as opposed to the errors it raises on purpose (OTIOError, ValueError...).
_ADAPTER_CRASHES = (AttributeError, KeyError, IndexError, TypeError, NameError, AssertionError, ZeroDivisionError,
                    RecursionError)
_FORMATS = {"cmx_3600": "EDL", "fcp_xml": "FCP 7 XML", "AAF": "AAF file", "ale": "ALE", "otio_json": "OTIO file",
            "otioz": "OTIO bundle", "otiod": "OTIO bundle"}
# (adapter, text in the crash) -> what in the file causes it.
_KNOWN_CRASHES = {("cmx_3600", "transaction_id"): "two lines share one event number without being a cut and its "
                                                  "dissolve/wipe (e.g. a video and an audio line both numbered 001)"}


def adapter_crash_message(path: str | os.PathLike, adapter: str, exc: BaseException) -> str:
    """The one-line error for an adapter that crashed reading ``path``: the file is malformed (or in
    a form that adapter does not read), what in it is known to cause that, and what to export instead."""
    text = f"{type(exc).__name__}: {one_line(exc, 120)}"
    hint = next((h for (name, needle), h in _KNOWN_CRASHES.items() if name == adapter and needle in text), None)
    kind = _FORMATS.get(adapter, "file")
    return (f"cannot read {path}: the {adapter} adapter crashed on it ({text}), so the {kind} is malformed or in a "
            f"form that adapter does not read{f': {hint}' if hint else ''}; fix it, or export the cut again as a "
            "CMX3600 EDL (one event per number), FCP 7 XML or .otio")


def _check_timecode_rate(rate: Fraction) -> None:
    """Refuse an EDL rate OTIO's SMPTE timecode cannot count in (119.88, 12...)."""
    try:
        otio.opentime.from_timecode("00:00:00:00", float(rate))
    except ValueError:
        raise ConfigError(f"--rate {float(rate):.6g}: EDL timecode cannot count at this rate; OTIO reads EDLs at "
                          "23.976, 24, 25, 29.97, 30, 47.952, 48, 50, 59.94 or 60 fps") from None


def output_adapter(path: str | os.PathLike, adapter: str | None = None) -> str:
    """The adapter that writes a conformed timeline to ``path`` (checked before any work is done).

    Raises:
        ConfigError: an unknown adapter or extension, or a bundle (``.otioz``/``.otiod`` would copy
            every media file, and refuse offline ones: bundle the written ``.otio`` with otioconvert).
    """
    path = Path(path)
    try:
        name = _adapter_for(path, adapter)
    except TimelineError:
        raise ConfigError(f"cannot write {path}: no timeline adapter writes .{path.suffix.lstrip('.').lower()} "
                          "files; write .otio (or .edl, .xml with the adapters installed)") from None
    if name in ("otioz", "otiod"):
        raise ConfigError(f"cannot write {path}: .{name} bundles copy every media file; write .otio and "
                          "bundle it with otioconvert if you need to")
    return name


def write_cut(timeline: otio.schema.Timeline, path: str | os.PathLike, *, adapter: str | None = None) -> None:
    """Write a timeline through a temporary name renamed into place.

    Args:
        timeline: what to write.
        path: ``.otio`` (or any file another adapter writes: ``.edl``, ``.xml``).
        adapter: adapter name; ``None`` picks it from the extension.

    Raises:
        ConfigError: see :func:`output_adapter`.
        OutputError: the file cannot be written, or the adapter cannot express the timeline (the
            EDL writer takes one video track).
    """
    from ..atomic import replace_atomically

    path = Path(path)
    name = output_adapter(path, adapter)

    def write(tmp: Path) -> None:
        try:
            otio.adapters.write_to_file(timeline, str(tmp), adapter_name=name)
        except OSError:
            raise
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {path} with the {name} adapter: {one_line(exc)}") from None

    replace_atomically(path, write, durable=False)


# --- tracks and selection -----------------------------------------------------------------------

def top_level_track(item: otio.core.Composable, timeline: otio.schema.Timeline) -> otio.schema.Track | None:
    """The track directly under ``timeline.tracks`` that holds ``item`` (at any depth)."""
    node = item
    while node is not None:
        parent = node.parent()
        if parent is timeline.tracks:
            return node if isinstance(node, otio.schema.Track) else None
        node = parent
    return None


def track_labels(timeline: otio.schema.Timeline) -> list[tuple[otio.schema.Track, str, str]]:
    """``(track, name, positional label)`` for each top-level track; labels are ``V1``, ``V2``... for
    video and ``A1``... for audio, counted bottom up as editors do."""
    labels = []
    counts = {"V": 0, "A": 0, "T": 0}
    for track in timeline.tracks:
        if not isinstance(track, otio.schema.Track):
            continue
        letter = {otio.schema.TrackKind.Video: "V", otio.schema.TrackKind.Audio: "A"}.get(track.kind, "T")
        counts[letter] += 1
        labels.append((track, track.name, f"{letter}{counts[letter]}"))
    return labels


@dataclasses.dataclass(frozen=True)
class Selector:
    """One ``--select KIND:VALUE`` term (see the module docstring)."""

    kind: str
    value: str
    pattern: re.Pattern | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def parse_selector(text: str) -> Selector:
    """Parse ``KIND:VALUE`` (``marker:faceswap``, ``name:^sh0[12]``, ``meta:vfx.swap=yes``...).

    Raises:
        ConfigError: an unknown kind, an empty value or a bad regular expression.
    """
    kind, sep, value = text.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in SELECTOR_KINDS or not value:
        raise ConfigError(f"bad --select {text!r}; use KIND:VALUE with KIND one of {', '.join(SELECTOR_KINDS)} "
                          "(e.g. marker:faceswap, name:^shot0[12], meta:vfx=swap, track:V1)")
    pattern = None
    if kind in ("name", "marker"):
        try:
            pattern = re.compile(value, re.IGNORECASE if kind == "marker" else 0)
        except re.error as exc:
            raise ConfigError(f"bad regular expression in --select {text!r}: {exc}") from None
    if kind == "color":
        colors = [c for c in dir(otio.schema.MarkerColor) if not c.startswith("_")]
        if value.upper() not in colors:
            raise ConfigError(f"unknown marker colour {value!r} in --select; use one of {', '.join(colors)}")
    return Selector(kind, value, pattern)


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which clips to convert.

    Attributes:
        tracks: top-level track names or labels (``V1``); a clip in any of them matches; empty:
            every video track.
        terms: :class:`Selector` terms that must all match.
    """

    tracks: tuple[str, ...] = ()
    terms: tuple[Selector, ...] = ()

    @classmethod
    def from_strings(cls, tracks: Sequence[str] = (), selects: Sequence[str] = ()) -> Selection:
        """From ``--track`` and ``--select`` values."""
        return cls(tuple(tracks), tuple(parse_selector(s) for s in selects))


@dataclasses.dataclass(frozen=True)
class SelectedClip:
    """A clip picked for conversion.

    Attributes:
        clip: the clip (a live object of the timeline).
        track: label of its top-level track (its name, else ``V1``...).
        label: ``TRACK/NAME`` plus ``#N`` when a track holds several clips of that name.
    """

    clip: otio.schema.Clip
    track: str
    label: str


def _markers_over(clip: otio.schema.Clip, timeline: otio.schema.Timeline) -> Iterator[otio.schema.Marker]:
    """Markers on the clip and markers of its ancestors whose range overlaps the clip's."""
    yield from clip.markers
    node = clip.parent()
    while node is not None:
        if node.markers:
            try:
                here = clip.transformed_time_range(clip.trimmed_range(), node)
            except Exception:  # a clip OTIO cannot place (no source range): skip ancestor markers
                return
            for marker in node.markers:
                if marker.marked_range.overlaps(here) or here.contains(marker.marked_range.start_time):
                    yield marker
        node = node.parent()


def _metadata_value(metadata: Mapping, key: str) -> object:
    value: object = metadata
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def matches(selector: Selector, clip: otio.schema.Clip, timeline: otio.schema.Timeline, track: str,
            track_name: str) -> bool:
    """Whether ``clip`` (in top-level track ``track``/``track_name``) matches one term."""
    if selector.kind == "track":
        return selector.value in (track, track_name)
    if selector.kind == "name":
        return selector.pattern.search(clip.name or "") is not None
    if selector.kind == "marker":
        return any(selector.pattern.fullmatch(m.name or "") for m in _markers_over(clip, timeline))
    if selector.kind == "color":
        return any((m.color or "").upper() == selector.value.upper() for m in _markers_over(clip, timeline))
    key, sep, expected = selector.value.partition("=")
    value = _metadata_value(clip.metadata, key.strip())
    if not sep:
        return bool(value)
    return value is not None and str(value) == expected.strip()


def _enabled(item: otio.core.Composable) -> bool:
    """Whether an item and everything above it is enabled (a disabled clip is not seen in the cut)."""
    node = item
    while node is not None:
        if not getattr(node, "enabled", True):
            return False
        node = node.parent()
    return True


def select_clips(timeline: otio.schema.Timeline, selection: Selection = Selection()) -> list[SelectedClip]:
    """The enabled video clips of ``timeline`` that ``selection`` picks, in track then time order.

    Clips inside nested stacks count as clips of the top-level track holding them; audio tracks and
    disabled clips, tracks or stacks are never selected.

    Raises:
        ConfigError: a ``--track`` that names no track, or names an audio track.
    """
    labels = track_labels(timeline)
    for wanted in selection.tracks:
        hits = [label for _, name, label in labels if wanted in (name, label)]
        if not hits:
            shown = ", ".join(f"{label} ({name})" if name and name != label else label for _, name, label in labels)
            raise ConfigError(f"--track {wanted}: the timeline has no such track; tracks: {shown or 'none'}")
        if all(label.startswith("A") for label in hits):
            raise ConfigError(f"--track {wanted} is an audio track; vfxswap converts video tracks only")
    picked: list[SelectedClip] = []
    seen: dict[str, int] = {}
    for track, name, label in labels:
        if not label.startswith("V"):
            continue
        if selection.tracks and not any(w in (name, label) for w in selection.tracks):
            continue
        shown = name or label
        for clip in track.find_clips():
            if not _enabled(clip) or not all(matches(t, clip, timeline, label, name) for t in selection.terms):
                continue
            base = f"{shown}/{clip.name or 'clip'}"
            seen[base] = seen.get(base, 0) + 1
            picked.append(SelectedClip(clip, shown, base if seen[base] == 1 else f"{base} #{seen[base]}"))
    return picked


# --- media paths --------------------------------------------------------------------------------

def reference_url(reference: otio.core.MediaReference) -> str | None:
    """Where a media reference points: its URL or path; an image sequence as a ``####`` pattern
    (a local path: ``#`` would start a URL fragment); ``None`` for missing and generator references.

    Raises:
        TimelineError: an image sequence at a non-file URL.
    """
    if isinstance(reference, otio.schema.ImageSequenceReference):
        base = url_to_path(reference.target_url_base) if reference.target_url_base else ""
        name = reference.name_prefix + "#" * max(1, reference.frame_zero_padding) + reference.name_suffix
        return os.path.join(base, name) if base else name
    if isinstance(reference, otio.schema.ExternalReference):
        return reference.target_url or None
    return None


def url_to_path(url: str) -> str:
    """A ``file://`` URL (percent-encoded or not; ``#`` and ``?`` are kept as file-name characters)
    or a plain path -> a local path.

    Raises:
        TimelineError: a URL of another scheme (``http://``...).
    """
    if url.startswith("file:"):
        rest = url[len("file:"):]
        if rest.startswith("//"):
            host, _, path = rest[2:].partition("/")
            rest = "/" + path if host in ("", "localhost") else f"//{host}/{path}"
        path = urllib.parse.unquote(rest)
        return path[1:] if re.match(r"^/[A-Za-z]:[/\\]", path) else path  # file:///C:/x -> C:/x
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", url):
        raise TimelineError(f"media {url} is not a local file; vfxswap reads file:// URLs and paths")
    return url


def _exists(path: str) -> bool:
    from ..io.sequences import is_sequence_pattern

    if is_sequence_pattern(path):
        return os.path.isdir(os.path.dirname(path) or ".")
    return os.path.exists(path)


def media_candidates(url: str, *, base: str | os.PathLike, media_dir: str | os.PathLike | None = None) -> list[str]:
    """Where :func:`resolve_media` looks for a reference's media, in order:

    1. an absolute path as it is;
    2. a relative path under ``media_dir``, then the file name alone in ``media_dir``
       (``media/plate.mov`` of an unpacked bundle, an editor's ``/Volumes/...`` path);
       ``media_dir`` defaults to ``base``, so media beside the cut are found by name;
    3. a relative path under ``base`` (the cut's folder).

    Raises:
        TimelineError: a non-file URL.
    """
    path = url_to_path(url)
    media_dir = base if media_dir is None else media_dir
    candidates: list[str] = []
    if os.path.isabs(path):
        candidates.append(path)
    if not os.path.isabs(path):
        candidates.append(os.path.join(media_dir, path))
    candidates.append(os.path.join(media_dir, os.path.basename(path)))
    if not os.path.isabs(path):
        candidates.append(os.path.join(base, path))
    return [os.path.normpath(os.path.abspath(c)) for c in dict.fromkeys(candidates)]


def resolve_media(url: str, *, base: str | os.PathLike, media_dir: str | os.PathLike | None = None) -> str:
    """A reference's URL as a local path: the first of :func:`media_candidates` that exists, else
    the first candidate (so messages name it).

    Raises:
        TimelineError: a non-file URL.
    """
    candidates = media_candidates(url, base=base, media_dir=media_dir)
    return next((c for c in candidates if _exists(c)), candidates[0])


def check_media_roots(path: str, roots: Sequence[str | os.PathLike], clip_label: str = "") -> None:
    """Refuse media outside the allowed folders (symlinks and ``..`` resolved).

    Args:
        path: a resolved media path (a sequence pattern's folder is what counts).
        roots: allowed folders; empty allows everything.
        clip_label: named in the message.

    Raises:
        TimelineError: ``path`` lies outside every root.
    """
    if not roots:
        return
    real = os.path.realpath(path)
    for root in roots:
        real_root = os.path.realpath(root)
        if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
            return
    who = f"clip {clip_label} references " if clip_label else ""
    raise TimelineError(f"{who}{path}, outside the allowed media roots ({', '.join(map(str, roots))}); "
                        "fix the cut or add the folder with --media-root")


# --- relinking ----------------------------------------------------------------------------------

def sequence_reference(pattern: str | os.PathLike, *, first: int, last: int, start_time: RationalTime,
                       rate: float, metadata: Mapping | None = None) -> otio.schema.ImageSequenceReference:
    """An :class:`ImageSequenceReference` for the files ``first``..``last`` of ``pattern``.

    Args:
        pattern: ``/abs/path/name.####.exr`` (``#`` count = padding; ``%04d`` also accepted).
        first, last: the file numbers present (inclusive).
        start_time: media time of file ``first`` (in the clip's time frame, e.g. timecode frames).
        rate: frames per second of that time frame (OTIO defaults it to 1: always give it).
        metadata: stored on the reference.

    Returns:
        A reference whose ``frame_for_time(start_time + k frames) == first + k``.
    """
    folder, name = os.path.split(os.path.abspath(os.fspath(pattern)))
    match = list(re.finditer(r"%0?(\d*)d|#+|@+", name))
    if not match:
        raise ConfigError(f"{pattern} is not a sequence pattern (name.####.exr)")
    token = match[-1]
    pad = int(token.group(1) or 1) if token.group(0).startswith("%") else len(token.group(0))
    return otio.schema.ImageSequenceReference(
        target_url_base=Path(folder).as_uri() + "/",
        name_prefix=name[:token.start()],
        name_suffix=name[token.end():],
        start_frame=int(first),
        frame_step=1,
        rate=float(rate),
        frame_zero_padding=pad,
        missing_frame_policy=otio.schema.ImageSequenceReference.MissingFramePolicy.error,
        available_range=TimeRange(start_time.rescaled_to(rate), RationalTime(last - first + 1, rate)),
        metadata=dict(metadata or {}),
    )


def movie_reference(path: str | os.PathLike, *, start_time: RationalTime, frames: int, rate: float,
                    metadata: Mapping | None = None) -> otio.schema.ExternalReference:
    """An :class:`ExternalReference` to a movie whose first frame is at media time ``start_time``."""
    return otio.schema.ExternalReference(
        target_url=Path(os.path.abspath(os.fspath(path))).as_uri(),
        available_range=TimeRange(start_time.rescaled_to(rate), RationalTime(frames, rate)),
        metadata=dict(metadata or {}))


def relink_clip(clip: otio.schema.Clip, reference: otio.core.MediaReference, *,
                provenance: Mapping | None = None, key: str = VFXSWAP_KEY) -> None:
    """Add ``reference`` to ``clip`` under ``key`` and make it active; the other references stay.

    Every reference is cloned before it is set again (reusing a clip's own reference objects after a
    ``deepcopy`` crashes OTIO 0.18); a previous ``key`` reference is replaced. The clip's timing
    (``source_range``) is not touched.

    Args:
        clip: the clip to relink (in place).
        reference: the converted media; a clone is stored.
        provenance: stored as ``clip.metadata["vfxswap"]`` when given.
        key: media-reference key of the converted media.
    """
    references = {k: r.clone() for k, r in clip.media_references().items() if k != key}
    if not references:  # a clip whose only reference was ours: keep an explicit missing one
        references[otio.schema.Clip.DEFAULT_MEDIA_KEY] = otio.schema.MissingReference()
    references[key] = reference.clone()
    clip.set_media_references(references, key)
    if provenance is not None:
        clip.metadata[VFXSWAP_KEY] = dict(provenance)


def settings_digest(settings: Mapping) -> str:
    """``sha256:...`` of converter settings (a ``ConvertConfig`` as a dict, or the ``settings`` of a
    ``NAME.vfxswap.json`` file), leaving out what differs between chunks of one shot."""
    kept = {k: v for k, v in settings.items() if k not in _PER_RUN_SETTINGS}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def provenance(*, model: str, settings: Mapping, version: str, source: str, frames: str,
               card: Mapping | None = None) -> dict[str, object]:
    """The ``clip.metadata["vfxswap"]`` record of a converted clip.

    Args:
        model: the model folder.
        settings: converter settings (see :func:`settings_digest`).
        version: vfxswap version that converted.
        source: the original media path.
        frames: the converted frame range (``1001-1024``).
        card: the model card, if known (its resolution, face type and training steps are kept).
    """
    record: dict[str, object] = {"model": str(model), "settings_digest": settings_digest(settings),
                                 "version": version, "source": str(source), "frames": frames}
    if card:
        record["model_card"] = {k: card[k] for k in ("resolution", "face_type", "arch", "steps") if k in card}
    return record
