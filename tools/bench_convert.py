"""Benchmark: `vfxswap convert` against a plain transcode of the same file, in one run.

Builds an H.264 plate (1080p or 4K) with one or more faces (scikit-image's astronaut portrait side
by side on a moving camera), a ``cpu``- or ``gpu``-preset model (untrained weights: the cost of a swap
does not depend on their values), then times
  1. transcode: the same reader and writer, the same codec settings, frames passed through unchanged
     (pure decode + encode of the same file);
  2. convert, once per variant (backend x precision, on the chosen compositor): detect/track/smooth/
     align/swap/colour/blend with default settings.
Prints each variant's fps, its ratio to the transcode (1.0 = the swap costs nothing; the GPU goal is
>= 0.8) and the busy time of each converter stage (with ``--compositor torch``, or ``auto`` on CUDA,
the device stage split into upload/align/swap/composite/download). A variant that cannot run here
(no CUDA, torch-tensorrt not installed) is listed with the reason instead.

Run: `python tools/bench_convert.py [--size 1080p|4k] [--faces 1|3] [--frames 120] [--grain 4]
[--device cpu|cuda] [--backends torch,onnxruntime] [--precisions fp32] [--compositor auto]
[--codec libx264] [--json]`.
On a GPU: `python tools/bench_convert.py --device cuda --preset gpu --backends torch,compiled,tensorrt
--precisions fp32,fp16 --size 4k --faces 3`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extract import add_grain, write_h264  # noqa: E402

from vfxswap.config import ConvertConfig
from vfxswap.convert.api import convert
from vfxswap.errors import VfxSwapError
from vfxswap.io import open_source, open_writer
from vfxswap.model.autoencoder import FaceSwapModel, flops_per_face
from vfxswap.model.card import ModelCard
from vfxswap.model.checkpoint import save_model_dir

SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160)}
FACE_CENTRE = np.array([222.0, 126.0])  # the astronaut's face in skimage's 512 px portrait


def make_plate(path: Path, frames: int, size: str, faces: int, grain: float, seed: int = 0) -> None:
    """A 24 fps H.264 plate: ``faces`` copies of the portrait side by side, pushed in and panned
    (faces ~260-300 px tall at 1080p, twice that at 4K), optional Gaussian grain (sigma, 8-bit values)."""
    width, height = SIZES[size]
    portrait = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(seed)
    column = width // faces

    def images() -> Iterator[np.ndarray]:
        for i in range(frames):
            t = i / max(frames - 1, 1)
            scale = (2.8 + 0.4 * t) * height / 1080
            img = np.empty((height, width, 3), np.uint8)
            for c in range(faces):
                x0, x1 = c * column, width if c == faces - 1 else (c + 1) * column
                centre = np.array([(x1 - x0) / 2 + 0.05 * column * (t - 0.5), 0.45 * height])
                shift = centre - FACE_CENTRE * scale
                m = np.float32([[scale, 0, shift[0]], [0, scale, shift[1]]])
                img[:, x0:x1] = cv2.warpAffine(portrait, m, (x1 - x0, height), flags=cv2.INTER_LINEAR,
                                               borderMode=cv2.BORDER_REFLECT)
            yield add_grain(img, grain, rng)

    write_h264(path, images(), width, height)


def transcode(src: Path, out: Path, codec: str | None) -> tuple[int, float]:
    """Decode and re-encode through vfxswap's reader and writer; (frames, seconds)."""
    start = time.perf_counter()
    n = 0
    with open_source(str(src)) as source, open_writer(out, source.info, source=str(src), codec=codec) as writer:
        for frame in source.frames():
            writer.write(frame)
            n += 1
    return n, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", choices=sorted(SIZES), default="1080p")
    parser.add_argument("--faces", type=int, default=1)
    parser.add_argument("--grain", type=float, default=0.0)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--preset", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--backends", default="auto", help="comma list: auto, torch, compiled, tensorrt, onnxruntime")
    parser.add_argument("--precisions", default="auto", help="comma list: auto, fp32, fp16, bf16")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    parser.add_argument("--compositor", choices=["auto", "opencv", "torch"], default="auto")
    parser.add_argument("--blend", default="feather")
    parser.add_argument("--codec", default=None, help="output codec for both runs (e.g. h264_nvenc on a GPU machine)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vfxswap-bench-convert-"))
    results: list[dict[str, object]] = []
    try:
        clip = work / f"plate_{args.size}.mp4"
        make_plate(clip, args.frames, args.size, args.faces, args.grain)
        card = ModelCard.from_preset(args.preset, resolution=args.resolution)
        model = FaceSwapModel(card)
        save_model_dir(work / "model", model, card)
        transcode(clip, work / "warm.mp4", args.codec)  # warm caches
        n, t_transcode = transcode(clip, work / "transcode.mp4", args.codec)
        fps_t = n / t_transcode
        header = {
            "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, {_gpu_name()}",
            "clip": f"{args.size} h264, {args.frames} frames, {args.faces} face(s), grain {args.grain}",
            "model": f"{args.preset} {args.resolution} px ({flops_per_face(model) / 1e9:.2f} GFLOP/face)",
            "settings": f"device {args.device}, compositor {args.compositor}, blend {args.blend}, "
                        f"codec {args.codec or 'default'}",
            "transcode_fps": round(fps_t, 1),
        }
        for backend in args.backends.split(","):
            for precision in args.precisions.split(","):
                name = f"{backend}/{precision}"
                try:
                    config = ConvertConfig(min_size=200, backend=backend, device=args.device, precision=precision,
                                           compositor=args.compositor, blend=args.blend, codec=args.codec)
                    report = convert(clip, work / "model", work / f"swap_{backend}_{precision}.mp4", config)
                except VfxSwapError as exc:
                    results.append({"variant": name, "skipped": str(exc)})
                    continue
                results.append({"variant": name, "backend": report.backend,
                                "fps": round(report.frames_per_second, 1),
                                "ratio_to_transcode": round(report.frames_per_second / fps_t, 3),
                                "faces_swapped": report.faces_swapped, "wall_s": round(report.seconds, 2),
                                "stage_seconds": report.stage_seconds})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({**header, "variants": results}, indent=2))
        return 0
    for key, value in header.items():
        print(f"{key:14s} {value}")
    for r in results:
        if "skipped" in r:
            print(f"{r['variant']:22s} skipped: {r['skipped']}")
            continue
        print(f"{r['variant']:22s} {r['fps']:6.1f} fps  ratio {r['ratio_to_transcode']:.2f}  "
              f"({r['backend']}, {r['faces_swapped']} faces, wall {r['wall_s']} s)")
        print("    stage busy s: " + "  ".join(f"{k} {v:.2f}" for k, v in r["stage_seconds"].items()))
    return 0


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"


if __name__ == "__main__":
    sys.exit(main())
