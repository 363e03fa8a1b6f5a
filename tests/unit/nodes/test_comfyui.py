"""The ComfyUI node pack (nodes/comfyui) without ComfyUI: its contract, real swaps on IMAGE batches of the
sample plate with the demo model, and OpenColorIO EXR round trips."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import subprocess
import sys
import typing
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from vfxswap.config import ConvertConfig
from vfxswap.convert.blend import BLEND_METHODS, MASK_SOURCES
from vfxswap.convert.color import COLOR_METHODS
from vfxswap.errors import ConfigError, MediaError
from vfxswap.io import open_source

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "samples"
WORKFLOW = ROOT / "nodes" / "comfyui" / "workflows" / "swap_exr_sequence_api.json"
INPUT_SECTIONS = {"required", "optional", "hidden"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}


def defaults(node: type) -> dict:
    """The default of every widget input of a node (what a fresh node in ComfyUI holds)."""
    return {k: v[1]["default"] for k, v in node.INPUT_TYPES()["required"].items() if len(v) > 1 and "default" in v[1]}


def run_workflow(prompt: dict, mappings: dict) -> dict:
    """Execute an API-format ComfyUI prompt the way ComfyUI does: every required input present, widget
    values valid for their input type, links typed like the output they come from, nodes run once."""
    results: dict[str, tuple] = {}

    def run(node_id: str) -> tuple:
        if node_id in results:
            return results[node_id]
        node = prompt[node_id]
        cls = mappings[node["class_type"]]
        spec = cls.INPUT_TYPES()
        declared = {**spec.get("required", {}), **spec.get("optional", {})}
        missing = set(spec["required"]) - set(node["inputs"])
        assert not missing, f"node {node_id} ({node['class_type']}) misses required inputs {sorted(missing)}"
        kwargs = {}
        for name, value in node["inputs"].items():
            assert name in declared, f"node {node_id}: unknown input {name}"
            kind = declared[name][0]
            if isinstance(value, list):  # a link [node id, output index]
                source = mappings[prompt[value[0]]["class_type"]]
                assert source.RETURN_TYPES[value[1]] == kind, f"node {node_id}.{name}: {kind} linked to " \
                                                              f"{source.RETURN_TYPES[value[1]]}"
                kwargs[name] = run(value[0])[value[1]]
            else:
                check_widget(name, declared[name], value)
                kwargs[name] = value
        results[node_id] = getattr(cls(), cls.FUNCTION)(**kwargs)
        return results[node_id]

    for node_id in prompt:
        run(node_id)
    return results


def check_widget(name: str, definition: tuple, value) -> None:
    kind, options = definition[0], (definition[1] if len(definition) > 1 else {})
    if isinstance(kind, list):
        assert value in kind, f"{name}: {value!r} is not one of {kind}"
    elif kind in ("INT", "FLOAT"):
        assert isinstance(value, (int, float)) and options["min"] <= value <= options["max"], (name, value)
    elif kind == "STRING":
        assert isinstance(value, str), (name, value)
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), (name, value)
    else:
        raise AssertionError(f"{name}: a {kind} input needs a link, got {value!r}")


@pytest.fixture(scope="module")
def plate() -> torch.Tensor:
    """Three frames of the sample plate as a ComfyUI IMAGE: (3, 720, 1280, 3) float32 in [0, 1]."""
    with open_source(SAMPLES / "plate.mp4") as src:
        frames = [f.image for f, _ in zip(src.frames(), range(3))]
    return torch.from_numpy(np.stack(frames).astype(np.float32) / 255)


@pytest.fixture(scope="module")
def reference() -> torch.Tensor:
    """samples/reference_dst.png (the man in the red shirt) as a one-image IMAGE batch."""
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLES / "reference_dst.png")), cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb[None].astype(np.float32) / 255)


@pytest.fixture(scope="module")
def model(comfy, demo_model):
    node = comfy.NODE_CLASS_MAPPINGS["VFXSwapLoadModel"]
    (swap_model,) = node().load(**{**defaults(node), "model_dir": str(demo_model), "backend": "onnxruntime"})
    yield swap_model
    swap_model.close()


class TestContract:
    def test_every_node_has_the_comfyui_contract(self, comfy):
        mappings, names = comfy.NODE_CLASS_MAPPINGS, comfy.NODE_DISPLAY_NAME_MAPPINGS
        assert set(mappings) == set(names) == {
            "VFXSwapLoadModel", "VFXSwapDetectFaces", "VFXSwapSwap", "VFXSwapRunModel", "VFXSwapColorMatch",
            "VFXSwapBlend", "VFXSwapLoadSequence", "VFXSwapSaveSequence"}
        for key, cls in mappings.items():
            assert cls.__name__ == key and cls.CATEGORY == "vfxswap" and cls.DESCRIPTION
            spec = cls.INPUT_TYPES()
            assert set(spec) <= INPUT_SECTIONS and spec["required"]
            inputs = {**spec["required"], **spec.get("optional", {})}
            for name, definition in inputs.items():
                assert isinstance(definition, tuple) and 1 <= len(definition) <= 2, (key, name)
                kind = definition[0]
                assert isinstance(kind, (str, list)), (key, name)
                options = definition[1] if len(definition) > 1 else {}
                if isinstance(kind, list):
                    assert kind and options["default"] in kind, (key, name)
                elif kind in ("INT", "FLOAT"):
                    assert options["min"] <= options["default"] <= options["max"] and options["step"] > 0, (key, name)
                    assert isinstance(options["default"], int if kind == "INT" else float), (key, name)
                elif kind in WIDGET_TYPES:
                    assert "default" in options, (key, name)
            assert isinstance(cls.RETURN_TYPES, tuple) and all(isinstance(t, str) for t in cls.RETURN_TYPES)
            assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
            function = getattr(cls, cls.FUNCTION)
            inspect.signature(function).bind(None, **{n: None for n in spec["required"]})
            inspect.signature(function).bind(None, **{n: None for n in inputs})
        assert mappings["VFXSwapSaveSequence"].OUTPUT_NODE is True

    def test_swap_options_are_the_converters_options(self, comfy):
        """Every ConvertConfig field is a VFXSwapSwap input with the CLI's default and choices, or
        deliberately handled elsewhere (model loading, files)."""
        swap = comfy.NODE_CLASS_MAPPINGS["VFXSwapSwap"].INPUT_TYPES()["required"]
        load = comfy.NODE_CLASS_MAPPINGS["VFXSwapLoadModel"].INPUT_TYPES()["required"]
        config = ConvertConfig()
        for f in dataclasses.fields(ConvertConfig):
            if f.name in comfy.vfxswap_nodes.FILE_FIELDS:
                assert f.name not in swap and f.name not in load
                continue
            where = load if f.name in comfy.vfxswap_nodes.MODEL_FIELDS else swap
            assert f.name in where, f"ConvertConfig.{f.name} is not offered by any node"
            default = getattr(config, f.name)
            assert where[f.name][1]["default"] == (default if default is not None else where[f.name][1]["default"])
        assert swap["color"][0] == COLOR_METHODS.names() and swap["blend"][0] == BLEND_METHODS.names()
        assert tuple(swap["mask"][0]) == MASK_SOURCES
        hints = typing.get_type_hints(ConvertConfig)
        assert tuple(swap["faces"][0]) == typing.get_args(hints["faces"])
        assert tuple(load["backend"][0]) == typing.get_args(hints["backend"])
        assert swap["feather"][1]["min"] == 0 and swap["identity_threshold"][1]["default"] == 0.0

    def test_importing_the_pack_loads_no_torch(self):
        code = ("import importlib.util, sys\n"
                f"spec = importlib.util.spec_from_file_location('pack', {str(ROOT / 'nodes/comfyui/__init__.py')!r},"
                f" submodule_search_locations=[{str(ROOT / 'nodes/comfyui')!r}])\n"
                "m = importlib.util.module_from_spec(spec); sys.modules['pack'] = m; spec.loader.exec_module(m)\n"
                "print(len(m.NODE_CLASS_MAPPINGS), 'torch' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["8", "False"]

    def test_a_folder_named_like_the_library_is_refused(self):
        import importlib.util

        spec = importlib.util.spec_from_file_location("nodes", ROOT / "nodes/comfyui/__init__.py",
                                                      submodule_search_locations=[str(ROOT / "nodes/comfyui")])
        with pytest.raises(ImportError, match="rename it to comfyui-vfxswap"):
            spec.loader.exec_module(importlib.util.module_from_spec(spec))


@pytest.fixture(scope="module")
def swapped(comfy, model, plate, reference):
    """VFXSwapSwap's (images, matte) on the plate batch with the reference person."""
    node = comfy.NODE_CLASS_MAPPINGS["VFXSwapSwap"]
    return node().swap(model, plate, reference=reference, **defaults(node))


