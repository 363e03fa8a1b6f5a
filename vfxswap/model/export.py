"""Export a trained model's swap path for other runtimes (``vfxswap export``).

Three files, each written to a temporary name and renamed into place, each checked against PyTorch
before it is written (a file that does not reproduce the model never lands under its final name):

- ``export/swap.onnx`` (:func:`export_onnx`): input ``face`` ``(B, 3, R, R)`` float32 RGB in [0, 1];
  outputs ``rgb`` ``(B, 3, R, R)`` and ``mask`` ``(B, 1, R, R)`` in [0, 1]; dynamic batch. The
  :class:`~vfxswap.model.card.ModelCard` rides along as JSON in the model's ``metadata_props``
  (key ``vfxswap.card``), so a runner reads resolution and face type instead of guessing.
- ``export/swap.torchscript.pt`` (:func:`export_torchscript`): a traced TorchScript module for
  Nuke's CatFileCreator. Nuke's Inference node takes one tensor and returns one tensor, so this
  module returns RGBA ``(B, 4, R, R)``: swapped RGB in channels 0-2, the mask in channel 3. The card
  is stored as the extra file ``vfxswap.card.json``.
- ``export/model.dfm`` (:func:`export_dfm`): DeepFaceLab's ``.dfm`` contract as read by
  DeepFaceLive's ``DFMModel`` and FaceFusion's deep swapper: an ONNX model with input ``in_face:0``
  ``(B, R, R, 3)`` NHWC **BGR** float32 in [0, 1] and outputs, in this order, ``out_face_mask:0``
  ``(B, R, R, 1)`` (the dst decoder's mask of the input face), ``out_celeb_face:0`` ``(B, R, R, 3)``
  BGR (the swapped face) and ``out_celeb_face_mask:0`` ``(B, R, R, 1)`` (the swapped face's mask).
  Height and width are fixed (DeepFaceLive reads them from the input shape); the batch is dynamic.

ONNX files are made with PyTorch's TorchScript-based exporter (``dynamo=False``): it works offline
with only ``torch`` and ``onnx``, while the torch.export-based exporter needs ``onnxscript``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import ConfigError, EngineError, ModelError, OutputError
from .autoencoder import FaceSwapModel, SwapPath
from .card import ModelCard
from ..atomic import replace_atomically
from .checkpoint import load_model

log = logging.getLogger(__name__)

ExportFormat = Literal["onnx", "torchscript", "dfm", "tensorrt"]
EXPORT_FORMATS: tuple[str, ...] = ("onnx", "torchscript", "dfm", "tensorrt")
DEFAULT_FILES: dict[str, str] = {"onnx": "swap.onnx", "torchscript": "swap.torchscript.pt", "dfm": "model.dfm"}
EXPORT_DIR = "export"
CARD_KEY = "vfxswap.card"  # ONNX metadata_props key; the TorchScript extra file is CARD_KEY + ".json"
DEFAULT_OPSET = 17
MIN_OPSET = 11
TOLERANCE = 1e-3  # largest max-abs difference to PyTorch accepted by the check
CHECK_BATCH = 3  # differs from the tracing batch, so the check also proves the batch axis is dynamic
TRACE_BATCH = 2
DFM_INPUT = "in_face:0"
DFM_OUTPUTS: tuple[str, ...] = ("out_face_mask:0", "out_celeb_face:0", "out_celeb_face_mask:0")
_PROTOBUF_LIMIT = 2**31 - 2**26  # one ONNX file cannot exceed 2 GiB; keep 64 MiB for the graph


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportReport:
    """What :func:`export_onnx`, :func:`export_torchscript` or :func:`export_dfm` wrote.

    Attributes:
        path: the exported file.
        format: ``onnx``, ``torchscript``, ``dfm`` or ``tensorrt``.
        max_abs_diff: largest absolute difference to eager PyTorch over all outputs of a fixed random
            batch of 3 faces (``None`` when the check was skipped).
        diffs: that difference per output name (empty when the check was skipped).
        seconds: wall time of the export, check included.
    """

    path: Path
    format: ExportFormat
    max_abs_diff: float | None
    diffs: Mapping[str, float] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


class _RGBAPath(nn.Module):
    """``(B, 3, R, R)`` RGB in [0, 1] -> ``(B, 4, R, R)`` RGBA: the swap and its mask in one tensor."""

    def __init__(self, model: FaceSwapModel) -> None:
        super().__init__()
        self.swap = SwapPath(model)

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        rgb, mask = self.swap(face)
        return torch.cat([rgb, mask], dim=1)


class DFMPath(nn.Module):
    """The DeepFaceLab ``.dfm`` contract around a :class:`FaceSwapModel` (NHWC BGR in and out).

    ``forward(in_face)`` takes ``(B, R, R, 3)`` float32 BGR in [0, 1] and returns
    ``(out_face_mask (B,R,R,1), out_celeb_face (B,R,R,3) BGR, out_celeb_face_mask (B,R,R,1))``.
    The encoder (and for ``liae`` the ``inter_ab`` code) runs once and feeds both decoders, exactly
    as :meth:`FaceSwapModel.forward` computes the ``swap`` and ``dst`` sides. Without a mask head
    both masks are all ones.
    """

    def __init__(self, model: FaceSwapModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, in_face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = self.model
        x = in_face.permute(0, 3, 1, 2).flip(1)  # NHWC BGR -> NCHW RGB
        features = m.encoder(x)
        if m.card.arch == "df":
            z = m.inter(features)
            celeb, celeb_mask = m.decoder_src(z)
            _, face_mask = m.decoder_dst(z)
        else:
            ab = m.inter_ab(features)
            celeb, celeb_mask = m.decoder(torch.cat([ab, ab], dim=1))
            _, face_mask = m.decoder(torch.cat([ab, m.inter_b(features)], dim=1))
        if celeb_mask is None or face_mask is None:
            celeb_mask = face_mask = torch.ones_like(celeb[:, :1])
        return (face_mask.permute(0, 2, 3, 1),
                celeb.flip(1).permute(0, 2, 3, 1),  # RGB -> BGR, NCHW -> NHWC
                celeb_mask.permute(0, 2, 3, 1))


# ----------------------------------------------------------------------------------------------
# public API


def export_onnx(model_dir: str | os.PathLike, *, out: str | os.PathLike | None = None,
                opset: int = DEFAULT_OPSET, check: bool = True,
                extra_metadata: Mapping[str, str] | None = None) -> ExportReport:
    """Export the swap path to ONNX (``MODEL_DIR/export/swap.onnx`` unless ``out`` is given).

    The model takes ``face`` ``(B, 3, R, R)`` float32 RGB in [0, 1] and returns ``rgb``
    ``(B, 3, R, R)`` and ``mask`` ``(B, 1, R, R)`` in [0, 1]; B is dynamic, R is ``card.resolution``.

    Args:
        model_dir: a model dir (``card.json`` + ``weights.safetensors``).
        out: file to write instead of the default.
        opset: ONNX opset version.
        check: run the file in ONNX Runtime (CPU) on a fixed random batch of 3 and compare with PyTorch.
        extra_metadata: more ``metadata_props`` entries (e.g. a runner's cache key).

    Raises:
        ModelError: a missing or invalid model dir.
        OutputError: the output cannot be written.
        EngineError: ``onnx``/``onnxruntime`` missing, the export failed, or the check found a
            difference above 1e-3.
    """
    start = time.perf_counter()
    model, card = load_model(model_dir)
    path = _output_path(model_dir, out, "onnx")
    swap = SwapPath(model).eval()
    data = to_onnx(swap, _example(card, TRACE_BATCH), card, input_names=["face"],
                    output_names=["rgb", "mask"], opset=opset, kind="swap", extra_metadata=extra_metadata)
    diffs: dict[str, float] = {}
    if check:
        face = _example(card, CHECK_BATCH)
        with torch.no_grad():
            expected = [t.numpy() for t in swap(face)]
        diffs = _compare(["rgb", "mask"], _run_onnx(data, {"face": face.numpy()}), expected, path)
    _write(path, lambda tmp: tmp.write_bytes(data))
    return _report(path, "onnx", diffs, start)


def export_torchscript(model_dir: str | os.PathLike, *, out: str | os.PathLike | None = None,
                       check: bool = True) -> ExportReport:
    """Trace the swap path to TorchScript for Nuke (``MODEL_DIR/export/swap.torchscript.pt``).

    The module maps ``(B, 3, R, R)`` float32 RGB in [0, 1] to one ``(B, 4, R, R)`` RGBA tensor (RGB =
    the swapped face, alpha = its mask), because Nuke's Inference node runs models with one input and
    one output tensor. The card is stored as the extra file ``vfxswap.card.json``. Nuke's
    CatFileCreator turns this file into a ``.cat``; Nuke bundles its own libtorch, which may be older
    than the PyTorch that traced the file.

    Raises:
        ModelError, OutputError, EngineError: as :func:`export_onnx`.
    """
    start = time.perf_counter()
    model, card = load_model(model_dir)
    path = _output_path(model_dir, out, "torchscript")
    rgba = _RGBAPath(model).eval()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, Nuke still needs it
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(rgba, _example(card, TRACE_BATCH), check_trace=False)
            torch.jit.save(traced, buffer, _extra_files={f"{CARD_KEY}.json": card.to_json()})
    except (RuntimeError, TypeError, ValueError) as exc:
        raise EngineError(f"TorchScript export of {model_dir} failed: {_first_line(exc)}") from None
    data = buffer.getvalue()
    diffs: dict[str, float] = {}
    if check:
        face = _example(card, CHECK_BATCH)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)
            loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")  # the bytes just traced, never a file
            got = loaded(face)
            rgb, mask = SwapPath(model).eval()(face)
        diffs = _compare(["rgb", "mask"], [got[:, :3].numpy(), got[:, 3:].numpy()], [rgb.numpy(), mask.numpy()], path)
    _write(path, lambda tmp: tmp.write_bytes(data))
    return _report(path, "torchscript", diffs, start)


def export_dfm(model_dir: str | os.PathLike, *, out: str | os.PathLike | None = None,
               opset: int = DEFAULT_OPSET, check: bool = True) -> ExportReport:
    """Export a DeepFaceLab ``.dfm`` for DeepFaceLive and FaceFusion (``MODEL_DIR/export/model.dfm``).

    Input ``in_face:0`` ``(B, R, R, 3)`` float32 **BGR** in [0, 1]; outputs in order
    ``out_face_mask:0`` ``(B, R, R, 1)``, ``out_celeb_face:0`` ``(B, R, R, 3)`` BGR and
    ``out_celeb_face_mask:0`` ``(B, R, R, 1)``, all in [0, 1]; see :class:`DFMPath`. The check
    compares with :class:`FaceSwapModel` itself (``swap`` and ``dst`` sides on the RGB-NCHW face), so
    it covers the layout and channel-order conversion too.

    Raises:
        ModelError, OutputError, EngineError: as :func:`export_onnx`.
    """
    start = time.perf_counter()
    model, card = load_model(model_dir)
    path = _output_path(model_dir, out, "dfm")
    dfm = DFMPath(model).eval()
    example = _example(card, TRACE_BATCH).permute(0, 2, 3, 1).flip(3).contiguous()
    data = to_onnx(dfm, example, card, input_names=[DFM_INPUT], output_names=list(DFM_OUTPUTS),
                    opset=opset, kind="dfm")
    diffs: dict[str, float] = {}
    if check:
        face = _example(card, CHECK_BATCH)  # RGB NCHW
        with torch.no_grad():
            rgb, mask = model(face, "swap")
            _, dst_mask = model(face, "dst")
        ones = torch.ones_like(rgb[:, :1])
        expected = [(dst_mask if dst_mask is not None else ones).permute(0, 2, 3, 1).numpy(),
                    rgb.permute(0, 2, 3, 1).numpy()[..., ::-1],
                    (mask if mask is not None else ones).permute(0, 2, 3, 1).numpy()]
        bgr = face.permute(0, 2, 3, 1).numpy()[..., ::-1]
        got = _run_onnx(data, {DFM_INPUT: np.ascontiguousarray(bgr)})
        diffs = _compare(list(DFM_OUTPUTS), got, expected, path)
    _write(path, lambda tmp: tmp.write_bytes(data))
    return _report(path, "dfm", diffs, start)


def export_model(model_dir: str | os.PathLike, *, format: ExportFormat, out: str | os.PathLike | None = None,
                 opset: int = DEFAULT_OPSET, check: bool = True, batch: int = 8) -> ExportReport:
    """Dispatch to :func:`export_onnx`, :func:`export_torchscript`, :func:`export_dfm` or, for
    ``tensorrt``, :func:`vfxswap.accel.tensorrt.export_tensorrt` (an engine cached in
    ``MODEL/export/tensorrt/`` for this GPU, batch 1..``batch``, always checked against PyTorch)."""
    if format == "tensorrt":
        if out is not None:
            raise ConfigError("--output does not apply to --format tensorrt: engines are a cache in "
                              "MODEL/export/tensorrt/, keyed by GPU and library versions")
        from ..accel.tensorrt import export_tensorrt  # the only module importing torch_tensorrt

        return export_tensorrt(model_dir, max_batch=batch)
    if format == "onnx":
        return export_onnx(model_dir, out=out, opset=opset, check=check)
    if format == "torchscript":
        return export_torchscript(model_dir, out=out, check=check)
    if format == "dfm":
        return export_dfm(model_dir, out=out, opset=opset, check=check)
    raise ConfigError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict."""
    onnx = _import_onnx()
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelError(f"{path} is not an ONNX model ({type(exc).__name__})") from None
    return {p.key: p.value for p in proto.metadata_props}


def read_onnx_card(path: str | os.PathLike) -> ModelCard:
    """The :class:`ModelCard` embedded in an exported ONNX or ``.dfm`` file (``metadata_props``)."""
    meta = read_onnx_metadata(path)
    if CARD_KEY not in meta:
        raise ModelError(f"{path} carries no {CARD_KEY} metadata: it was not exported by vfxswap")
    return ModelCard.from_json(meta[CARD_KEY], where=f"{path} ({CARD_KEY})")


# ----------------------------------------------------------------------------------------------
# helpers


def _example(card: ModelCard, batch: int) -> torch.Tensor:
    """A fixed random batch ``(batch, 3, R, R)`` float32 RGB in [0, 1] (seed 0: the same every run)."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, card.resolution, card.resolution, generator=g)


def _output_path(model_dir: str | os.PathLike, out: str | os.PathLike | None, fmt: str) -> Path:
    path = Path(out) if out is not None else Path(model_dir) / EXPORT_DIR / DEFAULT_FILES[fmt]
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder (give a file name, e.g. {path / DEFAULT_FILES[fmt]})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {path.parent}: {exc.strerror or exc}") from None
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"cannot write {path}: folder {path.parent} is not writable")
    return path


def _write(path: Path, write: Callable[[Path], object]) -> None:
    replace_atomically(path, write)
    log.info("wrote %s", path)


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise EngineError("ONNX export needs the onnx package: pip install onnx") from None
    return onnx


def to_onnx(module: nn.Module, example: torch.Tensor, card: ModelCard, *, input_names: list[str],
            output_names: list[str], opset: int, kind: str,
            extra_metadata: Mapping[str, str] | None = None) -> bytes:
    """Export ``module`` with a dynamic batch axis, embed the card, validate; returns the model bytes."""
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ConfigError(f"opset must be an integer >= {MIN_OPSET}, got {opset!r}")
    onnx = _import_onnx()
    n_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    if n_bytes > _PROTOBUF_LIMIT:
        raise EngineError(f"the model's weights take {n_bytes / 2**30:.1f} GiB, more than one ONNX file holds "
                          f"(2 GiB): export a smaller preset or resolution")
    buffer = io.BytesIO()
    dynamic = {name: {0: "batch"} for name in (*input_names, *output_names)}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript-based exporter warns that it is deprecated; it is the one that runs
            # offline without onnxscript, and the check below verifies what it produced.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module, (example,), buffer, input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True, dynamo=False)
    except (RuntimeError, TypeError, ValueError, torch.onnx.errors.OnnxExporterError) as exc:
        raise EngineError(f"ONNX export (opset {opset}) failed: {_first_line(exc)}") from None
    proto = onnx.load_from_string(buffer.getvalue())
    # The exporter leaves some output dims symbolic ("Transpose..._dim_1"); every dim but the batch is
    # fixed by the card, and runners (DeepFaceLive reads the crop size from the shapes) want numbers.
    with torch.no_grad():
        outputs = module(example)
    shapes = {input_names[0]: tuple(example.shape), **{n: tuple(t.shape) for n, t in zip(output_names, outputs)}}
    for value in (*proto.graph.input, *proto.graph.output):
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        for i, size in enumerate(shapes[value.name]):
            if i == 0:
                dims[i].dim_param = "batch"
            else:
                dims[i].dim_value = size
    for key, value in ((CARD_KEY, card.to_json()), ("vfxswap.kind", kind), ("vfxswap.version", __version__),
                       *(extra_metadata or {}).items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = (f"vfxswap {kind} model: {card.arch} {card.resolution}px {card.face_type}, "
                        f"{card.steps} steps")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise EngineError(f"the exported ONNX model is invalid: {_first_line(exc)}") from None
    return proto.SerializeToString()


def _run_onnx(data: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise EngineError("checking the export needs ONNX Runtime: pip install onnxruntime "
                          "(or skip the check with --no-check)") from None
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        return session.run(None, feeds)
    except Exception as exc:  # onnxruntime raises its own exception classes from C++
        raise EngineError(f"ONNX Runtime could not run the exported model: {_first_line(exc)}") from None


def _compare(names: list[str], got: list[np.ndarray], expected: list[np.ndarray], path: Path) -> dict[str, float]:
    diffs: dict[str, float] = {}
    for name, a, b in zip(names, got, expected, strict=True):
        if a.shape != b.shape:
            raise EngineError(f"export to {path} failed its check: {name} has shape {a.shape}, PyTorch {b.shape}")
        diffs[name] = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
    worst = max(diffs, key=diffs.__getitem__)
    if not diffs[worst] <= TOLERANCE:  # also catches NaN
        detail = ", ".join(f"{k} {v:.2g}" for k, v in diffs.items())
        raise EngineError(f"export to {path} does not reproduce PyTorch (max abs diff {detail}; limit "
                          f"{TOLERANCE:g}): nothing written")
    return diffs


def _report(path: Path, fmt: str, diffs: dict[str, float], start: float) -> ExportReport:
    return ExportReport(path=path, format=fmt, max_abs_diff=max(diffs.values()) if diffs else None,  # type: ignore[arg-type]
                        diffs=diffs, seconds=time.perf_counter() - start)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
