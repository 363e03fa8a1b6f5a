"""Joining movie chunks by stream copy: real chunks written from the sample plate with the io writers."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import av
import numpy as np
import pytest

from vfxswap.errors import ConfigError, MediaError, OutputError
from vfxswap.io import open_source, open_writer
from vfxswap.io.concat import concat_movies, frame_times

PLATE = Path(__file__).resolve().parents[3] / "samples" / "plate.mp4"
BOUNDS = [(0, 24), (24, 48), (48, 72)]  # plate frame indexes of the three chunks of the whole plate
LOSSLESS = [(0, 12), (12, 24), (24, 36)]  # lossless chunks: the first 36 frames (FFV1 is slow to write)


def decode(path: Path) -> tuple[list[np.ndarray], list[float]]:
    with av.open(str(path)) as c:
        frames = [(f.to_ndarray(format="rgb24"), float(f.time)) for f in c.decode(video=0)]
    return [f for f, _ in frames], [t for _, t in frames]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.size]


def timecode(path: Path) -> str | None:
    with av.open(str(path)) as c:
        meta = c.streams.video[0].metadata
        return next((v for k, v in meta.items() if k.lower() == "timecode"), None)


@pytest.fixture(scope="module")
def plate():
    with open_source(PLATE) as src:
        return src.info, list(src.frames())


def _write(path: Path, info, frames, **options) -> Path:
    with open_writer(path, info, **options) as writer:
        for frame in frames:
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def renders(plate, tmp_path_factory) -> dict[str, object]:
    """What convert would write: lossless chunks (each with the plate's audio over its span, as a
    `convert --frames` chunk has) and the same frames rendered in one go."""
    info, frames = plate
    folder = tmp_path_factory.mktemp("concat")
    ffv1 = [_write(folder / f"swap.{1001 + a}-{1000 + b}.mkv", info, frames[a:b], codec="ffv1", source=str(PLATE))
            for a, b in LOSSLESS]
    h264 = [_write(folder / f"swap.{1001 + a}-{1000 + b}.mov", info, frames[a:b], source=str(PLATE))
            for a, b in BOUNDS]
    single = _write(folder / "single.mkv", info, frames[:36], codec="ffv1", source=str(PLATE))
    return {"folder": folder, "ffv1": ffv1, "h264": h264, "single": single}


class TestConcatMovies:
    def test_lossless_chunks_join_into_the_single_render(self, renders, tmp_path):
        out = tmp_path / "swap.mkv"
        times = frame_times(PLATE)
        report = concat_movies(renders["ffv1"], out, audio_from=PLATE, starts=[times[a] for a, _ in LOSSLESS])
        assert report.frames == 36 and report.chunks == tuple(map(str, renders["ffv1"]))
        joined, joined_times = decode(out)
        single, single_times = decode(renders["single"])
        plate, _ = decode(PLATE)
        assert len(joined) == 36
        assert all(np.array_equal(a, b) for a, b in zip(joined, single))
        assert all(np.array_equal(a, b) for a, b in zip(joined, plate))  # FFV1 RGB is lossless
        assert joined_times == single_times  # timestamps continue across the cuts
        # the audio under those frames, copied once from the plate as a single render copies it
        assert audio_packets(out) == audio_packets(renders["single"]) and report.audio_packets > 0
        assert timecode(out) == "01:00:00:00"
        assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())

    def test_h264_chunks_are_copied_not_reencoded(self, renders, tmp_path):
        out = tmp_path / "swap.mov"
        concat_movies(renders["h264"], out, audio_from=PLATE)
        joined, joined_times = decode(out)
        parts = [decode(p) for p in renders["h264"]]
        assert all(np.array_equal(a, b) for a, b in zip(joined, [f for p in parts for f in p[0]], strict=True))
        assert joined_times == [t for p in parts for t in p[1]]
        assert np.allclose(np.diff(joined_times), 1 / 24)
        with av.open(str(out)) as c, av.open(str(renders["h264"][1])) as chunk:
            ours = [bytes(p) for p in c.demux(video=0) if p.size][24:48]
            theirs = [bytes(p) for p in chunk.demux(video=0) if p.size]
        assert ours == theirs  # packet for packet
        assert audio_packets(out) == audio_packets(PLATE)  # the whole plate: all of its audio
        assert timecode(out) == "01:00:00:00"

    def test_chunks_whose_times_restart_follow_on(self, plate, tmp_path):
        info, frames = plate
        chunks = []
        for a in (0, 4, 8):  # chunks timed from 0 each, as another tool may write them
            part = [dataclasses.replace(f, pts=f.pts - frames[a].pts) for f in frames[a:a + 4]]
            chunks.append(_write(tmp_path / f"c{a}.mkv", info, part, codec="ffv1"))
        out = tmp_path / "out.mkv"
        report = concat_movies(chunks, out)
        _, times = decode(out)
        assert report.audio_packets == 0 and len(times) == 12
        assert np.allclose(times, np.arange(12) / 24, atol=0.0011)  # Matroska stores milliseconds

    def test_a_hole_is_refused(self, renders, tmp_path):
        with pytest.raises(MediaError, match="a chunk is missing or out of order"):
            concat_movies([renders["ffv1"][0], renders["ffv1"][2]], tmp_path / "out.mkv")
        assert not (tmp_path / "out.mkv").exists() and not list(tmp_path.iterdir())

    def test_overlapping_chunks_are_refused(self, renders, tmp_path):
        times = frame_times(PLATE)
        with pytest.raises(MediaError, match="overlap the previous chunk"):
            concat_movies([renders["ffv1"][1], renders["ffv1"][0]], tmp_path / "out.mkv", starts=[times[12], times[0]])
        assert not list(tmp_path.iterdir())

    def test_mismatched_chunks_are_refused(self, plate, renders, tmp_path):
        info, frames = plate
        small = dataclasses.replace(info, width=640, height=360)
        resized = [dataclasses.replace(f, image=np.ascontiguousarray(f.image[::2, ::2])) for f in frames[12:16]]
        other = _write(tmp_path / "small.mkv", small, resized, codec="ffv1")
        with pytest.raises(MediaError, match=r"width 1280 vs 640; height 720 vs 360") as err:
            concat_movies([renders["ffv1"][0], other], tmp_path / "out.mkv")
        assert "\n" not in str(err.value)
        with pytest.raises(MediaError, match="codec ffv1 vs h264"):
            concat_movies([renders["ffv1"][0], renders["h264"][1]], tmp_path / "out.mkv")

    def test_bad_arguments(self, renders, tmp_path):
        with pytest.raises(ConfigError, match="no chunk movies"):
            concat_movies([], tmp_path / "out.mkv")
        with pytest.raises(ConfigError, match="extension .png"):
            concat_movies(renders["ffv1"], tmp_path / "out.png")
        with pytest.raises(MediaError, match="no such file"):
            concat_movies([tmp_path / "missing.mkv"], tmp_path / "out.mkv")
        with pytest.raises(ConfigError, match="cannot be stored in .mov"):
            concat_movies(renders["ffv1"][:1], tmp_path / "out.mov")
        with pytest.raises(OutputError, match="over one of its chunks"):
            concat_movies(renders["ffv1"][:1], renders["ffv1"][0])
        assert os.path.getsize(renders["ffv1"][0]) > 0

    def test_frame_times_are_the_plate_presentation_times(self):
        times = frame_times(PLATE)
        assert len(times) == 72 and times[0] == 0 and times[24] == 1
