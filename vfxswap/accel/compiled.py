"""The torch.compile runner (``--backend compiled``): the swap path compiled by inductor.

- CUDA: fp16 (or bf16) with CUDA graphs (inductor option ``triton.cudagraphs``) and freezing
  (weights folded into the graph as constants, inference only).
- CPU: fp32 with freezing (PERF_NOTES: torch.compile helps CPU inference only with freezing; measured
  1.6x over eager at batch 4 and 2.5x at batch 8 on the demo model, 2 AVX2 cores).

Batch sizes are fixed: a batch is padded up to the next *bucket* (powers of two below ``max_batch``,
then ``max_batch``; larger batches are split), so the number of graphs (and of CUDA graphs) stays
bounded by ``log2(max_batch) + 1``. ``dynamic=False`` keeps torch from switching to a dynamic-shape
graph after the second size. Padded rows are computed and dropped; they never reach the caller.

Each bucket is compiled lazily, the first time a batch of its size runs, and checked then against
eager fp32 PyTorch on a fixed random probe batch of that size (:data:`~vfxswap.accel.runtime.TOLERANCES`):
every bucket is its own graph with its own kernels, so a check of one bucket proves nothing about
another, and the check costs one eager forward next to a compile of 10-30 s. The ``max_batch`` bucket,
the one full converter micro-batches use, is compiled and checked when the runner opens, so a backend
that cannot compile here (no triton, an unsupported op) fails at open and ``--backend auto`` can fall
back. The measured differences are in ``runner.parity``.

Outputs with CUDA graphs live in memory the next replay overwrites, so every result is copied out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, EngineError, one_line
from .runtime import (RUNNERS, DEFAULT_MAX_BATCH, Precision, _TensorRunner, check_parity, max_abs_diffs, probe_batch,
                      resolve_device, resolve_precision, torch_dtype)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def bucket_sizes(max_batch: int) -> list[int]:
    """``[1, 2, 4, ..., max_batch]``: the powers of two below ``max_batch``, then ``max_batch``."""
    if max_batch < 1:
        raise ConfigError(f"max_batch must be >= 1, got {max_batch}")
    sizes = []
    size = 1
    while size < max_batch:
        sizes.append(size)
        size *= 2
    return sizes + [max_batch]


def bucket_for(n: int, buckets: list[int]) -> int:
    """The smallest bucket that holds ``n`` faces (``n`` <= the largest bucket)."""
    return next(b for b in buckets if b >= n)


@RUNNERS.register("compiled")
class CompiledRunner(_TensorRunner):
    """torch.compile (inductor) runner with fixed batch buckets and per-bucket parity checks.

    Args:
        model_dir: the model folder.
        device: ``cpu``, ``cuda`` or ``auto``.
        precision: ``auto`` (fp16 on CUDA, fp32 on the CPU), ``fp32``, ``fp16`` or ``bf16`` (see
            :func:`~vfxswap.accel.runtime.resolve_precision`).
        max_batch: the largest bucket; larger batches are split.
        warm: compile and check the ``max_batch`` bucket now (default) rather than on first use.

    Attributes:
        buckets: the batch sizes graphs are built for.
        parity: per built bucket, ``{"rgb": max abs diff, "mask": ...}`` against eager fp32.

    Raises:
        ConfigError: bad device, precision or max_batch.
        EngineError: compilation failed, or a bucket failed its parity check.
    """

    name = "compiled"

    def __init__(self, model_dir: str | Path, *, device: str = "auto", precision: Precision = "auto",
                 max_batch: int = DEFAULT_MAX_BATCH, warm: bool = True) -> None:
        import copy

        import torch

        from ..model.autoencoder import SwapPath
        from ..model.checkpoint import load_model

        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.buckets = bucket_sizes(max_batch)
        self.max_batch = max_batch
        self.parity: dict[int, dict[str, float]] = {}
        model, self.card = load_model(model_dir, device=self.device)
        self._dtype = torch_dtype(self.precision)
        self._reference = SwapPath(model).eval()  # eager fp32, for the parity checks
        path = self._reference if self._dtype == torch.float32 else SwapPath(copy.deepcopy(model)).to(self._dtype).eval()
        options = {"freezing": True}
        if self.device == "cuda":
            options["triton.cudagraphs"] = True
        self._compiled = torch.compile(path, backend="inductor", dynamic=False, fullgraph=True, options=options)
        if warm:
            self._ensure(self.buckets[-1])

    def swap_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        rgbs, masks = [], []
        for start in range(0, x.shape[0], self.max_batch):
            rgb, mask = self._run(x[start:start + self.max_batch])
            rgbs.append(rgb)
            masks.append(mask)
        if len(rgbs) == 1:
            return rgbs[0].to(x.device), masks[0].to(x.device)
        return torch.cat(rgbs).to(x.device), torch.cat(masks).to(x.device)

    def _run(self, chunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk of at most ``max_batch`` faces, padded to its bucket; fresh float32 outputs."""
        import torch

        n = chunk.shape[0]
        bucket = bucket_for(n, self.buckets)
        self._ensure(bucket)
        x = chunk.to(self.device, self._dtype).contiguous()  # graphs are built for NCHW strides
        if n < bucket:
            x = torch.cat([x, x.new_zeros((bucket - n, *x.shape[1:]))])
        rgb, mask = self._call(x)
        # copy=True: CUDA-graph outputs are overwritten by the next replay; slicing drops the padding
        return rgb[:n].to(torch.float32, copy=True), mask[:n, 0].to(torch.float32, copy=True)

    def _call(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        with torch.no_grad():  # inductor freezing applies to graphs compiled with grad off
            if self.device == "cuda":
                torch.compiler.cudagraph_mark_step_begin()  # earlier outputs were copied out
            return self._compiled(x)

    def _ensure(self, bucket: int) -> None:
        """Compile ``bucket`` (first call) and check it against eager fp32 on a probe batch."""
        import torch

        if bucket in self.parity:
            return
        probe = probe_batch(self.card, bucket).to(self.device)
        try:
            # CUDA-graph trees warm up on the first call and record on the second: check the replayed graph
            for _ in range(3 if self.device == "cuda" else 1):
                rgb, mask = self._call(probe.to(self._dtype))
            got = (rgb.to(torch.float32, copy=True), mask.to(torch.float32, copy=True))
        except Exception as exc:  # inductor/triton raise many types (BackendCompilerFailed, RuntimeError, ...)
            raise EngineError(f"torch.compile of the swap path failed on {self.device} (batch {bucket}, "
                              f"{self.precision}): {type(exc).__name__}: {one_line(exc)}") from None
        with torch.no_grad():
            expected = self._reference(probe)
        diffs = max_abs_diffs(got, expected)
        check_parity(diffs, self.precision, f"the compiled swap path (batch {bucket}, {self.precision}, {self.device})")
        self.parity[bucket] = diffs
        log.info("compiled swap path for batch %d (%s, %s): max abs diff to eager fp32 rgb %.2g, mask %.2g",
                 bucket, self.precision, self.device, diffs["rgb"], diffs["mask"])

    def close(self) -> None:
        self.__dict__.pop("_compiled", None)
