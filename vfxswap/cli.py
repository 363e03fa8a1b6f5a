"""The ``vfxswap`` command line: the only place that reads argv and maps errors to exit codes.

Exit codes: 0 ok, 1 failure, 2 usage or configuration error, 3 unreadable input (media, faceset,
model), 130 interrupted (Ctrl-C). Errors print one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence

from . import __version__
from .errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, ConfigError, VfxSwapError
from .types import FACE_TYPES


def _add_extract(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="find, track and align faces into a faceset",
                       description="Extract aligned faces from a movie, an image sequence "
                                   "(shot.%%04d.exr, shot.####.png) or a folder of stills into a faceset.")
    p.add_argument("input", help="movie, image-sequence pattern or folder of images")
    p.add_argument("-o", "--output", required=True, metavar="FACESET", help="faceset folder to write")
    p.add_argument("--every", type=int, default=5, metavar="N", help="detect every Nth frame, track between (default 5)")
    p.add_argument("--size", type=int, default=256, help="aligned crop size in pixels (default 256)")
    p.add_argument("--face-type", choices=FACE_TYPES, default="whole_face", help="crop coverage (default whole_face)")
    p.add_argument("--min-size", type=int, default=64, metavar="PX",
                   help="drop faces smaller than PX source pixels; also sets the detection proxy scale (default 64)")
    p.add_argument("--min-sharpness", type=float, default=0.0, metavar="V",
                   help="drop crops whose Laplacian variance is below V (default 0: keep all)")
    p.add_argument("--detect-scale", type=float, default=None, metavar="S",
                   help="detect on frames scaled by S in (0,1] (default: derived from --min-size)")
    p.add_argument("--reference", metavar="IMAGE", help="keep only this person (an image or a folder of images)")
    p.add_argument("--identity-threshold", type=float, default=None, metavar="D",
                   help="largest identity distance to the reference (default: the backend's, dlib 0.075)")
    p.add_argument("--backend", choices=["dlib", "insightface"], default="dlib", help="face analysis backend (default dlib)")
    p.add_argument("--detector", choices=["hog", "cnn"], default="hog", help="dlib detector (default hog)")
    p.add_argument("--face-models", metavar="DIR", help="insightface model pack folder (e.g. ~/.insightface/models/buffalo_l)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted extract into the same faceset")
    p.add_argument("--progress", choices=["auto", "bar", "plain", "none"], default="auto",
                   help="progress display (default: a bar on a TTY, plain lines otherwise)")
    p.set_defaults(run=_run_extract)


def _run_extract(args: argparse.Namespace) -> int:
    from .config import ExtractConfig
    from .extract import extract
    from .progress import Progress

    config = ExtractConfig(
        every=args.every, size=args.size, face_type=args.face_type, min_size=args.min_size,
        min_sharpness=args.min_sharpness, reference=args.reference, identity_threshold=args.identity_threshold,
        detect_scale=args.detect_scale, backend=args.backend, detector=args.detector,
        face_models=args.face_models, resume=args.resume)
    with Progress(args.progress) as progress:
        report = extract(args.input, args.output, config, progress=progress)
    dropped = ", ".join(f"{n} {what}" for what, n in (("too small", report.dropped_small),
                        ("too blurry", report.dropped_blurry), ("other people", report.dropped_identity)) if n)
    print(f"extracted {report.faces_written} faces from {report.frames} frames ({report.tracks} track{'' if report.tracks == 1 else 's'}) "
          f"in {report.seconds:.1f} s, {report.frames_per_second:.1f} frames/s -> {report.faceset}"
          + (f"; dropped {dropped}" if dropped else ""), flush=True)
    return EXIT_OK


def _add_faceset(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("faceset", help="inspect facesets")
    fs = p.add_subparsers(dest="faceset_command", required=True, metavar="COMMAND")
    info = fs.add_parser("info", help="summarise a faceset")
    info.add_argument("faceset", help="faceset folder")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(run=_run_faceset_info)


def _run_faceset_info(args: argparse.Namespace) -> int:
    from .faces.faceset import faceset_summary

    s = faceset_summary(args.faceset)
    if args.json:
        print(json.dumps(s, indent=2))
        return _faceset_damage(s)
    print(f"faceset   {s['path']}")
    print(f"faces     {s['faces']} in {s['frames']} frames, {s['tracks']} track{'' if s['tracks'] == 1 else 's'}")
    print(f"crops     {', '.join(map(str, s['sizes'])) or '-'} px, {', '.join(s['face_types']) or '-'}"
          f"{'; ' + str(s['missing_crops']) + ' crop files missing' if s['missing_crops'] else ''}")
    print(f"backend   {', '.join(s['backends']) or '-'}")
    if s["sharpness"]:
        sh = s["sharpness"]
        print(f"sharpness min {sh['min']:.1f}  median {sh['median']:.1f}  max {sh['max']:.1f}")
    for source, n in s["sources"].items():
        print(f"source    {source}: {n} faces")
    for problem in s["problems"]:
        print(f"damage    {problem}")
    return _faceset_damage(s)


def _faceset_damage(s: dict) -> int:
    """Exit 0 for a sound faceset; a damaged one raises the one-line FacesetError (exit 3)."""
    from .errors import FacesetError

    if not s["damaged"]:
        return EXIT_OK
    counts = ", ".join(f"{n} {what}" for what, n in (("indices claimed more than once", s["duplicate_indices"]),
                       ("crops missing", s["missing_crops"]), ("crops unreadable", s["unreadable_crops"])) if n)
    raise FacesetError(f"{s['path']} is damaged ({counts}): re-extract it into a new folder, or remove "
                       f"the records of the damaged crops from faceset.jsonl")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a dual-decoder face-swap model on two facesets",
                       description="Train (or --resume) a model: src = the identity to put in, dst = the person "
                                   "in the plate. Saves every --save-every steps, at the end, and on Ctrl-C/SIGTERM. "
                                   "--pretrain FACESET ... trains a model on many people instead, to start new "
                                   "pairs from with --init.")
    p.add_argument("--src", metavar="FACESET", help="faceset of the identity to put in")
    p.add_argument("--dst", metavar="FACESET", help="faceset of the person in the plate")
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="model folder")
    p.add_argument("--pretrain", nargs="+", metavar="FACESET",
                   help="instead of --src/--dst: pretrain on the union of these facesets (many people; both "
                        "decoders learn the same pool); the card is marked pretrained")
    p.add_argument("--init", metavar="PRETRAINED",
                   help="start a new model from PRETRAINED's weights (names and shapes that match; step 0, fresh "
                        "optimizer); --arch, --resolution, --face-type and --preset must be PRETRAINED's")
    p.add_argument("--init-decoders", action=argparse.BooleanOptionalAction, default=True,
                   help="with --init, copy the decoders too (default); --no-init-decoders: encoder and inter only")
    p.add_argument("--iterations", type=int, default=None,
                   help="train until this many steps in total (default 1000; no limit with --time-limit alone)")
    p.add_argument("--time-limit", metavar="DURATION",
                   help="wall-clock budget from the start (or the resume): 90, 90s, 45m, 2h, 1h30m; the run "
                        "saves and stops when it is spent, or at --iterations if that comes first")
    p.add_argument("--resolution", type=int, default=128, help="crop size, multiple of 16 in 64..512 (default 128)")
    p.add_argument("--face-type", choices=FACE_TYPES, default="whole_face", help="crop coverage (default whole_face)")
    p.add_argument("--arch", choices=["df", "liae"], default="df", help="architecture (default df)")
    p.add_argument("--preset", choices=["cpu", "gpu"], default="cpu",
                   help="widths: cpu (separable convs, <1 GFLOP/face at 128 px) or gpu (SAEHD-sized) (default cpu)")
    p.add_argument("--batch-size", type=int, default=16, help="faces per side per step (default 16)")
    p.add_argument("--lr", type=float, default=2e-4, help="AdamW learning rate (default 2e-4)")
    p.add_argument("--clip-grad", type=float, default=1.0, help="max gradient norm, 0 = off (default 1)")
    p.add_argument("--save-every", type=int, default=500, metavar="N", help="steps between checkpoints (default 500)")
    p.add_argument("--preview-every", type=int, default=500, metavar="N", help="steps between preview grids, 0 = off")
    p.add_argument("--seed", type=int, default=0, help="seed of model init and batches (default 0)")
    p.add_argument("--workers", type=int, default=2, help="data loading threads (default 2)")
    p.add_argument("--holdout", type=int, default=10, metavar="N",
                   help="leave every Nth face of each faceset out for `vfxswap eval` (default 10; 0 = train on all)")
    p.add_argument("--color-transfer", action="store_true", help="recolour src faces toward dst colours while training")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: cuda when available")
    p.add_argument("--amp", choices=["off", "bf16", "fp16"], default="bf16", help="mixed precision on CUDA (default bf16)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory layout (default: on with CUDA, off on CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step (for CUDA)")
    p.add_argument("--resume", action="store_true", help="continue the run in MODEL")
    p.add_argument("--progress", choices=["auto", "bar", "plain", "none"], default="auto")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .progress import Progress
    from .train.loop import TrainConfig, format_duration, parse_duration, train

    time_limit = None if args.time_limit is None else parse_duration(args.time_limit)
    iterations = args.iterations if args.iterations is not None or time_limit else 1000
    config = TrainConfig(
        src=args.src, dst=args.dst, output=args.output, pretrain=tuple(args.pretrain or ()), init=args.init,
        init_decoders=args.init_decoders, iterations=iterations, time_limit=time_limit, resolution=args.resolution,
        face_type=args.face_type, arch=args.arch, preset=args.preset, batch_size=args.batch_size, lr=args.lr,
        clip_grad=args.clip_grad, save_every=args.save_every, preview_every=args.preview_every, seed=args.seed,
        workers=args.workers, holdout=args.holdout, color_transfer=args.color_transfer, device=args.device, amp=args.amp,
        channels_last=args.channels_last, compile=args.compile, resume=args.resume, distributed=int(os.environ.get("WORLD_SIZE", "1")) > 1)  # set by torchrun
    with Progress(args.progress, unit="steps", speed=True) as progress:
        report = train(config, progress=lambda done, total, losses: progress(done, total))
    losses = "  ".join(f"{k} {v:.4f}" for k, v in report.losses.items())
    if os.environ.get("RANK", "0") != "0":
        return EXIT_OK  # under torchrun, rank 0 reports
    print(f"trained to step {report.steps} in {report.seconds:.1f} s ({report.steps_per_second:.2f} steps/s, "
          f"{100 * report.data_wait_fraction:.0f}% waiting for data) -> {report.output}; {losses}", flush=True)
    if report.stopped_on_time_limit:
        print(f"stopped at the time limit ({format_duration(time_limit)}); --resume continues", flush=True)
    if report.init_tensors:
        print(f"initialised {report.init_tensors} tensors from {args.init}", flush=True)
    return EXIT_OK


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model for ONNX Runtime, Nuke, DeepFaceLive or FaceFusion",
                       description="Export a model's swap path: onnx (MODEL/export/swap.onnx, NCHW RGB), "
                                   "torchscript (MODEL/export/swap.torchscript.pt, RGBA out, for Nuke's "
                                   "CatFileCreator) or dfm (MODEL/export/model.dfm, NHWC BGR, for DeepFaceLive "
                                   "and FaceFusion). Each file is checked against PyTorch before it is written.")
    p.add_argument("model", metavar="MODEL", help="model folder (card.json + weights.safetensors)")
    p.add_argument("--format", choices=["onnx", "torchscript", "dfm", "tensorrt"], default="onnx",
                   help="default onnx; tensorrt builds (or reuses) an engine for this GPU in MODEL/export/tensorrt/")
    p.add_argument("-o", "--output", metavar="PATH", help="file to write (default: inside MODEL/export/)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset for onnx and dfm (default 17)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip running the exported file against PyTorch (tensorrt engines are always checked)")
    p.add_argument("--batch", type=int, default=8, metavar="N",
                   help="tensorrt: largest batch of the engine's profile, 1..N (default 8, as convert --batch)")
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from .model.export import export_model

    report = export_model(args.model, format=args.format, out=args.output, opset=args.opset, check=args.check,
                          batch=args.batch)
    checked = (f"max abs diff {report.max_abs_diff:.2g} vs PyTorch" if report.max_abs_diff is not None
               else "not checked")
    print(f"exported {report.format} -> {report.path} ({checked})", flush=True)
    return EXIT_OK


def _add_convert(sub: argparse._SubParsersAction) -> None:
    from .accel.runtime import BACKENDS, PRECISIONS
    from .progress import PROGRESS_MODES

    p = sub.add_parser("convert", help="swap the faces of a plate with a trained model",
                       description="Decode a plate, find and track faces, swap them through the model, colour-match, "
                                   "blend and encode. Audio, timecode and frame count are kept.")
    p.add_argument("input", help="movie, image-sequence pattern (shot.####.exr), folder, - (standard input) or a URL")
    p.add_argument("-m", "--model", required=True, help="trained model folder")
    p.add_argument("-o", "--output", required=True, help="movie path or image-sequence pattern (out.####.exr)")
    p.add_argument("--faces", choices=["all", "largest", "reference"], default="all", help="faces to swap (default all)")
    p.add_argument("--reference", metavar="IMAGE", help="swap only this person (image or folder of images)")
    p.add_argument("--identity-threshold", type=float, default=None, metavar="D")
    p.add_argument("--every", type=int, default=5, metavar="N", help="detect every Nth frame (default 5)")
    p.add_argument("--min-size", type=int, default=64, metavar="PX", help="smallest face swapped (default 64)")
    p.add_argument("--detect-scale", type=float, default=None, metavar="S")
    p.add_argument("--smooth", type=int, default=3, metavar="N", help="temporal smoothing radius in frames (default 3)")
    p.add_argument("--color", default="rct", help="colour match: rct, lct, mkl, idt, sot, hist, none (default rct)")
    p.add_argument("--color-smooth", type=int, default=1, metavar="N", help="average colour statistics over N frames")
    p.add_argument("--mask", choices=["hull", "learned", "learned*hull"], default="learned*hull")
    p.add_argument("--erode", type=int, default=0, metavar="PX", help="erode (>0) / dilate (<0) the mask, crop pixels")
    p.add_argument("--feather", type=int, default=8, metavar="PX", help="mask soft edge, crop pixels (default 8)")
    p.add_argument("--blend", default="feather", help="feather, poisson or laplacian (default feather)")
    p.add_argument("--backend", choices=list(BACKENDS), default="auto",
                   help="swap runner: auto (CUDA: tensorrt > compiled > torch, the first that works; CPU: the "
                        "faster of torch and onnxruntime), torch, compiled (torch.compile), tensorrt, onnxruntime")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--precision", choices=list(PRECISIONS), default="auto",
                   help="model arithmetic (default: fp16 on CUDA, fp32 on the CPU)")
    p.add_argument("--compositor", choices=["auto", "opencv", "torch"], default="auto",
                   help="align/colour/blend the faces with OpenCV on the host or as torch ops on the model's "
                        "device (default auto: torch when the model runs on a GPU)")
    p.add_argument("--batch", type=int, default=8, help="faces per model call (default 8)")
    p.add_argument("--codec", default=None, help="libx264, libx265, prores_ks, dnxhd, ffv1 (default: the input's)")
    p.add_argument("--frames", metavar="RANGE", help="frames to convert: 1001-1100, 1001-1100x2, 1001,1010-1012")
    p.add_argument("--start-frame", type=int, default=1001, help="number of a movie's first frame (default 1001)")
    p.add_argument("--skip-existing", action="store_true", help="sequence outputs: keep frames already written")
    p.add_argument("--allow-short", action="store_true",
                   help="accept a movie that decodes fewer frames than its container says (corrupt or cut "
                        "off): keep the frames that convert, with a warning (default: exit 3)")
    p.add_argument("--matte", metavar="PATH", help="write the blend mask as a movie or image sequence")
    p.add_argument("--alpha", action="store_true",
                   help="write the blend mask as the output's alpha (ProRes 4444, FFV1, EXR/PNG/TIFF/DPX)")
    p.add_argument("--ocio-config", metavar="CONFIG",
                   help="OpenColorIO config for the face path: a .ocio file or a built-in such as "
                        "ocio://studio-config-latest (default ocio://cg-config-latest)")
    p.add_argument("--input-colorspace", metavar="NAME",
                   help="colour space of the plate in that config (e.g. ACEScg, 'ARRI LogC4'); faces go "
                        "through OpenColorIO to the model's sRGB and back")
    p.add_argument("--face-backend", choices=["dlib", "insightface"], default="dlib")
    p.add_argument("--face-models", metavar="DIR", help="insightface model pack folder")
    p.add_argument("--patches", metavar="DIR", help="also write each raw swapped face (RGBA PNG) and its matrix")
    p.add_argument("--config", metavar="TOML", help="settings file; its keys are these options' names "
                   "(e.g. color = \"mkl\", feather = 12); flags given on the command line win")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="auto")
    p.set_defaults(run=_run_convert, interrupted=_convert_interrupted)


def _convert_interrupted(args: argparse.Namespace) -> str:
    from .io.writer import is_movie_path

    if is_movie_path(args.output):
        return f"{args.output} was not saved; rerun the command to convert it"
    return "every frame written so far is kept (rerun with --skip-existing to continue)"


def _run_convert(args: argparse.Namespace) -> int:
    from .config import ConvertConfig
    from .convert.api import convert
    from .progress import Progress

    config = ConvertConfig(
        faces=args.faces, reference=args.reference, identity_threshold=args.identity_threshold, every=args.every,
        min_size=args.min_size, detect_scale=args.detect_scale, smooth=args.smooth, color=args.color,
        color_smooth=args.color_smooth, mask=args.mask, erode=args.erode, feather=args.feather, blend=args.blend,
        backend=args.backend, device=args.device, precision=args.precision, compositor=args.compositor,
        batch=args.batch, codec=args.codec, frames=args.frames,
        start_frame=args.start_frame, skip_existing=args.skip_existing, allow_short=args.allow_short, matte=args.matte,
        face_backend=args.face_backend, face_models=args.face_models, patches=args.patches, alpha=args.alpha,
        ocio_config=args.ocio_config, input_colorspace=args.input_colorspace)
    with Progress(args.progress) as progress:
        report = convert(args.input, args.model, args.output, config, progress=progress)
    stages = "  ".join(f"{k} {v:.1f}s" for k, v in report.stage_seconds.items())
    print(f"converted {report.frames} frames ({report.frames_swapped} with {report.faces_swapped} faces swapped, "
          f"{report.backend}) in {report.seconds:.1f} s, {report.frames_per_second:.1f} fps -> {report.output}\n"
          f"backend {report.backend}: {report.backend_reason or '-'}; compositor {report.compositor}\n"
          f"stage time: {stages}", flush=True)
    return EXIT_OK


def _apply_config_file(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """``--config FILE.toml``: its keys become the subcommand's defaults, so explicit flags override them."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if not known.config:
        return
    import tomllib

    try:
        with open(known.config, "rb") as f:
            values = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read --config {known.config}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {known.config} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--config {known.config} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    command = next((a for a in argv if a in _subparsers(parser)), None)
    if command is None:
        return
    sub = _subparsers(parser)[command]
    values = values.get(command, values)  # a [convert] table, or plain keys
    if not isinstance(values, dict):
        raise ConfigError(f"--config {known.config}: {command} must be a table of settings ([{command}])")
    dests = {a.dest for a in sub._actions} - {"help", "config", "input", "output", "model", "run"}
    settings = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(settings) - dests)
    if unknown:
        raise ConfigError(f"--config {known.config}: unknown {command} settings {', '.join(unknown)}; "
                          f"valid: {', '.join(sorted(dests))}")
    _check_config_values(known.config, command, sub, settings)
    sub.set_defaults(**settings)


