"""The compiled-program cache (vfxswap.accel.cache) with a real payload: a torch.export program of
the demo model's swap path, saved with torch.export.save and loaded with torch.export.load."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import shutil
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from vfxswap.accel.cache import (CorruptProgram, ProgramCache, check_program_file, engine_key, key_digest,
                                 load_program, pickle_globals, sha256_file)
from vfxswap.errors import EngineError, ModelError
from vfxswap.model.autoencoder import SwapPath
from vfxswap.model.card import ModelCard
from vfxswap.model.checkpoint import load_model

DEVICE_A = {"name": "NVIDIA Test GPU A", "capability": "8.9"}
DEVICE_B = {"name": "NVIDIA Test GPU B", "capability": "9.0"}


@pytest.fixture(scope="module")
def swap_path(demo_model):
    model, _ = load_model(demo_model)
    return SwapPath(model).eval()


@pytest.fixture(scope="module")
def program(swap_path):
    """The payload: the swap path exported with a dynamic batch 1..8."""
    batch = torch.export.Dim("batch", min=1, max=8)
    return torch.export.export(swap_path, (torch.rand(2, 3, 64, 64),), dynamic_shapes={"x": {0: batch}})


def make_key(model_dir: Path, **changes):
    args = dict(weights_sha256=sha256_file(model_dir / "weights.safetensors"), card=ModelCard.load(model_dir),
                device=DEVICE_A, versions={"torch": torch.__version__, "tensorrt": "10.9.0", "torch_tensorrt": "2.13.0"},
                profile={"min_batch": 1, "opt_batch": 8, "max_batch": 8, "resolution": 64}, precision="fp16")
    args.update(changes)
    return engine_key(**args)


class Builds:
    """A build callable that counts its calls and returns the exported program."""

    def __init__(self, program):
        self.program = program
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.program


def parity(swap_path):
    """A real check: the loaded program against eager PyTorch on a batch of 3 (not the export batch)."""

    def check(program):
        x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            got, expected = program.module()(x), swap_path(x)
        return {name: float((a - b).abs().max()) for name, a, b in zip(("rgb", "mask"), got, expected)}

    return check


def evil_pickle(marker: Path) -> bytes:
    """A pickle that creates the folder ``marker`` when unpickled."""

    class Evil:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    return pickle.dumps(Evil(), protocol=2)


def with_opaque_constant(src: Path, dst: Path, payload: bytes) -> None:
    """Copy a saved program, adding an "opaque" constant (torch.export.load unpickles it with pickle.loads)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/", 1)[0]
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == f"{root}/data/constants/model_constants_config.json":
                config = json.loads(data)
                config["config"]["evil"] = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True,
                                            "tensor_meta": None}
                data = json.dumps(config).encode()
            zout.writestr(info.filename, data)
        zout.writestr(f"{root}/data/constants/opaque_obj_0", payload)



