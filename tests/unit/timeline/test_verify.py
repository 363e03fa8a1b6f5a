"""verify_output on real files: image sequences (PNG, EXR) and movies, damaged in the ways farms damage them."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from vfxswap.errors import ConfigError
from vfxswap.io import open_writer
from vfxswap.timeline.verify import verify_output
from vfxswap.types import Frame, VideoInfo

INFO = VideoInfo(path="synthetic", kind="movie", width=96, height=64, fps=Fraction(24), time_base=Fraction(1, 24),
                 frame_count=10, pix_fmt="yuv420p", codec="h264")


def _frames(count: int, first: int = 0) -> list[Frame]:
    rng = np.random.default_rng(0)  # noise: every frame differs and compresses badly (a long file)
    return [Frame(image=rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), index=first + i) for i in range(count)]


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


@pytest.fixture(params=["png", "exr"])
def sequence(request, tmp_path):
    pattern = tmp_path / "render" / f"out.####.{request.param}"
    with open_writer(pattern, INFO) as writer:
        for frame in _frames(8, first=1001):
            writer.write(frame)
    return pattern


class TestSequence:
    def test_all_present(self, sequence):
        report = verify_output(sequence, "1001-1008")
        assert report.ok and report.kind == "sequence" and report.requeue == ""
        assert report.expected == tuple(range(1001, 1009))

    def test_deleted_and_truncated_frames_are_listed(self, sequence):
        folder, ext = sequence.parent, sequence.suffix
        (folder / f"out.1003{ext}").unlink()
        _truncate(folder / f"out.1005{ext}")
        (folder / f"out.1006{ext}").write_bytes(b"")
        report = verify_output(sequence, "1001-1010")
        assert report.missing == (1003, 1009, 1010)
        assert report.unreadable == (1005, 1006)
        assert report.requeue == "1003,1005-1006,1009-1010" and not report.ok
        assert all("\n" not in reason and str(folder) in reason for reason in report.reasons.values())
        data = report.to_dict()
        assert data["missing"] == "1003,1009-1010" and data["unreadable"] == "1005-1006" and data["ok"] is False

    def test_a_missing_folder_misses_every_frame(self, tmp_path):
        report = verify_output(tmp_path / "none" / "out.%04d.exr", [1, 2, 3])
        assert report.missing == (1, 2, 3) and report.unreadable == ()


@pytest.fixture
def movie(tmp_path):
    return _movie(tmp_path / "swap.mkv", codec="ffv1")


def _movie(path, **options):
    with open_writer(path, INFO, **options) as writer:
        for frame in _frames(10):
            writer.write(frame)
    return path


class TestMovie:
    def test_numbered_from_the_first_expected_frame(self, movie):
        assert verify_output(movie, "1001-1010").ok
        report = verify_output(movie, "1001-1012")
        assert report.missing == (1011, 1012) and report.kind == "movie"

    def test_settings_beside_it_give_its_frames(self, movie):
        (movie.parent / "swap.vfxswap.json").write_text(json.dumps({"settings": {"frames": "1005-1014"}}))
        report = verify_output(movie, "1001-1014")
        assert report.missing == (1001, 1002, 1003, 1004) and report.unreadable == ()

    def test_cut_off_matroska_misses_its_last_frames(self, movie):
        _truncate(movie, 0.6)
        report = verify_output(movie, "1001-1010")
        assert not report.ok and report.bad[-1] == 1010 and 1001 not in report.bad

    def test_truncated_mp4_is_unreadable(self, tmp_path):
        movie = _movie(tmp_path / "swap.mp4", codec="libx264")
        _truncate(movie, 0.7)  # the sample table (moov) is at the end: the file no longer opens
        report = verify_output(movie, "1001-1010")
        assert report.unreadable == tuple(range(1001, 1011)) and report.missing == ()
        assert all("\n" not in r and "swap.mp4" in r for r in report.reasons.values())

    def test_missing_movie(self, tmp_path):
        assert verify_output(tmp_path / "none.mov", "1-3").missing == (1, 2, 3)


def test_bad_requests():
    with pytest.raises(ConfigError, match="bad frame range"):
        verify_output("out.####.exr", "10-x")
    with pytest.raises(ConfigError, match="neither|cannot tell"):
        verify_output("out.exr", "1-2")
