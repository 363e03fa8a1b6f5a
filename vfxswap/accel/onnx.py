"""The ONNX Runtime runner (the only module importing onnxruntime for swaps).

It runs ``MODEL/export/swap.onnx``; when that file is missing or was exported from other weights, it
exports it first (``vfxswap export`` does the same, checked against PyTorch). The export is keyed by
the weights file's size and modification time stored in the ONNX metadata. The export is a cache: one
that cannot be read or that ONNX Runtime cannot load is logged, deleted and exported again.

An ONNX-only model folder (:func:`is_onnx_only`: ``card.json`` and ``export/swap.onnx``, no
``weights.safetensors``, e.g. a model trained by another tool) runs its ``swap.onnx`` as it is: that
file is the model, not a cache, so it is checked for the signature ``vfxswap export`` writes and is
never deleted or re-exported.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import remove_quietly
from ..errors import EngineError, ModelError, OutputError, one_line
from ..model.card import ModelCard
from .runtime import RUNNERS, _RunnerBase

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def _weights_key(model_dir: Path) -> str:
    st = (model_dir / "weights.safetensors").stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def is_onnx_only(model_dir: str | Path) -> bool:
    """Whether ``model_dir`` holds ``export/swap.onnx`` but no ``weights.safetensors`` (an ONNX-only model)."""
    root = Path(model_dir)
    return not (root / "weights.safetensors").exists() and (root / "export" / "swap.onnx").is_file()


def check_signature(session, card: ModelCard, path: Path) -> None:
    """Check that a session has the swap signature of ``vfxswap export``: input ``face``
    ``(B, 3, R, R)`` (R = ``card.resolution``), outputs ``rgb`` and ``mask``.

    Raises:
        ModelError: another signature (names or shape).
    """
    r = card.resolution
    inputs = {i.name: list(i.shape) for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    shape = inputs.get("face")
    if list(inputs) != ["face"] or len(shape) != 4 or shape[1:] != [3, r, r] or not {"rgb", "mask"} <= set(outputs):
        found = ", ".join(f"{k} {v}" for k, v in inputs.items())
        raise ModelError(f"{path} does not have the swap signature of card.json: it needs input face (B, 3, {r}, {r}) "
                         f"and outputs rgb, mask (as `vfxswap export` writes), found inputs {found} and outputs "
                         f"{', '.join(outputs)}")


def _session(ort, path: Path, providers: list[str]):
    """An ``ort.InferenceSession`` of ``path`` (full graph optimisation).

    Raises:
        EngineError: ONNX Runtime cannot load the file.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise EngineError(f"onnxruntime cannot load {path}: {one_line(exc)}") from None


@RUNNERS.register("onnxruntime")
class OnnxRunner(_RunnerBase):
    """ONNX Runtime runner: CUDA provider first when present, then CPU.

    Args:
        model_dir: the model folder.
        device: ``cpu``, ``cuda`` or ``auto``.
    """

    name = "onnxruntime"

    def __init__(self, model_dir: str | Path, *, device: str = "auto") -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise EngineError("the onnxruntime backend needs `pip install onnxruntime`") from None
        root = Path(model_dir)
        self.card = ModelCard.load(root)
        onnx_only = is_onnx_only(root)
        path = root / "export" / "swap.onnx" if onnx_only else self._exported(root)
        available = ort.get_available_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in available:
            raise EngineError("onnxruntime has no CUDA provider here (install onnxruntime-gpu, or use --device cpu)")
        use_cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in available
        providers = (["CUDAExecutionProvider"] if use_cuda else []) + ["CPUExecutionProvider"]
        if onnx_only:  # the file is the model: never deleted, never re-exported
            try:
                self._session = _session(ort, path, providers)
            except EngineError as exc:
                raise ModelError(f"{exc}: this ONNX-only model (no weights.safetensors) is damaged; "
                                 "restore export/swap.onnx from where it was made") from None
            check_signature(self._session, self.card, path)
        else:
            self._open_cached(ort, root, path, providers)
        self.device = "cuda" if use_cuda else "cpu"

    def _open_cached(self, ort, root: Path, path: Path, providers: list[str]) -> None:
        try:
            self._session = _session(ort, path, providers)
        except EngineError as exc:  # the cached export is damaged: export it again, once
            log.warning("%s; deleting it and exporting it again", exc)
            remove_quietly(path)
            self._session = _session(ort, self._exported(root), providers)

    def _exported(self, root: Path) -> Path:
        from ..model.export import export_onnx, read_onnx_metadata

        key = _weights_key(root)
        path = root / "export" / "swap.onnx"
        if path.is_file():
            try:
                if read_onnx_metadata(path).get("vfxswap.weights") == key:
                    return path
            except ModelError as exc:  # truncated or overwritten: rebuilt below
                log.warning("cached export %s; exporting it again", exc)
        try:
            export_onnx(root, out=path, extra_metadata={"vfxswap.weights": key})
        except OutputError:  # a read-only model folder: export into a private temp folder instead
            path = Path(tempfile.mkdtemp(prefix="vfxswap-onnx-")) / "swap.onnx"
            export_onnx(root, out=path, extra_metadata={"vfxswap.weights": key})
        log.info("exported %s for the onnxruntime backend", path)
        return path

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(faces.transpose(0, 3, 1, 2), dtype=np.float32)
        rgb, mask = self._session.run(["rgb", "mask"], {"face": x})
        return rgb.transpose(0, 2, 3, 1), mask[:, 0]

    def swap_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, R, R)`` float32 [0, 1] -> ``(rgb (B, 3, R, R), mask (B, R, R))`` float32 on x's
        device, through host memory (ONNX Runtime takes numpy arrays here)."""
        import torch

        faces = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        rgb, mask = self._session.run(["rgb", "mask"], {"face": faces})
        return torch.from_numpy(rgb).to(x.device), torch.from_numpy(np.ascontiguousarray(mask[:, 0])).to(x.device)
