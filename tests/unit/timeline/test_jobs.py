"""From a cut to convert jobs and back (vfxswap.timeline.jobs), on the sample media; no converting here
(tests/integration/test_timeline_cli.py converts)."""

from __future__ import annotations

import dataclasses
import shutil
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from vfxswap.config import ConvertConfig
from vfxswap.errors import ConfigError, TimelineError
from vfxswap.io.source import probe
from vfxswap.types import SwapJob
from vfxswap.timeline.jobs import (MediaClock, ShotResult, clip_frames, frame_path, media_clock, media_stem, plan,
                                   relink, shot_config, used_range)
from vfxswap.timeline.otio import VFXSWAP_KEY, Cut, Selection
from vfxswap.types import VideoInfo

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
SAMPLES = Path(__file__).resolve().parents[3] / "samples"
PLATE_INFO = probe(SAMPLES / "plate.mp4")  # 72 frames, 24 fps, timecode 01:00:00:00
SEQ_INFO = probe(SAMPLES / "plate_seq" / "plate.####.png")  # files 1001-1008


def clip(name, ref, start, duration, rate=24):
    if isinstance(ref, str):
        ref = otio.schema.ExternalReference(ref)
    return otio.schema.Clip(name, ref, TR(RT(start, rate), RT(duration, rate)))


def seq_ref(avail_start=86400, rate=24, **kwargs):
    return otio.schema.ImageSequenceReference("plate_seq/", "plate.", ".png", start_frame=1001, rate=rate,
                                              frame_zero_padding=4, available_range=TR(RT(avail_start, 24), RT(8, 24)),
                                              **kwargs)


def frames_of(c: otio.schema.Clip, info: VideoInfo) -> tuple[int, int]:
    used = used_range(c)
    return clip_frames(media_clock(c, info, used=used), used)


class TestMediaClock:
    def test_movie_without_available_range_counts_from_its_timecode(self):  # what EDLs give
        assert frames_of(clip("a", "plate.mp4", 86410, 12), PLATE_INFO) == (1011, 1022)

    def test_movie_with_available_range(self):
        ref = otio.schema.ExternalReference("plate.mp4", available_range=TR(RT(0, 24), RT(72, 24)))
        assert frames_of(clip("a", ref, 10, 12), PLATE_INFO) == (1011, 1022)
        assert media_clock(clip("a", ref, 10, 12), PLATE_INFO, start_frame=1).number_at(RT(10, 24)) == 11

    def test_image_sequence_reference_numbered_from_1001(self):
        assert frames_of(clip("s", seq_ref(), 86402, 4), SEQ_INFO) == (1003, 1006)

    def test_image_sequence_reference_with_the_default_rate_of_1(self):
        assert frames_of(clip("s", seq_ref(rate=1), 86402, 4), SEQ_INFO) == (1003, 1006)

    def test_ntsc_media_timed_in_timecode_frames(self):
        ntsc = dataclasses.replace(PLATE_INFO, fps=Fraction(24000, 1001))
        assert frames_of(clip("a", "plate.mp4", 86410, 12), ntsc) == (1011, 1022)
        assert frames_of(clip("a", "plate.mp4", 86410, 12, rate=24000 / 1001), ntsc) == (1011, 1022)

    def test_a_cut_timed_at_another_rate_is_rescaled(self):
        assert frames_of(clip("a", "plate.mp4", 2 * 86410, 24, rate=48), PLATE_INFO) == (1011, 1022)

    def test_sequence_pattern_without_available_range(self):
        pattern = "plate_seq/plate.%04d.png"
        assert frames_of(clip("s", pattern, 1003, 2), SEQ_INFO) == (1003, 1004)  # times are file numbers
        assert frames_of(clip("s", pattern, 2, 2), SEQ_INFO) == (1003, 1004)  # times count from the first file

    def test_frame_step_other_than_one_is_refused(self):
        ref = seq_ref(frame_step=2)
        with pytest.raises(TimelineError, match="frame_step 2"):
            media_clock(clip("s", ref, 86402, 4), SEQ_INFO)

    def test_round_trip(self):
        c = MediaClock(RT(86400, 24), 1001, 24.0)
        assert [c.number_at(c.time_of(n)) for n in (1001, 1033, 1072)] == [1001, 1033, 1072]
        assert c.number_at(RT(86410.5, 24)) == 1011  # inside a frame: that frame


