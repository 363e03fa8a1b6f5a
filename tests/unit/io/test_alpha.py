"""Alpha channels: the converter's matte as the alpha of ProRes 4444, FFV1 and EXR/PNG/TIFF/DPX outputs."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import av
import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from vfxswap.errors import ConfigError
from vfxswap.io import open_writer
from vfxswap.io.video import plan_encoder
from vfxswap.types import Frame

from test_io_writers import movie_info, picture

W, H = 96, 64


def matte() -> np.ndarray:
    """(H, W) float32: a hard square, a half-transparent band and a ramp."""
    a = np.zeros((H, W), np.float32)
    a[10:30, 20:60] = 1.0
    a[30:34, 20:60] = 0.5
    a[40:, :] = np.linspace(0, 1, W, dtype=np.float32)
    return a


def frames(n: int = 3) -> list[Frame]:
    tb = Fraction(1, 24)
    return [Frame(image=picture(i), index=i, pts=i, time_base=tb, alpha=matte() if i else None) for i in range(n)]


def decoded_rgba(path: str, bits: int) -> list[np.ndarray]:
    """(H, W, 4) float64 RGBA in [0, 1] of each frame, decoded at 8 or 16 bits."""
    fmt, top = ("rgba", 255) if bits == 8 else ("rgba64le", 65535)
    with av.open(path) as c:
        return [f.to_ndarray(format=fmt).astype(np.float64) / top for f in c.decode(video=0)]


@pytest.mark.parametrize("codec,ext,pix_fmt,tolerance", [("prores_ks", "mov", "yuva444p10le", 4 / 1023),
                                                         ("ffv1", "mkv", "bgra", 0.5 / 255)])
def test_movie_alpha_is_the_matte(tmp_path, codec, ext, pix_fmt, tolerance):
    out = str(tmp_path / f"a.{ext}")
    with open_writer(out, movie_info(), codec=codec, alpha=True) as w:
        assert w.plan.pix_fmt == pix_fmt
        for f in frames():
            w.write(f)
    back = decoded_rgba(out, 8 if codec == "ffv1" else 16)
    assert len(back) == 3
    assert np.abs(back[0][..., 3]).max() == 0  # a frame without a matte is fully transparent
    for rgba in back[1:]:
        assert np.abs(rgba[..., 3] - matte()).max() <= tolerance
    if codec == "ffv1":  # lossless: RGB untouched by the alpha (not premultiplied)
        assert np.array_equal(np.round(back[1][..., :3] * 255).astype(np.uint8), picture(1))


@pytest.mark.parametrize("ext", ["png", "tif", "dpx", "exr"])
def test_sequence_alpha_is_the_matte_and_rgb_is_not_premultiplied(tmp_path, ext):
    pattern = str(tmp_path / f"a.####.{ext}")
    info = dataclasses.replace(movie_info(), kind="sequence", first_frame=0)
    with open_writer(pattern, info, alpha=True) as w:
        for f in frames(2):
            w.write(f)
    buf = oiio.ImageBuf(str(tmp_path / f"a.0001.{ext}"))
    assert buf.spec().channelnames == ("R", "G", "B", "A")
    pixels = buf.get_pixels(oiio.FLOAT)
    step = 2.0**-11 if ext == "exr" else 0.5 / 255  # half float: 11 significant bits
    assert np.abs(pixels[..., 3] - matte()).max() <= step + 1e-6
    if ext == "png":  # cv2 reads PNG as stored (OIIO would premultiply on read)
        bgra = cv2.imread(str(tmp_path / "a.0001.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(bgra[..., 2::-1], picture(1))


@pytest.mark.parametrize("path,codec,match", [("x.mp4", "libx264", "cannot carry an alpha"),
                                              ("x.mov", "dnxhd", "cannot carry an alpha"),
                                              ("x.####.jpg", None, "no alpha channel")])
def test_formats_without_alpha_are_refused(tmp_path, path, codec, match):
    with pytest.raises(ConfigError, match=match):
        open_writer(str(tmp_path / path), movie_info(width=1280, height=720), alpha=True,
                    **({"codec": codec} if codec else {}))


def test_prores_alpha_needs_a_4444_profile():
    assert plan_encoder(movie_info(), codec="prores_ks", alpha=True).options["profile"] == "4"
    with pytest.raises(ConfigError, match="no alpha channel"):
        plan_encoder(movie_info(), codec="prores_ks", profile="hq", alpha=True)


def test_frame_alpha_must_match_the_image():
    with pytest.raises(ConfigError, match="Frame.alpha"):
        Frame(image=picture(0), index=0, alpha=np.zeros((H + 1, W), np.float32))
