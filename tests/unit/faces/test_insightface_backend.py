"""The insightface face-analysis backend.

Three groups:

* error paths (always): missing/empty/partial folders, corrupt model files, bad options;
* a synthetic model pack (always): tiny real ONNX models with the I/O of SCRFD, 1k3d68 and ArcFace,
  written into a buffalo_l-named folder and run by ONNX Runtime through insightface's model classes.
  They check the plumbing -- colour order, letterbox scaling, box/landmark coordinates, region crops,
  alignment -- against answers known by construction, not the models' accuracy;
* a real pack (when one is present: ``VFXSWAP_INSIGHTFACE_MODELS`` or
  ``~/.insightface/models/buffalo_l``): the six faces of insightface's own ``t1.jpg``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vfxswap.errors import ConfigError, ModelError
from vfxswap.faces.analysis import FaceAnalyzer, identity_distance, open_analyzer
from vfxswap.faces.insightface_backend import KNOWN_PACKS, InsightFaceAnalyzer, find_pack, five_points

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("insightface")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

BUFFALO_L = KNOWN_PACKS[0]
ANTELOPE = next(p for p in KNOWN_PACKS if p.name == "antelopev2")
CPU = ["CPUExecutionProvider"]


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


# ------------------------------------------------------------------------------------------------
# Synthetic models. Each is a real ONNX graph with the input/output layout of the insightface model
# it stands in for, built so that its answer is known:
#   detector   -- fires (score ~1) on the stride-8 cell whose 8x8 input patch is brighter than ~218,
#                 with a constant box of +-BOX_HALF input pixels around the cell's anchor point;
#   landmarks  -- always answers insightface's mean 68-point shape in its normalised crop frame;
#   recognition-- a fixed random projection of the 8x8 average-pooled 112 px crop.
# ------------------------------------------------------------------------------------------------

BOX_HALF = 48  # detector box half-side in detector-input pixels (6 strides of 8)
OPSET = [helper.make_opsetid("", 13)]
IR_VERSION = 8  # what every onnxruntime >= 1.10 reads


def _const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _head(nodes, inits, name, stride, channels, width, weight, bias):
    """Conv (kernel = stride = ``stride``) -> NHWC -> (cells * anchors, width) output."""
    inits += [_const(f"{name}_w", np.full((channels, 3, stride, stride), weight, np.float32)),
              _const(f"{name}_b", np.full((channels,), bias, np.float32)),
              _const(f"{name}_shape", np.array([-1, width], np.int64))]
    nodes += [helper.make_node("Conv", ["input.1", f"{name}_w", f"{name}_b"], [f"{name}_conv"],
                               kernel_shape=[stride, stride], strides=[stride, stride])]
    last = f"{name}_conv"
    if name.startswith("score"):
        nodes += [helper.make_node("Sigmoid", [last], [f"{name}_sig"])]
        last = f"{name}_sig"
    nodes += [helper.make_node("Transpose", [last], [f"{name}_nhwc"], perm=[0, 2, 3, 1]),
              helper.make_node("Reshape", [f"{name}_nhwc", f"{name}_shape"], [name])]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n_" + name, width])


def synthetic_detector() -> onnx.ModelProto:
    nodes, inits, outputs = [], [], []
    gain, level = 40.0, 0.7  # logit = gain * (mean of normalised patch - level)
    for stride in (8, 16, 32):
        fires = stride == 8
        outputs.append(_head(nodes, inits, f"score_{stride}", stride, 2, 1,
                             gain / (3 * stride * stride) if fires else 0.0,
                             -gain * level if fires else -30.0))
    for stride in (8, 16, 32):
        outputs.append(_head(nodes, inits, f"bbox_{stride}", stride, 8, 4, 0.0, BOX_HALF / stride))
    for stride in (8, 16, 32):
        outputs.append(_head(nodes, inits, f"kps_{stride}", stride, 20, 10, 0.0, 0.0))
    graph = helper.make_graph(
        nodes, "synthetic_scrfd",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "height", "width"])],
        outputs, inits)
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR_VERSION)


def mean_shape() -> np.ndarray:
    from insightface.data import get_object

    return np.asarray(get_object("meanshape_68.pkl"), np.float32)  # (68, 3), crop spans [-1, 1]


def synthetic_landmarks() -> onnx.ModelProto:
    answer = np.concatenate([np.zeros((1103 - 68) * 3, np.float32), mean_shape().reshape(-1)])
    nodes = [helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "zero_w"], ["proj"]),
             helper.make_node("Add", ["proj", "answer"], ["fc1"])]
    inits = [_const("zero_w", np.zeros((3, 3309), np.float32)), _const("answer", answer)]
    graph = helper.make_graph(
        nodes, "synthetic_1k3d68",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 3309])], inits)
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR_VERSION)


def synthetic_recognition() -> onnx.ModelProto:
    proj = np.random.default_rng(7).standard_normal((192, 512)).astype(np.float32)
    nodes = [helper.make_node("AveragePool", ["data"], ["pooled"], kernel_shape=[14, 14], strides=[14, 14]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "proj"], ["fc1"])]
    graph = helper.make_graph(
        nodes, "synthetic_arcface",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["batch", 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["batch", 512])], [_const("proj", proj)])
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR_VERSION)


@pytest.fixture(scope="module")
def synthetic_models(tmp_path_factory) -> dict[str, bytes]:
    models = {"detector": synthetic_detector(), "landmarks": synthetic_landmarks(),
              "recognition": synthetic_recognition()}
    for model in models.values():
        onnx.checker.check_model(model)
    return {role: model.SerializeToString() for role, model in models.items()}


def write_pack(folder: Path, models: dict[str, bytes], pack=BUFFALO_L) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for role, filename in zip(("detector", "landmarks", "recognition"), pack.files):
        (folder / filename).write_bytes(models[role])
    return folder


@pytest.fixture(scope="module")
def synthetic_pack(tmp_path_factory, synthetic_models) -> Path:
    return write_pack(tmp_path_factory.mktemp("packs") / "buffalo_l", synthetic_models)


@pytest.fixture(scope="module")
def analyzer(synthetic_pack) -> InsightFaceAnalyzer:
    return InsightFaceAnalyzer(face_models=synthetic_pack, providers=CPU)


def plate(seed: int, width: int = 640, height: int = 480, block: int = 16) -> np.ndarray:
    """Blocky RGB texture (dim: 40-215, mean ~127) -- a 'person' -- that the detector never fires on."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(40, 216, size=(height // block + 1, width // block + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(cells, block, 0), block, 1)[:height, :width])


