"""`vfxswap convert` end to end through the real CLI, on the bundled plate and demo model."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vfxswap.faces.analysis import open_analyzer
from vfxswap.faces.identity import reference_embeddings
from vfxswap.faces.analysis import identity_distance

from .test_extract_cli import PLATE, PLATE_SEQ, REFERENCE, SAMPLES, assert_one_line_error, vfxswap

MODEL = SAMPLES / "demo_model"


def decode(path: Path) -> tuple[list[np.ndarray], list[int]]:
    with av.open(str(path)) as c:
        frames = [(f.to_ndarray(format="rgb24"), f.pts) for f in c.decode(video=0)]
    return [f for f, _ in frames], [p for _, p in frames]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.size]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A private copy of the demo model (the onnxruntime runner caches its export inside)."""
    import shutil

    out = tmp_path_factory.mktemp("model") / "demo"
    shutil.copytree(MODEL, out)
    return out


@pytest.fixture(scope="module")
def lossless(model, tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("lossless")
    result = vfxswap("convert", PLATE, "-m", model, "-o", out / "swap.mkv", "--codec", "ffv1",
                     "--reference", REFERENCE, "--matte", out / "matte.####.png", "--progress", "plain")
    assert result.returncode == 0, result.stderr
    assert "converted 72 frames (72 with 72 faces swapped" in result.stdout
    return out / "swap.mkv", out


class TestConvertMovie:
    def test_frames_pts_audio_and_timecode_are_kept(self, model, tmp_path):
        out = tmp_path / "swap.mp4"
        result = vfxswap("convert", PLATE, "-m", model, "-o", out, "--progress", "none")
        assert result.returncode == 0, result.stderr
        assert "stage time: read" in result.stdout
        src_frames, src_pts = decode(PLATE)
        out_frames, out_pts = decode(out)
        assert len(out_frames) == len(src_frames) == 72 and out_pts == src_pts
        assert audio_packets(out) == audio_packets(PLATE)
        with av.open(str(out)) as c, av.open(str(PLATE)) as p:
            assert c.streams.video[0].metadata.get("timecode") == p.streams.video[0].metadata.get("timecode") == "01:00:00:00"
        assert (tmp_path / "swap.vfxswap.json").is_file()  # resolved settings beside the output

    def test_outside_the_mask_the_plate_is_untouched(self, lossless):
        swap, folder = lossless
        plate, _ = decode(PLATE)
        out, _ = decode(swap)
        for i in (0, 35, 71):
            matte = cv2.imread(str(folder / f"matte.{1001 + i}.png"), cv2.IMREAD_GRAYSCALE)
            outside = matte == 0
            assert outside.mean() > 0.9
            assert np.array_equal(out[i][outside], plate[i][outside])
            assert not np.array_equal(out[i][~outside], plate[i][~outside])  # the face did change

    def test_only_the_reference_person_is_swapped(self, lossless):
        _, folder = lossless
        plate, _ = decode(PLATE)
        analyzer = open_analyzer("dlib")
        ref = reference_embeddings(analyzer, REFERENCE)[0]
        for i in (0, 40):
            faces = analyzer.detect(plate[i])
            assert len(faces) == 6
            target = min(faces, key=lambda f: identity_distance(analyzer.embed(plate[i], f.landmarks), ref))
            matte = cv2.imread(str(folder / f"matte.{1001 + i}.png"), cv2.IMREAD_GRAYSCALE) > 127
            count, labels = cv2.connectedComponents(matte.astype(np.uint8))
            assert count == 2  # background + one face
            ys, xs = np.nonzero(matte)
            x0, y0, x1, y1 = target.box
            assert x0 <= xs.mean() <= x1 and y0 <= ys.mean() <= y1


class TestConvertSequence:
    def test_faceless_frames_are_bit_exact_and_frames_select(self, model, tmp_path):
        out = tmp_path / "out.####.png"
        result = vfxswap("convert", PLATE_SEQ, "-m", model, "-o", out, "--min-size", "1000", "--detect-scale", "1",
                         "--frames", "1002-1004", "--progress", "none")
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in tmp_path.glob("out.*.png")) == ["out.1002.png", "out.1003.png", "out.1004.png"]
        for n in (1002, 1003, 1004):
            a = cv2.imread(str(SAMPLES / "plate_seq" / f"plate.{n}.png"), cv2.IMREAD_UNCHANGED)
            b = cv2.imread(str(tmp_path / f"out.{n}.png"), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(a, b)

    def test_skip_existing_keeps_written_frames(self, model, tmp_path):
        out = tmp_path / "out.####.png"
        assert vfxswap("convert", PLATE_SEQ, "-m", model, "-o", out, "--frames", "1001-1002",
                       "--progress", "none").returncode == 0
        before = hashlib.sha256((tmp_path / "out.1001.png").read_bytes()).hexdigest()
        (tmp_path / "out.1002.png").unlink()
        result = vfxswap("convert", PLATE_SEQ, "-m", model, "-o", out, "--frames", "1001-1003", "--skip-existing",
                         "--progress", "none")
        assert result.returncode == 0, result.stderr
        assert "converted 2 frames" in result.stdout
        assert hashlib.sha256((tmp_path / "out.1001.png").read_bytes()).hexdigest() == before
        assert (tmp_path / "out.1002.png").is_file() and (tmp_path / "out.1003.png").is_file()


class TestConvertErrors:
    def test_bad_model_dir(self, tmp_path):
        assert_one_line_error(vfxswap("convert", PLATE, "-m", tmp_path / "nomodel", "-o", tmp_path / "o.mp4"), 3,
                              "card.json is missing")
        assert not (tmp_path / "o.mp4").exists()

    def test_unreadable_input(self, model, tmp_path):
        bad = tmp_path / "bad.mov"
        bad.write_bytes(b"not a movie at all" * 100)
        assert_one_line_error(vfxswap("convert", bad, "-m", model, "-o", tmp_path / "o.mp4"), 3, "bad.mov")
        assert not list(tmp_path.glob("*o.mp4"))

    def test_unwritable_output(self, model, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("a file where a folder should be")
        assert_one_line_error(vfxswap("convert", PLATE_SEQ, "-m", model, "-o", blocker / "o.mp4"), 1)

    def test_usage_errors(self, model, tmp_path):
        assert_one_line_error(vfxswap("convert", PLATE_SEQ, "-m", model, "-o", tmp_path / "o.mp4", "--color", "teal"),
                              2, "colour method")
        assert_one_line_error(vfxswap("convert", PLATE_SEQ, "-m", model, "-o", tmp_path / "o.mp4", "--frames", "10-x"),
                              2, "10-x")


def _face_canvas(width: int, height: int, shift: int) -> np.ndarray:
    """An RGB frame with the reference person's face (~105 px) on a neutral background."""
    face = cv2.cvtColor(cv2.imread(str(REFERENCE)), cv2.COLOR_BGR2RGB)
    canvas = np.full((height, width, 3), 90, np.uint8)
    y, x = (height - face.shape[0]) // 2, (width - face.shape[1]) // 2 + shift
    canvas[y:y + face.shape[0], x:x + face.shape[1]] = face
    return canvas


class TestConvertFormats:
    def test_odd_size_10bit_prores_stays_10bit(self, model, tmp_path):
        src = tmp_path / "plate10.mov"
        with av.open(str(src), "w") as c:
            s = c.add_stream("prores_ks", rate=24)
            s.width, s.height, s.pix_fmt = 401, 301, "yuv422p10le"
            for i in range(10):
                rgb16 = _face_canvas(401, 301, i).astype(np.uint16) * 257 + 37  # values off the 8-bit grid
                for p in s.encode(av.VideoFrame.from_ndarray(rgb16, format="rgb48le").reformat(format="yuv422p10le")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        out = tmp_path / "swap10.mov"
        result = vfxswap("convert", src, "-m", model, "-o", out, "--progress", "none", "--every", "1")
        assert result.returncode == 0, result.stderr
        assert "converted 10 frames (10 with 10 faces swapped" in result.stdout
        with av.open(str(out)) as c:
            stream = c.streams.video[0]
            assert stream.codec_context.name == "prores" and stream.codec_context.pix_fmt == "yuv422p10le"
            assert (stream.width, stream.height) == (401, 301)
            first = next(c.decode(stream)).to_ndarray(format="rgb48le")
        assert (first[:40, :40] % 257 != 0).any()  # background not crushed to 8-bit steps

    def test_variable_frame_rate_timestamps_are_kept(self, model, tmp_path):
        src = tmp_path / "vfr.mp4"
        pts = [0, 1000, 1500, 3000, 3100, 5000, 7000, 7500]
        with av.open(str(src), "w") as c:
            s = c.add_stream("libx264", rate=24)
            s.width, s.height, s.pix_fmt = 320, 300, "yuv420p"
            s.time_base = Fraction(1, 12000)
            s.codec_context.time_base = Fraction(1, 12000)
            for i, p in enumerate(pts):
                frame = av.VideoFrame.from_ndarray(_face_canvas(320, 300, i), format="rgb24").reformat(format="yuv420p")
                frame.pts, frame.time_base = p, Fraction(1, 12000)
                for packet in s.encode(frame):
                    c.mux(packet)
            for packet in s.encode():
                c.mux(packet)
        _, src_pts = decode(src)
        out = tmp_path / "swap.mp4"
        result = vfxswap("convert", src, "-m", model, "-o", out, "--progress", "none")
        assert result.returncode == 0, result.stderr
        _, out_pts = decode(out)
        assert out_pts == src_pts and len(set(np.diff(src_pts))) > 2  # really variable


class TestConvertSettings:
    def test_config_file_with_cli_overrides_and_patches(self, model, tmp_path):
        import json

        (tmp_path / "shot.toml").write_text('[convert]\ncolor = "mkl"\nfeather = 12\nfaces = "largest"\n')
        out = tmp_path / "out.####.png"
        result = vfxswap("convert", PLATE_SEQ, "-m", model, "-o", out, "--config", tmp_path / "shot.toml",
                         "--feather", "4", "--frames", "1001-1003", "--patches", tmp_path / "patches",
                         "--progress", "none")
        assert result.returncode == 0, result.stderr
        settings = json.loads((tmp_path / "out.vfxswap.json").read_text())["settings"]
        assert (settings["color"], settings["feather"], settings["faces"]) == ("mkl", 4, "largest")
        assert "converted 3 frames (3 with 3 faces swapped" in result.stdout  # largest: one face per frame
        lines = [json.loads(x) for x in (tmp_path / "patches" / "patches.jsonl").read_text().splitlines()]
        assert [x["frame"] for x in lines] == [1001, 1002, 1003]
        patch = cv2.imread(str(tmp_path / "patches" / lines[0]["patch"]), cv2.IMREAD_UNCHANGED)
        assert patch.shape == (64, 64, 4) and patch.dtype == np.uint16
        assert np.array(lines[0]["frame_from_face"]).shape == (2, 3)

    def test_bad_config_file(self, model, tmp_path):
        (tmp_path / "bad.toml").write_text("colour = 1\n")
        assert_one_line_error(vfxswap("convert", PLATE_SEQ, "-m", model, "-o", tmp_path / "o.mp4",
                                      "--config", tmp_path / "bad.toml"), 2, "unknown convert settings colour")
        (tmp_path / "broken.toml").write_text("color = \n")
        assert_one_line_error(vfxswap("convert", PLATE_SEQ, "-m", model, "-o", tmp_path / "o.mp4",
                                      "--config", tmp_path / "broken.toml"), 2, "not valid TOML")
