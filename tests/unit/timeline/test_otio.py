"""OTIO helpers (vfxswap.timeline.otio): reading cuts, selecting clips, media paths, relinking."""

from __future__ import annotations

import copy
import json
import os
import re
import zipfile
from pathlib import Path

import opentimelineio as otio
import pytest

from vfxswap.errors import ConfigError, OutputError, TimelineError
from vfxswap.timeline.otio import (VFXSWAP_KEY, Selection, check_media_roots, parse_selector, provenance, read_cut,
                                   reference_url, relink_clip, resolve_media, select_clips, sequence_reference,
                                   settings_digest, top_level_track, url_to_path, write_cut)

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
SAMPLES = Path(__file__).resolve().parents[3] / "samples"


def clip(name: str, url: str | None, start: int, duration: int, rate: float = 24, **kwargs) -> otio.schema.Clip:
    ref = otio.schema.ExternalReference(url) if url is not None else otio.schema.MissingReference()
    return otio.schema.Clip(name, ref, TR(RT(start, rate), RT(duration, rate)), **kwargs)


def two_track_cut() -> otio.schema.Timeline:
    """V1: a, gap, b (transition) c; V2: gap, nested stack holding d; A1: audio."""
    tl = otio.schema.Timeline("cut")
    v1, v2 = otio.schema.Track("V1"), otio.schema.Track("")
    a1 = otio.schema.Track("A1", kind=otio.schema.TrackKind.Audio)
    tl.tracks.extend([v1, v2, a1])
    a = clip("sh010", "plate.mp4", 86410, 12, metadata={"vfx": {"swap": "yes"}})
    a.markers.append(otio.schema.Marker("faceswap", TR(RT(86412, 24), RT(1, 24)), color="GREEN"))
    b = clip("sh020", "plate.mp4", 86440, 10)
    c = clip("sh030", "other.mov", 100, 10)
    v1.extend([a, otio.schema.Gap(source_range=TR(RT(0, 24), RT(6, 24))), b,
               otio.schema.Transition("x", "SMPTE_Dissolve", RT(2, 24), RT(2, 24)), c])
    nest = otio.schema.Stack("nest")
    inner = otio.schema.Track("inner")
    inner.append(clip("sh040", "plate.mp4", 86460, 6))
    nest.append(inner)
    v2.extend([otio.schema.Gap(source_range=TR(RT(0, 24), RT(20, 24))), nest])
    # a red marker on the timeline over sh020 (timeline frames 18-27), before sh040 (20-25 on V2)
    tl.tracks.markers.append(otio.schema.Marker("review", TR(RT(18, 24), RT(2, 24)), color="RED"))
    a1.append(clip("sh010", "plate.mp4", 86400, 48))
    return tl


