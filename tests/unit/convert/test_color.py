"""Colour matching (vfxswap.convert.color) on synthetic faces with known statistics.

The "faces" are 128² crops: a smooth, correlated colour field (blurred Gaussian noise through a
3x3 mixing matrix around a mean colour) inside an elliptical mask, and saturated junk outside it,
so any leak of masked-out pixels into the statistics shows up at once.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vfxswap.convert.color import (
    COLOR_METHODS,
    ColorMethod,
    ColorParams,
    ColorSmoother,
    color_method,
    lab_stats,
    match_color,
    smoothable_methods,
)
from vfxswap.errors import ConfigError

S = 128
ALL = ["rct", "lct", "mkl", "hist", "idt", "sot", "none"]
PARAMETRIC = ["rct", "lct", "mkl", "hist"]


def _field(mean, mix, seed: int, size: int = S) -> np.ndarray:
    """``(size, size, 3)`` float32 in [0, 1]: ``mean + mix @ smooth_noise`` per pixel."""
    noise = np.random.default_rng(seed).standard_normal((size, size, 3)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 2.0) * 3.0  # unit-ish variance, spatially smooth
    return np.clip(np.asarray(mean, np.float32) + noise @ np.asarray(mix, np.float32).T, 0, 1).astype(np.float32)


def _junk(image: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
    """``image`` with wild colours (saturated random noise) wherever ``mask <= 0.5``."""
    out = image.copy()
    wild = np.random.default_rng(seed).choice([0.0, 1.0], size=image.shape).astype(np.float32)
    out[mask <= 0.5] = wild[mask <= 0.5]
    return out


@pytest.fixture(scope="module")
def mask() -> np.ndarray:
    """An elliptical face mask with a feathered edge (values in [0, 1])."""
    yy, xx = np.mgrid[:S, :S]
    r = np.sqrt(((xx - S / 2) / (S * 0.36)) ** 2 + ((yy - S / 2) / (S * 0.45)) ** 2)
    return np.clip((1.15 - r) / 0.3, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def source(mask) -> np.ndarray:
    """The "swapped face": warm, one colour axis dominant."""
    face = _field([0.62, 0.45, 0.38], [[0.07, 0.02, 0.0], [0.02, 0.045, 0.01], [0.0, 0.01, 0.035]], seed=1)
    return _junk(face, mask, seed=11)


@pytest.fixture(scope="module")
def target(mask) -> np.ndarray:
    """The "plate face": cooler and differently correlated."""
    face = _field([0.40, 0.50, 0.56], [[0.05, 0.0, 0.015], [0.01, 0.065, 0.0], [0.02, 0.01, 0.055]], seed=2)
    return _junk(face, mask, seed=12)


def _px(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return image[mask > 0.5].astype(np.float64)


def _quantiles(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.quantile(_px(image, mask), [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)


class TestEveryMethod:
    @pytest.mark.parametrize("name", ALL)
    def test_float32_same_shape_in_range(self, name, source, target, mask):
        out = match_color(name, source, target, mask)
        assert out.shape == source.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0

    @pytest.mark.parametrize("name", ALL)
    def test_pixels_outside_the_mask_do_not_matter(self, name, source, target, mask):
        out = match_color(name, source, target, mask)
        other = match_color(name, _junk(source, mask, seed=21), _junk(target, mask, seed=22), mask)
        inside = mask > 0.5
        np.testing.assert_allclose(other[inside], out[inside], atol=1e-6)

    @pytest.mark.parametrize("name", ALL)
    def test_deterministic(self, name, source, target, mask):
        np.testing.assert_array_equal(match_color(name, source, target, mask),
                                      match_color(name, source, target, mask))

    @pytest.mark.parametrize("name", ALL)
    def test_inputs_untouched_and_uint8_accepted(self, name, source, target, mask):
        s, t = source.copy(), target.copy()
        match_color(name, s, t, mask)
        np.testing.assert_array_equal(s, source)
        np.testing.assert_array_equal(t, target)
        out = match_color(name, (source * 255).round().astype(np.uint8), (target * 255).round().astype(np.uint8),
                          (mask * 255).astype(np.uint8))
        assert out.dtype == np.float32
        np.testing.assert_allclose(_px(out, mask).mean(0), _px(match_color(name, source, target, mask), mask).mean(0),
                                   atol=0.01)

    @pytest.mark.parametrize("name", ALL)
    def test_empty_mask_leaves_the_face_alone(self, name, source, target):
        out = match_color(name, source, target, np.zeros((S, S), np.float32))
        np.testing.assert_array_equal(out, source)

    def test_registry(self):
        assert set(ALL) <= set(COLOR_METHODS.names())
        with pytest.raises(ConfigError, match="already registered"):
            COLOR_METHODS.register("rct")(type(color_method("rct")))
        with pytest.raises(ConfigError, match="hist, idt, lct, mkl, none, rct, sot"):
            match_color("reinhard", np.zeros((S, S, 3), np.float32), np.zeros((S, S, 3), np.float32),
                        np.ones((S, S), np.float32))
        assert smoothable_methods() == ["hist", "lct", "mkl", "none", "rct"]

    def test_bad_shapes_are_refused(self, source, target, mask):
        with pytest.raises(ConfigError, match="one shape"):
            match_color("rct", source, target[:64, :64], mask)
        with pytest.raises(ConfigError, match="mask"):
            match_color("lct", source, target, mask[:64])
        with pytest.raises(ConfigError, match="RGB"):
            match_color("mkl", source[..., 0], target, mask)
        with pytest.raises(ConfigError, match="float32"):
            match_color("hist", source.astype(np.float64), target, mask)


class TestParams:
    @pytest.mark.parametrize("name", PARAMETRIC)
    def test_estimate_then_apply_is_transfer(self, name, source, target, mask):
        method = color_method(name)
        params = method.estimate(source, target, mask)
        assert params.usable and params.pixels == int((mask > 0.5).sum())
        np.testing.assert_array_equal(method.apply(source, params), method.transfer(source, target, mask))
        assert f"method={name!r}" in repr(params) and "source={" in repr(params)

    def test_another_methods_params_are_refused(self, source, target, mask):
        params = color_method("rct").estimate(source, target, mask)
        with pytest.raises(ConfigError, match="'lct' cannot apply"):
            color_method("lct").apply(source, params)

    def test_mismatched_sides_are_refused(self):
        with pytest.raises(ConfigError, match="same keys"):
            ColorParams("rct", {"mean": np.zeros(3)}, {}, 100)
        with pytest.raises(ConfigError, match="shape"):
            ColorParams("rct", {"mean": np.zeros(3)}, {"mean": np.zeros(4)}, 100)

    def test_an_instance_can_be_passed(self, source, target, mask):
        from vfxswap.convert.color import IterativeDistributionTransfer

        few = IterativeDistributionTransfer(iterations=2, seed=3)
        assert isinstance(few, ColorMethod) and "iterations=2" in repr(few)
        assert match_color(few, source, target, mask).shape == source.shape
        with pytest.raises(ConfigError, match="iterations"):
            IterativeDistributionTransfer(iterations=0)


class TestRct:
    def test_lab_mean_and_std_match(self, source, target, mask):
        out = match_color("rct", source, target, mask)
        mean, std = lab_stats(out, mask)
        want_mean, want_std = lab_stats(target, mask)
        np.testing.assert_allclose(mean, want_mean, atol=0.3)  # LAB units (L 0..100)
        np.testing.assert_allclose(std, want_std, rtol=0.03)
        np.testing.assert_allclose(_px(out, mask).mean(0), _px(target, mask).mean(0), atol=0.005)


class TestLct:
    def test_rgb_mean_and_covariance_match(self, source, target, mask):
        out = match_color("lct", source, target, mask)
        np.testing.assert_allclose(_px(out, mask).mean(0), _px(target, mask).mean(0), atol=1e-3)
        cov_t = np.cov(_px(target, mask).T)
        np.testing.assert_allclose(np.cov(_px(out, mask).T), cov_t, atol=0.02 * np.abs(cov_t).max())


class TestMkl:
    def test_rgb_mean_and_covariance_match(self, source, target, mask):
        out = match_color("mkl", source, target, mask)
        np.testing.assert_allclose(_px(out, mask).mean(0), _px(target, mask).mean(0), atol=1e-3)
        cov_t = np.cov(_px(target, mask).T)
        np.testing.assert_allclose(np.cov(_px(out, mask).T), cov_t, atol=0.02 * np.abs(cov_t).max())

    def test_moves_colours_less_than_lct(self, source, target, mask):
        """MKL is the optimal-transport (least squared displacement) affine map between the Gaussians."""
        src = _px(source, mask)

        def displacement(name: str) -> float:
            return float(((_px(match_color(name, source, target, mask), mask) - src) ** 2).sum(1).mean())

        assert displacement("mkl") < displacement("lct")


class TestHist:
    def test_per_channel_quantiles_match(self, source, target, mask):
        out = match_color("hist", source, target, mask)
        np.testing.assert_allclose(_quantiles(out, mask), _quantiles(target, mask), atol=0.004)
        before = np.abs(_quantiles(source, mask) - _quantiles(target, mask)).max()
        assert before > 0.1


class TestIdt:
    def test_moves_the_distribution_to_the_target(self, source, target, mask):
        out = match_color("idt", source, target, mask)
        np.testing.assert_allclose(_px(out, mask).mean(0), _px(target, mask).mean(0), atol=0.005)
        np.testing.assert_allclose(_quantiles(out, mask), _quantiles(target, mask), atol=0.01)
        cov_t = np.cov(_px(target, mask).T)
        np.testing.assert_allclose(np.cov(_px(out, mask).T), cov_t, atol=0.05 * np.abs(cov_t).max())

    def test_seed_changes_the_directions(self, source, target, mask):
        from vfxswap.convert.color import IterativeDistributionTransfer

        a = IterativeDistributionTransfer(seed=1).transfer(source, target, mask)
        b = IterativeDistributionTransfer(seed=2).transfer(source, target, mask)
        assert not np.array_equal(a, b)
        np.testing.assert_allclose(_px(a, mask).mean(0), _px(b, mask).mean(0), atol=0.005)

    def test_bimodal_target(self, source, target, mask):
        _check_bimodal("idt", source, target, mask)

    def test_pixel_subset_ignores_the_outside_and_still_matches(self, source, target, mask):
        """With fewer ``samples`` than masked pixels (as at 256²) the maps come from a seeded subset."""
        from vfxswap.convert.color import IterativeDistributionTransfer

        method = IterativeDistributionTransfer(samples=1000)
        out = method.transfer(source, target, mask)
        other = method.transfer(_junk(source, mask, seed=31), _junk(target, mask, seed=32), mask)
        np.testing.assert_allclose(other[mask > 0.5], out[mask > 0.5], atol=1e-6)
        np.testing.assert_allclose(_px(out, mask).mean(0), _px(target, mask).mean(0), atol=0.005)


def _check_bimodal(name: str, source, target, mask) -> None:
    """A half-shadowed plate face: a non-Gaussian target that linear methods cannot reach."""
    shadowed = target.copy()
    shadowed[:, : S // 2] *= np.float32([0.5, 0.55, 0.8])
    levels = np.linspace(0.05, 0.95, 19)

    def error(image: np.ndarray) -> float:
        q = np.quantile(_px(image, mask), levels, axis=0)
        return float(np.abs(q - np.quantile(_px(shadowed, mask), levels, axis=0)).mean())

    assert error(match_color(name, source, shadowed, mask)) < 0.004
    assert error(match_color("mkl", source, shadowed, mask)) > 0.02


class TestSot:
    def test_moves_the_distribution_to_the_target(self, source, target, mask):
        out = match_color("sot", source, target, mask)
        np.testing.assert_allclose(_px(out, mask).mean(0), _px(target, mask).mean(0), atol=0.005)
        np.testing.assert_allclose(_quantiles(out, mask), _quantiles(target, mask), atol=0.01)
        cov_t = np.cov(_px(target, mask).T)
        np.testing.assert_allclose(np.cov(_px(out, mask).T), cov_t, atol=0.05 * np.abs(cov_t).max())

    def test_bimodal_target(self, source, target, mask):
        _check_bimodal("sot", source, target, mask)


class TestNone:
    def test_identity(self, source, target, mask):
        np.testing.assert_array_equal(match_color("none", source, target, mask), source)
        params = color_method("none").estimate(source, target, mask)
        np.testing.assert_array_equal(color_method("none").apply(source, params), source)


def _flickering_plates(target: np.ndarray, frames: int, seed: int = 5) -> list[np.ndarray]:
    """The plate face with a random per-frame exposure and tint (as grain/compression/mask noise would)."""
    rng = np.random.default_rng(seed)
    gains = 1.0 + rng.normal(0.0, 0.06, size=(frames, 3))
    return [np.clip(target * g.astype(np.float32), 0, 1) for g in gains]


class TestColorSmoother:
    @pytest.mark.parametrize("name", PARAMETRIC)
    def test_window_reduces_flicker(self, name, source, target, mask):
        plates = _flickering_plates(target, 24)

        def flicker(window: int) -> float:
            smoother = ColorSmoother(name, window)
            means = [_px(smoother(source, p, mask, track_id=7), mask).mean(0) for p in plates]
            return float(np.std(means, axis=0).mean())

        single, smoothed = flicker(1), flicker(8)
        assert single > 0.005  # the plates really do flicker, and window 1 follows them
        assert smoothed < 0.5 * single

    @pytest.mark.parametrize("name", PARAMETRIC)
    def test_steady_plate_gives_the_per_frame_result(self, name, source, target, mask):
        smoother = ColorSmoother(name, 5)
        for _ in range(3):
            out = smoother(source, target, mask, track_id=1)
        np.testing.assert_allclose(out, match_color(name, source, target, mask), atol=1e-5)

    def test_tracks_are_kept_apart(self, source, target, mask):
        other_plate = np.clip(target * np.float32([1.3, 0.8, 0.7]), 0, 1)
        smoother = ColorSmoother("lct", 4)
        for _ in range(4):
            a = smoother(source, target, mask, track_id="a")
            smoother(source, other_plate, mask, track_id="b")
        np.testing.assert_allclose(a, match_color("lct", source, target, mask), atol=1e-5)
        smoother.reset("a")
        smoother(source, other_plate, mask, track_id="a")  # a fresh history: only this frame
        np.testing.assert_allclose(smoother(source, other_plate, mask, track_id="a"),
                                   match_color("lct", source, other_plate, mask), atol=1e-5)
        assert "window=4" in repr(smoother)

    def test_untracked_faces_and_empty_masks_are_per_frame(self, source, target, mask):
        smoother = ColorSmoother("rct", 6)
        dark = target * np.float32(0.5)
        smoother(source, target, mask, track_id=None)
        np.testing.assert_array_equal(smoother(source, dark, mask, track_id=None),
                                      match_color("rct", source, dark, mask))
        empty = np.zeros_like(mask)
        np.testing.assert_array_equal(smoother(source, target, empty, track_id=3), source)
        np.testing.assert_allclose(smoother(source, dark, mask, track_id=3), match_color("rct", source, dark, mask),
                                   atol=1e-5)  # the empty frame left no history

    @pytest.mark.parametrize("name", ["idt", "sot"])
    def test_nonparametric_methods_refuse_a_window(self, name, source, target, mask):
        with pytest.raises(ConfigError, match="hist, lct, mkl, none, rct"):
            ColorSmoother(name, 3)
        np.testing.assert_array_equal(ColorSmoother(name, 1)(source, target, mask, 0),
                                      match_color(name, source, target, mask))

    def test_bad_options(self):
        with pytest.raises(ConfigError, match=">= 1"):
            ColorSmoother("rct", 0)
        with pytest.raises(ConfigError, match="choose one of"):
            ColorSmoother("nope", 2)
