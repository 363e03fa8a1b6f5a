"""ONNX-only model folders (card.json + export/swap.onnx, no weights.safetensors) in the onnxruntime
runner: run as they are, never re-exported or deleted, refused with one line when the file is damaged
or has another signature. Built from the real demo model's export."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from vfxswap.accel.runtime import TorchRunner, open_runner
from vfxswap.errors import ModelError
from vfxswap.model.card import ModelCard

pytest.importorskip("onnxruntime")
from vfxswap.accel.onnx import is_onnx_only  # noqa: E402


@pytest.fixture()
def onnx_only(demo_model, tmp_path):
    """card.json and a current export/swap.onnx of the demo model, without its weights."""
    open_runner(demo_model, backend="onnxruntime", device="cpu").close()  # brings the cached export up to date
    out = tmp_path / "onnx_only"
    (out / "export").mkdir(parents=True)
    shutil.copy(demo_model / "card.json", out / "card.json")
    shutil.copy(demo_model / "export" / "swap.onnx", out / "export" / "swap.onnx")
    return out


def faces(n: int, r: int = 64) -> torch.Tensor:
    return torch.rand(n, 3, r, r, generator=torch.Generator().manual_seed(3))


def test_detection(demo_model, onnx_only):
    assert is_onnx_only(onnx_only)
    assert not is_onnx_only(demo_model)  # weights beside it: the export stays a cache


def test_runs_as_is_and_matches_the_weights(demo_model, onnx_only):
    path = onnx_only / "export" / "swap.onnx"
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    runner = open_runner(onnx_only, backend="onnxruntime", device="cpu")
    assert runner.card == ModelCard.load(demo_model)
    got = runner.swap_tensor(faces(3))
    expected = TorchRunner(demo_model, device="cpu").swap_tensor(faces(3))
    assert all(float((a - b).abs().max()) < 1e-3 for a, b in zip(got, expected))
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before  # not re-exported
    assert sorted(p.name for p in onnx_only.rglob("*")) == ["card.json", "export", "swap.onnx"]


def test_damaged_file_is_refused_and_kept(onnx_only):
    path = onnx_only / "export" / "swap.onnx"
    garbage = np.random.default_rng(0).bytes(3000)
    path.write_bytes(garbage)
    with pytest.raises(ModelError, match="onnxruntime cannot load .*ONNX-only model .* is damaged"):
        open_runner(onnx_only, backend="onnxruntime", device="cpu")
    assert path.read_bytes() == garbage  # the model itself: never deleted


def test_other_resolution_is_refused(onnx_only):
    card = dataclasses.replace(ModelCard.load(onnx_only), resolution=128)
    (onnx_only / "card.json").write_text(card.to_json())
    expected = r"needs input face \(B, 3, 128, 128\) .* found inputs face \['batch', 3, 64, 64\]"
    with pytest.raises(ModelError, match=expected):
        open_runner(onnx_only, backend="onnxruntime", device="cpu")


def test_other_signature_is_refused(demo_model, onnx_only):
    from vfxswap.model.export import export_dfm

    export_dfm(demo_model, out=onnx_only / "export" / "swap.onnx")  # a valid ONNX file, DeepFaceLab's names
    with pytest.raises(ModelError, match="does not have the swap signature.*found inputs in_face:0"):
        open_runner(onnx_only, backend="onnxruntime", device="cpu")


def test_auto_picks_onnxruntime_for_an_onnx_only_folder(onnx_only):
    runner = open_runner(onnx_only, backend="auto", device="cpu")
    assert runner.name == "onnxruntime" and "ONNX-only" in runner.reason
    assert runner.swap_tensor(faces(2))[0].shape == (2, 3, 64, 64)
