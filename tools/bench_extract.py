"""Benchmark: `vfxswap extract` throughput against pure decode of the same 1080p file, in one run.

Builds a 1080p H.264 clip with one face (scikit-image's astronaut portrait on a moving camera; with
``--grain`` plus film grain, as real plates have), then measures in this process:
  1. pure decode: PyAV, threaded decode, every frame converted to an RGB array (what extract needs);
  2. extract with the given settings, into a fresh faceset.
Prints frames/s, faces/s and the ratio extract/decode. Run: `python tools/bench_extract.py [--grain]`.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data as skdata

from vfxswap.config import ExtractConfig
from vfxswap.extract import extract
from vfxswap.faces.analysis import open_analyzer


def write_h264(path: Path, images: Iterable[np.ndarray], width: int, height: int) -> None:
    """Encode BGR uint8 ``(height, width, 3)`` images as a 24 fps H.264 clip (crf 18, veryfast)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for img in images:
            yuv = cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420)
            for packet in stream.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def add_grain(img: np.ndarray, grain: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian grain of sigma ``grain`` (8-bit code values); 0 returns ``img``."""
    if grain <= 0:
        return img
    return np.clip(img + rng.normal(0, grain, img.shape), 0, 255).astype(np.uint8)


def make_clip(path: Path, frames: int, grain: float, seed: int = 0) -> None:
    """A 1920x1080 24 fps clip: the portrait pushed in and panned, optional Gaussian grain (sigma in code values)."""
    portrait = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(seed)

    def images() -> Iterator[np.ndarray]:
        for i in range(frames):
            t = i / max(frames - 1, 1)
            scale = 2.8 + 0.4 * t  # the face (landmark span) is ~260-300 px
            m = np.float32([[scale, 0, 960 - 256 * scale + 200 * (t - 0.5)], [0, scale, 540 - 200 * scale]])
            img = cv2.warpAffine(portrait, m, (1920, 1080), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            yield add_grain(img, grain, rng)

    write_h264(path, images(), 1920, 1080)


def pure_decode(path: Path) -> tuple[int, float]:
    start = time.perf_counter()
    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            n += 1
    return n, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--grain", type=float, default=0.0, help="film grain sigma in 8-bit code values (e.g. 4)")
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--min-size", type=int, default=200, help="smallest face kept; sets the detection proxy")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vfxswap-bench-"))
    try:
        clip = work / "plate_1080p.mp4"
        make_clip(clip, args.frames, args.grain)
        mbps = clip.stat().st_size * 8 / (args.frames / 24) / 1e6
        pure_decode(clip)  # warm the page cache and libraries
        n, decode_s = pure_decode(clip)
        config = ExtractConfig(every=args.every, min_size=args.min_size)
        start = time.perf_counter()
        analyzer = open_analyzer(config.backend, **config.analyzer_options())  # model load, once per process
        load_s = time.perf_counter() - start
        report = extract(clip, work / "faceset", config, analyzer=analyzer)
        decode_fps = n / decode_s
        result = {
            "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
            "clip": f"1920x1080 h264 {args.frames} frames, {mbps:.1f} Mb/s, grain {args.grain}",
            "settings": f"--every {args.every} --min-size {args.min_size} (detect scale {report.detect_scale:.2f})",
            "decode_fps": round(decode_fps, 1),
            "extract_fps": round(report.frames_per_second, 1),
            "extract_faces_per_s": round(report.faces_per_second, 1),
            "faces": report.faces_written,
            "model_load_s": round(load_s, 2),
            "ratio_extract_to_decode": round(report.frames_per_second / decode_fps, 3),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:26s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
