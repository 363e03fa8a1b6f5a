"""vfxswap in Nuke: swap the faces of a Read node's plate with ``vfxswap convert``, in the background.

Nuke's Python does not import vfxswap: it runs the ``vfxswap`` command (installed in its own Python
environment) as a subprocess, so any Nuke version with Python 3.7+ works. Two layers:

* **Logic** (no ``nuke`` import, tested without Nuke): :class:`ReadInfo` (a Read node's file and
  frame ranges), :func:`output_paths` (path templates), :func:`frame_args` (Nuke frame numbers ->
  ``--frames``/``--start-frame``), :func:`convert_command`, :func:`child_env`,
  :func:`parse_progress` and :class:`BackgroundJob` (runs the command on a worker thread and posts
  progress and the result through a ``post(callable, args)`` function: ``nuke.executeInMainThread``).
* **Host** (the functions under "Nuke" below; they import ``nuke`` when called): read the knobs,
  start the job, show progress in a ``nuke.ProgressTask``, create a Read node for the swapped plate
  and one for the matte, build the ``VFXSwap`` group, add the menus (``menu.py``).

Frame numbers: the swapped plate is written as an image sequence numbered like the frames of the
Read node, so the new Read nodes line up with the source in the comp. A movie Read numbers its
first frame ``origfirst`` (1 by default); that becomes ``vfxswap convert --start-frame``, and the
Read's ``first``-``last`` become ``--frames``. A sequence keeps its file numbers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

# Choices of the group's knobs; tests check them against the library's registries and Literals
# (Nuke's Python cannot import vfxswap to ask).
COLOR_METHODS = ("rct", "lct", "mkl", "idt", "sot", "hist", "none")
BLEND_METHODS = ("feather", "poisson", "laplacian")
FACE_CHOICES = ("all", "largest", "reference")
MASK_SOURCES = ("learned*hull", "hull", "learned")

#: Sequence file types ``vfxswap convert`` writes; other inputs (movies, JPEG...) are written as PNG.
SEQUENCE_EXTENSIONS = ("exr", "dpx", "tif", "tiff", "png")
MOVIE_EXTENSIONS = ("mov", "mp4", "mkv", "mxf", "avi", "m4v", "webm", "r3d", "braw", "ari")
DEFAULT_OUTPUT = "{dir}/vfxswap/{name}_swap.####.{ext}"
DEFAULT_MATTE = "{dir}/vfxswap/{name}_matte.####.png"
#: Knobs of the source Read copied onto the result Reads so they play in the same place.
TIMING_KNOBS = ("frame_mode", "frame", "before", "after")
#: Environment variables of Nuke's own Python that must not leak into the vfxswap process.
NUKE_PYTHON_VARIABLES = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE")

_TOKEN = re.compile(r"%0?\d*d|#+|@+")


class VfxSwapNukeError(Exception):
    """A problem the artist can fix (no Read selected, a stereo file, a bad template); one line."""


# ----------------------------------------------------------------------------------------- logic
@dataclass(frozen=True)
class ReadInfo:
    """What a Read node reads.

    Attributes:
        file: the file knob, TCL evaluated, frame token kept (``plate.%04d.exr``, ``plate.####.dpx``,
            ``plate.mov``).
        first, last: the Read's frame range (inclusive), in Nuke frame numbers.
        origfirst, origlast: the media's own range (a movie's frames are numbered from ``origfirst``).
        knobs: other knob values copied onto the result Reads (``colorspace``, timing knobs).
    """

    file: str
    first: int
    last: int
    origfirst: int
    origlast: int
    knobs: Tuple[Tuple[str, str], ...] = ()

    @property
    def is_sequence(self) -> bool:
        """Whether the file name holds a frame-number token."""
        return _TOKEN.search(os.path.basename(self.file)) is not None

    @property
    def extension(self) -> str:
        return os.path.splitext(self.file)[1][1:].lower()

    def knob(self, name: str, default: str = "") -> str:
        return dict(self.knobs).get(name, default)


def read_info(values: Mapping[str, object]) -> ReadInfo:
    """A :class:`ReadInfo` from a Read node's knob values (``file``, ``first``, ``last``,
    ``origfirst``, ``origlast``, and optionally ``colorspace`` and :data:`TIMING_KNOBS`).

    Raises:
        VfxSwapNukeError: no file, a stereo (``%V``) file, or an empty frame range.
    """
    path = str(values.get("file") or "").strip()
    if not path:
        raise VfxSwapNukeError("the Read node has no file")
    if "%V" in path or "%v" in path:
        raise VfxSwapNukeError(f"{path}: stereo views (%V) are not supported; split the views first")
    first, last = int(values["first"]), int(values["last"])
    origfirst = int(values.get("origfirst", first))
    origlast = int(values.get("origlast", last))
    if last < first:
        raise VfxSwapNukeError(f"the Read node's frame range {first}-{last} is empty")
    knobs = tuple((k, str(values[k])) for k in ("colorspace",) + TIMING_KNOBS if values.get(k) not in (None, ""))
    return ReadInfo(path, first, last, origfirst, origlast, knobs)


def shot_name(path: str) -> str:
    """The file name without frame token, frame number separator and extension:
    ``/a/plate.%04d.exr`` -> ``plate``; ``/a/A001_C002.mov`` -> ``A001_C002``."""
    name = os.path.splitext(os.path.basename(path))[0]
    match = list(_TOKEN.finditer(name))
    if match:
        name = name[:match[-1].start()]
    return name.rstrip("._-") or "plate"


def output_paths(read: ReadInfo, *, model: str, output: str = DEFAULT_OUTPUT, matte: str = DEFAULT_MATTE
                 ) -> Tuple[str, str]:
    """Fill the output and matte path templates for a Read.

    Fields: ``{dir}`` (the plate's folder), ``{name}`` (:func:`shot_name`), ``{ext}`` (the plate's
    type when vfxswap writes it as a sequence, else ``png``), ``{model}`` (the model folder's name),
    ``{first}``, ``{last}``. ``~`` is expanded.

    Raises:
        VfxSwapNukeError: an unknown field, or a result without a frame token (``####``).
    """
    fields = {
        "dir": os.path.dirname(read.file) or ".",
        "name": shot_name(read.file),
        "ext": read.extension if read.is_sequence and read.extension in SEQUENCE_EXTENSIONS else "png",
        "model": os.path.basename(os.path.normpath(model)) if model else "model",
        "first": read.first,
        "last": read.last,
    }
    paths = []
    for what, template in (("output", output), ("matte", matte)):
        try:
            path = os.path.expanduser(template.format(**fields))
        except (KeyError, IndexError, ValueError) as exc:
            raise VfxSwapNukeError(f"bad {what} template {template!r}: {exc}; use the fields "
                                   f"{', '.join('{' + k + '}' for k in fields)}") from None
        if not _TOKEN.search(os.path.basename(path)):
            raise VfxSwapNukeError(f"the {what} template {template!r} must name an image sequence with a frame "
                                   "token, e.g. {dir}/vfxswap/{name}_swap.####.exr")
        paths.append(os.path.normpath(path))
    return paths[0], paths[1]


def frame_range(read: ReadInfo) -> Tuple[int, int]:
    """The frames to convert: the Read's range clamped to the media's."""
    first, last = max(read.first, read.origfirst), min(read.last, read.origlast)
    if last < first:
        raise VfxSwapNukeError(f"the Read's range {read.first}-{read.last} lies outside its media "
                               f"({read.origfirst}-{read.origlast})")
    return first, last


def frame_args(read: ReadInfo) -> List[str]:
    """``--frames A-B`` (and ``--start-frame N`` for a movie) so that vfxswap's frame numbers are Nuke's."""
    first, last = frame_range(read)
    args = ["--frames", f"{first}-{last}"]
    if not read.is_sequence:
        args += ["--start-frame", str(read.origfirst)]
    return args


def option_args(options: Mapping[str, object]) -> List[str]:
    """``{"feather": 12, "color": "mkl", "alpha": True, "reference": ""}`` ->
    ``["--feather", "12", "--color", "mkl", "--alpha"]`` (empty values and ``False`` left out)."""
    args: List[str] = []
    for key, value in options.items():
        if value is None or value == "" or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def convert_command(read: ReadInfo, *, model: str, output: str, matte: Optional[str],
                    executable: Sequence[str] = ("vfxswap",), options: Mapping[str, object] = ()) -> List[str]:
    """The ``vfxswap convert`` command for a Read node (progress as JSON lines on stdout)."""
    if not model:
        raise VfxSwapNukeError("choose the vfxswap model folder first")
    cmd = [*executable, "convert", read.file, "-m", model, "-o", output]
    if matte:
        cmd += ["--matte", matte]
    return cmd + frame_args(read) + option_args(dict(options)) + ["--progress", "json"]


def child_env(environ: Mapping[str, str]) -> Dict[str, str]:
    """The environment for the vfxswap process: Nuke's, minus its Python's own variables."""
    return {k: v for k, v in environ.items() if k not in NUKE_PYTHON_VARIABLES}


def parse_progress(line: str) -> Optional[int]:
    """The percentage of a ``--progress json`` line (``{"progress": 45, ...}``), else ``None``."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line).get("progress")
    except (ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, (int, float)) else None


@dataclass(frozen=True)
class JobResult:
    """How a background job ended.

    Attributes:
        returncode: the process's exit status (vfxswap: 0 ok, 1 failure, 2 usage, 3 bad input; -N killed).
        error: the one-line error to show (``""`` when it worked).
        output: the last lines it printed.
        cancelled: whether :meth:`BackgroundJob.cancel` stopped it.
    """

    returncode: int
    error: str = ""
    output: Tuple[str, ...] = ()
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.cancelled


Post = Callable[..., object]


class BackgroundJob:
    """Runs a command on a worker thread; never blocks the caller.

    Progress and the end are handed to ``post(callable, args)``, which must run ``callable(*args)``
    on the UI thread (``nuke.executeInMainThread``): ``on_progress(percent)`` for each progress line
    and ``on_done(JobResult)`` once at the end (also when the command cannot start).

    Args:
        command: the argv to run.
        post: ``post(callable, args_tuple)``.
        on_progress, on_done: callbacks run through ``post``.
        env: the child's environment (default: :func:`child_env` of this process's).
        cwd: its working folder.
    """

    def __init__(self, command: Sequence[str], *, post: Post, on_progress: Optional[Callable[[int], object]] = None,
                 on_done: Optional[Callable[[JobResult], object]] = None, env: Optional[Mapping[str, str]] = None,
                 cwd: Optional[str] = None) -> None:
        self.command = list(command)
        self._post, self._on_progress, self._on_done = post, on_progress, on_done
        self._env = dict(env) if env is not None else child_env(os.environ)
        self._cwd = cwd
        self._process: Optional[subprocess.Popen] = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vfxswap-job", daemon=True)
        self.result: Optional[JobResult] = None

    def start(self) -> "BackgroundJob":
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def cancel(self) -> None:
        """Stop the command (its own process only); ``on_done`` still comes, with ``cancelled``."""
        self._cancelled.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    def wait(self, timeout: Optional[float] = None) -> Optional[JobResult]:
        """Wait for the worker thread (tests, scripts); the result, or ``None`` on timeout."""
        self._thread.join(timeout)
        return self.result

    def _run(self) -> None:
        tail: deque = deque(maxlen=40)
        try:
            self._process = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                text=True, bufsize=1, env=self._env, cwd=self._cwd,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        except OSError as exc:
            self._finish(JobResult(127, f"cannot run {self.command[0]}: {exc.strerror or exc}; install vfxswap "
                                        "and set the executable (see the README)"))
            return
        if self._cancelled.is_set():
            self._process.terminate()
        assert self._process.stdout is not None
        for line in self._process.stdout:
            percent = parse_progress(line)
            if percent is not None:
                if self._on_progress is not None:
                    self._post(self._on_progress, (percent,))
            elif line.strip():
                tail.append(line.rstrip())
        code = self._process.wait()
        cancelled = self._cancelled.is_set()
        error = "" if code == 0 or cancelled else _error_line(list(tail), code)
        self._finish(JobResult(code, error, tuple(tail), cancelled))

    def _finish(self, result: JobResult) -> None:
        self.result = result
        if self._on_done is not None:
            self._post(self._on_done, (result,))


def _error_line(lines: List[str], code: int) -> str:
    """The line that says what went wrong: vfxswap's ``vfxswap: error: ...`` line, else the last line."""
    for line in reversed(lines):
        if line.startswith("vfxswap: "):
            return line
    return lines[-1] if lines else f"vfxswap exited with status {code}"


def result_reads(read: ReadInfo, output: str, matte: Optional[str]) -> List[Dict[str, object]]:
    """Knob values of the Read nodes to create for the results: the swapped plate (source colour
    space, timing) and the matte (raw data), both over the converted frames."""
    first, last = frame_range(read)
    timing = {k: v for k, v in read.knobs if k in TIMING_KNOBS}
    frames = {"first": first, "last": last, "origfirst": first, "origlast": last}
    plate: Dict[str, object] = {"file": output, **frames, **timing}
    if read.knob("colorspace"):
        plate["colorspace"] = read.knob("colorspace")
    reads = [plate]
    if matte:
        reads.append({"file": matte, **frames, **timing, "raw": True})
    return reads


# ------------------------------------------------------------------------------------------ Nuke
def _nuke():
    import nuke  # noqa: PLC0415 - only inside Nuke

    return nuke


def node_info(node) -> ReadInfo:
    """:class:`ReadInfo` of a Read node (``nuke.filename`` evaluates TCL and keeps the frame token)."""
    nuke = _nuke()
    if node is None or node.Class() != "Read":
        raise VfxSwapNukeError("select a Read node (or connect one to the VFXSwap node)")
    values: Dict[str, object] = {}
    for name in ("first", "last", "origfirst", "origlast", "colorspace") + TIMING_KNOBS:
        knob = node.knob(name)
        if knob is not None:
            values[name] = knob.value()
    values["file"] = nuke.filename(node) or node["file"].value()
    return read_info(values)


def upstream_read(node):
    """The first Read node up the input-0 chain of ``node`` (``node`` itself if it is one), or ``None``."""
    seen = set()
    while node is not None and id(node) not in seen:
        if node.Class() == "Read":
            return node
        seen.add(id(node))
        node = node.input(0)
    return None


def create_reads(source, specs: Sequence[Mapping[str, object]]) -> list:
    """Create Read nodes with these knob values, in a row to the right of ``source``."""
    nuke = _nuke()
    created = []
    for i, spec in enumerate(specs):
        node = nuke.nodes.Read()
        for name, value in spec.items():  # file first: setting it resets the ranges
            if name == "file":
                node["file"].fromUserText(str(value))
        for name, value in spec.items():
            if name != "file" and node.knob(name) is not None:
                node[name].setValue(value)
        node.setXYpos(source.xpos() + 120 * (i + 1), source.ypos())
        created.append(node)
    return created


def start_swap(read_node, *, model: str, output: str = DEFAULT_OUTPUT, matte: str = DEFAULT_MATTE,
               executable: Sequence[str] = ("vfxswap",), options: Mapping[str, object] = ()) -> BackgroundJob:
    """Convert a Read node's plate in the background; when it is done, add Read nodes for the
    swapped plate and the matte beside it (or show the error)."""
    nuke = _nuke()
    info = node_info(read_node)
    out_path, matte_path = output_paths(info, model=model, output=output, matte=matte)
    command = convert_command(info, model=model, output=out_path, matte=matte_path, executable=executable,
                              options=options)
    task = nuke.ProgressTask(f"VFXSwap {shot_name(info.file)}")
    task.setMessage(" ".join(command))
    state: Dict[str, object] = {"task": task}

    def on_progress(percent: int) -> None:
        task = state.get("task")
        if task is None:
            return
        if task.isCancelled():
            job.cancel()
        else:
            task.setProgress(percent)

    def on_done(result: JobResult) -> None:
        state.pop("task", None)  # a ProgressTask closes when it is released
        if result.ok:
            create_reads(read_node, result_reads(info, out_path, matte_path))
        elif not result.cancelled:
            nuke.message(f"VFXSwap failed on {read_node.name()}:\n{result.error}")

    job = BackgroundJob(command, post=nuke.executeInMainThread, on_progress=on_progress, on_done=on_done)
    return job.start()


def group_options(group) -> Dict[str, object]:
    """The convert options set on a VFXSwap group's knobs."""
    options: Dict[str, object] = {}
    for name in ("faces", "reference", "color", "mask", "blend", "erode", "feather", "input_colorspace",
                 "ocio_config", "backend"):
        knob = group.knob(name)
        if knob is not None:
            value = knob.value()
            options[name] = int(value or 0) if name in ("erode", "feather") else value
    if options.get("faces") == "all" and options.get("reference"):
        options["faces"] = "reference"
    return options


def swap_from_group(group) -> BackgroundJob:
    """The VFXSwap group's Swap button: convert the Read upstream of its input."""
    read = upstream_read(group.input(0))
    return start_swap(read, model=group["model"].value(), output=group["output"].value(),
                      matte=group["matte"].value(), executable=_split(group["executable"].value()),
                      options=group_options(group))


def _split(text: str) -> List[str]:
    import shlex

    return shlex.split(text, posix=os.name != "nt") or ["vfxswap"]


def create_group():
    """Build the ``VFXSwap`` group (Input -> Output passthrough + the settings and a Swap button)."""
    nuke = _nuke()
    group = nuke.nodes.Group(name="VFXSwap")
    group.begin()
    try:
        inp = nuke.nodes.Input(name="Plate")
        out = nuke.nodes.Output()
        out.setInput(0, inp)
    finally:
        group.end()
    knobs = [
        nuke.Tab_Knob("vfxswap", "VFXSwap"),
        nuke.File_Knob("model", "model folder"),
        nuke.File_Knob("reference", "reference image"),
        nuke.Enumeration_Knob("faces", "faces", list(FACE_CHOICES)),
        nuke.Enumeration_Knob("color", "colour match", list(COLOR_METHODS)),
        nuke.Enumeration_Knob("mask", "mask", list(MASK_SOURCES)),
        nuke.Enumeration_Knob("blend", "blend", list(BLEND_METHODS)),
        nuke.Int_Knob("erode", "erode"),
        nuke.Int_Knob("feather", "feather"),
        nuke.String_Knob("input_colorspace", "input colourspace"),
        nuke.String_Knob("ocio_config", "OCIO config"),
        nuke.String_Knob("output", "output"),
        nuke.String_Knob("matte", "matte"),
        nuke.String_Knob("executable", "vfxswap command"),
        nuke.PyScript_Knob("swap", "Swap", "import vfxswap_nuke\nvfxswap_nuke.swap_from_group(nuke.thisNode())"),
    ]
    for knob in knobs:
        group.addKnob(knob)
    group["feather"].setValue(8)
    group["output"].setValue(DEFAULT_OUTPUT)
    group["matte"].setValue(DEFAULT_MATTE)
    group["executable"].setValue("vfxswap")
    group["input_colorspace"].setTooltip("the plate's colour space in the OCIO config (e.g. ACEScg); empty: "
                                         "what vfxswap reads from the files")
    return group


def swap_selected() -> Optional[BackgroundJob]:
    """Menu action: swap the selected Read node's plate, asking for the model folder."""
    nuke = _nuke()
    try:
        node = nuke.selectedNode()
    except ValueError:
        node = None
    if node is None or node.Class() != "Read":
        nuke.message("VFXSwap: select a Read node first")
        return None
    model = nuke.getFilename("vfxswap model folder")
    if not model:
        return None
    try:
        return start_swap(node, model=model.rstrip("/\\"))
    except VfxSwapNukeError as exc:
        nuke.message(f"VFXSwap: {exc}")
        return None


def add_menus() -> None:
    """The Nodes toolbar entry (the group) and the Read menu action; called from ``menu.py``."""
    nuke = _nuke()
    toolbar = nuke.menu("Nodes").addMenu("VFXSwap")
    toolbar.addCommand("VFXSwap", "import vfxswap_nuke\nvfxswap_nuke.create_group()")
    toolbar.addCommand("Swap selected Read", "import vfxswap_nuke\nvfxswap_nuke.swap_selected()")
