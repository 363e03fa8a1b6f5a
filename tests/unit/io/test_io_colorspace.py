"""vfxswap.io.colorspace.to_display_uint8 on synthetic frames."""

from __future__ import annotations

import numpy as np
import pytest

from vfxswap.errors import ConfigError
from vfxswap.io import to_display_uint8
from vfxswap.types import Frame


class TestToDisplayUint8:
    def test_uint8_is_returned_as_is(self):
        image = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
        assert to_display_uint8(Frame(image=image, index=0)) is image

    def test_uint16_rounds_to_8_bit(self):
        image = np.array([[[0, 257 * 128, 65535], [127, 128, 257 * 200 + 128]]], np.uint16)
        out = to_display_uint8(Frame(image=image, index=0))
        assert out.dtype == np.uint8 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, [[[0, 128, 255], [0, 0, 200]]])

    def test_linear_float_is_srgb_encoded(self):
        image = np.array([[[0.18, 0.0, 1.0], [-0.5, 4.0, 0.0031308], [np.nan, np.inf, -np.inf]]],
                         np.float32)
        frame = Frame(image=image, index=0, color_space="linear")
        out = to_display_uint8(frame)
        assert out.dtype == np.uint8 and out.shape == (1, 3, 3) and out.flags.c_contiguous
        np.testing.assert_allclose(out.astype(int), [[[118, 0, 255], [0, 255, 10], [0, 255, 0]]],
                                   atol=1)
        assert image[0, 0, 0] == np.float32(0.18)  # the frame is not modified

    def test_srgb_float_is_scaled(self):
        image = np.array([[[0.5, 1.5, -1.0]]], np.float32)
        out = to_display_uint8(Frame(image=image, index=0, color_space="srgb"))
        np.testing.assert_array_equal(out, [[[128, 255, 0]]])

    @pytest.mark.parametrize(("dtype", "color_space"), [
        (np.uint8, "srgb"), (np.uint16, "srgb"), (np.float32, "srgb"), (np.float32, "linear")])
    def test_non_contiguous_input_gives_contiguous_output(self, dtype, color_space):
        image = np.full((4, 10, 3), 1, dtype)[:, ::2]
        out = to_display_uint8(Frame(image=image, index=0, color_space=color_space))
        assert out.flags.c_contiguous and out.shape == (4, 5, 3) and out.dtype == np.uint8

    def test_unknown_colour_space(self):
        frame = Frame(image=np.zeros((2, 2, 3), np.float32), index=0, color_space="no such space")
        with pytest.raises(ConfigError, match="unknown colour space"):
            to_display_uint8(frame)