@pytest.fixture(scope="module")
def saved(comfy, plate, tmp_path_factory) -> Path:
    """The plate batch written by VFXSwapSaveSequence (ACEScg EXRs, default view) as shot.1001-1003.exr."""
    out = tmp_path_factory.mktemp("exr") / "shot.####.exr"
    node = comfy.NODE_CLASS_MAPPINGS["VFXSwapSaveSequence"]
    (path,) = node().save(**{**defaults(node), "images": plate, "path": str(out), "first_frame": 1001})
    return Path(path)


class TestSwap:

    def test_an_image_batch_comes_back_swapped_with_its_matte(self, swapped, plate):
        images, matte = swapped
        assert images.shape == plate.shape and images.dtype == torch.float32
        assert matte.shape == plate.shape[:3] and matte.dtype == torch.float32
        assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
        assert 0.0 <= float(matte.min()) and float(matte.max()) <= 1.0
        for i in range(3):
            inside = matte[i] > 0
            assert 0.005 < float(inside.float().mean()) < 0.1  # one face of the six
            assert torch.equal(images[i][~inside], plate[i][~inside])  # the plate outside the matte
            assert not torch.equal(images[i][inside], plate[i][inside])

    def test_the_reference_picks_one_person(self, comfy, model, plate, swapped):
        node = comfy.NODE_CLASS_MAPPINGS["VFXSwapSwap"]
        _, everyone = node().swap(model, plate, **{**defaults(node), "faces": "all"})
        _, one = swapped
        n_all = cv2.connectedComponents((everyone[0].numpy() > 0).astype(np.uint8))[0] - 1
        n_one = cv2.connectedComponents((one[0].numpy() > 0).astype(np.uint8))[0] - 1
        assert n_one == 1 and n_all >= 5
        assert torch.all(everyone[0][one[0] > 0.5] > 0)  # the reference person is one of everyone

    def test_faces_reference_needs_reference_images(self, comfy, model, plate):
        node = comfy.NODE_CLASS_MAPPINGS["VFXSwapSwap"]
        with pytest.raises(ConfigError, match="needs reference images"):
            node().swap(model, plate, **{**defaults(node), "faces": "reference"})

    def test_frames_without_faces_pass_through(self, comfy, model):
        node = comfy.NODE_CLASS_MAPPINGS["VFXSwapSwap"]
        blank = torch.full((2, 96, 128, 3), 0.4)
        images, matte = node().swap(model, blank, **defaults(node))
        assert torch.equal(images, blank) and not matte.any()

    def test_detect_run_colormatch_blend_graph(self, comfy, model, plate):
        """The modular graph: detect -> model on crops -> colour match -> blend, all as IMAGE/MASK."""
        nodes = comfy.NODE_CLASS_MAPPINGS
        faces, crops, hulls = nodes["VFXSwapDetectFaces"]().detect(plate, 256, "full", 64, "largest", model=model)
        card = model.card
        assert [f.frame for f in faces] == [0, 1, 2]
        assert crops.shape == (3, card.resolution, card.resolution, 3) and hulls.shape == crops.shape[:3]
        assert {f.aligned.face_type for f in faces} == {card.face_type}  # the model's geometry, not the widgets'
        swapped, learned = nodes["VFXSwapRunModel"]().run(model, faces, 8)
        assert swapped.shape == crops.shape and learned.shape == hulls.shape
        (matched,) = nodes["VFXSwapColorMatch"]().match(swapped, crops, "rct", mask=hulls)
        assert matched.shape == crops.shape and not torch.equal(matched, swapped)
        images, matte = nodes["VFXSwapBlend"]().blend(plate, faces, matched, "feather", 0, 8, mask=learned * hulls)
        assert images.shape == plate.shape and matte.shape == plate.shape[:3]
        for i in range(3):
            inside = matte[i] > 0
            assert inside.any() and torch.equal(images[i][~inside], plate[i][~inside])

    def test_blend_takes_crops_of_another_size(self, comfy, plate):
        """Crops made at 128 px and swapped elsewhere at 256 px land on the same pixels."""
        nodes = comfy.NODE_CLASS_MAPPINGS
        frame = plate[:1]
        faces, crops, _ = nodes["VFXSwapDetectFaces"]().detect(frame, 128, "whole_face", 64, "largest")
        dark = torch.zeros_like(crops)
        _, small = nodes["VFXSwapBlend"]().blend(frame, faces, dark, "feather", 0, 0)
        big = torch.nn.functional.interpolate(dark.permute(0, 3, 1, 2), size=256).permute(0, 2, 3, 1)
        _, large = nodes["VFXSwapBlend"]().blend(frame, faces, big, "feather", 0, 0)
        a, b = small[0].numpy() > 0.5, large[0].numpy() > 0.5
        assert a.sum() > 1000 and (a & b).sum() / (a | b).sum() > 0.95

    def test_mismatched_crops_are_one_line_errors(self, comfy, model, plate):
        nodes = comfy.NODE_CLASS_MAPPINGS
        faces, crops, _ = nodes["VFXSwapDetectFaces"]().detect(plate[:1], 128, "head", 64, "largest")
        with pytest.raises(ConfigError, match="trained on whole_face faces"):
            nodes["VFXSwapRunModel"]().run(model, faces, 8)
        with pytest.raises(ConfigError, match="2 swapped crops for 1 faces"):
            nodes["VFXSwapBlend"]().blend(plate[:1], faces, crops.repeat(2, 1, 1, 1), "feather", 0, 8)
        with pytest.raises(MediaError, match="no face found in 2 images"):
            nodes["VFXSwapDetectFaces"]().detect(torch.zeros(2, 64, 64, 3), 128, "whole_face", 64, "all")


