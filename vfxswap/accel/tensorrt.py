"""The TensorRT runner (``--backend tensorrt``) and ``vfxswap export --format tensorrt``.

The only module importing ``torch_tensorrt`` / ``tensorrt``. The swap path is compiled with
torch-tensorrt's dynamo frontend (``torch_tensorrt.compile(ir="dynamo")``) with explicit typing (the
model is cast to fp16 (default), bf16 or fp32 first; ``enabled_precisions`` is deprecated) and a
dynamic batch profile ``1 <= B <= max_batch`` (optimised for ``opt_batch``); larger batches are split.

Engines are tied to the GPU architecture and to the TensorRT / torch-tensorrt versions, so the compiled
program is kept as a rebuildable cache in ``MODEL/export/tensorrt/`` (:class:`~vfxswap.accel.cache.ProgramCache`):
``swap-<digest>.ep`` written by ``torch_tensorrt.save(output_format="exported_program")`` and loaded
with ``torch.export.load`` after a static safety check, plus ``swap-<digest>.json`` holding the key
(weights SHA-256, ModelCard, GPU name and compute capability, TensorRT / torch-tensorrt / torch
versions, shape profile, precision), the parity numbers and the build time. A matching key is
reused; otherwise the engine is rebuilt and older engines for the same GPU are deleted (other GPUs'
stay). Every build is checked against eager fp32 PyTorch on a batch of 3 (not the optimisation batch,
so the dynamic axis is exercised) before it is kept.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, EngineError, one_line
from ..model.card import ModelCard
from .cache import CachedProgram, ProgramCache, engine_key, sha256_file
from .runtime import (RUNNERS, DEFAULT_MAX_BATCH, Precision, _TensorRunner, check_parity, max_abs_diffs, probe_batch,
                      resolve_precision, torch_dtype)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CACHE_DIR = Path("export") / "tensorrt"
CHECK_BATCH = 3
# What the engine constant of a torch-tensorrt program may import when torch.export.load unpickles it
# (newer torch-tensorrt stores engines as a pickled Python object; older ones as a TorchBind object,
# which needs no entry here). Anything else in a cached file makes the cache rebuild it.
TRT_PICKLE_GLOBALS = frozenset({
    "torch_tensorrt.dynamo.runtime._TRTEngine._reconstruct_trt_engine",
    "torch_tensorrt.dynamo.runtime._TRTEngine.TRTEngine",
    "torch_tensorrt.dynamo.runtime._TRTEngine.EngineSerializer",
    "copyreg._reconstructor", "copyreg.__newobj__", "builtins.object",
})


def require_tensorrt() -> tuple[Any, Any]:
    """``(torch_tensorrt, tensorrt)`` modules, after checking for CUDA.

    Raises:
        EngineError: no CUDA device, or torch-tensorrt / TensorRT missing or broken.
    """
    import torch

    if not torch.cuda.is_available():
        raise EngineError("the tensorrt backend needs an NVIDIA GPU with CUDA: torch reports none "
                          "(use --backend torch or onnxruntime)")
    major_minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    try:
        import tensorrt
        import torch_tensorrt
    except ImportError as exc:
        raise EngineError(f"the tensorrt backend needs `pip install torch-tensorrt` (matching torch {major_minor}; "
                          f"{one_line(exc)})") from None
    except Exception as exc:  # a wheel for another CUDA/torch fails with OSError or RuntimeError on import
        raise EngineError(f"torch-tensorrt does not load ({type(exc).__name__}: {one_line(exc)}): install the "
                          f"build matching torch {major_minor} and this CUDA") from None
    return torch_tensorrt, tensorrt


@dataclasses.dataclass(frozen=True)
class Profile:
    """The TensorRT shape profile: batch ``min_batch <= B <= max_batch``, tuned for ``opt_batch``; R x R faces."""

    min_batch: int
    opt_batch: int
    max_batch: int
    resolution: int

    @classmethod
    def for_card(cls, card: ModelCard, *, max_batch: int = DEFAULT_MAX_BATCH, opt_batch: int | None = None) -> Profile:
        if max_batch < 1:
            raise ConfigError(f"--batch must be >= 1, got {max_batch}")
        opt = max_batch if opt_batch is None else opt_batch
        if not 1 <= opt <= max_batch:
            raise ConfigError(f"the optimisation batch must be in 1..{max_batch}, got {opt}")
        return cls(min_batch=1, opt_batch=opt, max_batch=max_batch, resolution=card.resolution)

    def shapes(self) -> dict[str, tuple[int, int, int, int]]:
        r = self.resolution
        return {f"{k}_shape": (b, 3, r, r) for k, b in
                (("min", self.min_batch), ("opt", self.opt_batch), ("max", self.max_batch))}


def device_identity(index: int | None = None) -> dict[str, str]:
    """``{"name": GPU name, "capability": "major.minor"}`` of a CUDA device (the cache's device key)."""
    import torch

    index = torch.cuda.current_device() if index is None else index
    major, minor = torch.cuda.get_device_capability(index)
    return {"name": torch.cuda.get_device_name(index), "capability": f"{major}.{minor}"}


def tensorrt_key(model_dir: Path, card: ModelCard, profile: Profile, precision: str, *, trt: Any, torch_trt: Any) -> dict[str, Any]:
    """The cache key of the engine for this model, GPU, library versions, profile and precision."""
    import torch

    return engine_key(weights_sha256=sha256_file(model_dir / "weights.safetensors"), card=card, device=device_identity(),
                      versions={"tensorrt": str(trt.__version__), "torch_tensorrt": str(torch_trt.__version__),
                                "torch": torch.__version__},
                      profile=dataclasses.asdict(profile), precision=precision)


def build_engine(model_dir: str | os.PathLike, *, max_batch: int = DEFAULT_MAX_BATCH, opt_batch: int | None = None,
                 precision: Precision = "auto") -> CachedProgram:
    """The TensorRT program of ``model_dir`` from the cache, built (and checked) when missing or stale.

    Raises:
        EngineError: no CUDA / torch-tensorrt, the build failed, or it does not reproduce PyTorch.
        ModelError: a missing or invalid model dir.
        ConfigError: bad batch sizes or precision.
    """
    import torch

    from ..model.autoencoder import SwapPath
    from ..model.checkpoint import load_model

    torch_trt, trt = require_tensorrt()
    root = Path(model_dir)
    model, card = load_model(root, device="cuda")
    precision = resolve_precision(precision, "cuda")
    profile = Profile.for_card(card, max_batch=max_batch, opt_batch=opt_batch)
    dtype = torch_dtype(precision)
    key = tensorrt_key(root, card, profile, precision, trt=trt, torch_trt=torch_trt)
    reference = SwapPath(model).eval()

    def build():
        import copy

        path = SwapPath(copy.deepcopy(model)).to(dtype).eval()
        inputs = [torch_trt.Input(**profile.shapes(), dtype=dtype, name="x")]
        # WARNING, not INFO: at the CLI's default level a silent multi-minute build would look like a hang
        log.warning("building a TensorRT engine for %s (%s, batch %d..%d, opt %d) on %s: this takes minutes, once "
                    "per GPU kind; it is cached in %s", root, precision, profile.min_batch, profile.max_batch,
                    profile.opt_batch, key["device"]["name"], root / CACHE_DIR)
        try:
            with torch.no_grad():
                compiled = torch_trt.compile(path, ir="dynamo", inputs=inputs, use_explicit_typing=True,
                                             disable_tf32=precision == "fp32", min_block_size=1)
        except Exception as exc:  # torch-tensorrt and TensorRT raise many types
            raise EngineError(f"TensorRT build of {root} failed: {type(exc).__name__}: {one_line(exc)}") from None

        def write(tmp: Path) -> None:
            # Input objects only: torch-tensorrt infers the dynamic batch dimension for the saved program
            torch_trt.save(compiled, str(tmp), output_format="exported_program", arg_inputs=inputs)

        return write

    def check(program: torch.export.ExportedProgram) -> dict[str, float]:
        face = probe_batch(card, CHECK_BATCH).to("cuda")
        try:
            with torch.no_grad():
                got = program.module()(face.to(dtype))
        except Exception as exc:
            raise EngineError(f"the TensorRT engine of {root} does not run: {type(exc).__name__}: {one_line(exc)}") from None
        with torch.no_grad():
            expected = reference(face)
        diffs = max_abs_diffs(tuple(got), expected)
        check_parity(diffs, precision, f"the TensorRT engine of {root}")
        return diffs

    cache = ProgramCache(root / CACHE_DIR, allowed_globals=TRT_PICKLE_GLOBALS)
    return cache.get_or_build(key, build, check=check, extra={"precision": precision})


def export_tensorrt(model_dir: str | os.PathLike, *, max_batch: int = DEFAULT_MAX_BATCH):
    """``vfxswap export --format tensorrt``: build (or reuse) the engine; returns an ExportReport."""
    from ..model.export import ExportReport

    start = time.perf_counter()
    cached = build_engine(model_dir, max_batch=max_batch)
    diffs = dict(cached.record.get("check", {}))
    return ExportReport(path=cached.path, format="tensorrt", max_abs_diff=max(diffs.values()) if diffs else None,
                        diffs=diffs, seconds=time.perf_counter() - start)


@RUNNERS.register("tensorrt")
class TensorRTRunner(_TensorRunner):
    """TensorRT runner: the cached engine of :func:`build_engine` (built on first use).

    Args:
        model_dir: the model folder.
        device: ``cuda`` or ``auto`` (``cpu`` is refused).
        precision: ``auto`` (fp16), ``fp16``, ``bf16`` or ``fp32``.
        max_batch: the profile's largest batch; larger batches are split.

    Attributes:
        engine: the ``.ep`` file. parity: its measured max abs differences to eager fp32.

    Raises:
        EngineError: no CUDA, no torch-tensorrt, a failed build or parity check.
    """

    name = "tensorrt"

    def __init__(self, model_dir: str | Path, *, device: str = "auto", precision: Precision = "auto",
                 max_batch: int = DEFAULT_MAX_BATCH) -> None:
        import torch

        if device not in ("auto", "cuda"):
            raise EngineError(f"the tensorrt backend runs on an NVIDIA GPU only (got --device {device}; "
                              f"use --backend torch or onnxruntime)")
        require_tensorrt()
        cached = build_engine(model_dir, max_batch=max_batch, precision=precision)
        self.card = ModelCard.load(model_dir)
        self.device = "cuda"
        self.precision = str(cached.record.get("precision", "fp16"))
        self.max_batch = max_batch
        self.engine = cached.path
        self.parity = dict(cached.record.get("check", {}))
        self._dtype = torch_dtype(self.precision)
        self._module = cached.program.module()
        self._torch = torch

    def swap_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        torch = self._torch
        rgbs, masks = [], []
        with torch.no_grad():
            for start in range(0, x.shape[0], self.max_batch):
                rgb, mask = self._module(x[start:start + self.max_batch].to("cuda", self._dtype).contiguous())
                # copy=True: never hand out engine-owned (pre-allocated / CUDA-graph) output memory
                rgbs.append(rgb.to(torch.float32, copy=True))
                masks.append(mask[:, 0].to(torch.float32, copy=True))
        rgb = rgbs[0] if len(rgbs) == 1 else torch.cat(rgbs)
        mask = masks[0] if len(masks) == 1 else torch.cat(masks)
        return rgb.to(x.device), mask.to(x.device)

    def close(self) -> None:
        self.__dict__.pop("_module", None)
