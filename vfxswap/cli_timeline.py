"""``vfxswap timeline``: conform an editorial cut; registered by :func:`vfxswap.cli.build_parser`.

Also gives ``vfxswap plan CUT`` (``cli_farm``) the same clip selection: :func:`add_selection_args`
and :func:`shots_from_args`. Run functions return an exit code; errors propagate as
:class:`~vfxswap.errors.VfxSwapError` to ``cli.main``, which maps them to exit codes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

from .errors import EXIT_FAILURE, EXIT_OK, ConfigError

# Convert options that the timeline sets per shot or handles itself; every other convert option
# (--reference, --faces, --color, --blend, --codec, ...) is passed through unchanged.
_NOT_PASSED = {"help", "input", "model", "output", "frames", "start_frame", "matte", "patches", "progress", "run"}


def default_output_dir(cut: str | os.PathLike) -> Path:
    """Where converted media go without ``--output-dir``: ``CUTDIR/CUTNAME_vfxswap/`` (the same
    for ``vfxswap plan CUT`` and ``vfxswap timeline CUT --relink-only``)."""
    cut = Path(cut)
    return cut.parent / f"{cut.stem or 'cut'}_vfxswap"


def rate_arg(text: str):
    """``type=`` of every ``--rate``: :func:`vfxswap.io.frames.parse_rate` (``23.976`` -> 24000/1001),
    its error as argparse's."""
    from .io.frames import parse_rate

    try:
        return parse_rate(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_selection_args(parser: argparse.ArgumentParser) -> None:
    """Add the options that pick clips of a cut and place their converted media.

    Adds ``--track``, ``--select``, ``--handles``, ``--rate``, ``--adapter``, ``--media-dir``,
    ``--media-root``, ``--output-dir`` and ``--ext``; :func:`shots_from_args` reads them.
    """
    from .timeline.jobs import OUTPUT_EXTENSIONS

    g = parser.add_argument_group("timeline clips")
    g.add_argument("--track", action="append", default=[], metavar="NAME",
                   help="convert clips of this video track (its name, or V1, V2... counted bottom up); repeatable")
    g.add_argument("--select", action="append", default=[], metavar="KIND:VALUE",
                   help="keep clips matching all of: marker:REGEX, color:RED, name:REGEX, meta:KEY=VALUE, "
                        "track:NAME; repeatable")
    g.add_argument("--handles", type=int, default=0, metavar="N",
                   help="also convert N frames before and after each clip, clamped to the media (default 0)")
    g.add_argument("--rate", type=rate_arg, default=None, metavar="FPS",
                   help="frame rate of an EDL: 24, 25, 23.976, 29.97, 59.94 or a fraction 24000/1001 (default 24)")
    g.add_argument("--adapter", metavar="NAME", help="OTIO adapter to read the cut with (default: by extension)")
    g.add_argument("--media-dir", metavar="DIR",
                   help="look for media here first: relative paths, then file names (default: the cut's folder)")
    g.add_argument("--media-root", action="append", default=[], metavar="DIR",
                   help="refuse a cut whose selected media lie outside these folders; repeatable")
    g.add_argument("--output-dir", metavar="DIR", help="converted media folder (default: CUTDIR/CUTNAME_vfxswap)")
    g.add_argument("--ext", choices=OUTPUT_EXTENSIONS, default="exr",
                   help="converted media: an image sequence NAME_vfxswap.####.EXT or a movie (default exr)")


def _cut_arg(args: argparse.Namespace) -> str:
    cut = getattr(args, "cut", None) or getattr(args, "input", None)
    if not cut:
        raise ConfigError("no cut given")
    return str(cut)


def conform_from_args(args: argparse.Namespace):
    """Read the cut and plan its jobs from :func:`add_selection_args` options.

    Returns:
        A :class:`vfxswap.timeline.jobs.Conform`.
    """
    from .timeline.jobs import plan
    from .timeline.otio import Selection, read_cut

    cut_path = _cut_arg(args)
    output_dir = Path(args.output_dir) if args.output_dir else default_output_dir(cut_path)
    selection = Selection.from_strings(args.track, args.select)
    extract_to = output_dir / "otioz_media" if cut_path.lower().endswith(".otioz") else None
    cut = read_cut(cut_path, adapter=args.adapter, rate=args.rate, extract_to=extract_to)
    return plan(cut, output_dir=output_dir.resolve(), selection=selection, handles=args.handles,
                media_dir=args.media_dir, media_roots=args.media_root, ext=args.ext)


def shots_from_args(args: argparse.Namespace) -> list:
    """The convert jobs of a cut (for ``vfxswap plan CUT``).

    Args:
        args: parsed options of :func:`add_selection_args`, plus the cut path as ``args.cut`` or
            ``args.input``.

    Returns:
        ``list[vfxswap.types.SwapJob]``: each media range once; clips with missing media are
        left out (``vfxswap timeline CUT --dry-run`` lists them).
    """
    return conform_from_args(args).shots


def _add_timeline(sub: argparse._SubParsersAction) -> None:
    from .progress import PROGRESS_MODES

    p = sub.add_parser("timeline", help="conform an editorial cut: convert its clips and relink them",
                       description="Read a cut (.otio, .otioz, .otiod, EDL, FCP XML, AAF), convert the used range "
                                   "(+ handles) of each selected clip once per media file, and write a timeline whose "
                                   "converted clips point at the converted media (the original kept beside it) with "
                                   "timing unchanged. Clips with missing media or no face are reported and left as is.")
    p.add_argument("cut", metavar="CUT", help="editorial timeline")
    p.add_argument("-m", "--model", help="trained model folder (not needed with --dry-run or --relink-only)")
    p.add_argument("-o", "--output", metavar="TIMELINE", help="timeline to write (.otio, or .edl/.xml with the adapters)")
    add_selection_args(p)
    p.add_argument("--dry-run", action="store_true", help="list the convert jobs and the clips' status; convert nothing")
    p.add_argument("--relink-only", action="store_true",
                   help="convert nothing: relink clips to media already converted (e.g. on a farm) in --output-dir")
    p.add_argument("--report", metavar="JSON", help="also write the per-clip report as JSON")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="auto")
    _add_convert_options(p)
    p.set_defaults(run=_run_timeline)


