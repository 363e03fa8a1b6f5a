"""MovieSource.frames(start): skipping the decode of whole GOPs before ``start`` must give exactly the
frames (index, pts, pixels) of a full decode, whatever the GOP structure (closed, open, intra, VFR)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import av
import numpy as np
import pytest

from vfxswap.io import open_source, open_writer
from vfxswap.io.video import MovieSource

N = 40


def _picture(i: int) -> np.ndarray:
    y, x = np.mgrid[0:96, 0:160]
    return np.dstack([(x + 3 * i) % 256, (y * 2 + i) % 256, np.full_like(x, (40 + 9 * i) % 256)]).astype(np.uint8)


def _encode(path, codec: str, options: dict, pix_fmt: str = "yuv420p", pts: list[int] | None = None) -> str:
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=24, options=options)
        s.width, s.height, s.pix_fmt = 160, 96, pix_fmt
        for i in range(N):
            frame = av.VideoFrame.from_ndarray(_picture(i), format="rgb24").reformat(format=pix_fmt)
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return str(path)


@pytest.fixture(scope="module")
def movies(tmp_path_factory):
    d = tmp_path_factory.mktemp("seek")
    vfr = list(itertools.accumulate(itertools.islice(itertools.cycle([40, 42, 50, 33]), N - 1), initial=0))
    out = {
        "h264_bframes_mp4": _encode(d / "a.mp4", "libx264", {"g": "10", "bf": "3"}),
        "h264_open_gop_mkv": _encode(d / "b.mkv", "libx264", {"x264-params": "keyint=8:open-gop=1", "bf": "3"}),
        "hevc_open_gop_mp4": _encode(d / "c.mp4", "libx265", {"x265-params": "keyint=8:open-gop=1:log-level=error"}),
        "h264_ts": _encode(d / "d.ts", "libx264", {"g": "7", "bf": "2"}),
        "prores_mov": _encode(d / "e.mov", "prores_ks", {}, pix_fmt="yuv422p10le"),
        "h264_vfr_mkv": _encode(d / "f.mkv", "libx264", {"g": "6", "bf": "2"}, pts=vfr),
    }
    with open_source(out["h264_bframes_mp4"]) as src, open_writer(d / "g.mp4", src.info, codec="libx264") as w:
        for f in src.frames(start=5):  # starts after 0: an mp4 edit list
            w.write(f)
    out["edit_list_mp4"] = str(d / "g.mp4")
    return out


@pytest.mark.parametrize("name", ["h264_bframes_mp4", "h264_open_gop_mkv", "hevc_open_gop_mp4", "h264_ts",
                                  "prores_mov", "h264_vfr_mkv", "edit_list_mp4"])
def test_frames_from_start_equal_a_full_decode(movies, name):
    path = movies[name]
    with open_source(path) as src:
        full = [(f.index, f.pts, f.image.copy()) for f in src.frames()]
    for start in (1, 7, 13, len(full) // 2, len(full) - 1, len(full)):
        with open_source(path) as src:
            part = [(f.index, f.pts, f.image) for f in src.frames(start=start)]
        assert [p[:2] for p in part] == [f[:2] for f in full[start:]], (name, start)
        assert all(np.array_equal(a[2], b[2]) for a, b in zip(part, full[start:])), (name, start)


@pytest.mark.parametrize("name,skips", [("h264_bframes_mp4", True), ("prores_mov", True), ("h264_ts", True),
                                        ("hevc_open_gop_mp4", False), ("h264_open_gop_mkv", False)])
def test_closed_gops_are_skipped_open_ones_decoded_from_the_start(movies, name, skips):
    src = MovieSource(movies[name])
    try:
        found = src._skip_to_keyframe(20)
        assert (found is not None) == skips
        if found is not None:
            assert 0 < found[0] <= 20  # a keyframe after the first one: frames before it are not decoded
    finally:
        src.close()


@pytest.mark.parametrize("name,seeks", [("h264_bframes_mp4", True), ("prores_mov", True), ("hevc_open_gop_mp4", True),
                                        ("h264_ts", False), ("h264_vfr_mkv", False), ("edit_list_mp4", False)])
def test_constant_rate_mov_and_mp4_seek_to_the_keyframe(movies, name, seeks):
    """mov/mp4 with a sample table seek; the rest demux. (The open-GOP hevc seeks too, but its first
    decoded frame is not where a closed GOP would put it, so frames() decodes it from frame 0: the
    equality test above holds for it as for the rest.)"""
    src = MovieSource(movies[name])
    try:
        found = src._seek_to_keyframe(20)
        assert (found is not None) == seeks
        if found is not None:
            assert 0 < found[0] <= 20
    finally:
        src.close()
