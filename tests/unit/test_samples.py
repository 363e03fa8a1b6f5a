"""Light checks of the committed sample media in samples/ (built by tools/make_samples.py)."""

from __future__ import annotations

import hashlib
import re
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
MAX_TOTAL_BYTES = 20_000_000


def _sums() -> dict[str, str]:
    lines = (SAMPLES / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split("  ", 1) for line in lines)}


def _rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"cannot read {path}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class TestSampleFiles:
    def test_all_listed_files_exist_and_match_checksums(self):
        sums = _sums()
        assert {"plate.mp4", "src.mp4", "reference_dst.png", "reference_src.png"} <= set(sums)
        for name, digest in sums.items():
            data = (SAMPLES / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == digest, f"{name} differs from SHA256SUMS"

    def test_total_size_under_budget(self):
        total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
        assert total < MAX_TOTAL_BYTES, f"samples/ is {total / 1e6:.1f} MB"


class TestPlateMovie:
    def test_video_stream(self):
        with av.open(str(SAMPLES / "plate.mp4")) as container:
            video = container.streams.video[0]
            assert video.codec_context.name == "h264"
            assert (video.codec_context.width, video.codec_context.height) == (1280, 720)
            assert video.average_rate == Fraction(24)
            assert video.codec_context.colorspace == 1  # BT.709
            frames = list(container.decode(video=0))
        assert len(frames) == 72
        assert all((f.width, f.height) == (1280, 720) for f in frames)
        assert [f.pts for f in frames] == sorted(f.pts for f in frames)

    def test_audio_and_timecode(self):
        with av.open(str(SAMPLES / "plate.mp4")) as container:
            assert len(container.streams.audio) == 1
            audio = container.streams.audio[0]
            assert (audio.rate, audio.channels) == (48000, 2)
            assert container.streams.video[0].metadata.get("timecode") == "01:00:00:00"
            assert "creation_time" not in container.metadata


class TestPlateSequence:
    def test_numbering_starts_at_1001_and_is_contiguous(self):
        files = sorted((SAMPLES / "plate_seq").glob("plate.*.png"))
        numbers = [int(re.fullmatch(r"plate\.(\d{4})\.png", p.name).group(1)) for p in files]
        assert numbers and numbers[0] == 1001
        assert numbers == list(range(1001, 1001 + len(numbers)))

    def test_frames_match_the_movie(self):
        first = _rgb(SAMPLES / "plate_seq" / "plate.1001.png")
        assert first.shape == (720, 1280, 3)
        with av.open(str(SAMPLES / "plate.mp4")) as container:
            decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
        mse = np.mean((first.astype(np.float64) - decoded) ** 2)
        assert 10 * np.log10(255**2 / mse) > 33  # encoded copy of the same source frame


class TestSrcAndReferences:
    def test_src_movie(self):
        with av.open(str(SAMPLES / "src.mp4")) as container:
            video = container.streams.video[0]
            assert video.codec_context.name == "h264"
            assert video.codec_context.width <= 1280 and video.codec_context.height <= 720
            assert video.average_rate == Fraction(24)
            assert video.frames == 72

    @pytest.mark.parametrize("name", ["reference_dst.png", "reference_src.png"])
    def test_reference_crop(self, name):
        img = _rgb(SAMPLES / name)
        assert 200 <= img.shape[0] <= 300 and 200 <= img.shape[1] <= 300
