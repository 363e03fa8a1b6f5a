"""Benchmark: `vfxswap convert` against a plain transcode of the same 1080p file, in one run.

Builds a 1920x1080 H.264 clip with one face (tools/bench_extract.py's clip), a 128 px `cpu`-preset
model (untrained weights: the cost of a swap does not depend on their values), then times
  1. transcode: the same reader and writer, the same codec settings, frames passed through unchanged;
  2. convert: detect/track/smooth/align/swap/colour/blend with default settings.
Prints both fps, the ratio convert/transcode and the busy time of each converter stage.
Run: `python tools/bench_convert.py [--frames 120] [--grain 4] [--backend auto] [--device cpu]`.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extract import make_clip  # noqa: E402

from vfxswap.config import ConvertConfig  # noqa: E402
from vfxswap.convert.api import convert  # noqa: E402
from vfxswap.io import open_source, open_writer  # noqa: E402
from vfxswap.model.autoencoder import FaceSwapModel, flops_per_face  # noqa: E402
from vfxswap.model.card import ModelCard  # noqa: E402
from vfxswap.model.checkpoint import save_model_dir  # noqa: E402


def transcode(src: Path, out: Path) -> tuple[int, float]:
    start = time.perf_counter()
    n = 0
    with open_source(str(src)) as source, open_writer(out, source.info, source=str(src)) as writer:
        for frame in source.frames():
            writer.write(frame)
            n += 1
    return n, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--grain", type=float, default=0.0)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--preset", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--backend", choices=["auto", "torch", "onnxruntime"], default="auto")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    parser.add_argument("--blend", default="feather")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vfxswap-bench-convert-"))
    try:
        clip = work / "plate_1080p.mp4"
        make_clip(clip, args.frames, args.grain)
        card = ModelCard.from_preset(args.preset, resolution=args.resolution)
        model = FaceSwapModel(card)
        save_model_dir(work / "model", model, card)
        transcode(clip, work / "warm.mp4")  # warm caches
        n, t_transcode = transcode(clip, work / "transcode.mp4")
        config = ConvertConfig(min_size=200, backend=args.backend, device=args.device, blend=args.blend)
        report = convert(clip, work / "model", work / "swap.mp4", config)
        print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores; clip 1920x1080 h264, "
              f"{args.frames} frames, grain {args.grain}; model {args.preset} {args.resolution} px "
              f"({flops_per_face(model) / 1e9:.2f} GFLOP/face), backend {report.backend}, blend {args.blend}")
        fps_t, fps_c = n / t_transcode, report.frames_per_second
        print(f"transcode (no swap)  {fps_t:6.1f} fps")
        print(f"convert              {fps_c:6.1f} fps   ({report.faces_swapped} faces swapped)")
        print(f"ratio convert/transcode {fps_c / fps_t:.2f}")
        print("stage busy seconds: " + "  ".join(f"{k} {v:.2f}" for k, v in report.stage_seconds.items())
              + f"   (wall {report.seconds:.2f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
