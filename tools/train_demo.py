"""Train the small demo model shipped in samples/demo_model/ from the bundled samples.

1. extract the src faceset from samples/src.mp4 and the dst faceset (the reference person only) from
   samples/plate.mp4;
2. train a `cpu`-preset model (`--arch`, DF by default) at the given resolution;
3. copy card.json, fp16 weights.safetensors, metrics.jsonl and the last preview to the output, with a
   TRAINING.md recording the command, time and final losses.
Run: `python tools/train_demo.py [--iterations 3000] [--resolution 64] [--arch df] [--device auto]
[--work DIR] [--out samples/demo_model]`.

On a machine without PyAV, dlib or OpenImageIO (a rented GPU box), extract first where they are
(`--extract-only --work DIR`), carry DIR, and train there with `--work DIR`: training needs only
torch, NumPy, OpenCV and safetensors. A `--work` run resumes from DIR/model's last checkpoint.
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

from vfxswap.model.checkpoint import load_model, save_model_dir
from vfxswap.train.loop import TrainConfig, resolve_device, train

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--arch", choices=("df", "liae"), default="df")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--out", type=Path, default=SAMPLES / "demo_model")
    parser.add_argument("--work", type=Path, default=None, help="keep the facesets and full model dir here")
    parser.add_argument("--extract-only", action="store_true", help="only extract the facesets into --work")
    args = parser.parse_args()
    if args.extract_only and args.work is None:
        parser.error("--extract-only needs --work DIR")
    work = args.work or Path(tempfile.mkdtemp(prefix="vfxswap-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        extract_facesets(work)
        if args.extract_only:
            print(f"facesets -> {work / 'src'}, {work / 'dst'}")
            return 0
        config = TrainConfig(src=str(work / "src"), dst=str(work / "dst"), output=str(work / "model"),
                             arch=args.arch, device=args.device, resolution=args.resolution,
                             iterations=args.iterations, batch_size=args.batch_size, lr=args.lr, save_every=500,
                             preview_every=500, seed=0,
                             resume=(work / "model" / "train_state.pt").exists())
        device = resolve_device(args.device)
        where = (torch.cuda.get_device_name(device) if device.type == "cuda"
                 else f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
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
            f"--resolution {args.resolution} --arch {args.arch}` on {where} (torch {torch.__version__}) "
            f"in {seconds / 60:.1f} min for this invocation "
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


def extract_facesets(work: Path) -> None:
    """The src faceset (every 4th frame of samples/src.mp4) and the dst faceset (the reference person
    of samples/plate.mp4) under ``work``, unless already there."""
    if (work / "src" / "faceset.jsonl").exists() and (work / "dst" / "faceset.jsonl").exists():
        return
    from vfxswap.config import ExtractConfig  # PyAV, dlib and OpenImageIO: not needed to train
    from vfxswap.extract import extract

    if not (work / "src" / "faceset.jsonl").exists():
        extract(SAMPLES / "src.mp4", work / "src", ExtractConfig(every=4, size=256))
    if not (work / "dst" / "faceset.jsonl").exists():
        extract(SAMPLES / "plate.mp4", work / "dst",
                ExtractConfig(size=256, reference=str(SAMPLES / "reference_dst.png")))


if __name__ == "__main__":
    sys.exit(main())
