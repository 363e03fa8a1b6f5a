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

from vfxswap.atomic import is_temp_name
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


def _copy_frames(folder: Path, numbers) -> Path:
    """Copy frames ``numbers`` of the sample sequence into ``folder``; returns its #### pattern."""
    folder.mkdir(exist_ok=True)
    for n in numbers:
        shutil.copy(PLATE_SEQ.parent / f"plate.{n}.png", folder)
    return folder / "plate.####.png"


def _assert_consistent(faceset: Path, faces: int) -> None:
    """``faces`` records, each index once, each (frame, track) once, every crop decodes; info exits 0."""
    records = read_faceset(faceset)
    assert len(records) == faces
    assert sorted(r.index for r in records) == list(range(faces))
    assert len({(r.frame, r.track) for r in records}) == faces
    info = vfxswap("faceset", "info", faceset, "--json")
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert not summary["damaged"] and summary["unreadable_crops"] == 0 and summary["duplicate_indices"] == 0


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
        # the tracks carry on across the kill: the same six ids and embeddings as the uninterrupted run
        assert {(r.frame, r.track) for r in records} == expected
        full_embedding = {r.track: r.embedding for r in read_faceset(full)}
        for r in records:
            np.testing.assert_allclose(r.embedding, full_embedding[r.track], atol=1e-5)

    def test_resume_continues_the_tracks_of_the_last_committed_frame(self, tmp_path):
        """An extract that stopped after frame 1006 of eight, resumed once 1007-1008 are there, gets the
        tracks of an uninterrupted extract (1007-1008 are tracked from the re-read frame 1006)."""
        whole = vfxswap("extract", _copy_frames(tmp_path / "whole", range(1001, 1009)), "-o", tmp_path / "fs_whole",
                        "--every", "4", "--size", "128", "--progress", "none")
        assert whole.returncode == 0, whole.stderr
        pattern = _copy_frames(tmp_path / "part", range(1001, 1007))
        first = vfxswap("extract", pattern, "-o", tmp_path / "fs", "--every", "4", "--size", "128", "--progress", "none")
        assert first.returncode == 0, first.stderr
        _copy_frames(tmp_path / "part", [1007, 1008])
        resumed = vfxswap("extract", pattern, "-o", tmp_path / "fs", "--every", "4", "--size", "128", "--resume",
                          "--progress", "none")
        assert resumed.returncode == 0, resumed.stderr
        assert "extracted 12 faces from 2 frames (6 tracks)" in resumed.stdout

        expected = {(r.frame, r.track): r for r in read_faceset(tmp_path / "fs_whole")}
        got = {(r.frame, r.track): r for r in read_faceset(tmp_path / "fs")}
        assert {r.track for r in got.values()} == {r.track for r in expected.values()} == set(range(6))
        assert got.keys() == expected.keys()
        for key, r in got.items():
            np.testing.assert_allclose(r.landmarks, expected[key].landmarks, atol=0.5)
            np.testing.assert_allclose(r.embedding, expected[key].embedding, atol=1e-5)
        _assert_consistent(tmp_path / "fs", 48)


