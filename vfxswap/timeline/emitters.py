"""Farm plans written out for a farm (:func:`emit`): a POSIX shell script, Deadline CommandLine-plugin
job files, an Open Job Description 2023-09 template (``CHUNK[INT]`` task parameter) and an OpenCue
PyOutline script. The JSON form ``vfxswap run-plan`` reads lives in :mod:`vfxswap.timeline.farm`.
"""

from __future__ import annotations

import json
import os
import pprint
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from .. import __version__
from ..errors import ConfigError
from ..types import SwapJob
from .farm import (_PROGRESS_FOR_FORMAT, _SAFE_NAME_RE, FORMATS, Plan, PlanFormat, assemble_argv, chunk_path,
                   convert_argv, to_json)



def to_shell(plan: Plan) -> str:
    """A POSIX ``sh`` script running the tasks in order (``set -eu``: the first failure stops it).

    ``VFXSWAP`` in the environment replaces the ``vfxswap`` command (it may hold arguments:
    ``VFXSWAP="python -m vfxswap" sh plan.sh``).
    """
    lines = ["#!/bin/sh", f"# {plan.name}: {len(plan.shots)} shot(s), {len(plan.tasks)} task(s), "
             f"chunks of {plan.chunk} frames; written by vfxswap {__version__}",
             "# VFXSWAP may name another vfxswap command, e.g. VFXSWAP='python -m vfxswap' sh THIS.sh",
             "set -eu", ': "${VFXSWAP:=vfxswap}"', ""]
    for task in plan.tasks:
        lines.append(f"# {task.name}: {task.kind} {task.frames}")
        lines.append("$VFXSWAP " + shlex.join(task.argv[1:]))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Deadline (CommandLine plugin)
# ---------------------------------------------------------------------------------------------


def _deadline_quote(arg: str) -> str:
    if '"' in arg or "\n" in arg:
        raise ConfigError(f"cannot pass {arg!r} to Deadline: quotes and newlines are not allowed in paths")
    return f"<QUOTE>{arg}<QUOTE>" if (not arg or re.search(r"\s", arg)) else arg


def _deadline_arguments(argv: Sequence[str]) -> str:
    return " ".join(_deadline_quote(a) for a in argv[1:])


def _key_values(entries: Mapping[str, object]) -> str:
    for key, value in entries.items():
        if "\n" in str(value) or "=" in key:
            raise ConfigError(f"cannot write Deadline entry {key}={value!r}: no newlines allowed")
    return "".join(f"{k}={v}\n" for k, v in entries.items())


def _file_stem(name: str) -> str:
    return _SAFE_NAME_RE.sub("_", name).strip("._") or "shot"


def to_deadline(plan: Plan) -> dict[str, str]:
    """Deadline job files: per shot a CommandLine job (``Frames=``, ``ChunkSize=``, arguments with
    ``<STARTFRAME>-<ENDFRAME>``), per movie shot an assemble job, and ``submit_deadline.sh``
    which submits them with ``deadlinecommand`` (``-SubmitMultipleJobs -dependent`` makes the
    assemble job wait for the chunks).

    Returns:
        ``{file name: text}``; job files are ``key=value`` lines.
    """
    files: dict[str, str] = {}
    submit = ["#!/bin/sh", f"# Submit {plan.name} to Deadline; written by vfxswap {__version__}",
              "# DEADLINECOMMAND may name the deadlinecommand executable.", "set -eu", 'cd "$(dirname "$0")"',
              ': "${DEADLINECOMMAND:=deadlinecommand}"', ""]
    for shot in plan.shots:
        stem = _file_stem(shot.name)
        token = "<STARTFRAME>-<ENDFRAME>"
        out = chunk_path(shot.output, token) if shot.is_movie else shot.output
        argv = convert_argv(shot, frames=token, output=out, model=plan.model, convert_args=plan.convert_args,
                            progress="deadline")
        job = {"Plugin": "CommandLine", "Name": f"{shot.name} convert", "BatchName": plan.name,
               "Comment": f"vfxswap convert {shot.frames} in chunks of {plan.chunk}",
               "Frames": f"{shot.first}-{shot.last}", "ChunkSize": plan.chunk,
               "OutputDirectory0": os.path.dirname(out), "OutputFilename0": os.path.basename(out)}
        plugin = {"Executable": "vfxswap", "Arguments": _deadline_arguments(argv), "ShellExecute": "False",
                  "StartupDirectory": ""}
        files[f"{stem}.job_info.job"] = _key_values(job)
        files[f"{stem}.plugin_info.job"] = _key_values(plugin)
        pair = f"{stem}.job_info.job {stem}.plugin_info.job"
        if shot.is_movie:
            assemble = {"Plugin": "CommandLine", "Name": f"{shot.name} assemble", "BatchName": plan.name,
                        "Comment": f"join the chunks of {os.path.basename(shot.output)}", "Frames": "0",
                        "ChunkSize": 1, "OutputDirectory0": os.path.dirname(shot.output),
                        "OutputFilename0": os.path.basename(shot.output)}
            assemble_plugin = {"Executable": "vfxswap",
                               "Arguments": _deadline_arguments(assemble_argv(shot, progress="deadline")),
                               "ShellExecute": "False", "StartupDirectory": ""}
            files[f"{stem}.assemble.job_info.job"] = _key_values(assemble)
            files[f"{stem}.assemble.plugin_info.job"] = _key_values(assemble_plugin)
            submit.append(f'"$DEADLINECOMMAND" -SubmitMultipleJobs -dependent -job {pair} '
                          f"-job {stem}.assemble.job_info.job {stem}.assemble.plugin_info.job")
        else:
            submit.append(f'"$DEADLINECOMMAND" {pair}')
    files["submit_deadline.sh"] = "\n".join(submit) + "\n"
    return files


