"""Render-farm plans: shots split into frame-range chunks, written for a farm.

A :class:`Plan` is a list of :class:`Task` objects; each task is one plain ``vfxswap`` command
line (an argv list), so any farm, a shell or :func:`vfxswap.timeline.executors.run_plan` can run it:

* a **convert** task per chunk: ``vfxswap convert SOURCE -m MODEL -o OUT --frames A-B
  --start-frame S [convert options] --progress MODE``;
* for a movie output, an **assemble** task after the shot's chunks. Each chunk writes its own
  movie into a folder beside the output, named by its frame range::

      /shots/sh010/swap.mov  ->  /shots/sh010/swap.chunks/swap.1001-1050.mov
                                 /shots/sh010/swap.chunks/swap.1051-1100.mov ...

  and ``vfxswap assemble swap.chunks -o swap.mov --frames 1001-1100`` joins them by stream copy
  (checking that every frame is covered once, whatever chunk sizes the farm picked);
* an image-sequence output (``out.####.exr``) is written by the chunks straight into the final
  pattern: no merge.

This module holds the plan and its JSON form (the file ``vfxswap run-plan`` reads,
:data:`PLAN_VERSION`); :mod:`.emitters` writes it for Deadline, Open Job Description, OpenCue and
the shell, and :mod:`.assemble` joins movie chunks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from .. import __version__
from ..errors import ConfigError, MediaError
from ..io.frames import format_frames, parse_frames
from ..io.writer import MOVIE_EXTENSIONS
from ..types import SwapJob

PLAN_FORMAT = "vfxswap.plan"
PLAN_VERSION = 1
FORMATS: tuple[str, ...] = ("json", "shell", "deadline", "openjd", "opencue")
PlanFormat = Literal["json", "shell", "deadline", "openjd", "opencue"]
TaskKind = Literal["convert", "assemble"]

# Options a plan sets per task: they must not be among the pass-through convert options.
RESERVED_CONVERT_OPTIONS: tuple[str, ...] = ("-o", "--output", "-m", "--model", "--frames", "--start-frame",
                                             "--progress")
_PROGRESS_FOR_FORMAT = {"deadline": "deadline", "openjd": "openjd"}
_RANGE_NAME_RE = re.compile(r"(?P<stem>.+)\.(?P<range>\d[\d,xX-]*)")
_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclasses.dataclass(frozen=True)
class Task:
    """One command of a plan.

    Attributes:
        name: unique in the plan: ``SHOT.A-B`` (convert) or ``SHOT.assemble``.
        kind: ``convert`` or ``assemble``.
        shot: the shot's name.
        frames: the frames it makes (expression, ``1001-1008``).
        output: what it writes (chunk movie, sequence pattern or assembled movie).
        argv: the command, ``("vfxswap", "convert", ...)``.
        depends: names of the tasks that must succeed first.
    """

    name: str
    kind: TaskKind
    shot: str
    frames: str
    output: str
    argv: tuple[str, ...]
    depends: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Plan:
    """Tasks for a list of shots (see the module docstring).

    Attributes:
        name: job/batch name shown on the farm.
        shots: the shots planned.
        tasks: convert tasks per chunk, then each movie shot's assemble task.
        chunk: frames per convert task.
        model: the model folder every task reads.
        convert_args: extra ``vfxswap convert`` options given to every convert task.
        progress: ``--progress`` mode of the tasks in ``json``/``shell``/``opencue`` plans
            (``deadline`` and ``openjd`` plans use their farm's own mode).
    """

    name: str
    shots: tuple[SwapJob, ...]
    tasks: tuple[Task, ...]
    chunk: int
    model: str
    convert_args: tuple[str, ...] = ()
    progress: str = "plain"


# ---------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------


def chunk_folder(output: str) -> str:
    """The folder of a movie output's chunk files: ``/a/swap.mov`` -> ``/a/swap.chunks``."""
    root, _ = os.path.splitext(output)
    return root + ".chunks"


def chunk_path(output: str, frames: str) -> str:
    """The chunk movie for ``frames`` of a movie output: ``/a/swap.mov``, ``1001-1008`` ->
    ``/a/swap.chunks/swap.1001-1008.mov``."""
    stem, ext = os.path.splitext(os.path.basename(output))
    return os.path.join(chunk_folder(output), f"{stem}.{frames}{ext}")


def chunk_frames(path: str) -> list[int] | None:
    """The frames a chunk file holds, read from its name (``swap.1001-1008.mov``), else ``None``."""
    name, ext = os.path.splitext(os.path.basename(path))
    match = _RANGE_NAME_RE.fullmatch(name)
    if match is None or ext[1:].lower() not in MOVIE_EXTENSIONS:
        return None
    try:
        return parse_frames(match.group("range"))
    except ConfigError:
        return None


def _chunks(first: int, last: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size - 1, last)) for a in range(first, last + 1, size)]