class TestReadCut:
    def test_otio_round_trip_and_media_base(self, tmp_path):
        path = tmp_path / "cut.otio"
        otio.adapters.write_to_file(two_track_cut(), str(path))
        cut = read_cut(path)
        assert cut.adapter == "otio_json" and cut.media_base == tmp_path
        assert [c.name for c in cut.timeline.find_clips()] == ["sh010", "sh020", "sh030", "sh040", "sh010"]

    def test_edl_with_rate(self, tmp_path):
        path = tmp_path / "cut.edl"
        path.write_text("TITLE: t\nFCM: NON-DROP FRAME\n\n"
                        "001  plate    V     C        01:00:00:10 01:00:00:22 00:00:00:00 00:00:00:12\n"
                        "* FROM CLIP NAME: sh010\n* FROM CLIP: plate.mp4\n")
        cut = read_cut(path, rate=25)
        (c,) = cut.timeline.find_clips()
        assert c.source_range == TR(RT(25 * 3600 + 10, 25), RT(12, 25)) and cut.adapter == "cmx_3600"

    @pytest.mark.parametrize(("rate", "exact"), [("23.976", (24000, 1001)), ("23.98", (24000, 1001)),
                                                 ("24000/1001", (24000, 1001)), (29.97, (30000, 1001)),
                                                 ("59.94", (60000, 1001))])
    def test_edl_at_ntsc_rates(self, tmp_path, rate, exact):
        path = tmp_path / "cut.edl"
        path.write_text("TITLE: t\nFCM: NON-DROP FRAME\n\n"
                        "001  plate    V     C        01:00:00:10 01:00:00:22 00:00:00:00 00:00:00:12\n"
                        "* FROM CLIP NAME: sh010\n* FROM CLIP: plate.mp4\n")
        (c,) = read_cut(path, rate=rate).timeline.find_clips()
        fps = exact[0] / exact[1]
        assert c.source_range == TR(RT(round(fps) * 3600 + 10, fps), RT(12, fps))
        assert c.source_range.start_time.rate == fps  # the exact rational rate, not 23.976

    def test_an_edl_rate_timecode_cannot_count_in_is_a_usage_error(self, tmp_path):
        path = tmp_path / "cut.edl"
        path.write_text("TITLE: t\n001  plate    V     C        01:00:00:10 01:00:00:22 00:00:00:00 00:00:00:12\n")
        with pytest.raises(ConfigError, match="--rate 119.88: EDL timecode cannot count at this rate"):
            read_cut(path, rate="119.88")
        with pytest.raises(ConfigError, match="bad frame rate"):
            read_cut(path, rate="fast")

    def test_an_adapter_crash_on_a_malformed_edl_says_what_to_do(self, tmp_path):
        # a video and an audio line with one event number: the cmx_3600 adapter takes the second for the
        # event's dissolve and crashes with "'ClipHandler' object has no attribute 'transaction_id'"
        path = tmp_path / "dup.edl"
        path.write_text("TITLE: dup\nFCM: NON-DROP FRAME\n\n"
                        "001  AX       V     C        01:00:00:00 01:00:01:00 01:00:00:00 01:00:01:00\n"
                        "001  AX       A     C        01:00:00:00 01:00:01:00 01:00:00:00 01:00:01:00\n"
                        "* FROM CLIP NAME: plate.mov\n")
        with pytest.raises(AttributeError, match="transaction_id"):
            otio.adapters.read_from_file(str(path), rate=24)  # the adapter's own failure
        with pytest.raises(TimelineError) as info:
            read_cut(path)
        message = str(info.value)
        assert "\n" not in message and f"cannot read {path}: the cmx_3600 adapter crashed on it" in message
        assert "the EDL is malformed" in message and "both numbered 001" in message
        assert "export the cut again as a CMX3600 EDL" in message and ".otio" in message

    def test_malformed_file_is_a_one_line_timeline_error(self, tmp_path):
        for name, text in (("bad.otio", '{"OTIO_SCHEMA": "Timeline.1", "tracks": '), ("bad.edl", "garbage\n"),
                           ("bad.xml", "<xmeml"), ("bad.otioz", "not a zip")):
            (tmp_path / name).write_text(text)
            with pytest.raises(TimelineError, match=f"cannot read .*{name}") as info:
                read_cut(tmp_path / name)
            assert "\n" not in str(info.value)

    def test_unknown_adapter_extension_and_missing_file(self, tmp_path):
        (tmp_path / "cut.xyz").write_text("x")
        with pytest.raises(TimelineError, match=r"no timeline adapter reads \.xyz"):
            read_cut(tmp_path / "cut.xyz")
        with pytest.raises(ConfigError, match="unknown timeline adapter 'nope'; installed: .*cmx_3600"):
            read_cut(tmp_path / "cut.xyz", adapter="nope")
        with pytest.raises(TimelineError, match="no such timeline"):
            read_cut(tmp_path / "absent.otio")

    def test_a_file_holding_no_single_timeline_is_refused(self, tmp_path):
        coll = otio.schema.SerializableCollection("c", [two_track_cut(), two_track_cut()])
        otio.adapters.write_to_file(coll, str(tmp_path / "two.otio"))
        with pytest.raises(TimelineError, match="holds 2 timelines"):
            read_cut(tmp_path / "two.otio")
        otio.adapters.write_to_file(clip("a", "x.mov", 0, 5), str(tmp_path / "clip.otio"))
        with pytest.raises(TimelineError, match="holds a Clip, not a timeline"):
            read_cut(tmp_path / "clip.otio")
        one = otio.schema.SerializableCollection("c", [two_track_cut()])
        otio.adapters.write_to_file(one, str(tmp_path / "one.otio"))
        assert read_cut(tmp_path / "one.otio").timeline.name == "cut"

    def test_otiod_and_otioz_bundles(self, tmp_path):
        media = tmp_path / "src"
        media.mkdir()
        (media / "shot.mov").write_bytes(b"\0" * 16)
        tl = otio.schema.Timeline("b")
        tl.tracks.append(otio.schema.Track("V1"))
        tl.tracks[0].append(clip("a", str(media / "shot.mov"), 0, 4))
        otio.adapters.write_to_file(tl, str(tmp_path / "cut.otiod"))
        otio.adapters.write_to_file(tl, str(tmp_path / "cut.otioz"))
        cut = read_cut(tmp_path / "cut.otiod")
        (c,) = cut.timeline.find_clips()
        assert os.path.isfile(url_to_path(reference_url(c.media_reference)))
        assert "shot.mov" in zipfile.ZipFile(tmp_path / "cut.otioz").namelist()[-1]
        cut = read_cut(tmp_path / "cut.otioz", extract_to=tmp_path / "unz")
        (c,) = cut.timeline.find_clips()
        assert resolve_media(reference_url(c.media_reference), base=cut.media_base) == str(tmp_path / "unz/media/shot.mov")
        assert os.path.isfile(tmp_path / "unz/media/shot.mov")
        assert read_cut(tmp_path / "cut.otioz", extract_to=tmp_path / "unz").media_base == tmp_path / "unz"  # reused

    def test_write_is_atomic_and_refuses_folder_bundles(self, tmp_path):
        out = tmp_path / "out.otio"
        write_cut(two_track_cut(), out)
        assert read_cut(out).timeline.name == "cut" and not list(tmp_path.glob(".tmp-*"))
        for bad, message in (("out.otiod", "bundles copy every media file"), ("out.otioz", "bundles copy"),
                             ("out.mov", "no timeline adapter writes .mov")):
            with pytest.raises(ConfigError, match=message):
                write_cut(two_track_cut(), tmp_path / bad)
        with pytest.raises(OutputError, match="with the cmx_3600 adapter"):  # the EDL writer takes one video track
            write_cut(two_track_cut(), tmp_path / "out.edl")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.otio"]