class TestUsedRange:
    def test_transitions_widen_the_range(self):
        track = otio.schema.Track("V1")
        a, b = clip("a", "plate.mp4", 86410, 12), clip("b", "plate.mp4", 86440, 10)
        track.extend([a, otio.schema.Transition(in_offset=RT(3, 24), out_offset=RT(2, 24)), b])
        assert frames_of(a, PLATE_INFO) == (1011, 1024)
        assert frames_of(b, PLATE_INFO) == (1038, 1050)

    def test_time_warps(self):
        fast = clip("a", "plate.mp4", 86410, 12)
        fast.effects.append(otio.schema.LinearTimeWarp(time_scalar=2.0))
        freeze = clip("f", "plate.mp4", 86410, 12)
        freeze.effects.append(otio.schema.FreezeFrame())
        assert frames_of(fast, PLATE_INFO) == (1011, 1034)
        assert frames_of(freeze, PLATE_INFO) == (1011, 1011)


def make_cut(tmp_path: Path, clips: list, extra_tracks=()) -> Cut:
    tl = otio.schema.Timeline("cut")
    track = otio.schema.Track("V1")
    tl.tracks.append(track)
    track.extend(clips)
    tl.tracks.extend(extra_tracks)
    return Cut(timeline=tl, path=tmp_path / "cut.otio", media_base=tmp_path, adapter="otio_json")


class TestPlan:
    def test_a_media_used_twice_is_converted_once(self, tmp_path):
        cut = make_cut(tmp_path, [clip("a", "plate.mp4", 86410, 12), clip("b", "plate.mp4", 86415, 12),
                                  clip("c", "plate.mp4", 86450, 4), clip("s", seq_ref(), 86402, 4)])
        conform = plan(cut, output_dir=tmp_path / "out", media_dir=SAMPLES, handles=2)
        assert [(s.name, s.first, s.last) for s in conform.shots] == [
            ("plate_1009-1029", 1009, 1029), ("plate_1049-1056", 1049, 1056), ("plate_2", 1001, 1008)]
        assert conform.shots[0].source == str(SAMPLES / "plate.mp4") and conform.shots[0].start_frame == 1001
        assert conform.shots[0].output == str(tmp_path / "out" / "plate_vfxswap.####.exr")
        assert conform.shots[2].output == str(tmp_path / "out" / "plate_2_vfxswap.####.exr")
        assert conform.shots[2].source == str(SAMPLES / "plate_seq" / "plate.####.png")
        assert [(j.frames, j.span, j.shot.name) for j in conform.clips] == [
            ("1011-1022", (1009, 1024), "plate_1009-1029"), ("1016-1027", (1014, 1029), "plate_1009-1029"),
            ("1051-1054", (1049, 1056), "plate_1049-1056"), ("1003-1006", (1001, 1008), "plate_2")]
        assert [c.label for c in conform.clips_of(conform.shots[0])] == ["V1/a", "V1/b"]

    def test_handles_are_clamped_to_the_media(self, tmp_path):
        cut = make_cut(tmp_path, [clip("a", "plate.mp4", 86401, 4), clip("z", "plate.mp4", 86468, 4)])
        conform = plan(cut, output_dir=tmp_path, media_dir=SAMPLES, handles=10)
        assert [(s.first, s.last) for s in conform.shots] == [(1001, 1015), (1059, 1072)]

    def test_movie_outputs_take_one_span_per_media(self, tmp_path):
        cut = make_cut(tmp_path, [clip("a", "plate.mp4", 86410, 4), clip("b", "plate.mp4", 86450, 4)])
        (shot,) = plan(cut, output_dir=tmp_path, media_dir=SAMPLES, ext="mov").shots
        assert (shot.first, shot.last, shot.output) == (1011, 1054, str(tmp_path / "plate_vfxswap.mov"))

    def test_missing_offline_and_unusable_clips_are_reported_not_planned(self, tmp_path):
        (tmp_path / "broken.mov").write_bytes(b"not a movie")
        cut = make_cut(tmp_path, [clip("gone", "nowhere.mov", 0, 4), clip("off", otio.schema.MissingReference(), 0, 4),
                                  clip("bars", otio.schema.GeneratorReference(generator_kind="SMPTEBars"), 0, 4),
                                  clip("bad", "broken.mov", 0, 4), clip("long", "plate.mp4", 86460, 20),
                                  clip("ok", "plate.mp4", 86400, 2)])
        conform = plan(cut, output_dir=tmp_path, media_dir=SAMPLES)
        got = {j.clip.name: (j.status, j.message) for j in conform.clips}
        assert got["gone"] == ("missing media", f"nowhere.mov not found (looked for {SAMPLES / 'nowhere.mov'}, "
                                                f"{tmp_path / 'nowhere.mov'})")
        assert got["off"] == ("missing media", "offline (no media reference)")
        assert got["bars"][0] == "missing media" and "GeneratorReference" in got["bars"][1]
        assert got["bad"][0] == "error" and "broken.mov" in got["bad"][1]
        assert got["long"] == ("error", "uses frames 1061-1080 but plate.mp4 has 1001-1072 "
                                        "(check the cut's source timecodes or --rate)")
        assert got["ok"] == ("planned", "") and [s.name for s in conform.shots] == ["plate"]

    def test_selection_roots_and_options(self, tmp_path):
        cut = make_cut(tmp_path, [clip("a", "plate.mp4", 86410, 4), clip("b", "plate.mp4", 86450, 4)])
        conform = plan(cut, output_dir=tmp_path, media_dir=SAMPLES, selection=Selection.from_strings(selects=["name:b"]))
        assert [j.label for j in conform.clips] == ["V1/b"]
        with pytest.raises(TimelineError, match="clip V1/a references .*plate.mp4, outside the allowed media roots"):
            plan(cut, output_dir=tmp_path, media_dir=SAMPLES, media_roots=[tmp_path])
        assert plan(cut, output_dir=tmp_path, media_dir=SAMPLES, media_roots=[SAMPLES]).shots
        with pytest.raises(ConfigError, match="--handles"):
            plan(cut, output_dir=tmp_path, handles=-1)
        with pytest.raises(ConfigError, match="--ext 'gif'"):
            plan(cut, output_dir=tmp_path, ext="gif")

    def test_shot_config(self):
        shot = SwapJob(name="p", source="p.mov", output="o.####.exr", first=1009, last=1030, start_frame=1001)
        config = shot_config(ConvertConfig(color="mkl", frames="1-2"), shot)
        assert (config.frames, config.start_frame, config.color) == ("1009-1030", 1001, "mkl")