def with_face(image: np.ndarray, x: int, y: int, side: int = 8) -> np.ndarray:
    """Put the synthetic detector's trigger (a white ``side`` px square) at ``(x, y)``."""
    out = image.copy()
    out[y:y + side, x:x + side] = 255
    return out


# ------------------------------------------------------------------------------------------------
# Error paths
# ------------------------------------------------------------------------------------------------


class TestModelFolder:
    def test_missing_folder(self, tmp_path):
        folder = tmp_path / "nowhere"
        with pytest.raises(ModelError) as exc:
            InsightFaceAnalyzer(face_models=folder)
        message = one_line(exc)
        assert str(folder) in message and "does not exist" in message
        assert "buffalo_l" in message and "never downloads" in message

    def test_file_instead_of_folder(self, tmp_path):
        path = tmp_path / "det_10g.onnx"
        path.write_bytes(b"")
        with pytest.raises(ModelError, match="is not a folder"):
            InsightFaceAnalyzer(face_models=path)

    def test_empty_folder_lists_every_pack(self, tmp_path):
        with pytest.raises(ModelError) as exc:
            InsightFaceAnalyzer(face_models=tmp_path)
        message = one_line(exc)
        assert str(tmp_path) in message and "found no .onnx files" in message
        for pack in KNOWN_PACKS:
            assert pack.name in message
            assert all(name in message for name in pack.files)
        assert f"unpack an insightface model pack such as buffalo_l into {tmp_path}" in message

    def test_pack_without_68_point_landmarks(self, tmp_path):
        for name in ("det_500m.onnx", "w600k_mbf.onnx"):  # buffalo_sc
            (tmp_path / name).write_bytes(b"x")
        with pytest.raises(ModelError) as exc:
            find_pack(tmp_path)
        assert "found det_500m.onnx, w600k_mbf.onnx" in one_line(exc)

    def test_parent_folder_gets_a_hint(self, tmp_path, synthetic_models):
        write_pack(tmp_path / "buffalo_l", synthetic_models)
        with pytest.raises(ModelError) as exc:
            InsightFaceAnalyzer(face_models=tmp_path)
        assert f"did you mean {tmp_path / 'buffalo_l'}?" in one_line(exc)

    def test_packs_found_by_their_names(self, tmp_path, synthetic_models):
        write_pack(tmp_path / "antelopev2", synthetic_models, ANTELOPE)
        pack, folder = find_pack(tmp_path / "antelopev2")
        assert pack is ANTELOPE and folder == tmp_path / "antelopev2"
        assert InsightFaceAnalyzer(face_models=folder, providers=CPU).pack is ANTELOPE

    @pytest.mark.parametrize("role,filename", list(zip(("detector", "landmarks", "recognition"),
                                                        BUFFALO_L.files)))
    def test_zero_byte_model_names_the_file(self, tmp_path, synthetic_models, role, filename):
        folder = write_pack(tmp_path / "buffalo_l", synthetic_models)
        (folder / filename).write_bytes(b"")
        with pytest.raises(ModelError) as exc:
            InsightFaceAnalyzer(face_models=folder, providers=CPU)
        assert str(folder / filename) in one_line(exc)

    @pytest.mark.parametrize("filename", BUFFALO_L.files)
    def test_garbage_model_names_the_file(self, tmp_path, synthetic_models, filename):
        folder = write_pack(tmp_path / "buffalo_l", synthetic_models)
        (folder / filename).write_bytes(b"this is not an onnx model\n" * 40)
        with pytest.raises(ModelError) as exc:
            InsightFaceAnalyzer(face_models=folder, providers=CPU)
        message = one_line(exc)
        assert str(folder / filename) in message and "corrupt" in message

    def test_wrong_model_under_a_known_name(self, tmp_path, synthetic_models):
        folder = write_pack(tmp_path / "buffalo_l", synthetic_models)
        (folder / "det_10g.onnx").write_bytes(synthetic_models["recognition"])
        with pytest.raises(ModelError) as exc:
            InsightFaceAnalyzer(face_models=folder, providers=CPU)
        message = one_line(exc)
        assert str(folder / "det_10g.onnx") in message and "SCRFD" in message


