"""The Nuke integration (nodes/nuke) without Nuke: its logic (frame mapping, path templates, the convert
command, the background job) and its host layer against a small fake ``nuke`` module that records calls
and runs ``executeInMainThread`` callbacks on the test's (main) thread, with the real ``vfxswap`` CLI."""

from __future__ import annotations

import ast
import queue
import sys
import threading
import time
import types
import typing
from pathlib import Path

import cv2
import numpy as np
import pytest

from vfxswap.config import ConvertConfig
from vfxswap.convert.blend import BLEND_METHODS, MASK_SOURCES
from vfxswap.convert.color import COLOR_METHODS
from vfxswap.io import open_source

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "samples"
VFXSWAP = [sys.executable, "-m", "vfxswap.cli"]


# ------------------------------------------------------------------------------------- fake nuke
class FakeKnob:
    def __init__(self, name: str, label: str = "", value=None, *extra) -> None:
        self.name, self.label, self._value, self.extra, self.tooltip = name, label, value, extra, ""
        if isinstance(value, list):  # Enumeration_Knob(name, label, choices)
            self.choices, self._value = value, value[0]

    def value(self):
        return self._value

    def setValue(self, value) -> None:
        self._value = value

    def fromUserText(self, text: str) -> None:
        self._value = text

    def setTooltip(self, text: str) -> None:
        self.tooltip = text


class FakeIntKnob(FakeKnob):
    def __init__(self, name: str, label: str = "") -> None:
        super().__init__(name, label, 0)


class FakeTextKnob(FakeKnob):
    def __init__(self, name: str, label: str = "", value: str = "") -> None:
        super().__init__(name, label, value)


class FakeNode:
    def __init__(self, nuke: FakeNuke, cls: str, **knobs) -> None:
        self.nuke, self.cls = nuke, cls
        self.knobs: dict[str, FakeKnob] = {}
        if cls == "Read":
            for name in ("file", "first", "last", "origfirst", "origlast", "colorspace", "raw", "frame_mode", "frame",
                         "before", "after"):
                self.knobs[name] = FakeKnob(name)
        for name, value in knobs.items():
            if name != "name":
                self.knobs.setdefault(name, FakeKnob(name)).setValue(value)
        self._name = knobs.get("name", cls + "1")
        self.inputs: dict[int, FakeNode] = {}
        self.pos = (0, 0)
        self.children: list[FakeNode] = []
        nuke.created.append(self)

    def Class(self) -> str:
        return self.cls

    def name(self) -> str:
        return self._name

    def knob(self, name: str):
        return self.knobs.get(name)

    def __getitem__(self, name: str) -> FakeKnob:
        return self.knobs[name]

    def addKnob(self, knob: FakeKnob) -> None:
        self.knobs[knob.name] = knob

    def input(self, i: int):
        return self.inputs.get(i)

    def setInput(self, i: int, node) -> None:
        self.inputs[i] = node

    def xpos(self) -> int:
        return self.pos[0]

    def ypos(self) -> int:
        return self.pos[1]

    def setXYpos(self, x: int, y: int) -> None:
        self.pos = (x, y)

    def begin(self) -> None:
        self.nuke.context.append(self)

    def end(self) -> None:
        self.nuke.context.pop()


class FakeProgressTask:
    def __init__(self, nuke: FakeNuke, title: str) -> None:
        self.title, self.progress, self.message, self.cancelled = title, [], "", False
        nuke.tasks.append(self)

    def setProgress(self, value: int) -> None:
        self.progress.append(value)

    def setMessage(self, text: str) -> None:
        self.message = text

    def isCancelled(self) -> bool:
        return self.cancelled


class FakeMenu:
    def __init__(self, name: str) -> None:
        self.name, self.items = name, []

    def addMenu(self, name: str) -> FakeMenu:
        menu = FakeMenu(name)
        self.items.append(menu)
        return menu

    def addCommand(self, name: str, command: str) -> None:
        self.items.append((name, command))