def _check_convert_args(convert_args: Sequence[str]) -> tuple[str, ...]:
    args = tuple(str(a) for a in convert_args)
    for arg in args:
        option = arg.split("=", 1)[0]
        if option in RESERVED_CONVERT_OPTIONS:
            raise ConfigError(f"{option} is set per task by the plan; remove it from the convert options")
    return args


def convert_argv(shot: SwapJob, *, frames: str, output: str, model: str, convert_args: Sequence[str] = (),
                 progress: str = "plain") -> list[str]:
    """The ``vfxswap convert`` command of one chunk (``frames`` and ``output`` may hold farm tokens
    such as ``<STARTFRAME>-<ENDFRAME>``)."""
    return ["vfxswap", "convert", shot.source, "-m", model, "-o", output, "--frames", frames,
            "--start-frame", str(shot.start_frame), *convert_args, "--progress", progress]


def assemble_argv(shot: SwapJob, *, progress: str = "plain") -> list[str]:
    """The ``vfxswap assemble`` command joining a movie shot's chunk folder into its output."""
    return ["vfxswap", "assemble", chunk_folder(shot.output), "-o", shot.output, "--frames", shot.frames,
            "--progress", progress]


def plan_tasks(shots: Sequence[SwapJob], *, chunk: int, model: str, convert_args: Sequence[str] = (),
               progress: str = "plain", name: str = "vfxswap") -> Plan:
    """Split shots into convert tasks of ``chunk`` frames (plus an assemble task per movie shot).

    Args:
        shots: the shots; names must be unique.
        chunk: frames per convert task (>= 1); a shot's last chunk may be shorter.
        model: model folder (use an absolute path: tasks run elsewhere).
        convert_args: extra ``vfxswap convert`` options for every task (not the ones a plan sets:
            :data:`RESERVED_CONVERT_OPTIONS`). Pin ``--backend`` so every node swaps alike.
        progress: ``--progress`` mode of the tasks.
        name: job name shown on the farm.

    Returns:
        The :class:`Plan`.

    Raises:
        ConfigError: no shots, duplicate shot names, a chunk size < 1 or a reserved option.
    """
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ConfigError(f"--chunk must be an int >= 1, got {chunk!r}")
    shots = tuple(shots)
    if not shots:
        raise ConfigError("nothing to plan: no shots")
    names = [s.name for s in shots]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"shot names must be unique; repeated: {', '.join(duplicates)}")
    args = _check_convert_args(convert_args)
    tasks: list[Task] = []
    for shot in shots:
        chunk_names = []
        for a, b in _chunks(shot.first, shot.last, chunk):
            frames = format_frames(range(a, b + 1))
            out = chunk_path(shot.output, frames) if shot.is_movie else shot.output
            task_name = f"{shot.name}.{frames}"
            tasks.append(Task(task_name, "convert", shot.name, frames, out,
                              tuple(convert_argv(shot, frames=frames, output=out, model=model,
                                                 convert_args=args, progress=progress))))
            chunk_names.append(task_name)
        if shot.is_movie:
            tasks.append(Task(f"{shot.name}.assemble", "assemble", shot.name, shot.frames, shot.output,
                              tuple(assemble_argv(shot, progress=progress)), tuple(chunk_names)))
    return Plan(name=name, shots=shots, tasks=tuple(tasks), chunk=chunk, model=model, convert_args=args,
                progress=progress)


