"""The SwapRunner protocol, the PyTorch runner, and backend selection.

A runner turns aligned faces into swapped faces and masks for one model, two ways:

- ``swap(faces (B, R, R, 3) float32 RGB [0, 1] numpy) -> (rgb (B, R, R, 3), mask (B, R, R))`` numpy;
- ``swap_tensor(x (B, 3, R, R) float32 [0, 1] torch, any device) -> (rgb (B, 3, R, R), mask (B, R, R))``
  float32 on ``x``'s device (the GPU-resident converter path calls it with tensors already on
  ``runner.device``; torch-based runners make no host round trip).

Outputs are float32 in [0, 1], in the model card's colour space, and never alias buffers a later call
overwrites (CUDA graphs). Runners are context managers. :func:`open_runner` builds one by name and
records why in ``runner.reason``; ``auto`` tries ``tensorrt > compiled > torch`` on CUDA (first that
opens and passes its parity check) and measures ``torch`` and ``onnxruntime`` on the CPU, keeping
the fastest (PERF_NOTES: speed-ups differ per model, so measure rather than assume).
"""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError, EngineError
from ..model.card import ModelCard
from ..registry import Registry

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

RUNNERS: Registry[Any] = Registry("runner backend")
_BUILTIN_MODULES = {"torch": "vfxswap.accel.runtime", "compiled": "vfxswap.accel.compiled",
                    "tensorrt": "vfxswap.accel.tensorrt", "onnxruntime": "vfxswap.accel.onnx"}
BACKENDS = ("auto", "torch", "compiled", "tensorrt", "onnxruntime")
DEVICES = ("auto", "cpu", "cuda")
Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
DEFAULT_MAX_BATCH = 8
# Largest max-abs difference to eager fp32 PyTorch accepted by a parity check, per compute precision.
# Outputs are in [0, 1]. fp32: only reduction order differs (measured ~5e-7 for inductor on the demo
# model), so 1e-4 catches a wrong kernel. fp16 (10-bit mantissa, ~5e-4 relative step) over a
# few dozen layers typically lands at 1e-3..5e-3; 2e-2 (5 steps of 8-bit) leaves room for deep
# models yet catches overflow, a wrong layout or a broken op. bf16 has 3 fewer mantissa bits (8x
# coarser), hence 6e-2.
TOLERANCES: dict[str, float] = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 6e-2}
# Why compiled is not an auto candidate on the CPU (PERF_NOTES and measurements on the demo model).
CPU_COMPILED_NOTE = ("compiled not tried on the CPU: 10-30 s of inductor compile per batch size for 1.4-2.5x over "
                     "eager torch, where onnxruntime measured as fast")


@runtime_checkable
class SwapRunner(Protocol):
    """Runs a model's swap path (dst face -> src identity) on batches of aligned faces.

    Attributes:
        name: backend name. card: the model's card. device: where it runs (``cpu``, ``cuda``).
        reason: why this backend was chosen (set by :func:`open_runner`).
    """

    name: str
    card: ModelCard
    device: str
    reason: str

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B, R, R, 3)`` float32 RGB [0, 1] -> ``(rgb (B, R, R, 3), mask (B, R, R))`` float32 [0, 1]."""
        ...

    def swap_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, R, R)`` float32 [0, 1] -> ``(rgb (B, 3, R, R), mask (B, R, R))`` float32 on x's device."""
        ...

    def close(self) -> None: ...


class _RunnerBase:
    reason: str = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        pass


