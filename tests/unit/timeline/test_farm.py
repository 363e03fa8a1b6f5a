"""Farm plans: chunking, the JSON round trip and every emitter, checked by the tools that read them."""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from vfxswap.errors import ConfigError, MediaError
from vfxswap.timeline import assemble, emitters, farm
from vfxswap.timeline.farm import plan_tasks
from vfxswap.types import SwapJob

MODEL = "/models/demo model"
# Paths a farm meets: spaces, quotes, shell metacharacters.
MOVIE_SHOT = SwapJob("sh010", "/plates/sh 010/plate.mov", "/renders/sh 010/swap.mov", 1001, 1017)
SEQ_SHOT = SwapJob("sh020", "/plates/sh020/plate.####.exr", "/renders/it's $HOME/out.####.exr", 1001, 1016, start_frame=1)


def _plan(*shots: SwapJob, chunk: int = 8, args=("--backend", "onnxruntime", "--reference", "/refs/a b.png")):
    return plan_tasks(shots or (MOVIE_SHOT, SEQ_SHOT), chunk=chunk, model=MODEL, convert_args=args, name="show x")


class TestShot:
    def test_range_and_kind(self):
        assert MOVIE_SHOT.frames == "1001-1017" and MOVIE_SHOT.is_movie and not SEQ_SHOT.is_movie

    @pytest.mark.parametrize("kwargs, fragment", [
        ({"first": 1010, "last": 1001}, "runs backwards"),
        ({"first": -1}, "non-negative"),
        ({"name": ""}, "needs a name"),
        ({"start_frame": 1.5}, "start_frame"),
    ])
    def test_bad_shots_are_refused(self, kwargs, fragment):
        values = {"name": "a", "source": "s.mov", "output": "o.mov", "first": 1, "last": 2} | kwargs
        with pytest.raises(ConfigError, match=fragment):
            SwapJob(**values)


class TestPlanTasks:
    def test_movie_chunks_then_assemble(self):
        plan = _plan(MOVIE_SHOT)
        convert = [t for t in plan.tasks if t.kind == "convert"]
        assert [t.frames for t in convert] == ["1001-1008", "1009-1016", "1017"]
        assert [t.output for t in convert] == [f"/renders/sh 010/swap.chunks/swap.{r}.mov"
                                               for r in ("1001-1008", "1009-1016", "1017")]
        assert convert[1].argv == ("vfxswap", "convert", "/plates/sh 010/plate.mov", "-m", MODEL, "-o",
                                   "/renders/sh 010/swap.chunks/swap.1009-1016.mov", "--frames", "1009-1016",
                                   "--start-frame", "1001", "--backend", "onnxruntime", "--reference",
                                   "/refs/a b.png", "--progress", "plain")
        assemble = plan.tasks[-1]
        assert assemble.kind == "assemble" and assemble.depends == tuple(t.name for t in convert)
        assert assemble.argv == ("vfxswap", "assemble", "/renders/sh 010/swap.chunks", "-o",
                                 "/renders/sh 010/swap.mov", "--frames", "1001-1017", "--progress", "plain")

    def test_sequences_write_the_final_pattern_and_need_no_merge(self):
        plan = _plan(SEQ_SHOT)
        assert [t.kind for t in plan.tasks] == ["convert", "convert"]
        assert {t.output for t in plan.tasks} == {SEQ_SHOT.output}
        assert all("--start-frame" in t.argv and t.argv[t.argv.index("--start-frame") + 1] == "1"
                   for t in plan.tasks)

    def test_every_frame_is_planned_once(self):
        plan = _plan(MOVIE_SHOT, chunk=5)
        frames = [n for t in plan.tasks if t.kind == "convert" for n in farm.parse_frames(t.frames)]
        assert frames == list(range(1001, 1018))

    @pytest.mark.parametrize("kwargs, fragment", [
        ({"chunk": 0}, "--chunk"),
        ({"convert_args": ("--frames", "1-2")}, "--frames is set per task"),
        ({"convert_args": ("--progress=bar",)}, "--progress is set per task"),
    ])
    def test_bad_plans_are_refused(self, kwargs, fragment):
        options = {"chunk": 8, "model": MODEL} | kwargs
        with pytest.raises(ConfigError, match=fragment):
            plan_tasks([MOVIE_SHOT], **options)

    def test_shot_names_must_be_unique(self):
        with pytest.raises(ConfigError, match="repeated: sh010"):
            plan_tasks([MOVIE_SHOT, MOVIE_SHOT], chunk=8, model=MODEL)