def _check_config_values(path: str, command: str, sub: argparse.ArgumentParser, settings: dict) -> None:
    """Type- and range-check ``--config`` values: fields of the command's config dataclass against
    its schema (:mod:`vfxswap.config`), other options against their argparse action.

    Raises:
        ConfigError: naming the file, the key, the value given and what is allowed.
    """
    import dataclasses

    from .config import ConvertConfig, allowed_values, setting_problem

    schema = ConvertConfig if command in ("convert", "timeline") else None
    fields = {f.name for f in dataclasses.fields(schema)} if schema else set()
    actions = {a.dest: a for a in sub._actions}
    for key, value in settings.items():
        action = actions[key]
        if key in fields:
            bad = setting_problem(schema, key, value) and f"must be {allowed_values(schema, key)}"
        else:
            if callable(action.type) and action.type not in (int, float, str) and type(value) in (int, float):
                settings[key] = value = str(value)  # `rate = 23.976`: parsed by the option's own type
            bad = _action_problem(action, value)
        if bad:
            raise ConfigError(f"--config {path}: {key} {bad}, got {json.dumps(value, default=str)}")


def _action_problem(action: argparse.Action, value: object) -> str | None:
    """What is wrong with ``value`` as the default of an option that is no config field, or None."""
    from typing import Literal

    from .config import value_problem

    if action.nargs == 0:  # a switch
        hint: object = bool
    elif action.choices is not None:
        hint = Literal[tuple(action.choices)]
    elif action.type in (int, float):
        hint = action.type
    else:  # argparse converts a string default with the option's own type, as on the command line
        hint = str
    return value_problem(hint, value)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (``vfxswap: error: ...``, exit 2) like every other error."""

    def error(self, message: str):
        self.exit(2, f"vfxswap: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vfxswap", description="Face replacement for film and TV post-production.")
    parser.add_argument("--version", action="version", version=f"vfxswap {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr (-vv for debug)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_extract(sub)
    _add_faceset(sub)
    _add_train(sub)
    _add_convert(sub)
    _add_export(sub)
    from . import cli_eval, cli_farm, cli_timeline

    cli_timeline.add_commands(sub)
    cli_farm.add_commands(sub)
    cli_eval.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _apply_config_file(parser, argv)
    except VfxSwapError as exc:
        print(f"vfxswap: error: {exc}", file=sys.stderr)
        return exc.exit_code
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # A farm or `kill` sends SIGTERM: treat it like Ctrl-C so long jobs save what they have.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return args.run(args)
    except VfxSwapError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"vfxswap: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        hint = (args.interrupted(args) if hasattr(args, "interrupted")
                else "everything committed so far is kept (rerun with --resume to continue)")
        print(f"vfxswap: interrupted; {hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so in one line, traceback on request
        if args.debug:
            traceback.print_exc()
        print(f"vfxswap: internal error: {type(exc).__name__}: {exc} (rerun with --debug and report it)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