class TestOptions:
    def test_through_the_registry(self, synthetic_pack):
        found = open_analyzer("insightface", face_models=synthetic_pack, providers=CPU)
        assert isinstance(found, InsightFaceAnalyzer) and isinstance(found, FaceAnalyzer)
        assert found.name == "insightface" and found.pack is BUFFALO_L
        assert found.min_face == 20 and found.identity_threshold == 0.6

    def test_unknown_keyword(self, synthetic_pack):
        with pytest.raises(ConfigError) as exc:
            open_analyzer("insightface", face_models=synthetic_pack, det_sise=320)
        message = one_line(exc)
        assert "det_sise" in message and "face_models, det_size, det_thresh, providers" in message

    def test_keyword_only(self, synthetic_pack):
        with pytest.raises(TypeError):
            InsightFaceAnalyzer(synthetic_pack)  # type: ignore[misc]

    @pytest.mark.parametrize("options,match", [
        ({"det_size": 600}, "multiple of 32"),
        ({"det_size": 0}, "multiple of 32"),
        ({"det_thresh": 1.5}, r"in \(0, 1\)"),
        ({"det_thresh": "high"}, "number"),
        ({"providers": ["NoSuchExecutionProvider"]},
         "NoSuchExecutionProvider not available.*CPUExecutionProvider"),
        ({"providers": []}, "non-empty"),
    ])
    def test_bad_options(self, synthetic_pack, options, match):
        with pytest.raises(ConfigError, match=match):
            InsightFaceAnalyzer(face_models=synthetic_pack, **options)

    def test_default_providers(self, analyzer, synthetic_pack):
        import onnxruntime

        default = InsightFaceAnalyzer(face_models=synthetic_pack)
        cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        assert default.providers == (["CUDAExecutionProvider"] if cuda else []) + CPU
        assert analyzer.providers == CPU

    def test_fixed_size_detector_asks_for_its_size(self, tmp_path, synthetic_models):
        model = onnx.load_from_string(synthetic_models["detector"])
        dims = model.graph.input[0].type.tensor_type.shape.dim
        dims[2].dim_value, dims[3].dim_value = 320, 320
        folder = write_pack(tmp_path / "buffalo_l", synthetic_models)
        (folder / "det_10g.onnx").write_bytes(model.SerializeToString())
        with pytest.raises(ConfigError, match="det_size=320"):
            InsightFaceAnalyzer(face_models=folder, providers=CPU)
        assert InsightFaceAnalyzer(face_models=folder, det_size=320, providers=CPU).det_size == 320


