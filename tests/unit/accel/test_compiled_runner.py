"""The torch.compile runner on the CPU with the demo model: two inductor compiles in all (buckets 4 and 1)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from vfxswap.accel.compiled import CompiledRunner, bucket_for, bucket_sizes
from vfxswap.accel.runtime import TOLERANCES, TorchRunner, open_runner
from vfxswap.errors import ConfigError

R = 64  # the demo model's resolution


@pytest.fixture(scope="module")
def compiled(demo_model):
    """max_batch 4: bucket 4 is compiled and checked at open; bucket 1 on first use."""
    if not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
        pytest.skip("torch.compile (inductor) on the CPU needs a C++ compiler on PATH")
    with CompiledRunner(demo_model, device="cpu", max_batch=4) as runner:
        yield runner


@pytest.fixture(scope="module")
def eager(demo_model):
    return TorchRunner(demo_model, device="cpu")


def faces(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, R, R, generator=torch.Generator().manual_seed(seed))


def assert_close(got, expected, atol=TOLERANCES["fp32"]):
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape and a.dtype == torch.float32
        assert float((a - b).abs().max()) <= atol


class TestBuckets:
    @pytest.mark.parametrize("max_batch, expected", [(1, [1]), (4, [1, 2, 4]), (6, [1, 2, 4, 6]), (8, [1, 2, 4, 8])])
    def test_sizes(self, max_batch, expected):
        assert bucket_sizes(max_batch) == expected

    def test_smallest_bucket_that_fits(self):
        assert [bucket_for(n, [1, 2, 4, 6]) for n in range(1, 7)] == [1, 2, 4, 4, 6, 6]

    def test_bad_max_batch(self):
        with pytest.raises(ConfigError, match="max_batch"):
            bucket_sizes(0)


class TestCompiledOnCpu:
    def test_open_compiles_and_checks_the_largest_bucket(self, compiled):
        assert compiled.name == "compiled" and compiled.precision == "fp32" and compiled.device == "cpu"
        assert compiled.buckets == [1, 2, 4]
        assert 4 in compiled.parity and max(compiled.parity[4].values()) <= TOLERANCES["fp32"]

    def test_three_faces_pad_to_four_and_only_three_come_back(self, compiled, eager):
        x = faces(3)
        rgb, mask = compiled.swap_tensor(x)
        assert rgb.shape == (3, 3, R, R) and mask.shape == (3, R, R)
        assert_close((rgb, mask), eager.swap_tensor(x))  # each real row is its own face, not a padded one

    def test_one_face_builds_bucket_one(self, compiled, eager):
        x = faces(1, seed=2)
        got = compiled.swap_tensor(x)
        assert 1 in compiled.parity and max(compiled.parity[1].values()) <= TOLERANCES["fp32"]
        assert got[0].shape == (1, 3, R, R) and got[1].shape == (1, R, R)
        assert_close(got, eager.swap_tensor(x))

    def test_larger_batches_are_split(self, compiled, eager):
        x = faces(5, seed=3)  # 4 + 1
        assert_close(compiled.swap_tensor(x), eager.swap_tensor(x))
        assert set(compiled.parity) == {1, 4}  # no graph beyond the two buckets

    def test_numpy_swap_matches_swap_tensor(self, compiled):
        x = faces(3, seed=4)
        rgb, mask = compiled.swap(x.permute(0, 2, 3, 1).numpy())
        trgb, tmask = compiled.swap_tensor(x)
        assert rgb.shape == (3, R, R, 3) and mask.shape == (3, R, R) and rgb.dtype == np.float32
        np.testing.assert_array_equal(rgb, trgb.permute(0, 2, 3, 1).numpy())
        np.testing.assert_array_equal(mask, tmask.numpy())

    def test_outputs_survive_the_next_call(self, compiled):
        first = compiled.swap_tensor(faces(3, seed=5))
        kept = [t.clone() for t in first]
        compiled.swap_tensor(faces(3, seed=6))
        assert all(torch.equal(a, b) for a, b in zip(first, kept))


def test_open_runner_builds_compiled_by_name(demo_model, compiled):
    """--backend compiled through open_runner; a second runner of the same model reuses the graph
    torch.compile built for the first (its guards match), so this costs no extra compile."""
    runner = open_runner(demo_model, backend="compiled", device="cpu", batch=4)
    assert runner.name == "compiled" and runner.reason == "backend compiled requested"
    assert set(runner.parity) == {4}


@pytest.mark.gpu
class TestCompiledOnCuda:
    def test_fp16_with_cuda_graphs(self, demo_model):
        runner = CompiledRunner(demo_model, device="cuda", max_batch=4)
        assert runner.precision == "fp16" and max(runner.parity[4].values()) <= TOLERANCES["fp16"]
        reference = TorchRunner(demo_model, device="cuda", precision="fp32")
        x = faces(3).cuda()
        first = runner.swap_tensor(x)
        kept = [t.clone() for t in first]
        runner.swap_tensor(faces(3, seed=9).cuda())  # replays the same CUDA graph
        assert all(torch.equal(a, b) for a, b in zip(first, kept)), "an output aliases CUDA-graph memory"
        assert first[0].device.type == "cuda"
        assert_close(first, reference.swap_tensor(x), atol=TOLERANCES["fp16"])
