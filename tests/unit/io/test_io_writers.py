"""vfxswap.io writers on small real media made with PyAV and OpenImageIO (no mocks)."""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction

import av
import numpy as np
import OpenImageIO as oiio
import pytest

from vfxswap.errors import ConfigError, MediaError, OutputError
from vfxswap.io import open_source, open_writer, probe, to_display_uint8
from vfxswap.io.sequences import SequenceWriter, read_image
from vfxswap.io.video import MovieWriter, plan_encoder, rgb_to_i420
from vfxswap.types import Frame, VideoInfo

W, H = 96, 64
TB = Fraction(1, 12288)  # what PyAV's mp4/mov muxers use for 24 fps
TIMECODE = "01:00:10:00"


def picture(i: int, width: int = W, height: int = H) -> np.ndarray:
    """(H, W, 3) uint8 RGB: horizontal red ramp, vertical green ramp, blue that changes per frame."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = x * 255 // (width - 1)
    img[..., 1] = y * 255 // (height - 1)
    img[..., 2] = (40 + 25 * i) % 256
    return img


def make_movie(path, n: int = 8, *, codec: str = "libx264", pix_fmt: str = "yuv420p",
               pts: list[int] | None = None, audio: bool = False, timecode: str | None = None,
               width: int = W, height: int = H, colorspace: int | None = None) -> str:
    """Encode ``n`` pictures (pts ``pts`` in 1/12288 s, else 24 fps) plus an optional AAC tone."""
    with av.open(str(path), "w") as container:
        if timecode:
            container.metadata["timecode"] = timecode
        video = container.add_stream(codec, rate=24)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = TB
        video.time_base = TB
        if colorspace is not None:
            ctx = video.codec_context
            ctx.colorspace = ctx.color_primaries = ctx.color_trc = colorspace
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=48000)
            sound.layout = "stereo"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(picture(i, width, height), format="rgb24")
            frame = frame.reformat(format=pix_fmt, dst_colorspace=colorspace)
            frame.pts, frame.time_base = (pts[i] if pts else i * 512), TB
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            t = np.arange(48000 * n // 24) / 48000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for k in range(0, len(tone), 1024):
                chunk = np.ascontiguousarray(np.stack([tone[k:k + 1024]] * 2))
                samples = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                samples.sample_rate, samples.pts = 48000, k
                container.mux(sound.encode(samples))
            container.mux(sound.encode())
    return str(path)


def make_prores10(path, n: int = 3) -> tuple[str, np.ndarray]:
    """ProRes HQ 4:2:2 10-bit with a luma ramp 301, 304, 307... (mostly not multiples of 4)."""
    luma = np.tile((301 + 3 * np.arange(W)).astype(np.uint16), (H, 1))
    frame = av.VideoFrame(W, H, "yuv422p10le")
    for plane, values in zip(frame.planes, (luma, np.full((H, W // 2), 512, np.uint16),
                                            np.full((H, W // 2), 512, np.uint16))):
        rows = np.frombuffer(plane, np.uint16).reshape(H, plane.line_size // 2)
        rows[:, :values.shape[1]] = values
    with av.open(str(path), "w") as container:
        stream = container.add_stream("prores_ks", rate=24, options={"profile": "3"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv422p10le"
        for i in range(n):
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return str(path), decoded_luma(str(path))


def decoded_luma(path: str) -> np.ndarray:
    """The Y plane of the first frame, as stored (10-bit values for 10-bit formats)."""
    with av.open(path) as container:
        frame = next(container.decode(video=0))
        dtype = np.uint16 if frame.format.components[0].bits > 8 else np.uint8
        plane = frame.planes[0]
        rows = np.frombuffer(plane, dtype).reshape(frame.height, -1)
        return rows[:, :frame.width].copy()


def copy_movie(src: str, out: str, *, start: int | None = None, stop: int | None = None, **kwargs):
    """Read ``src`` and write frames ``start..stop-1`` to ``out``; return (frames written, frames read back)."""
    with open_source(src) as source, open_writer(out, source.info, **kwargs) as writer:
        written = []
        for frame in source.frames(start=start):
            if stop is not None and frame.index >= stop:
                break
            writer.write(frame)
            written.append(frame)
    with open_source(out) as back:
        return written, list(back.frames())


def seconds(path: str) -> list[Fraction]:
    with av.open(path) as container:
        return [frame.pts * frame.time_base for frame in container.decode(video=0)]


def audio_packets(path: str) -> list[tuple[bytes, Fraction]]:
    with av.open(path) as container:
        return [(bytes(p), p.pts * p.time_base) for p in container.demux(container.streams.audio[0])
                if p.size]


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int64) - b.astype(np.int64)).mean())


def leftovers(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith(".tmp-"))


def movie_info(**changes) -> VideoInfo:
    base = VideoInfo(path="in.mp4", kind="movie", width=W, height=H, fps=Fraction(24), time_base=TB,
                     frame_count=8, pix_fmt="yuv420p", bit_depth=8, codec="h264")
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("writer_media")
    prores, prores_luma = make_prores10(folder / "p10.mov")
    return {
        "cfr": make_movie(folder / "cfr.mp4", audio=True, timecode=TIMECODE),
        "vfr": make_movie(folder / "vfr.mp4", pts=[0, 512, 1100, 1200, 2600, 2700, 4000, 4096]),
        "bt709": make_movie(folder / "bt709.mp4", colorspace=1),
        "odd": make_movie(folder / "odd.mp4", width=97, height=63, pix_fmt="yuv444p"),
        "prores": prores,
        "prores_luma": prores_luma,
    }


class TestPlanEncoder:
    @pytest.mark.parametrize(("changes", "codec", "pix_fmt"), [
        ({}, "libx264", "yuv420p"),
        ({"pix_fmt": "yuv420p10le", "bit_depth": 10}, "libx264", "yuv420p10le"),
        ({"pix_fmt": "yuv422p10le", "bit_depth": 10}, "libx264", "yuv422p10le"),
        ({"codec": "hevc", "pix_fmt": "yuv420p10le", "bit_depth": 10}, "libx265", "yuv420p10le"),
        ({"codec": "hevc", "pix_fmt": "yuv420p12le", "bit_depth": 12}, "libx265", "yuv420p12le"),
        ({"codec": "prores", "pix_fmt": "yuv422p10le", "bit_depth": 10}, "prores_ks", "yuv422p10le"),
        ({"codec": "prores", "pix_fmt": "yuva444p10le", "bit_depth": 10}, "prores_ks", "yuv444p10le"),
        ({"codec": "dnxhd", "pix_fmt": "yuv422p", "width": 1920, "height": 1080}, "dnxhd", "yuv422p"),
        ({"codec": "dnxhd", "pix_fmt": "yuv422p10le", "bit_depth": 10, "width": 1920, "height": 1080},
         "dnxhd", "yuv422p10le"),
        ({"codec": "ffv1", "pix_fmt": "bgr0"}, "ffv1", "bgr0"),
        ({"codec": "ffv1", "pix_fmt": "gbrp16le", "bit_depth": 16}, "ffv1", "gbrp16le"),
        ({"codec": "png", "pix_fmt": "rgb24"}, "libx264", "yuv420p"),
        ({"codec": "mjpeg", "pix_fmt": "yuvj422p"}, "libx264", "yuv422p"),
        ({"kind": "sequence", "codec": "exr", "pix_fmt": "rgbf32", "bit_depth": 16}, "libx264",
         "yuv420p10le"),
        ({"width": 97, "height": 63}, "libx264", "yuv444p"),
        ({"pix_fmt": "yuv422p", "width": 97}, "libx264", "yuv444p"),
        ({"pix_fmt": "yuv422p", "height": 63}, "libx264", "yuv422p"),
    ])
    def test_defaults_keep_family_depth_and_chroma(self, changes, codec, pix_fmt):
        plan = plan_encoder(movie_info(**changes))
        assert (plan.codec, plan.pix_fmt) == (codec, pix_fmt)

    def test_profiles(self):
        assert plan_encoder(movie_info(codec="prores", pix_fmt="yuv422p10le")).options["profile"] == "3"
        plan = plan_encoder(movie_info(), codec="prores_ks", profile="4444")
        assert (plan.pix_fmt, plan.options["profile"]) == ("yuv444p10le", "4")
        big = movie_info(width=1920, height=1080)
        assert plan_encoder(big, codec="dnxhd").options["profile"] == "dnxhr_hq"
        assert plan_encoder(dataclasses.replace(big, bit_depth=10), codec="dnxhd").options["profile"] == "dnxhr_hqx"

    def test_x264_options(self):
        plan = plan_encoder(movie_info(), crf=12, preset="veryfast", options={"tune": "film"})
        assert plan.options == {"crf": "12", "preset": "veryfast", "tune": "film"}

    def test_explicit_codec_and_pix_fmt(self):
        plan = plan_encoder(movie_info(codec="prores"), codec="libx264", pix_fmt="yuv444p")
        assert (plan.codec, plan.pix_fmt) == ("libx264", "yuv444p")

    @pytest.mark.parametrize(("kwargs", "match"), [
        ({"codec": "vp9"}, "libx264, libx265, prores_ks, dnxhd, ffv1"),
        ({"pix_fmt": "rgb24"}, "cannot encode pix_fmt 'rgb24'; use one of yuv420p"),
        ({"codec": "prores_ks", "profile": "ultra"}, "unknown ProRes profile"),
        ({"profile": "hq"}, "applies to prores_ks and dnxhd"),
        ({"codec": "ffv1", "crf": 10}, "apply to libx264 and libx265"),
        ({"crf": 60}, "0..51"),
        ({"codec": "dnxhd"}, "at least 256x120"),
    ])
    def test_bad_options(self, kwargs, match):
        with pytest.raises(ConfigError, match=match) as info:
            plan_encoder(movie_info(), **kwargs)
        assert "\n" not in str(info.value)


class TestRgbToI420:
    @pytest.mark.parametrize(("colorspace", "full_range"), [(None, False), (5, False), (1, False),
                                                            (9, False), (1, True)])
    def test_inverse_of_ffmpeg_decoding(self, colorspace, full_range):
        """Encoded with the tagged matrix/range, FFmpeg's decoder gives the picture back."""
        rgb = picture(3)
        frame = av.VideoFrame.from_ndarray(rgb_to_i420(rgb, colorspace=colorspace, full_range=full_range),
                                           format="yuv420p")
        frame.colorspace = colorspace if colorspace is not None else 2
        frame.color_range = 2 if full_range else 1
        reference = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format="yuv420p", dst_colorspace={None: 5, 5: 5, 1: 1, 9: 9}[colorspace],
            dst_color_range=frame.color_range)
        baseline = mean_error(reference.to_ndarray(format="rgb24"), rgb)  # swscale's own encode
        assert mean_error(frame.to_ndarray(format="rgb24"), rgb) < max(2.0, baseline + 0.25)

    def test_matrix_matters(self):
        rgb = picture(3)
        frame = av.VideoFrame.from_ndarray(rgb_to_i420(rgb, colorspace=1), format="yuv420p")
        frame.colorspace = 5  # decoded with the wrong (BT.601) matrix
        assert mean_error(frame.to_ndarray(format="rgb24"), rgb) > 3.0


