"""FaceSpace: face crops between a plate's colour space and the model's, through OpenColorIO."""

from __future__ import annotations

import numpy as np
import PyOpenColorIO as ocio
import pytest

from vfxswap.errors import ConfigError
from vfxswap.io.colorspace import FaceSpace


def srgb_encode(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def test_acescg_grey_becomes_srgb_mid_grey_and_back():
    space = FaceSpace("ACEScg")
    grey = np.full((8, 8, 3), 0.18, np.float32)
    model = space.to_model(grey)
    assert model.dtype == np.float32 and model.shape == (8, 8, 3)
    assert np.allclose(model, srgb_encode(0.18), atol=1e-4)  # a neutral stays neutral: 0.4613
    assert np.allclose(space.from_model(model), grey, atol=1e-5)


def test_acescg_primaries_match_opencolorio_directly():
    rng = np.random.default_rng(1)
    crop = rng.random((16, 16, 3), dtype=np.float32) * 0.8
    config = ocio.Config.CreateFromFile("ocio://cg-config-latest")
    expected = crop.copy()
    config.getProcessor("ACEScg", "sRGB - Texture").getDefaultCPUProcessor().applyRGB(expected)
    assert np.allclose(FaceSpace("lin_ap1_scene").to_model(crop), np.clip(expected, 0, 1), atol=1e-6)


def test_integer_plates_are_code_values_over_max():
    space = FaceSpace("srgb")  # the model's own space: identity on code values
    crop8 = np.arange(0, 256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert np.allclose(space.to_model(crop8), crop8 / 255.0, atol=1e-6)
    crop16 = (crop8.astype(np.uint16) * 257)
    assert np.allclose(space.to_model(crop16), crop8 / 255.0, atol=1e-6)
    assert np.array_equal(space.display(crop8), crop8)


def test_log_plate_from_the_studio_config():
    space = FaceSpace("ARRI LogC4", config="ocio://studio-config-latest")
    assert space.plate_space == "ARRI LogC4" and space.model_space == "sRGB Encoded Rec.709 (sRGB)"
    code = np.full((4, 4, 3), 0.3, np.float32)  # a LogC4 code value of a mid grey
    model = space.to_model(code)
    assert 0.4 < model[0, 0, 0] < 0.65 and np.allclose(model, model[0, 0, 0], atol=1e-4)
    assert np.allclose(space.from_model(model), code, atol=1e-4)


def test_highlights_above_model_white_are_clipped_in_the_patch_only():
    space = FaceSpace("linear")
    hot = np.full((2, 2, 3), 4.0, np.float32)
    assert np.allclose(space.to_model(hot), 1.0)


@pytest.mark.parametrize("kwargs,match", [
    ({"plate_space": "NoSuchSpace"}, "no colour space 'NoSuchSpace'"),
    ({"plate_space": "ACEScg", "config": "/no/such/config.ocio"}, "cannot load OCIO config"),
    ({"plate_space": "ACEScg", "model_space": "bogus"}, "for the model"),
])
def test_bad_names_and_configs_are_one_line_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match) as info:
        FaceSpace(**kwargs)
    assert "\n" not in str(info.value)