class TestJson:
    def test_round_trip(self):
        plan = _plan()
        text = farm.to_json(plan)
        data = json.loads(text)
        assert data["format"] == "vfxswap.plan" and data["version"] == farm.PLAN_VERSION
        assert farm.plan_from_json(text) == plan

    def test_read_plan_from_disk(self, tmp_path):
        path = tmp_path / "plan.json"
        path.write_text(farm.to_json(_plan()), encoding="utf-8")
        assert farm.read_plan(path) == _plan()

    @pytest.mark.parametrize("mutate, fragment", [
        (lambda d: "{not json", "is not JSON"),
        (lambda d: json.dumps({**d, "format": "other"}), "is not a vfxswap plan"),
        (lambda d: json.dumps({**d, "version": 99}), "version 99 plan"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "tasks"}), "missing key 'tasks'"),
        (lambda d: json.dumps({**d, "tasks": [{**d["tasks"][0], "argv": ["rm", "-rf", "/"]}]}),
         "plan tasks are vfxswap convert/assemble commands"),
        (lambda d: json.dumps({**d, "tasks": [{**d["tasks"][0], "depends": ["nope"]}]}), "unknown tasks nope"),
    ])
    def test_malformed_plans_are_refused(self, mutate, fragment):
        data = json.loads(farm.to_json(_plan()))
        with pytest.raises(MediaError, match=re.escape(fragment)):
            farm.plan_from_json(mutate(data), origin="p.json")

    def test_missing_plan_file(self, tmp_path):
        with pytest.raises(MediaError, match="cannot read plan"):
            farm.read_plan(tmp_path / "none.json")