class TestLazyImport:
    def run(self, code: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    def test_module_import_loads_no_runtime(self):
        done = self.run("import sys, vfxswap.faces.insightface_backend\n"
                        "print(sorted(m for m in ('insightface', 'onnxruntime', 'onnx')\n"
                        "             if m in sys.modules))")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]"

    def test_missing_insightface(self, synthetic_pack):
        done = self.run(
            "import sys\nsys.modules['insightface'] = None  # as if not installed\n"
            "from vfxswap.errors import EngineError\nfrom vfxswap.faces.analysis import open_analyzer\n"
            "try:\n"
            f"    open_analyzer('insightface', face_models={str(synthetic_pack)!r})\n"
            "except EngineError as exc:\n    print(exc)\n")
        assert done.returncode == 0, done.stderr
        assert "the insightface backend needs `pip install vfxswap[insightface]`" in done.stdout


# ------------------------------------------------------------------------------------------------
# The synthetic pack: coordinates and plumbing
# ------------------------------------------------------------------------------------------------


class TestDetectSynthetic:
    def test_finds_the_face_where_it_is(self, analyzer):
        faces = analyzer.detect(with_face(plate(1), 320, 200))
        assert len(faces) == 1
        face = faces[0]
        assert face.box == pytest.approx((320 - BOX_HALF, 200 - BOX_HALF, 320 + BOX_HALF, 200 + BOX_HALF))
        assert face.score > 0.99 and face.embedding is None and face.track_id is None
        assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32

    def test_box_scales_back_to_image_pixels(self, analyzer):
        # a 1280x960 plate is letterboxed into 640x640 at half scale
        faces = analyzer.detect(with_face(plate(1, 1280, 960, 32), 640, 416, side=16))
        assert len(faces) == 1
        assert faces[0].box == pytest.approx((640 - 96, 416 - 96, 640 + 96, 416 + 96))

    def test_no_face(self, analyzer):
        assert analyzer.detect(plate(2)) == []
        assert analyzer.detect(np.zeros((64, 96, 3), np.uint8)) == []

    def test_landmarks_framed_by_the_box(self, analyzer):
        face = analyzer.detect(with_face(plate(1), 320, 200))[0]
        # 1k3d68's crop is 1.5x the box around its centre, spanning [-1, 1]: the mean shape maps
        # to centre + shape * 1.5 * side / 2
        expected = np.array([320, 200]) + mean_shape()[:, :2] * 1.5 * 2 * BOX_HALF / 2
        np.testing.assert_allclose(face.landmarks, expected, atol=0.05)
        x0, y0, x1, y1 = face.box
        assert np.all((face.landmarks >= (x0, y0)) & (face.landmarks <= (x1, y1)))

    @pytest.mark.parametrize("x,y", [(320, 200), (8, 8), (632, 472)])
    def test_landmarks_from_a_box_match_detection(self, analyzer, x, y):
        image = with_face(plate(3), x, y)
        face = analyzer.detect(image)[0]
        np.testing.assert_allclose(analyzer.landmarks(image, face.box), face.landmarks, atol=0.05)

    def test_rejects_bad_images_and_boxes(self, analyzer):
        image = plate(1)
        for bad in (image.astype(np.float32), image[..., 0], np.zeros((0, 4, 3), np.uint8)):
            with pytest.raises(ConfigError):
                analyzer.detect(bad)
        with pytest.raises(ConfigError, match="x1 > x0"):
            analyzer.landmarks(image, (10, 10, 5, 20))
        with pytest.raises(ConfigError, match="outside"):
            analyzer.landmarks(image, (5000, 5000, 5100, 5100))


