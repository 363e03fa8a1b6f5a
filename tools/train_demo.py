"""Train the small demo model shipped in samples/demo_model/ from the bundled samples.

1. extract the src faceset from samples/src.mp4 and the dst faceset (the reference person only) from
   samples/plate.mp4;
2. train a `cpu`-preset DF model at the given resolution;
3. copy card.json, fp16 weights.safetensors, metrics.jsonl and the last preview to the output, with a
   TRAINING.md recording the command, time and final losses.
Run: `python tools/train_demo.py [--iterations 3000] [--resolution 64] [--out samples/demo_model]`.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from vfxswap.config import ExtractConfig
from vfxswap.extract import extract
from vfxswap.model.checkpoint import load_model, save_model_dir
from vfxswap.train.loop import TrainConfig, train

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--out", type=Path, default=SAMPLES / "demo_model")
    parser.add_argument("--work", type=Path, default=None, help="keep the facesets and full model dir here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="vfxswap-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if not (work / "src" / "faceset.jsonl").exists():
            extract(SAMPLES / "src.mp4", work / "src", ExtractConfig(every=4, size=256))
        if not (work / "dst" / "faceset.jsonl").exists():
            extract(SAMPLES / "plate.mp4", work / "dst",
                    ExtractConfig(size=256, reference=str(SAMPLES / "reference_dst.png")))
        config = TrainConfig(src=str(work / "src"), dst=str(work / "dst"), output=str(work / "model"),
                             resolution=args.resolution, iterations=args.iterations, batch_size=args.batch_size,
                             lr=args.lr, save_every=500, preview_every=500, seed=0,
                             resume=(work / "model" / "train_state.pt").exists())
        start = time.perf_counter()
        report = train(config, progress=lambda done, total, losses: print(
            f"step {done}/{total} " + " ".join(f"{k} {v:.3f}" for k, v in losses.items()), flush=True)
            if done % 100 == 0 else None)
        seconds = time.perf_counter() - start
        model, card = load_model(work / "model")
        staging = args.out.with_name(f".tmp-{args.out.name}")
        shutil.rmtree(staging, ignore_errors=True)
        save_model_dir(staging, model, card, weights_dtype=torch.float16)
        shutil.copy(work / "model" / "metrics.jsonl", staging / "metrics.jsonl")
        previews = sorted((work / "model" / "previews").glob("*.png"))
        if previews:
            shutil.copy(previews[-1], staging / "preview.png")
        losses = ", ".join(f"{k} {v:.4f}" for k, v in report.losses.items())
        (staging / "TRAINING.md").write_text(
            f"# demo model\n\nTrained by `python tools/train_demo.py --iterations {args.iterations} "
            f"--resolution {args.resolution}` on {platform.machine()} ({torch.get_num_threads()} threads, "
            f"torch {torch.__version__}, CPU) in {seconds / 60:.1f} min for this invocation "
            f"({report.first_step} -> {report.steps} steps, batch {args.batch_size} per side, lr {args.lr}).\n\n"
            f"src: samples/src.mp4 (the astronaut); dst: the reference person of samples/plate.mp4.\n"
            f"Final losses (step {report.steps}): {losses}.\n\n"
            "Weights are stored in float16 to keep the repository small; they load as float32.\n"
            "preview.png columns: src | src->src | dst | dst->dst | dst->src (the swap).\n", encoding="utf-8")
        shutil.rmtree(args.out, ignore_errors=True)
        staging.rename(args.out)
        print(f"demo model -> {args.out} ({report.steps} steps, {seconds / 60:.1f} min; {losses})")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
