"""`vfxswap extract` and `vfxswap faceset info` end to end, through the real CLI, on the bundled samples."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from vfxswap.faces.analysis import identity_distance
from vfxswap.faces.faceset import read_faceset
from vfxswap.faces.identity import reference_embeddings

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PLATE = SAMPLES / "plate.mp4"
PLATE_SEQ = SAMPLES / "plate_seq" / "plate.####.png"
REFERENCE = SAMPLES / "reference_dst.png"


def vfxswap(*args: str | os.PathLike, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vfxswap.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vfxswap: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def _file_state(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference_faceset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "faceset"
    result = vfxswap("extract", PLATE, "-o", out, "--reference", REFERENCE, "--progress", "plain")
    assert result.returncode == 0, result.stderr
    assert "Progress: 100% (72/72 frames)" in result.stdout
    return out


class TestExtractMovie:
    def test_reference_keeps_only_that_person(self, reference_faceset, dlib_analyzer):
        records = read_faceset(reference_faceset)
        assert len(records) == 72  # one face per frame, every frame
        assert sorted(r.frame for r in records) == list(range(72))
        assert len({r.track for r in records}) == 1
        ref = reference_embeddings(dlib_analyzer, REFERENCE)[0]
        # every written crop shows the reference person: re-detect in the crop and compare identity
        for r in records[::12]:
            crop = cv2.cvtColor(cv2.imread(str(reference_faceset / r.crop_name)), cv2.COLOR_BGR2RGB)
            faces = dlib_analyzer.detect(cv2.resize(crop, None, fx=2, fy=2))
            assert faces, f"no face in crop {r.crop_name}"
            emb = dlib_analyzer.embed(cv2.resize(crop, None, fx=2, fy=2), faces[0].landmarks)
            assert identity_distance(emb, ref) < dlib_analyzer.identity_threshold

    def test_records_describe_the_crops(self, reference_faceset):
        from vfxswap.faces.geometry import transform_points

        for r in read_faceset(reference_faceset)[::9]:
            crop = cv2.imread(str(reference_faceset / r.crop_name))
            assert crop.shape == (256, 256, 3) and r.size == 256 and r.face_type == "whole_face"
            assert r.source == str(PLATE.resolve()) and r.backend == "dlib"
            assert r.embedding is not None and r.embedding.shape == (128,)
            # the record's matrix puts the nose tip near the crop's centre column
            nose = transform_points(r.face_from_frame, r.landmarks[30:31])[0]
            assert 100 < nose[0] < 156

    def test_faceset_info(self, reference_faceset):
        result = vfxswap("faceset", "info", reference_faceset, "--json")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["faces"] == 72 and summary["tracks"] == 1 and summary["missing_crops"] == 0
        text = vfxswap("faceset", "info", reference_faceset)
        assert text.returncode == 0 and "72 in 72 frames, 1 track\n" in text.stdout

    def test_an_existing_faceset_is_not_overwritten(self, reference_faceset):
        before = _file_state(reference_faceset)
        result = vfxswap("extract", PLATE, "-o", reference_faceset)
        assert_one_line_error(result, 1, "already holds 72 faces", "--resume")
        assert _file_state(reference_faceset) == before


class TestExtractSequence:
    def test_all_six_people_of_a_png_sequence(self, tmp_path):
        out = tmp_path / "fs"
        result = vfxswap("extract", PLATE_SEQ, "-o", out, "--every", "4", "--size", "128", "--face-type", "full",
                         "--progress", "none")
        assert result.returncode == 0, result.stderr
        records = read_faceset(out)
        assert len(records) == 8 * 6
        assert sorted({r.frame for r in records}) == list(range(1001, 1009))
        assert len({r.track for r in records}) == 6  # tracked through the sequence, no re-identification
        assert all(Path(r.file).name == f"plate.{r.frame}.png" for r in records)
        assert all(cv2.imread(str(out / r.crop_name)).shape == (128, 128, 3) for r in records)

    def test_min_size_and_sharpness_filters(self, tmp_path):
        out = tmp_path / "fs"
        result = vfxswap("extract", PLATE_SEQ, "-o", out, "--min-size", "500", "--detect-scale", "1", "--progress", "none")
        assert result.returncode == 0, result.stderr
        assert "dropped 48 too small" in result.stdout and read_faceset(out) == []
        out2 = tmp_path / "fs2"
        result = vfxswap("extract", PLATE_SEQ, "-o", out2, "--min-sharpness", "1e9", "--progress", "none")
        assert result.returncode == 0 and "dropped 48 too blurry" in result.stdout


class TestResume:
    def test_resume_after_kill_has_no_duplicates(self, tmp_path):
        full = tmp_path / "full"
        assert vfxswap("extract", PLATE, "-o", full, "--progress", "none").returncode == 0
        expected = {(r.frame, r.track) for r in read_faceset(full)}
        assert len(expected) == 72 * 6

        out = tmp_path / "killed"
        proc = subprocess.Popen([sys.executable, "-m", "vfxswap.cli", "extract", str(PLATE), "-o", str(out),
                                 "--progress", "none"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        records_file = out / "faceset.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if records_file.exists() and records_file.read_bytes().count(b"\n") >= 60:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        partial = read_faceset(out)
        assert 60 <= len(partial) < 72 * 6, "the run must be killed midway"
        # a kill in the middle of an append leaves a line without its newline: resume drops it
        with open(records_file, "a") as f:
            f.write('{"v":1,"index":99999,"crop":"faces/0009')

        result = vfxswap("extract", PLATE, "-o", out, "--resume", "--progress", "none")
        assert result.returncode == 0, result.stderr
        records = read_faceset(out)
        frames = [r.frame for r in records]
        assert len(records) == 72 * 6
        assert sorted({f for f in frames}) == list(range(72))
        assert all(frames.count(f) == 6 for f in range(72))  # no frame written twice
        assert [r.index for r in records] == list(range(len(records)))
        assert all((out / r.crop_name).is_file() for r in records)
        assert not list((out / "faces").glob(".tmp-*"))
        # records committed before the kill are untouched
        assert [r.to_json() for r in records[:len(partial)]] == [r.to_json() for r in partial]


class TestBadInput:
    def test_missing_input(self, tmp_path):
        assert_one_line_error(vfxswap("extract", tmp_path / "nope.mov", "-o", tmp_path / "fs"), 3, "nope.mov")

    def test_zero_byte_movie(self, tmp_path):
        empty = tmp_path / "empty.mp4"
        empty.write_bytes(b"")
        assert_one_line_error(vfxswap("extract", empty, "-o", tmp_path / "fs"), 3, "empty.mp4")

    def test_truncated_movie(self, tmp_path):
        cut = tmp_path / "cut.mp4"
        cut.write_bytes(PLATE.read_bytes()[: PLATE.stat().st_size // 2])
        assert_one_line_error(vfxswap("extract", cut, "-o", tmp_path / "fs"), 3, "cut.mp4")

    def test_folder_without_images(self, tmp_path):
        folder = tmp_path / "plates"
        folder.mkdir()
        (folder / "notes.txt").write_text("no images here")
        assert_one_line_error(vfxswap("extract", folder, "-o", tmp_path / "fs"), 3, "no images")

    def test_reference_without_a_face(self, tmp_path):
        blank = tmp_path / "blank.png"
        cv2.imwrite(str(blank), np.full((200, 200, 3), 90, np.uint8))
        assert_one_line_error(vfxswap("extract", PLATE_SEQ, "-o", tmp_path / "fs", "--reference", blank), 3, "no face")

    def test_corrupt_faceset_line(self, tmp_path, reference_faceset):
        fs = tmp_path / "fs"
        shutil.copytree(reference_faceset, fs)
        lines = (fs / "faceset.jsonl").read_text().splitlines(keepends=True)
        lines[5] = '{"v":1,"index":5,"landmarks":[[1,2]],"broken\n'
        (fs / "faceset.jsonl").write_text("".join(lines))
        before = _file_state(fs)
        assert_one_line_error(vfxswap("faceset", "info", fs), 3, "line 6 is corrupt")
        assert_one_line_error(vfxswap("extract", PLATE, "-o", fs, "--resume"), 3, "line 6 is corrupt")
        assert _file_state(fs) == before

    def test_unwritable_output(self, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("I am a file, not a folder")
        assert_one_line_error(vfxswap("extract", PLATE_SEQ, "-o", blocker / "fs"), 1, "cannot create faceset folder")

    def test_usage_errors_exit_2(self, tmp_path):
        assert_one_line_error(vfxswap("extract", PLATE_SEQ, "-o", tmp_path / "fs", "--every", "0"), 2, "--every")
        assert_one_line_error(vfxswap("extract", PLATE_SEQ, "-o", tmp_path / "fs", "--backend", "insightface"),
                              2, "--face-models")
        assert vfxswap("extract").returncode == 2  # argparse: missing arguments

    def test_insightface_without_a_pack(self, tmp_path):
        assert_one_line_error(vfxswap("extract", PLATE_SEQ, "-o", tmp_path / "fs", "--backend", "insightface",
                                      "--face-models", tmp_path / "models"), 3, "never downloads")
