"""The sample-shot quality table: every colour mode x blend mode, converted, evaluated and compared.

For each ``--color`` in rct lct mkl idt sot hist none and each ``--blend`` in feather poisson
laplacian, runs on frames 1001-1024 of samples/plate.mp4 with the demo model:
  1. ``vfxswap convert`` (the reference person, --matte, --patches);
  2. ``vfxswap eval PLATE SWAP --src samples/reference_src.png``;
then ``vfxswap eval --compare`` over all runs, and writes docs/quality.md (the comparison table, a
contact-sheet link per run) with the contact sheets as small JPEGs under docs/quality/.
Runs whose eval report exists are reused (delete --work to start over).
Run: `python tools/quality_table.py [--frames 1001-1024] [--work build/quality] [--screenshot]`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
COLORS = ("rct", "lct", "mkl", "idt", "sot", "hist", "none")
BLENDS = ("feather", "poisson", "laplacian")
#: Largest contact-sheet JPEG under docs/quality/.
MAX_JPEG_BYTES = 100_000


def vfxswap(*args: object) -> str:
    """Run the vfxswap CLI; returns its stdout, exits with its message on failure."""
    result = subprocess.run([sys.executable, "-m", "vfxswap.cli", *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"vfxswap {' '.join(map(str, args[:3]))} ... failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def small_jpeg(sheet: Path, out: Path, *, width: int = 560, rows: int = 4) -> int:
    """The first ``rows`` rows of a contact sheet, ``width`` px wide, as a JPEG under MAX_JPEG_BYTES."""
    from vfxswap.eval.report import CELL, GAP, HEADER_H

    image = cv2.imread(str(sheet), cv2.IMREAD_COLOR)
    if image is None:
        sys.exit(f"cannot read {sheet}")
    image = image[:HEADER_H + rows * (CELL + GAP) + GAP]
    h, w = image.shape[:2]
    image = cv2.resize(image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    for quality in range(85, 30, -5):
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(buf) <= MAX_JPEG_BYTES:
            break
    out.write_bytes(buf.tobytes())
    return len(buf)


def screenshot(html: Path, out: Path) -> bool:
    """A JPEG screenshot (1000 px wide) of a report with headless Chromium (False without Chromium)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        return False
    tmp = out.with_name(".tmp-screenshot.png")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={tmp}", "--window-size=1400,1900", html.resolve().as_uri()],
                   capture_output=True, timeout=180)
    image = cv2.imread(str(tmp), cv2.IMREAD_COLOR)
    tmp.unlink(missing_ok=True)
    if image is None:
        return False
    image = cv2.resize(image, (1000, round(image.shape[0] * 1000 / image.shape[1])), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out), image, [cv2.IMWRITE_JPEG_QUALITY, 82])
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", default="1001-1024")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "quality")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "quality.md")
    parser.add_argument("--colors", default=",".join(COLORS))
    parser.add_argument("--blends", default=",".join(BLENDS))
    parser.add_argument("--screenshot", action="store_true", help="also save a Chromium screenshot of one report")
    args = parser.parse_args()
    colors, blends = args.colors.split(","), args.blends.split(",")
    work = args.work.resolve()
    images = args.out.parent / "quality"
    images.mkdir(parents=True, exist_ok=True)
    (work / "runs").mkdir(parents=True, exist_ok=True)
    model = work / "model"
    if not model.exists():
        shutil.copytree(SAMPLES / "demo_model", model)  # the onnxruntime runner caches its export inside
    plate, reference, src = SAMPLES / "plate.mp4", SAMPLES / "reference_dst.png", SAMPLES / "reference_src.png"
    evals, times = [], {}
    for color in colors:
        for blend in blends:
            name = f"{color}_{blend}"
            run, report = work / "runs" / name, work / "evals" / name
            evals.append(report)
            if (report / "metrics.json").is_file():
                continue
            shutil.rmtree(run, ignore_errors=True)
            run.mkdir(parents=True)
            t0 = time.perf_counter()
            vfxswap("convert", plate, "-m", model, "-o", run / "swap.mp4", "--reference", reference, "--frames",
                    args.frames, "--color", color, "--blend", blend, "--matte", run / "matte.####.png",
                    "--patches", run / "patches", "--progress", "none")
            t1 = time.perf_counter()
            line = vfxswap("eval", plate, run / "swap.mp4", "--src", src, "-o", report, "--progress", "none")
            times[name] = (t1 - t0, time.perf_counter() - t1)
            (run / "timing.json").write_text(json.dumps({"convert_s": times[name][0], "eval_s": times[name][1]}))
            print(f"{name}: convert {t1 - t0:.1f} s, eval {times[name][1]:.1f} s: {line.strip()}", flush=True)
    compare = work / "compare"
    vfxswap("eval", "--compare", *evals, "-o", compare)
    table = (compare / "compare.md").read_text(encoding="utf-8").splitlines()
    sizes = []
    rows = [table[0] + " contact sheet |", table[1] + ":---|"]
    for line, report in zip(table[2:], evals):
        jpg = images / f"{report.name}.jpg"
        sizes.append(small_jpeg(report / "contact_sheet.png", jpg))
        rows.append(f"{line} [{report.name}](quality/{jpg.name}) |")
    shot = args.out.parent / "quality" / "report.jpg"
    shot_ok = args.screenshot and screenshot(evals[0] / "report.html", shot)
    data = json.loads((compare / "compare.json").read_text(encoding="utf-8"))
    timing = [json.loads((work / "runs" / r.name / "timing.json").read_text()) for r in evals]
    convert_s, eval_s = sum(t["convert_s"] for t in timing), sum(t["eval_s"] for t in timing)
    passed = {r["label"]: [t for t in (r["targets"] or []) if t["passed"] is not None] for r in data["runs"]}
    all_pass = [label for label, ts in passed.items() if ts and all(t["passed"] for t in ts)]
    first = data["runs"][0]["summary"]

    def ref(key: str, fmt: str) -> str:
        return "n/a" if first.get(key) is None else fmt.format(first[key])

    plate_sim = ref("plate_identity_src_mean", "{:.3f}")
    card = json.loads((model / "card.json").read_text(encoding="utf-8"))
    about_model = (f"a {card['resolution']} px {card['arch'].upper()} model trained for {card['steps']} steps "
                   "(see samples/demo_model/TRAINING.md)")
    landmarks = [r["summary"]["landmark_error_mean"] for r in data["runs"]
                 if r["summary"].get("landmark_error_mean") is not None]
    landmark_range = f"{min(landmarks):.3f}-{max(landmarks):.3f}" if landmarks else "n/a"
    misses: dict[str, int] = {}
    labels: dict[str, str] = {}
    for ts in passed.values():
        for t in ts:
            misses[t["key"]] = misses.get(t["key"], 0) + (not t["passed"])
            labels[t["key"]] = t["label"]
    missed = "; ".join(f"{labels[key]} missed in {n} of {len(passed)}" for key, n in misses.items() if n)
    targets_text = ", ".join(f"{t['label']} {t['op']} {t['limit']:g}" for t in data["runs"][0]["targets"])
    gap = first.get("src_shape_gap_mean")
    limit = next(t["limit"] for t in data["runs"][0]["targets"] if t["key"] == "landmark_error_mean")
    out_of_reach = ("" if gap is None or gap <= limit else
                    f" Here the src shape gap is {gap:.3f}: the astronaut's own face, placed by the best similarity,"
                    " is that far from the laughing, turned plate face, so a swap that shows her features scores"
                    f" about that whatever the settings, and the {limit:g} target needs a src faceset that covers"
                    " the plate's expression.")
    plate_seam, plate_de = ref("plate_seam_ratio_mean", "{:.2f}"), ref("plate_border_delta_e_mean", "{:.2f}")
    text = f"""# Sample-shot quality: colour mode x blend mode

Made by `python tools/quality_table.py` ({datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()}
cores: {convert_s:.0f} s of converts and {eval_s:.0f} s of evals in all): for every `--color` and `--blend`,
`vfxswap convert samples/plate.mp4 -m samples/demo_model --reference samples/reference_dst.png
--frames {args.frames} --color C --blend B --matte ... --patches ...`, then
`vfxswap eval samples/plate.mp4 SWAP --src samples/reference_src.png -o RUN`, and the table below is
`compare.md` of `vfxswap eval --compare RUN ...` over all {len(evals)} runs (best value of each column in bold),
with a link to each run's contact sheet (first rows: plate | swap | matte | difference x4).

The demo model is {about_model}, so the numbers are for comparing
settings on one shot, not absolute quality. Targets (`vfxswap eval`'s report): {targets_text};
placement jitter: `--smooth 3` at most half of `--smooth 0` (tested in `tests/integration/test_eval_cli.py`;
colour and blend modes do not change the placement, so jitter is the same in every row).
Runs meeting every target: {", ".join(all_pass) or "none"}{" (" + missed + ")" if missed else ""}.

{chr(10).join(rows)}

## Reading the columns

- *toward src*: share of frames whose swapped face (dlib ResNet embedding) is more similar to the
  src identity than to the plate's own face there; *sim. src*, *sim. plate face*: the mean cosine
  similarities (the plate face itself is {plate_sim} from src).
- *landmarks*: mean distance of the 68 dlib landmarks fitted on the swap from those of the
  plate face, in inter-ocular distances ({landmark_range} over the rows): how well the swap keeps the
  plate's pose and expression. The *src shape gap* is the same error for the nearest src face, placed by the
  best similarity (rotation, scale, shift): what src's own face shapes allow.{out_of_reach}
- *affine jitter*: the converter's per-frame placement noise (second difference of the placed
  crop's corners over time, from `patches.jsonl`), as a fraction of the crop side.
- *flicker*: the face region's frame-to-frame change in the swap over the plate's own change.
- *seam*: luma gradient on the mask's 0.5 contour (±3 px) over the gradient 6–18 px inside it; the
  plate itself scores {plate_seam} with the same mask.
- *border ΔE*: CIE76 distance between the mean CIELAB colour of a 4 px ring just inside the mask and
  one just outside; the plate itself scores {plate_de} with the same mask.

{"## An eval report" + chr(10) + chr(10) + "`vfxswap eval` of the rct/feather run (a screenshot of its `report.html`, "
 "headless Chromium):" + chr(10) + chr(10) + "![an eval report](quality/report.jpg)" if shot_ok or shot.exists() else ""}
"""
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(evals)} runs; contact sheets {min(sizes) // 1000}-{max(sizes) // 1000} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