def with_duplicate_entry(src: Path, dst: Path, rel: str, payload: bytes, *, first_name=lambda name: name) -> None:
    """Copy a saved program, writing ``payload`` as an extra entry just before the real entry ``rel``
    (named ``first_name(real name)``): torch's zip reader reads the first of two entries whose names
    match ignoring case, Python's ``zipfile`` the last."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        root = zin.namelist()[0].split("/", 1)[0]
        for info in zin.infolist():
            if info.filename == f"{root}/{rel}":
                zout.writestr(first_name(info.filename), payload)
            zout.writestr(info.filename, zin.read(info))


class TestKey:
    def test_same_inputs_same_digest(self, demo_model):
        a = make_key(demo_model)
        b = make_key(demo_model, versions={"torch_tensorrt": "2.13.0", "tensorrt": "10.9.0", "torch": torch.__version__})
        assert a == b and key_digest(a) == key_digest(b)
        assert len(key_digest(a)) == 64

    @pytest.mark.parametrize("change", [
        {"device": {**DEVICE_A, "name": "NVIDIA Test GPU C"}},
        {"device": {**DEVICE_A, "capability": "9.0"}},
        {"versions": {"torch": torch.__version__, "tensorrt": "10.10.0", "torch_tensorrt": "2.13.0"}},
        {"versions": {"torch": torch.__version__, "tensorrt": "10.9.0", "torch_tensorrt": "2.14.0"}},
        {"versions": {"torch": "2.14.0", "tensorrt": "10.9.0", "torch_tensorrt": "2.13.0"}},
        {"profile": {"min_batch": 1, "opt_batch": 8, "max_batch": 16, "resolution": 64}},
        {"profile": {"min_batch": 1, "opt_batch": 4, "max_batch": 8, "resolution": 64}},
        {"precision": "fp32"},
    ], ids=["gpu-name", "capability", "tensorrt", "torch-tensorrt", "torch", "max-batch", "opt-batch", "precision"])
    def test_each_dependency_changes_the_digest(self, demo_model, change):
        assert key_digest(make_key(demo_model, **change)) != key_digest(make_key(demo_model))

    def test_card_changes_the_digest(self, demo_model):
        card = ModelCard.load(demo_model)
        assert key_digest(make_key(demo_model, card=dataclasses.replace(card, steps=card.steps + 1))) != \
            key_digest(make_key(demo_model))

    def test_weights_change_the_digest(self, demo_model, tmp_path):
        weights = tmp_path / "weights.safetensors"
        shutil.copy(demo_model / "weights.safetensors", weights)
        assert sha256_file(weights) == sha256_file(demo_model / "weights.safetensors")
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1  # one bit of one weight
        weights.write_bytes(bytes(data))
        changed = make_key(demo_model, weights_sha256=sha256_file(weights, chunk_size=4096))
        assert key_digest(changed) != key_digest(make_key(demo_model))


class TestStoreAndReuse:
    def test_built_once_then_reused(self, demo_model, tmp_path, program, swap_path):
        folder = tmp_path / "export" / "tensorrt"
        key, build = make_key(demo_model), Builds(program)
        first = ProgramCache(folder).get_or_build(key, build, check=parity(swap_path))
        second = ProgramCache(folder).get_or_build(key, build, check=parity(swap_path))
        assert build.calls == 1
        assert first.built and not second.built
        assert first.path == second.path == folder / f"swap-{key_digest(key)[:16]}.ep"
        record = json.loads(first.path.with_suffix(".json").read_text())
        assert record["key"] == key and record["digest"] == key_digest(key)
        assert record["check"] == second.record["check"] and max(record["check"].values()) < 1e-5
        assert record["build_seconds"] >= 0
        x = torch.rand(5, 3, 64, 64)  # a batch size never seen: the dynamic axis survived the round trip
        with torch.no_grad():
            got, expected = second.program.module()(x), swap_path(x)
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, expected))

    def test_failed_check_keeps_nothing(self, demo_model, tmp_path, program):
        folder = tmp_path / "cache"

        def check(_):
            raise EngineError("does not reproduce PyTorch")

        with pytest.raises(EngineError, match="does not reproduce"):
            ProgramCache(folder).get_or_build(make_key(demo_model), Builds(program), check=check)
        assert not [p for p in folder.iterdir() if p.suffix in (".ep", ".json")]

    def test_unwritable_folder_builds_into_a_temp_folder(self, demo_model, tmp_path, program):
        (tmp_path / "export").write_text("a file where the export folder would be")
        cached = ProgramCache(tmp_path / "export" / "tensorrt").get_or_build(make_key(demo_model), Builds(program))
        try:
            assert cached.built and cached.path.is_file()
            assert tmp_path not in cached.path.parents
        finally:
            shutil.rmtree(cached.path.parent)


class TestRebuildAndPrune:
    def test_key_change_rebuilds_and_prunes_only_the_same_gpu(self, demo_model, tmp_path, program):
        folder = tmp_path / "tensorrt"
        cache, build = ProgramCache(folder), Builds(program)
        old_a = cache.get_or_build(make_key(demo_model), build)
        other_gpu = cache.get_or_build(make_key(demo_model, device=DEVICE_B), build)
        (folder / "notes.txt").write_text("not ours")
        upgraded = make_key(demo_model, versions={"torch": torch.__version__, "tensorrt": "10.10.0",
                                                  "torch_tensorrt": "2.13.0"})
        new_a = cache.get_or_build(upgraded, build)
        assert build.calls == 3 and new_a.built and new_a.path != old_a.path
        assert not old_a.path.exists() and not old_a.path.with_suffix(".json").exists()
        assert other_gpu.path.is_file() and other_gpu.path.with_suffix(".json").is_file()
        assert (folder / "notes.txt").is_file()
        assert cache.get_or_build(make_key(demo_model, device=DEVICE_B), build).built is False


class TestCorruptFiles:
    def test_truncated_program_is_rebuilt(self, demo_model, tmp_path, program, caplog):
        cache, build, key = ProgramCache(tmp_path), Builds(program), make_key(demo_model)
        path = cache.get_or_build(key, build).path
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with caplog.at_level(logging.WARNING, logger="vfxswap.accel.cache"):
            again = cache.get_or_build(key, build)
        assert again.built and build.calls == 2
        assert any("unusable" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)

    def test_unreadable_record_is_rebuilt(self, demo_model, tmp_path, program):
        cache, build, key = ProgramCache(tmp_path), Builds(program), make_key(demo_model)
        path = cache.get_or_build(key, build).path
        path.with_suffix(".json").write_text("{ not json")
        assert cache.get_or_build(key, build).built and build.calls == 2

    def test_pickle_renamed_ep_is_not_executed(self, demo_model, tmp_path, program):
        cache, build, key = ProgramCache(tmp_path / "cache"), Builds(program), make_key(demo_model)
        path = cache.get_or_build(key, build).path
        marker = tmp_path / "pickle-ran"
        path.write_bytes(evil_pickle(marker))
        with pytest.raises(CorruptProgram, match="not a torch.export archive"):
            check_program_file(path)
        assert cache.get_or_build(key, build).built and build.calls == 2
        assert not marker.exists()

    def test_archive_with_a_foreign_pickle_is_not_executed(self, demo_model, tmp_path, program):
        cache, build, key = ProgramCache(tmp_path / "cache"), Builds(program), make_key(demo_model)
        path = cache.get_or_build(key, build).path
        marker = tmp_path / "pickle-ran"
        crafted = tmp_path / "crafted.ep"
        with_opaque_constant(path, crafted, evil_pickle(marker))
        with pytest.raises(CorruptProgram, match="would import posix.mkdir"):
            check_program_file(crafted)
        shutil.copy(crafted, path)
        assert cache.get_or_build(key, build).built and build.calls == 2
        assert not marker.exists()

    def test_torch_export_load_alone_would_run_that_pickle(self, demo_model, tmp_path, program):
        """Why the static check exists: torch.export.load unpickles opaque constants with pickle.loads."""
        saved = ProgramCache(tmp_path / "cache").get_or_build(make_key(demo_model), Builds(program)).path
        marker = tmp_path / "pickle-ran"
        crafted = tmp_path / "crafted.ep"
        with_opaque_constant(saved, crafted, evil_pickle(marker))
        with open(crafted, "rb") as f:
            torch.export.load(f)  # loads fine: the extra constant is simply unused
        assert marker.is_dir()

    @pytest.mark.parametrize("first_name", [lambda n: n, lambda n: n.replace("/data/", "/DATA/")],
                             ids=["same-name", "name-in-other-case"])
    def test_duplicated_entry_is_refused_and_never_run(self, demo_model, tmp_path, program, first_name):
        """Item 3 of issue 15: a malicious sample-inputs pickle first, the harmless one last."""
        cache, build, key = ProgramCache(tmp_path / "cache"), Builds(program), make_key(demo_model)
        path = cache.get_or_build(key, build).path
        marker = tmp_path / "pickle-ran"
        crafted = tmp_path / "crafted.ep"
        with_duplicate_entry(path, crafted, "data/sample_inputs/model.pt", evil_pickle(marker), first_name=first_name)
        with pytest.raises(ModelError, match="more than one zip entry named .*data/sample_inputs/model.pt") as refused:
            load_program(crafted)
        assert str(crafted) in str(refused.value) and "\n" not in str(refused.value)
        with pytest.raises(ModelError, match="more than one zip entry"):
            check_program_file(crafted)
        shutil.copy(crafted, path)
        assert cache.load(key) is None and not path.exists()  # logged, deleted
        assert cache.get_or_build(key, build).built and build.calls == 2
        assert not marker.exists()

    def test_torch_export_load_alone_would_run_the_first_duplicate(self, demo_model, tmp_path, program):
        """Why duplicates are refused: torch reads the first entry (and retries a refused sample-inputs
        pickle with weights_only=False), a zipfile-based check the last."""
        saved = ProgramCache(tmp_path / "cache").get_or_build(make_key(demo_model), Builds(program)).path
        marker = tmp_path / "pickle-ran"
        crafted = tmp_path / "crafted.ep"
        with_duplicate_entry(saved, crafted, "data/sample_inputs/model.pt", evil_pickle(marker))
        with pytest.raises(RuntimeError), open(crafted, "rb") as f:
            torch.export.load(f)
        assert marker.is_dir()

    def test_a_build_writing_such_an_archive_is_an_engine_error(self, demo_model, tmp_path, program):
        saved = ProgramCache(tmp_path / "first").get_or_build(make_key(demo_model), Builds(program)).path
        marker = tmp_path / "pickle-ran"
        crafted = tmp_path / "crafted.ep"
        with_duplicate_entry(saved, crafted, "data/sample_inputs/model.pt", evil_pickle(marker))
        cache = ProgramCache(tmp_path / "cache")
        with pytest.raises(EngineError, match="does not load back: it holds more than one zip entry"):
            cache.get_or_build(make_key(demo_model), lambda: lambda path: shutil.copy(crafted, path))
        assert not list((tmp_path / "cache").glob("*.ep")) and not marker.exists()

    def test_every_models_entry_is_checked(self, demo_model, tmp_path, program):
        """torch loads every entry under models/ (taking the name minus its last 5 characters)."""
        saved = ProgramCache(tmp_path / "cache").get_or_build(make_key(demo_model), Builds(program)).path
        crafted = tmp_path / "crafted.ep"
        shutil.copy(saved, crafted)
        with zipfile.ZipFile(crafted, "a") as z:
            root = z.namelist()[0].split("/", 1)[0]
            z.writestr(f"{root}/models/other_xyzw", z.read(f"{root}/models/model.json"))
            z.writestr(f"{root}/data/sample_inputs/other_.pt", evil_pickle(tmp_path / "never"))
        with pytest.raises(ModelError, match="unexpected entry models/other_xyzw"):
            check_program_file(crafted)
        assert not (tmp_path / "never").exists()

    def test_allow_list_decides_for_opaque_constants(self, demo_model, tmp_path, program):
        saved = ProgramCache(tmp_path / "cache").get_or_build(make_key(demo_model), Builds(program)).path
        crafted = tmp_path / "crafted.ep"
        with_opaque_constant(saved, crafted, evil_pickle(tmp_path / "never"))
        check_program_file(crafted, allowed_globals=frozenset({"posix.mkdir"}))  # static: nothing runs
        assert not (tmp_path / "never").exists()


class TestPickleGlobals:
    def test_memoised_stack_globals_are_resolved(self):
        data = pickle.dumps([os.mkdir, os.rmdir, os.mkdir], protocol=4)  # "posix" comes back through the memo
        assert pickle_globals(data) == {"posix.mkdir", "posix.rmdir"}

    def test_protocol_2_globals(self):
        assert pickle_globals(pickle.dumps(os.mkdir, protocol=2)) == {"posix.mkdir"}

    def test_plain_data_imports_nothing(self):
        assert pickle_globals(pickle.dumps({"a": [1, 2.5, "x", b"y"]}, protocol=4)) == set()

    def test_garbage_is_refused(self):
        with pytest.raises(CorruptProgram):
            pickle_globals(b"\x80\x04not a pickle")
