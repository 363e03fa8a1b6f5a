"""vfxswap.io sources on small real media written with PyAV and OpenImageIO (no mocks)."""

from __future__ import annotations

import logging
import os
from fractions import Fraction

import av
import numpy as np
import OpenImageIO as oiio
import pytest

from vfxswap.errors import MediaError
from vfxswap.io import open_source, probe, to_display_uint8
from vfxswap.io.video import timecode_at

WIDTH, HEIGHT = 64, 48
RED = (slice(8, 40), slice(0, 24))  # a pure red patch on the left of every test picture
RED_CENTRE = (24, 10)
GREY_CENTRE = (24, 48)


def picture(i: int) -> np.ndarray:
    """(48, 64, 3) uint8 RGB: a red patch on the left, a grey right half 40 + 30 * i (frame order)."""
    img = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    img[RED] = (255, 0, 0)
    img[:, 32:] = 40 + 30 * i
    return img


def write_movie(path, n: int = 6, *, codec: str = "libx264", pix_fmt: str = "yuv420p",
                timecode: str | None = None, faststart: bool = False) -> str:
    """Encode ``n`` pictures at 24 fps into ``path``."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        if timecode:
            container.metadata["timecode"] = timecode
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pix_fmt
        for i in range(n):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture(i), format="rgb24")))
        container.mux(stream.encode())
    return str(path)


def write_image(path, pixels: np.ndarray, *, fmt: str | None = None, bits: int | None = None,
                fps: tuple[int, int] | None = None) -> str:
    """Write ``(H, W, C)`` pixels with OpenImageIO (float arrays as half)."""
    fmt = fmt or {"uint8": "uint8", "uint16": "uint16"}.get(pixels.dtype.name, "half")
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], pixels.shape[2], fmt)
    spec.attribute("oiio:UnassociatedAlpha", 1)  # store RGBA pixels as given (no un-premultiply)
    if bits:
        spec.attribute("oiio:BitsPerSample", bits)
    if fps:
        spec.attribute("FramesPerSecond", oiio.TypeDesc("rational2i"), fps)
    out = oiio.ImageOutput.create(str(path))
    assert out is not None and out.open(str(path), spec), oiio.geterror()
    assert out.write_image(pixels), out.geterror()
    out.close()
    return str(path)


def write_sequence(folder, name: str, numbers: list[int]) -> list[str]:
    """Write pictures 0, 1, ... as ``folder / (name % number)``."""
    os.makedirs(folder, exist_ok=True)
    return [write_image(os.path.join(folder, name % n), picture(i)) for i, n in enumerate(numbers)]


def read_all(path, start=None):
    with open_source(path) as src:
        return src.info, list(src.frames(start=start))


def assert_one_line_media_error(call, *args, match: str) -> MediaError:
    with pytest.raises(MediaError, match=match) as info:
        call(*args)
    assert "\n" not in str(info.value)
    return info.value


@pytest.fixture(scope="module")
def h264_mp4(tmp_path_factory) -> str:
    return write_movie(tmp_path_factory.mktemp("h264") / "plate.mp4", faststart=True)


@pytest.fixture(scope="module")
def prores_mov(tmp_path_factory) -> str:
    return write_movie(tmp_path_factory.mktemp("prores") / "plate.mov", 3, codec="prores_ks",
                       pix_fmt="yuv422p10le", timecode="01:00:10:00")


class TestProbeMovie:
    def test_fields(self, h264_mp4):
        info = probe(h264_mp4)
        assert (info.kind, info.width, info.height, info.frame_count) == ("movie", 64, 48, 6)
        assert info.fps == Fraction(24) and isinstance(info.time_base, Fraction)
        assert (info.pix_fmt, info.bit_depth, info.codec) == ("yuv420p", 8, "h264")
        assert info.first_frame == 0 and info.has_audio is False and info.timecode is None

    def test_mkv_frame_count_is_estimated_from_duration(self, tmp_path):
        assert probe(write_movie(tmp_path / "plate.mkv")).frame_count == 6

    def test_audio_stream_is_reported(self, tmp_path):
        path = str(tmp_path / "with_audio.mkv")
        with av.open(path, "w") as container:
            video = container.add_stream("libx264", rate=24)
            video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            audio = container.add_stream("pcm_s16le", rate=8000, layout="mono")
            container.mux(video.encode(av.VideoFrame.from_ndarray(picture(0), format="rgb24")))
            container.mux(video.encode())
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            samples.sample_rate = 8000
            container.mux(audio.encode(samples))
            container.mux(audio.encode())
        assert probe(path).has_audio is True


class TestMovieFrames:
    def test_count_order_pts_dtype(self, h264_mp4):
        info, frames = read_all(h264_mp4)
        assert [f.index for f in frames] == list(range(6))
        pts = [f.pts for f in frames]
        assert pts == sorted(pts) and len(set(pts)) == 6
        assert all(f.time_base == info.time_base for f in frames)
        greys = [int(f.image[GREY_CENTRE][1]) for f in frames]
        assert greys == sorted(greys) and greys[-1] - greys[0] > 100
        image = frames[0].image
        assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
        assert frames[0].color_space == "srgb" and frames[0].timecode is None

    def test_channels_are_rgb(self, h264_mp4):
        red = read_all(h264_mp4)[1][0].image[RED_CENTRE].astype(int)
        assert red[0] > 230 and red[1] < 25 and red[2] < 25

    def test_start_skips_frames(self, h264_mp4):
        _, frames = read_all(h264_mp4)
        _, tail = read_all(h264_mp4, start=3)
        assert [f.index for f in tail] == [3, 4, 5]
        np.testing.assert_array_equal(tail[0].image, frames[3].image)
        assert tail[0].pts == frames[3].pts

    def test_frames_can_be_read_again(self, h264_mp4):
        with open_source(h264_mp4) as src:
            first = [f.index for f in src.frames()]
            assert [f.index for f in src.frames()] == first

    def test_closing_ends_a_live_iterator_cleanly(self, h264_mp4):
        src = open_source(h264_mp4)
        frames = src.frames()
        assert next(frames).index == 0
        src.close()
        assert_one_line_media_error(next, frames, match="was closed")
        assert_one_line_media_error(src.frames, match="is closed")

    def test_prores_10_bit_decodes_to_uint16(self, prores_mov):
        info, frames = read_all(prores_mov)
        assert (info.pix_fmt, info.bit_depth, info.codec) == ("yuv422p10le", 10, "prores")
        assert len(frames) == 3 and frames[0].image.dtype == np.uint16
        red = frames[0].image[RED_CENTRE].astype(int)
        assert red[0] > 60000 and red[1] < 3000 and red[2] < 3000
        # 10-bit precision survives: values that are not multiples of 256.
        assert np.any(frames[0].image % 256 != 0)
        assert to_display_uint8(frames[0])[RED_CENTRE][0] > 240

    def test_timecode_tag_is_carried(self, prores_mov):
        info, frames = read_all(prores_mov)
        assert info.timecode == "01:00:10:00"
        assert [f.timecode for f in frames] == ["01:00:10:00", "01:00:10:01", "01:00:10:02"]


class TestTimecodeAt:
    @pytest.mark.parametrize(("start", "index", "fps", "expected"), [
        ("01:00:00:00", 0, Fraction(24), "01:00:00:00"),
        ("00:00:59:23", 1, Fraction(24), "00:01:00:00"),
        ("00:59:59:24", 1, Fraction(25), "01:00:00:00"),
        ("23:59:59:23", 1, Fraction(24000, 1001), "00:00:00:00"),
        ("00:00:59;29", 1, Fraction(30000, 1001), "00:01:00;02"),
        ("00:09:59;29", 1, Fraction(30000, 1001), "00:10:00;00"),
        ("00:00:00;00", 17982, Fraction(30000, 1001), "00:10:00;00"),
    ])
    def test_values(self, start, index, fps, expected):
        assert timecode_at(start, index, fps) == expected

    def test_rejects_garbage(self):
        assert_one_line_media_error(timecode_at, "1h", 0, Fraction(24), match="HH:MM:SS:FF")


class TestSequences:
    @pytest.mark.parametrize("pattern", ["shot.%04d.png", "shot.####.png", "shot.@@@@.png"])
    def test_pattern_numbered_from_1001(self, tmp_path, pattern):
        files = write_sequence(tmp_path, "shot.%04d.png", [1001, 1002, 1003])
        info, frames = read_all(str(tmp_path / pattern))
        assert (info.kind, info.first_frame, info.frame_count, info.fps) == ("sequence", 1001, 3, 24)
        assert info.time_base == Fraction(1, 24) and (info.width, info.height) == (64, 48)
        assert (info.pix_fmt, info.bit_depth, info.codec) == ("rgb24", 8, "png")
        assert [f.index for f in frames] == [1001, 1002, 1003]
        assert [f.source for f in frames] == files
        np.testing.assert_array_equal(frames[1].image, picture(1))
        assert frames[0].color_space == "srgb" and frames[0].image.flags.c_contiguous

    def test_padding_must_match(self, tmp_path):
        write_sequence(tmp_path, "shot.%04d.png", [1, 2])
        assert_one_line_media_error(probe, str(tmp_path / "shot.###.png"), match="no files match")

    def test_start_skips_files(self, tmp_path):
        write_sequence(tmp_path, "shot.%04d.png", [1001, 1002, 1003])
        _, frames = read_all(str(tmp_path / "shot.####.png"), start=1002)
        assert [f.index for f in frames] == [1002, 1003]

    def test_gaps_are_allowed_and_logged(self, tmp_path, caplog):
        write_sequence(tmp_path, "shot.%04d.png", [1001, 1002, 1005, 1007])
        with caplog.at_level(logging.WARNING, logger="vfxswap.io.sequences"):
            info, frames = read_all(str(tmp_path / "shot.%04d.png"))
        assert info.frame_count == 4 and [f.index for f in frames] == [1001, 1002, 1005, 1007]
        assert "1003-1004, 1006" in caplog.text

    def test_folder_of_one_pattern_is_a_sequence(self, tmp_path):
        write_sequence(tmp_path, "plate_v002.%04d.png", [1001, 1002])
        (tmp_path / "notes.txt").write_text("not an image")
        info, frames = read_all(tmp_path)
        assert (info.kind, info.first_frame, info.frame_count) == ("sequence", 1001, 2)
        assert [f.index for f in frames] == [1001, 1002]

    def test_folder_of_other_images_is_stills(self, tmp_path):
        for i, name in enumerate(["b.png", "a.png", "c_01.png"]):
            write_image(tmp_path / name, picture(i))
        info, frames = read_all(tmp_path)
        assert (info.kind, info.first_frame, info.frame_count) == ("stills", 0, 3)
        assert [f.index for f in frames] == [0, 1, 2]
        assert [os.path.basename(f.source) for f in frames] == ["a.png", "b.png", "c_01.png"]

    def test_exr_float_is_linear_float32(self, tmp_path):
        for n in (1001, 1002):
            write_image(tmp_path / f"cg.{n}.exr", np.full((HEIGHT, WIDTH, 3), 0.18, np.float32), fps=(25, 1))
        info, frames = read_all(str(tmp_path / "cg.####.exr"))
        assert (info.fps, info.time_base, info.pix_fmt, info.codec) == (25, Fraction(1, 25), "rgbf32", "exr")
        assert frames[0].image.dtype == np.float32 and frames[0].color_space == "linear"
        assert abs(float(frames[0].image.mean()) - 0.18) < 1e-3
        assert abs(int(to_display_uint8(frames[0])[0, 0, 0]) - 118) <= 1

    def test_16_bit_png_is_uint16(self, tmp_path):
        pixels = picture(2).astype(np.uint16) * 257 + 3
        info, frames = read_all(write_image(tmp_path / "deep.png", pixels))
        assert (info.kind, info.bit_depth, info.pix_fmt) == ("stills", 16, "rgb48")
        np.testing.assert_array_equal(frames[0].image, pixels)

    def test_10_bit_dpx_is_uint16_full_range(self, tmp_path):
        pixels = np.full((HEIGHT, WIDTH, 3), 65535, np.uint16)
        info, frames = read_all(write_image(tmp_path / "scan.0001.dpx", pixels, bits=10))
        assert info.bit_depth == 10 and frames[0].image.dtype == np.uint16
        assert int(frames[0].image.min()) == 65535

    def test_grey_is_replicated_and_alpha_dropped(self, tmp_path):
        grey = write_image(tmp_path / "grey.png", np.full((HEIGHT, WIDTH, 1), 77, np.uint8))
        alpha = np.full((HEIGHT, WIDTH), 9, np.uint8)
        rgba = write_image(tmp_path / "rgba.png", np.dstack([picture(0), alpha]))
        assert np.all(read_all(grey)[1][0].image == 77)
        np.testing.assert_array_equal(read_all(rgba)[1][0].image, picture(0))


class TestBadInput:
    @pytest.mark.parametrize("call", [probe, open_source])
    def test_missing_path(self, tmp_path, call):
        assert_one_line_media_error(call, str(tmp_path / "nope.mov"), match="no such file")

    def test_zero_byte_movie(self, tmp_path):
        (tmp_path / "empty.mov").write_bytes(b"")
        assert_one_line_media_error(open_source, str(tmp_path / "empty.mov"), match="empty")

    def test_not_a_movie(self, tmp_path):
        (tmp_path / "junk.mov").write_bytes(os.urandom(4096))
        assert_one_line_media_error(probe, str(tmp_path / "junk.mov"), match="cannot read .* as a movie")

    def test_no_video_stream(self, tmp_path):
        path = str(tmp_path / "sound.wav")
        with av.open(path, "w") as container:
            audio = container.add_stream("pcm_s16le", rate=8000, layout="mono")
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            samples.sample_rate = 8000
            container.mux(audio.encode(samples))
            container.mux(audio.encode())
        assert_one_line_media_error(open_source, path, match="no video stream")

    def test_movie_cut_before_its_index(self, tmp_path):
        data = open(write_movie(tmp_path / "full.mp4"), "rb").read()
        (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # moov atom at the end: lost
        assert_one_line_media_error(open_source, str(tmp_path / "cut.mp4"), match="is the file complete")

    def test_movie_cut_inside_a_frame(self, tmp_path, h264_mp4):
        data = open(h264_mp4, "rb").read()
        (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])
        err = assert_one_line_media_error(read_all, str(tmp_path / "cut.mp4"), match="truncated or corrupt")
        assert "of 6 frames" in str(err)

    def test_movie_cut_between_frames(self, tmp_path, h264_mp4):
        with av.open(h264_mp4) as container:
            entry = container.streams.video[0].index_entries[3]
        (tmp_path / "cut.mp4").write_bytes(open(h264_mp4, "rb").read()[: entry.pos + entry.size])
        err = assert_one_line_media_error(read_all, str(tmp_path / "cut.mp4"), match="truncated or corrupt")
        assert "after 4 of 6 frames" in str(err)

    def test_folder_without_images(self, tmp_path):
        (tmp_path / "readme.txt").write_text("x")
        assert_one_line_media_error(open_source, str(tmp_path), match=r"no images in .*looked for: exr")

    def test_pattern_matching_nothing(self, tmp_path):
        assert_one_line_media_error(probe, str(tmp_path / "shot.%04d.exr"), match="no files match")

    def test_pattern_of_unsupported_type(self, tmp_path):
        assert_one_line_media_error(probe, str(tmp_path / "shot.%04d.mov"), match="supported: exr")

    def test_unreadable_image_in_sequence_is_named(self, tmp_path):
        files = write_sequence(tmp_path, "shot.%04d.png", [1, 2, 3])
        data = open(files[1], "rb").read()
        open(files[1], "wb").write(data[: len(data) // 2])
        with open_source(str(tmp_path / "shot.####.png")) as src:
            frames = src.frames()
            assert next(frames).index == 1
            assert_one_line_media_error(next, frames, match=r"cannot read image .*shot\.0002\.png")

    def test_zero_byte_image_in_sequence_is_named(self, tmp_path):
        files = write_sequence(tmp_path, "shot.%04d.png", [1, 2])
        open(files[1], "wb").close()
        assert_one_line_media_error(read_all, str(tmp_path), match=r"shot\.0002\.png is empty")
