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
import math
import os
import re
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
from ..model.checkpoint import copy_matching_weights, load_state_into, load_train_state, save_model_dir
from ..types import FACE_TYPES, FaceType
from .data import FaceBank, PairBatches
from .losses import mask_loss, reconstruction_loss

log = logging.getLogger(__name__)

STATE_FORMAT = "vfxswap-train-state"
METRICS = "metrics.jsonl"
PREVIEWS = "previews"
_HMS = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str, *, what: str = "--time-limit") -> float:
    """Seconds in a duration: plain seconds (``90``, ``2.5``) or hours/minutes/seconds (``90s``,
    ``45m``, ``2h``, ``1h30m``, ``1.5h``). Raises ConfigError (one line) unless it reads as > 0 s."""
    value = text.strip().lower()
    match = _HMS.fullmatch(value)
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
    elif value and match is not None:
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = 3600 * hours + 60 * minutes + secs
    else:
        raise ConfigError(f"{what}: {text!r} is not a duration: give seconds (90) or hours, minutes and/or "
                          "seconds (90s, 45m, 2h, 1h30m)")
    if not seconds > 0:
        raise ConfigError(f"{what} must be longer than 0 s, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """``3725`` -> ``1h02m05s``, ``45`` -> ``45s`` (whole seconds; a form :func:`parse_duration` reads)."""
    s = max(0, round(seconds))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of ``vfxswap train``.

    Attributes:
        src, dst: faceset folders of the identity to put in and of the person in the plate.
        pretrain: instead of ``src``/``dst``, faceset folders of many people: their union feeds both
            sides, so encoder, inter and decoders learn faces in general; the card says ``pretrained``.
        init: a model folder (typically pretrained) to start a new model from: its weights whose names
            and shapes match are copied (safetensors only), then step 0 with a fresh optimizer; its
            arch, resolution, face type and widths must equal this run's. Not with ``resume``.
        init_decoders: with ``init``, copy the decoders too (default, as DeepFaceLab reuses a model);
            off: only encoder and inter layers are copied, decoders start fresh.
        output: model folder.
        iterations: train until this many steps in total (a resumed run continues up to it);
            ``None``: no step limit (``time_limit`` then ends the run).
        time_limit: wall-clock budget in seconds, counted from the call (a resumed run: from the
            resume); the run stops after the step that spends it and saves. ``None``: no budget.
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

    src: str | None = None
    dst: str | None = None
    output: str
    pretrain: tuple[str, ...] = ()
    init: str | None = None
    init_decoders: bool = True
    iterations: int | None = 1000
    time_limit: float | None = None
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
        if self.pretrain and (self.src or self.dst):
            raise ConfigError("--pretrain trains on its own facesets: drop --src and --dst")
        if not self.pretrain and not (self.src and self.dst):
            raise ConfigError("--src and --dst are both needed (or --pretrain FACESET ... for a pretrained model)")
        if self.init and self.resume:
            raise ConfigError("--init starts a new model and --resume continues one: pass only one of them")
        if self.iterations is None and self.time_limit is None:
            raise ConfigError("give --iterations or --time-limit (or both: whichever comes first ends the run)")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(f"--time-limit must be longer than 0 s, got {self.time_limit}")
        for name in ("iterations", "batch_size", "save_every", "workers"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
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
    """What a training run did. Losses are the last logged values; ``seconds`` is the training time
    (after loading); ``stopped_on_time_limit``: the time budget, not ``iterations``, ended it;
    ``init_tensors``: tensors copied from ``TrainConfig.init``."""

    output: str
    first_step: int
    steps: int
    seconds: float
    losses: dict[str, float]
    data_wait_fraction: float
    stopped_on_time_limit: bool = False
    init_tensors: int = 0

    @property
    def steps_per_second(self) -> float:
        return 0.0 if self.seconds <= 0 else (self.steps - self.first_step) / self.seconds


ProgressFn = Callable[[int, int, dict[str, float]], None]  # (step, expected last step, losses)
INIT_MATCHES = ("arch", "resolution", "face_type")
INIT_WIDTHS = ("encoder_dims", "ae_dims", "decoder_dims", "decoder_mask_dims", "separable", "mask_head")


def init_from(model: FaceSwapModel, card: ModelCard, source: str | os.PathLike, *,
              decoders: bool = True) -> list[str]:
    """Copy the weights of model dir ``source`` into ``model`` (described by ``card``); returns the
    copied tensor names. Decoders (``decoder*``) are copied only with ``decoders``.

    Raises:
        ModelError: ``source`` is no readable model, or its arch, resolution, face type or widths
            differ from ``card``'s (the message names which).
    """
    theirs = ModelCard.load(source)
    differ = [f"{k} {getattr(theirs, k)} (this run: {getattr(card, k)})"
              for k in INIT_MATCHES if getattr(theirs, k) != getattr(card, k)]
    if any(getattr(theirs, k) != getattr(card, k) for k in INIT_WIDTHS):
        differ.append("other widths (this run's --preset differs)")
    if differ:
        raise ModelError(f"cannot --init from {source}: it has {'; '.join(differ)}: pass the --arch, --resolution, "
                         "--face-type and --preset it was trained with, or pretrain a model that matches")
    return copy_matching_weights(model, source, skip=() if decoders else ("decoder",))


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
            if self.card.pretrained != bool(config.pretrain):
                raise ConfigError(
                    f"{self.root} is a pretrained model: continue pretraining it with --pretrain FACESET ..., "
                    f"or start a pair from it with --init {self.root} -o NEW_MODEL" if self.card.pretrained else
                    f"{self.root} is not a pretrained model: resume it with --src and --dst, not --pretrain")
            self.model = FaceSwapModel(self.card)
            load_state_into(self.model, state["model"], self.root / "train_state.pt")
            self.step = int(state["step"])
            self.init_tensors = 0
        else:  # DistributedDataParallel broadcasts rank 0's initial weights to the other ranks
            if (self.root / "card.json").exists():
                raise OutputError(f"{self.root} already holds a model: pass --resume to continue it, "
                                  "or choose a new output folder")
            self.card = ModelCard.from_preset(config.preset, arch=config.arch, resolution=config.resolution,
                                              face_type=config.face_type, pretrained=bool(config.pretrain),
                                              vfxswap_version=__version__)
            self.model = FaceSwapModel(self.card)
            self.init_tensors = 0
            if config.init:
                self.init_tensors = len(init_from(self.model, self.card, config.init, decoders=config.init_decoders))
                self.card = dataclasses.replace(self.card, init_from=str(config.init))
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
        banks = [FaceBank(folder, resolution=self.card.resolution, face_type=self.card.face_type,
                          holdout=config.holdout) for folder in (config.pretrain or (config.src, config.dst))]
        src, dst = (FaceBank.merged(banks),) * 2 if config.pretrain else banks  # pretrain: one pool, both sides
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

    def agree(self, flag: bool) -> bool:
        """``flag`` of rank 0 on every rank (so all ranks stop at the same step); ``flag`` alone without DDP."""
        if not self.config.distributed:
            return flag
        import torch.distributed as dist

        value = torch.tensor([float(flag)], device=self.device if self.device.type == "cuda" else "cpu")
        dist.broadcast(value, src=0)
        return bool(value.item())

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


def expected_end(step: int, first: int, elapsed: float, left: float | None, iterations: int | None) -> int:
    """The step a run will stop at: ``iterations``, or sooner at the current rate (steps since
    ``first`` over ``elapsed`` s) when ``left`` seconds of its time budget run out first."""
    if left is None:
        return iterations if iterations is not None else step
    rate = (step - first) / elapsed if elapsed > 0 else 0.0
    end = step + math.ceil(rate * max(left, 0.0))  # > step while time is left: 100 % only at the end
    return end if iterations is None else min(iterations, end)


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
    deadline = None if config.time_limit is None else time.perf_counter() + config.time_limit
    run = _Run(config)
    first = run.step
    waited = 0.0
    losses: dict[str, float] = {}
    out_of_time = False
    start = time.perf_counter()
    try:
        run.root.mkdir(parents=True, exist_ok=True)
        metrics = _open_metrics(run.root / METRICS, run.step) if run.rank == 0 else open(os.devnull, "w")
    except OSError as exc:
        raise OutputError(f"cannot write to model folder {run.root}: {exc.strerror}") from None
    batches = run.batches.iterate(run.step, config.iterations)
    try:
        while config.iterations is None or run.step < config.iterations:
            t0 = time.perf_counter()
            step, batch = next(batches)
            waited += time.perf_counter() - t0
            losses = run.train_step(run.to_device(batch))
            now = time.perf_counter()
            out_of_time = deadline is not None and run.agree(now >= deadline)
            if run.step % 10 == 0 or run.step == config.iterations or out_of_time:
                elapsed = now - start
                try:
                    metrics.write(json.dumps({"step": run.step, **{k: round(v, 6) for k, v in losses.items()},
                                              "it_s": round((run.step - first) / elapsed, 3)}) + "\n")
                    metrics.flush()
                except OSError as exc:
                    raise write_error(run.root / METRICS, exc) from None
            if progress is not None and run.rank == 0:
                left = None if deadline is None else deadline - now
                progress(run.step, expected_end(run.step, first, now - start, left, config.iterations), losses)
            if config.preview_every and run.step % config.preview_every == 0:
                run.write_preview()
            if run.step % config.save_every == 0:
                run.save()
            if out_of_time:
                break
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
                       data_wait_fraction=waited / seconds if seconds > 0 else 0.0,
                       stopped_on_time_limit=out_of_time, init_tensors=run.init_tensors)

