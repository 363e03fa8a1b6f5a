"""``vfxswap eval``: measure a swapped shot, or compare eval reports; registered by
:func:`vfxswap.cli.build_parser` (``cli_eval.add_commands(sub)``).

    vfxswap eval PLATE SWAPPED -o DIR [--model MODEL] [--src FACESET_OR_IMAGE] [--dst FACESET]
                 [--matte PATH] [--patches DIR] [--frames RANGE] [--start-frame N]
    vfxswap eval --compare DIR_A DIR_B [...] -o DIR [--labels A,B,...]

Run functions return an exit code; errors propagate as :class:`~vfxswap.errors.VfxSwapError` to
``cli.main``, which maps them to one-line messages and exit codes.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .errors import EXIT_OK, ConfigError


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``eval`` to the ``vfxswap`` subcommands."""
    from .progress import PROGRESS_MODES

    p = sub.add_parser(
        "eval", help="measure a swapped shot and write a report (or --compare reports)",
        description="Measure a swap against its plate, frame by frame: whether the detector still finds the "
                    "swapped face, face detail (swap / plate), identity (toward src, away from the plate face), "
                    "landmark error, expression following (mouth and eye opening vs the plate), landmark "
                    "jitter relative to the plate's, placement jitter, flicker, seam gradient ratio and border "
                    "colour difference; plus reconstruction of held-out faceset faces. Writes DIR/metrics.json, "
                    "DIR/report.html (self-contained) and DIR/contact_sheet.png. The matte, patches, frame range "
                    "and model are read from SWAPPED's settings file (NAME.vfxswap.json) when not given. "
                    "--compare puts eval reports side by side (DIR/compare.html, compare.md, compare.json).")
    p.add_argument("plate", nargs="?", metavar="PLATE", help="the original plate (movie, sequence pattern or folder)")
    p.add_argument("swapped", nargs="?", metavar="SWAPPED", help="the converter's output for that plate")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="report folder to write")
    p.add_argument("-m", "--model", metavar="MODEL",
                   help="model folder (default: the one named in SWAPPED's settings file); needed for reconstruction")
    p.add_argument("--src", metavar="FACESET_OR_IMAGE",
                   help="the src identity: a faceset (also scored for reconstruction), an image or a folder "
                        "of images")
    p.add_argument("--dst", metavar="FACESET", help="a dst faceset to score the model's dst reconstruction on")
    p.add_argument("--matte", metavar="PATH",
                   help="the blend-mask pass convert wrote (default: from the settings file)")
    p.add_argument("--patches", metavar="DIR", help="the convert --patches folder (default: from the settings file)")
    p.add_argument("--frames", metavar="RANGE", help="evaluate only these frames (1001-1024, 1001-1100x2)")
    p.add_argument("--start-frame", type=int, default=None, metavar="N",
                   help="number of a movie's first frame (default: from the settings file, else 1001)")
    p.add_argument("--holdout", type=int, default=10, metavar="N",
                   help="reconstruction: score every Nth face of each faceset (default 10; 1 = all)")
    p.add_argument("--sheet-rows", type=int, default=6, metavar="N",
                   help="evenly spread frames on the contact sheet, the worst frames are added (default 6)")
    p.add_argument("--face-backend", choices=["dlib", "insightface"], default="dlib",
                   help="identity and landmarks: dlib (offline, default) or insightface (ArcFace, needs "
                        "--face-models)")
    p.add_argument("--face-models", metavar="DIR", help="insightface model pack folder")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="reconstruction device")
    p.add_argument("--compare", nargs="+", metavar="RUN", help="compare these eval report folders instead")
    p.add_argument("--labels", metavar="A,B,...", help="--compare: a label per run (default: from their settings)")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="auto")
    p.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    """``vfxswap eval``: dispatch to :func:`run_compare` or :func:`run_shot`."""
    if args.compare:
        if args.plate or args.swapped:
            raise ConfigError("give either PLATE SWAPPED or --compare RUN_A RUN_B ..., not both")
        return run_compare(args)
    if not (args.plate and args.swapped):
        raise ConfigError("vfxswap eval needs PLATE and SWAPPED (or --compare RUN_A RUN_B ... to compare reports)")
    return run_shot(args)


