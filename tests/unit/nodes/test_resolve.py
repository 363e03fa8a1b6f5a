"""The DaVinci Resolve script (nodes/resolve) without Resolve: its logic (settings, paths, the command) and
the conform against a fake of Resolve's object graph that records calls, with the real ``vfxswap timeline``."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import opentimelineio as otio
import pytest

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "samples"
VFXSWAP = [sys.executable, "-m", "vfxswap.cli"]


# ------------------------------------------------------------------------------------ fake Resolve
def export_sample_cut(path: str) -> None:
    """What Resolve's OTIO export gives for the sample cut: the same clips with absolute media paths."""
    timeline = otio.adapters.read_from_file(str(SAMPLES / "cut.otio"))
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ExternalReference):
            ref.target_url = (SAMPLES / ref.target_url).as_uri()
        elif isinstance(ref, otio.schema.ImageSequenceReference):
            ref.target_url_base = (SAMPLES / ref.target_url_base).as_uri() + "/"
    otio.adapters.write_to_file(timeline, path)


class FakeTimeline:
    def __init__(self, calls: list, name: str, exporter=export_sample_cut) -> None:
        self.calls, self.name, self.exporter = calls, name, exporter

    def GetName(self) -> str:
        return self.name

    def Export(self, path: str, kind, subtype) -> bool:
        self.calls.append(("Export", path, kind, subtype))
        if self.exporter is None:
            return False
        self.exporter(path)
        return True


class FakeMediaPool:
    def __init__(self, project: FakeProject) -> None:
        self.project = project

    def ImportTimelineFromFile(self, path: str, options: dict):
        self.project.calls.append(("ImportTimelineFromFile", path, dict(options)))
        otio.adapters.read_from_file(path)  # Resolve reads it
        timeline = FakeTimeline(self.project.calls, options["timelineName"])
        self.project.timelines.append(timeline)
        return timeline


class FakeProject:
    def __init__(self, calls: list, timelines: list[str]) -> None:
        self.calls = calls
        self.timelines = [FakeTimeline(calls, n) for n in timelines]
        self.current = self.timelines[0] if self.timelines else None
        self.media_pool = FakeMediaPool(self)

    def GetName(self) -> str:
        return "Feature / Reel 1"

    def GetCurrentTimeline(self):
        return self.current

    def SetCurrentTimeline(self, timeline) -> bool:
        self.calls.append(("SetCurrentTimeline", timeline.GetName()))
        self.current = timeline
        return True

    def GetMediaPool(self) -> FakeMediaPool:
        return self.media_pool

    def GetTimelineCount(self) -> int:
        return len(self.timelines)

    def GetTimelineByIndex(self, index: int):
        return self.timelines[index - 1]  # Resolve counts from 1


class FakeResolve:
    EXPORT_OTIO = "EXPORT_OTIO"
    EXPORT_NONE = "EXPORT_NONE"

    def __init__(self, timelines=("Cut", "Cut vfxswap")) -> None:
        self.calls: list = []
        self.project = FakeProject(self.calls, list(timelines))

    def GetProjectManager(self):
        return self

    def GetCurrentProject(self):
        return self.project


@pytest.fixture
def settings(resolve_script, demo_model, tmp_path):
    return resolve_script.settings_from_dict({
        "model": str(demo_model), "executable": VFXSWAP, "work_dir": str(tmp_path / "work"),
        "select": ["name:sh020"], "options": {"faces": "largest", "backend": "onnxruntime"}})


