"""The device-resident face path (``--compositor torch``) against the OpenCV path, on CPU tensors.

Both paths run the same model on the same frames through :func:`swap_frames`; they differ only in
who aligns, colour-matches, masks and blends. The torch ops are OpenCV's twins up to interpolation
round-off, so the composites agree to a couple of code values, and pixels no mask touches stay the
plate's, bit-exact.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from vfxswap.config import ConvertConfig
from vfxswap.convert.api import SwapModel, swap_frames
from vfxswap.convert.device_path import DeviceSwap, device_path_wanted
from vfxswap.convert.stages import srgb_decode
from vfxswap.io import open_source
from vfxswap.types import Frame

SAMPLES = Path(__file__).resolve().parents[3] / "samples"


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    with open_source(SAMPLES / "plate.mp4") as src:
        return [f for f, _ in zip(src.frames(), range(6))]


@pytest.fixture(scope="module")
def model(demo_model):
    with SwapModel(demo_model, ConvertConfig(backend="torch", device="cpu")) as opened:
        yield opened


def _both(frames, model, **settings):
    """(opencv works, torch works) for the same settings."""
    base = ConvertConfig(backend="torch", device="cpu", faces="largest", **settings)
    cpu = swap_frames(frames, model, dataclasses.replace(base, compositor="opencv"))
    dev = swap_frames(frames, model, dataclasses.replace(base, compositor="torch"))
    return cpu, dev


def _code_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.float64) - b.astype(np.float64))


class TestChoice:
    def test_auto_uses_the_device_path_only_on_a_gpu(self, model):
        assert device_path_wanted("torch", model.runner)
        assert not device_path_wanted("opencv", model.runner)
        assert device_path_wanted("auto", model.runner) == model.runner.device.startswith("cuda")

    def test_stage_list(self, model):
        config = ConvertConfig(compositor="torch")
        stages = model.stages(config, lambda n: True, model.smoother(config), model.colors(config))
        assert [s.name for s in stages] == ["detect", "track", "smooth", "device"]
        assert isinstance(stages[-1].fn, DeviceSwap)


class TestAgainstOpenCV:
    def test_uint8_frames(self, frames, model):
        cpu, dev = _both(frames, model)
        for f, a, b in zip(frames, cpu, dev):
            assert b.result.dtype == np.uint8 and b.result.shape == f.image.shape
            assert len(a.swaps) == len(b.swaps) >= 1
            diff = _code_diff(a.result, b.result)
            assert diff.max() <= 3 and diff.mean() < 0.02
            untouched = (a.matte == 0) & (b.matte == 0)
            assert np.array_equal(b.result[untouched], f.image[untouched])
            assert np.abs(a.matte - b.matte).max() < 2e-3
            np.testing.assert_allclose(b.swaps[0].aligned.image, a.swaps[0].aligned.image, atol=1.01 / 255)
            np.testing.assert_allclose(b.swaps[0].swapped, a.swaps[0].swapped, atol=2e-3)

    @pytest.mark.parametrize("depth", ["uint16", "float32-linear"])
    def test_deep_frames(self, frames, model, depth):
        if depth == "uint16":
            deep = [dataclasses.replace(f, image=f.image.astype(np.uint16) * 257) for f in frames[:3]]
            tol = 3 * 257
        else:
            deep = [dataclasses.replace(f, image=srgb_decode(f.image.astype(np.float32) / 255) * 1.5,
                                        color_space="linear") for f in frames[:3]]
            tol = 0.02
        cpu, dev = _both(deep, model)
        for f, a, b in zip(deep, cpu, dev):
            assert b.result.dtype == f.image.dtype
            assert _code_diff(a.result, b.result).max() <= tol
            untouched = (a.matte == 0) & (b.matte == 0)
            assert np.array_equal(b.result[untouched], f.image[untouched])

    @pytest.mark.parametrize("color,blend", [("mkl", "laplacian"), ("sot", "poisson")])
    def test_other_methods_on_device_or_host(self, frames, model, color, blend):
        """Methods without a device version (sot, poisson) run on the host on face-sized data."""
        cpu, dev = _both(frames[:3], model, color=color, blend=blend, erode=2, feather=6)
        for a, b in zip(cpu, dev):
            diff = _code_diff(a.result, b.result)
            assert diff.max() <= 6 and diff.mean() < 0.05

    def test_color_smoothing_and_handles_match(self, frames, model):
        cpu, dev = _both(frames, model, color="rct", color_smooth=3)
        for a, b in zip(cpu, dev):
            assert _code_diff(a.result, b.result).max() <= 3

    def test_part_times_are_reported(self, frames, model):
        config = ConvertConfig(backend="torch", device="cpu", compositor="torch")
        stage = DeviceSwap(model.runner, config, model.card, model.colors(config), want_matte=False)
        works = [w for w in swap_frames(frames[:2], model, config)]
        assert all(w.swaps for w in works)
        list(stage(works))
        assert stage.seconds > 0 and all(v >= 0 for v in stage.part_seconds.values())
        assert set(stage.part_seconds) == {"upload", "align", "swap", "composite", "download"}


@pytest.mark.gpu
class TestOnCuda:
    def test_device_path_on_cuda_matches_opencv(self, frames, demo_model):
        """The whole face path on CUDA tensors (fp16 model) against OpenCV with the same runner."""
        config = ConvertConfig(backend="torch", device="cuda", faces="largest")
        with SwapModel(demo_model, config) as cuda_model:
            assert device_path_wanted("auto", cuda_model.runner)
            cpu = swap_frames(frames[:3], cuda_model, dataclasses.replace(config, compositor="opencv"))
            dev = swap_frames(frames[:3], cuda_model, dataclasses.replace(config, compositor="auto"))
        for f, a, b in zip(frames, cpu, dev):
            assert b.result.dtype == np.uint8 and len(a.swaps) == len(b.swaps) >= 1
            assert _code_diff(a.result, b.result).max() <= 3
            untouched = (a.matte == 0) & (b.matte == 0)
            assert np.array_equal(b.result[untouched], f.image[untouched])
