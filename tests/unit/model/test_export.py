"""vfxswap.model.export: ONNX, TorchScript and DeepFaceLab .dfm exports of real (untrained) tiny models."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from vfxswap.cli import main
from vfxswap.errors import EXIT_BAD_INPUT, ConfigError, EngineError, ModelError, OutputError
from vfxswap.model import export as export_mod
from vfxswap.model.autoencoder import FaceSwapModel
from vfxswap.model.card import ModelCard
from vfxswap.model.checkpoint import save_model_dir
from vfxswap.model.export import (CARD_KEY, DFM_INPUT, DFM_OUTPUTS, DFMPath, export_dfm, export_onnx,
                                  export_torchscript, read_onnx_card)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

R = 64
# Narrow widths keep every export + check around a second on a busy CPU; the layout is the real one.
SMALL = dict(resolution=R, encoder_dims=8, ae_dims=32, decoder_dims=8, decoder_mask_dims=4)


def make_model_dir(root, *, arch="df", mask_head=True, seed=0):
    torch.manual_seed(seed)
    card = ModelCard(arch=arch, mask_head=mask_head, steps=7, face_type="full", **SMALL)
    model = FaceSwapModel(card).eval()
    save_model_dir(root, model, card)
    return root, model, card


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def faces(n, seed=1):
    return torch.rand(n, 3, R, R, generator=torch.Generator().manual_seed(seed))


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".tmp")]


VARIANTS = [("df", True), ("liae", True), ("df", False), ("liae", False)]


@pytest.fixture(scope="module", params=VARIANTS, ids=[f"{a}-{'mask' if m else 'nomask'}" for a, m in VARIANTS])
def model_dir(request, tmp_path_factory):
    arch, mask_head = request.param
    return make_model_dir(tmp_path_factory.mktemp(f"{arch}{mask_head}") / "model", arch=arch, mask_head=mask_head)


class TestExportOnnx:
    def test_matches_pytorch_with_dynamic_batch(self, model_dir):
        root, model, card = model_dir
        report = export_onnx(root)
        assert report.path == root / "export" / "swap.onnx" and report.path.is_file()
        assert report.format == "onnx" and report.seconds > 0
        assert set(report.diffs) == {"rgb", "mask"} and report.max_abs_diff < 1e-4
        sess = session(report.path)
        assert [i.name for i in sess.get_inputs()] == ["face"]
        assert [o.name for o in sess.get_outputs()] == ["rgb", "mask"]
        assert sess.get_inputs()[0].shape == ["batch", 3, R, R]
        for n in (1, 5):
            x = faces(n)
            rgb, mask = sess.run(None, {"face": x.numpy()})
            with torch.no_grad():
                ref_rgb, ref_mask = model(x, "swap")
            if ref_mask is None:
                ref_mask = torch.ones(n, 1, R, R)
            assert rgb.shape == (n, 3, R, R) and mask.shape == (n, 1, R, R)
            np.testing.assert_allclose(rgb, ref_rgb.numpy(), atol=1e-4, rtol=0)
            np.testing.assert_allclose(mask, ref_mask.numpy(), atol=1e-4, rtol=0)
        assert leftovers(report.path.parent) == []

    def test_card_is_embedded(self, model_dir):
        root, _, card = model_dir
        path = export_onnx(root, check=False).path
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert ModelCard.from_json(meta[CARD_KEY]) == ModelCard.load(root)
        assert read_onnx_card(path).resolution == R and read_onnx_card(path).face_type == "full"
        assert meta["vfxswap.kind"] == "swap"

    def test_out_path_and_no_check(self, tmp_path):
        root, _, _ = make_model_dir(tmp_path / "m")
        report = export_onnx(root, out=tmp_path / "deep" / "x.onnx", check=False)
        assert report.path == tmp_path / "deep" / "x.onnx" and report.max_abs_diff is None and not report.diffs
        assert not (root / "export").exists()


class TestExportTorchScript:
    def test_round_trip(self, model_dir):
        root, model, card = model_dir
        report = export_torchscript(root)
        assert report.path == root / "export" / "swap.torchscript.pt" and report.max_abs_diff < 1e-5
        extra = {f"{CARD_KEY}.json": ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loaded = torch.jit.load(str(report.path), _extra_files=extra)
        assert ModelCard.from_json(extra[f"{CARD_KEY}.json"]) == ModelCard.load(root)
        for n in (1, 4):
            x = faces(n)
            with torch.no_grad():
                rgba = loaded(x)
                rgb, mask = model(x, "swap")
            assert rgba.shape == (n, 4, R, R)  # one tensor out: what Nuke's Inference node takes
            torch.testing.assert_close(rgba[:, :3], rgb, atol=1e-5, rtol=0)
            torch.testing.assert_close(rgba[:, 3:], mask if mask is not None else torch.ones(n, 1, R, R),
                                       atol=1e-5, rtol=0)
        assert leftovers(report.path.parent) == []


class TestExportDfm:
    def test_contract_and_bgr_nhwc(self, model_dir):
        root, model, card = model_dir
        report = export_dfm(root)
        assert report.path == root / "export" / "model.dfm" and report.max_abs_diff < 1e-4
        assert set(report.diffs) == set(DFM_OUTPUTS)
        sess = session(report.path)
        inputs, outputs = sess.get_inputs(), sess.get_outputs()
        assert [i.name for i in inputs] == [DFM_INPUT] == ["in_face:0"]
        assert [o.name for o in outputs] == ["out_face_mask:0", "out_celeb_face:0", "out_celeb_face_mask:0"]
        # DeepFaceLive reads the crop size from inputs[0].shape[1:3]: height and width must be numbers.
        assert inputs[0].shape[1:] == [R, R, 3] and isinstance(inputs[0].shape[0], str)
        assert [o.shape[1:] for o in outputs] == [[R, R, 1], [R, R, 3], [R, R, 1]]
        assert inputs[0].type == "tensor(float)"

        # An image with distinct channels: a BGR/RGB mix-up cannot pass.
        rgb = faces(2, seed=3)
        rgb[:, 0] *= 0.2
        bgr_nhwc = np.ascontiguousarray(rgb.permute(0, 2, 3, 1).numpy()[..., ::-1])
        face_mask, celeb, celeb_mask = sess.run(None, {"in_face:0": bgr_nhwc})
        with torch.no_grad():
            swap_rgb, swap_mask = model(rgb, "swap")
            _, dst_mask = model(rgb, "dst")
        ones = torch.ones(2, 1, R, R)
        nhwc = lambda t: t.permute(0, 2, 3, 1).numpy()  # noqa: E731
        np.testing.assert_allclose(celeb, nhwc(swap_rgb)[..., ::-1], atol=1e-4, rtol=0)
        np.testing.assert_allclose(celeb_mask, nhwc(swap_mask if swap_mask is not None else ones), atol=1e-4, rtol=0)
        np.testing.assert_allclose(face_mask, nhwc(dst_mask if dst_mask is not None else ones), atol=1e-4, rtol=0)
        if card.mask_head:  # the dst mask really comes from the dst path, not the swap path
            assert np.abs(face_mask - celeb_mask).max() > 10 * np.abs(face_mask - nhwc(dst_mask)).max()
        # wrong channel order would be caught: the swap of the RGB-flipped input differs
        assert np.abs(celeb - nhwc(swap_rgb)).max() > 1e-3
        assert sess.run(None, {"in_face:0": bgr_nhwc[:1]})[1].shape == (1, R, R, 3)
        assert read_onnx_card(report.path) == ModelCard.load(root)
        assert leftovers(report.path.parent) == []

    def test_wrapper_matches_model_in_eager(self):
        torch.manual_seed(0)
        model = FaceSwapModel(ModelCard(arch="liae", **SMALL)).eval()
        x = faces(2)
        with torch.no_grad():
            face_mask, celeb, celeb_mask = DFMPath(model)(x.permute(0, 2, 3, 1).flip(3))
            rgb, mask = model(x, "swap")
            _, dst_mask = model(x, "dst")
        torch.testing.assert_close(celeb, rgb.flip(1).permute(0, 2, 3, 1))
        torch.testing.assert_close(celeb_mask, mask.permute(0, 2, 3, 1))
        torch.testing.assert_close(face_mask, dst_mask.permute(0, 2, 3, 1))


class TestErrors:
    def test_missing_model_dir(self, tmp_path):
        with pytest.raises(ModelError, match="card.json is missing"):
            export_onnx(tmp_path / "nope")

    def test_bad_opset(self, tmp_path):
        root, _, _ = make_model_dir(tmp_path / "m")
        with pytest.raises(ConfigError, match="opset"):
            export_onnx(root, opset=7)

    def test_output_is_a_folder(self, tmp_path):
        root, _, _ = make_model_dir(tmp_path / "m")
        with pytest.raises(OutputError, match="is a folder"):
            export_onnx(root, out=tmp_path, check=False)

    def test_unwritable_output(self, tmp_path):
        root, _, _ = make_model_dir(tmp_path / "m")
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(OutputError, match="cannot"):
            export_torchscript(root, out=blocker / "sub" / "swap.pt", check=False)

    def test_failed_check_writes_nothing(self, tmp_path, monkeypatch):
        root, _, _ = make_model_dir(tmp_path / "m")
        real = export_mod._run_onnx
        monkeypatch.setattr(export_mod, "_run_onnx", lambda data, feeds: [a + 0.01 for a in real(data, feeds)])
        with pytest.raises(EngineError, match="does not reproduce PyTorch"):
            export_onnx(root)
        assert not (root / "export" / "swap.onnx").exists() and leftovers(root / "export") == []

    def test_onnxruntime_missing(self, tmp_path, monkeypatch):
        root, _, _ = make_model_dir(tmp_path / "m")
        monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
        with pytest.raises(EngineError, match="pip install onnxruntime"):
            export_dfm(root)
        export_dfm(root, check=False)  # without the check onnxruntime is not needed


class TestCli:
    def test_export_prints_and_exits_zero(self, tmp_path, capsys):
        root, _, _ = make_model_dir(tmp_path / "m")
        assert main(["export", str(root), "--format", "dfm"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"exported dfm -> {root / 'export' / 'model.dfm'} (max abs diff ")
        assert out.rstrip().endswith("vs PyTorch)")
        assert main(["export", str(root), "--format", "torchscript", "-o", str(tmp_path / "n.pt"), "--no-check"]) == 0
        assert "(not checked)" in capsys.readouterr().out and (tmp_path / "n.pt").is_file()

    def test_missing_model_dir_exit_code(self, tmp_path):
        result = subprocess.run([sys.executable, "-m", "vfxswap.cli", "export", str(tmp_path / "none"), "--format", "onnx"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == EXIT_BAD_INPUT == 3
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vfxswap: error: no model at") and "Traceback" not in result.stderr
        assert result.stdout == ""