class TestMovieWriter:
    def test_h264_round_trip_keeps_count_pts_and_picture(self, media, tmp_path):
        out = str(tmp_path / "out.mp4")
        written, back = copy_movie(media["cfr"], out)
        assert len(back) == len(written) == 8
        assert seconds(out) == seconds(media["cfr"])
        info = probe(out)
        assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", W, H)
        assert all(mean_error(a.image, b.image) < 3.0 for a, b in zip(written, back))
        assert leftovers(tmp_path) == []

    @pytest.mark.parametrize("ext", ["mp4", "mov"])
    def test_vfr_timestamps_survive(self, media, tmp_path, ext):
        out = str(tmp_path / f"vfr.{ext}")
        written, back = copy_movie(media["vfr"], out)
        assert len(back) == len(written) == 8
        assert seconds(out) == seconds(media["vfr"])

    @pytest.mark.parametrize("ext", ["mp4", "mov"])
    def test_partial_render_keeps_exact_times(self, media, tmp_path, ext):
        """A render starting mid-shot keeps its source times (edit lists in a fine movie time scale)."""
        out = str(tmp_path / f"part.{ext}")
        written, back = copy_movie(media["vfr"], out, start=2, stop=7)
        assert len(back) == len(written) == 5
        assert seconds(out) == seconds(media["vfr"])[2:7]

    def test_mkv_rounds_to_milliseconds(self, media, tmp_path):
        out = str(tmp_path / "vfr.mkv")
        copy_movie(media["vfr"], out)
        assert [round(s, 3) for s in map(float, seconds(out))] == \
            [round(s, 3) for s in map(float, seconds(media["vfr"]))]

    def test_audio_packets_copied_byte_identical(self, media, tmp_path):
        out = str(tmp_path / "out.mov")
        copy_movie(media["cfr"], out, source=media["cfr"])
        source, copied = audio_packets(media["cfr"]), audio_packets(out)
        assert len(source) > 10
        assert [p for p, _ in copied] == [p for p, _ in source]
        assert [t for _, t in copied] == [t for _, t in source]
        assert probe(out).has_audio

    def test_hevc_10bit_in_mp4(self, media, tmp_path):
        out = str(tmp_path / "hevc.mp4")
        copy_movie(media["prores"], out, codec="hevc")
        info = probe(out)
        assert (info.codec, info.pix_fmt) == ("hevc", "yuv422p10le")
        with av.open(out) as container:
            assert container.streams.video[0].codec_tag == "hvc1"  # QuickTime plays hvc1, not hev1

    def test_sequence_source_has_no_audio_to_copy(self, media, tmp_path):
        out = str(tmp_path / "out.mp4")
        copy_movie(media["cfr"], out, source=str(tmp_path / "plate.####.exr"))
        assert not probe(out).has_audio

    def test_no_source_no_audio(self, media, tmp_path):
        out = str(tmp_path / "out.mp4")
        copy_movie(media["cfr"], out)
        assert not probe(out).has_audio

    def test_partial_render_copies_overlapping_audio(self, media, tmp_path):
        out = str(tmp_path / "part.mov")
        written, back = copy_movie(media["cfr"], out, start=3, stop=6, source=media["cfr"])
        assert [f.index for f in written] == [3, 4, 5] and len(back) == 3
        assert seconds(out) == [Fraction(3, 24), Fraction(4, 24), Fraction(5, 24)]
        begin, end = Fraction(3, 24), Fraction(6, 24)
        source = audio_packets(media["cfr"])
        packet_time = Fraction(1024, 48000)
        expected = [(p, t) for p, t in source if t + packet_time > begin and t < end]
        assert 0 < len(expected) < len(source)
        assert audio_packets(out) == expected
        assert probe(out).timecode == "01:00:10:03"  # the first written frame's

    def test_timecode_carried(self, media, tmp_path):
        out = str(tmp_path / "tc.mov")
        copy_movie(media["cfr"], out)
        assert probe(out).timecode == TIMECODE

    def test_start_timecode_overrides(self, media, tmp_path):
        out = str(tmp_path / "tc.mp4")
        copy_movie(media["cfr"], out, start_timecode="02:00:00:00")
        assert probe(out).timecode == "02:00:00:00"

    def test_bad_start_timecode(self, tmp_path):
        with pytest.raises(ConfigError, match="HH:MM:SS:FF"):
            MovieWriter(tmp_path / "x.mp4", movie_info(), start_timecode="10 o'clock")
        assert os.listdir(tmp_path) == []

    def test_colour_tags_carried(self, media, tmp_path):
        out = str(tmp_path / "709.mp4")
        written, back = copy_movie(media["bt709"], out)
        info = probe(out)
        assert (info.color_primaries, info.color_trc, info.colorspace) == ("bt709", "bt709", "bt709")
        assert all(mean_error(a.image, b.image) < 3.0 for a, b in zip(written, back))

    def test_prores_10bit_stays_10bit(self, media, tmp_path):
        out = str(tmp_path / "p10_out.mov")
        written, back = copy_movie(media["prores"], out)
        info = probe(out)
        assert (info.codec, info.pix_fmt, info.bit_depth) == ("prores", "yuv422p10le", 10)
        assert written[0].image.dtype == back[0].image.dtype == np.uint16
        luma_in, luma_out = media["prores_luma"], decoded_luma(out)
        assert np.mean(luma_in % 4 != 0) > 0.7  # the input ramp is not 8-bit values scaled up
        assert np.abs(luma_out.astype(int) - luma_in).max() <= 2
        assert np.mean(luma_out % 4 != 0) > 0.7  # not quantised to 8 bits on the way

    def test_odd_size(self, media, tmp_path):
        for name, codec in (("odd.mp4", None), ("odd_hevc.mkv", "libx265")):
            out = str(tmp_path / name)
            written, back = copy_movie(media["odd"], out, codec=codec)
            info = probe(out)
            assert (info.width, info.height, info.pix_fmt) == (97, 63, "yuv444p")
            assert len(back) == len(written) == 8
            assert all(mean_error(a.image, b.image) < 3.0 for a, b in zip(written, back))

    def test_odd_size_from_420_source(self, tmp_path):
        """An odd-sized 4:2:0 plan widens to 4:4:4 (x264 cannot subsample 97x63)."""
        info = movie_info(width=97, height=63)
        with MovieWriter(tmp_path / "odd.mp4", info) as writer:
            for i in range(3):
                writer.write(Frame(picture(i, 97, 63), i, pts=512 * i, time_base=TB))
        assert probe(tmp_path / "odd.mp4").pix_fmt == "yuv444p"

    def test_ffv1_is_lossless(self, media, tmp_path):
        out = str(tmp_path / "lossless.mkv")
        written, back = copy_movie(media["cfr"], out, codec="ffv1")
        assert probe(out).pix_fmt == "bgr0"
        assert all(np.array_equal(a.image, b.image) for a, b in zip(written, back))

    def test_ffv1_16bit_is_lossless(self, media, tmp_path):
        out = str(tmp_path / "lossless16.mkv")
        written, back = copy_movie(media["prores"], out, codec="ffv1")
        assert probe(out).pix_fmt == "gbrp16le"
        assert back[0].image.dtype == np.uint16
        assert all(np.array_equal(a.image, b.image) for a, b in zip(written, back))

    def test_frames_without_pts_use_index_and_fps(self, tmp_path):
        info = movie_info(kind="sequence", first_frame=1001, fps=Fraction(25), codec="png",
                          pix_fmt="rgb24")
        out = tmp_path / "seq.mp4"
        with MovieWriter(out, info) as writer:
            for i in range(4):
                writer.write(Frame(picture(i), 1001 + i))
        assert seconds(str(out)) == [Fraction(i, 25) for i in range(4)]
        assert probe(out).fps == 25

    def test_float_and_uint16_frames(self, tmp_path):
        out = tmp_path / "mixed.mp4"
        rgb = picture(0)
        with MovieWriter(out, movie_info()) as writer:
            writer.write(Frame(rgb.astype(np.uint16) * 257, 0, pts=0, time_base=TB))
            writer.write(Frame(rgb.astype(np.float32) / 255, 1, color_space="srgb", pts=512, time_base=TB))
        with open_source(out) as back:
            assert all(mean_error(f.image, rgb) < 3.0 for f in back.frames())

    def test_exception_leaves_nothing(self, media, tmp_path):
        out = tmp_path / "boom.mp4"
        with pytest.raises(RuntimeError, match="boom"):
            with open_source(media["cfr"]) as source, MovieWriter(out, source.info, source=media["cfr"]) as w:
                for frame in source.frames():
                    w.write(frame)
                    if frame.index == 3:
                        raise RuntimeError("boom")
        assert os.listdir(tmp_path) == []

    def test_temp_name_while_writing(self, tmp_path):
        with MovieWriter(tmp_path / "a.mov", movie_info()) as writer:
            writer.write(Frame(picture(0), 0, pts=0, time_base=TB))
            [temp] = os.listdir(tmp_path)
            assert temp.startswith(".tmp-") and temp.endswith("-a.mov")
        assert os.listdir(tmp_path) == ["a.mov"]

    def test_no_frames_is_an_error(self, tmp_path):
        with pytest.raises(OutputError, match="no frames"):
            with MovieWriter(tmp_path / "empty.mp4", movie_info()):
                pass
        assert os.listdir(tmp_path) == []

    def test_duplicate_timestamps_are_kept_one_tick_later(self, tmp_path):
        with MovieWriter(tmp_path / "o.mp4", movie_info()) as writer:
            for i, pts in enumerate((0, 512, 512, 500, 1536)):
                writer.write(Frame(picture(i), i, pts=pts, time_base=TB))
        assert writer.nudged == [(2, 512, 513), (3, 500, 514)]
        assert seconds(str(tmp_path / "o.mp4")) == [p * TB for p in (0, 512, 513, 514, 1536)]

    def test_wrong_frame_size(self, tmp_path):
        with pytest.raises(MediaError, match="is 97x63.*one frame size"):
            with MovieWriter(tmp_path / "o.mp4", movie_info()) as writer:
                writer.write(Frame(picture(0, 97, 63), 0))
        assert os.listdir(tmp_path) == []

    def test_unwritable_folder(self, tmp_path):
        blocker = tmp_path / "file.txt"
        blocker.write_text("x")
        with pytest.raises(OutputError, match="is a file, not a folder") as info:
            MovieWriter(blocker / "out.mp4", movie_info())
        assert "\n" not in str(info.value)

    @pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
    def test_read_only_folder(self, tmp_path):
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        try:
            with pytest.raises(OutputError, match="Permission denied"):
                MovieWriter(folder / "out.mp4", movie_info())
        finally:
            folder.chmod(0o755)

    def test_creates_missing_folders(self, tmp_path):
        with MovieWriter(tmp_path / "a" / "b" / "out.mp4", movie_info()) as writer:
            writer.write(Frame(picture(0), 0))
        assert os.path.isfile(tmp_path / "a" / "b" / "out.mp4")

    def test_codec_container_mismatch(self, tmp_path):
        with pytest.raises(ConfigError, match=r"prores_ks cannot be stored in \.mp4; write \.mov or \.mkv"):
            MovieWriter(tmp_path / "x.mp4", movie_info(), codec="prores")
        assert os.listdir(tmp_path) == []

    def test_bad_extension(self, tmp_path):
        with pytest.raises(ConfigError, match="extension .webm"):
            MovieWriter(tmp_path / "x.webm", movie_info())

    def test_refuses_to_overwrite_its_source(self, media):
        with pytest.raises(OutputError, match="its own source"):
            MovieWriter(media["cfr"], probe(media["cfr"]), source=media["cfr"])

    def test_replaces_existing_output(self, tmp_path):
        out = tmp_path / "o.mp4"
        out.write_bytes(b"old")
        with MovieWriter(out, movie_info()) as writer:
            writer.write(Frame(picture(0), 0))
        assert probe(out).frame_count == 1


