import dataclasses
import json
import os
import pickle
import random
from pathlib import Path

import pytest
import torch

from vfxswap.cli import main
from vfxswap.errors import ConfigError, ModelError
from vfxswap.model.autoencoder import FaceSwapModel, SwapPath, flops_per_face
from vfxswap.model.card import FORMAT_VERSION, ModelCard
from vfxswap.model.checkpoint import load_model, load_train_state, save_model_dir


class TestModelCard:
    def test_round_trip(self):
        card = ModelCard.from_preset("gpu", arch="liae", resolution=96, face_type="full")
        assert ModelCard.from_json(card.to_json()) == card

    @pytest.mark.parametrize("bad", [dict(resolution=72), dict(resolution=1024), dict(arch="sae"),
                                     dict(face_type="chin"), dict(ae_dims=0)])
    def test_invalid_settings(self, bad):
        with pytest.raises(ConfigError):
            ModelCard(**bad)

    def test_newer_format_is_refused(self):
        data = json.loads(ModelCard().to_json())
        data["format_version"] = FORMAT_VERSION + 1
        with pytest.raises(ModelError, match="newer than this vfxswap reads"):
            ModelCard.from_json(json.dumps(data))

    def test_unknown_fields_and_garbage_are_refused(self):
        data = json.loads(ModelCard().to_json())
        data["optimizer"] = "sgd"
        with pytest.raises(ModelError, match="unknown fields"):
            ModelCard.from_json(json.dumps(data))
        with pytest.raises(ModelError, match="not valid JSON"):
            ModelCard.from_json("{not json")


class TestFaceSwapModel:
    @pytest.mark.parametrize("arch", ["df", "liae"])
    @pytest.mark.parametrize("mask_head", [True, False])
    def test_shapes_and_ranges(self, arch, mask_head):
        card = ModelCard(arch=arch, resolution=64, mask_head=mask_head)
        model = FaceSwapModel(card)
        x = torch.rand(2, 3, 64, 64)
        for side in ("src", "dst", "swap"):
            rgb, mask = model(x, side)
            assert rgb.shape == (2, 3, 64, 64) and 0 <= rgb.min() and rgb.max() <= 1
            assert (mask is None) == (not mask_head)
            if mask_head:
                assert mask.shape == (2, 1, 64, 64)
        out = model.train_outputs(x, x)
        assert out["src_rgb"].shape == out["dst_rgb"].shape == (2, 3, 64, 64)
        rgb, mask = SwapPath(model)(x)
        assert mask.shape == (2, 1, 64, 64)

    def test_train_outputs_match_the_per_side_paths(self):
        model = FaceSwapModel(ModelCard(arch="liae", resolution=64)).eval()
        src, dst = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
        out = model.train_outputs(src, dst)
        torch.testing.assert_close(out["src_rgb"], model(src, "src")[0])
        torch.testing.assert_close(out["dst_rgb"], model(dst, "dst")[0])

    def test_cpu_preset_is_under_one_gflop_at_128(self):
        assert flops_per_face(FaceSwapModel(ModelCard.from_preset("cpu", resolution=128))) < 1e9
        assert flops_per_face(FaceSwapModel(ModelCard.from_preset("gpu", resolution=128))) > 10e9


@pytest.fixture()
def model_dir(tmp_path):
    card = ModelCard(resolution=64, steps=7)
    model = FaceSwapModel(card)
    state = {"format": "vfxswap-train-state", "step": 7, "model": model.state_dict()}
    save_model_dir(tmp_path / "m", model, card, train_state=state)
    return tmp_path / "m", model


