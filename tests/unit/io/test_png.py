"""The PNG structure check that keeps libpng's own complaints off stderr."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vfxswap.errors import MediaError
from vfxswap.io.png import png_problem
from vfxswap.io.sequences import read_image


@pytest.fixture
def png_bytes(astronaut) -> bytes:
    return cv2.imencode(".png", astronaut)[1].tobytes()


def test_a_whole_png_passes(png_bytes):
    assert png_problem(png_bytes) is None


@pytest.mark.parametrize("cut", [8, 20, 33, 5000, -13, -1])
def test_every_cut_is_found(png_bytes, cut):
    assert png_problem(png_bytes[:cut]).startswith("it is truncated")


def test_a_flipped_byte_is_found(png_bytes):
    data = bytearray(png_bytes)
    data[len(data) // 2] ^= 0x40
    assert png_problem(bytes(data)) == "it is damaged (the CRC of the IDAT chunk does not match)"


@pytest.mark.parametrize("data, why", [(b"", "empty"), (b"GIF89a" + bytes(100), "not a PNG file")])
def test_not_a_png(data, why):
    assert why in png_problem(data)


@pytest.mark.parametrize("damage", [lambda d: d[: len(d) // 2], lambda d: b"", lambda d: np.random.default_rng(1).bytes(3000)],
                         ids=["truncated", "zero-byte", "random-bytes"])
def test_read_image_gives_one_line_and_a_quiet_stderr(tmp_path, png_bytes, damage, capfd):
    path = tmp_path / "frame.1001.png"
    path.write_bytes(damage(png_bytes))
    with pytest.raises(MediaError, match=r"frame\.1001\.png") as info:
        read_image(str(path))
    assert "\n" not in str(info.value)
    assert capfd.readouterr().err == ""