class TestRelink:
    @pytest.fixture
    def conform(self, tmp_path):
        cut = make_cut(tmp_path, [clip("a", "plate.mp4", 86410, 4), clip("b", "plate.mp4", 86450, 4),
                                  clip("s", seq_ref(), 86402, 4), clip("gone", "nowhere.mov", 0, 4)])
        return plan(cut, output_dir=tmp_path / "out", media_dir=SAMPLES, ext="png")

    def test_relink_only_links_clips_whose_frames_are_all_on_disk(self, conform, tmp_path):
        a_shot, b_shot, s_shot = conform.shots
        (tmp_path / "out").mkdir()
        for n in range(1011, 1015):  # clip a complete (stand-in pictures: relinking checks they decode)
            shutil.copy(SAMPLES / "plate_seq" / "plate.1001.png", frame_path(a_shot.output, n))
        for n in range(1051, 1053):  # clip b half there
            shutil.copy(SAMPLES / "plate_seq" / "plate.1001.png", frame_path(b_shot.output, n))
        before = [c.clone() for c in conform.cut.timeline.find_clips()]
        relink(conform, model="/models/m", config=ConvertConfig())
        status = {j.clip.name: (j.status, j.message) for j in conform.clips}
        assert status["a"] == ("converted", "")
        assert status["b"] == ("not converted", f"2 converted frames missing (1053-1054) in {b_shot.output}")
        assert status["s"][0] == "not converted" and status["gone"][0] == "missing media"
        a, b, s, gone = conform.cut.timeline.find_clips()
        assert a.active_media_reference_key == VFXSWAP_KEY
        ref = a.media_reference
        assert (ref.start_frame, ref.rate, ref.frame_zero_padding) == (1011, 24, 4)
        assert ref.frame_for_time(a.source_range.start_time) == 1011
        assert a.media_references()["DEFAULT_MEDIA"].target_url == "plate.mp4"
        assert a.metadata[VFXSWAP_KEY]["model"] == "/models/m" and a.metadata[VFXSWAP_KEY]["frames"] == "1011-1014"
        assert a.source_range == before[0].source_range
        for untouched, original in zip((b, s, gone), before[1:]):
            assert untouched.is_equivalent_to(original)

    def test_relink_only_refuses_frames_that_do_not_decode(self, conform, tmp_path):
        a_shot, b_shot, _ = conform.shots
        (tmp_path / "out").mkdir()
        good = (SAMPLES / "plate_seq" / "plate.1001.png").read_bytes()
        for n in range(1010, 1016):  # a's frames and its handles
            Path(frame_path(a_shot.output, n)).write_bytes(good)
        Path(frame_path(a_shot.output, 1012)).write_bytes(b"")  # what a full disk leaves
        Path(frame_path(a_shot.output, 1013)).write_bytes(good[: len(good) // 2])  # cut off
        for n in range(1051, 1055):
            Path(frame_path(b_shot.output, n)).write_bytes(good)
        (tmp_path / "notes.txt").write_text("not a picture")
        Path(frame_path(b_shot.output, 1054)).unlink()
        Path(frame_path(b_shot.output, 1054)).symlink_to(tmp_path / "notes.txt")
        before = [c.clone() for c in conform.cut.timeline.find_clips()]
        relink(conform, model="/models/m")
        a, b = conform.clips[:2]
        assert a.status == b.status == "not converted"
        assert a.message.startswith("2 converted frames unreadable (1012-1013: ") and a.message.endswith(a_shot.output)
        assert b.message.startswith("1 converted frames unreadable (1054: ")
        for clip_, original in zip(conform.cut.timeline.find_clips(), before):
            assert clip_.is_equivalent_to(original)

    def test_relink_only_refuses_an_empty_movie(self, tmp_path):
        cut = make_cut(tmp_path, [clip("a", "plate.mp4", 86410, 4)])
        conform = plan(cut, output_dir=tmp_path, media_dir=SAMPLES, ext="mov")
        (shot,) = conform.shots
        Path(shot.output).write_bytes(b"")
        relink(conform, model="/m")
        (job,) = conform.clips
        assert job.status == "not converted"
        assert job.message.startswith("4 converted frames unreadable (1011-1014: ") and "empty (0 bytes)" in job.message
        assert job.clip.active_media_reference_key != VFXSWAP_KEY

    def test_after_converting_no_face_and_errors_leave_clips_as_they_were(self, conform):
        a_shot, b_shot, s_shot = conform.shots
        before = [c.clone() for c in conform.cut.timeline.find_clips()]
        results = {a_shot.name: ShotResult(frames=4, frames_swapped=0), b_shot.name: ShotResult(error="truncated")}
        relink(conform, results=results)
        status = [(j.status, j.message) for j in conform.clips]
        assert status[0] == ("no face", "no face swapped in 1011-1014; clip left as is")
        assert status[1] == ("error", "truncated")
        assert status[2] == ("error", "not converted")
        for clip_, original in zip(conform.cut.timeline.find_clips(), before):
            assert clip_.is_equivalent_to(original)

    def test_a_movie_output_is_linked_by_its_available_range(self, tmp_path):
        cut = make_cut(tmp_path, [clip("a", "plate.mp4", 86410, 4), clip("b", "plate.mp4", 86450, 4)])
        conform = plan(cut, output_dir=tmp_path, media_dir=SAMPLES, ext="mov")
        (shot,) = conform.shots
        relink(conform, results={shot.name: ShotResult(frames=44, frames_swapped=40)}, model="/m")
        for c in conform.cut.timeline.find_clips():
            ref = c.media_reference
            assert isinstance(ref, otio.schema.ExternalReference) and ref.target_url == (tmp_path / "plate_vfxswap.mov").as_uri()
            assert ref.available_range == TR(RT(86410, 24), RT(44, 24))  # its first frame is source frame 1011
            assert c.metadata[VFXSWAP_KEY]["frames"] == "1011-1054"


def test_names_and_paths():
    assert media_stem("/a/plate.mov") == "plate" and media_stem("/a/sh 010.####.exr") == "sh_010"
    assert media_stem("/a/x.%04d.dpx") == "x"
    assert frame_path("/a/o.####.exr", 1001) == "/a/o.1001.exr" and frame_path("/a/o.%05d.png", 7) == "/a/o.00007.png"
    assert frame_path("/a/o.#.exr", 1001) == "/a/o.1001.exr"
