"""The SwapRunner protocol, the PyTorch runner, and backend selection.

A runner turns aligned faces into swapped faces and masks for one model:
``swap(faces (B, R, R, 3) float32 RGB [0, 1]) -> (rgb (B, R, R, 3), mask (B, R, R))``, float32 in
[0, 1], in the model card's colour space. Runners are context managers. ``open_runner`` builds one by
name; ``auto`` measures the available CPU runners on the model and keeps the fastest (PERF_NOTES:
speed-ups differ per model, so measure rather than assume).
"""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError, EngineError
from ..model.card import ModelCard
from ..registry import Registry

log = logging.getLogger(__name__)

RUNNERS: Registry[Any] = Registry("runner backend")
_BUILTIN_MODULES = {"torch": "vfxswap.accel.runtime", "onnxruntime": "vfxswap.accel.onnx"}
BACKENDS = ("auto", "torch", "onnxruntime")


@runtime_checkable
class SwapRunner(Protocol):
    """Runs a model's swap path (dst face -> src identity) on batches of aligned faces.

    Attributes:
        name: backend name. card: the model's card. device: where it runs (``cpu``, ``cuda``).
    """

    name: str
    card: ModelCard
    device: str

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B, R, R, 3)`` float32 RGB [0, 1] -> ``(rgb (B, R, R, 3), mask (B, R, R))`` float32 [0, 1]."""
        ...

    def close(self) -> None: ...


class _RunnerBase:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        pass


@RUNNERS.register("torch")
class TorchRunner(_RunnerBase):
    """Eager PyTorch runner (CPU or CUDA), fp32 on the CPU, fp16 on CUDA.

    Args:
        model_dir: the model folder.
        device: ``cpu``, ``cuda`` or ``auto``.
    """

    name = "torch"

    def __init__(self, model_dir: str | Path, *, device: str = "auto") -> None:
        import torch

        from ..model.autoencoder import SwapPath
        from ..model.checkpoint import load_model

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available (use --device cpu)")
        self._torch = torch
        model, self.card = load_model(model_dir, device=device)
        self.device = device
        self._dtype = torch.float16 if device == "cuda" else torch.float32
        self._path = SwapPath(model).to(dtype=self._dtype).eval()

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(faces)).to(self.device, self._dtype).permute(0, 3, 1, 2)
            rgb, mask = self._path(x)
            rgb = rgb.permute(0, 2, 3, 1).float().cpu().numpy()
            mask = mask[:, 0].float().cpu().numpy()
        return rgb, mask


def _measure(runner: SwapRunner, batch: int = 4, repeats: int = 3) -> float:
    """Median seconds per face of ``runner`` on a random batch (after one warm-up call)."""
    r = runner.card.resolution
    faces = np.random.default_rng(0).random((batch, r, r, 3), dtype=np.float32)
    runner.swap(faces)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner.swap(faces)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / batch


def open_runner(model_dir: str | Path, *, backend: str = "auto", device: str = "auto") -> SwapRunner:
    """Build the runner ``backend`` for ``model_dir``; ``auto`` measures the candidates and keeps the fastest.

    Raises:
        ConfigError: unknown backend or device.
        ModelError: the model dir is missing or invalid.
        EngineError: the backend cannot run here (e.g. onnxruntime missing).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend != "auto":
        importlib.import_module(_BUILTIN_MODULES[backend])
        return RUNNERS.get(backend)(model_dir, device=device)
    candidates: list[tuple[float, SwapRunner]] = []
    for name in ("torch", "onnxruntime"):
        try:
            importlib.import_module(_BUILTIN_MODULES[name])
            runner = RUNNERS.get(name)(model_dir, device=device)
        except EngineError as exc:
            log.info("backend %s unavailable: %s", name, exc)
            continue
        candidates.append((_measure(runner), runner))
    if not candidates:
        raise EngineError("no swap backend can run here: install torch or onnxruntime")
    candidates.sort(key=lambda c: c[0])
    best = candidates[0][1]
    log.info("backend auto: %s", ", ".join(f"{r.name} {1000 * t:.1f} ms/face" for t, r in candidates)
             + f" -> {best.name}")
    for _, runner in candidates[1:]:
        runner.close()
    return best
