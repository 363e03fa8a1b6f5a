"""The shot report: ``metrics.json``, a self-contained ``report.html`` and ``contact_sheet.png``.

The contact sheet has one row per chosen frame (evenly spread frames plus the worst frame of each
metric) and four columns: plate | swap | matte | difference (``|swap - plate|`` x4, inferno
colours), each a square crop around the swapped face. Worst frames get a red frame and say what
they are worst at. The HTML page holds everything inline (images as base64, plots as SVG), so it
can be mailed or attached to a review ticket as one file.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import __version__
from ..atomic import replace_atomically, write_image
from ..errors import OutputError
from .inputs import ShotFrame, iter_shot
from .shot import TARGETS, ShotResult

METRICS_FILE = "metrics.json"
HTML_FILE = "report.html"
SHEET_FILE = "contact_sheet.png"

#: Contact-sheet layout, pixels: square cells, gaps, the label column and the header row.
CELL = 192
GAP = 6
LABEL_W = 140
HEADER_H = 30
COLUMNS = ("plate", "swap", "matte", "difference")
#: Amplification of the difference column.
DIFF_GAIN = 4.0

WORST_LABELS = {"face_found": "face lost", "identity": "identity", "detail": "detail",
                "landmark_error": "landmarks", "jitter": "jitter", "flicker": "flicker",
                "seam_ratio": "seam", "border_delta_e": "border dE"}
_RED = (220, 40, 40)


@dataclasses.dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote: ``metrics``, ``html`` and ``sheet`` paths, and the sheet's
    frame numbers (one per row, in order)."""

    metrics: Path
    html: Path
    sheet: Path
    sheet_frames: tuple[int, ...]


