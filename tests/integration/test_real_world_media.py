"""Media as phones, screen recorders and odd renders write it, through the real CLI (issue 15, items 10, 16)."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import pytest

from .test_extract_cli import PLATE, SAMPLES, assert_one_line_error, vfxswap

DUPLICATED_MS = [0, 42, 42, 83, 125, 125, 167, 208, 250, 250, 292, 333]  # three pairs share a time


def decoded_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def duplicate_timestamps(tmp_path_factory) -> Path:
    """An MJPEG mkv of the plate's first 12 frames (real faces) whose packets repeat three timestamps,
    as a phone or screen recorder writes them (Matroska accepts equal timestamps)."""
    path = tmp_path_factory.mktemp("vfr") / "phone.mkv"
    with av.open(str(PLATE)) as inp:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(DUPLICATED_MS, inp.decode(video=0))]
    ms = Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=24)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuvj420p"
        stream.time_base = stream.codec_context.time_base = ms
        for i, (image, when) in enumerate(zip(frames, DUPLICATED_MS)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
            frame.pts = i
            for packet in stream.encode(frame):
                packet.pts = packet.dts = when
                packet.time_base = ms
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert decoded_pts(path) == DUPLICATED_MS
    return path


class TestDuplicateTimestamps:
    def test_every_frame_is_kept_one_tick_after_its_twin(self, demo_model, duplicate_timestamps, tmp_path):
        out = tmp_path / "swap.mkv"
        done = vfxswap("convert", duplicate_timestamps, "-m", demo_model, "-o", out, "--progress", "none")
        assert done.returncode == 0, done.stderr
        assert "converted 12 frames" in done.stdout
        assert "has pts 42, not after the previous frame's 42: written at 43" in done.stderr
        pts = decoded_pts(out)
        assert pts == [0, 42, 43, 83, 125, 126, 167, 208, 250, 251, 292, 333]  # 1 ms: mkv's smallest tick
        settings = json.loads((tmp_path / "swap.vfxswap.json").read_text())
        assert settings["retimed"] == [[2, 42, 43], [5, 125, 126], [9, 250, 251]]  # recorded beside the output

    def test_a_plain_transcode_agrees_on_the_frame_count(self, duplicate_timestamps):
        with av.open(str(duplicate_timestamps)) as c:
            assert sum(1 for _ in c.decode(video=0)) == len(DUPLICATED_MS)


class TestOddFrameSize:
    def test_a_sequence_frame_of_another_size_is_an_input_error(self, demo_model, tmp_path):
        seq = tmp_path / "seq"
        shutil.copytree(SAMPLES / "plate_seq", seq)
        odd = cv2.imread(str(seq / "plate.1004.png"))
        cv2.imwrite(str(seq / "plate.1004.png"), cv2.resize(odd, (640, 360)))
        done = vfxswap("convert", seq / "plate.####.png", "-m", demo_model, "-o", tmp_path / "swap.mp4",
                       "--progress", "none")
        assert_one_line_error(done, 3, "frame 1004 is 640x360", "1280x720", "conform")
        assert not (tmp_path / "swap.mp4").exists()
