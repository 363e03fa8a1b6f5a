"""Runners and backend selection on the CPU (real demo model, real ONNX Runtime), the TensorRT
runner's errors without CUDA, ``vfxswap export --format tensorrt``; GPU tests for TensorRT."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch

from vfxswap.accel.runtime import (BACKENDS, TOLERANCES, TorchRunner, auto_candidates, cpu_native, open_first,
                                   open_runner, resolve_precision)
from vfxswap.cli import main
from vfxswap.errors import EXIT_FAILURE, EXIT_USAGE, ConfigError, EngineError

R = 64
HAS_CUDA = torch.cuda.is_available()
no_cuda = pytest.mark.skipif(HAS_CUDA, reason="checks the behaviour without CUDA")


def faces(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, R, R, generator=torch.Generator().manual_seed(seed))


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "vfxswap.accel.runtime"]


class TestTorchRunner:
    def test_swap_and_swap_tensor_agree(self, demo_model):
        runner = TorchRunner(demo_model, device="cpu")
        x = faces(3)
        rgb, mask = runner.swap_tensor(x)
        assert rgb.shape == (3, 3, R, R) and mask.shape == (3, R, R)
        assert rgb.dtype == mask.dtype == torch.float32 and rgb.device == x.device
        assert 0 <= float(rgb.min()) and float(rgb.max()) <= 1 and 0 <= float(mask.min()) and float(mask.max()) <= 1
        nrgb, nmask = runner.swap(x.permute(0, 2, 3, 1).numpy())
        assert nrgb.shape == (3, R, R, 3) and nmask.shape == (3, R, R) and nrgb.dtype == np.float32
        np.testing.assert_array_equal(nrgb, rgb.permute(0, 2, 3, 1).numpy())
        np.testing.assert_array_equal(nmask, mask.numpy())

    def test_channels_last_input(self, demo_model):
        runner = TorchRunner(demo_model, device="cpu")
        x = faces(2)
        strided = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # same values, NHWC memory
        assert all(torch.equal(a, b) for a, b in zip(runner.swap_tensor(strided), runner.swap_tensor(x)))


class TestPrecision:
    def test_auto(self):
        assert resolve_precision("auto", "cpu") == "fp32"
        assert resolve_precision("auto", "cuda") == "fp16"

    def test_unknown(self):
        with pytest.raises(ConfigError, match="auto, fp32, fp16, bf16"):
            resolve_precision("int8", "cpu")

    @pytest.mark.parametrize("precision", ["bf16", "fp16"])
    def test_emulated_cpu_precision_is_refused(self, demo_model, precision):
        if cpu_native(precision):
            runner = TorchRunner(demo_model, device="cpu", precision=precision)  # native: it runs
            expected = TorchRunner(demo_model, device="cpu").swap_tensor(faces(2))
            got = runner.swap_tensor(faces(2))
            assert all(float((a - b).abs().max()) <= TOLERANCES[precision] for a, b in zip(got, expected))
            return
        capability = torch.backends.cpu.get_cpu_capability()
        with pytest.raises(ConfigError, match=f"precision {precision} on this CPU \\({capability}"):
            TorchRunner(demo_model, device="cpu", precision=precision)


class TestOnnxRunner:
    def test_swap_tensor_matches_swap_and_torch(self, demo_model):
        pytest.importorskip("onnxruntime")
        runner = open_runner(demo_model, backend="onnxruntime", device="cpu")
        x = faces(3)
        rgb, mask = runner.swap_tensor(x)
        nrgb, nmask = runner.swap(x.permute(0, 2, 3, 1).numpy())
        np.testing.assert_array_equal(nrgb, rgb.permute(0, 2, 3, 1).numpy())
        np.testing.assert_array_equal(nmask, mask.numpy())
        expected = TorchRunner(demo_model, device="cpu").swap_tensor(x)
        assert all(float((a - b).abs().max()) < 1e-3 for a, b in zip((rgb, mask), expected))


def _private_model(demo_model, tmp_path):
    import shutil

    shutil.copytree(demo_model, tmp_path / "m", ignore=shutil.ignore_patterns("export"))
    return tmp_path / "m"


class TestCorruptCachedExport:
    """A damaged MODEL/export/swap.onnx is a cache miss: logged, deleted, exported again."""

    @pytest.mark.parametrize("backend", ["onnxruntime", "auto"])
    def test_garbage_export_is_rebuilt(self, demo_model, tmp_path, caplog, backend):
        pytest.importorskip("onnxruntime")
        onnx = pytest.importorskip("onnx")
        model = _private_model(demo_model, tmp_path)
        runner = open_runner(model, backend="onnxruntime", device="cpu")  # writes the cached export
        runner.close()
        cached = model / "export" / "swap.onnx"
        cached.write_bytes(np.random.default_rng(0).bytes(3000))
        with caplog.at_level(logging.WARNING, logger="vfxswap.accel.onnx"):
            runner = open_runner(model, backend=backend, device="cpu")
        onnx.checker.check_model(onnx.load(str(cached)))  # a valid export again
        assert any("is not an ONNX model" in r.getMessage() and "exporting it again" in r.getMessage()
                   for r in caplog.records)
        rgb, mask = runner.swap_tensor(faces(2))
        assert rgb.shape == (2, 3, R, R) and torch.isfinite(rgb).all()

    def test_export_onnxruntime_cannot_load_is_rebuilt(self, demo_model, tmp_path, caplog):
        """Readable metadata that still names these weights, but a graph ONNX Runtime refuses."""
        pytest.importorskip("onnxruntime")
        onnx = pytest.importorskip("onnx")
        model = _private_model(demo_model, tmp_path)
        open_runner(model, backend="onnxruntime", device="cpu").close()
        cached = model / "export" / "swap.onnx"
        proto = onnx.load(str(cached))
        proto.graph.node[0].op_type = "NoSuchOp"
        onnx.save(proto, str(cached))
        with caplog.at_level(logging.WARNING, logger="vfxswap.accel.onnx"):
            runner = open_runner(model, backend="onnxruntime", device="cpu")
        assert onnx.load(str(cached)).graph.node[0].op_type != "NoSuchOp"
        assert any("onnxruntime cannot load" in r.getMessage() and "exporting it again" in r.getMessage()
                   for r in caplog.records)
        expected = TorchRunner(model, device="cpu").swap_tensor(faces(2))
        got = runner.swap_tensor(faces(2))
        assert all(float((a - b).abs().max()) < 1e-3 for a, b in zip(got, expected))


class TestSelection:
    def test_candidates(self):
        assert auto_candidates(True) == ["tensorrt", "compiled", "torch"]
        assert auto_candidates(False) == ["torch", "onnxruntime"]
        assert set(auto_candidates(True) + auto_candidates(False)) == set(BACKENDS) - {"auto"}

    def test_unknown_backend(self, demo_model):
        with pytest.raises(ConfigError, match="auto, torch, compiled, tensorrt, onnxruntime"):
            open_runner(demo_model, backend="openvino")

    def test_explicit_backend_reason(self, demo_model):
        assert open_runner(demo_model, backend="torch", device="cpu").reason == "backend torch requested"

    def test_auto_on_cpu_measures_and_logs(self, demo_model, caplog):
        pytest.importorskip("onnxruntime")
        with caplog.at_level(logging.INFO, logger="vfxswap.accel.runtime"):
            runner = open_runner(demo_model, backend="auto", device="cpu")
        assert runner.name in ("torch", "onnxruntime") and runner.device == "cpu"
        assert "measured" in runner.reason and "torch" in runner.reason and "onnxruntime" in runner.reason
        assert "compiled not tried on the CPU" in runner.reason
        assert any(m.startswith(f"backend auto: chose {runner.name} (") for m in messages(caplog))

    def test_auto_on_cpu_skips_a_missing_package(self, demo_model, caplog, monkeypatch):
        monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
        with caplog.at_level(logging.INFO, logger="vfxswap.accel.runtime"):
            runner = open_runner(demo_model, backend="auto", device="cpu")
        assert runner.name == "torch"
        assert "skipped onnxruntime: the onnxruntime backend needs `pip install onnxruntime`" in runner.reason
        assert any(m.startswith("backend auto: skipping onnxruntime:") for m in messages(caplog))

    def test_first_that_opens_wins_and_skips_are_logged(self, demo_model, caplog):
        """The CUDA fallback loop, run on the CPU: tensorrt cannot open there, torch can."""
        with caplog.at_level(logging.INFO, logger="vfxswap.accel.runtime"):
            runner = open_first(demo_model, ["tensorrt", "torch"], device="cpu")
        assert runner.name == "torch"
        assert runner.reason.startswith("auto on cpu (order tensorrt > torch): torch is the first that opened")
        assert "skipped tensorrt: the tensorrt backend" in runner.reason
        skip = [m for m in messages(caplog) if m.startswith("backend auto: skipping tensorrt:")]
        assert skip and ("NVIDIA GPU" in skip[0] or "torch-tensorrt" in skip[0])

    def test_none_opens(self, demo_model, monkeypatch):
        monkeypatch.setitem(sys.modules, "onnxruntime", None)
        with pytest.raises(EngineError, match="no swap backend can run on cpu here .*tensorrt.*onnxruntime"):
            open_first(demo_model, ["tensorrt", "onnxruntime"], device="cpu")

    @no_cuda
    def test_auto_on_cuda_without_cuda_is_a_usage_error(self, demo_model):
        with pytest.raises(ConfigError, match="--device cuda: no CUDA device is available"):
            open_runner(demo_model, backend="auto", device="cuda")


class TestTensorRTWithoutGpu:
    @no_cuda
    def test_backend_names_cuda(self, demo_model):
        with pytest.raises(EngineError, match="needs an NVIDIA GPU with CUDA: torch reports none") as info:
            open_runner(demo_model, backend="tensorrt")
        assert info.value.exit_code == EXIT_FAILURE
        assert "--backend torch or onnxruntime" in str(info.value)

    def test_cpu_device_is_refused(self, demo_model):
        with pytest.raises(EngineError, match="runs on an NVIDIA GPU only"):
            open_runner(demo_model, backend="tensorrt", device="cpu")

    def test_missing_package_names_the_pip_package(self, monkeypatch):
        """With CUDA present (faked here) but no torch-tensorrt installed."""
        from vfxswap.accel.tensorrt import require_tensorrt

        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
        major_minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
        with pytest.raises(EngineError, match=f"needs `pip install torch-tensorrt` \\(matching torch {major_minor}"):
            require_tensorrt()

    @no_cuda
    def test_export_cli_fails_with_one_line(self, demo_model, capsys):
        assert main(["export", str(demo_model), "--format", "tensorrt", "--batch", "4"]) == EXIT_FAILURE
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["vfxswap: error: the tensorrt backend needs an NVIDIA GPU with CUDA: torch reports none "
                       "(use --backend torch or onnxruntime)"]
        assert not (demo_model / "export" / "tensorrt").exists()

    def test_export_cli_refuses_output(self, demo_model, tmp_path, capsys):
        assert main(["export", str(demo_model), "--format", "tensorrt", "-o", str(tmp_path / "x.ep")]) == EXIT_USAGE
        assert "--output does not apply to --format tensorrt" in capsys.readouterr().err


@pytest.mark.gpu
class TestTensorRTOnGpu:
    def test_build_parity_and_reuse(self, demo_model, caplog):
        pytest.importorskip("torch_tensorrt")
        from vfxswap.accel.tensorrt import TensorRTRunner, build_engine

        runner = TensorRTRunner(demo_model, max_batch=4)
        record = runner.engine.with_suffix(".json")
        assert runner.engine.parent == demo_model / "export" / "tensorrt" and record.is_file()
        assert max(runner.parity.values()) <= TOLERANCES["fp16"]
        built = record.read_text()
        with caplog.at_level(logging.INFO, logger="vfxswap.accel.cache"):
            again = build_engine(demo_model, max_batch=4)
        assert not again.built and again.path == runner.engine and record.read_text() == built
        reference = TorchRunner(demo_model, device="cuda", precision="fp32")
        x = faces(6).cuda()  # 4 + 2: larger than the profile, split
        got = runner.swap_tensor(x)
        assert got[0].shape == (6, 3, R, R) and got[1].shape == (6, R, R) and got[0].device.type == "cuda"
        assert all(float((a - b).abs().max()) <= TOLERANCES["fp16"] for a, b in zip(got, reference.swap_tensor(x)))
        cpu = runner.swap_tensor(x.cpu())
        assert cpu[0].device.type == "cpu"

    def test_auto_prefers_tensorrt_then_compiled(self, demo_model, caplog):
        with caplog.at_level(logging.INFO, logger="vfxswap.accel.runtime"):
            runner = open_runner(demo_model, backend="auto", device="cuda", batch=4)
        assert runner.name in ("tensorrt", "compiled", "torch")
        assert runner.reason.startswith("auto on cuda (order tensorrt > compiled > torch)")
        assert any(m.startswith(f"backend auto: chose {runner.name}") for m in messages(caplog))