class TestConcurrentWriters:
    @pytest.mark.parametrize("second", [["--resume"], []], ids=["resume", "plain"])
    def test_a_second_extract_into_a_busy_faceset_fails_cleanly(self, tmp_path, second):
        out = tmp_path / "fs"
        # --every 1 keeps the first extract busy for a while (a detection on every frame)
        first = subprocess.Popen([sys.executable, "-m", "vfxswap.cli", "extract", str(PLATE), "-o", str(out),
                                  "--every", "1", "--progress", "none"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        records_file = out / "faceset.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            if records_file.exists() and records_file.read_bytes().count(b"\n") >= 6:
                break
            time.sleep(0.02)
        result = vfxswap("extract", PLATE, "-o", out, *second, "--progress", "none")
        assert first.poll() is None, "the first extract must still be running"
        assert_one_line_error(result, 1, "another process is writing the faceset", str(out))
        stdout, stderr = first.communicate(timeout=300)
        assert first.returncode == 0, stderr
        assert "extracted 432 faces from 72 frames" in stdout
        _assert_consistent(out, 72 * 6)


class TestUnsafeOutput:
    def test_records_file_symlink_is_refused(self, tmp_path):
        out = tmp_path / "fs"
        out.mkdir()
        victim = tmp_path / "victim.jsonl"
        victim.write_bytes(b"")
        os.symlink(victim, out / "faceset.jsonl")
        for resume in ([], ["--resume"]):
            assert_one_line_error(vfxswap("extract", PLATE_SEQ, "-o", out, *resume), 1, "faceset.jsonl", "symlink")
        assert victim.read_bytes() == b"" and (out / "faceset.jsonl").is_symlink()
        assert not list((out / "faces").iterdir())

    def test_disk_full_fails_cleanly_and_resumes(self, small_disk):
        folder, fill = small_disk
        out = folder / "fs"
        fill(400_000)  # room for a dozen 128 px crops of the 48
        args = ("extract", PLATE_SEQ, "-o", out, "--size", "128", "--progress", "none")
        assert_one_line_error(vfxswap(*args), 1, "No space left on device")
        assert not [p for p in out.rglob("*") if is_temp_name(p.name)]
        partial = read_faceset(out)  # the faceset opens cleanly: whole frames only
        assert len(partial) < 48 and len(partial) % 6 == 0
        assert vfxswap("faceset", "info", out).returncode == 0
        (folder / "ballast").unlink()
        result = vfxswap(*args, "--resume")
        assert result.returncode == 0, result.stderr
        _assert_consistent(out, 48)


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

    def test_truncated_png_in_a_folder(self, tmp_path):
        folder = tmp_path / "stills"
        _copy_frames(folder, [1001, 1002])
        cut = folder / "plate.1002.png"
        cut.write_bytes(cut.read_bytes()[:30000])
        result = vfxswap("extract", folder, "-o", tmp_path / "fs", "--progress", "none")
        assert_one_line_error(result, 3, "plate.1002.png", "truncated")
        assert "libpng" not in result.stderr

    @pytest.mark.parametrize("damage", [lambda d: d[:len(d) // 3], lambda d: b"", lambda d: os.urandom(4000)],
                             ids=["truncated", "zero-byte", "random-bytes"])
    def test_unreadable_reference_png(self, tmp_path, damage):
        ref = tmp_path / "ref.png"
        ref.write_bytes(damage(REFERENCE.read_bytes()))
        result = vfxswap("extract", PLATE_SEQ, "-o", tmp_path / "fs", "--reference", ref)
        assert_one_line_error(result, 3, "ref.png")
        assert "libpng" not in result.stderr

    def test_faceset_with_nan_landmarks(self, tmp_path, reference_faceset):
        fs = tmp_path / "fs"
        shutil.copytree(reference_faceset, fs)
        lines = (fs / "faceset.jsonl").read_text().splitlines(keepends=True)
        record = json.loads(lines[5])
        record["landmarks"][30][0] = "NAN"
        lines[5] = json.dumps(record).replace('"NAN"', "NaN") + "\n"
        (fs / "faceset.jsonl").write_text("".join(lines))
        assert_one_line_error(vfxswap("faceset", "info", fs), 3, "line 6 is corrupt", "NaN")

    def test_faceset_info_finds_damage(self, tmp_path, reference_faceset):
        fs = tmp_path / "fs"
        shutil.copytree(reference_faceset, fs)
        lines = (fs / "faceset.jsonl").read_text().splitlines(keepends=True)
        (fs / "faceset.jsonl").write_text("".join(lines + lines[40:42]))  # two indices claimed twice
        crops = [fs / read_faceset(fs)[i].crop_name for i in (3, 4, 5)]
        crops[0].write_bytes(b"")
        crops[1].write_bytes(crops[1].read_bytes()[:500])
        crops[2].write_bytes(os.urandom(2000))
        result = vfxswap("faceset", "info", fs)
        assert_one_line_error(result, 3, "is damaged (2 indices claimed more than once, 3 crops unreadable)")
        assert "damage    index 40 is claimed by 2 records" in result.stdout
        assert "damage    faces/00000004.png is truncated" in result.stdout
        summary = json.loads(vfxswap("faceset", "info", fs, "--json").stdout)
        assert (summary["duplicate_indices"], summary["unreadable_crops"], summary["missing_crops"]) == (2, 3, 0)

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
