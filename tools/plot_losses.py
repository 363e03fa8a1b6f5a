"""Render a model's loss curves (MODEL/metrics.jsonl) to a PNG with OpenCV — no plotting library needed.

Run: `python tools/plot_losses.py MODEL_DIR [-o losses.png] [--log]`. One curve per loss term, step on
x, loss on y (log10 with --log), light smoothing (EMA) drawn over the raw values.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]  # RGB


def read_metrics(model_dir: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rows = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{model_dir}/metrics.jsonl holds no rows yet")
    keys = [k for k in rows[0] if k not in ("step", "it_s")]
    steps = np.array([r["step"] for r in rows], float)
    return steps, {k: np.array([r.get(k, math.nan) for r in rows], float) for k in keys}


def ema(values: np.ndarray, alpha: float = 0.1) -> np.ndarray:
    out = np.empty_like(values)
    acc = values[0]
    for i, v in enumerate(values):
        acc = alpha * v + (1 - alpha) * acc
        out[i] = acc
    return out


def plot(steps: np.ndarray, curves: dict[str, np.ndarray], *, log: bool, size=(960, 540)) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB chart."""
    w, h = size
    left, right, top, bottom = 70, 150, 20, 40
    img = np.full((h, w, 3), 255, np.uint8)
    ys = {k: np.log10(np.maximum(v, 1e-12)) if log else v for k, v in curves.items()}
    lo = min(np.nanmin(v) for v in ys.values())
    hi = max(np.nanmax(v) for v in ys.values())
    hi = hi if hi > lo else lo + 1
    x0, x1 = steps.min(), max(steps.max(), steps.min() + 1)

    def px(s: np.ndarray, y: np.ndarray) -> np.ndarray:
        gx = left + (s - x0) / (x1 - x0) * (w - left - right)
        gy = top + (hi - y) / (hi - lo) * (h - top - bottom)
        return np.stack([gx, gy], axis=1).round().astype(np.int32)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for t in np.linspace(lo, hi, 5):
        y = int(px(np.array([x0]), np.array([t]))[0, 1])
        cv2.line(img, (left, y), (w - right, y), (225, 225, 225), 1)
        label = f"{10 ** t:.3g}" if log else f"{t:.3g}"
        cv2.putText(img, label, (5, y + 4), font, 0.4, (80, 80, 80), 1, cv2.LINE_AA)
    for t in np.linspace(x0, x1, 6):
        x = int(px(np.array([t]), np.array([lo]))[0, 0])
        cv2.putText(img, f"{int(t)}", (x - 10, h - 15), font, 0.4, (80, 80, 80), 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (w - right, h - bottom), (120, 120, 120), 1)
    for i, (name, y) in enumerate(ys.items()):
        colour = COLOURS[i % len(COLOURS)]
        faint = tuple(int(c + (255 - c) * 0.6) for c in colour)
        cv2.polylines(img, [px(steps, y)], False, faint, 1, cv2.LINE_AA)
        cv2.polylines(img, [px(steps, ema(y))], False, colour, 2, cv2.LINE_AA)
        cv2.putText(img, name, (w - right + 10, top + 20 + 20 * i), font, 0.5, colour, 1, cv2.LINE_AA)
    cv2.putText(img, "step", (w // 2, h - 2), font, 0.45, (80, 80, 80), 1, cv2.LINE_AA)
    return img


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=None, help="PNG path (default MODEL_DIR/losses.png)")
    parser.add_argument("--log", action="store_true", help="log-scale y axis")
    args = parser.parse_args()
    steps, curves = read_metrics(args.model_dir)
    out = args.output or args.model_dir / "losses.png"
    cv2.imwrite(str(out), cv2.cvtColor(plot(steps, curves, log=args.log), cv2.COLOR_RGB2BGR))
    print(f"loss curves -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