# ---------------------------------------------------------------------------------------------
# JSON (what run-plan reads)
# ---------------------------------------------------------------------------------------------


def to_json(plan: Plan) -> str:
    """The plan as JSON: ``{"format": "vfxswap.plan", "version": 1, ..., "tasks": [...]}``."""
    data = {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "vfxswap": __version__,
        "name": plan.name,
        "chunk": plan.chunk,
        "model": plan.model,
        "convert_args": list(plan.convert_args),
        "progress": plan.progress,
        "shots": [dataclasses.asdict(s) for s in plan.shots],
        "tasks": [{"name": t.name, "kind": t.kind, "shot": t.shot, "frames": t.frames, "output": t.output,
                   "argv": list(t.argv), "depends": list(t.depends)} for t in plan.tasks],
    }
    return json.dumps(data, indent=2) + "\n"


def plan_from_json(text: str, *, origin: str = "plan") -> Plan:
    """Read a plan written by :func:`to_json`.

    Raises:
        MediaError: not JSON, not a vfxswap plan, a newer version, or malformed tasks (``origin``
            names the file in the message).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MediaError(f"{origin} is not JSON ({exc.msg} at line {exc.lineno}); write it with vfxswap plan "
                         "--format json") from None
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise MediaError(f"{origin} is not a vfxswap plan (no \"format\": \"{PLAN_FORMAT}\"); write it with "
                         "vfxswap plan --format json")
    version = data.get("version")
    if not isinstance(version, int) or version > PLAN_VERSION:
        raise MediaError(f"{origin} is a version {version} plan; this vfxswap reads version {PLAN_VERSION} "
                         "(upgrade vfxswap or re-plan)")
    try:
        shots = tuple(SwapJob(**s) for s in data["shots"])
        tasks = tuple(Task(name=str(t["name"]), kind=t["kind"], shot=str(t["shot"]), frames=str(t["frames"]),
                           output=str(t["output"]), argv=tuple(str(a) for a in t["argv"]),
                           depends=tuple(str(d) for d in t.get("depends", ())))
                      for t in data["tasks"])
        plan = Plan(name=str(data.get("name", "vfxswap")), shots=shots, tasks=tasks, chunk=int(data["chunk"]),
                    model=str(data["model"]), convert_args=tuple(map(str, data.get("convert_args", ()))),
                    progress=str(data.get("progress", "plain")))
    except (KeyError, TypeError, ValueError) as exc:
        reason = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise MediaError(f"{origin} is a malformed vfxswap plan: {reason}") from None
    _check_tasks(plan, origin)
    return plan


def _check_tasks(plan: Plan, origin: str) -> None:
    names = [t.name for t in plan.tasks]
    if len(set(names)) != len(names):
        raise MediaError(f"{origin} has duplicate task names")
    for task in plan.tasks:
        if task.kind not in ("convert", "assemble"):
            raise MediaError(f"{origin}: task {task.name} has unknown kind {task.kind!r}")
        if len(task.argv) < 2 or task.argv[0] != "vfxswap" or task.argv[1] != task.kind:
            raise MediaError(f"{origin}: task {task.name} runs {' '.join(task.argv[:2]) or 'nothing'}; plan "
                             f"tasks are vfxswap convert/assemble commands")
        unknown = [d for d in task.depends if d not in names]
        if unknown:
            raise MediaError(f"{origin}: task {task.name} depends on unknown tasks {', '.join(unknown)}")


def read_plan(path: str | os.PathLike[str]) -> Plan:
    """Read a JSON plan file (see :func:`plan_from_json`).

    Raises:
        MediaError: the file is missing or unreadable, or not a valid plan.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise MediaError(f"cannot read plan {path}: {reason}") from None
    return plan_from_json(text, origin=str(path))