class TestShell:
    def test_script_runs_every_task_with_its_exact_arguments(self, tmp_path):
        """Run the script with VFXSWAP pointing at a recorder: the words it receives are the argv."""
        plan = _plan()
        script = tmp_path / "plan.sh"
        script.write_text(emitters.to_shell(plan), encoding="utf-8")
        recorder = tmp_path / "record.py"
        calls = tmp_path / "calls.jsonl"
        recorder.write_text("import json, sys\n"
                            f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
        result = subprocess.run(["sh", str(script)], env={"VFXSWAP": f"{sys.executable} {recorder}", "PATH": "/usr/bin:/bin"},
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        received = [tuple(json.loads(line)) for line in calls.read_text().splitlines()]
        assert received == [t.argv[1:] for t in plan.tasks]

    def test_the_first_failure_stops_the_script(self, tmp_path):
        script = tmp_path / "plan.sh"
        script.write_text(emitters.to_shell(_plan()), encoding="utf-8")
        result = subprocess.run(["sh", str(script)], env={"VFXSWAP": "false", "PATH": "/usr/bin:/bin"},
                                capture_output=True, text=True)
        assert result.returncode != 0
        assert "set -eu" in script.read_text()


def _deadline_argv(arguments: str, start: int, end: int) -> list[str]:
    """What the CommandLine plugin runs: tokens replaced, <QUOTE> as a double quote."""
    text = arguments.replace("<STARTFRAME>", str(start)).replace("<ENDFRAME>", str(end)).replace("<QUOTE>", '"')
    return shlex.split(text)


class TestDeadline:
    def test_files_are_key_value_and_chunks_match_the_plan(self):
        plan = _plan()
        files = emitters.to_deadline(plan)
        assert set(files) == {"sh010.job_info.job", "sh010.plugin_info.job", "sh010.assemble.job_info.job",
                              "sh010.assemble.plugin_info.job", "sh020.job_info.job", "sh020.plugin_info.job",
                              "submit_deadline.sh"}
        for name, text in files.items():
            if name.endswith(".job"):
                assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9]*=[^\n]*", line) for line in text.splitlines()), name
        for shot in plan.shots:
            job = emitters.read_key_values(files[f"{shot.name}.job_info.job"])
            plugin = emitters.read_key_values(files[f"{shot.name}.plugin_info.job"])
            assert job["Plugin"] == "CommandLine" and job["Frames"] == f"{shot.first}-{shot.last}"
            assert job["ChunkSize"] == "8" and "<STARTFRAME>-<ENDFRAME>" in plugin["Arguments"]
            # Deadline's chunks of Frames/ChunkSize run exactly the plan's commands (progress for Deadline)
            frames = list(range(shot.first, shot.last + 1))
            chunks = [frames[i:i + 8] for i in range(0, len(frames), 8)]
            tasks = [t for t in plan.tasks if t.shot == shot.name and t.kind == "convert"]
            for chunk, task in zip(chunks, tasks, strict=True):
                argv = [plugin["Executable"], *_deadline_argv(plugin["Arguments"], chunk[0], chunk[-1])]
                expected = list(task.argv[:-1]) + ["deadline"]
                if len(chunk) == 1:  # Deadline names a one-frame chunk A-A
                    expected = [a.replace(f".{chunk[0]}.mov", f".{chunk[0]}-{chunk[0]}.mov") for a in expected]
                    expected[expected.index("--frames") + 1] = f"{chunk[0]}-{chunk[0]}"
                assert argv == expected
        assemble = emitters.read_key_values(files["sh010.assemble.plugin_info.job"])
        assert _deadline_argv(assemble["Arguments"], 0, 0)[:2] == ["assemble", "/renders/sh 010/swap.chunks"]

    def test_submit_script_chains_the_assemble_job(self, tmp_path):
        files = emitters.to_deadline(_plan())
        script = files["submit_deadline.sh"]
        assert "-SubmitMultipleJobs -dependent -job sh010.job_info.job sh010.plugin_info.job -job " \
               "sh010.assemble.job_info.job sh010.assemble.plugin_info.job" in script
        path = tmp_path / "submit.sh"
        path.write_text(script)
        assert subprocess.run(["sh", "-n", str(path)]).returncode == 0

    def test_read_key_values_refuses_other_lines(self):
        with pytest.raises(ConfigError, match="line 2 is not key=value"):
            emitters.read_key_values("A=1\nnot a pair\n")


class TestOpenJD:
    def test_template_validates_and_chunks_cover_each_shot(self):
        from openjd.model import StepParameterSpaceIterator, create_job, decode_job_template

        plan = _plan()
        template = decode_job_template(template=json.loads(emitters.to_openjd(plan)), supported_extensions=["TASK_CHUNKING"])
        job = create_job(job_template=template, job_parameter_values={})
        steps = {s.name: s for s in job.steps}
        assert list(steps) == ["sh010 convert", "sh010 assemble", "sh020 convert"]
        assert steps["sh010 assemble"].dependencies[0].dependsOn == "sh010 convert"
        for shot in plan.shots:
            values = [t["Frames"].value for t in StepParameterSpaceIterator(space=steps[f"{shot.name} convert"].parameterSpace)]
            frames = [n for v in values for n in farm.parse_frames(v)]
            assert frames == list(range(shot.first, shot.last + 1))  # contiguous chunks, each frame once
            assert all(len(farm.parse_frames(v)) <= plan.chunk for v in values)
        run = steps["sh010 convert"].script.actions.onRun
        args = [str(a) for a in run.args]
        assert args[args.index("--frames") + 1] == "{{Task.Param.Frames}}"
        assert "/renders/sh 010/swap.chunks/swap.{{Task.Param.Frames}}.mov" in args

    def test_openjd_check_accepts_the_file(self, tmp_path):
        path = tmp_path / "plan.openjd.json"
        path.write_text(emitters.to_openjd(_plan()), encoding="utf-8")
        openjd = Path(sys.executable).with_name("openjd")
        result = subprocess.run([str(openjd), "check", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "passes validation" in result.stdout

    def test_format_string_markers_are_refused(self):
        shot = SwapJob("a", "/p/{{x}}.mov", "/o/a.mov", 1, 2)
        with pytest.raises(ConfigError, match="format-string markers"):
            emitters.to_openjd(plan_tasks([shot], chunk=1, model=MODEL))


class TestOpenCue:
    def test_script_compiles_and_holds_the_chunk_commands(self):
        plan = _plan()
        text = emitters.to_opencue(plan)
        compile(text, "plan_opencue.py", "exec")
        tree = ast.parse(text)
        shots = next(ast.literal_eval(node.value) for node in tree.body
                     if isinstance(node, ast.Assign) and node.targets[0].id == "SHOTS")
        assert "chunk=8" in text and "depend_all(convert)" in text and "use_pycuerun=False" in text
        for shot, entry in zip(plan.shots, shots, strict=True):
            assert entry["range"] == f"{shot.first}-{shot.last}"
            # the cue joins the words with spaces and substitutes the tokens per chunk
            line = " ".join(entry["convert"]).replace("#FRAME_START#", "1009").replace("#FRAME_END#", "1016")
            task = next(t for t in plan.tasks if t.shot == shot.name and t.frames == "1009-1016")
            assert shlex.split(line) == list(task.argv[1:-1]) + ["deadline"]
            assert (entry["assemble"] is not None) == shot.is_movie


class TestChunks:
    def test_chunk_names(self):
        assert farm.chunk_path("/a/swap.mov", "1001-1008") == "/a/swap.chunks/swap.1001-1008.mov"
        assert farm.chunk_frames("swap.1001-1003.mov") == [1001, 1002, 1003]
        assert farm.chunk_frames("swap.1017.mkv") == [1017]
        assert farm.chunk_frames("swap.mov") is None and farm.chunk_frames("swap.1001-1003.png") is None

    def test_folders_are_read_in_frame_order(self, tmp_path):
        for name in ("swap.998-1000.mov", "swap.1001-1003.mov", "swap.1001-1003.vfxswap.json",
                     ".tmp-swap.1004-1006.mov"):
            (tmp_path / name).write_bytes(b"x")
        chunks = assemble.find_chunks([tmp_path])
        assert [Path(c).name for c in chunks] == ["swap.998-1000.mov", "swap.1001-1003.mov"]
        assert assemble.check_coverage(chunks, range(998, 1004)) == list(range(998, 1004))

    def test_gaps_overlaps_and_mixed_folders_are_refused(self, tmp_path):
        for name in ("swap.1001-1003.mov", "swap.1003-1005.mov", "swap.1008-1009.mov"):
            (tmp_path / name).write_bytes(b"x")
        chunks = assemble.find_chunks([tmp_path])
        with pytest.raises(MediaError, match="both hold frame 1003"):
            assemble.check_coverage(chunks, None)
        with pytest.raises(MediaError, match="no chunk holds frames 1004-1007"):
            assemble.check_coverage([chunks[0], chunks[2]], range(1001, 1010))
        (tmp_path / "other.1001-1002.mov").write_bytes(b"x")
        with pytest.raises(MediaError, match="chunks of several outputs"):
            assemble.find_chunks([tmp_path])
        with pytest.raises(MediaError, match="no such chunk"):
            assemble.find_chunks([tmp_path / "nope.mov"])