class FakeNuke(types.ModuleType):
    """Just enough of ``nuke``; ``executeInMainThread`` queues calls for :meth:`process_events`."""

    def __init__(self) -> None:
        super().__init__("nuke")
        self.created: list[FakeNode] = []
        self.context: list[FakeNode] = []
        self.tasks: list[FakeProgressTask] = []
        self.messages: list[str] = []
        self.menus: dict[str, FakeMenu] = {}
        self.posted: queue.Queue = queue.Queue()
        self.post_threads: set[int] = set()
        self.selected = None
        self.answer = ""
        self.nodes = types.SimpleNamespace(**{cls: self._factory(cls) for cls in ("Read", "Group", "Input", "Output")})
        self.Tab_Knob = self.Enumeration_Knob = self.PyScript_Knob = FakeKnob
        self.Int_Knob = FakeIntKnob
        self.File_Knob = self.String_Knob = FakeTextKnob

    def _factory(self, cls: str):
        def make(**knobs) -> FakeNode:
            node = FakeNode(self, cls, **knobs)
            if self.context:
                self.context[-1].children.append(node)
            return node
        return make

    def executeInMainThread(self, call, args=(), kwargs={}) -> None:
        self.post_threads.add(threading.get_ident())
        self.posted.put((call, args, kwargs))

    def process_events(self, until, timeout: float = 120) -> None:
        """The UI loop: run posted calls on this thread until ``until()`` or the timeout."""
        end = time.monotonic() + timeout
        while not until():
            try:
                call, args, kwargs = self.posted.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError("the job did not finish in time") from None
            call(*args, **kwargs)

    def ProgressTask(self, title: str) -> FakeProgressTask:
        return FakeProgressTask(self, title)

    def message(self, text: str) -> None:
        self.messages.append(text)

    def filename(self, node) -> str:
        return node["file"].value()

    def selectedNode(self):
        if self.selected is None:
            raise ValueError("no node selected")
        return self.selected

    def getFilename(self, title: str) -> str:
        return self.answer

    def menu(self, name: str) -> FakeMenu:
        return self.menus.setdefault(name, FakeMenu(name))

    def reads(self) -> list[FakeNode]:
        return [n for n in self.created if n.cls == "Read"]


@pytest.fixture
def nuke(monkeypatch) -> FakeNuke:
    fake = FakeNuke()
    monkeypatch.setitem(sys.modules, "nuke", fake)
    return fake


def read_node(nuke: FakeNuke, file: str, first: int, last: int, origfirst: int, origlast: int, **knobs) -> FakeNode:
    node = nuke.nodes.Read(file=file, first=first, last=last, origfirst=origfirst, origlast=origlast, **knobs)
    node.setXYpos(100, 200)
    return node


def python_command(code: str) -> list[str]:
    """A stand-in for the vfxswap executable: ``python -c CODE`` (its arguments follow)."""
    return [sys.executable, "-c", code]


