"""vfxswap in DaVinci Resolve: conform the current timeline (Workspace -> Scripts -> vfxswap_resolve).

1. export the current timeline to OpenTimelineIO (``Timeline.Export(path, resolve.EXPORT_OTIO,
   resolve.EXPORT_NONE)``, Resolve 18.5 or later);
2. run ``vfxswap timeline CUT.otio -m MODEL -o CUT_vfxswap.otio ...``: the selected clips are
   converted and relinked to the converted media, timing unchanged;
3. import the relinked timeline into the current Media Pool folder
   (``MediaPool.ImportTimelineFromFile``) as a new timeline and make it the current one.

Resolve's Python does not import vfxswap: the ``vfxswap`` command (installed in its own Python
environment) runs as a subprocess. Settings come from a JSON file (see :class:`Settings` and the
README): ``$VFXSWAP_RESOLVE_SETTINGS``, else ``~/.config/vfxswap/resolve.json``
(``%APPDATA%\\vfxswap\\resolve.json`` on Windows).

The logic (settings, paths, the command, names) is separate from the calls into Resolve
(:func:`conform_current_timeline`), which take the ``resolve`` object as an argument, so they are
tested against a fake of Resolve's object graph.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field, fields
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

#: Environment variables of Resolve's embedded Python that must not leak into the vfxswap process.
HOST_PYTHON_VARIABLES = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE")


class ResolveScriptError(Exception):
    """A problem the editor can fix (no timeline open, no model set, vfxswap failed); one line."""


@dataclass(frozen=True)
class Settings:
    """What the script needs to know (the keys of the settings JSON file).

    Attributes:
        model: the trained vfxswap model folder (required).
        executable: the vfxswap command, e.g. ``["/opt/vfxswap/.venv/bin/vfxswap"]``.
        work_dir: where the exported and conformed timelines go:
            ``WORK_DIR/PROJECT/TIMELINE/``.
        output_dir: converted media folder; empty: ``WORK_DIR/PROJECT/TIMELINE/media``.
        ext: converted media type (``mov`` by default: Resolve relinks OTIO movie references
            everywhere; ``exr``, ``dpx``... write image sequences).
        select: ``--select`` terms, e.g. ``["marker:faceswap"]`` or ``["color:RED"]``.
        track: ``--track`` names (``V1``...).
        handles: ``--handles`` frames.
        media_dir: ``--media-dir`` (where to look for media whose paths moved).
        options: other ``vfxswap convert`` options, e.g. ``{"reference": "/refs/actor.png", "color": "mkl"}``.
        timeline_suffix: appended to the name of the imported timeline.
    """

    model: str
    executable: Tuple[str, ...] = ("vfxswap",)
    work_dir: str = "~/vfxswap/resolve"
    output_dir: str = ""
    ext: str = "mov"
    select: Tuple[str, ...] = ()
    track: Tuple[str, ...] = ()
    handles: int = 0
    media_dir: str = ""
    options: Mapping[str, object] = field(default_factory=dict)
    timeline_suffix: str = " vfxswap"


def default_settings_path(environ: Mapping[str, str]) -> str:
    """``$VFXSWAP_RESOLVE_SETTINGS``, else ``%APPDATA%\\vfxswap\\resolve.json`` (Windows) or
    ``~/.config/vfxswap/resolve.json``."""
    if environ.get("VFXSWAP_RESOLVE_SETTINGS"):
        return environ["VFXSWAP_RESOLVE_SETTINGS"]
    if os.name == "nt" and environ.get("APPDATA"):
        return os.path.join(environ["APPDATA"], "vfxswap", "resolve.json")
    return os.path.join(os.path.expanduser("~"), ".config", "vfxswap", "resolve.json")


def settings_from_dict(data: Mapping[str, object]) -> Settings:
    """A :class:`Settings` from the JSON file's object.

    Raises:
        ResolveScriptError: unknown keys, no ``model``, or values of the wrong type.
    """
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ResolveScriptError(f"unknown settings {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if not data.get("model"):
        raise ResolveScriptError('the settings need "model": the trained vfxswap model folder')
    values = dict(data)
    for key in ("executable", "select", "track"):
        if key in values:
            value = values[key]
            values[key] = (value,) if isinstance(value, str) else tuple(str(v) for v in value)
    if "options" in values and not isinstance(values["options"], Mapping):
        raise ResolveScriptError('"options" must be an object of vfxswap convert options, e.g. {"color": "mkl"}')
    try:
        values["handles"] = int(values.get("handles", 0))
    except (TypeError, ValueError):
        raise ResolveScriptError(f'"handles" must be a number of frames, got {values["handles"]!r}') from None
    return Settings(**values)


def load_settings(path: str) -> Settings:
    """Read the settings JSON file.

    Raises:
        ResolveScriptError: a missing or malformed file (the message shows a minimal one).
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ResolveScriptError(f'no settings file {path}; create it with at least {{"model": "/path/to/model", '
                                 '"executable": ["/path/to/vfxswap"]}') from None
    except (OSError, ValueError) as exc:
        raise ResolveScriptError(f"cannot read the settings file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ResolveScriptError(f"{path} must hold a JSON object of settings")
    return settings_from_dict(data)


def safe_name(text: str) -> str:
    """A file-name-safe version of a project or timeline name (``Reel 1 / v2`` -> ``Reel_1_v2``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "timeline"


@dataclass(frozen=True)
class JobPaths:
    """The files of one conform: ``cut`` (exported from Resolve), ``output`` (the conformed
    timeline), ``media`` (converted media folder), ``report`` (per-clip JSON report)."""

    folder: str
    cut: str
    output: str
    media: str
    report: str


def job_paths(settings: Settings, project: str, timeline: str) -> JobPaths:
    """Where one conform's files go: ``WORK_DIR/PROJECT/TIMELINE/``."""
    folder = os.path.join(os.path.expanduser(settings.work_dir), safe_name(project), safe_name(timeline))
    stem = safe_name(timeline)
    media = os.path.expanduser(settings.output_dir) if settings.output_dir else os.path.join(folder, "media")
    return JobPaths(folder=folder, cut=os.path.join(folder, f"{stem}.otio"),
                    output=os.path.join(folder, f"{stem}_vfxswap.otio"), media=media,
                    report=os.path.join(folder, f"{stem}_vfxswap_report.json"))


def _option_args(options: Mapping[str, object]) -> List[str]:
    args: List[str] = []
    for key, value in options.items():
        if value is None or value == "" or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def timeline_command(settings: Settings, paths: JobPaths) -> List[str]:
    """The ``vfxswap timeline`` command of a conform (plain progress lines for Resolve's console)."""
    cmd = [*settings.executable, "timeline", paths.cut, "-m", settings.model, "-o", paths.output,
           "--output-dir", paths.media, "--ext", settings.ext, "--report", paths.report, "--progress", "plain"]
    for term in settings.select:
        cmd += ["--select", term]
    for track in settings.track:
        cmd += ["--track", track]
    if settings.handles:
        cmd += ["--handles", str(settings.handles)]
    if settings.media_dir:
        cmd += ["--media-dir", os.path.expanduser(settings.media_dir)]
    return cmd + _option_args(settings.options)


def unique_name(base: str, existing: Iterable[str]) -> str:
    """``base``, or ``base 2``, ``base 3``... whichever no existing timeline has."""
    taken = set(existing)
    if base not in taken:
        return base
    n = 2
    while f"{base} {n}" in taken:
        n += 1
    return f"{base} {n}"


def child_env(environ: Mapping[str, str]) -> Dict[str, str]:
    """The environment for the vfxswap process: Resolve's, minus its Python's own variables."""
    return {k: v for k, v in environ.items() if k not in HOST_PYTHON_VARIABLES}


Log = Callable[[str], object]


def run_command(command: Sequence[str], log: Log, *, env: Optional[Mapping[str, str]] = None) -> Tuple[int, str]:
    """Run a command, passing each output line to ``log``; ``(exit status, error line)``.

    The error line is vfxswap's ``vfxswap: error: ...`` line, else the last line printed.
    """
    try:
        process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True, bufsize=1,
                                   env=child_env(os.environ) if env is None else dict(env),
                                   creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    except OSError as exc:
        return 127, f"cannot run {command[0]}: {exc.strerror or exc}; set \"executable\" in the settings file"
    last, error = "", ""
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip()
        if line:
            log(line)
            last = line
            if line.startswith("vfxswap: "):
                error = line
    code = process.wait()
    return code, ((error or last) if code else "")


# --------------------------------------------------------------------------------------- Resolve
def timeline_names(project) -> List[str]:
    """Names of the project's timelines (Resolve counts them from 1)."""
    names = []
    for i in range(1, int(project.GetTimelineCount() or 0) + 1):
        timeline = project.GetTimelineByIndex(i)
        if timeline is not None:
            names.append(timeline.GetName())
    return names


def conform_current_timeline(resolve, settings: Settings, *, log: Log = print,
                             run: Callable[..., Tuple[int, str]] = run_command):
    """Export the current timeline, conform it with vfxswap and import the result.

    Args:
        resolve: Resolve's scripting object.
        settings: the script's settings.
        log: where progress lines go (Resolve's console).
        run: ``run(command, log) -> (status, error line)`` (:func:`run_command`).

    Returns:
        The imported Resolve timeline (now the current one).

    Raises:
        ResolveScriptError: no project or timeline, a Resolve without OTIO export, a failed export,
            conform or import.
    """
    export_otio = getattr(resolve, "EXPORT_OTIO", None)
    if export_otio is None:
        raise ResolveScriptError("this Resolve cannot export OpenTimelineIO; use DaVinci Resolve 18.5 or later")
    project = resolve.GetProjectManager().GetCurrentProject()
    if project is None:
        raise ResolveScriptError("open a project first")
    timeline = project.GetCurrentTimeline()
    if timeline is None:
        raise ResolveScriptError("open the timeline to conform first")
    name = timeline.GetName()
    paths = job_paths(settings, project.GetName(), name)
    os.makedirs(paths.folder, exist_ok=True)
    log(f"vfxswap: exporting timeline {name!r} to {paths.cut}")
    if not timeline.Export(paths.cut, export_otio, resolve.EXPORT_NONE) or not os.path.isfile(paths.cut):
        raise ResolveScriptError(f"Resolve could not export {name!r} to {paths.cut}; check the folder is writable")
    command = timeline_command(settings, paths)
    log("vfxswap: " + " ".join(command))
    before = _mtime(paths.output)
    code, error = run(command, log)
    if code not in (0, 1) or _mtime(paths.output) in (None, before):  # 1: written, some clips not converted
        raise ResolveScriptError(f"vfxswap timeline failed (status {code}): {error or 'no timeline written'}")
    if code != 0:
        log(f"vfxswap: some clips were not converted ({error}); see {paths.report}")
    new_name = unique_name(name + settings.timeline_suffix, timeline_names(project))
    media_pool = project.GetMediaPool()
    imported = media_pool.ImportTimelineFromFile(paths.output, {"timelineName": new_name, "importSourceClips": True,
                                                                "sourceClipsPath": paths.media})
    if not imported:
        raise ResolveScriptError(f"Resolve could not import {paths.output}")
    project.SetCurrentTimeline(imported)
    log(f"vfxswap: imported {new_name!r} from {paths.output}")
    return imported


def _mtime(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def get_resolve(namespace: Mapping[str, object]):
    """Resolve's scripting object: the ``resolve`` a Workspace -> Scripts script is given, else
    ``bmd.scriptapp("Resolve")``, else ``DaVinciResolveScript.scriptapp("Resolve")`` (external runs)."""
    if namespace.get("resolve") is not None:
        return namespace["resolve"]
    bmd = namespace.get("bmd")
    if bmd is not None:
        return bmd.scriptapp("Resolve")
    try:
        import DaVinciResolveScript  # noqa: PLC0415 - Resolve's module, on its scripting path
    except ImportError:
        raise ResolveScriptError("run this from DaVinci Resolve (Workspace -> Scripts), or put Resolve's "
                                 "Developer/Scripting/Modules folder on PYTHONPATH") from None
    return DaVinciResolveScript.scriptapp("Resolve")


def main(namespace: Optional[Mapping[str, object]] = None) -> int:
    """Run the conform with the settings file; report to the console. Returns 0 or 1."""
    try:
        settings = load_settings(default_settings_path(os.environ))
        resolve = get_resolve(namespace if namespace is not None else globals())
        conform_current_timeline(resolve, settings)
    except ResolveScriptError as exc:
        print(f"vfxswap: error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    main(globals())