class _TensorRunner(_RunnerBase):
    """Base of the torch-based runners: ``swap`` is ``swap_tensor`` on a CPU tensor."""

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(faces, dtype=np.float32)).permute(0, 3, 1, 2).contiguous()
        rgb, mask = self.swap_tensor(x)
        return rgb.permute(0, 2, 3, 1).numpy(), mask.numpy()

    def swap_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a CUDA device, else ``cpu``.

    Raises:
        ConfigError: unknown device, or ``cuda`` without a CUDA device.
    """
    import torch

    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (use --device cpu)")
    return device


def cpu_native(precision: str) -> bool:
    """Whether this CPU computes ``fp16``/``bf16`` natively (AVX512-BF16 or AMX for bf16, AMX-FP16
    for fp16); without it PyTorch emulates them ~12x slower than fp32 (measured on the demo model)."""
    import torch

    probes = {"bf16": ("_is_avx512_bf16_supported", "_is_amx_tile_supported"), "fp16": ("_is_amx_fp16_supported",)}
    for probe in probes.get(precision, ()):
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            return True
    return precision == "fp32"


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> ``fp16`` on CUDA, ``fp32`` on the CPU; refuses a precision the hardware lacks.

    Raises:
        ConfigError: unknown precision; fp16/bf16 on a CPU without native support; bf16 on a GPU
            without bf16 (compute capability below 8.0).
    """
    import torch

    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "fp16" if device == "cuda" else "fp32"
    if device == "cpu" and not cpu_native(precision):
        capability = torch.backends.cpu.get_cpu_capability()
        need = "AVX512-BF16 or AMX" if precision == "bf16" else "AMX-FP16"
        raise ConfigError(f"precision {precision} on this CPU ({capability}, no {need}) is emulated, ~12x slower "
                          f"than fp32: use fp32 on the CPU, or a GPU")
    if device == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        name = torch.cuda.get_device_name()
        raise ConfigError(f"precision bf16 needs a GPU of compute capability 8.0 or newer; {name} has "
                          f"{'.'.join(map(str, torch.cuda.get_device_capability()))}: use fp16")
    return precision


def torch_dtype(precision: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def probe_batch(card: ModelCard, batch: int) -> torch.Tensor:
    """A fixed random batch ``(batch, 3, R, R)`` float32 in [0, 1] (seed 0: the same every run)."""
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, card.resolution, card.resolution, generator=g)


