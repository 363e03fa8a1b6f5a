"""The ONNX Runtime runner (the only module importing onnxruntime for swaps).

It runs ``MODEL/export/swap.onnx``; when that file is missing or was exported from other weights, it
exports it first (``vfxswap export`` does the same, checked against PyTorch). The export is keyed by
the weights file's size and modification time stored in the ONNX metadata. The export is a cache: one
that cannot be read or that ONNX Runtime cannot load is logged, deleted and exported again.
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
        path = self._exported(root)
        available = ort.get_available_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in available:
            raise EngineError("onnxruntime has no CUDA provider here (install onnxruntime-gpu, or use --device cpu)")
        use_cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in available
        providers = (["CUDAExecutionProvider"] if use_cuda else []) + ["CPUExecutionProvider"]
        try:
            self._session = _session(ort, path, providers)
        except EngineError as exc:  # the cached export is damaged: export it again, once
            log.warning("%s; deleting it and exporting it again", exc)
            remove_quietly(path)
            self._session = _session(ort, self._exported(root), providers)
        self.device = "cuda" if use_cuda else "cpu"

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