def read_key_values(text: str) -> dict[str, str]:
    """Parse a Deadline ``key=value`` job file (blank lines skipped).

    Raises:
        ConfigError: a line without ``=``.
    """
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"line {number} is not key=value: {line!r}")
        entries[key] = value
    return entries


# ---------------------------------------------------------------------------------------------
# Open Job Description
# ---------------------------------------------------------------------------------------------


def _openjd_text(value: str) -> str:
    if "{{" in value or "}}" in value:
        raise ConfigError(f"cannot put {value!r} in an Open Job Description template: '{{{{' and '}}}}' are "
                          "format-string markers")
    return value


def _step_name(shot: SwapJob, what: str) -> str:
    suffix = f" {what}"
    return shot.name[:64 - len(suffix)] + suffix


def openjd_template(plan: Plan) -> dict[str, Any]:
    """An Open Job Description ``jobtemplate-2023-09`` job (extension ``TASK_CHUNKING``).

    Per shot a ``SHOT convert`` step whose ``Frames`` task parameter is ``CHUNK[INT]`` over the
    shot's range (``defaultTaskCount`` = the chunk size, contiguous chunks), running ``--frames
    {{Task.Param.Frames}}``; per movie shot a ``SHOT assemble`` step depending on it. The job
    parameter ``VfxswapCommand`` (default ``vfxswap``) names the executable on the workers.
    """
    steps: list[dict[str, Any]] = []
    for shot in plan.shots:
        token = "{{Task.Param.Frames}}"
        out = chunk_path(_openjd_text(shot.output), token) if shot.is_movie else _openjd_text(shot.output)
        argv = convert_argv(shot, frames=token, output=out, model=_openjd_text(plan.model),
                            convert_args=[_openjd_text(a) for a in plan.convert_args], progress="openjd")
        _openjd_text(shot.source)
        convert_step = {
            "name": _step_name(shot, "convert"),
            "parameterSpace": {"taskParameterDefinitions": [{
                "name": "Frames", "type": "CHUNK[INT]", "range": f"{shot.first}-{shot.last}",
                "chunks": {"defaultTaskCount": plan.chunk, "rangeConstraint": "CONTIGUOUS"}}]},
            "script": {"actions": {"onRun": {"command": "{{Param.VfxswapCommand}}", "args": argv[1:]}}},
        }
        steps.append(convert_step)
        if shot.is_movie:
            steps.append({
                "name": _step_name(shot, "assemble"),
                "dependencies": [{"dependsOn": convert_step["name"]}],
                "script": {"actions": {"onRun": {"command": "{{Param.VfxswapCommand}}",
                                                 "args": assemble_argv(shot, progress="openjd")[1:]}}},
            })
    return {
        "specificationVersion": "jobtemplate-2023-09",
        "extensions": ["TASK_CHUNKING"],
        "name": plan.name[:128] or "vfxswap",
        "description": f"vfxswap farm plan: {len(plan.shots)} shot(s), chunks of {plan.chunk} frames; "
                       f"written by vfxswap {__version__}",
        "parameterDefinitions": [{"name": "VfxswapCommand", "type": "STRING", "default": "vfxswap",
                                  "description": "The vfxswap executable on the workers."}],
        "steps": steps,
    }


