"""Every writer against a planted symlink (at the old predictable temp name and at the final name) and
against a full disk, through the real CLI on the bundled samples (issue 15, items 1, 2, 4, 5, 16)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from vfxswap.io.sequences import read_image

from .test_extract_cli import PLATE, PLATE_SEQ, SAMPLES, assert_one_line_error, vfxswap

VICTIM = b"a file outside the output folder: it must stay as it is\n"


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_bytes(VICTIM)
    return path


def plant(folder: Path, names: list[str], victim: Path) -> None:
    """Symlinks to ``victim`` at each final name and at its old, predictable temp name."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        final = folder / name
        final.parent.mkdir(parents=True, exist_ok=True)
        for link in (final, final.with_name(f".tmp-{final.name}")):
            link.symlink_to(victim)


def assert_safe(folder: Path, names: list[str], victim: Path) -> None:
    """The victim is untouched; every final name is now a regular file; no temp file is left."""
    assert victim.read_bytes() == VICTIM
    for name in names:
        path = folder / name
        assert path.is_file() and not path.is_symlink(), name
        assert path.read_bytes() != VICTIM, name
    leftovers = [p.name for p in folder.rglob(".tmp-*") if not p.is_symlink()]
    assert leftovers == []


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".tmp-*"))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A 64 px model trained for 2 steps on the 8-frame plate (both sides): enough to write every file."""
    root = tmp_path_factory.mktemp("tiny")
    done = vfxswap("extract", PLATE_SEQ, "-o", root / "faces", "--size", "64", "--every", "4", "--progress", "none")
    assert done.returncode == 0, done.stderr
    done = vfxswap("train", "--src", root / "faces", "--dst", root / "faces", "-o", root / "model",
                   "--iterations", "2", "--resolution", "64", "--batch-size", "4", "--save-every", "2",
                   "--workers", "1", "--progress", "none")
    assert done.returncode == 0, done.stderr
    return root


class TestSymlinksAreNeverFollowed:
    def test_convert_movie_matte_and_settings(self, demo_model, tmp_path, victim):
        out = tmp_path / "o"
        names = ["swap.mp4", "swap.vfxswap.json", "matte.1001.png", "matte.1002.png"]
        plant(out, names, victim)
        done = vfxswap("convert", PLATE, "-m", demo_model, "-o", out / "swap.mp4", "--frames", "1001-1002",
                       "--matte", out / "matte.####.png", "--progress", "none")
        assert done.returncode == 0, done.stderr
        assert_safe(out, names, victim)
        with av.open(str(out / "swap.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == 2

    def test_convert_mov_and_png_sequence(self, demo_model, tmp_path, victim):
        out = tmp_path / "o"
        names = ["swap.mov", "seq.1001.png", "seq.1008.png", "seq.vfxswap.json"]
        plant(out, names, victim)
        for target in ("swap.mov", "seq.####.png"):
            done = vfxswap("convert", PLATE_SEQ, "-m", demo_model, "-o", out / target, "--progress", "none")
            assert done.returncode == 0, done.stderr
        assert_safe(out, names, victim)

    def test_train_checkpoint_and_metrics(self, tmp_path, tiny_model, victim):
        model = tmp_path / "m"
        names = ["card.json", "weights.safetensors", "train_state.pt", "metrics.jsonl"]
        for name in names:
            plant_temp = model / f".tmp-{name}"
            plant_temp.parent.mkdir(parents=True, exist_ok=True)
            plant_temp.symlink_to(victim)
        (model / "metrics.jsonl").symlink_to(victim)  # the log is appended to: a link there is replaced
        args = ["--src", tiny_model / "faces", "--dst", tiny_model / "faces", "-o", model, "--resolution", "64",
                "--batch-size", "4", "--save-every", "2", "--workers", "1", "--progress", "none"]
        done = vfxswap("train", *args, "--iterations", "2")
        assert done.returncode == 0, done.stderr
        (model / "metrics.jsonl").unlink()
        (model / "metrics.jsonl").symlink_to(victim)
        done = vfxswap("train", *args, "--iterations", "4", "--resume")
        assert done.returncode == 0, done.stderr
        assert_safe(model, names, victim)
        steps = [json.loads(line)["step"] for line in (model / "metrics.jsonl").read_text().splitlines()]
        assert steps == [4]  # the victim was neither read as the old log nor written

    def test_export_onnx(self, tmp_path, tiny_model, victim):
        model = tmp_path / "m"
        shutil.copytree(tiny_model / "model", model)
        plant(model / "export", ["swap.onnx"], victim)
        done = vfxswap("export", model, "--format", "onnx")
        assert done.returncode == 0, done.stderr
        assert_safe(model / "export", ["swap.onnx"], victim)

    def test_extract_crops(self, tmp_path, victim):
        out = tmp_path / "faces"
        names = ["faces/00000000.png", "faces/00000001.png"]
        plant(out, names, victim)
        done = vfxswap("extract", SAMPLES / "plate_seq" / "plate.1001.png", "-o", out, "--size", "64",
                       "--progress", "none")
        assert done.returncode == 0, done.stderr
        assert_safe(out, names, victim)

    def test_eval_report(self, demo_model, tmp_path, victim):
        swapped = tmp_path / "swap.mkv"
        done = vfxswap("convert", PLATE_SEQ, "-m", demo_model, "-o", swapped, "--codec", "ffv1",
                       "--frames", "1001-1002", "--progress", "none")
        assert done.returncode == 0, done.stderr
        report = tmp_path / "report"
        names = ["metrics.json", "report.html", "contact_sheet.png"]
        plant(report, names, victim)
        done = vfxswap("eval", PLATE_SEQ, swapped, "-o", report, "--progress", "none")
        assert done.returncode == 0, done.stderr
        assert_safe(report, names, victim)


class TestDiskFull:
    def test_sequence_convert_stops_at_the_first_failed_frame(self, demo_model, small_disk):
        folder, fill = small_disk
        fill(3_000_000)  # room for a few 1280x720 PNG frames (about 1 MB each), not for 12
        done = vfxswap("convert", PLATE, "-m", demo_model, "-o", folder / "out.####.png", "--frames", "1001-1012",
                       "--progress", "none")
        assert_one_line_error(done, 1, "cannot write", "out.", "check free space")
        frames = sorted(folder.glob("out.*.png"))
        assert 0 < len(frames) < 12 and temp_files(folder) == []
        for frame in frames:  # every file under a final name is a whole frame
            assert read_image(str(frame))[0].shape == (720, 1280, 3)
        (folder / "ballast").unlink()
        done = vfxswap("convert", PLATE, "-m", demo_model, "-o", folder / "out.####.png", "--frames", "1001-1012",
                       "--skip-existing", "--progress", "none")
        assert done.returncode == 0, done.stderr
        assert len(list(folder.glob("out.*.png"))) == 12

    def test_skip_existing_rewrites_truncated_empty_and_linked_frames(self, demo_model, tmp_path):
        out = tmp_path / "o"
        done = vfxswap("convert", PLATE_SEQ, "-m", demo_model, "-o", out / "s.####.png", "--progress", "none")
        assert done.returncode == 0, done.stderr
        good = {p.name: p.read_bytes() for p in out.glob("s.*.png")}
        (out / "s.1002.png").write_bytes(good["s.1002.png"][: len(good["s.1002.png"]) // 2])
        (out / "s.1003.png").write_bytes(b"")
        (out / "s.1004.png").unlink()
        (out / "s.1004.png").symlink_to(SAMPLES / "README.md")
        shutil.copy(SAMPLES / "reference_src.png", out / "s.1005.png")  # whole, but not this render's size
        before = (out / "s.1001.png").stat().st_mtime_ns
        done = vfxswap("convert", PLATE_SEQ, "-m", demo_model, "-o", out / "s.####.png", "--skip-existing",
                       "--progress", "none")
        assert done.returncode == 0, done.stderr
        assert (out / "s.1001.png").stat().st_mtime_ns == before  # a finished frame is kept
        for n in (1002, 1003, 1004, 1005):
            path = out / f"s.{n}.png"
            assert not path.is_symlink()
            assert np.array_equal(read_image(str(path))[0], read_image_bytes(tmp_path, good[path.name]))

    def test_movie_convert_with_audio_reports_a_write_failure(self, demo_model, small_disk):
        folder, fill = small_disk
        fill(300_000)
        done = vfxswap("convert", PLATE, "-m", demo_model, "-o", folder / "out.mov", "--codec", "prores_ks",
                       "--progress", "none")
        assert_one_line_error(done, 1, "cannot write", "out.mov", "check free space")
        assert sorted(p.name for p in folder.iterdir()) == ["ballast"]

    def test_train_checkpoint(self, small_disk, tiny_model):
        folder, fill = small_disk
        model = folder / "m"
        shutil.copytree(tiny_model / "model", model, ignore=shutil.ignore_patterns("previews", "export"))
        fill(50_000)  # too little for a new weights file
        done = vfxswap("train", "--src", tiny_model / "faces", "--dst", tiny_model / "faces", "-o", model,
                       "--iterations", "4", "--resolution", "64", "--batch-size", "4", "--save-every", "2",
                       "--workers", "1", "--resume", "--progress", "none")
        assert_one_line_error(done, 1, "cannot write", "check free space")
        assert temp_files(model) == []
        (folder / "ballast").unlink()
        done = vfxswap("train", "--src", tiny_model / "faces", "--dst", tiny_model / "faces", "-o", model,
                       "--iterations", "4", "--resolution", "64", "--batch-size", "4", "--save-every", "2",
                       "--workers", "1", "--resume", "--progress", "none")
        assert done.returncode == 0, done.stderr  # the checkpoint the failed run started from survived


def read_image_bytes(tmp_path: Path, data: bytes) -> np.ndarray:
    path = tmp_path / "expected.png"
    path.write_bytes(data)
    return read_image(str(path))[0]
