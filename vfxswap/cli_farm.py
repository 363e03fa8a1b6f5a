"""``vfxswap`` subcommands for farm work; registered by :func:`vfxswap.cli.build_parser`.

``plan`` (chunked jobs for a farm), ``verify`` (missing/unreadable frames), ``assemble`` (join
movie chunks) and ``run-plan`` (run a JSON plan locally or on Ray). Run functions return an exit
code; errors propagate as :class:`~vfxswap.errors.VfxSwapError` to ``cli.main``, which maps them
to exit codes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import EXIT_FAILURE, EXIT_OK, ConfigError

TIMELINE_EXTENSIONS: tuple[str, ...] = (".otio", ".otioz", ".otiod", ".edl", ".xml", ".fcpxml", ".aaf")
# Convert options a plan sets itself (per task) or that are plan options of the same name.
_PLAN_OWNED = {"help", "input", "model", "output", "frames", "start_frame", "progress", "run"}
# Convert options holding paths: made absolute, since tasks run on other machines and folders.
_PATH_OPTIONS = {"reference", "matte", "patches", "face_models", "config", "ocio_config"}


def _convert_actions() -> list[argparse.Action]:
    """The options of ``vfxswap convert`` (one definition, same defaults) that a plan passes on."""
    from . import cli

    scratch = argparse.ArgumentParser(add_help=False)
    cli._add_convert(scratch.add_subparsers())
    convert = next(a for a in scratch._actions if isinstance(a, argparse._SubParsersAction)).choices["convert"]
    return [a for a in convert._actions if a.option_strings and a.dest not in _PLAN_OWNED]


def _add_plan(sub: argparse._SubParsersAction) -> None:
    from . import cli_timeline
    from .progress import PROGRESS_MODES
    from .timeline.farm import FORMATS

    p = sub.add_parser("plan", help="split a plate or a cut into frame-range chunks for a render farm",
                       description="Write a farm job: one `vfxswap convert --frames A-B` task per chunk (movie outputs: "
                                   "chunk movies in OUTPUT.chunks/ then an assemble task; image sequences: straight "
                                   "into the final pattern). Formats: json (for run-plan), shell, deadline (job files "
                                   "+ submit script), openjd (job template), opencue (PyOutline script). Convert "
                                   "options given here are passed to every task.")
    p.add_argument("input", metavar="INPUT|CUT", help="plate (movie or image-sequence pattern) or a cut "
                   f"({', '.join(TIMELINE_EXTENSIONS)})")
    p.add_argument("-m", "--model", required=True, help="trained model folder (as the farm nodes see it)")
    p.add_argument("-o", "--output", help="plate only: movie path or image-sequence pattern (out.####.exr)")
    p.add_argument("--chunk", type=int, default=10, metavar="N", help="frames per task (default 10)")
    p.add_argument("--format", choices=FORMATS, default="json", help="default json")
    p.add_argument("--plan-out", metavar="PATH",
                   help="file to write (a folder for deadline); default: print the plan (not for deadline)")
    p.add_argument("--frames", metavar="A-B", help="plate only: frames to plan (default: all of them)")
    p.add_argument("--start-frame", type=int, default=1001, help="number of a movie's first frame (default 1001)")
    p.add_argument("--name", help="job name on the farm (default: the output's or the cut's name)")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="plain",
                   help="--progress of json/shell tasks (deadline and openjd plans use their own; default plain)")
    cli_timeline.add_selection_args(p)
    group = p.add_argument_group("convert options (passed to every task, as for vfxswap convert)")
    for action in _convert_actions():
        group._add_action(action)
    p.set_defaults(run=_run_plan)


def _is_timeline(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in TIMELINE_EXTENSIONS or path.lower().endswith(".otiod/")


def _convert_args(args: argparse.Namespace) -> list[str]:
    """The convert options given to ``plan`` as command-line words (defaults left out)."""
    words: list[str] = []
    for action in _convert_actions():
        value = getattr(args, action.dest, action.default)
        if value == action.default or value is None:
            continue
        option = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            words.append(option)
            continue
        if action.dest in _PATH_OPTIONS and "://" not in str(value):
            value = os.path.abspath(str(value))
        words += [option, str(value)]
    return words


def _plate_shot(args: argparse.Namespace):
    from .io import probe
    from .io.frames import parse_frames
    from .io.writer import is_movie_path
    from .types import SwapJob

    if not args.output:
        raise ConfigError("give the output with -o OUTPUT (a movie or out.####.exr)")
    info = probe(args.input)
    if info.kind == "stills":
        raise ConfigError(f"{args.input} is a folder of unnumbered stills; plan a movie or an image sequence")
    if args.frames:
        frames = parse_frames(args.frames)
        if frames != list(range(frames[0], frames[-1] + 1)):
            raise ConfigError(f"--frames {args.frames} must be one contiguous range A-B for a plan")
        first, last = frames[0], frames[-1]
    elif info.kind == "movie":
        if info.frame_count < 1:
            raise ConfigError(f"{args.input} does not say how many frames it has; pass --frames A-B")
        first, last = args.start_frame, args.start_frame + info.frame_count - 1
    else:
        from .io.sequences import _scan

        numbers = [n for n, _ in _scan(args.input).items]
        first, last = numbers[0], numbers[-1]
    output = os.path.abspath(args.output)
    if args.matte and is_movie_path(args.matte) and is_movie_path(output):
        raise ConfigError("a chunked plan cannot write one --matte movie from every chunk; write the matte as an "
                          "image sequence (matte.####.png)")
    name = Path(output).name.split(".")[0] or "shot"
    return SwapJob(name=name, source=os.path.abspath(args.input), output=output, first=first, last=last,
                start_frame=args.start_frame)


def _run_plan(args: argparse.Namespace) -> int:
    from .atomic import replace_atomically
    from .timeline.emitters import emit, progress_mode
    from .timeline.farm import plan_tasks

    if _is_timeline(args.input):
        from . import cli_timeline

        if args.output or args.frames:
            raise ConfigError("-o and --frames apply to a plate; a cut's clips go to --output-dir with their "
                              "used ranges (+ --handles)")
        shots = cli_timeline.shots_from_args(args)
        if not shots:
            raise ConfigError(f"no clips of {args.input} to convert (check --track/--select; vfxswap timeline "
                              f"{args.input} --dry-run lists them)")
        name = args.name or Path(args.input).name.split(".")[0]
    else:
        shots = [_plate_shot(args)]
        name = args.name or shots[0].name
    if args.format == "deadline" and not args.plan_out:
        raise ConfigError("a deadline plan is several files: pass --plan-out FOLDER")
    plan = plan_tasks(shots, chunk=args.chunk, model=os.path.abspath(args.model), convert_args=_convert_args(args),
                      progress=progress_mode(args.format, args.progress), name=name)
    files = emit(plan, args.format)
    if not args.plan_out:
        sys.stdout.write(next(iter(files.values())))
        return EXIT_OK
    target = Path(args.plan_out)
    if args.format == "deadline":
        paths = [target / n for n in files]
        target.mkdir(parents=True, exist_ok=True)
    else:
        paths = [target]
        target.parent.mkdir(parents=True, exist_ok=True)
    for path, text in zip(paths, files.values()):
        replace_atomically(path, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"), durable=False)
        if path.suffix in (".sh", ".py"):
            path.chmod(0o755)
    chunks = sum(t.kind == "convert" for t in plan.tasks)
    print(f"planned {len(plan.shots)} shot{'s' if len(plan.shots) != 1 else ''}: {chunks} convert task"
          f"{'s' if chunks != 1 else ''} of up to {plan.chunk} frames, {len(plan.tasks) - chunks} assemble -> "
          f"{target}", flush=True)
    return EXIT_OK


def _add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="list missing or unreadable frames of a render (exit 1 if any)",
                       description="Check that every frame of an image sequence exists and decodes (a truncated "
                                   "file is unreadable), or decode a movie to the end. Prints the frames to render "
                                   "again as one --frames expression; exit code 1 when any are missing or unreadable.")
    p.add_argument("output", metavar="OUTPUT", help="image-sequence pattern (out.####.exr) or movie")
    p.add_argument("--frames", required=True, metavar="RANGE", help="frames that should be there: 1001-1100")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from .timeline.verify import verify_output

    report = verify_output(args.output, args.frames)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif report.ok:
        print(f"{report.output}: all {len(report.expected)} frames present and readable")
    else:
        print(f"{report.output}: {len(report.bad)} of {len(report.expected)} frames to render again")
        if report.missing:
            print(f"missing     {_frames(report.missing)}")
        if report.unreadable:
            first = report.unreadable[0]
            print(f"unreadable  {_frames(report.unreadable)} ({report.reasons.get(first, 'cannot decode')})")
        print(f"requeue     --frames {report.requeue}", flush=True)
    return EXIT_OK if report.ok else EXIT_FAILURE


def _frames(numbers) -> str:
    from .io.frames import format_frames

    return format_frames(numbers)


def _add_assemble(sub: argparse._SubParsersAction) -> None:
    from .progress import PROGRESS_MODES

    p = sub.add_parser("assemble", help="join movie chunks into one movie (stream copy, no re-encode)",
                       description="Join chunk movies (files, or folders of NAME.A-B.ext chunks sorted by frame) "
                                   "by copying their packets: same codec, size, pixel format, time base and frame "
                                   "rate required. Timestamps continue; audio is copied once from the plate (the "
                                   "chunks' .vfxswap.json names it) and the first chunk's timecode is kept.")
    p.add_argument("chunks", nargs="+", metavar="CHUNK", help="chunk movie files or folders of chunks")
    p.add_argument("-o", "--output", required=True, help="movie to write")
    p.add_argument("--frames", metavar="RANGE", help="check that the chunks hold exactly these frames, each once")
    p.add_argument("--audio-from", metavar="SOURCE", help="movie to copy the audio from (default: the chunks' plate)")
    p.add_argument("--no-audio", dest="audio", action="store_false", help="write no audio")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="auto", help="accepted for farm tasks")
    p.set_defaults(run=_run_assemble)


def _run_assemble(args: argparse.Namespace) -> int:
    from .timeline.assemble import assemble

    if args.audio_from and not args.audio:
        raise ConfigError("--audio-from and --no-audio exclude each other")
    from .progress import Progress

    report = assemble(args.chunks, args.output, frames=args.frames, audio_from=args.audio_from, audio=args.audio)
    with Progress(args.progress, unit="chunks") as progress:
        progress(len(report.chunks), len(report.chunks))
    print(f"assembled {len(report.chunks)} chunk{'s' if len(report.chunks) != 1 else ''}: {report.frames} frames, "
          f"{report.audio_packets} audio packets -> {report.output}", flush=True)
    return EXIT_OK


def _add_run_plan(sub: argparse._SubParsersAction) -> None:
    from .progress import PROGRESS_MODES
    from .timeline.executors import EXECUTORS

    p = sub.add_parser("run-plan", help="run a JSON plan's tasks on this machine or on a Ray cluster",
                       description="Run every task of a plan written by `vfxswap plan --format json`: a chunk per "
                                   "task, each in its own process, dependencies first (assemble after its chunks), "
                                   "failures retried. Exit code 1 when a task still fails.")
    p.add_argument("plan", metavar="PLAN.json", help="plan file")
    p.add_argument("--executor", choices=EXECUTORS, default="local", help="default local")
    p.add_argument("--address", help="ray: cluster address (ray://HOST:10001 or auto; default: a local instance)")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="tasks at once (default 2)")
    p.add_argument("--gpus-per-task", type=float, default=0, metavar="G",
                   help="ray: GPUs each task asks for; Ray hides the GPUs from tasks that ask none (default 0)")
    p.add_argument("--retries", type=int, default=1, metavar="N", help="extra attempts of a failing task (default 1)")
    p.add_argument("--logs", metavar="DIR", help="each task's output as DIR/TASK.log (default: PLAN.logs beside it)")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="auto")
    p.set_defaults(run=_run_run_plan)


def _run_run_plan(args: argparse.Namespace) -> int:
    from .progress import Progress
    from .timeline.executors import run_plan
    from .timeline.farm import read_plan

    plan = read_plan(args.plan)
    logs = args.logs or str(Path(args.plan).with_suffix("")) + ".logs"
    with Progress(args.progress, unit="tasks") as progress:
        report = run_plan(plan, executor=args.executor, workers=args.workers, retries=args.retries,
                          address=args.address, gpus=args.gpus_per_task, progress=progress, log_dir=logs)
    done = sum(r.status == "ok" for r in report.results)
    print(f"ran {len(report.results)} tasks ({done} ok, {len(report.failed)} failed, {len(report.skipped)} skipped) "
          f"with {report.executor} in {report.seconds:.1f} s; logs in {logs}", flush=True)
    if report.ok:
        return EXIT_OK
    first = report.failed[0] if report.failed else report.skipped[0]
    last_line = first.tail.strip().splitlines()[-1] if first.tail.strip() else "no output"
    more = len(report.failed) + len(report.skipped) - 1
    print(f"vfxswap: error: task {first.name} {first.status}"
          + (f" after {first.attempts} attempt{'s' if first.attempts != 1 else ''} (exit {first.returncode})"
             if first.status == "failed" else "")
          + f": {last_line}" + (f"; {more} more task{'s' if more != 1 else ''} not done" if more else "")
          + f"; see {logs}", file=sys.stderr, flush=True)
    return EXIT_FAILURE


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the ``vfxswap`` parser."""
    _add_plan(sub)
    _add_verify(sub)
    _add_assemble(sub)
    _add_run_plan(sub)