def run_compare(args: argparse.Namespace) -> int:
    from .eval.compare import compare_runs

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    files = compare_runs(args.compare, args.output, labels=labels)
    print(f"compared {len(files.labels)} runs ({', '.join(files.labels)}) -> {files.html}", flush=True)
    return EXIT_OK


def run_shot(args: argparse.Namespace) -> int:
    from .eval.recon import reconstruct
    from .eval.report import write_report
    from .eval.inputs import resolve_spec
    from .eval.shot import check_backend_options, evaluate_shot, src_person
    from .faces.analysis import open_analyzer
    from .faces.faceset import RECORDS_FILE
    from .progress import Progress

    if args.holdout < 1:
        raise ConfigError(f"--holdout must be >= 1, got {args.holdout}")
    if args.sheet_rows < 1:
        raise ConfigError(f"--sheet-rows must be >= 1, got {args.sheet_rows}")
    check_backend_options(args.face_backend, args.face_models)
    spec = resolve_spec(args.plate, args.swapped, matte=args.matte, patches=args.patches, frames=args.frames,
                        start_frame=args.start_frame, model=args.model)
    src_is_faceset = bool(args.src) and (Path(args.src) / RECORDS_FILE).is_file()
    if (src_is_faceset or args.dst) and not spec.model:
        raise ConfigError("reconstruction of --src/--dst facesets needs --model MODEL "
                          "(SWAPPED's settings file names none)")
    options = {"face_models": args.face_models} if args.face_backend == "insightface" else {}
    analyzer = open_analyzer(args.face_backend, **options)
    src, src_shapes = src_person(analyzer, args.src) if args.src else (None, None)
    with Progress(args.progress) as progress:
        result = evaluate_shot(spec, analyzer, src_identity=src, src_label=args.src, progress=progress,
                               src_shapes=src_shapes)
    recons = []
    from .accel.onnx import is_onnx_only

    if spec.model and is_onnx_only(spec.model) and (src_is_faceset or args.dst):
        logging.getLogger(__name__).warning("no reconstruction scores: %s is an ONNX-only model folder (no "
                                            "weights.safetensors to run both decoders)", spec.model)
    else:
        for side, faceset in (("src", args.src if src_is_faceset else None), ("dst", args.dst)):
            if faceset:
                recons.append(reconstruct(spec.model, faceset, side=side, every=args.holdout, device=args.device))
    files = write_report(result, args.output, rows=args.sheet_rows, reconstructions=recons)
    s = result.summary
    passed = [t for t in result.targets() if t["passed"] is not None]

    def f(key: str, fmt: str) -> str:
        return "n/a" if s.get(key) is None else fmt.format(s[key])

    recon = "".join(f", {r.side} reconstruction SSIM {r.ssim:.3f} PSNR {r.psnr:.1f} dB" for r in recons)
    print(f"evaluated {s['frames']} frames ({s['faces']} swapped faces): "
          f"face found {f('face_found_rate', '{:.0%}')}, detail {f('face_detail_ratio_mean', '{:.2f}')}, "
          f"toward src {f('identity_toward_src', '{:.0%}')}, "
          f"landmark error {f('landmark_error_mean', '{:.3f}')} IOD "
          f"(src shape gap {f('src_shape_gap_mean', '{:.3f}')}), mouth corr. {f('mouth_correlation', '{:.2f}')}, "
          f"landmark jitter {f('landmark_jitter_ratio', '{:.2f}')}x the plate's, jitter {f('jitter', '{:.3%}')}, "
          f"flicker {f('flicker_ratio', '{:.2f}')}, seam {f('seam_ratio_mean', '{:.2f}')}, "
          f"border dE {f('border_delta_e_mean', '{:.2f}')}{recon}; targets met {sum(t['passed'] for t in passed)}"
          f"/{len(passed)} -> {files.html}", flush=True)
    return EXIT_OK
