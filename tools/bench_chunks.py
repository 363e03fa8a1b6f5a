"""Benchmark: what a farm pays for chunking a shot (`vfxswap convert --frames A-B` per chunk).

Converts the sample plate (72 frames, 1280x720, 6 faces) with the demo model once in one process,
then chunk by chunk in one process each (as a farm runs them), and prints the total time of both,
the overhead ratio, and how the chunk outputs compare with the single run (they must be identical:
each chunk reads the handles its tracking, smoothing and colour history need).
Run: `python tools/bench_chunks.py [--chunk 24] [--backend onnxruntime]`.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PLATE = ROOT / "samples" / "plate.mp4"


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vfxswap", "convert", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk", type=int, default=24, help="frames per chunk (default 24)")
    parser.add_argument("--frames", type=int, default=72, help="frames of the plate to convert (default 72)")
    parser.add_argument("--backend", choices=["torch", "onnxruntime"], default="onnxruntime")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vfxswap-bench-chunks-"))
    try:
        shutil.copytree(ROOT / "samples" / "demo_model", work / "model")
        common = ["-m", str(work / "model"), "--backend", args.backend, "--progress", "none"]
        last = 1000 + args.frames
        run([str(PLATE), "-o", str(work / "warm" / "f.####.png"), "--frames", "1001-1004", *common])  # warm caches
        single = run([str(PLATE), "-o", str(work / "one" / "f.####.png"), "--frames", f"1001-{last}", *common])
        chunked = 0.0
        for a in range(1001, last + 1, args.chunk):
            b = min(a + args.chunk - 1, last)
            chunked += run([str(PLATE), "-o", str(work / "chunks" / "f.####.png"), "--frames", f"{a}-{b}", *common])
        names = sorted(p.name for p in (work / "one").glob("*.png"))
        same = names == sorted(p.name for p in (work / "chunks").glob("*.png")) and all(
            np.array_equal(cv2.imread(str(work / "one" / n), cv2.IMREAD_UNCHANGED),
                           cv2.imread(str(work / "chunks" / n), cv2.IMREAD_UNCHANGED)) for n in names)
        chunks = -(-args.frames // args.chunk)
        print(f"machine: {platform.machine()}, {platform.system()}, {len(__import__('os').sched_getaffinity(0))} cpus; "
              f"plate {PLATE.name}, {args.frames} frames, backend {args.backend}")
        print(f"single run: {single:.1f} s   {chunks} chunks of {args.chunk}: {chunked:.1f} s   "
              f"chunked/single: {chunked / single:.2f}   outputs identical: {same}")
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
