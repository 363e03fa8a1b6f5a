"""The training loop: one AdamW over the whole model, deterministic batches, atomic resumable saves.

Bit-for-bit resume: batch ``k`` is built from ``(seed, k)`` alone (see :class:`PairBatches`), the
model is initialised from ``seed``, and the optimizer state and step are restored from
``train_state.pt``; a run stopped and resumed at any saved step ends with the same weights as one
that never stopped (on the same machine, thread count and library versions).

Multi-GPU: started by ``torchrun`` (``TrainConfig.distributed``), each process trains a
DistributedDataParallel replica on its own deterministic shard of every step (seed offset by rank);
gradients are averaged, so the global batch is ``batch_size * world_size`` per side. Rank 0 alone
writes checkpoints, metrics and previews. NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch

from .. import __version__
from ..atomic import open_for_append, replace_atomically, write_error, write_image
from ..errors import ConfigError, ModelError, OutputError
from ..model.autoencoder import FaceSwapModel
from ..model.card import PRESETS, ModelCard
from ..model.checkpoint import load_state_into, load_train_state, save_model_dir
from ..types import FACE_TYPES, FaceType
from .data import FaceBank, PairBatches
from .losses import mask_loss, reconstruction_loss

log = logging.getLogger(__name__)

STATE_FORMAT = "vfxswap-train-state"
METRICS = "metrics.jsonl"
PREVIEWS = "previews"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of ``vfxswap train``.

    Attributes:
        src, dst: faceset folders of the identity to put in and of the person in the plate.
        output: model folder.
        iterations: train until this many steps in total (a resumed run continues up to it).
        resolution, face_type, arch, preset: the model (ignored on resume: the card decides).
        batch_size: faces per side per step.
        lr: AdamW learning rate; weight_decay: its decoupled weight decay.
        clip_grad: max gradient norm (0 disables clipping).
        save_every: steps between checkpoints (also saved at the end and on interrupt).
        preview_every: steps between preview grids (0 disables).
        seed: seeds model init and every batch.
        resume: continue the run in ``output``.
        workers: data loading threads.
        holdout: leave every ``holdout``-th face of each faceset out of training (the split
            ``vfxswap eval`` reconstructs, :func:`~vfxswap.faces.faceset.is_held_out`); 0 trains on all.
        color_transfer: recolour src faces toward dst colours (rct) during training.
        device: ``cpu``, ``cuda`` or ``auto``.
        amp: mixed precision on CUDA (``bf16``/``fp16``/``off``); ignored on CPU (no native bf16 here).
        channels_last: NHWC memory layout; ``None`` = on for CUDA, off on CPU (it gains nothing there).
        compile: ``torch.compile`` the training step (helps on CUDA; slows training on this kind of CPU).
        distributed: join the process group ``torchrun`` set up (one process per GPU, or several on CPU).
    """

    src: str
    dst: str
    output: str
    iterations: int = 1000
    resolution: int = 128
    face_type: FaceType = "whole_face"
    arch: Literal["df", "liae"] = "df"
    preset: Literal["cpu", "gpu"] = "cpu"
    batch_size: int = 16
    lr: float = 2e-4
    weight_decay: float = 0.0
    clip_grad: float = 1.0
    save_every: int = 500
    preview_every: int = 500
    seed: int = 0
    resume: bool = False
    workers: int = 2
    holdout: int = 10
    color_transfer: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["off", "bf16", "fp16"] = "bf16"
    channels_last: bool | None = None
    compile: bool = False
    distributed: bool = False

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "save_every", "workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.preview_every < 0:
            raise ConfigError(f"--preview-every must be >= 0, got {self.preview_every}")
        if self.holdout < 0 or self.holdout == 1:
            raise ConfigError(f"--holdout must be 0 (train on every face) or >= 2, got {self.holdout}")
        if not 0 < self.lr < 1:
            raise ConfigError(f"--lr must be in (0, 1), got {self.lr}")
        if self.face_type not in FACE_TYPES:
            raise ConfigError(f"--face-type must be one of {', '.join(FACE_TYPES)}, got {self.face_type!r}")
        if self.preset not in PRESETS:
            raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.amp not in ("off", "bf16", "fp16"):
            raise ConfigError(f"--amp must be off, bf16 or fp16, got {self.amp!r}")


