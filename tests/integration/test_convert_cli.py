"""`vfxswap convert` end to end through the real CLI, on the bundled plate and demo model."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio
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
def model(demo_model) -> Path:
    return demo_model


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


def _write_exr(path: Path, rgb: np.ndarray) -> None:
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), oiio.ImageSpec(rgb.shape[1], rgb.shape[0], 3, "half"))
    assert out.write_image(np.ascontiguousarray(rgb, np.float32))
    out.close()


def _read_float(path: Path) -> np.ndarray:
    return oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT)


class TestConvertColour:
    def test_matte_as_alpha_of_an_exr_output(self, model, tmp_path):
        """The alpha of an EXR output and an EXR matte pass hold the same mask values (data: no
        colour conversion), and an 8-bit PNG matte their code values."""
        result = vfxswap("convert", PLATE_SEQ, "-m", model, "-o", tmp_path / "out.####.exr", "--alpha",
                         "--matte", tmp_path / "matte.####.exr", "--frames", "1001-1002", "--progress", "none")
        assert result.returncode == 0, result.stderr
        assert vfxswap("convert", PLATE_SEQ, "-m", model, "-o", tmp_path / "o.####.png", "--matte",
                       tmp_path / "m.####.png", "--frames", "1001", "--progress", "none").returncode == 0
        for n in (1001, 1002):
            rgba = _read_float(tmp_path / f"out.{n}.exr")
            matte = _read_float(tmp_path / f"matte.{n}.exr")
            assert rgba.shape[2] == 4 and matte.max() > 0.99 and 0 < (matte[..., 0] > 0).mean() < 0.5
            assert np.array_equal(rgba[..., 3], matte[..., 0])
        png = cv2.imread(str(tmp_path / "m.1001.png"), cv2.IMREAD_GRAYSCALE) / 255.0
        assert np.abs(png - _read_float(tmp_path / "matte.1001.exr")[..., 0]).max() <= 0.5 / 255 + 2.0**-11

    def test_acescg_plate_goes_through_opencolorio(self, model, tmp_path):
        """An ACEScg EXR plate converted with --input-colorspace ACEScg swaps the same face as the
        sRGB plate it was made from; read as linear Rec.709 instead, the face comes out wrong."""
        config = ocio.Config.CreateFromFile("ocio://cg-config-latest")
        to_acescg = config.getProcessor("sRGB - Texture", "ACEScg").getDefaultCPUProcessor()
        to_srgb = config.getProcessor("ACEScg", "sRGB - Texture").getDefaultCPUProcessor()
        (tmp_path / "aces").mkdir()
        for n in (1001, 1002):
            rgb = cv2.cvtColor(cv2.imread(str(SAMPLES / "plate_seq" / f"plate.{n}.png")), cv2.COLOR_BGR2RGB)
            linear = (rgb / 255.0).astype(np.float32)
            to_acescg.applyRGB(linear)
            _write_exr(tmp_path / "aces" / f"plate.{n}.exr", linear)
        common = ["-m", model, "--frames", "1001-1002", "--backend", "onnxruntime", "--progress", "none"]
        runs = {"srgb": (PLATE_SEQ, "s.####.png", []),
                "ocio": (tmp_path / "aces" / "plate.####.exr", "o.####.exr", ["--input-colorspace", "ACEScg"]),
                "wrong": (tmp_path / "aces" / "plate.####.exr", "w.####.exr", [])}
        for source, out, extra in runs.values():
            result = vfxswap("convert", source, "-o", tmp_path / out, *common, *extra,
                             "--matte", tmp_path / f"m{out[0]}.####.png")
            assert result.returncode == 0, result.stderr
        errors = {"ocio": [], "wrong": []}
        for n in (1001, 1002):
            reference = cv2.cvtColor(cv2.imread(str(tmp_path / f"s.{n}.png")), cv2.COLOR_BGR2RGB) / 255.0
            face = cv2.imread(str(tmp_path / f"ms.{n}.png"), cv2.IMREAD_GRAYSCALE) > 200
            assert face.mean() > 0.005
            plate = _read_float(tmp_path / "aces" / f"plate.{n}.exr")
            for name, prefix in (("ocio", "o"), ("wrong", "w")):
                out = _read_float(tmp_path / f"{prefix}.{n}.exr")
                matte = cv2.imread(str(tmp_path / f"m{prefix}.{n}.png"), cv2.IMREAD_GRAYSCALE)
                # outside the face (matte below half an 8-bit step) the plate is as good as untouched
                assert np.abs(out - plate)[matte == 0].max() <= 0.5 / 255 * max(1.0, plate.max())
                display = np.ascontiguousarray(out)
                to_srgb.applyRGB(display)
                errors[name].append(np.abs(np.clip(display, 0, 1) - reference)[face].mean())
        assert max(errors["ocio"]) < 2.5 / 255, errors
        assert min(errors["wrong"]) > 1.5 * max(errors["ocio"]), errors  # measured: 0.0104 vs 0.0046

    def test_unknown_input_colorspace_is_a_usage_error(self, model, tmp_path):
        assert_one_line_error(vfxswap("convert", PLATE_SEQ, "-m", model, "-o", tmp_path / "o.####.exr",
                                      "--input-colorspace", "NoSuchSpace"), 2, "no colour space 'NoSuchSpace'")
        assert not list(tmp_path.glob("o.*"))


@pytest.fixture(scope="module")
def clip_mkv(tmp_path_factory) -> Path:
    """The plate's first 6 frames as a streamable Matroska file (FFV1: decodes bit-exact)."""
    out = tmp_path_factory.mktemp("stream") / "clip.mkv"
    from vfxswap.io import open_source, open_writer

    with open_source(PLATE) as src, open_writer(out, src.info, codec="ffv1") as writer:
        for frame, _ in zip(src.frames(), range(6)):
            writer.write(frame)
    return out