# ------------------------------------------------------------------------------------------ logic
class TestFrames:
    def test_a_movie_read_maps_its_range_through_start_frame(self, nuke_script):
        read = nuke_script.read_info({"file": "/plates/A001.mov", "first": 5, "last": 7, "origfirst": 1, "origlast": 72})
        assert not read.is_sequence
        assert nuke_script.frame_args(read) == ["--frames", "5-7", "--start-frame", "1"]

    def test_a_sequence_keeps_its_file_numbers(self, nuke_script):
        read = nuke_script.read_info({"file": "/plates/sh010.%04d.exr", "first": 1001, "last": 1100,
                                      "origfirst": 1001, "origlast": 1100, "colorspace": "ACES - ACEScg",
                                      "frame_mode": "offset", "frame": "-1000"})
        assert read.is_sequence and read.knob("colorspace") == "ACES - ACEScg"
        assert nuke_script.frame_args(read) == ["--frames", "1001-1100"]

    def test_the_range_is_clamped_to_the_media(self, nuke_script):
        read = nuke_script.read_info({"file": "/p/sh.####.dpx", "first": 990, "last": 1010, "origfirst": 1001,
                                      "origlast": 1050})
        assert nuke_script.frame_range(read) == (1001, 1010)
        outside = nuke_script.read_info({"file": "/p/sh.####.dpx", "first": 1, "last": 5, "origfirst": 1001,
                                         "origlast": 1050})
        with pytest.raises(nuke_script.VfxSwapNukeError, match="outside its media"):
            nuke_script.frame_args(outside)

    @pytest.mark.parametrize("values, message", [
        ({"file": "", "first": 1, "last": 2}, "has no file"),
        ({"file": "/p/sh.%V.####.exr", "first": 1, "last": 2}, "stereo"),
        ({"file": "/p/sh.####.exr", "first": 9, "last": 2}, "is empty"),
    ])
    def test_unusable_reads_are_one_line_errors(self, nuke_script, values, message):
        with pytest.raises(nuke_script.VfxSwapNukeError, match=message):
            nuke_script.read_info(values)


class TestPaths:
    @pytest.mark.parametrize("file, name", [("/a/plate.%04d.exr", "plate"), ("/a/sh010_plate.####.dpx", "sh010_plate"),
                                            ("/a/A001_C002.mov", "A001_C002"), ("/a/shot_v2.1001.exr", "shot_v2.1001")])
    def test_shot_name(self, nuke_script, file, name):
        assert nuke_script.shot_name(file) == name

    def test_templates_fill_dir_name_ext_and_model(self, nuke_script):
        read = nuke_script.read_info({"file": "/shots/sh010/plate.%04d.exr", "first": 1001, "last": 1010})
        out, matte = nuke_script.output_paths(read, model="/models/actor_v3/")
        assert out == "/shots/sh010/vfxswap/plate_swap.####.exr"
        assert matte == "/shots/sh010/vfxswap/plate_matte.####.png"
        out, _ = nuke_script.output_paths(read, model="/models/actor_v3",
                                          output="/renders/{name}_{model}_{first}.%04d.{ext}")
        assert out == "/renders/plate_actor_v3_1001.%04d.exr"

    def test_movies_are_written_as_png_sequences(self, nuke_script):
        read = nuke_script.read_info({"file": "/shots/A001.mov", "first": 1, "last": 10})
        assert nuke_script.output_paths(read, model="m")[0] == "/shots/vfxswap/A001_swap.####.png"

    @pytest.mark.parametrize("template, message", [("{dir}/{shot}.####.exr", "bad output template"),
                                                   ("{dir}/{name}_swap.mov", "frame token")])
    def test_bad_templates(self, nuke_script, template, message):
        read = nuke_script.read_info({"file": "/s/p.####.exr", "first": 1, "last": 2})
        with pytest.raises(nuke_script.VfxSwapNukeError, match=message):
            nuke_script.output_paths(read, model="m", output=template)


