"""The on-disk faceset: one writer at a time, no writes through symlinks, damage and corruption found."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest

from vfxswap.errors import FacesetError, OutputError
from vfxswap.faces.align import face_from_frame, warp_to_face
from vfxswap.faces.faceset import FaceRecord, FacesetWriter, faceset_summary, read_faceset

SIZE = 64


def _faces(group_photo, group_faces):
    """``(crop, record)`` pairs of the six faces of the group photo, as extract makes them."""
    out = []
    for i, face in enumerate(group_faces):
        m = face_from_frame(face.landmarks, SIZE, "whole_face")
        out.append((warp_to_face(group_photo, m, SIZE), FaceRecord(
            index=i, source="/plates/group.png", frame=0, track=i, box=face.box, landmarks=face.landmarks,
            face_from_frame=m, size=SIZE, face_type="whole_face", embedding=None, sharpness=10.0,
            score=face.score, backend="dlib")))
    return out


@pytest.fixture
def faceset(tmp_path, group_photo, group_faces):
    folder = tmp_path / "fs"
    with FacesetWriter(folder) as writer:
        writer.commit(_faces(group_photo, group_faces))
    return folder


class TestOneWriter:
    def test_a_second_writer_is_refused_while_the_first_is_open(self, tmp_path):
        with FacesetWriter(tmp_path / "fs"):
            with pytest.raises(OutputError, match="another process is writing the faceset"):
                FacesetWriter(tmp_path / "fs", resume=True)
        with FacesetWriter(tmp_path / "fs", resume=True):  # released on close
            pass

    def test_the_lock_dies_with_its_process(self, tmp_path):
        folder = tmp_path / "fs"
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time; from vfxswap.faces.faceset import FacesetWriter; "
             "w = FacesetWriter(sys.argv[1]); print('locked', flush=True); time.sleep(60)", str(folder)],
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            with pytest.raises(OutputError, match="another process"):
                FacesetWriter(folder)
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
        with FacesetWriter(folder):
            pass


class TestSymlinks:
    def test_records_file_symlink_is_refused(self, tmp_path):
        folder = tmp_path / "fs"
        folder.mkdir()
        victim = tmp_path / "victim.txt"
        victim.write_text("precious\n")
        os.symlink(victim, folder / "faceset.jsonl")
        for resume in (False, True):
            with pytest.raises(OutputError, match="symlink"):
                FacesetWriter(folder, resume=resume)
        assert victim.read_text() == "precious\n"

    def test_lock_file_symlink_is_refused(self, tmp_path):
        folder = tmp_path / "fs"
        folder.mkdir()
        os.symlink(tmp_path / "elsewhere.lock", folder / "faceset.lock")
        with pytest.raises(OutputError, match="symlink"):
            FacesetWriter(folder)
        assert not (tmp_path / "elsewhere.lock").exists()


class TestAppend:
    def test_records_and_crops_round_trip(self, faceset):
        records = read_faceset(faceset)
        assert [r.index for r in records] == list(range(6))
        summary = faceset_summary(faceset)
        assert summary["faces"] == 6 and not summary["damaged"] and summary["problems"] == []

    def test_resume_drops_a_cut_short_line(self, faceset, group_photo, group_faces):
        with open(faceset / "faceset.jsonl", "a") as f:
            f.write('{"v":1,"index":6,"cro')
        with FacesetWriter(faceset, resume=True) as writer:
            assert writer.next_index == 6
            crop, record = _faces(group_photo, group_faces)[0]
            writer.commit([(crop, dataclasses.replace(record, index=6))])
        assert [r.index for r in read_faceset(faceset)] == list(range(7))


    def test_opening_removes_the_temp_crops_of_a_killed_writer(self, faceset, tmp_path):
        victim = tmp_path / "victim.png"
        victim.write_bytes(b"keep")
        (faceset / "faces" / ".tmp-k3j9x2-00000006.png").write_bytes(b"half a png")
        os.symlink(victim, faceset / "faces" / ".tmp-p0q1r2-00000007.png")
        with FacesetWriter(faceset, resume=True):
            pass
        assert sorted(p.name for p in (faceset / "faces").iterdir()) == [f"{i:08d}.png" for i in range(6)]
        assert victim.read_bytes() == b"keep"


class TestDamage:
    def test_duplicated_index_line(self, faceset):
        lines = (faceset / "faceset.jsonl").read_text().splitlines(keepends=True)
        (faceset / "faceset.jsonl").write_text("".join(lines + [lines[2]]))
        summary = faceset_summary(faceset)
        assert summary["duplicate_indices"] == 1 and summary["damaged"]
        assert summary["problems"] == ["index 2 is claimed by 2 records"]

    @pytest.mark.parametrize("damage, why", [
        (lambda data: b"", "empty"),
        (lambda data: data[: len(data) // 2], "truncated"),
        (lambda data: np.random.default_rng(0).bytes(len(data)), "not a PNG file"),
        (lambda data: data[:-20] + bytes(b ^ 0xFF for b in data[-20:-12]) + data[-12:], "damaged"),
    ], ids=["zero-byte", "truncated", "random-bytes", "bad-crc"])
    def test_unreadable_crop(self, faceset, damage, why, capfd):
        crop = faceset / "faces" / "00000003.png"
        crop.write_bytes(damage(crop.read_bytes()))
        summary = faceset_summary(faceset)
        assert summary["unreadable_crops"] == 1 and summary["missing_crops"] == 0 and summary["damaged"]
        assert len(summary["problems"]) == 1 and summary["problems"][0].startswith(f"faces/00000003.png is {why}")
        assert capfd.readouterr().err == ""  # libpng stays quiet: the structure is checked first

    def test_missing_and_wrong_size_crops(self, faceset):
        import cv2

        (faceset / "faces" / "00000001.png").unlink()
        cv2.imwrite(str(faceset / "faces" / "00000004.png"), np.zeros((32, 32, 3), np.uint8))
        summary = faceset_summary(faceset)
        assert summary["missing_crops"] == 1 and summary["unreadable_crops"] == 1
        assert "faces/00000004.png is 32x32 px instead of 64x64" in summary["problems"]


class TestCorruptRecords:
    @pytest.mark.parametrize("field, value", [("landmarks", "NaN"), ("box", "Infinity"),
                                              ("face_from_frame", "-Infinity"), ("embedding", "NaN")])
    def test_non_finite_numbers_are_corruption(self, faceset, field, value):
        import json

        lines = (faceset / "faceset.jsonl").read_text().splitlines(keepends=True)
        record = json.loads(lines[4])
        if field == "embedding":
            record["embedding"] = [0.1] * 127 + ["NAN_TOKEN"]
        elif field == "landmarks":
            record["landmarks"][17][1] = "NAN_TOKEN"
        elif field == "box":
            record["box"][2] = "NAN_TOKEN"
        else:
            record["face_from_frame"][1][2] = "NAN_TOKEN"
        lines[4] = json.dumps(record).replace('"NAN_TOKEN"', value) + "\n"
        (faceset / "faceset.jsonl").write_text("".join(lines))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # refused before numpy ever computes with it
            with pytest.raises(FacesetError, match=rf"line 5 is corrupt \(its {field} holds NaN or infinite"):
                read_faceset(faceset)
            with pytest.raises(FacesetError, match="line 5 is corrupt"):
                FacesetWriter(faceset, resume=True)

