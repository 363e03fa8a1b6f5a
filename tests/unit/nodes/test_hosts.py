"""vfxswap.hosts and vfxswap.io.display_view: the host-free helpers the node packs are built on."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from vfxswap import hosts
from vfxswap.config import ConvertConfig
from vfxswap.errors import ConfigError
from vfxswap.io import open_source
from vfxswap.io.display_view import DisplayView

SAMPLES = Path(__file__).resolve().parents[3] / "samples"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Test settings.

    Attributes:
        mode: ``fast`` or ``good``.
        strength, radius: how much, over how
            many pixels.
        limit: optional cap.
        label: a name.
        on: a switch.
    """

    mode: Literal["fast", "good"] = "good"
    strength: float = 0.5
    radius: int = 3
    limit: int | None = None
    label: str = "x"
    on: bool = False


class TestOptions:
    def test_kinds_defaults_and_help(self):
        specs = hosts.config_options(Settings)
        assert list(specs) == ["mode", "strength", "radius", "limit", "label", "on"]
        assert (specs["mode"].kind, specs["mode"].choices, specs["mode"].default) == ("choice", ("fast", "good"), "good")
        assert specs["strength"].kind == "float" and specs["radius"].kind == "int" and specs["on"].kind == "bool"
        assert specs["limit"].optional and specs["limit"].default == 0 and "0 means None" in specs["limit"].help
        assert specs["mode"].help == "fast or good."
        assert specs["radius"].help == specs["strength"].help == "how much, over how many pixels."

    def test_include_exclude_and_unknown_fields(self):
        assert list(hosts.config_options(Settings, include=["on", "mode"])) == ["on", "mode"]
        assert "label" not in hosts.config_options(Settings, exclude=["label"])
        with pytest.raises(ConfigError, match="Settings has no field nope"):
            hosts.config_options(Settings, include=["nope"])

    def test_values_back_to_a_config(self):
        s = hosts.config_from_options(Settings, {"limit": 0, "radius": 4.0, "mode": "fast", "other_input": 1})
        assert s == Settings(mode="fast", radius=4, limit=None)
        assert hosts.config_from_options(Settings, {"limit": 7}).limit == 7

    def test_convert_config_validation_still_applies(self):
        with pytest.raises(ConfigError, match="--feather must be >= 0"):
            hosts.config_from_options(ConvertConfig, {"feather": -1})
        with pytest.raises(ConfigError, match="needs reference images"):
            hosts.swap_config({"faces": "reference"}, has_reference=False)
        config = hosts.swap_config({"faces": "all", "identity_threshold": 0.0}, has_reference=True)
        assert config.faces == "reference" and config.identity_threshold is None

    def test_every_convert_field_has_a_host_form(self):
        specs = hosts.config_options(ConvertConfig)
        assert set(specs) == {f.name for f in dataclasses.fields(ConvertConfig)}
        assert specs["color"].choices and specs["color"].default in specs["color"].choices


class TestDisplayView:
    @pytest.mark.parametrize("view", ["", "Un-tone-mapped"])
    def test_inverse_then_forward_is_the_identity_on_display_values(self, view):
        dv = DisplayView("ACEScg", view=view)
        image = np.random.default_rng(1).uniform(0.01, 0.97, (32, 48, 3)).astype(np.float32)
        scene = dv.from_display(image)
        assert scene.dtype == np.float32 and not np.allclose(scene, image, atol=1e-2)
        assert np.abs(dv.to_display(scene) - image).max() < 1e-3

    def test_integer_pixels_are_code_values(self):
        dv = DisplayView("sRGB Encoded Rec.709 (sRGB)", view="Un-tone-mapped")
        grey = np.full((2, 2, 3), 128, np.uint8)
        assert np.allclose(dv.to_display(grey), 128 / 255, atol=1e-4)

    def test_defaults_and_errors(self):
        dv = DisplayView("linear")
        assert dv.display == "sRGB - Display" and dv.view.startswith("ACES")
        with pytest.raises(ConfigError, match="has no display 'Cinema'; use one of 'sRGB - Display'"):
            DisplayView("ACEScg", display="Cinema")
        with pytest.raises(ConfigError, match=r"expected an \(H, W, 3\) RGB image"):
            dv.to_display(np.zeros((4, 4), np.float32))


def test_movie_frames_are_numbered_from_start_frame():
    """``load_display_images`` numbers a movie like ``vfxswap convert`` does (frame i = 1001 + i)."""
    view = DisplayView("sRGB Encoded Rec.709 (sRGB)", view="Un-tone-mapped")
    images, numbers = hosts.load_display_images(SAMPLES / "plate.mp4", view, frames="1010-1011")
    assert numbers == [1010, 1011] and images.shape == (2, 720, 1280, 3)
    with open_source(SAMPLES / "plate.mp4") as src:
        frame = next(f.image for f in src.frames(start=9))
    assert np.abs(images[0] - frame / 255).max() < 1e-3


def test_saved_images_keep_an_ntsc_rate_exact(tmp_path):
    """A host's ``fps`` of 23.976 is stored as 24000/1001 (not 2997/125), like ``--rate 23.976``."""
    from vfxswap.io import probe

    pattern = tmp_path / "out.####.exr"
    hosts.save_display_images(np.full((2, 8, 8, 3), 0.5, np.float32), pattern, DisplayView("linear"), fps=23.976)
    assert probe(pattern).fps == Fraction(24000, 1001)
    with pytest.raises(ConfigError, match="must be > 0"):
        hosts.save_display_images(np.zeros((1, 8, 8, 3), np.float32), pattern, DisplayView("linear"), fps=0)