def max_abs_diffs(got: tuple[torch.Tensor, torch.Tensor], expected: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """``{"rgb": d, "mask": d}``: largest absolute difference per output, in float64 on the CPU."""
    return {name: float((a.detach().double().cpu() - b.detach().double().cpu()).abs().max())
            for name, a, b in zip(("rgb", "mask"), got, expected, strict=True)}


def check_parity(diffs: dict[str, float], precision: str, what: str) -> None:
    """Raise EngineError when a difference exceeds :data:`TOLERANCES` for ``precision`` (NaN too)."""
    limit = TOLERANCES[precision]
    if not all(d <= limit for d in diffs.values()):
        detail = ", ".join(f"{k} {v:.3g}" for k, v in diffs.items())
        raise EngineError(f"{what} does not reproduce eager PyTorch fp32 (max abs diff {detail}; {precision} "
                          f"limit {limit:g}): use --backend torch")


@RUNNERS.register("torch")
class TorchRunner(_TensorRunner):
    """Eager PyTorch runner (CPU or CUDA).

    Args:
        model_dir: the model folder.
        device: ``cpu``, ``cuda`` or ``auto``.
        precision: ``auto`` (fp16 on CUDA, fp32 on the CPU), ``fp32``, ``fp16`` or ``bf16``; fp16/bf16
            are refused where the hardware would emulate them (see :func:`resolve_precision`).
    """

    name = "torch"

    def __init__(self, model_dir: str | Path, *, device: str = "auto", precision: Precision = "auto") -> None:
        from ..model.autoencoder import SwapPath
        from ..model.checkpoint import load_model

        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        model, self.card = load_model(model_dir, device=self.device)
        self._dtype = torch_dtype(self.precision)
        self._path = SwapPath(model).to(dtype=self._dtype).eval()

    def swap_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        with torch.inference_mode():
            rgb, mask = self._path(x.to(self.device, self._dtype).contiguous())
            return rgb.to(x.device, torch.float32), mask[:, 0].to(x.device, torch.float32)


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


def auto_candidates(cuda: bool) -> list[str]:
    """The backends ``auto`` tries, in order: on CUDA the first that opens wins; on the CPU all are
    measured and the fastest wins (``compiled`` is left out there, see :data:`CPU_COMPILED_NOTE`)."""
    return ["tensorrt", "compiled", "torch"] if cuda else ["torch", "onnxruntime"]


def _build(name: str, model_dir: str | Path, *, device: str, batch: int, precision: str) -> SwapRunner:
    importlib.import_module(_BUILTIN_MODULES[name])
    options: dict[str, Any] = {"device": device}
    if name in ("torch", "compiled", "tensorrt"):
        options["precision"] = precision
    if name in ("compiled", "tensorrt"):
        options["max_batch"] = batch
    return RUNNERS.get(name)(model_dir, **options)


def open_runner(model_dir: str | Path, *, backend: str = "auto", device: str = "auto", batch: int = DEFAULT_MAX_BATCH,
                precision: Precision = "auto") -> SwapRunner:
    """Build the runner ``backend`` for ``model_dir``; its ``reason`` says why it was chosen.

    Args:
        model_dir: the model folder.
        backend: one of :data:`BACKENDS`. ``auto``: on CUDA the first of ``tensorrt``, ``compiled``,
            ``torch`` that opens (and passes its parity check); on the CPU ``torch`` and
            ``onnxruntime`` are measured and the fastest kept. Each skipped backend and the choice
            are logged (INFO) with the reason.
        device: ``auto``, ``cpu`` or ``cuda``.
        batch: the largest batch the converter sends (compiled/TensorRT shape profiles; larger
            batches are split).
        precision: compute precision for the torch-based runners (see :func:`resolve_precision`).

    Raises:
        ConfigError: unknown backend or device, ``cuda`` without CUDA, a precision the hardware lacks.
        ModelError: the model dir is missing or invalid.
        EngineError: the backend cannot run here (a missing package, no CUDA, a failed parity check).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    if backend != "auto":
        runner = _build(backend, model_dir, device=device, batch=batch, precision=precision)
        runner.reason = f"backend {backend} requested"
        return runner
    resolved = resolve_device(device)
    from .onnx import is_onnx_only

    if is_onnx_only(model_dir):  # card.json + export/swap.onnx and no weights: only ONNX Runtime reads it
        runner = _build("onnxruntime", model_dir, device=resolved, batch=batch, precision=precision)
        runner.reason = "auto: an ONNX-only model folder (export/swap.onnx, no weights.safetensors)"
        return runner
    if resolved == "cuda":
        return open_first(model_dir, auto_candidates(True), device="cuda", batch=batch, precision=precision)
    return open_fastest(model_dir, auto_candidates(False), device="cpu", batch=batch, precision=precision)


def _try_build(name: str, model_dir: str | Path, skipped: list[str], **options: Any) -> SwapRunner | None:
    """:func:`_build`, or ``None`` after logging why ``name`` cannot run and appending that to ``skipped``."""
    try:
        return _build(name, model_dir, **options)
    except EngineError as exc:
        log.info("backend auto: skipping %s: %s", name, exc)
        skipped.append(f"{name}: {exc}")
        return None


def open_first(model_dir: str | Path, names: list[str], *, device: str, batch: int = DEFAULT_MAX_BATCH,
               precision: str = "auto") -> SwapRunner:
    """The first of ``names`` that opens on ``device`` (runners check parity while opening); each
    backend that raises EngineError is skipped and logged with its reason.

    Raises:
        EngineError: none opened (the message lists every reason).
    """
    skipped: list[str] = []
    for name in names:
        runner = _try_build(name, model_dir, skipped, device=device, batch=batch, precision=precision)
        if runner is None:
            continue
        runner.reason = (f"auto on {device} (order {' > '.join(names)}): {name} is the first that opened and "
                         f"passed its parity check" + (f"; skipped {'; '.join(skipped)}" if skipped else ""))
        log.info("backend auto: chose %s (%s)", name, runner.reason)
        return runner
    raise EngineError(f"no swap backend can run on {device} here ({'; '.join(skipped)})")


def open_fastest(model_dir: str | Path, names: list[str], *, device: str, batch: int = DEFAULT_MAX_BATCH,
                 precision: str = "auto") -> SwapRunner:
    """Open every backend of ``names`` that can run on ``device``, measure each on a random batch,
    keep the fastest and close the others; skipped backends and the timings are logged.

    Raises:
        EngineError: none opened.
    """
    candidates: list[tuple[float, SwapRunner]] = []
    skipped: list[str] = []
    for name in names:
        runner = _try_build(name, model_dir, skipped, device=device, batch=batch, precision=precision)
        if runner is not None:
            candidates.append((_measure(runner), runner))
    if not candidates:
        raise EngineError(f"no swap backend can run here ({'; '.join(skipped)}): install torch or onnxruntime")
    candidates.sort(key=lambda c: c[0])
    best = candidates[0][1]
    measured = ", ".join(f"{r.name} {1000 * t:.2f} ms/face" for t, r in candidates)
    best.reason = (f"auto on {device}: measured {measured} -> {best.name} is the fastest"
                   + (f"; skipped {'; '.join(skipped)}" if skipped else "")
                   + (f"; {CPU_COMPILED_NOTE}" if device == "cpu" and "compiled" not in names else ""))
    log.info("backend auto: chose %s (%s)", best.name, best.reason)
    for _, runner in candidates[1:]:
        runner.close()
    return best