class TestSequences:
    def test_save_writes_a_scene_linear_exr_sequence(self, saved, plate):
        folder = saved.parent
        assert sorted(p.name for p in folder.iterdir()) == ["shot.1001.exr", "shot.1002.exr", "shot.1003.exr"]
        spec = oiio.ImageInput.open(str(folder / "shot.1001.exr"))
        try:
            assert spec.spec().format == "half" and spec.spec().nchannels == 3
            pixels = spec.read_image("float")
        finally:
            spec.close()
        # ACEScg through the inverse ACES 2.0 SDR view: display white is well above 1.0 in the scene.
        assert pixels.max() > 1.0 and pixels.shape == (720, 1280, 3)
        assert np.corrcoef(pixels[..., 1].ravel(), plate[0, ..., 1].numpy().ravel())[0, 1] > 0.8

    def test_load_gives_back_the_display_referred_images(self, comfy, saved, plate):
        node = comfy.NODE_CLASS_MAPPINGS["VFXSwapLoadSequence"]
        images, first = node().load(**{**defaults(node), "path": str(saved)})
        assert first == 1001 and images.shape == plate.shape and images.dtype == torch.float32
        diff = (images - plate).abs()
        assert float(diff.mean()) < 2e-3 and float(diff.max()) < 0.05  # half floats, one OCIO round trip

    def test_load_a_frame_range_through_another_view(self, comfy, saved):
        node = comfy.NODE_CLASS_MAPPINGS["VFXSwapLoadSequence"]
        images, first = node().load(**{**defaults(node), "path": str(saved), "frames": "1002-1003",
                                       "view": "Un-tone-mapped"})
        assert first == 1002 and images.shape[0] == 2
        aces, _ = node().load(**{**defaults(node), "path": str(saved), "frames": "1002-1003"})
        assert not torch.allclose(images, aces, atol=1e-2)  # the view is really applied

    def test_is_changed_follows_the_files(self, comfy, saved):
        node = comfy.NODE_CLASS_MAPPINGS["VFXSwapLoadSequence"]
        before = node.IS_CHANGED(path=str(saved), frames="")
        assert node.IS_CHANGED(path=str(saved), frames="") == before
        (saved.parent / "shot.1004.exr").write_bytes((saved.parent / "shot.1003.exr").read_bytes())
        try:
            assert node.IS_CHANGED(path=str(saved), frames="") != before
        finally:
            (saved.parent / "shot.1004.exr").unlink()

    def test_unknown_colour_names_are_one_line_errors(self, comfy, saved):
        node = comfy.NODE_CLASS_MAPPINGS["VFXSwapLoadSequence"]
        with pytest.raises(ConfigError, match="has no view 'Filmic'; use one of .*'Un-tone-mapped'"):
            node().load(**{**defaults(node), "path": str(saved), "view": "Filmic"})
        with pytest.raises(ConfigError, match="has no colour space 'LogC9'"):
            node().load(**{**defaults(node), "path": str(saved), "colorspace": "LogC9"})
        with pytest.raises(MediaError, match="no files match"):
            node().load(**{**defaults(node), "path": str(saved.parent / "other.####.exr")})
        save = comfy.NODE_CLASS_MAPPINGS["VFXSwapSaveSequence"]
        with pytest.raises(ConfigError, match="written as EXR"):
            save().save(**{**defaults(save), "images": torch.zeros(1, 8, 8, 3), "path": str(saved.parent / "x.####.png")})

    def test_example_workflow_runs(self, comfy, saved, demo_model, tmp_path):
        """nodes/comfyui/workflows/swap_exr_sequence_api.json, with its paths pointed at test data."""
        prompt = copy.deepcopy(json.loads(WORKFLOW.read_text()))
        prompt["1"]["inputs"]["model_dir"] = str(demo_model)
        prompt["1"]["inputs"]["backend"] = "onnxruntime"
        prompt["2"]["inputs"]["path"] = str(saved)
        prompt["2"]["inputs"]["frames"] = "1002-1003"
        prompt["4"]["inputs"]["path"] = str(tmp_path / "out" / "sh010_swap.####.exr")
        results = run_workflow(prompt, comfy.NODE_CLASS_MAPPINGS)
        images, matte = results["3"]
        assert images.shape == (2, 720, 1280, 3) and matte.shape == (2, 720, 1280) and matte.any()
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["sh010_swap.1002.exr", "sh010_swap.1003.exr"]
