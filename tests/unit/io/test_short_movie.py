"""A movie whose sample table promises more frames than decode (issue 15 item 7), and what is not one:
an edit list that hides pre-roll samples."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from vfxswap.errors import MediaError, ShortMediaError
from vfxswap.io import open_source, probe
from vfxswap.io.sequences import ImageSource


def _movie(path: Path, count: int = 24) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24, options={"g": "6"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


def test_corrupt_sample_table_is_short_after_the_frames_that_decode(tmp_path):
    data = bytearray(_movie(tmp_path / "good.mp4").read_bytes())
    table = data.index(b"stsz") + 16  # after type, version+flags, sample size and sample count
    for k in range(table + 4 * 3, table + 4 * 3 + 40):  # sample 3 on: sizes past the end of the file
        data[k] ^= 0xFF
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    assert probe(tmp_path / "bad.mp4").frame_count == 24
    seen = []
    with open_source(tmp_path / "bad.mp4") as src:
        with pytest.raises(ShortMediaError) as err:
            for frame in src.frames():
                seen.append(frame.index)
    assert seen == [0, 1, 2]
    assert (err.value.decoded, err.value.expected) == (3, 24)
    assert isinstance(err.value, MediaError) and "after 3 of 24 frames" in str(err.value)


def test_edit_list_pre_roll_is_not_counted(tmp_path):
    """A remux whose first 5 samples sit before the edit: 24 samples, 19 frames shown, no error."""
    _movie(tmp_path / "good.mp4")
    with av.open(str(tmp_path / "good.mp4")) as i, av.open(str(tmp_path / "cut.mp4"), "w") as o:
        out = o.add_stream_from_template(i.streams.video[0])
        step = int(1 / (i.streams.video[0].time_base * 24))
        for packet in i.demux(video=0):
            if packet.dts is None:
                continue
            packet.pts -= 5 * step
            packet.dts -= 5 * step
            packet.stream = out
            o.mux(packet)
    assert probe(tmp_path / "cut.mp4").frame_count == 19
    with open_source(tmp_path / "cut.mp4") as src:
        assert sum(1 for _ in src.frames()) == 19


def test_sequence_numbers_keep_their_gaps(tmp_path):
    import cv2

    for n in (1001, 1002, 1007):
        cv2.imwrite(str(tmp_path / f"p.{n}.png"), np.zeros((4, 4, 3), np.uint8))
    with ImageSource(str(tmp_path / "p.####.png")) as src:
        assert src.numbers == [1001, 1002, 1007]