class TestSelection:
    def labels(self, tl, **kwargs) -> list[str]:
        return [s.label for s in select_clips(tl, Selection.from_strings(**kwargs))]

    def test_default_is_every_video_clip_nested_included_audio_never(self):
        tl = two_track_cut()
        assert self.labels(tl) == ["V1/sh010", "V1/sh020", "V1/sh030", "V2/sh040"]
        (d,) = [c for c in tl.find_clips() if c.name == "sh040"]
        assert top_level_track(d, tl) is tl.tracks[1]

    def test_tracks_by_name_or_position(self):
        tl = two_track_cut()
        assert self.labels(tl, tracks=["V2"]) == ["V2/sh040"]  # unnamed track: positional label
        assert self.labels(tl, tracks=["V1", "V2"]) == ["V1/sh010", "V1/sh020", "V1/sh030", "V2/sh040"]
        assert self.labels(tl, selects=["track:V1"]) == ["V1/sh010", "V1/sh020", "V1/sh030"]
        with pytest.raises(ConfigError, match="no such track; tracks: V1, V2, A1"):
            self.labels(tl, tracks=["V3"])
        with pytest.raises(ConfigError, match="audio track"):
            self.labels(tl, tracks=["A1"])

    def test_name_marker_colour_and_metadata_terms_all_must_match(self):
        tl = two_track_cut()
        assert self.labels(tl, selects=["name:^sh0[24]"]) == ["V1/sh020", "V2/sh040"]
        assert self.labels(tl, selects=["marker:FaceSwap"]) == ["V1/sh010"]  # case-insensitive full match
        assert self.labels(tl, selects=["marker:face"]) == []
        assert self.labels(tl, selects=["color:green"]) == ["V1/sh010"]
        assert self.labels(tl, selects=["color:RED"]) == ["V1/sh020"]  # timeline marker over the clip
        assert self.labels(tl, selects=["marker:review", "name:sh02"]) == ["V1/sh020"]
        assert self.labels(tl, selects=["marker:review", "name:sh01"]) == []
        assert self.labels(tl, selects=["meta:vfx.swap=yes"]) == ["V1/sh010"]
        assert self.labels(tl, selects=["meta:vfx.swap"]) == ["V1/sh010"]
        assert self.labels(tl, selects=["meta:vfx.swap=no"]) == []

    def test_track_marker_over_a_clip(self):
        tl = two_track_cut()
        tl.tracks[0].markers.append(otio.schema.Marker("faceswap", TR(RT(19, 24), RT(1, 24))))  # over sh020
        assert self.labels(tl, selects=["marker:faceswap"]) == ["V1/sh010", "V1/sh020"]

    def test_disabled_items_are_skipped(self):
        tl = two_track_cut()
        tl.find_clips()[1].enabled = False
        tl.tracks[1][1].enabled = False  # the nested stack
        assert self.labels(tl) == ["V1/sh010", "V1/sh030"]

    def test_duplicate_names_are_numbered(self):
        tl = two_track_cut()
        tl.tracks[0].append(clip("sh010", "plate.mp4", 86410, 4))
        assert self.labels(tl, tracks=["V1"])[-1] == "V1/sh010 #2"

    @pytest.mark.parametrize("text", ["marker", "marker:", "shape:x", "name:(", "color:TEAL"])
    def test_bad_selectors(self, text):
        with pytest.raises(ConfigError, match="--select"):
            parse_selector(text)


