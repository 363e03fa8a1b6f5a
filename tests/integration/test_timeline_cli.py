"""`vfxswap timeline` end to end through the real CLI: a two-track cut on disk over the sample plate,
converted with the demo model, relinked, and checked frame by frame against the plate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import cv2
import numpy as np
import opentimelineio as otio
import pytest

from vfxswap.timeline.otio import VFXSWAP_KEY, url_to_path

from .test_extract_cli import PLATE, REFERENCE, SAMPLES, assert_one_line_error, vfxswap

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
MODEL = SAMPLES / "demo_model"
TC0 = 86400  # 01:00:00:00 at 24 fps: the plate's first frame


def clip(name: str, ref, start: int, duration: int) -> otio.schema.Clip:
    if isinstance(ref, str):
        ref = otio.schema.ExternalReference(ref)
    return otio.schema.Clip(name, ref, TR(RT(start, 24), RT(duration, 24)))


def build_cut() -> otio.schema.Timeline:
    """V1: sh010 (offset 10 frames), gap, sh020 (file URL) -dissolve- sh030 (PNG sequence from 1001),
    sh040 (missing media), sh050 (sh010's media again); BG: gap + nested stack with sh060; A1: audio."""
    tl = otio.schema.Timeline("cut")
    v1, bg = otio.schema.Track("V1"), otio.schema.Track("BG")
    a1 = otio.schema.Track("A1", kind=otio.schema.TrackKind.Audio)
    tl.tracks.extend([v1, bg, a1])
    seq = otio.schema.ImageSequenceReference("plate_seq/", "plate.", ".png", start_frame=1001, rate=24,
                                             frame_zero_padding=4, available_range=TR(RT(TC0, 24), RT(8, 24)))
    sh010 = clip("sh010", "plate.mp4", TC0 + 10, 10)
    sh010.markers.append(otio.schema.Marker("faceswap", TR(RT(TC0 + 12, 24), RT(1, 24)), color="GREEN"))
    v1.extend([sh010, otio.schema.Gap(source_range=TR(RT(0, 24), RT(5, 24))),
               clip("sh020", PLATE.as_uri(), TC0 + 40, 8),
               otio.schema.Transition("dissolve", "SMPTE_Dissolve", RT(2, 24), RT(2, 24)),
               clip("sh030", seq, TC0 + 3, 4),
               clip("sh040", "lost/plate_v2.mov", TC0, 6),
               clip("sh050", "plate.mp4", TC0 + 12, 6)])
    nest, inner = otio.schema.Stack("nest"), otio.schema.Track("inner")
    inner.append(clip("sh060", "plate.mp4", TC0 + 15, 5))
    nest.append(inner)
    bg.extend([otio.schema.Gap(source_range=TR(RT(0, 24), RT(12, 24))), nest])
    a1.append(clip("sh010", "plate.mp4", TC0, 48))
    return tl


@pytest.fixture(scope="module")
def model(demo_model) -> Path:
    return demo_model


@pytest.fixture(scope="module")
def plate_small() -> np.ndarray:
    """The plate's 72 frames as decoded RGB, (72, 720, 1280, 3) uint8."""
    with av.open(str(PLATE)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def conformed(model, tmp_path_factory) -> dict:
    """One `vfxswap timeline` run over the cut: 3 jobs, 32 frames."""
    root = tmp_path_factory.mktemp("conform")
    (root / "edit").mkdir()
    cut = root / "edit" / "cut.otio"
    otio.adapters.write_to_file(build_cut(), str(cut))
    out = root / "cut_swapped.otio"
    result = vfxswap("timeline", cut, "-m", model, "-o", out, "--media-dir", SAMPLES, "--output-dir", root / "media",
                     "--handles", "1", "--ext", "png", "--reference", REFERENCE, "--report", root / "report.json",
                     "--progress", "plain")
    assert result.returncode == 0, result.stderr
    return {"root": root, "cut": cut, "out": out, "stdout": result.stdout, "media": root / "media"}


def read_png(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def clips_by_name(tl: otio.schema.Timeline) -> dict[str, otio.schema.Clip]:
    return {f"{c.name}{'/audio' if c.parent().kind == 'Audio' else ''}": c for c in tl.find_clips()}


class TestConform:
    def test_report(self, conformed):
        out = conformed["stdout"]
        assert re.search(r"^converted +V1/sh010: 1011-1020 -> .*plate_vfxswap.####.png$", out, re.M)
        assert re.search(r"^converted +V1/sh030: 1002-1007 -> .*plate_2_vfxswap.####.png$", out, re.M)
        assert re.search(r"^converted +BG/sh060: 1016-1020 ", out, re.M)
        assert re.search(r"^missing media +V1/sh040: lost/plate_v2.mov not found", out, re.M)
        assert "conformed 6 clips (5 converted, 1 missing media)" in out
        assert "Progress: 100% (32/32 frames)" in out
        report = json.loads((conformed["root"] / "report.json").read_text())
        assert [(r["clip"], r["status"]) for r in report["clips"]] == [
            ("V1/sh010", "converted"), ("V1/sh020", "converted"), ("V1/sh030", "converted"),
            ("V1/sh040", "missing media"), ("V1/sh050", "converted"), ("BG/sh060", "converted")]
        # each media file once: plate.mp4 1010-1021 (sh010, sh050, sh060) and 1040-1051, the PNGs 1001-1008
        names = sorted(p.name for p in conformed["media"].glob("*.png"))
        assert names == sorted([f"plate_vfxswap.{n}.png" for n in [*range(1010, 1022), *range(1040, 1052)]]
                               + [f"plate_2_vfxswap.{n}.png" for n in range(1001, 1009)])

    def test_timing_structure_and_untouched_items_survive(self, conformed):
        before = otio.adapters.read_from_file(str(conformed["cut"]))
        after = otio.adapters.read_from_file(str(conformed["out"]))
        assert after.duration() == before.duration()
        for t0, t1 in zip(before.tracks, after.tracks):
            assert (t0.name, t0.kind, len(t0)) == (t1.name, t1.kind, len(t1))
            for a, b in zip(t0, t1):
                assert type(a) is type(b) and a.name == b.name
                assert a.range_in_parent() == b.range_in_parent()
                if not isinstance(a, otio.schema.Clip) and not isinstance(a, otio.schema.Stack):
                    assert a.is_equivalent_to(b)  # gaps and transitions
        assert after.tracks[2].is_equivalent_to(before.tracks[2])  # the audio track
        nest0, nest1 = before.tracks[1][1], after.tracks[1][1]
        assert isinstance(nest1, otio.schema.Stack) and len(nest1) == len(nest0) == 1 and nest1[0].name == "inner"
        assert nest1[0][0].range_in_parent() == nest0[0][0].range_in_parent()
        c0, c1 = clips_by_name(before), clips_by_name(after)
        assert c1["sh040"].is_equivalent_to(c0["sh040"])  # missing media: left as is
        for name in ("sh010", "sh020", "sh030", "sh050", "sh060"):
            a, b = c0[name], c1[name]
            assert b.source_range == a.source_range and b.trimmed_range_in_parent() == a.trimmed_range_in_parent()
            assert b.active_media_reference_key == VFXSWAP_KEY
            assert b.media_references()["DEFAULT_MEDIA"].is_equivalent_to(a.media_reference)
            assert b.markers == a.markers or all(m0.is_equivalent_to(m1) for m0, m1 in zip(a.markers, b.markers))
            ref = b.media_reference
            assert isinstance(ref, otio.schema.ImageSequenceReference)
            assert (ref.rate, ref.frame_zero_padding, ref.frame_step) == (24, 4, 1)
            stamp = b.metadata[VFXSWAP_KEY]
            assert stamp["version"] and stamp["settings_digest"].startswith("sha256:") and stamp["model"].endswith("demo")
        assert c1["sh030"].media_reference.start_frame == 1001
        assert c1["sh010"].media_reference.frame_for_time(RT(TC0 + 10, 24)) == 1011

    def test_every_output_frame_is_the_same_source_frame(self, conformed, plate_small):
        after = otio.adapters.read_from_file(str(conformed["out"]))
        small = np.stack([cv2.resize(f, (160, 90), interpolation=cv2.INTER_AREA) for f in plate_small]).astype(np.int16)
        seq = {n: read_png(str(SAMPLES / "plate_seq" / f"plate.{n}.png")) for n in range(1001, 1009)}
        checked = 0
        for c in after.find_clips():
            if c.active_media_reference_key != VFXSWAP_KEY:
                continue
            ref = c.media_reference
            used = c.visible_range()
            for k in range(int(used.duration.value)):
                t = used.start_time + RT(k, 24)
                path = url_to_path(ref.target_url_for_image_number(ref.frame_for_time(t) - ref.start_frame))
                image = read_png(path)
                expected = int(t.value) - TC0  # the plate's frame index at this media time
                if c.name == "sh030":
                    exact = seq[1001 + expected]
                    others = [v for n, v in seq.items() if n != 1001 + expected]
                else:
                    exact = plate_small[expected]
                    mad = np.abs(small - cv2.resize(image, (160, 90), interpolation=cv2.INTER_AREA)).mean(axis=(1, 2, 3))
                    assert int(np.argmin(mad)) == expected, (c.name, k)
                    others = [plate_small[i] for i in (expected - 1, expected + 1) if 0 <= i < 72]
                same = (image == exact).all(axis=2)
                assert 0.9 < same.mean() < 1.0, (c.name, k)  # untouched outside the swapped face, face changed
                assert all((image == o).all(axis=2).mean() < same.mean() for o in others)
                checked += 1
        assert checked == 10 + 10 + 6 + 6 + 5  # visible ranges: the dissolve shows 2 more frames of sh020, sh030


class TestEdl:
    def test_relink_only_on_an_edl_keeps_the_original_timecodes(self, conformed, tmp_path):
        edl = tmp_path / "cut.edl"
        edl.write_text("TITLE: cut\nFCM: NON-DROP FRAME\n\n"
                       "001  plate    V     C        01:00:00:10 01:00:00:20 00:00:00:00 00:00:00:10\n"
                       "* FROM CLIP NAME: sh010\n* FROM CLIP: plate.mp4\n"
                       "002  plate    V     C        01:00:01:16 01:00:02:00 00:00:00:10 00:00:00:18\n"
                       "* FROM CLIP NAME: sh020\n* FROM CLIP: plate.mp4\n"
                       "003  plate    V     C        01:00:02:20 01:00:02:23 00:00:00:18 00:00:00:21\n"
                       "* FROM CLIP NAME: sh070\n* FROM CLIP: plate.mp4\n")
        out = tmp_path / "cut_swapped.edl"
        result = vfxswap("timeline", edl, "--rate", "24", "-o", out, "--media-dir", SAMPLES,
                         "--output-dir", conformed["media"], "--ext", "png", "--handles", "1", "--relink-only")
        assert result.returncode == 1, result.stderr  # sh070's frames were never converted
        assert re.search(r"^not converted +V/sh070: 3 converted frames missing \(1069-1071\)", result.stdout, re.M)
        assert "conformed 3 clips (2 converted, 1 not converted)" in result.stdout

        def events(text: str) -> list[list[str]]:
            return [re.findall(r"\d\d:\d\d:\d\d:\d\d", line) for line in text.splitlines() if line[:3].isdigit()]

        written = out.read_text()
        assert events(written) == events(edl.read_text())
        # the writer names the converted files each event plays: the same frames as the source timecodes
        assert f"* FROM CLIP: {(conformed['media'] / 'plate_vfxswap.').as_uri()}[1011-1020].png" in written
        assert f"* FROM CLIP: {(conformed['media'] / 'plate_vfxswap.').as_uri()}[1041-1048].png" in written
        assert "* FROM CLIP: plate.mp4" in written  # the clip that was not converted


    def test_an_edl_at_23_976_relinks_at_the_exact_rate_with_media_beside_the_cut(self, conformed, tmp_path):
        (tmp_path / "plate.mp4").symlink_to(PLATE)  # the editor's path is gone; the file sits beside the cut
        edl = tmp_path / "cut.edl"
        edl.write_text("TITLE: ntsc\nFCM: NON-DROP FRAME\n\n"
                       "001  plate    V     C        01:00:00:10 01:00:00:20 00:00:00:00 00:00:00:10\n"
                       "* FROM CLIP NAME: sh010\n* FROM CLIP: /Volumes/editorial/plate.mp4\n")
        out = tmp_path / "cut_swapped.otio"
        result = vfxswap("timeline", edl, "--rate", "23.976", "-o", out, "--output-dir", conformed["media"],
                         "--ext", "png", "--relink-only")
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"^converted +V/sh010: 1011-1020 -> .*plate_vfxswap.####.png$", result.stdout, re.M)
        (c,) = otio.adapters.read_from_file(str(out)).find_clips()
        ntsc = 24000 / 1001
        assert c.source_range == TR(RT(TC0 + 10, ntsc), RT(10, ntsc))
        assert c.media_reference.rate == ntsc and c.media_reference.frame_for_time(c.source_range.start_time) == 1011
        assert c.metadata[VFXSWAP_KEY]["source"] == str(tmp_path / "plate.mp4")

    @pytest.mark.parametrize("command", ["timeline", "plan"])
    def test_ntsc_rates_as_decimals_or_fractions_in_every_command(self, command, tmp_path):
        edl = tmp_path / "cut.edl"
        edl.write_text("TITLE: ntsc\n001  plate    V     C        01:00:00:10 01:00:00:20 00:00:00:00 00:00:00:10\n"
                       "* FROM CLIP NAME: sh010\n* FROM CLIP: plate.mp4\n")
        extra = ["--dry-run"] if command == "timeline" else ["-m", MODEL, "--chunk", "100"]
        outputs = set()
        for rate in ("24", "23.976", "23.98", "24000/1001"):
            result = vfxswap(command, edl, "--rate", rate, "--media-dir", SAMPLES, *extra)
            assert result.returncode == 0, (rate, result.stderr)
            outputs.add(result.stdout)
        assert len(outputs) == 1 and "1011-1020" in outputs.pop()  # the same frames at 24 and 23.976
        for rate, fragment in (("fast", "bad frame rate 'fast'"), ("0", "must be > 0"), ("24/0", "bad frame rate"),
                               ("119.88", "EDL timecode cannot count at this rate")):
            assert_one_line_error(vfxswap(command, edl, "--rate", rate, "--media-dir", SAMPLES, *extra), 2, fragment)

    def test_an_edl_the_adapter_crashes_on_is_a_one_line_error(self, tmp_path):
        edl = tmp_path / "dup.edl"
        edl.write_text("TITLE: dup\nFCM: NON-DROP FRAME\n\n"
                       "001  AX       V     C        01:00:00:00 01:00:01:00 01:00:00:00 01:00:01:00\n"
                       "001  AX       A     C        01:00:00:00 01:00:01:00 01:00:00:00 01:00:01:00\n"
                       "* FROM CLIP NAME: plate.mp4\n")
        assert_one_line_error(vfxswap("timeline", edl, "--dry-run"), 3, f"cannot read {edl}: the cmx_3600 adapter "
                              "crashed", "the EDL is malformed", "numbered 001", "export the cut again")


class TestNoFace:
    def test_a_clip_without_faces_is_reported_and_left_as_is(self, model, tmp_path):
        cut = tmp_path / "cut.otio"
        tl = build_cut()
        otio.adapters.write_to_file(tl, str(cut))
        out = tmp_path / "out.otio"
        result = vfxswap("timeline", cut, "-m", model, "-o", out, "--media-dir", SAMPLES, "--select", "name:sh030",
                         "--ext", "png", "--min-size", "1000", "--detect-scale", "1", "--progress", "none")
        assert result.returncode == 0, result.stderr
        assert re.search(r"^no face +V1/sh030: no face swapped in 1002-1007; clip left as is$", result.stdout, re.M)
        before, after = clips_by_name(tl), clips_by_name(otio.adapters.read_from_file(str(out)))
        assert all(after[n].is_equivalent_to(before[n]) for n in before)


class TestDryRunAndErrors:
    @pytest.fixture
    def cut(self, tmp_path) -> Path:
        path = tmp_path / "cut.otio"
        otio.adapters.write_to_file(build_cut(), str(path))
        return path

    def test_dry_run_lists_the_jobs(self, cut, tmp_path):
        result = vfxswap("timeline", cut, "--dry-run", "--media-dir", SAMPLES, "--handles", "4")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        media = tmp_path / "cut_vfxswap"
        assert lines[0] == (f"job plate_1007-1024: {PLATE} --frames 1007-1024 -> {media}/plate_vfxswap.####.exr "
                            "(V1/sh010, V1/sh050, BG/sh060)")
        assert lines[2].startswith(f"job plate_2: {SAMPLES}/plate_seq/plate.####.png --frames 1001-1008 ")
        assert lines[3].startswith("missing media  V1/sh040: lost/plate_v2.mov not found")
        assert lines[-1] == "3 jobs, 44 frames, 5 of 6 selected clips"  # 1007-1024, 1037-1054, 1001-1008
        assert not media.exists()
        result = vfxswap("timeline", cut, "--dry-run", "--media-dir", SAMPLES, "--select", "marker:faceswap")
        assert result.stdout.splitlines()[-1] == "1 job, 10 frames, 1 of 1 selected clips"

    def test_malformed_timeline(self, tmp_path):
        bad = tmp_path / "bad.otio"
        bad.write_text('{"OTIO_SCHEMA": "Timeline.1", "tracks": {')
        result = vfxswap("timeline", bad, "-m", MODEL, "-o", tmp_path / "o.otio")
        assert_one_line_error(result, 3, "cannot read", "bad.otio")
        bad_edl = tmp_path / "bad.edl"
        bad_edl.write_text("001  plate V C 01:00:00:00\n")
        assert_one_line_error(vfxswap("timeline", bad_edl, "--dry-run"), 3, "bad.edl", "cmx_3600")

    def test_unknown_adapter_or_extension(self, cut, tmp_path):
        assert_one_line_error(vfxswap("timeline", cut, "--dry-run", "--adapter", "premiere"), 2,
                              "unknown timeline adapter 'premiere'", "otio_json")
        odd = tmp_path / "cut.prproj"
        odd.write_text("x")
        assert_one_line_error(vfxswap("timeline", odd, "--dry-run"), 3, "no timeline adapter reads .prproj")

    def test_media_outside_the_allowed_roots(self, cut, tmp_path):
        result = vfxswap("timeline", cut, "-m", MODEL, "-o", tmp_path / "o.otio", "--media-dir", SAMPLES,
                         "--media-root", tmp_path)
        assert_one_line_error(result, 3, "clip V1/sh010 references", "outside the allowed media roots")
        assert not (tmp_path / "o.otio").exists()

    def test_usage_errors(self, cut, tmp_path):
        assert_one_line_error(vfxswap("timeline", cut, "-o", tmp_path / "o.otio"), 2, "needs -m MODEL")
        assert_one_line_error(vfxswap("timeline", cut, "-m", MODEL), 2, "-o CUT_swapped.otio")
        assert_one_line_error(vfxswap("timeline", cut, "-m", MODEL, "-o", cut), 2, "is the cut itself")
        assert_one_line_error(vfxswap("timeline", cut, "-m", MODEL, "-o", tmp_path / "o.otioz"), 2, "bundles copy")
        assert_one_line_error(vfxswap("timeline", cut, "--dry-run", "--relink-only"), 2, "exclude each other")
        assert_one_line_error(vfxswap("timeline", cut, "--dry-run", "--track", "V7"), 2, "no such track")
        assert_one_line_error(vfxswap("timeline", cut, "--dry-run", "--select", "colour:red"), 2, "bad --select")


def test_sample_cut_dry_run():
    result = vfxswap("timeline", SAMPLES / "cut.otio", "--dry-run", "--output-dir", "/nonexistent/out")
    assert result.returncode == 0, result.stderr
    assert "missing media" not in result.stdout and result.stdout.splitlines()[-1].endswith("2 of 2 selected clips")


def test_plan_from_a_cut(conformed, model, tmp_path):
    """`vfxswap plan CUT` plans the same jobs as `vfxswap timeline CUT`."""
    from vfxswap.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)).choices
    if "plan" not in commands:
        pytest.skip("vfxswap plan is not there yet")
    out = tmp_path / "plan.json"
    result = vfxswap("plan", conformed["cut"], "-m", model, "--plan-out", out, "--format", "json", "--media-dir", SAMPLES,
                     "--output-dir", tmp_path / "media", "--handles", "1", "--ext", "png", "--chunk", "8")
    assert result.returncode == 0, result.stderr
    tasks = json.loads(out.read_text())["tasks"]
    frames = sorted((t["output"], t["frames"]) for t in tasks)
    assert frames == sorted([(str(tmp_path / "media" / "plate_vfxswap.####.png"), r) for r in
                             ("1010-1017", "1018-1021", "1040-1047", "1048-1051")]
                            + [(str(tmp_path / "media" / "plate_2_vfxswap.####.png"), "1001-1008")])
