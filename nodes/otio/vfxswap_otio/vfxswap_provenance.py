"""OTIO hook script ``vfxswap_provenance``: stamp ``clip.metadata["vfxswap"]`` on converted clips.

A clip counts as converted when its media reference under the key ``vfxswap`` (or, failing that,
its active reference) points at media that vfxswap wrote, recognised by the converter's
``NAME.vfxswap.json`` beside it. The stamp holds the model, a digest of the converter settings, the
vfxswap version, the original media and the frame range. Not attached by default; attach it to
``post_media_linker`` (or any hook) in your own manifest::

    {"OTIO_SCHEMA": "PluginManifest.1", "hooks": {"post_media_linker": ["vfxswap_provenance"]}}

Arguments (``argument_map``): ``overwrite`` (``true`` replaces existing stamps; default false).
"""

from __future__ import annotations

import os

import opentimelineio as otio

from vfxswap.timeline.jobs import converter_settings, provenance_record
from vfxswap.timeline.otio import VFXSWAP_KEY, reference_url, url_to_path


def _converted_output(reference: otio.core.MediaReference) -> str | None:
    url = reference_url(reference)
    if url is None:
        return None
    try:
        return url_to_path(url)
    except Exception:
        return None


def _frames(reference: otio.core.MediaReference) -> str:
    if isinstance(reference, otio.schema.ImageSequenceReference) and reference.available_range is not None:
        return f"{reference.start_frame}-{reference.end_frame()}"
    return ""


def hook_function(in_timeline: otio.schema.Timeline, argument_map: dict | None = None) -> otio.schema.Timeline:
    """Stamp provenance on every converted clip of ``in_timeline`` (in place); returns it."""
    args = argument_map or {}
    overwrite = str(args.get("overwrite", "false")).strip().lower() in ("1", "true", "yes", "on")
    for clip in in_timeline.find_clips():
        if VFXSWAP_KEY in clip.metadata and not overwrite:
            continue
        references = clip.media_references()
        converted = references.get(VFXSWAP_KEY, clip.media_reference)
        output = _converted_output(converted)
        if output is None or not converter_settings(output):
            continue
        originals = [r for k, r in references.items() if k != VFXSWAP_KEY]
        source = converter_settings(output).get("source") or (
            _converted_output(originals[0]) if originals else "")
        clip.metadata[VFXSWAP_KEY] = provenance_record(output, source=os.fspath(source or ""),
                                                       frames=_frames(converted))
    return in_timeline
