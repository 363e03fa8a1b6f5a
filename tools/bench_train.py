"""Benchmark: training throughput of vfxswap's trainer against a plain eager PyTorch loop, in one run.

Both train the same architecture and preset on the same facesets (extracted here from the bundled
samples) at batch 16 per side, fp32 on the CPU (or with the default AMP on CUDA with --device cuda):
  shipped:  vfxswap.train.loop.train — one encoder pass over cat(src, dst), one foreach AdamW,
            batches built by background threads (the fraction of time spent waiting for them is reported);
  baseline: the straightforward loop — each side through the model separately, Adam without foreach,
            each batch built inline before its step.
Samples/s counts faces of both sides. Warm-up steps are excluded from the timing.
Run: `python tools/bench_train.py [--resolutions 64 128] [--steps 12] [--preset cpu]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from vfxswap.config import ExtractConfig
from vfxswap.extract import extract
from vfxswap.model.autoencoder import FaceSwapModel, flops_per_face
from vfxswap.model.card import ModelCard
from vfxswap.train.data import FaceBank, PairBatches
from vfxswap.train.losses import mask_loss, reconstruction_loss
from vfxswap.train.loop import TrainConfig, resolve_device, train

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
WARMUP = 2


def make_facesets(work: Path) -> tuple[Path, Path]:
    src, dst = work / "src", work / "dst"
    extract(SAMPLES / "src.mp4", src, ExtractConfig(every=4, size=256))
    extract(SAMPLES / "plate.mp4", dst, ExtractConfig(size=256, reference=str(SAMPLES / "reference_dst.png")))
    return src, dst


def shipped(src: Path, dst: Path, out: Path, *, resolution: int, steps: int, preset: str, device: str) -> tuple[float, float]:
    """(samples/s after warm-up, fraction of time waiting for data)."""
    stamps: list[float] = []
    report = train(TrainConfig(src=str(src), dst=str(dst), output=str(out), resolution=resolution, preset=preset,
                               batch_size=16, iterations=steps + WARMUP, save_every=10**9, preview_every=0,
                               device=device), progress=lambda *_: stamps.append(time.perf_counter()))
    return 2 * 16 * steps / (stamps[-1] - stamps[WARMUP - 1]), report.data_wait_fraction


def baseline(src: Path, dst: Path, *, resolution: int, steps: int, preset: str, device: str) -> float:
    """samples/s of a plain eager loop over the same architecture, data and losses."""
    dev = resolve_device(device)
    card = ModelCard.from_preset(preset, resolution=resolution)
    torch.manual_seed(0)
    model = FaceSwapModel(card).to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, foreach=False)
    batches = PairBatches(FaceBank(src, resolution=resolution, face_type=card.face_type),
                          FaceBank(dst, resolution=resolution, face_type=card.face_type), batch_size=16, seed=0, workers=0)
    start = 0.0
    for step in range(steps + WARMUP):
        if step == WARMUP:
            start = time.perf_counter()
        b = {k: v.to(dev) for k, v in batches.batch(step).items()}
        optimizer.zero_grad()
        src_rgb, src_mask = model(b["src_in"], "src")
        dst_rgb, dst_mask = model(b["dst_in"], "dst")
        loss = (reconstruction_loss(src_rgb, b["src_target"], b["src_mask"], b["src_weight"])
                + reconstruction_loss(dst_rgb, b["dst_target"], b["dst_mask"], b["dst_weight"])
                + mask_loss(src_mask, b["src_mask"]) + mask_loss(dst_mask, b["dst_mask"]))
        loss.backward()
        optimizer.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return 2 * 16 * steps / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per measurement (after 2 warm-up steps)")
    parser.add_argument("--preset", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {resolve_device(args.device)}; preset {args.preset}, batch 16/side")
    work = Path(tempfile.mkdtemp(prefix="vfxswap-bench-train-"))
    try:
        src, dst = make_facesets(work)
        print(f"{'res':>4} {'GFLOP/face':>10} {'shipped samples/s':>18} {'data wait':>10} {'baseline samples/s':>19} {'ratio':>6}")
        for r in args.resolutions:
            gflop = flops_per_face(FaceSwapModel(ModelCard.from_preset(args.preset, resolution=r))) / 1e9
            fast, wait = shipped(src, dst, work / f"m{r}", resolution=r, steps=args.steps, preset=args.preset,
                                 device=args.device)
            slow = baseline(src, dst, resolution=r, steps=args.steps, preset=args.preset, device=args.device)
            print(f"{r:>4} {gflop:>10.2f} {fast:>18.1f} {100 * wait:>9.1f}% {slow:>19.1f} {fast / slow:>6.2f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