def to_openjd(plan: Plan) -> str:
    """:func:`openjd_template` as JSON text (``openjd check`` / ``deadline bundle submit`` read it)."""
    return json.dumps(openjd_template(plan), indent=2) + "\n"


# ---------------------------------------------------------------------------------------------
# OpenCue (PyOutline)
# ---------------------------------------------------------------------------------------------

_OPENCUE_TEMPLATE = '''#!/usr/bin/env python
"""Submit {title} to OpenCue (PyOutline); written by vfxswap {version}.

Run it where pyoutline and pycue are configured: ``python THIS.py``. SHOW, SHOT and VFXSWAP
(the vfxswap command on the render nodes) come from the environment when set. Each convert layer
runs one chunk per OpenCue frame (``#FRAME_START#-#FRAME_END#``); a movie's assemble layer waits
for all of its shot's chunks.
"""

import os
import shlex

from outline import Outline, cuerun
from outline.modules.shell import Shell, ShellCommand

VFXSWAP = shlex.split(os.environ.get("VFXSWAP", "vfxswap"))
SHOTS = {shots}


def build():
    """The outline: a convert layer per shot (and an assemble layer per movie shot)."""
    job = Outline({name!r}, show=os.environ.get("SHOW", "vfxswap"), shot=os.environ.get("SHOT", "farm"),
                  user=os.environ.get("USER", "vfxswap"))
    for shot in SHOTS:
        convert = Shell(shot["layer"] + "_convert", command=VFXSWAP + shot["convert"], range=shot["range"],
                        chunk={chunk})
        job.add_layer(convert)
        if shot["assemble"]:
            assemble = ShellCommand(shot["layer"] + "_assemble", command=VFXSWAP + shot["assemble"])
            assemble.depend_all(convert)
            job.add_layer(assemble)
    return job


def main():
    """Launch the job on the cue (the commands run as they are, without the pycuerun wrapper)."""
    return cuerun.launch(build(), use_pycuerun=False)


if __name__ == "__main__":
    main()
'''


def to_opencue(plan: Plan) -> str:
    """A PyOutline script: ``Shell`` convert layers (``range`` = the shot, ``chunk`` = the chunk size,
    ``--frames #FRAME_START#-#FRAME_END#``) and ``ShellCommand`` assemble layers that
    ``depend_all`` on them. Arguments are shell-quoted (the cue runs the joined command line)."""
    shots = []
    for shot in plan.shots:
        token = "#FRAME_START#-#FRAME_END#"
        out = chunk_path(shot.output, token) if shot.is_movie else shot.output
        argv = convert_argv(shot, frames=token, output=out, model=plan.model, convert_args=plan.convert_args,
                            progress="deadline")  # "Progress: N%" lines
        shots.append({"layer": _file_stem(shot.name).replace(".", "_"), "range": f"{shot.first}-{shot.last}",
                      "convert": [shlex.quote(a) for a in argv[1:]],
                      "assemble": ([shlex.quote(a) for a in assemble_argv(shot, progress="deadline")[1:]]
                                   if shot.is_movie else None)})
    body = pprint.pformat(shots, indent=1, width=110, sort_dicts=False)
    return _OPENCUE_TEMPLATE.format(title=plan.name.replace('"', "'"), version=__version__, shots=body,
                                    name=_file_stem(plan.name), chunk=plan.chunk)


# ---------------------------------------------------------------------------------------------
# All formats
# ---------------------------------------------------------------------------------------------


def emit(plan: Plan, format: PlanFormat) -> dict[str, str]:
    """The files of ``plan`` in ``format``: ``{file name: text}`` (one file except for Deadline).

    File names: ``plan.json``, ``plan.sh``, ``plan.openjd.json``, ``plan_opencue.py``, Deadline:
    see :func:`to_deadline`.

    Raises:
        ConfigError: an unknown format, or a path the format cannot carry.
    """
    if format == "json":
        return {"plan.json": to_json(plan)}
    if format == "shell":
        return {"plan.sh": to_shell(plan)}
    if format == "deadline":
        return to_deadline(plan)
    if format == "openjd":
        return {"plan.openjd.json": to_openjd(plan)}
    if format == "opencue":
        return {"plan_opencue.py": to_opencue(plan)}
    raise ConfigError(f"unknown plan format {format!r}; use one of {', '.join(FORMATS)}")


def progress_mode(format: PlanFormat, default: str = "plain") -> str:
    """The ``--progress`` mode the tasks of a plan in ``format`` use."""
    return _PROGRESS_FOR_FORMAT.get(format, default)