class TestCheckpoint:
    def test_round_trip(self, model_dir):
        path, model = model_dir
        loaded, card = load_model(path)
        assert card.steps == 7 and not loaded.training
        for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert torch.equal(a, b), k
        assert load_train_state(path)["step"] == 7
        assert not [p for p in path.iterdir() if p.name.startswith(".tmp-")]

    def test_fp16_weights_load_as_float32(self, tmp_path):
        card = ModelCard(resolution=64)
        model = FaceSwapModel(card)
        save_model_dir(tmp_path / "m", model, card, weights_dtype=torch.float16)
        assert (tmp_path / "m" / "weights.safetensors").stat().st_size < sum(
            p.numel() for p in model.parameters()) * 2.2
        loaded, _ = load_model(tmp_path / "m")
        assert next(loaded.parameters()).dtype == torch.float32

    def test_pickle_payload_in_train_state_is_not_executed(self, model_dir, tmp_path):
        path, _ = model_dir
        marker = tmp_path / "pwned"

        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        with open(path / "train_state.pt", "wb") as f:
            pickle.dump({"format": "vfxswap-train-state", "x": Payload()}, f)
        with pytest.raises(ModelError, match="not a vfxswap training state"):
            load_train_state(path)
        assert not marker.exists()

    def test_torch_save_of_an_object_is_refused(self, model_dir, tmp_path):
        path, _ = model_dir
        torch.save({"format": "vfxswap-train-state", "card": ModelCard()}, path / "train_state.pt")
        with pytest.raises(ModelError, match="only plain tensors"):
            load_train_state(path)

    def test_pickle_pretending_to_be_weights(self, model_dir):
        path, _ = model_dir
        with open(path / "weights.safetensors", "wb") as f:
            pickle.dump({"encoder": [1, 2, 3]}, f)
        with pytest.raises(ModelError, match="not a valid safetensors file"):
            load_model(path)

    def test_truncated_weights(self, model_dir):
        path, _ = model_dir
        data = (path / "weights.safetensors").read_bytes()
        (path / "weights.safetensors").write_bytes(data[: len(data) // 2])
        with pytest.raises(ModelError, match="not a valid safetensors file"):
            load_model(path)

    def test_wrong_shapes(self, model_dir):
        path, _ = model_dir
        card = ModelCard.load(path)
        (path / "card.json").write_text(dataclasses.replace(card, ae_dims=64).to_json())
        with pytest.raises(ModelError, match="does not match card.json") as refused:
            load_model(path)
        message = str(refused.value)
        assert "\n" not in message and "of another shape: decoder_dst.mask.0.0.0.bias (128,) (card: (64,))" in message
        assert "put back the card.json these weights were trained with" in message

    def test_other_architecture(self, model_dir):
        path, _ = model_dir
        card = ModelCard.load(path)
        (path / "card.json").write_text(dataclasses.replace(card, arch="liae").to_json())
        with pytest.raises(ModelError, match=r"does not match card.json \(\d+ missing: .*; \d+ unexpected: ") as refused:
            load_model(path)
        assert "\n" not in str(refused.value) and "Error(s) in loading" not in str(refused.value)

    @pytest.mark.parametrize("content", [
        random.Random(2).randbytes(3000),  # made torch's safe unpickler raise IndexError: pop from empty list
        random.Random(14).randbytes(3000), os.urandom(5000), b"", b"hello\n", pickle.dumps([1, 2]),
    ], ids=["random-indexerror", "random-2", "urandom", "zero-byte", "text", "plain-pickle"])
    def test_corrupt_train_state(self, model_dir, content):
        path, _ = model_dir
        (path / "train_state.pt").write_bytes(content)
        with pytest.raises(ModelError, match="is corrupt or not a vfxswap training state") as refused:
            load_train_state(path)
        assert "\n" not in str(refused.value) and "restore it from a backup" in str(refused.value)
        assert "weights_only" not in str(refused.value)  # torch's advice must never reach the user

    def test_truncated_train_state(self, model_dir):
        path, _ = model_dir
        data = (path / "train_state.pt").read_bytes()
        for size in (len(data) // 2, 100, 1):
            (path / "train_state.pt").write_bytes(data[:size])
            with pytest.raises(ModelError, match="is corrupt or not a vfxswap training state"):
                load_train_state(path)

    def test_torch_zip_with_a_pickle_payload_is_not_executed(self, model_dir, tmp_path):
        path, _ = model_dir
        marker = tmp_path / "pwned"

        class Payload:
            def __reduce__(self):
                return (os.mkdir, (str(marker),))

        torch.save({"format": "vfxswap-train-state", "step": 1, "model": {}, "x": Payload()}, path / "train_state.pt")
        with pytest.raises(ModelError, match="it refers to posix.mkdir; only plain tensors are accepted"):
            load_train_state(path)
        assert not marker.exists()

    def test_train_state_without_model_or_step(self, model_dir):
        path, _ = model_dir
        torch.save({"format": "vfxswap-train-state", "step": "7"}, path / "train_state.pt")
        with pytest.raises(ModelError, match="is incomplete"):
            load_train_state(path)

    def test_resume_from_a_corrupt_train_state_is_one_line_exit_3(self, model_dir, tmp_path, capsys):
        path, _ = model_dir
        (path / "train_state.pt").write_bytes(random.Random(2).randbytes(3000))
        code = main(["train", "--src", str(tmp_path / "src"), "--dst", str(tmp_path / "dst"), "-o", str(path),
                     "--resume", "--iterations", "8", "--progress", "none"])
        err = capsys.readouterr().err
        assert code == 3 and err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith("vfxswap: error: ") and "is corrupt or not a vfxswap training state" in err

    def test_resume_with_a_train_state_of_another_model(self, model_dir, tmp_path, capsys):
        path, _ = model_dir
        other = FaceSwapModel(dataclasses.replace(ModelCard.load(path), ae_dims=64))
        torch.save({"format": "vfxswap-train-state", "step": 7, "model": other.state_dict()}, path / "train_state.pt")
        code = main(["train", "--src", str(tmp_path / "src"), "--dst", str(tmp_path / "dst"), "-o", str(path),
                     "--resume", "--iterations", "8", "--progress", "none"])
        err = capsys.readouterr().err
        assert code == 3 and err.count("\n") == 1, err
        assert "train_state.pt does not match card.json (" in err and "of another shape: decoder" in err

    @pytest.mark.parametrize("content", [os.urandom(4000), b"", b"\x08" + bytes(7) + b"{}"],
                             ids=["random", "zero-byte", "tiny-header"])
    def test_corrupt_weights(self, model_dir, content):
        path, _ = model_dir
        (path / "weights.safetensors").write_bytes(content)
        with pytest.raises(ModelError, match="is not a valid safetensors file") as refused:
            load_model(path)
        assert "\n" not in str(refused.value) and "restore it from a backup" in str(refused.value)

    @pytest.mark.parametrize("edit, match", [
        (lambda text: os.urandom(300), "not UTF-8 text"),
        (lambda text: b"", "not valid JSON"),
        (lambda text: text.replace(b'"resolution": 64', b'"resolution": 64.0'), "resolution must be an integer in 64..512, got 64.0"),
        (lambda text: text.replace(b'"separable": true', b'"separable": "no"'), "separable must be true or false, got 'no'"),
        (lambda text: text.replace(b'"mask_head": true', b'"mask_head": 3'), "mask_head must be true or false, got 3"),
        (lambda text: text.replace(b'"color_space": "srgb"', b'"color_space": 5'), "color_space must be a string"),
        (lambda text: text.replace(b'"steps": 7', b'"steps": -7'), "steps must be >= 0"),
    ], ids=["random", "zero-byte", "float-resolution", "string-bool", "int-bool", "int-string", "negative-steps"])
    def test_corrupt_card(self, model_dir, edit, match):
        path, _ = model_dir
        (path / "card.json").write_bytes(edit((path / "card.json").read_bytes()))
        with pytest.raises(ModelError, match=match) as refused:
            load_model(path)
        assert "\n" not in str(refused.value)

    def test_missing_model(self, tmp_path):
        with pytest.raises(ModelError, match="card.json is missing"):
            load_model(tmp_path)


def test_the_shipped_demo_model_loads_and_swaps():
    demo = Path(__file__).resolve().parents[3] / "samples" / "demo_model"
    model, card = load_model(demo)
    assert card.steps > 0 and card.resolution == 64 and card.face_type == "whole_face"
    assert (demo / "weights.safetensors").stat().st_size < 4 * 1024 * 1024  # float16, a few MB
    with torch.no_grad():
        rgb, mask = model(torch.rand(2, 3, 64, 64), "swap")
    assert rgb.shape == (2, 3, 64, 64) and mask.shape == (2, 1, 64, 64)
    assert torch.isfinite(rgb).all() and torch.isfinite(mask).all()


def test_a_version_1_card_loads_with_the_new_fields_defaulted(tmp_path):
    old = {k: v for k, v in json.loads(ModelCard(resolution=64).to_json()).items()
           if k not in ("pretrained", "init_from")}
    card = ModelCard.from_json(json.dumps({**old, "format_version": 1}))
    assert not card.pretrained and card.init_from == "" and card.format_version == FORMAT_VERSION == 2
    marked = dataclasses.replace(card, pretrained=True, init_from="/models/pool")
    save_model_dir(tmp_path / "m", FaceSwapModel(marked), marked)
    written = json.loads((tmp_path / "m" / "card.json").read_text())
    assert written["format_version"] == FORMAT_VERSION and written["pretrained"] is True
    assert dataclasses.replace(ModelCard.load(tmp_path / "m"), vfxswap_version="") == marked
    with pytest.raises(ModelError, match="pretrained must be true or false"):
        ModelCard.from_json(json.dumps({**written, "pretrained": "yes"}))