# ---------------------------------------------------------------------------------- contact sheet
def sheet_size(rows: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of a contact sheet with ``rows`` rows."""
    return LABEL_W + len(COLUMNS) * (CELL + GAP) + GAP, HEADER_H + rows * (CELL + GAP) + GAP


def cell_origin(row: int, column: int) -> tuple[int, int]:
    """``(x, y)`` of the top-left pixel of a cell of the contact sheet."""
    return LABEL_W + GAP + column * (CELL + GAP), HEADER_H + GAP + row * (CELL + GAP)


def sheet_frames(result: ShotResult, rows: int = 6) -> tuple[list[int], dict[int, list[str]]]:
    """The frames of the contact sheet: ``rows`` evenly spread frames with faces, plus the worst
    frame of each metric; and the callouts (``"worst seam"``...) of the worst ones.

    Returns:
        ``(numbers in order, {number: callouts})``.
    """
    with_faces = [f.number for f in result.frames if f.faces] or [f.number for f in result.frames]
    picks = {with_faces[int(i)] for i in np.linspace(0, len(with_faces) - 1, min(rows, len(with_faces))).round()}
    callouts: dict[int, list[str]] = {}
    for metric, numbers in result.worst(1).items():
        callouts.setdefault(numbers[0], []).append(f"worst {WORST_LABELS.get(metric, metric)}")
        picks.add(numbers[0])
    return sorted(picks), callouts


def _crop_box(mask: np.ndarray) -> tuple[int, int, int] | None:
    """``(x0, y0, side)`` of a square around the mask's support (x1.6), inside the frame if it fits."""
    ys, xs = np.nonzero(mask > 0.02)
    if not len(xs):
        return None
    h, w = mask.shape
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    side = int(min(max(xs.max() - xs.min(), ys.max() - ys.min()) * 1.6 + 16, min(h, w)))
    x0 = int(np.clip(round(cx - side / 2), 0, w - side))
    y0 = int(np.clip(round(cy - side / 2), 0, h - side))
    return x0, y0, side


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    """Letterbox an image into a ``size`` square (black bars)."""
    h, w = image.shape[:2]
    s = size / max(h, w)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.zeros((size, size, 3), np.uint8)
    y, x = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


def frame_cells(frame: ShotFrame, size: int = CELL) -> list[np.ndarray]:
    """The four ``(size, size, 3)`` uint8 RGB cells of a frame: plate, swap, matte, difference."""
    matte = np.repeat((np.clip(frame.mask, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    diff = np.abs(frame.swapped.astype(np.int16) - frame.plate.astype(np.int16)).mean(axis=2)
    diff = np.clip(diff * DIFF_GAIN, 0, 255).astype(np.uint8)
    diff = cv2.cvtColor(cv2.applyColorMap(diff, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    images = [frame.plate, frame.swapped, matte, diff]
    box = _crop_box(frame.mask)
    if box is None:
        return [_fit(x, size) for x in images]
    x0, y0, side = box
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return [cv2.resize(np.ascontiguousarray(x[y0:y0 + side, x0:x0 + side]), (size, size), interpolation=interp)
            for x in images]


def _text(image: np.ndarray, text: str, org: tuple[int, int], *, color=(235, 235, 235), scale: float = 0.45,
          thickness: int = 1) -> None:
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def contact_sheet(frames: Sequence[ShotFrame], callouts: dict[int, list[str]] | None = None,
                  values: dict[int, list[str]] | None = None) -> np.ndarray:
    """Draw the contact sheet.

    Args:
        frames: one row per frame, in order.
        callouts: red labels per frame number (``worst seam``); those rows get a red frame.
        values: grey lines of numbers per frame number (``lm 0.15``) under the frame number.

    Returns:
        ``(H, W, 3)`` uint8 RGB image of :func:`sheet_size` ``(len(frames))``.
    """
    callouts = callouts or {}
    values = values or {}
    width, height = sheet_size(len(frames))
    sheet = np.full((height, width, 3), 24, np.uint8)
    for c, name in enumerate(COLUMNS):
        x, _ = cell_origin(0, c)
        _text(sheet, name, (x + 4, HEADER_H - 10), scale=0.55)
    for r, frame in enumerate(frames):
        for c, cell in enumerate(frame_cells(frame)):
            x, y = cell_origin(r, c)
            sheet[y:y + CELL, x:x + CELL] = cell
        _, y = cell_origin(r, 0)
        _text(sheet, f"frame {frame.number}", (8, y + 18), scale=0.55)
        line = y + 38
        for v in values.get(frame.number, []):
            _text(sheet, v, (8, line), color=(170, 170, 170), scale=0.4)
            line += 16
        for note in callouts.get(frame.number, []):
            _text(sheet, note, (8, line), color=_RED, scale=0.42)
            line += 16
        if frame.number in callouts:
            cv2.rectangle(sheet, (2, y - 3), (width - 3, y + CELL + 2), _RED, 2)
    return sheet


def _frame_values(result: ShotResult) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for f in result.frames:
        lines = []
        if f.identity_margin is not None:
            lines.append(f"id src-dst {f.identity_margin:+.3f}")
        if any(face.face_found is False for face in f.faces):
            lines.append("face not found")
        for name, label, fmt in (("detail_ratio", "detail", "{:.2f}"), ("landmark_error", "lm", "{:.3f}"),
                                 ("seam_ratio", "seam", "{:.2f}"),
                                 ("border_delta_e", "dE", "{:.1f}")):
            v = f.mean(name)
            if v is not None:
                lines.append(f"{label} {fmt.format(v)}")
        if f.jitter is not None:
            lines.append(f"jitter {100 * f.jitter:.2f}%")
        out[f.number] = lines
    return out


# ------------------------------------------------------------------------------------------- plots
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22")


def _nice(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return "0"
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 else f"{v:.2g}"


def svg_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float | None]]], *, title: str,
              limit: float | None = None, limit_label: str = "target", marks: Sequence[float] = (),
              width: int = 660, height: int = 220, percent: bool = False, dashed: Sequence[str] = (),
              zero: bool = True) -> str:
    """An inline SVG line chart.

    Args:
        series: ``(label, xs, ys)`` per line; ``None``/NaN values break the line.
        title: chart title.
        limit: a horizontal target line (dashed red), or ``None``.
        marks: x values to mark with a red circle on every series (the worst frames).
        percent: show y values x100 with a ``%`` sign.
        dashed: labels of series drawn dashed (references such as the plate's own value).
        zero: start the y axis at 0 (else at the data's minimum).

    Returns:
        ``<svg>...</svg>`` text, or a short note when there is nothing to draw.
    """
    scale = 100.0 if percent else 1.0
    pts = [(x, y * scale) for _, xs, ys in series for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    if not pts:
        return f'<p class="na">{html.escape(title)}: not measured</p>'
    xs_all = [p[0] for p in pts]
    ys_all = [p[1] for p in pts] + ([limit * scale] if limit is not None else [])
    x0, x1 = min(xs_all), max(xs_all)
    y0, y1 = (min(0.0, min(ys_all)) if zero else min(ys_all)), max(ys_all)
    if y1 - y0 < 1e-12:
        y1 = y0 + (1.0 if zero else max(abs(y0) * 0.1, 1e-3))
    pad = 0.08 * (y1 - y0)
    y1 += pad
    if not zero:
        y0 -= pad
    if x1 == x0:
        x1 = x0 + 1
    left, right, top, bottom = 58, 12, 40, 30
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="15" font-size="13" font-weight="bold">{html.escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>']
    for k in range(5):
        yv = y0 + (y1 - y0) * k / 4
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(yv):.1f}" y2="{py(yv):.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{left - 4}" y="{py(yv) + 4:.1f}" text-anchor="end">'
                   f'{_nice(yv)}{"%" if percent else ""}</text>')
    for k in range(6):
        xv = x0 + (x1 - x0) * k / 5
        out.append(f'<text x="{px(xv):.1f}" y="{height - 12}" text-anchor="middle">{round(xv)}</text>')
    if limit is not None:
        ly = py(limit * scale)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{ly:.1f}" y2="{ly:.1f}" stroke="#d62728" '
                   f'stroke-dasharray="6,4"/>')
        out.append(f'<text x="{left + pw - 4}" y="{ly - 4:.1f}" text-anchor="end" fill="#d62728">'
                   f'{html.escape(limit_label)} {_nice(limit * scale)}</text>')
    lx = left
    for i, (label, xs, ys) in enumerate(series):
        color = _PALETTE[i % len(_PALETTE)]
        dash = ' stroke-dasharray="4,3"' if label in dashed else ""
        runs: list[list[str]] = [[]]
        for x, y in zip(xs, ys):
            if y is None or not math.isfinite(y):
                runs.append([])
                continue
            runs[-1].append(f"{px(x):.1f},{py(y * scale):.1f}")
        for run in runs:
            if len(run) > 1:
                out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} '
                           f'points="{" ".join(run)}"/>')
            elif len(run) == 1:
                cx, cy = run[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{color}"/>')
        for m in marks:
            for x, y in zip(xs, ys):
                if x == m and y is not None and math.isfinite(y):
                    out.append(f'<circle cx="{px(x):.1f}" cy="{py(y * scale):.1f}" r="4.5" fill="none" '
                               f'stroke="#d62728" stroke-width="1.5"/>')
        if lx < width - 60:  # legend on the line under the title, as many as fit
            out.append(f'<line x1="{lx}" x2="{lx + 16}" y1="28" y2="28" stroke="{color}" stroke-width="2"{dash}/>'
                       f'<text x="{lx + 20}" y="32">{html.escape(label)}</text>')
            lx += 34 + 6 * len(label)
    out.append("</svg>")
    return "".join(out)


def target_limit(key: str) -> float | None:
    """The :data:`~vfxswap.eval.shot.TARGETS` limit of a summary key, or ``None``."""
    return next((limit for k, _, limit, _ in TARGETS if k == key), None)


def shot_charts(result: ShotResult) -> list[str]:
    """The per-frame charts of a shot: identity, detail ratio, landmark error, mouth and eye
    opening, jitter, flicker, seam ratio, border ΔE."""
    frames = result.frames
    xs = [f.number for f in frames]
    worst = result.worst(1)

    def mark(name: str) -> list[int]:
        return worst.get(name, [])

    charts = [
        svg_chart([("swap → src", xs, [f.mean("identity_src") for f in frames]),
                   ("swap → plate face", xs, [f.mean("identity_dst") for f in frames]),
                   ("plate face → src", xs, [f.mean("plate_identity_src") for f in frames])],
                  title="identity similarity (cosine)", marks=mark("identity"), dashed=("plate face → src",),
                  zero=False),
        svg_chart([("swap / plate", xs, [f.mean("detail_ratio") for f in frames])],
                  title="face detail ratio (high-frequency energy, swap / plate)",
                  limit=target_limit("face_detail_ratio_mean"), marks=mark("detail")),
        svg_chart([("landmark error", xs, [f.mean("landmark_error") for f in frames]),
                   ("src shape gap", xs, [f.mean("src_shape_gap") for f in frames])],
                  title="landmark error (inter-ocular distances)", limit=target_limit("landmark_error_mean"),
                  marks=mark("landmark_error"), dashed=("src shape gap",)),
        svg_chart([("swap", xs, [f.mean("mouth_open") for f in frames]),
                   ("plate", xs, [f.mean("plate_mouth_open") for f in frames])],
                  title="mouth opening (inner lips / inter-ocular distance)", dashed=("plate",)),
        svg_chart([("swap", xs, [f.mean("eye_open") for f in frames]),
                   ("plate", xs, [f.mean("plate_eye_open") for f in frames])],
                  title="eye opening (eye aspect ratio)", dashed=("plate",), zero=False),
        svg_chart([("converter placement", xs, [f.jitter for f in frames])],
                  title="affine jitter (% of face crop side)", percent=True, marks=mark("jitter")),
        svg_chart([("swap", xs, [f.swap_change for f in frames]), ("plate", xs, [f.plate_change for f in frames])],
                  title="face-region change from the previous frame (mean |ΔY|)", marks=mark("flicker"),
                  dashed=("plate",)),
        svg_chart([("swap", xs, [f.mean("seam_ratio") for f in frames]),
                   ("plate, same mask", xs, [f.mean("plate_seam_ratio") for f in frames])],
                  title="seam gradient ratio (border / inside)", limit=1.5, marks=mark("seam_ratio"),
                  dashed=("plate, same mask",)),
        svg_chart([("swap", xs, [f.mean("border_delta_e") for f in frames]),
                   ("plate, same mask", xs, [f.mean("plate_border_delta_e") for f in frames])],
                  title="border ΔE76 (ring inside vs outside the mask)", limit=6.0, marks=mark("border_delta_e"),
                  dashed=("plate, same mask",)),
    ]
    return charts


# -------------------------------------------------------------------------------------------- html
def data_uri(image: np.ndarray, *, fmt: str = ".jpg", quality: int = 88) -> str:
    """An RGB uint8 image as a ``data:`` URI (JPEG or PNG)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 6]
    ok, buf = cv2.imencode(fmt, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OutputError(f"cannot encode a {fmt} image for the report")
    mime = "image/jpeg" if fmt == ".jpg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.tobytes()).decode('ascii')}"


CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37;font-weight:bold} .fail{color:#c62828;font-weight:bold} .na{color:#888}
.meta{color:#555;font-size:13px} .charts{display:flex;flex-wrap:wrap;gap:10px}
.best{background:#e8f5e9} img{max-width:100%} .worst{display:flex;flex-wrap:wrap;gap:14px}
.worst figure{margin:0;font-size:12px} code{background:#f4f4f4;padding:1px 4px}
"""


def _fmt(value: Any, fmt: str = "{:.3f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '<span class="na">n/a</span>'
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and fmt == "{:.3f}":
        return str(value)
    if isinstance(value, (int, float)):
        return fmt.format(value)
    return html.escape(str(value))


#: Summary rows of the report and comparisons: ``(key, label, format, better)``.
SUMMARY_ROWS: tuple[tuple[str, str, str, str | None], ...] = (
    ("identity_toward_src", "frames closer to src than to the plate face", "{:.0%}", "higher"),
    ("identity_src_mean", "identity similarity to src", "{:.3f}", "higher"),
    ("identity_dst_mean", "identity similarity to the plate face", "{:.3f}", "lower"),
    ("identity_src_distance_mean", "identity distance to src", "{:.3f}", "lower"),
    ("identity_dst_distance_mean", "identity distance to the plate face", "{:.3f}", "higher"),
    ("plate_identity_src_mean", "plate face similarity to src (before)", "{:.3f}", None),
    ("face_found_rate", "swapped faces still found by the detector", "{:.0%}", "higher"),
    ("face_detail_ratio_mean", "face detail ratio (swap / plate), mean", "{:.3f}", "higher"),
    ("face_detail_ratio_median", "face detail ratio (swap / plate), median", "{:.3f}", "higher"),
    ("landmark_error_mean", "landmark error, mean (IOD)", "{:.3f}", "lower"),
    ("landmark_error_max", "landmark error, max (IOD)", "{:.3f}", "lower"),
    ("src_shape_gap_mean", "src shape gap: landmark error of the nearest src face (IOD)", "{:.3f}", None),
    ("mouth_correlation", "mouth-opening correlation with the plate", "{:.3f}", "higher"),
    ("eye_correlation", "eye-opening correlation with the plate", "{:.3f}", "higher"),
    ("landmark_jitter_ratio", "landmark jitter / the plate's", "{:.3f}", "lower"),
    ("landmark_jitter", "landmark jitter (IOD per frame)", "{:.4f}", "lower"),
    ("plate_landmark_jitter", "landmark jitter of the plate (IOD per frame)", "{:.4f}", None),
    ("jitter", "affine jitter (fraction of crop side)", "{:.5f}", "lower"),
    ("flicker_ratio", "flicker (swap change / plate change)", "{:.3f}", None),
    ("seam_ratio_mean", "seam gradient ratio, mean", "{:.3f}", "lower"),
    ("plate_seam_ratio_mean", "seam gradient ratio of the plate (same mask)", "{:.3f}", None),
    ("border_delta_e_mean", "border ΔE76, mean", "{:.2f}", "lower"),
    ("border_delta_e_max", "border ΔE76, max", "{:.2f}", "lower"),
    ("plate_border_delta_e_mean", "border ΔE76 of the plate (same mask)", "{:.2f}", None),
)


def _settings_table(result: ShotResult) -> str:
    settings = (result.spec.settings or {}).get("settings") or {}
    keys = ("color", "blend", "mask", "feather", "erode", "smooth", "color_smooth", "every", "faces", "frames",
            "backend")
    rows = "".join(f"<tr><th>{k}</th><td>{_fmt(settings.get(k))}</td></tr>" for k in keys if k in settings)
    if not rows:
        return '<p class="na">no convert settings file beside the swapped output</p>'
    return f"<table>{rows}</table>"


def _recon_table(recon: list[dict[str, Any]]) -> str:
    if not recon:
        return ('<p class="na">not measured: pass <code>--src FACESET</code> and/or <code>--dst FACESET</code> '
                'with <code>--model</code></p>')
    rows = "".join(f"<tr><td>{_fmt(r['side'])}</td><td>{_fmt(r['faceset'])}</td><td class=num>{r['faces']}</td>"
                   f"<td class=num>1 in {r['held_out_every']}</td><td class=num>{_fmt(r['ssim'])}</td>"
                   f"<td class=num>{_fmt(r['psnr'], '{:.2f} dB')}</td></tr>" for r in recon)
    return ("<table><tr><th>side</th><th>faceset</th><th>faces</th><th>held out</th><th>SSIM</th><th>PSNR</th></tr>"
            f"{rows}</table>")


def render_html(result: ShotResult, sheet: np.ndarray, sheet_numbers: Sequence[int],
                worst_cells: dict[int, list[np.ndarray]], recon_images: Sequence[np.ndarray] = ()) -> str:
    """The report page (self-contained: no external references)."""
    s = result.summary
    title = f"vfxswap eval — {Path(result.spec.swapped).name}"
    verdicts = {True: ("pass", "pass"), False: ("fail", "FAIL"), None: ("na", "n/a")}
    targets = "".join(
        f"<tr><td>{html.escape(t['label'])}</td><td class=num>{_fmt(t['value'])}</td>"
        f"<td class=num>{t['op']} {t['limit']:g}</td><td class={verdicts[t['passed']][0]}>"
        f"{verdicts[t['passed']][1]}</td></tr>" for t in result.targets())
    summary = "".join(f"<tr><td>{html.escape(label)}</td><td class=num>{_fmt(s.get(key), fmt)}</td></tr>"
                      for key, label, fmt, _ in SUMMARY_ROWS)
    worst = result.worst(1)
    figures = []
    for metric, numbers in worst.items():
        n = numbers[0]
        cells = worst_cells.get(n)
        if cells is None:
            continue
        strip = np.concatenate([cells[0], np.full((cells[0].shape[0], 4, 3), 255, np.uint8), cells[1],
                                np.full((cells[0].shape[0], 4, 3), 255, np.uint8), cells[3]], axis=1)
        figures.append(f'<figure><img src="{data_uri(strip)}" alt="frame {n}"><figcaption>'
                       f'<b>worst {html.escape(WORST_LABELS.get(metric, metric))}</b>: frame {n} '
                       f'(plate | swap | difference)</figcaption></figure>')
    inputs = result.spec
    names = (("plate", inputs.plate), ("swapped", inputs.swapped), ("matte", inputs.matte),
             ("patches", inputs.patches), ("model", inputs.model), ("src", result.src))
    meta = (" · ".join(f"{k} <code>{html.escape(str(v))}</code>" for k, v in names)
            + f" · {s['frames']} frames ({s['frames_with_faces']} with swapped faces, mask from "
            f"{html.escape(', '.join(sorted({f.mask_source for f in result.frames})))})")
    recon = result.extra.get("reconstruction", [])
    recon_img = "".join(f'<img src="{data_uri(im)}" alt="reconstruction">' for im in recon_images)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">{meta}<br>vfxswap {__version__}</p>
<h2>Targets</h2>
<table><tr><th>metric</th><th>value</th><th>target</th><th></th></tr>{targets}</table>
<h2>Summary</h2>
<div style="display:flex;gap:30px;flex-wrap:wrap"><table>{summary}</table>
<div><b>convert settings</b>{_settings_table(result)}</div></div>
<h2>Metrics over time</h2>
<p class="meta">Red circles: the worst frame of each metric. Dashed: references (the plate's own value with the
same mask; the src shape gap, what src's own face shapes allow).</p>
<div class="charts">{''.join(shot_charts(result))}</div>
<h2>Worst frames</h2>
<div class="worst">{''.join(figures) or '<p class="na">none</p>'}</div>
<h2>Contact sheet</h2>
<p class="meta">Frames {', '.join(map(str, sheet_numbers))}: plate | swap | matte | difference (x{DIFF_GAIN:g}).
Also written as <code>{SHEET_FILE}</code>.</p>
<img src="{data_uri(sheet)}" alt="contact sheet">
<h2>Reconstruction (held-out faces)</h2>
{_recon_table(recon)}
<div>{recon_img}</div>
</body></html>
"""


def _recon_strip(recon: Any) -> np.ndarray:
    """Originals over reconstructions, side by side, 96 px per face."""
    size = 96
    top = np.concatenate([cv2.resize(x, (size, size)) for x in recon.originals], axis=1)
    bottom = np.concatenate([cv2.resize(x, (size, size)) for x in recon.reconstructed], axis=1)
    return np.concatenate([top, bottom], axis=0)


def write_report(result: ShotResult, out_dir: str | Path, *, rows: int = 6,
                 reconstructions: Sequence[Any] = ()) -> ReportFiles:
    """Write ``metrics.json``, ``report.html`` and ``contact_sheet.png`` into ``out_dir``.

    Args:
        result: what :func:`~vfxswap.eval.shot.evaluate_shot` measured.
        out_dir: the report folder (created).
        rows: evenly spread frames on the contact sheet (the worst frames are added).
        reconstructions: :class:`~vfxswap.eval.recon.Reconstruction` results to include.

    Raises:
        OutputError: the folder or a file cannot be written.
        MediaError: the inputs became unreadable since they were measured.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the report folder {out}: {exc.strerror}") from None
    if reconstructions:
        result = dataclasses.replace(result, extra={**result.extra,
                                                    "reconstruction": [r.to_json() for r in reconstructions]})
    numbers, callouts = sheet_frames(result, rows)
    frames = list(iter_shot(result.spec, set(numbers)))
    sheet = contact_sheet(frames, callouts, _frame_values(result))
    worst_numbers = {n[0] for n in result.worst(1).values()}
    worst_cells = {f.number: frame_cells(f, 160) for f in frames if f.number in worst_numbers}
    files = ReportFiles(metrics=out / METRICS_FILE, html=out / HTML_FILE, sheet=out / SHEET_FILE,
                        sheet_frames=tuple(f.number for f in frames))
    data = result.to_json()
    data["report"] = {"html": HTML_FILE, "contact_sheet": SHEET_FILE, "sheet_frames": list(files.sheet_frames),
                      "sheet_columns": list(COLUMNS), "sheet_cell": CELL, "vfxswap": __version__}
    bgr = cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)
    write_image(files.sheet, bgr)
    page = render_html(result, sheet, files.sheet_frames, worst_cells,
                       [_recon_strip(r) for r in reconstructions if len(r.originals)])
    replace_atomically(files.html, lambda tmp: tmp.write_text(page, encoding="utf-8"), durable=False)
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    replace_atomically(files.metrics, lambda tmp: tmp.write_text(text, encoding="utf-8"), durable=False)
    return files