class TestSequenceWriter:
    def info(self, **changes) -> VideoInfo:
        base = VideoInfo(path="plate.####.exr", kind="sequence", width=W, height=H,
                         fps=Fraction(24000, 1001), time_base=Fraction(1001, 24000), frame_count=3,
                         first_frame=1001, pix_fmt="rgbf32", bit_depth=16, codec="exr")
        return dataclasses.replace(base, **changes)

    @pytest.mark.parametrize("pattern", ["out.####.png", "out.%04d.png", "out.@@@@.png"])
    def test_numbering(self, tmp_path, pattern):
        with SequenceWriter(str(tmp_path / pattern), self.info()) as writer:
            paths = [writer.write(Frame(picture(i), 1001 + i)) for i in range(3)]
        assert sorted(os.listdir(tmp_path)) == ["out.1001.png", "out.1002.png", "out.1003.png"]
        assert paths == [str(tmp_path / f"out.{n}.png") for n in (1001, 1002, 1003)]
        with open_source(str(tmp_path / "out.####.png")) as back:
            assert back.info.first_frame == 1001
            frames = list(back.frames())
        assert [f.index for f in frames] == [1001, 1002, 1003]
        assert all(np.array_equal(f.image, picture(i)) for i, f in enumerate(frames))

    def test_padding_and_offset(self, tmp_path):
        with SequenceWriter(str(tmp_path / "v.%06d.png"), self.info(), offset=1001) as writer:
            writer.write(Frame(picture(0), 0))
        assert os.listdir(tmp_path) == ["v.001001.png"]

    def test_exr_half_round_trip(self, tmp_path):
        rng = np.random.default_rng(0)
        image = (rng.random((H, W, 3), dtype=np.float32) * 8).astype(np.float32)
        with SequenceWriter(str(tmp_path / "lin.####.exr"), self.info()) as writer:
            writer.write(Frame(image, 1001, color_space="linear"))
        back, color_space = read_image(str(tmp_path / "lin.1001.exr"))
        assert color_space == "linear" and back.dtype == np.float32
        np.testing.assert_allclose(back, image, rtol=1e-3, atol=1e-4)
        spec = oiio.ImageInput.open(str(tmp_path / "lin.1001.exr")).spec()
        assert spec.format == "half"
        assert spec.get_string_attribute("compression") == "zip"
        assert probe(str(tmp_path / "lin.####.exr")).fps == Fraction(24000, 1001)

    def test_exr_float_and_dwaa(self, tmp_path):
        image = np.linspace(-1, 100, H * W * 3, dtype=np.float32).reshape(H, W, 3)
        with SequenceWriter(str(tmp_path / "f.####.exr"), self.info(), bit_depth=32,
                            compression="dwaa") as writer:
            writer.write(Frame(image, 7, color_space="linear"))
        spec = oiio.ImageInput.open(str(tmp_path / "f.0007.exr")).spec()
        assert spec.format == "float" and spec.get_string_attribute("compression").startswith("dwaa")

    def test_exr_from_display_frame_is_linearised(self, tmp_path):
        with SequenceWriter(str(tmp_path / "d.####.exr"), self.info()) as writer:
            writer.write(Frame(picture(0), 1))
        back, color_space = read_image(str(tmp_path / "d.0001.exr"))
        assert color_space == "linear"
        assert np.array_equal(to_display_uint8(Frame(back, 1, color_space="linear")), picture(0))

    def test_png_16bit(self, tmp_path):
        rng = np.random.default_rng(1)
        image = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
        with SequenceWriter(str(tmp_path / "s.####.png"), self.info(pix_fmt="rgb48")) as writer:
            writer.write(Frame(image, 1001))
        back, _ = read_image(str(tmp_path / "s.1001.png"))
        assert back.dtype == np.uint16 and np.array_equal(back, image)

    def test_8bit_frame_to_16bit_file(self, tmp_path):
        with SequenceWriter(str(tmp_path / "s.####.tif"), self.info(), bit_depth=16) as writer:
            writer.write(Frame(picture(0), 1))
        back, _ = read_image(str(tmp_path / "s.0001.tif"))
        assert back.dtype == np.uint16 and np.array_equal(back, picture(0).astype(np.uint16) * 257)

    def test_dpx_keeps_10bit_source_depth(self, tmp_path):
        image = (np.arange(H * W * 3, dtype=np.uint32).reshape(H, W, 3) * 64 % 65536).astype(np.uint16)
        with SequenceWriter(str(tmp_path / "s.####.dpx"), self.info(bit_depth=10)) as writer:
            writer.write(Frame(image, 1))
        spec = oiio.ImageInput.open(str(tmp_path / "s.0001.dpx")).spec()
        assert spec.get_int_attribute("oiio:BitsPerSample") == 10
        back, _ = read_image(str(tmp_path / "s.0001.dpx"))
        assert np.abs(back.astype(int) - image).max() <= 64

    def test_float_frame_to_png_is_display_encoded(self, tmp_path):
        linear = read_image_linear(picture(2))
        with SequenceWriter(str(tmp_path / "s.####.png"), self.info(), bit_depth=8) as writer:
            writer.write(Frame(linear, 1, color_space="linear"))
        back, _ = read_image(str(tmp_path / "s.0001.png"))
        assert mean_error(back, picture(2)) < 0.5

    def test_skip_existing(self, tmp_path):
        pattern = str(tmp_path / "r.####.png")
        with SequenceWriter(pattern, self.info()) as writer:
            writer.write(Frame(picture(0), 1001))
            assert not writer.exists(1001)  # skip_existing off: never skip
        (tmp_path / ".tmp-r.1002.png").write_bytes(b"half")  # what a killed write leaves
        with SequenceWriter(pattern, self.info(), skip_existing=True) as writer:
            assert writer.exists(1001)
            assert not writer.exists(1002)
            assert not writer.exists(1003)

    def test_failed_write_leaves_no_temp(self, tmp_path):
        (tmp_path / "x.0001.png").mkdir()  # the final name is taken by a folder: rename fails
        with SequenceWriter(str(tmp_path / "x.####.png"), self.info()) as writer:
            with pytest.raises(OutputError, match="x.0001.png") as info:
                writer.write(Frame(picture(0), 1))
        assert "\n" not in str(info.value)
        assert leftovers(tmp_path) == []

    @pytest.mark.parametrize(("pattern", "kwargs", "match"), [
        ("out.png", {}, "no frame-number token"),
        ("out.####.gif", {}, "cannot write .gif"),
        ("out.####.png", {"bit_depth": 10}, "use one of 8, 16"),
        ("out.####.jpg", {"bit_depth": 16}, "use one of 8"),
        ("out.####.exr", {"compression": "lzma"}, "unknown EXR compression"),
    ])
    def test_bad_options(self, tmp_path, pattern, kwargs, match):
        with pytest.raises(ConfigError, match=match):
            SequenceWriter(str(tmp_path / pattern), self.info(), **kwargs)

    def test_unwritable_folder(self, tmp_path):
        (tmp_path / "file").write_text("x")
        with pytest.raises(OutputError, match="is a file, not a folder"):
            SequenceWriter(str(tmp_path / "file" / "out.####.exr"), self.info())

    def test_negative_number(self, tmp_path):
        with SequenceWriter(str(tmp_path / "n.####.png"), self.info()) as writer:
            with pytest.raises(OutputError, match=">= 0"):
                writer.write(Frame(picture(0), -1))