# ------------------------------------------------------------------------------------------ logic
class TestSettings:
    def test_defaults_and_types(self, resolve_script):
        s = resolve_script.settings_from_dict({"model": "/m", "executable": "/venv/bin/vfxswap", "select": "marker:fs",
                                               "handles": "8"})
        assert s.executable == ("/venv/bin/vfxswap",) and s.select == ("marker:fs",) and s.handles == 8
        assert s.ext == "mov" and s.timeline_suffix == " vfxswap" and dict(s.options) == {}

    @pytest.mark.parametrize("data, message", [({"executable": "x"}, 'need "model"'),
                                               ({"model": "/m", "modle": 1}, "unknown settings modle"),
                                               ({"model": "/m", "options": ["--color"]}, '"options" must be an object'),
                                               ({"model": "/m", "handles": "many"}, '"handles" must be a number')])
    def test_bad_settings(self, resolve_script, data, message):
        with pytest.raises(resolve_script.ResolveScriptError, match=message):
            resolve_script.settings_from_dict(data)

    def test_settings_file(self, resolve_script, tmp_path):
        path = tmp_path / "resolve.json"
        with pytest.raises(resolve_script.ResolveScriptError, match='no settings file .* create it with at least'):
            resolve_script.load_settings(str(path))
        path.write_text("{not json")
        with pytest.raises(resolve_script.ResolveScriptError, match="cannot read the settings file"):
            resolve_script.load_settings(str(path))
        path.write_text(json.dumps({"model": "/m", "select": ["color:RED"]}))
        assert resolve_script.load_settings(str(path)).select == ("color:RED",)

    def test_settings_path(self, resolve_script):
        assert resolve_script.default_settings_path({"VFXSWAP_RESOLVE_SETTINGS": "/s.json"}) == "/s.json"
        assert resolve_script.default_settings_path({}).endswith(str(Path(".config") / "vfxswap" / "resolve.json"))


class TestCommand:
    def test_paths_per_project_and_timeline(self, resolve_script):
        s = resolve_script.settings_from_dict({"model": "/m", "work_dir": "/work"})
        paths = resolve_script.job_paths(s, "Feature / Reel 1", "Cut v2 (final)")
        assert paths.folder == "/work/Feature_Reel_1/Cut_v2_final"
        assert paths.cut == "/work/Feature_Reel_1/Cut_v2_final/Cut_v2_final.otio"
        assert paths.output == "/work/Feature_Reel_1/Cut_v2_final/Cut_v2_final_vfxswap.otio"
        assert paths.media == "/work/Feature_Reel_1/Cut_v2_final/media"

    def test_the_command_is_one_the_cli_accepts(self, resolve_script):
        from vfxswap.cli import build_parser

        s = resolve_script.settings_from_dict({
            "model": "/m", "executable": ["/venv/bin/vfxswap"], "work_dir": "/w", "select": ["marker:faceswap"],
            "track": ["V2"], "handles": 8, "media_dir": "/media", "ext": "exr",
            "options": {"reference": "/refs/a.png", "color": "mkl", "alpha": True, "codec": None}})
        cmd = resolve_script.timeline_command(s, resolve_script.job_paths(s, "P", "Cut"))
        assert cmd[:3] == ["/venv/bin/vfxswap", "timeline", "/w/P/Cut/Cut.otio"]
        args = build_parser().parse_args(cmd[1:])
        assert (args.model, args.output, args.output_dir, args.ext) == ("/m", "/w/P/Cut/Cut_vfxswap.otio",
                                                                         "/w/P/Cut/media", "exr")
        assert (args.select, args.track, args.handles, args.media_dir) == (["marker:faceswap"], ["V2"], 8, "/media")
        assert (args.reference, args.color, args.alpha, args.report) == ("/refs/a.png", "mkl", True,
                                                                         "/w/P/Cut/Cut_vfxswap_report.json")
        assert "--codec" not in cmd

    def test_unique_timeline_names(self, resolve_script):
        assert resolve_script.unique_name("Cut vfxswap", ["Cut"]) == "Cut vfxswap"
        assert resolve_script.unique_name("Cut vfxswap", ["Cut vfxswap", "Cut vfxswap 2"]) == "Cut vfxswap 3"

    def test_resolve_python_variables_stay_in_resolve(self, resolve_script):
        assert resolve_script.child_env({"PYTHONHOME": "/r", "PYTHONPATH": "/r/m", "HOME": "/h"}) == {"HOME": "/h"}

    def test_the_script_runs_on_python_3_7(self):
        ast.parse((ROOT / "nodes/resolve/vfxswap_resolve.py").read_text(), feature_version=(3, 7))


