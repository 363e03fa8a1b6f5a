"""``vfxswap eval --compare RUN_A RUN_B ...``: eval reports side by side.

Each run is a folder :func:`~vfxswap.eval.report.write_report` wrote. The comparison is a table of
the summary numbers (best value per row marked), the metrics over time overlaid, and the runs'
contact sheets side by side; written as ``compare.html`` (self-contained), ``compare.md`` (the
table, for docs and tickets) and ``compare.json``. Runs are labelled by the convert settings in
which they differ (``color=rct blend=feather``), else by folder name.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import __version__
from ..atomic import replace_atomically
from ..errors import ConfigError, MediaError, OutputError
from .report import CSS, METRICS_FILE, SUMMARY_ROWS, _fmt, data_uri, svg_chart, target_limit

#: Column headers of the markdown table (the summary rows' labels are long).
SHORT_LABELS = {
    "identity_toward_src": "toward src", "identity_src_mean": "sim. src", "identity_dst_mean": "sim. plate face",
    "identity_src_distance_mean": "dist. src", "identity_dst_distance_mean": "dist. plate face",
    "face_found_rate": "face found", "face_detail_ratio_mean": "detail", "face_detail_ratio_median": "detail med.",
    "mouth_correlation": "mouth corr.", "eye_correlation": "eye corr.", "landmark_jitter_ratio": "lm jitter ratio",
    "landmark_jitter": "lm jitter", "plate_landmark_jitter": "plate lm jitter",
    "plate_identity_src_mean": "plate face sim. src", "landmark_error_mean": "landmarks (IOD)",
    "landmark_error_max": "landmarks max", "src_shape_gap_mean": "src shape gap", "jitter": "jitter",
    "flicker_ratio": "flicker", "seam_ratio_mean": "seam",
    "seam_ratio_max": "seam max", "plate_seam_ratio_mean": "plate seam", "border_delta_e_mean": "border ΔE",
    "border_delta_e_max": "border ΔE max", "plate_border_delta_e_mean": "plate border ΔE",
}

#: Rows that describe the inputs rather than the swap: left out when every run has the same value.
REFERENCE_ROWS = {"plate_identity_src_mean", "plate_seam_ratio_mean", "plate_border_delta_e_mean",
                  "src_shape_gap_mean", "plate_landmark_jitter"}

#: Convert settings that name files or ranges: never used to label runs.
_NOT_LABELS = {"matte", "patches", "frames", "reference", "skip_existing", "codec", "face_models", "ocio_config",
               "progress", "batch", "device", "backend"}


@dataclasses.dataclass(frozen=True)
class Run:
    """One eval report folder: its ``metrics.json`` and a label."""

    folder: Path
    metrics: dict[str, Any]
    label: str

    @property
    def summary(self) -> dict[str, Any]:
        return self.metrics.get("summary", {})


@dataclasses.dataclass(frozen=True)
class CompareFiles:
    """What :func:`compare_runs` wrote."""

    html: Path
    markdown: Path
    json: Path
    labels: tuple[str, ...]


def load_run(folder: str | os.PathLike) -> dict[str, Any]:
    """``metrics.json`` of an eval report folder.

    Raises:
        MediaError: no metrics.json, or not one ``vfxswap eval`` wrote.
    """
    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        raise MediaError(f"no {METRICS_FILE} in {folder}: run `vfxswap eval PLATE SWAPPED -o {folder}` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MediaError(f"cannot read {path} ({exc}); run vfxswap eval again") from None
    if not isinstance(data, dict) or data.get("format") != "vfxswap-eval":
        raise MediaError(f"{path} was not written by vfxswap eval")
    return data


def run_labels(runs: Sequence[dict[str, Any]], folders: Sequence[Path]) -> list[str]:
    """A label per run: the convert settings that differ between the runs (``color=rct blend=feather``),
    else the folder names."""
    settings = [r.get("convert_settings") or {} for r in runs]
    keys = sorted({k for s in settings for k in s} - _NOT_LABELS)
    differ = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for s in settings}) > 1]
    labels = [" ".join(f"{k}={s.get(k)}" for k in differ) for s in settings] if differ else []
    if not labels or len(set(labels)) < len(labels):
        labels = [f.name or str(f) for f in folders]
    if len(set(labels)) < len(labels):
        labels = [str(f) for f in folders]
    return labels


def _best(values: list[Any], better: str | None) -> set[int]:
    finite = [(v, i) for i, v in enumerate(values) if isinstance(v, (int, float)) and math.isfinite(v)]
    if better is None or len(finite) < 2:
        return set()
    if len({v for v, _ in finite}) == 1:
        return set()  # all equal: nothing stands out
    target = max(v for v, _ in finite) if better == "higher" else min(v for v, _ in finite)
    return {i for v, i in finite if v == target}


def _md_value(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return fmt.format(value)


def compare_markdown(runs: Sequence[Run], *, links: Sequence[str | None] | None = None,
                     transpose: bool = True) -> str:
    """The comparison table as GitHub markdown.

    Args:
        runs: the runs.
        links: a link per run (e.g. its contact sheet) shown after its label, or ``None``.
        transpose: one row per run and a column per metric (``True``, for many runs), or one row
            per metric and a column per run.

    Returns:
        Markdown text with short column names (:data:`SHORT_LABELS`); the best value of each metric
        is bold. Reference rows (:data:`REFERENCE_ROWS`) that are the same for every run are left out.
    """
    rows = [(key, SHORT_LABELS.get(key, label) if transpose else label, fmt, better)
            for key, label, fmt, better in SUMMARY_ROWS
            if any(r.summary.get(key) is not None for r in runs)
            and not (key in REFERENCE_ROWS and len(runs) > 1
                     and len({_md_value(r.summary.get(key), fmt) for r in runs}) == 1)]
    best = {key: _best([r.summary.get(key) for r in runs], better) for key, _, _, better in rows}
    names = []
    for i, r in enumerate(runs):
        link = links[i] if links else None
        names.append(f"{r.label} ([sheet]({link}))" if link else r.label)

    def cell(i: int, key: str, fmt: str) -> str:
        text = _md_value(runs[i].summary.get(key), fmt)
        return f"**{text}**" if i in best[key] else text

    if transpose:
        head = "| run | " + " | ".join(label for _, label, _, _ in rows) + " |"
        sep = "|---|" + "---:|" * len(rows)
        body = ["| " + names[i] + " | " + " | ".join(cell(i, key, fmt) for key, _, fmt, _ in rows) + " |"
                for i in range(len(runs))]
    else:
        head = "| metric | " + " | ".join(names) + " |"
        sep = "|---|" + "---:|" * len(runs)
        body = ["| " + label + " | " + " | ".join(cell(i, key, fmt) for i in range(len(runs))) + " |"
                for key, label, fmt, _ in rows]
    return "\n".join([head, sep, *body]) + "\n"


def _sheet_thumb(run: Run, width: int = 420) -> np.ndarray | None:
    report = run.metrics.get("report") or {}
    path = run.folder / str(report.get("contact_sheet", "contact_sheet.png"))
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    h, w = image.shape[:2]
    small = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


def _series(run: Run, key: str) -> tuple[list[int], list[float | None]]:
    frames = run.metrics.get("frames", [])
    xs = [f["frame"] for f in frames]
    if key in ("jitter", "flicker"):
        return xs, [f.get(key) for f in frames]
    ys = []
    for f in frames:
        values = [face.get(key) for face in f.get("faces", []) if face.get(key) is not None]
        ys.append(float(np.mean(values)) if values else None)
    return xs, ys


def compare_html(runs: Sequence[Run]) -> str:
    """The comparison page (self-contained)."""
    rows = [(key, label, fmt, better) for key, label, fmt, better in SUMMARY_ROWS
            if any(r.summary.get(key) is not None for r in runs)]
    head = "".join(f"<th>{html.escape(r.label)}</th>" for r in runs)
    body = []
    for key, label, fmt, better in rows:
        values = [r.summary.get(key) for r in runs]
        best = _best(values, better)
        cells = "".join(f"<td class=\"num{' best' if i in best else ''}\">{_fmt(v, fmt)}</td>"
                        for i, v in enumerate(values))
        body.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
    charts = []
    for key, title, limit, percent in (("identity_src", "identity similarity to src", None, False),
                                       ("detail_ratio", "face detail ratio (swap / plate)",
                                        target_limit("face_detail_ratio_mean"), False),
                                       ("landmark_error", "landmark error (IOD)",
                                        target_limit("landmark_error_mean"), False),
                                       ("mouth_open", "mouth opening (IOD)", None, False),
                                       ("jitter", "affine jitter (% of crop side)", None, True),
                                       ("flicker", "flicker (swap change / plate change)", None, False),
                                       ("seam_ratio", "seam gradient ratio", 1.5, False),
                                       ("border_delta_e", "border ΔE76", 6.0, False)):
        series = [(r.label, *_series(r, key)) for r in runs]
        charts.append(svg_chart(series, title=title, limit=limit, percent=percent))
    sheets = []
    for r in runs:
        thumb = _sheet_thumb(r)
        img = f'<img src="{data_uri(thumb, quality=80)}" alt="contact sheet">' if thumb is not None else \
            '<p class="na">no contact sheet</p>'
        sheets.append(f'<figure style="margin:0"><figcaption><b>{html.escape(r.label)}</b></figcaption>'
                      f'{img}</figure>')
    runs_list = "".join(f"<li><b>{html.escape(r.label)}</b>: <code>{html.escape(str(r.folder))}</code></li>"
                        for r in runs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vfxswap eval --compare</title><style>{CSS}</style></head>
<body>
<h1>vfxswap eval --compare ({len(runs)} runs)</h1>
<ul class="meta">{runs_list}</ul><p class="meta">vfxswap {__version__}. Green: the best value of a row.</p>
<h2>Summary</h2>
<table><tr><th>metric</th>{head}</tr>{''.join(body)}</table>
<h2>Metrics over time</h2>
<div class="charts">{''.join(charts)}</div>
<h2>Contact sheets</h2>
<div style="display:flex;flex-wrap:wrap;gap:12px">{''.join(sheets)}</div>
</body></html>
"""