class TestCommand:
    def test_convert_command(self, nuke_script):
        read = nuke_script.read_info({"file": "/p/A001.mov", "first": 5, "last": 7, "origfirst": 1, "origlast": 72})
        cmd = nuke_script.convert_command(read, model="/m", output="/o/s.####.png", matte="/o/m.####.png",
                                          executable=["/venv/bin/vfxswap"],
                                          options={"color": "mkl", "feather": 12, "reference": "", "alpha": False,
                                                   "skip_existing": True})
        assert cmd == ["/venv/bin/vfxswap", "convert", "/p/A001.mov", "-m", "/m", "-o", "/o/s.####.png",
                       "--matte", "/o/m.####.png", "--frames", "5-7", "--start-frame", "1", "--color", "mkl",
                       "--feather", "12", "--skip-existing", "--progress", "json"]

    def test_the_command_is_one_the_cli_accepts(self, nuke_script):
        from vfxswap.cli import build_parser

        read = nuke_script.read_info({"file": "/p/sh.####.exr", "first": 1001, "last": 1010})
        cmd = nuke_script.convert_command(read, model="/m", output="/o/s.####.exr", matte="/o/m.####.png",
                                          options={"faces": "reference", "reference": "/r.png", "color": "rct",
                                                   "mask": "learned*hull", "blend": "poisson", "erode": 2,
                                                   "feather": 8, "input_colorspace": "ACEScg",
                                                   "ocio_config": "ocio://studio-config-latest"})
        args = build_parser().parse_args(cmd[1:])
        assert (args.frames, args.reference, args.blend, args.erode, args.progress) == ("1001-1010", "/r.png",
                                                                                         "poisson", 2, "json")
        assert args.input_colorspace == "ACEScg"

    def test_group_choices_are_the_librarys(self, nuke_script):
        hints = typing.get_type_hints(ConvertConfig)
        assert set(nuke_script.COLOR_METHODS) == set(COLOR_METHODS.names())
        assert set(nuke_script.BLEND_METHODS) == set(BLEND_METHODS.names())
        assert set(nuke_script.MASK_SOURCES) == set(MASK_SOURCES)
        assert set(nuke_script.FACE_CHOICES) == set(typing.get_args(hints["faces"]))
        assert nuke_script.COLOR_METHODS[0] == ConvertConfig().color and nuke_script.MASK_SOURCES[0] == ConvertConfig().mask

    def test_nuke_python_variables_stay_in_nuke(self, nuke_script):
        env = nuke_script.child_env({"PATH": "/bin", "PYTHONPATH": "/nuke/lib", "PYTHONHOME": "/nuke", "OCIO": "x"})
        assert env == {"PATH": "/bin", "OCIO": "x"}

    @pytest.mark.parametrize("line, percent", [('{"progress": 45, "done": 32, "total": 72}\n', 45),
                                               ("Progress: 45%", None), ("{not json", None), ('{"x": 1}', None)])
    def test_parse_progress(self, nuke_script, line, percent):
        assert nuke_script.parse_progress(line) == percent

    def test_the_scripts_run_on_nuke_13s_python(self):
        for path in (ROOT / "nodes/nuke/vfxswap_nuke.py", ROOT / "nodes/nuke/menu.py"):
            ast.parse(path.read_text(), feature_version=(3, 7))


# ---------------------------------------------------------------------------------- background job
class TestBackgroundJob:
    def test_start_returns_at_once_and_results_come_through_post(self, nuke_script, nuke, tmp_path):
        gate = tmp_path / "go"
        code = ("import json, os, sys, time\n"
                "print(json.dumps({'progress': 0}), flush=True)\n"
                f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)\n"
                "print('working', flush=True)\n"
                "for p in (50, 100): print(json.dumps({'progress': p}), flush=True)\n")
        progress, done = [], []
        on_ui = []
        job = nuke_script.BackgroundJob(python_command(code), post=nuke.executeInMainThread,
                                        on_progress=lambda p: (progress.append(p), on_ui.append(threading.get_ident())),
                                        on_done=lambda r: (done.append(r), on_ui.append(threading.get_ident())))
        job.start()
        assert job.running and not done  # the command waits for the gate: start did not
        gate.touch()
        nuke.process_events(until=lambda: bool(done))
        assert progress == [0, 50, 100] and done[0].ok and done[0].output == ("working",)
        assert set(on_ui) == {threading.get_ident()}  # callbacks ran on the UI thread...
        assert threading.get_ident() not in nuke.post_threads  # ...posted from the worker

    def test_a_failure_reports_vfxswaps_error_line(self, nuke_script, nuke):
        code = ("import sys\nprint('Progress: nothing')\n"
                "print('vfxswap: error: no such file: /p/x.mov', file=sys.stderr)\nsys.exit(3)")
        job = nuke_script.BackgroundJob(python_command(code), post=nuke.executeInMainThread).start()
        result = job.wait(60)
        assert result.returncode == 3 and not result.ok
        assert result.error == "vfxswap: error: no such file: /p/x.mov"

    def test_a_missing_executable_is_reported_not_raised(self, nuke_script, nuke):
        done = []
        job = nuke_script.BackgroundJob(["/no/such/vfxswap", "convert"], post=nuke.executeInMainThread,
                                        on_done=done.append).start()
        nuke.process_events(until=lambda: bool(done))
        assert done[0] is job.result
        assert done[0].returncode == 127 and "cannot run /no/such/vfxswap" in done[0].error

    def test_cancel_stops_the_process(self, nuke_script, nuke):
        job = nuke_script.BackgroundJob(python_command("import time\nprint('started', flush=True)\ntime.sleep(60)"),
                                        post=nuke.executeInMainThread).start()
        time.sleep(0.2)
        start = time.monotonic()
        job.cancel()
        result = job.wait(30)
        assert result.cancelled and not result.ok and result.error == "" and time.monotonic() - start < 10