# ----------------------------------------------------------------------------------- Resolve calls
class TestConform:
    def test_export_convert_import(self, resolve_script, settings, tmp_path):
        resolve = FakeResolve()
        lines: list[str] = []
        imported = resolve_script.conform_current_timeline(resolve, settings, log=lines.append)
        folder = tmp_path / "work" / "Feature_Reel_1" / "Cut"
        export, import_, current = resolve.calls
        assert export == ("Export", str(folder / "Cut.otio"), "EXPORT_OTIO", "EXPORT_NONE")
        assert import_ == ("ImportTimelineFromFile", str(folder / "Cut_vfxswap.otio"),
                           {"timelineName": "Cut vfxswap 2", "importSourceClips": True,
                            "sourceClipsPath": str(folder / "media")})
        assert current == ("SetCurrentTimeline", "Cut vfxswap 2") and resolve.project.current is imported
        assert any(line.startswith("converted") and "V1/sh020" in line for line in lines)
        cut = otio.adapters.read_from_file(str(folder / "Cut_vfxswap.otio"))
        clips = {c.name: c for c in cut.find_clips()}
        converted = clips["sh020"].media_reference
        assert isinstance(converted, otio.schema.ExternalReference)
        assert converted.target_url == (folder / "media" / "plate_vfxswap.mov").as_uri()
        assert (folder / "media" / "plate_vfxswap.mov").is_file()
        assert clips["sh010"].media_reference.target_url == (SAMPLES / "plate.mp4").as_uri()  # not selected
        assert clips["sh020"].source_range == otio.adapters.read_from_file(str(folder / "Cut.otio")).find_clips()[1].source_range
        report = json.loads((folder / "Cut_vfxswap_report.json").read_text())
        assert [c["status"] for c in report["clips"]] == ["converted"]

    def test_a_failed_conform_imports_nothing(self, resolve_script, settings, tmp_path):
        resolve = FakeResolve()
        bad = resolve_script.Settings(**{**settings.__dict__, "model": str(tmp_path / "no_model")})
        with pytest.raises(resolve_script.ResolveScriptError, match=r"vfxswap timeline failed \(status 3\): vfxswap: error: "):
            resolve_script.conform_current_timeline(resolve, bad, log=lambda line: None)
        assert [c[0] for c in resolve.calls] == ["Export"]

    def test_a_stale_result_is_not_imported(self, resolve_script, settings):
        resolve = FakeResolve()
        paths = resolve_script.job_paths(settings, "Feature / Reel 1", "Cut")
        Path(paths.folder).mkdir(parents=True)
        Path(paths.output).write_text("old")
        with pytest.raises(resolve_script.ResolveScriptError, match="no timeline written"):
            resolve_script.conform_current_timeline(resolve, settings, log=lambda line: None,
                                                    run=lambda command, log: (0, ""))
        assert [c[0] for c in resolve.calls] == ["Export"]

    def test_resolve_states_that_stop_the_script(self, resolve_script, settings):
        old = FakeResolve()
        del FakeResolve.EXPORT_OTIO
        try:
            with pytest.raises(resolve_script.ResolveScriptError, match="18.5 or later"):
                resolve_script.conform_current_timeline(old, settings)
        finally:
            FakeResolve.EXPORT_OTIO = "EXPORT_OTIO"
        with pytest.raises(resolve_script.ResolveScriptError, match="open the timeline"):
            resolve_script.conform_current_timeline(FakeResolve(timelines=()), settings)
        broken = FakeResolve()
        broken.project.current.exporter = None
        with pytest.raises(resolve_script.ResolveScriptError, match="could not export 'Cut'"):
            resolve_script.conform_current_timeline(broken, settings, log=lambda line: None)

    def test_get_resolve(self, resolve_script):
        resolve = FakeResolve()
        assert resolve_script.get_resolve({"resolve": resolve}) is resolve

        class Bmd:
            def scriptapp(self, name):
                return resolve if name == "Resolve" else None

        assert resolve_script.get_resolve({"bmd": Bmd()}) is resolve