def _pngs(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))}


class TestStreamSources:
    def test_stdin_and_http_give_the_file_result(self, model, clip_mkv, tmp_path):
        import functools
        import http.server
        import subprocess
        import sys
        import threading

        common = ["-m", model, "--backend", "onnxruntime", "--progress", "none"]
        assert vfxswap("convert", clip_mkv, "-o", tmp_path / "file" / "f.####.png", *common).returncode == 0
        with open(clip_mkv, "rb") as stdin:
            piped = subprocess.run([sys.executable, "-m", "vfxswap.cli", "convert", "-", "-o",
                                    str(tmp_path / "pipe" / "f.####.png"), *map(str, common)],
                                   stdin=stdin, capture_output=True, text=True, timeout=300)
        assert piped.returncode == 0, piped.stderr
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(clip_mkv.parent))
        handler.log_message = lambda *a: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/clip.mkv"
            result = vfxswap("convert", url, "-o", tmp_path / "http" / "f.####.png", *common)
        finally:
            server.shutdown()
        assert result.returncode == 0, result.stderr
        expected = _pngs(tmp_path / "file")
        assert sorted(expected) == [f"f.{n}.png" for n in range(1001, 1007)]
        for name in ("pipe", "http"):
            got = _pngs(tmp_path / name)
            assert sorted(got) == sorted(expected)
            assert all(np.array_equal(got[k], expected[k]) for k in expected), name

    def test_unreachable_stream_is_an_unreadable_input(self, model, tmp_path):
        assert_one_line_error(vfxswap("convert", "http://127.0.0.1:9/nothing.mkv", "-m", model,
                                      "-o", tmp_path / "o.####.png"), 3, "cannot read the stream")