class TestMediaPaths:
    def test_references_and_urls(self):
        isr = otio.schema.ImageSequenceReference("file:///a%20b/", "sh.", ".exr", start_frame=1001, rate=24,
                                                 frame_zero_padding=4)
        assert reference_url(isr) == "/a b/sh.####.exr"
        assert url_to_path("file:///x/a%23b.mov") == url_to_path("file:///x/a#b.mov") == "/x/a#b.mov"
        assert url_to_path("file://localhost/x/a.mov") == url_to_path("/x/a.mov") == "/x/a.mov"
        assert reference_url(otio.schema.MissingReference()) is None
        assert reference_url(otio.schema.GeneratorReference()) is None
        with pytest.raises(TimelineError, match="not a local file"):
            url_to_path("https://example.com/a.mov")

    def test_resolution_order(self, tmp_path):
        cutdir, mediadir = tmp_path / "cut", tmp_path / "media"
        (cutdir / "sub").mkdir(parents=True)
        mediadir.mkdir()
        (cutdir / "sub" / "a.mov").write_bytes(b"")
        (mediadir / "b.mov").write_bytes(b"")
        assert resolve_media("sub/a.mov", base=cutdir) == str(cutdir / "sub" / "a.mov")
        assert resolve_media("sub/a.mov", base=cutdir, media_dir=mediadir) == str(cutdir / "sub" / "a.mov")
        assert resolve_media("/Volumes/editorial/b.mov", base=cutdir, media_dir=mediadir) == str(mediadir / "b.mov")
        assert resolve_media("x/b.mov", base=cutdir, media_dir=mediadir) == str(mediadir / "b.mov")
        assert resolve_media(f"file://{cutdir}/sub/a.mov", base="/") == str(cutdir / "sub" / "a.mov")
        assert resolve_media("missing.mov", base=cutdir) == str(cutdir / "missing.mov")  # named in messages
        # without media_dir, media beside the cut are found by name (the --media-dir default)
        (cutdir / "c.mov").write_bytes(b"")
        assert resolve_media("/Volumes/editorial/c.mov", base=cutdir) == str(cutdir / "c.mov")
        assert resolve_media("elsewhere/c.mov", base=cutdir) == str(cutdir / "c.mov")
        assert resolve_media("/Volumes/editorial/lost.mov", base=cutdir) == "/Volumes/editorial/lost.mov"

    def test_media_roots(self, tmp_path):
        root = tmp_path / "shows"
        (root / "a").mkdir(parents=True)
        (tmp_path / "elsewhere").mkdir()
        os.symlink(tmp_path / "elsewhere", root / "link")
        check_media_roots(str(root / "a" / "x.mov"), [root])
        check_media_roots("/etc/passwd", [])
        for bad in ("/etc/passwd", str(root / "a" / ".." / ".." / "x.mov"), str(root / "link" / "x.mov"),
                    str(tmp_path / "showsX" / "x.mov")):
            with pytest.raises(TimelineError, match="outside the allowed media roots"):
                check_media_roots(bad, [root], "V1/sh010")


