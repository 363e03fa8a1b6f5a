"""Real-footage quality benchmark: extract, train for a wall-clock budget, convert, evaluate, one row.

For a src clip (the identity to put in) and a plate clip from ../shared/media (real people; never
copied into the repository):
  1. ``vfxswap extract`` of both (cached in the work folder; ``--resume`` finishes a killed extract);
  2. ``vfxswap train --src SRC --dst PLATE --time-limit BUDGET`` plus the recipe's train arguments
     (or, for ``--recipe peer-original``, the peer of tools/peer_original.py for the same budget);
  3. ``vfxswap convert PLATE`` (lossless FFV1, with ``--patches`` for the jitter metric);
  4. ``vfxswap eval PLATE SWAP --src SRC_FACESET``;
then writes one row (the eval summary, train steps and seconds, GFLOP per face) to ``DIR/rows.jsonl``
and a contact sheet ``DIR/RUN/sheet.png``: for frames sampled over the plate, the plate face | the swap
| the src face whose landmarks are nearest the plate face's (after the best similarity). With
``--table docs/quality_real.md`` the row and a small JPEG of the sheet also go to the docs, and the
table is rewritten from every row recorded there.

Skips with one line (exit 0) when ../shared/media is absent.
Run: ``python tools/bench_quality.py [--pair d6-d3] --budget 10m [--recipe NAME | --train-args "..."]
[-o build/bench_quality] [--table docs/quality_real.md]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
#: Clip pairs ``src -> plate``: d6 (woman A, many expressions) onto d3 (woman B talking), and a
#: second pair so no recipe is tuned to one: d9 (man with glasses) onto d20 (young man outdoors).
PAIRS = {"d6-d3": ("d6.mp4", "d3.mp4"), "d9-d20": ("d9.mp4", "d20.mp4")}
#: Named training recipes: extra ``vfxswap train`` arguments (the defaults are ``defaults``).
RECIPES: dict[str, list[str]] = {
    "defaults": [],
    "old-defaults": ["--resolution", "64", "--lr", "2e-4"],
    "lr1e-3": ["--lr", "1e-3"],
    "res64": ["--resolution", "64"],
    "res96": ["--resolution", "96"],
    "res128": ["--resolution", "128"],
    "res160": ["--resolution", "160"],
}
#: The peer recipe: faceswap's original autoencoder (tools/peer_original.py) at the same budget,
#: converted by vfxswap with ``--mask hull`` (it has no mask head).
PEER = "peer-original"
#: Table columns: ``(header, eval summary key, format)``; a key the summary lacks shows as n/a.
COLUMNS = (
    ("face found", "face_found_rate", "{:.0%}"),
    ("toward src", "identity_toward_src", "{:.0%}"),
    ("sim. src", "identity_src_mean", "{:.3f}"),
    ("sim. plate face", "identity_dst_mean", "{:.3f}"),
    ("detail", "face_detail_ratio_mean", "{:.2f}"),
    ("landmarks", "landmark_error_mean", "{:.3f}"),
    ("mouth corr.", "mouth_correlation", "{:.2f}"),
    ("jitter ratio", "landmark_jitter_ratio", "{:.2f}"),
)
SHEET_ROWS = 6
CELL = 160
MAX_JPEG_BYTES = 80_000


def parse_budget(text: str) -> float:
    """``45m``, ``90s``, ``2h``, ``1h30m`` or plain seconds -> seconds (the train command's own parser)."""
    from vfxswap.errors import ConfigError
    from vfxswap.train.loop import parse_duration

    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def vfxswap(*args: object) -> subprocess.CompletedProcess:
    """Run the vfxswap CLI (its output shown); exits with its message on failure."""
    command = [sys.executable, "-m", "vfxswap.cli", *map(str, args)]
    print("+ vfxswap " + " ".join(shlex.quote(str(a)) for a in args), flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.exit(f"vfxswap {args[0]} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return result


def faceset(clip: Path, work: Path) -> Path:
    """The clip's faceset in ``work/facesets`` (extracted once; a killed extract is resumed)."""
    out = work / "facesets" / clip.stem
    if (out / "done").is_file():
        return out
    args = ["--resume"] if (out / "faceset.jsonl").is_file() else []
    vfxswap("extract", clip, "-o", out, "--every", "2", *args, "--progress", "none")
    (out / "done").write_text("extracted\n")
    return out


def gflop_per_face(model: Path) -> float:
    from vfxswap.model.autoencoder import flops_per_face
    from vfxswap.model.checkpoint import load_model

    network, _ = load_model(model)
    return flops_per_face(network) / 1e9


def _frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """Frames ``wanted`` (positions from 0) of a movie, as 8-bit RGB."""
    from vfxswap.io import open_source, to_display_uint8

    out = {}
    with open_source(path) as src:
        for i, frame in enumerate(src.frames()):
            if i in wanted:
                out[i] = to_display_uint8(frame)
            if i >= max(wanted):
                break
    return out


def _nearest_src(landmarks: np.ndarray, records: list) -> int:
    """Index of the src record whose landmarks, placed by the best similarity, are nearest ``landmarks``."""
    from vfxswap.eval.metrics import landmark_error
    from vfxswap.faces.geometry import transform_points, umeyama

    errors = [landmark_error(landmarks, transform_points(umeyama(r.landmarks, landmarks), r.landmarks))
              for r in records]
    return int(np.argmin(errors))


def _square(image: np.ndarray, box, scale: float = 1.5) -> np.ndarray:
    """A ``CELL``-px square crop around ``box`` (``scale`` x its larger side), padded at the borders."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * scale
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    m = np.array([[CELL / side, 0, CELL / 2 - cx * CELL / side], [0, CELL / side, CELL / 2 - cy * CELL / side]])
    return cv2.warpAffine(image, m, (CELL, CELL), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def contact_sheet(plate: Path, swap: Path, src_faces: Path, out: Path, rows: int = SHEET_ROWS,
                  frames: int | None = None) -> None:
    """``rows`` frames over the plate (its first ``frames``, all when None): plate face | swap |
    nearest src face, ``CELL`` px each (BGR PNG)."""
    from vfxswap.faces.analysis import open_analyzer
    from vfxswap.faces.faceset import read_crop, read_faceset
    from vfxswap.io import probe

    count = min(probe(plate).frame_count, frames or 10**9)
    picks = sorted({round(x) for x in np.linspace(count * 0.05, count * 0.95, rows)})
    plates, swaps = _frames(plate, set(picks)), _frames(swap, set(picks))
    analyzer = open_analyzer("dlib")
    records = read_faceset(src_faces)
    lines = []
    for i in picks:
        faces = analyzer.detect(plates[i])
        if not faces:
            continue
        face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        record = records[_nearest_src(face.landmarks, records)]
        crop, _ = read_crop(src_faces / record.crop_name, record.size)
        src = cv2.resize(crop, (CELL, CELL), interpolation=cv2.INTER_AREA) if crop is not None else \
            np.zeros((CELL, CELL, 3), np.uint8)
        cells = [cv2.cvtColor(_square(x[i], face.box), cv2.COLOR_RGB2BGR) for x in (plates, swaps)] + [src]
        lines.append(np.concatenate(cells, axis=1))
    sheet = np.concatenate(lines, axis=0) if lines else np.zeros((CELL, 3 * CELL, 3), np.uint8)
    for j, label in enumerate(("plate", "swap", "nearest src")):
        cv2.putText(sheet, label, (j * CELL + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.imwrite(str(out), sheet)


def small_jpeg(sheet: Path, out: Path) -> None:
    image = cv2.imread(str(sheet), cv2.IMREAD_COLOR)
    for quality in range(85, 30, -5):
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(buf) <= MAX_JPEG_BYTES:
            break
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf.tobytes())


def run(args: argparse.Namespace, src_clip: Path, plate_clip: Path, recipe: str, train_args: list[str]) -> dict:
    """One benchmark run; returns its row."""
    work = args.output.resolve()
    name = f"{src_clip.stem}-{plate_clip.stem}_{recipe}_{args.budget_text}"
    name += f"_{args.frames}f" if args.frames else ""
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    src_faces, dst_faces = faceset(src_clip, work), faceset(plate_clip, work)
    model = folder / "model"
    t0 = time.perf_counter()
    peer = None
    if recipe == PEER:  # tools/peer_original.py: an ONNX-only model folder without a mask head
        from peer_original import train_peer

        done = model / "peer.json"
        peer = (json.loads(done.read_text(encoding="utf-8")) if done.is_file()
                else train_peer(src_faces, dst_faces, model, args.budget, log=print))
    elif not (model / "card.json").is_file():
        vfxswap("train", "--src", src_faces, "--dst", dst_faces, "-o", model, "--time-limit", args.budget_text,
                *train_args, "--progress", "none")
    train_s = peer["seconds"] if peer else time.perf_counter() - t0
    swap = folder / "swap.mkv"
    t1 = time.perf_counter()
    frames = ["--frames", f"1001-{1000 + args.frames}"] if args.frames else []
    vfxswap("convert", plate_clip, "-m", model, "-o", swap, "--codec", "ffv1", "--faces", "largest", *frames,
            *(["--mask", "hull"] if peer else []), "--patches", folder / "patches", "--progress", "none")
    convert_s = time.perf_counter() - t1
    vfxswap("eval", plate_clip, swap, "--src", src_faces, "-o", folder / "eval", "--progress", "none")
    summary = json.loads((folder / "eval" / "metrics.json").read_text(encoding="utf-8"))["summary"]
    card = json.loads((model / "card.json").read_text(encoding="utf-8"))
    contact_sheet(plate_clip, swap, src_faces, folder / "sheet.png", frames=args.frames)
    return {"run": name, "pair": f"{src_clip.stem} -> {plate_clip.stem}", "recipe": recipe,
            "train_args": train_args, "budget_s": args.budget, "steps": card.get("steps"),
            "train_s": round(train_s, 1), "convert_s": round(convert_s, 1), "resolution": card.get("resolution"),
            "gflop_per_face": round(peer["gflop_per_face"] if peer else gflop_per_face(model), 3),
            "summary": summary,
            "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "sheet": str(folder / "sheet.png")}


def _cell(value: object, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def write_table(table: Path, rows: list[dict]) -> None:
    """docs/quality_real.md from every recorded row (newest last)."""
    head = ["pair", "recipe", "budget", "res", "steps", "GFLOP/face", *[c[0] for c in COLUMNS], "sheet"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for r in rows:
        s = r["summary"]
        if r.get("note"):
            notes.append(f"{len(notes) + 1}. `{r['run']}`: {r['note']}")
        mark = f" [{len(notes)}]" if r.get("note") else ""
        cells = [r["pair"], f"`{r['recipe']}`" + (f" ({' '.join(r['train_args'])})" if r["train_args"] else "") + mark,
                 f"{r['budget_s'] / 60:.0f} min", str(r["resolution"]), str(r["steps"]), f"{r['gflop_per_face']:.2f}",
                 *[_cell(s.get(key), fmt) for _, key, fmt in COLUMNS],
                 f"[sheet](quality_real/{r['run']}.jpg)"]
        lines.append("| " + " | ".join(cells) + " |")
    machines = sorted({f"{r['machine']} ({r['date']})" for r in rows})
    text = f"""# Quality on real footage

Made by `python tools/bench_quality.py --pair PAIR --budget B --recipe R --table docs/quality_real.md`
on {"; ".join(machines)}. Each row: both clips of ../shared/media extracted (detection every 2nd
frame, tracking between), `vfxswap train` for the wall-clock budget with the recipe's arguments, the whole plate
converted, and `vfxswap eval PLATE SWAP --src SRC_FACESET`. The clips themselves are not in the
repository; the sheets show plate face | swap | the nearest src face for six frames.

Targets (issue 16): face found in 100 % of swapped frames; swap closer to src than to the plate face in
>= 95 %; face detail ratio >= 0.6; landmark error <= 0.10 IOD; mouth-opening correlation >= 0.9;
landmark jitter <= 1.1x the plate's.

{chr(10).join(lines)}
{(chr(10) + "Notes:" + chr(10) + chr(10) + chr(10).join(notes) + chr(10)) if notes else ""}"""
    table.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", choices=sorted(PAIRS), default="d6-d3", help="src -> plate clips (default d6-d3)")
    parser.add_argument("--src", help="src clip in ../shared/media (instead of --pair)")
    parser.add_argument("--plate", help="plate clip in ../shared/media (instead of --pair)")
    parser.add_argument("--budget", default="10m", help="training wall-clock budget: 45m, 90s, 2h (default 10m)")
    parser.add_argument("--recipe", choices=sorted([*RECIPES, PEER]), default="defaults",
                        help=f"named train arguments, or {PEER}: the original deepfakes autoencoder")
    parser.add_argument("--train-args", default=None, help="train arguments instead of a named recipe (quoted)")
    parser.add_argument("--frames", type=int, help="convert and evaluate only the plate's first N frames (smoke runs)")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "build" / "bench_quality")
    parser.add_argument("--table", type=Path, help="also record the row in this markdown table (docs/quality_real.md)")
    parser.add_argument("--note", help="a remark recorded with the row (e.g. what else ran on the machine)")
    args = parser.parse_args()
    if not MEDIA.is_dir():
        print(f"skipped: {MEDIA} is absent (the real clips live outside the repository)")
        return 0
    args.budget_text, args.budget = args.budget, parse_budget(args.budget)
    src_name, plate_name = PAIRS[args.pair]
    src_clip, plate_clip = MEDIA / (args.src or src_name), MEDIA / (args.plate or plate_name)
    for clip in (src_clip, plate_clip):
        if not clip.is_file():
            sys.exit(f"no clip {clip}; see {MEDIA / 'README.md'}")
    recipe, train_args = (("custom", shlex.split(args.train_args)) if args.train_args is not None
                          else (args.recipe, RECIPES.get(args.recipe, [])))
    row = run(args, src_clip, plate_clip, recipe, train_args)
    if args.note:
        row["note"] = args.note
    with open(args.output / "rows.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    if args.table is not None:
        record = args.table.with_suffix("").parent / "quality_real" / "rows.jsonl"
        record.parent.mkdir(parents=True, exist_ok=True)
        small_jpeg(Path(row["sheet"]), record.parent / f"{row['run']}.jpg")
        with open(record, "a", encoding="utf-8") as f:
            f.write(json.dumps({k: v for k, v in row.items() if k != "sheet"}) + "\n")
        rows = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines() if line.strip()]
        write_table(args.table, rows)
    s = row["summary"]
    print(f"{row['run']}: {row['steps']} steps in {row['train_s']:.0f} s; "
          + ", ".join(f"{h} {_cell(s.get(k), f)}" for h, k, f in COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