def compare_runs(folders: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                 labels: Sequence[str] | None = None) -> CompareFiles:
    """Compare eval report folders; writes ``compare.html``, ``compare.md`` and ``compare.json``.

    Args:
        folders: two or more folders written by ``vfxswap eval``.
        out_dir: where to write (created).
        labels: a label per run (default: from their differing convert settings).

    Raises:
        ConfigError: fewer than two runs, or a label count that does not match.
        MediaError: a folder without a readable ``metrics.json``.
        OutputError: the output cannot be written.
    """
    if len(folders) < 2:
        raise ConfigError(f"--compare needs at least two eval report folders, got {len(folders)}")
    paths = [Path(f) for f in folders]
    data = [load_run(p) for p in paths]
    if labels is not None and len(labels) != len(paths):
        raise ConfigError(f"--labels gives {len(labels)} labels for {len(paths)} runs; give one per run")
    names = list(labels) if labels is not None else run_labels(data, paths)
    runs = [Run(folder=p, metrics=d, label=n) for p, d, n in zip(paths, data, names)]
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc.strerror}") from None
    files = CompareFiles(html=out / "compare.html", markdown=out / "compare.md", json=out / "compare.json",
                         labels=tuple(names))
    page = compare_html(runs)
    table = compare_markdown(runs)
    summary = {"format": "vfxswap-eval-compare", "version": 1,
               "runs": [{"label": r.label, "folder": str(r.folder), "summary": r.summary,
                         "targets": r.metrics.get("targets"), "convert_settings": r.metrics.get("convert_settings")}
                        for r in runs]}
    replace_atomically(files.html, lambda tmp: tmp.write_text(page, encoding="utf-8"), durable=False)
    replace_atomically(files.markdown, lambda tmp: tmp.write_text(table, encoding="utf-8"), durable=False)
    text = json.dumps(summary, indent=1) + "\n"
    replace_atomically(files.json, lambda tmp: tmp.write_text(text, encoding="utf-8"), durable=False)
    return files
