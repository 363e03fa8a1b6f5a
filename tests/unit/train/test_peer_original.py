"""tools/peer_original.py: faceswap's "original" model as a peer, trained on the session facesets and
converted through vfxswap's real CLI as an ONNX-only model folder."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
PLATE_SEQ = ROOT / "samples" / "plate_seq" / "plate.####.png"


def load_tool():
    spec = importlib.util.spec_from_file_location("peer_original", ROOT / "tools" / "peer_original.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


peer = load_tool()


def conv_params(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


class TestArchitecture:
    def test_shapes(self):
        model = peer.OriginalModel().eval()
        x = torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            assert model.encoder(x).shape == (2, 512, 8, 8)
            for side in ("src", "dst", "swap"):
                y = model(x, side)
                assert y.shape == (2, 3, 64, 64) and 0 <= float(y.min()) and float(y.max()) <= 1
            rgb, mask = peer.PeerSwapPath(model)(x)
        assert torch.equal(rgb, model(x, "src").detach()) and mask.shape == (2, 1, 64, 64) and bool((mask == 1).all())

    def test_parameter_count_is_the_descriptions(self):
        """Encoder 5x5 convs 3-128-256-512-1024, dense 16384 -> 1024 -> 16384, upscale 1024 -> 4*512;
        each decoder upscales 512 -> 4*256, 256 -> 4*128, 128 -> 4*64, then a 5x5 conv to 3."""
        encoder = (conv_params(3, 128, 5) + conv_params(128, 256, 5) + conv_params(256, 512, 5)
                   + conv_params(512, 1024, 5) + (16384 * 1024 + 1024) + (1024 * 16384 + 16384)
                   + conv_params(1024, 2048, 3))
        decoder = (conv_params(512, 1024, 3) + conv_params(256, 512, 3) + conv_params(128, 256, 3)
                   + conv_params(64, 3, 5))
        model = peer.OriginalModel()
        assert sum(p.numel() for p in model.encoder.parameters()) == encoder
        assert sum(p.numel() for p in model.decoder_src.parameters()) == decoder
        assert sum(p.numel() for p in model.parameters()) == encoder + 2 * decoder == 82_062_470

    def test_gflop_per_face(self):
        """Swap path multiply-adds x2: each conv's output elements x kernel volume, plus both dense layers."""
        convs = [(32 * 32 * 128, 3 * 25), (16 * 16 * 256, 128 * 25), (8 * 8 * 512, 256 * 25), (4 * 4 * 1024, 512 * 25),
                 (4 * 4 * 2048, 1024 * 9), (8 * 8 * 1024, 512 * 9), (16 * 16 * 512, 256 * 9), (32 * 32 * 256, 128 * 9),
                 (64 * 64 * 3, 64 * 25)]
        expected = 2 * (sum(a * b for a, b in convs) + 2 * 16384 * 1024) / 1e9
        assert peer.gflop_per_face(peer.OriginalModel()) == pytest.approx(expected, rel=1e-9)
        assert 3.7 < expected < 3.9


@pytest.fixture(scope="module")
def peer_model(src_faceset, dst_faceset, tmp_path_factory) -> tuple[Path, dict]:
    """The peer trained for a budget spent before the first step ends: exactly one step at batch 4."""
    out = tmp_path_factory.mktemp("peer") / "model"
    result = peer.train_peer(src_faceset, dst_faceset, out, 1e-6, batch_size=4)
    return out, result


class TestTrainPeer:
    def test_budget_result_and_folder(self, peer_model):
        out, result = peer_model
        assert result["steps"] == 1 and result["seconds"] > 0 and np.isfinite(result["loss"])
        assert result["gflop_per_face"] == pytest.approx(3.80, abs=0.01)
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
            "card.json", "export/swap.onnx", "peer.json"]
        card = json.loads((out / "card.json").read_text())
        assert (card["resolution"], card["face_type"], card["mask_head"], card["steps"]) == (64, "whole_face", False, 1)
        assert json.loads((out / "peer.json").read_text())["steps"] == 1

    def test_export_signature_and_card_metadata(self, peer_model):
        from vfxswap.model.export import read_onnx_card, read_onnx_metadata

        out, _ = peer_model
        path = out / "export" / "swap.onnx"
        assert read_onnx_card(path).resolution == 64
        assert read_onnx_metadata(path)["vfxswap.kind"] == "swap"

    def test_refuses_a_vfxswap_model_folder(self, demo_model, src_faceset, dst_faceset):
        from vfxswap.errors import OutputError

        with pytest.raises(OutputError, match="holds a vfxswap model"):
            peer.train_peer(src_faceset, dst_faceset, demo_model, 1.0)

    def test_converts_all_frames_through_the_cli(self, peer_model, src_faceset, tmp_path):
        out, _ = peer_model
        result = subprocess.run([sys.executable, "-m", "vfxswap.cli", "convert", str(PLATE_SEQ), "-m", str(out),
                                 "--backend", "onnxruntime", "--mask", "hull", "-o", str(tmp_path / "out.####.png"),
                                 "--progress", "none"], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        assert "converted 8 frames (8 with" in result.stdout
        written = sorted(tmp_path.glob("out.*.png"))
        assert [p.name for p in written] == [f"out.{n}.png" for n in range(1001, 1009)]
        for path in written:
            plate = cv2.imread(str(PLATE_SEQ.parent / path.name.replace("out", "plate")))
            swapped = cv2.imread(str(path))
            changed = np.abs(swapped.astype(int) - plate.astype(int)).max(axis=2) > 8
            assert 0.001 < changed.mean() < 0.5  # faces replaced, the rest of the frame kept
        report = subprocess.run([sys.executable, "-m", "vfxswap.cli", "eval", str(PLATE_SEQ), str(tmp_path / "out.####.png"),
                                 "--src", str(src_faceset), "-o", str(tmp_path / "eval"), "--progress", "none"],
                                capture_output=True, text=True, cwd=ROOT)
        assert report.returncode == 0, report.stderr  # measured without reconstruction: there are no weights
        assert "no reconstruction scores" in report.stderr and (tmp_path / "eval" / "metrics.json").is_file()