def read_image_linear(rgb: np.ndarray) -> np.ndarray:
    """An sRGB uint8 picture as scene-linear float32 (through an EXR written by the writer)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        info = VideoInfo(path="x", kind="sequence", width=rgb.shape[1], height=rgb.shape[0],
                         fps=Fraction(24), time_base=Fraction(1, 24), frame_count=1)
        with SequenceWriter(os.path.join(folder, "l.#.exr"), info, bit_depth=32) as writer:
            path = writer.write(Frame(rgb, 0))
        return read_image(path)[0]


class TestOpenWriter:
    def test_dispatch(self, tmp_path):
        info = movie_info()
        movie = open_writer(tmp_path / "o.mov", info)
        assert isinstance(movie, MovieWriter)
        movie.abort()
        assert isinstance(open_writer(str(tmp_path / "o.####.exr"), info), SequenceWriter)

    def test_movie_to_sequence_numbering(self, tmp_path):
        with open_writer(str(tmp_path / "o.####.png"), movie_info(), start_frame=1001) as writer:
            writer.write(Frame(picture(0), 0))
            writer.write(Frame(picture(1), 1))
        assert sorted(os.listdir(tmp_path)) == ["o.1001.png", "o.1002.png"]

    def test_sequence_keeps_its_numbers(self, tmp_path):
        info = movie_info(kind="sequence", first_frame=1001)
        with open_writer(str(tmp_path / "o.####.png"), info) as writer:
            writer.write(Frame(picture(0), 1001))
        with open_writer(str(tmp_path / "p.####.png"), info, start_frame=1) as writer:
            writer.write(Frame(picture(0), 1001))
        assert sorted(os.listdir(tmp_path)) == ["o.1001.png", "p.0001.png"]

    @pytest.mark.parametrize(("name", "kwargs", "match"), [
        ("o.mp4", {"skip_existing": True}, "apply to image sequences"),
        ("o.mp4", {"start_frame": 1001}, "apply to image sequences"),
        ("o.####.exr", {"codec": "libx264"}, "apply to movies"),
        ("o.####.exr", {"crf": 10}, "apply to movies"),
        ("o.txt", {}, "cannot tell what to write"),
    ])
    def test_bad_combinations(self, tmp_path, name, kwargs, match):
        with pytest.raises(ConfigError, match=match):
            open_writer(str(tmp_path / name), movie_info(), **kwargs)