class TestChunkedConvert:
    def test_chunks_equal_one_run_bit_for_bit(self, model, tmp_path):
        """A farm's chunks (--frames A-B) give exactly the frames of one run: detection keyframes sit
        at fixed numbers and handles feed tracking, smoothing and the colour history."""
        common = ["-m", model, "--backend", "onnxruntime", "--color-smooth", "3", "--progress", "none"]
        assert vfxswap("convert", PLATE, "-o", tmp_path / "one" / "f.####.png", "--frames", "1001-1018",
                       *common).returncode == 0
        for chunk in ("1001-1006", "1007-1012", "1013-1018"):
            result = vfxswap("convert", PLATE, "-o", tmp_path / "chunks" / "f.####.png", "--frames", chunk, *common)
            assert result.returncode == 0, result.stderr
        names = sorted(p.name for p in (tmp_path / "one").glob("*.png"))
        assert names == [f"f.{n}.png" for n in range(1001, 1019)]
        assert names == sorted(p.name for p in (tmp_path / "chunks").glob("*.png"))
        for name in names:
            a = cv2.imread(str(tmp_path / "one" / name), cv2.IMREAD_UNCHANGED)
            b = cv2.imread(str(tmp_path / "chunks" / name), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(a, b), name
        plate = decode(PLATE)[0]
        swapped = cv2.cvtColor(cv2.imread(str(tmp_path / "one" / "f.1010.png")), cv2.COLOR_BGR2RGB)
        assert not np.array_equal(swapped, plate[9])  # faces were swapped, not passed through


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

    def test_largest_swaps_exactly_one_face_in_every_frame_of_the_plate(self, model, tmp_path):
        """Six faces of similar size: the largest changes hands between frames; one face a frame all the same."""
        import json

        result = vfxswap("convert", PLATE, "-m", model, "-o", tmp_path / "out.mp4", "--faces", "largest",
                         "--patches", tmp_path / "patches", "--progress", "none")
        assert result.returncode == 0, result.stderr
        assert "converted 72 frames (72 with 72 faces swapped" in result.stdout
        lines = [json.loads(x) for x in (tmp_path / "patches" / "patches.jsonl").read_text().splitlines()]
        frames = [x["frame"] for x in lines]
        assert len(frames) == len(set(frames)) == 72
        assert np.array(lines[0]["frame_from_face"]).shape == (2, 3)

    def test_bad_config_file(self, model, tmp_path):
        (tmp_path / "bad.toml").write_text("colour = 1\n")
        assert_one_line_error(vfxswap("convert", PLATE_SEQ, "-m", model, "-o", tmp_path / "o.mp4",
                                      "--config", tmp_path / "bad.toml"), 2, "unknown convert settings colour")
        (tmp_path / "broken.toml").write_text("color = \n")
        assert_one_line_error(vfxswap("convert", PLATE_SEQ, "-m", model, "-o", tmp_path / "o.mp4",
                                      "--config", tmp_path / "broken.toml"), 2, "not valid TOML")


# -- issue 15: short movies (item 7), shared side files of chunks (item 8), --frames and interrupts (item 16)

def _movie(path: Path, count: int = 72) -> Path:
    """A 24 fps 128x96 H.264 mp4 of ``count`` frames (a moving bar, no face), made with PyAV."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24, options={"g": "12"})
        s.width, s.height, s.pix_fmt = 128, 96, "yuv420p"
        for i in range(count):
            image = np.full((96, 128, 3), 40 + i, np.uint8)
            image[10:30, i:i + 20] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


def _corrupt_sample_sizes(movie: Path, out: Path) -> Path:
    """``movie`` with 200 bytes of its ``stsz`` sample-size table flipped from the second entry on:
    the header still says 72 samples, the demuxer finds only the first."""
    data = bytearray(movie.read_bytes())
    table = data.index(b"stsz") + 4 + 4 + 4 + 4  # type, version+flags, sample size, sample count
    for k in range(table + 4, table + 4 + 200):
        data[k] ^= 0xFF
    out.write_bytes(bytes(data))
    return out


@pytest.fixture(scope="module")
def short_movie(tmp_path_factory) -> tuple[Path, Path]:
    """(a sound 72-frame mp4, the same with a corrupt moov sample table: 1 frame decodes)."""
    folder = tmp_path_factory.mktemp("short")
    good = _movie(folder / "good.mp4")
    bad = _corrupt_sample_sizes(good, folder / "bad.mp4")
    with av.open(str(bad)) as c:
        assert c.streams.video[0].frames == 72 and sum(1 for _ in c.decode(video=0)) == 1
    return good, bad


class TestShortMovie:
    def test_short_movie_fails_and_nothing_written_is_lost(self, model, short_movie, tmp_path):
        good, bad = short_movie
        out = tmp_path / "swap.mp4"
        out.write_bytes(good.read_bytes())  # an earlier render: it must survive the failed one
        result = vfxswap("convert", bad, "-m", model, "-o", out, "--progress", "none")
        assert_one_line_error(result, 3, "bad.mp4", "1 of 72 frames", "was not saved", "--allow-short")
        assert out.read_bytes() == good.read_bytes()
        assert not list(tmp_path.glob(".tmp-*"))

    def test_allow_short_keeps_the_frames_with_a_warning(self, model, short_movie, tmp_path):
        out = tmp_path / "swap.mp4"
        result = vfxswap("convert", short_movie[1], "-m", model, "-o", out, "--allow-short", "--progress", "none")
        assert result.returncode == 0, result.stderr
        assert "WARNING" in result.stderr and "1 of 72 frames" in result.stderr
        assert "converted 1 frames" in result.stdout
        assert len(decode(out)[0]) == 1

    def test_short_movie_into_a_sequence_keeps_the_written_frame(self, model, short_movie, tmp_path):
        result = vfxswap("convert", short_movie[1], "-m", model, "-o", tmp_path / "f.####.png", "--progress", "none")
        assert_one_line_error(result, 3, "1 of 72 frames", "are in", "--allow-short")
        assert sorted(p.name for p in tmp_path.glob("f.*.png")) == ["f.1001.png"]

    def test_sound_movie_converts_every_frame(self, model, short_movie, tmp_path):
        result = vfxswap("convert", short_movie[0], "-m", model, "-o", tmp_path / "swap.mp4", "--progress", "none")
        assert result.returncode == 0, result.stderr
        assert "converted 72 frames" in result.stdout and "WARNING" not in result.stderr


class TestFrameRangesAgainstTheClip:
    def test_frames_wholly_outside_the_clip_are_a_usage_error(self, model, short_movie, tmp_path):
        result = vfxswap("convert", short_movie[0], "-m", model, "-o", tmp_path / "o.mp4", "--frames", "5000-5010")
        assert_one_line_error(result, 2, "5000-5010", "frames 1001-1072", "--start-frame")
        result = vfxswap("convert", PLATE_SEQ, "-m", model, "-o", tmp_path / "o.####.png", "--frames", "1-10")
        assert_one_line_error(result, 2, "frames 1001-1008")
        assert not list(tmp_path.iterdir())

    def test_frames_partly_outside_warn_and_convert_what_exists(self, model, short_movie, tmp_path):
        result = vfxswap("convert", short_movie[0], "-m", model, "-o", tmp_path / "a.mp4", "--frames", "1070-99999",
                         "--progress", "none")
        assert result.returncode == 0, result.stderr
        assert "converted 3 frames" in result.stdout
        assert "WARNING" in result.stderr and "frames 1073-99999 are outside" in result.stderr
        result = vfxswap("convert", short_movie[0], "-m", model, "-o", tmp_path / "b.####.png", "--frames", "999-1001",
                         "--progress", "none")
        assert result.returncode == 0, result.stderr
        assert "frames 999-1000 are outside" in result.stderr
        assert sorted(p.name for p in tmp_path.glob("b.*.png")) == ["b.1001.png"]
        settings = json.loads((tmp_path / "b.vfxswap.json").read_text())["settings"]
        assert settings["frames"] == "1001"  # the frames converted, not the typo

    def test_empty_frames_is_refused(self, model, short_movie, tmp_path):
        result = vfxswap("convert", short_movie[0], "-m", model, "-o", tmp_path / "o.mp4", "--frames", "")
        assert_one_line_error(result, 2, "--frames is empty")
        assert not list(tmp_path.iterdir())


def _interrupt(args: list, ready: Callable[[], bool]) -> subprocess.CompletedProcess:
    """Run ``vfxswap convert ARGS``, send SIGINT once ``ready()`` holds, return its result."""
    proc = subprocess.Popen([sys.executable, "-m", "vfxswap.cli", "convert", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    assert proc.poll() is None, "the convert finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


class TestInterruptedConvert:
    def test_sequence_says_skip_existing(self, model, tmp_path):
        result = _interrupt([PLATE, "-m", model, "-o", tmp_path / "f.####.png", "--progress", "none"],
                            lambda: (tmp_path / "f.1002.png").exists())
        assert result.returncode == 130, result.stderr
        assert "rerun with --skip-existing" in result.stderr and "--resume" not in result.stderr

    def test_movie_says_rerun(self, model, tmp_path):
        out = tmp_path / "swap.mp4"
        result = _interrupt([PLATE, "-m", model, "-o", out, "--matte", tmp_path / "m.####.png", "--progress", "none"],
                            lambda: (tmp_path / "m.1002.png").exists())
        assert result.returncode == 130, result.stderr
        assert "was not saved; rerun the command" in result.stderr and "--resume" not in result.stderr
        assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def _patch_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "patches.jsonl").read_text().splitlines()]


class TestSharedSideFiles:
    def test_overlapping_chunks_at_once_share_the_settings_and_patches(self, model, tmp_path):
        """Two farm chunks of one PNG sequence, overlapping, started together: every frame, one
        settings file naming all of them, one index line per patch, no temp left."""
        out, patches = tmp_path / "seq" / "f.####.png", tmp_path / "patches"
        common = ["-m", model, "-o", out, "--patches", patches, "--faces", "largest", "--progress", "none"]
        procs = [subprocess.Popen([sys.executable, "-m", "vfxswap.cli", "convert", str(PLATE), "--frames", frames,
                                   *map(str, common)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for frames in ("1001-1030", "1021-1050")]
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=600)
            assert proc.returncode == 0, stderr
        names = sorted(p.name for p in out.parent.glob("f.*.png"))
        assert names == [f"f.{n}.png" for n in range(1001, 1051)]
        settings = json.loads((out.parent / "f.vfxswap.json").read_text())
        assert settings["settings"]["frames"] == "1001-1050"
        lines = _patch_lines(patches)  # frames both chunks converted may hold a patch of each (track ids are per run)
        frames = [x["frame"] for x in lines]
        assert frames == sorted(frames) and set(frames) == set(range(1001, 1051))
        assert len({x["patch"] for x in lines}) == len(lines) and len(lines) <= 50 + 10
        assert all((patches / x["patch"]).is_file() for x in lines)
        assert not list(tmp_path.rglob(".tmp-*"))

    def test_rerun_into_the_same_patches_folder_keeps_one_line_per_patch(self, model, tmp_path):
        common = ["-m", model, "--patches", tmp_path / "patches", "--faces", "largest", "--progress", "none"]
        for frames in ("1001-1004", "1001-1004", "1003-1006"):
            result = vfxswap("convert", PLATE_SEQ, "-o", tmp_path / "f.####.png", "--frames", frames, *common)
            assert result.returncode == 0, result.stderr
        lines = _patch_lines(tmp_path / "patches")
        assert [x["frame"] for x in lines] == list(range(1001, 1007))
        assert len({x["patch"] for x in lines}) == 6
        assert json.loads((tmp_path / "f.vfxswap.json").read_text())["settings"]["frames"] == "1001-1006"

    def test_symlink_at_patches_index_is_not_written_through(self, model, tmp_path):
        victim = tmp_path / "victim.txt"
        victim.write_text("not yours\n")
        (tmp_path / "patches").mkdir()
        (tmp_path / "patches" / "patches.jsonl").symlink_to(victim)
        result = vfxswap("convert", PLATE_SEQ, "-m", model, "-o", tmp_path / "f.####.png", "--frames", "1001-1002",
                         "--patches", tmp_path / "patches", "--progress", "none")
        assert_one_line_error(result, 1, "patches.jsonl", "symlink")
        assert victim.read_text() == "not yours\n"
        assert not list(tmp_path.glob("f.*.png"))


class TestConfigFileValues:
    """Issue 15 item 14: every `--config` value is type- and range-checked against ConvertConfig's schema."""

    @pytest.mark.parametrize("toml, fragments", [
        (b"feather = [1,2]\n", ("bad.toml: feather must be an integer in 0..256, got [1, 2]",)),
        (b"erode = {a=1}\n", ("bad.toml: erode must be an integer in -128..128, got {\"a\": 1}",)),
        (b"smooth = 1e9\n", ("bad.toml: smooth must be an integer in 0..100, got 1000000000.0",)),
        (b"smooth = 1000000000\n", ("bad.toml: smooth must be an integer in 0..100, got 1000000000",)),
        (b"feather = true\n", ("bad.toml: feather must be an integer in 0..256, got true",)),
        (b"[convert]\nbatch = 1.5\n", ("bad.toml: batch must be an integer in 1..1024, got 1.5",)),
        (b"detect_scale = nan\n", ("bad.toml: detect_scale must be a number in (0, 1], got NaN",)),
        (b"faces = \"most\"\n", ("bad.toml: faces must be one of all, largest, reference, got \"most\"",)),
        (b"skip_existing = 1\n", ("bad.toml: skip_existing must be true or false, got 1",)),
        (b"progress = \"fancy\"\n", ("bad.toml: progress must be one of auto, ", "got \"fancy\"")),
        (b"convert = 5\n", ("bad.toml: convert must be a table of settings",)),
        (b"color = \"mkl\"\n# caf\xe9\n", ("bad.toml is not UTF-8 text (byte 19): save it as UTF-8",)),
    ], ids=["list", "table", "float-1e9", "int-1e9", "bool-for-int", "float-for-int", "nan", "choice", "int-for-bool",
            "argparse-choice", "not-a-table", "latin-1"])
    def test_bad_values_are_one_line_usage_errors(self, tmp_path, toml, fragments):
        (tmp_path / "bad.toml").write_bytes(toml)
        result = vfxswap("convert", PLATE_SEQ, "-m", MODEL, "-o", tmp_path / "o.####.png", "--config", tmp_path / "bad.toml")
        assert_one_line_error(result, 2, *fragments)
        assert not list(tmp_path.glob("o.*"))

    def test_in_process_main_gives_the_same_error(self, tmp_path, capsys):
        from vfxswap.cli import main

        (tmp_path / "bad.toml").write_text("feather = [1,2]\n")
        code = main(["convert", str(PLATE_SEQ), "-m", str(MODEL), "-o", str(tmp_path / "o.####.png"),
                     "--config", str(tmp_path / "bad.toml")])
        err = capsys.readouterr().err
        assert code == 2 and err == f"vfxswap: error: --config {tmp_path / 'bad.toml'}: feather must be an integer " \
                                    "in 0..256, got [1, 2]\n"

    def test_valid_values_of_every_kind_are_accepted(self, model, tmp_path):
        (tmp_path / "ok.toml").write_text('[convert]\nfeather = 6\nerode = -2\nsmooth = 0\nidentity_threshold = 1\n'
                                          'detect_scale = 1\nskip_existing = true\nface_backend = "dlib"\n'
                                          'progress = "none"\nframes = "1001-1002"\n')
        result = vfxswap("convert", PLATE_SEQ, "-m", model, "-o", tmp_path / "o.####.png", "--config", tmp_path / "ok.toml")
        assert result.returncode == 0, result.stderr
        settings = json.loads((tmp_path / "o.vfxswap.json").read_text())["settings"]
        assert (settings["feather"], settings["erode"], settings["smooth"], settings["skip_existing"]) == (6, -2, 0, True)
        assert settings["identity_threshold"] == 1 and settings["detect_scale"] == 1

    def test_flags_are_checked_by_the_same_schema(self, tmp_path):
        result = vfxswap("convert", PLATE_SEQ, "-m", MODEL, "-o", tmp_path / "o.####.png", "--smooth", "101")
        assert_one_line_error(result, 2, "--smooth must be <= 100, got 101")


class TestCorruptCachedOnnxExport:
    """Issue 15 item 16: a damaged MODEL/export/swap.onnx is exported again, not a failed convert."""

    @pytest.mark.parametrize("backend", ["onnxruntime", "auto"])
    def test_garbage_export_is_rebuilt_and_converts(self, demo_model, tmp_path, backend):
        import shutil

        onnx = pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
        model = tmp_path / "model"
        shutil.copytree(demo_model, model, ignore=shutil.ignore_patterns("export"))
        (model / "export").mkdir()
        (model / "export" / "swap.onnx").write_bytes(np.random.default_rng(1).bytes(5000))
        result = vfxswap("convert", PLATE_SEQ, "-m", model, "-o", tmp_path / "o.####.png", "--frames", "1001-1002",
                         "--backend", backend, "--device", "cpu", "--progress", "none")
        assert result.returncode == 0, result.stderr
        assert "converted 2 frames" in result.stdout
        assert "is not an ONNX model" in result.stderr and "exporting it again" in result.stderr
        onnx.checker.check_model(onnx.load(str(model / "export" / "swap.onnx")))