class TestEmbedSynthetic:
    def test_normalised_512(self, analyzer):
        image = with_face(plate(1), 320, 200)
        embedding = analyzer.embed(image, analyzer.detect(image)[0].landmarks)
        assert embedding.shape == (512,) and embedding.dtype == np.float32
        assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)

    def test_same_face_shifted_is_closer_than_another(self, analyzer):
        a = with_face(plate(1), 320, 208)
        a_shifted = np.roll(a, (32, -48), axis=(0, 1))  # the texture's 16 px blocks move whole
        b = with_face(plate(4), 320, 208)
        emb = [analyzer.embed(img, analyzer.detect(img)[0].landmarks) for img in (a, a_shifted, b)]
        same, other = identity_distance(emb[0], emb[1]), identity_distance(emb[0], emb[2])
        assert same < 1e-3 < 0.3 < other

    def test_colour_order_reaches_the_model(self, analyzer):
        # RGB and its channel-swapped copy must embed differently: the RGB->BGR conversion is real
        image = with_face(plate(5), 320, 200)
        lm = analyzer.detect(image)[0].landmarks
        swapped = np.ascontiguousarray(image[..., ::-1])
        assert identity_distance(analyzer.embed(image, lm), analyzer.embed(swapped, lm)) > 0.01

    def test_five_points(self):
        lm = np.arange(136, dtype=np.float32).reshape(68, 2)
        pts = five_points(lm)
        np.testing.assert_allclose(pts[0], lm[36:42].mean(0))
        np.testing.assert_allclose(pts[1], lm[42:48].mean(0))
        np.testing.assert_allclose(pts[2:], lm[[30, 48, 54]])

    def test_rejects_bad_landmarks(self, analyzer):
        with pytest.raises(ConfigError, match=r"\(68, 2\)"):
            analyzer.embed(plate(1), np.zeros((5, 2), np.float32))


# ------------------------------------------------------------------------------------------------
# A real model pack
# ------------------------------------------------------------------------------------------------


def real_pack() -> Path | None:
    env = os.environ.get("VFXSWAP_INSIGHTFACE_MODELS")
    if env:
        return Path(env).expanduser()  # asked for explicitly: a broken pack fails, never skips
    default = Path("~/.insightface/models/buffalo_l").expanduser()
    return default if default.is_dir() else None


@pytest.fixture(scope="module")
def real_analyzer() -> InsightFaceAnalyzer:
    folder = real_pack()
    if folder is None:
        pytest.skip("no insightface model pack: set VFXSWAP_INSIGHTFACE_MODELS to an unpacked pack "
                    "(buffalo_l, buffalo_m, buffalo_s or antelopev2) or unpack buffalo_l into "
                    "~/.insightface/models/buffalo_l")
    return InsightFaceAnalyzer(face_models=folder)


@pytest.fixture(scope="module")
def t1() -> np.ndarray:
    spec = importlib.util.find_spec("insightface")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "images" / "t1.jpg"
    image = cv2.imread(str(path))
    assert image is not None, f"cannot read {path}"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class TestRealPack:
    def test_six_faces_with_landmarks_in_their_boxes(self, real_analyzer, t1):
        faces = real_analyzer.detect(t1)
        assert len(faces) == 6
        for face in faces:
            x0, y0, x1, y1 = face.box
            margin = 0.1 * max(x1 - x0, y1 - y0)  # jaw points of a turned head may touch the edge
            assert face.score >= real_analyzer.det_thresh
            assert np.all(face.landmarks >= (x0 - margin, y0 - margin))
            assert np.all(face.landmarks <= (x1 + margin, y1 + margin))
            assert face.landmarks[8, 1] > face.landmarks[27, 1]  # chin below the nose bridge
            assert face.landmarks[36, 0] < face.landmarks[45, 0]  # iBUG order: image-left eye first
            np.testing.assert_allclose(real_analyzer.landmarks(t1, face.box), face.landmarks, atol=0.5)

    @pytest.mark.parametrize("variant", ["flipped", "shifted"])
    def test_same_face_closer_than_another_person(self, real_analyzer, t1, variant):
        h, w = t1.shape[:2]
        if variant == "flipped":
            other = np.ascontiguousarray(t1[:, ::-1])
            move = lambda box: ((w - 1 - box[0] + w - 1 - box[2]) / 2, (box[1] + box[3]) / 2)  # noqa: E731
        else:
            other = np.zeros((h + 24, w + 40, 3), np.uint8)  # a bigger canvas: nothing is cut off
            other[24:, 40:] = t1
            move = lambda box: ((box[0] + box[2]) / 2 + 40, (box[1] + box[3]) / 2 + 24)  # noqa: E731
        faces = real_analyzer.detect(t1)
        moved = real_analyzer.detect(other)
        assert len(moved) == len(faces) == 6
        original = [real_analyzer.embed(t1, f.landmarks) for f in faces]
        centres = np.array([((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2) for f in moved])
        for face, embedding in zip(faces, original):
            match = moved[int(np.argmin(np.linalg.norm(centres - move(face.box), axis=1)))]
            same = identity_distance(embedding, real_analyzer.embed(other, match.landmarks))
            others = [identity_distance(embedding, e) for e in original if e is not embedding]
            assert same < real_analyzer.identity_threshold
            assert same < min(others)