@dataclasses.dataclass(frozen=True)
class TrainReport:
    """What a training run did. Losses are the last logged values."""

    output: str
    first_step: int
    steps: int
    seconds: float
    losses: dict[str, float]
    data_wait_fraction: float

    @property
    def steps_per_second(self) -> float:
        return 0.0 if self.seconds <= 0 else (self.steps - self.first_step) / self.seconds


ProgressFn = Callable[[int, int, dict[str, float]], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (use --device cpu)")
    return torch.device(name)


def _autocast(device: torch.device, amp: str):
    if device.type != "cuda" or amp == "off":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


class TrainStep(torch.nn.Module):
    """``forward(src, dst)`` = :meth:`FaceSwapModel.train_outputs`, so DistributedDataParallel can wrap it."""

    def __init__(self, model: FaceSwapModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, src: torch.Tensor, dst: torch.Tensor) -> dict[str, torch.Tensor | None]:
        return self.model.train_outputs(src, dst)


def step_losses(step: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The loss terms of one step (``total`` is what is minimised); ``step`` is a :class:`TrainStep`."""
    out = step(batch["src_in"], batch["dst_in"])
    losses = {
        "src": reconstruction_loss(out["src_rgb"], batch["src_target"], batch["src_mask"], batch["src_weight"]),
        "dst": reconstruction_loss(out["dst_rgb"], batch["dst_target"], batch["dst_mask"], batch["dst_weight"]),
    }
    if out["src_mask"] is not None:
        losses["mask"] = mask_loss(out["src_mask"], batch["src_mask"]) + mask_loss(out["dst_mask"], batch["dst_mask"])
    losses["total"] = sum(losses.values())
    return losses


def preview_grid(model: FaceSwapModel, batch: dict[str, torch.Tensor], rows: int = 4) -> np.ndarray:
    """``(rows*R, 5*R, 3)`` uint8 RGB: src | src->src | dst | dst->dst | dst->src, one face per row."""
    model.eval()
    with torch.no_grad():
        src, dst = batch["src_target"][:rows], batch["dst_target"][:rows]
        cols = [src, model(src, "src")[0], dst, model(dst, "dst")[0], model(dst, "swap")[0]]
    model.train()
    grid = torch.cat([torch.cat(list(c.float().cpu()), dim=1) for c in cols], dim=2)  # (3, rows*R, 5*R)
    return (grid.permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


class _Run:
    """One training run's state (kept out of the public API)."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.root = Path(config.output)
        self.device = resolve_device(config.device)
        self.rank = 0
        if config.distributed:
            import torch.distributed as dist

            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.rank = dist.get_rank()
            if self.device.type == "cuda":
                self.device = torch.device("cuda", self.rank % torch.cuda.device_count())
                torch.cuda.set_device(self.device)
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        if config.resume:
            state = load_train_state(self.root)
            self.card = ModelCard.load(self.root)
            self.model = FaceSwapModel(self.card)
            load_state_into(self.model, state["model"], self.root / "train_state.pt")
            self.step = int(state["step"])
        else:  # DistributedDataParallel broadcasts rank 0's initial weights to the other ranks
            if (self.root / "card.json").exists():
                raise OutputError(f"{self.root} already holds a model: pass --resume to continue it, "
                                  "or choose a new output folder")
            self.card = ModelCard.from_preset(config.preset, arch=config.arch, resolution=config.resolution,
                                              face_type=config.face_type, vfxswap_version=__version__)
            self.model = FaceSwapModel(self.card)
            self.step = 0
            state = None
        self.channels_last = config.channels_last if config.channels_last is not None else self.device.type == "cuda"
        self.model.to(self.device).train()
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.step_module: torch.nn.Module = TrainStep(self.model)
        if config.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.step_module = DistributedDataParallel(
                self.step_module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if config.compile:
            self.step_module = torch.compile(self.step_module)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                           foreach=True)
        if state is not None:
            try:
                self.optimizer.load_state_dict(state["optimizer"])
            except (ValueError, KeyError) as exc:
                raise ModelError(f"{self.root / 'train_state.pt'} has an unusable optimizer state: {exc}") from None
            for group in self.optimizer.param_groups:  # --lr given on resume wins over the saved one
                group["lr"] = config.lr
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda" and config.amp == "fp16")
        src = FaceBank(config.src, resolution=self.card.resolution, face_type=self.card.face_type,
                       holdout=config.holdout)
        dst = FaceBank(config.dst, resolution=self.card.resolution, face_type=self.card.face_type,
                       holdout=config.holdout)
        self.batches = PairBatches(src, dst, batch_size=config.batch_size, seed=config.seed + 1_000_003 * self.rank,
                                   color_transfer=config.color_transfer, workers=config.workers)
        self.last_saved = self.step

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        return {k: v.to(self.device, non_blocking=True).contiguous(memory_format=layout) for k, v in batch.items()}

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        with _autocast(self.device, self.config.amp):
            losses = step_losses(self.step_module, batch)
        total = losses["total"]
        if not torch.isfinite(total):
            raise ModelError(f"the loss became {total.item()} at step {self.step + 1}; the last good checkpoint "
                             f"(step {self.last_saved}) is kept: lower --lr or check the facesets")
        self.scaler.scale(total).backward()
        if self.config.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return {k: float(v.detach()) for k, v in losses.items()}

    def save(self) -> None:
        if self.rank > 0:
            self.last_saved = self.step
            return
        state = {"format": STATE_FORMAT, "step": self.step, "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                 "seed": self.config.seed}
        self.card = dataclasses.replace(self.card, steps=self.step)
        save_model_dir(self.root, self.model, self.card, train_state=state)
        self.last_saved = self.step

    def write_preview(self) -> None:
        if self.rank > 0:
            return
        grid = preview_grid(self.model, self.to_device(self.batches.batch(0)))  # a fixed set of faces
        folder = self.root / PREVIEWS
        folder.mkdir(parents=True, exist_ok=True)
        bgr = cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)
        write_image(folder / f"{self.step:08d}.png", bgr)


def _open_metrics(path: Path, step: int):
    """``metrics.jsonl`` for appending, holding only the lines of steps <= ``step`` (the resumed one):
    lines a killed run logged after its last save, or a fresh run's predecessor left, are dropped.
    The kept lines are written to a new file renamed over the old one (a symlink there is replaced,
    its target neither read nor written)."""
    kept = []
    if step > 0 and path.is_file() and not path.is_symlink():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line + "\n")
            except (ValueError, KeyError, TypeError):
                continue
    replace_atomically(path, lambda tmp: tmp.write_text("".join(kept), encoding="utf-8"))
    return open_for_append(path)


def train(config: TrainConfig, *, progress: ProgressFn | None = None) -> TrainReport:
    """Train (or resume) a model; saves every ``save_every`` steps, at the end and on KeyboardInterrupt.

    Raises:
        FacesetError: a faceset is missing or corrupt.
        ModelError: the model dir cannot be resumed, or the loss became NaN/inf.
        OutputError: the model dir cannot be written, or holds a model and ``resume`` is off.
    """
    run = _Run(config)
    first = run.step
    waited = 0.0
    losses: dict[str, float] = {}
    start = time.perf_counter()
    try:
        run.root.mkdir(parents=True, exist_ok=True)
        metrics = _open_metrics(run.root / METRICS, run.step) if run.rank == 0 else open(os.devnull, "w")
    except OSError as exc:
        raise OutputError(f"cannot write to model folder {run.root}: {exc.strerror}") from None
    batches = run.batches.iterate(run.step, config.iterations)
    try:
        while run.step < config.iterations:
            t0 = time.perf_counter()
            step, batch = next(batches)
            waited += time.perf_counter() - t0
            losses = run.train_step(run.to_device(batch))
            if run.step % 10 == 0 or run.step == config.iterations:
                elapsed = time.perf_counter() - start
                try:
                    metrics.write(json.dumps({"step": run.step, **{k: round(v, 6) for k, v in losses.items()},
                                              "it_s": round((run.step - first) / elapsed, 3)}) + "\n")
                    metrics.flush()
                except OSError as exc:
                    raise write_error(run.root / METRICS, exc) from None
            if progress is not None and run.rank == 0:
                progress(run.step, config.iterations, losses)
            if config.preview_every and run.step % config.preview_every == 0:
                run.write_preview()
            if run.step % config.save_every == 0:
                run.save()
        if run.last_saved != run.step:
            run.save()
    except KeyboardInterrupt:
        if run.step > run.last_saved:
            log.warning("interrupted at step %d: saving", run.step)
            run.save()
        raise
    finally:
        getattr(batches, "close", lambda: None)()
        with contextlib.suppress(OSError):  # a full disk was reported already
            metrics.close()
        if config.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    seconds = time.perf_counter() - start
    return TrainReport(output=str(run.root), first_step=first, steps=run.step, seconds=seconds, losses=losses,
                       data_wait_fraction=waited / seconds if seconds > 0 else 0.0)