def _add_convert_options(parser: argparse.ArgumentParser) -> None:
    """The ``convert`` subcommand's options, reused as they are (one definition, same defaults)."""
    from . import cli
    from .config import ConvertConfig

    scratch = argparse.ArgumentParser(add_help=False)
    cli._add_convert(scratch.add_subparsers())
    convert = _subparser(scratch, "convert")
    fields = {f.name for f in dataclasses.fields(ConvertConfig)} | {"config"}
    group = parser.add_argument_group("convert options (as for vfxswap convert)")
    for action in convert._actions:
        if action.option_strings and action.dest in fields and action.dest not in _NOT_PASSED:
            group._add_action(action)


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def _convert_config(args: argparse.Namespace):
    from .config import ConvertConfig

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ConvertConfig)
              if f.name not in _NOT_PASSED and hasattr(args, f.name)}
    return ConvertConfig(**values)


def _print_plan(conform) -> None:
    for shot in conform.shots:
        clips = ", ".join(c.label for c in conform.clips_of(shot))
        print(f"job {shot.name}: {shot.source} --frames {shot.first}-{shot.last}"
              f"{f' --start-frame {shot.start_frame}' if shot.start_frame != 1001 else ''} -> {shot.output} "
              f"({clips})")
    for job in conform.clips:
        if job.status != "planned":
            print(f"{job.status:<14} {job.label}: {job.message}")
    frames = sum(s.last - s.first + 1 for s in conform.shots)
    print(f"{len(conform.shots)} job{'s' if len(conform.shots) != 1 else ''}, {frames} frames, "
          f"{sum(c.status == 'planned' for c in conform.clips)} of {len(conform.clips)} selected clips")


def _report_rows(conform) -> list[dict]:
    return [{"clip": j.label, "name": j.clip.name, "track": j.selected.track, "status": j.status,
             "message": j.message, "media": j.media, "frames": j.frames,
             "output": j.shot.output if j.shot is not None else None} for j in conform.clips]


def _run_timeline(args: argparse.Namespace) -> int:
    from .progress import Progress
    from .timeline.jobs import convert_shots, relink
    from .timeline.otio import output_adapter, write_cut

    if args.dry_run and args.relink_only:
        raise ConfigError("--dry-run and --relink-only exclude each other")
    if not args.dry_run:
        if not args.output:
            raise ConfigError("give the timeline to write with -o CUT_swapped.otio (or use --dry-run)")
        if os.path.exists(args.output) and os.path.samefile(args.output, args.cut):
            raise ConfigError(f"-o {args.output} is the cut itself; write the conformed timeline to a new file")
        output_adapter(args.output)
        if not args.relink_only and not args.model:
            raise ConfigError("converting needs -m MODEL (or use --dry-run / --relink-only)")
    config = _convert_config(args)
    start = time.perf_counter()
    conform = conform_from_args(args)
    if args.dry_run:
        _print_plan(conform)
        return EXIT_OK
    results = None
    if not args.relink_only and conform.shots:
        with Progress(args.progress) as progress:
            results = convert_shots(conform.shots, args.model, config, progress=progress)
    relink(conform, results=results if not args.relink_only else None, model=args.model, config=config)
    write_cut(conform.cut.timeline, args.output)
    rows = _report_rows(conform)
    if args.report:
        from .atomic import replace_atomically

        text = json.dumps({"timeline": str(args.output), "clips": rows}, indent=2) + "\n"
        replace_atomically(Path(args.report), lambda tmp: tmp.write_text(text, encoding="utf-8"), durable=False)
    for row in rows:
        detail = f"{row['frames']} -> {row['output']}" if row["status"] == "converted" else row["message"]
        print(f"{row['status']:<14} {row['clip']}: {detail}")
    counts = {s: sum(r["status"] == s for r in rows)
              for s in ("converted", "missing media", "no face", "not converted", "error")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s == "converted")
    print(f"conformed {len(rows)} clips ({summary}) in {time.perf_counter() - start:.1f} s -> {args.output}",
          flush=True)
    return EXIT_FAILURE if counts["error"] or counts["not converted"] else EXIT_OK


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the ``vfxswap`` parser."""
    _add_timeline(sub)