class TestRelink:
    def test_sequence_reference_maps_media_time_to_files(self, tmp_path):
        ref = sequence_reference(tmp_path / "sh_vfxswap.####.exr", first=1009, last=1024,
                                 start_time=RT(86408, 24), rate=24)
        assert ref.rate == 24 and ref.frame_zero_padding == 4 and ref.start_frame == 1009
        assert ref.frame_for_time(RT(86408, 24)) == 1009 and ref.frame_for_time(RT(86423, 24)) == 1024
        assert ref.target_url_for_image_number(1) == (tmp_path / "sh_vfxswap.1010.exr").as_uri()  # 2nd image
        assert sequence_reference("/x/a.%05d.png", first=1, last=2, start_time=RT(0, 25), rate=25).frame_zero_padding == 5

    def test_relink_keeps_the_original_and_timing_even_after_deepcopy(self, tmp_path):
        tl = copy.deepcopy(two_track_cut())  # OTIO 0.18 crashes if a deep-copied clip's own reference is reused
        a = tl.find_clips()[0]
        before = (a.source_range, a.range_in_parent(), a.media_reference.target_url)
        ref = sequence_reference(tmp_path / "p_vfxswap.####.exr", first=1011, last=1022, start_time=RT(86410, 24), rate=24)
        relink_clip(a, ref, provenance={"model": "m"})
        relink_clip(a, ref, provenance={"model": "m2"})  # a rerun replaces our reference, keeps the original
        assert a.active_media_reference_key == VFXSWAP_KEY
        assert sorted(a.media_references()) == [otio.schema.Clip.DEFAULT_MEDIA_KEY, VFXSWAP_KEY]
        assert a.media_references()[otio.schema.Clip.DEFAULT_MEDIA_KEY].target_url == before[2]
        assert (a.source_range, a.range_in_parent()) == before[:2]
        assert a.metadata[VFXSWAP_KEY] == {"model": "m2"}
        back = otio.adapters.read_from_string(otio.adapters.write_to_string(tl))
        b = back.find_clips()[0]
        assert b.media_reference.rate == 24 and b.media_reference.frame_for_time(RT(86410, 24)) == 1011

    def test_edl_writer_keeps_the_original_timecodes(self, tmp_path):
        tl = two_track_cut()
        del tl.tracks[1:]  # the EDL writer takes one video track
        original = otio.adapters.write_to_string(tl, "cmx_3600")
        for c in tl.find_clips():
            start = c.source_range.start_time
            relink_clip(c, sequence_reference(tmp_path / f"{c.name}.####.exr", first=1001, last=1100,
                                              start_time=start, rate=24))
        relinked = otio.adapters.write_to_string(tl, "cmx_3600")

        def events(text):
            return [re.findall(r"\d\d:\d\d:\d\d:\d\d", line) for line in text.splitlines() if line[:3].isdigit()]

        assert events(relinked) == events(original) and len(events(original)) >= 3
        assert events(original)[0] == ["01:00:00:10", "01:00:00:22", "00:00:00:00", "00:00:00:12"]
        assert "/sh010.[1001-" in relinked  # the converted media are named

    def test_settings_digest_and_provenance(self):
        s = {"color": "rct", "frames": "1001-1010", "blend": "feather"}
        assert settings_digest(s) == settings_digest({**s, "frames": "1011-1020", "skip_existing": True})
        assert settings_digest(s) != settings_digest({**s, "color": "mkl"})
        assert settings_digest(s).startswith("sha256:") and len(settings_digest(s)) == 71
        record = provenance(model="/m", settings=s, version="0.1.0", source="/p.mov", frames="1001-1010",
                            card={"resolution": 64, "face_type": "whole_face", "dims": [1]})
        assert record["model_card"] == {"resolution": 64, "face_type": "whole_face"}
        json.dumps(record)  # metadata must serialise