# -------------------------------------------------------------------------------------- host layer
class TestInNuke:
    def test_swap_a_movie_read_and_get_plate_and_matte_reads(self, nuke_script, nuke, demo_model, tmp_path):
        """The real vfxswap converts frames 5-7 of the sample plate (Nuke numbers movie frames from 1)."""
        read = read_node(nuke, str(SAMPLES / "plate.mp4"), 5, 7, 1, 72, colorspace="rec709", frame_mode="start at",
                         frame="1")
        job = nuke_script.start_swap(read, model=str(demo_model), output=str(tmp_path / "{name}_swap.####.{ext}"),
                                     matte=str(tmp_path / "{name}_matte.####.png"), executable=VFXSWAP,
                                     options={"faces": "largest", "backend": "onnxruntime"})
        assert job.running
        task = nuke.tasks[0]
        assert task.title == "VFXSwap plate" and "--start-frame 1" in task.message
        nuke.process_events(until=lambda: job.result is not None and nuke.posted.empty(), timeout=240)
        assert job.result.ok, job.result.output
        assert not nuke.messages and task.progress and task.progress[-1] == 100
        plate, matte = nuke.reads()[1:]
        assert plate["file"].value() == str(tmp_path / "plate_swap.####.png")
        assert [plate[k].value() for k in ("first", "last", "origfirst", "origlast")] == [5, 7, 5, 7]
        assert plate["colorspace"].value() == "rec709" and plate["frame_mode"].value() == "start at"
        assert matte["file"].value() == str(tmp_path / "plate_matte.####.png") and matte["raw"].value() is True
        assert [matte[k].value() for k in ("first", "last")] == [5, 7]
        assert plate.pos == (220, 200) and matte.pos == (340, 200)
        # Nuke frame 5 is movie frame index 4: the written file is that frame outside the matte.
        assert sorted(p.name for p in tmp_path.glob("plate_swap.*.png")) == [f"plate_swap.000{n}.png" for n in (5, 6, 7)]
        with open_source(SAMPLES / "plate.mp4") as src:
            movie = next(f.image for f in src.frames(start=4))
        swapped = cv2.cvtColor(cv2.imread(str(tmp_path / "plate_swap.0005.png")), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(str(tmp_path / "plate_matte.0005.png"), cv2.IMREAD_GRAYSCALE)
        outside = mask == 0
        assert 0.8 < outside.mean() < 1.0
        assert np.array_equal(swapped[outside], movie[outside])

    def test_a_failed_convert_shows_the_error_and_adds_no_read(self, nuke_script, nuke, tmp_path):
        read = read_node(nuke, str(tmp_path / "missing.####.exr"), 1001, 1002, 1001, 1002)
        job = nuke_script.start_swap(read, model=str(tmp_path / "no_model"), output=str(tmp_path / "o.####.exr"),
                                     matte=str(tmp_path / "m.####.png"), executable=VFXSWAP)
        nuke.process_events(until=lambda: job.result is not None and nuke.posted.empty())
        assert len(nuke.reads()) == 1
        assert len(nuke.messages) == 1 and "vfxswap: error: " in nuke.messages[0]
        assert "Traceback" not in "\n".join(job.result.output)

    def test_cancelling_the_progress_task_stops_the_job(self, nuke_script, nuke, tmp_path):
        code = "import json, time\nfor p in range(100):\n    print(json.dumps({'progress': p}), flush=True); time.sleep(0.1)"
        read = read_node(nuke, "/p/sh.####.exr", 1, 2, 1, 2)
        job = nuke_script.start_swap(read, model="/m", output=str(tmp_path / "o.####.exr"),
                                     matte=str(tmp_path / "m.####.png"), executable=python_command(code))
        nuke.tasks[0].cancelled = True
        nuke.process_events(until=lambda: job.result is not None and nuke.posted.empty(), timeout=60)
        assert job.result.cancelled and len(nuke.reads()) == 1 and not nuke.messages

    def test_the_group_builds_its_command_from_its_knobs(self, nuke_script, nuke, tmp_path):
        group = nuke_script.create_group()
        assert group.cls == "Group" and [c.cls for c in group.children] == ["Input", "Output"]
        assert group.children[1].input(0) is group.children[0]
        assert group["color"].choices == list(nuke_script.COLOR_METHODS) and group["feather"].value() == 8
        assert group["swap"].value() == "import vfxswap_nuke\nvfxswap_nuke.swap_from_group(nuke.thisNode())"
        read = read_node(nuke, "/shots/sh010/plate.%04d.exr", 1001, 1003, 1001, 1003)
        dot = FakeNode(nuke, "Dot")
        dot.setInput(0, read)
        group.setInput(0, dot)
        argv_file = tmp_path / "argv.txt"
        group["model"].setValue("/models/actor")
        group["reference"].setValue("/refs/actor.png")
        group["color"].setValue("mkl")
        group["output"].setValue(str(tmp_path / "{name}.####.{ext}"))
        group["matte"].setValue(str(tmp_path / "{name}_matte.####.png"))
        group["executable"].setValue(f"{sys.executable} -c \"import sys; open(r'{argv_file}', 'w').write(repr(sys.argv[1:]))\"")
        job = nuke_script.swap_from_group(group)
        nuke.process_events(until=lambda: job.result is not None and nuke.posted.empty())
        argv = ast.literal_eval(argv_file.read_text())
        assert argv[:7] == ["convert", "/shots/sh010/plate.%04d.exr", "-m", "/models/actor", "-o",
                            str(tmp_path / "plate.####.exr"), "--matte"]
        assert argv[argv.index("--faces") + 1] == "reference" and argv[argv.index("--reference") + 1] == "/refs/actor.png"
        assert argv[argv.index("--color") + 1] == "mkl" and argv[argv.index("--frames") + 1] == "1001-1003"
        assert "--input-colorspace" not in argv  # empty knobs are left out
        assert len(nuke.reads()) == 3 and nuke.reads()[1]["file"].value() == str(tmp_path / "plate.####.exr")

    def test_swap_selected_needs_a_read(self, nuke_script, nuke):
        assert nuke_script.swap_selected() is None
        nuke.selected = FakeNode(nuke, "Blur")
        assert nuke_script.swap_selected() is None
        assert nuke.messages == ["VFXSwap: select a Read node first"] * 2

    def test_menus(self, nuke_script, nuke):
        nuke_script.add_menus()
        (menu,) = nuke.menus["Nodes"].items
        assert menu.name == "VFXSwap"
        assert [name for name, _ in menu.items] == ["VFXSwap", "Swap selected Read"]
        for _, command in menu.items:
            compile(command, "<menu>", "exec")
