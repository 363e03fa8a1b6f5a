"""`vfxswap plan`, `run-plan`, `assemble` and `verify` end to end on the sample plate and demo model."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vfxswap.io import open_source, open_writer
from vfxswap.timeline.emitters import read_key_values

from .test_convert_cli import audio_packets
from .test_extract_cli import PLATE, PLATE_SEQ, REFERENCE, assert_one_line_error, vfxswap

# Pin the runner: `--backend auto` times the runners and may pick another on another node.
CONVERT = ["--reference", REFERENCE, "--backend", "onnxruntime"]
VENV_BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    return {**os.environ, "VFXSWAP": f"{sys.executable} -m vfxswap",
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def decode(path: Path) -> tuple[list[np.ndarray], list[float]]:
    with av.open(str(path)) as c:
        frames = [(f.to_ndarray(format="rgb24"), float(f.time)) for f in c.decode(video=0)]
    return [f for f, _ in frames], [t for _, t in frames]


@pytest.fixture(scope="module")
def model(demo_model) -> Path:
    return demo_model


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent to reap it counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


class TestShellPlan:
    def test_chunked_render_equals_a_single_run_bit_for_bit(self, model, tmp_path):
        script = tmp_path / "plan.sh"
        result = vfxswap("plan", PLATE, "-m", model, "-o", tmp_path / "chunked" / "out.####.png", "--frames",
                         "1001-1016", "--chunk", "8", "--format", "shell", "--plan-out", script, *CONVERT)
        assert result.returncode == 0, result.stderr
        assert "2 convert tasks of up to 8 frames, 0 assemble" in result.stdout
        run = subprocess.run(["bash", str(script)], env=_env(), capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.stdout.count("converted 8 frames") == 2
        single = vfxswap("convert", PLATE, "-m", model, "-o", tmp_path / "single" / "out.####.png", "--frames",
                         "1001-1016", *CONVERT, "--progress", "none")
        assert single.returncode == 0, single.stderr
        for n in range(1001, 1017):
            chunked = cv2.imread(str(tmp_path / "chunked" / f"out.{n}.png"), cv2.IMREAD_UNCHANGED)
            one = cv2.imread(str(tmp_path / "single" / f"out.{n}.png"), cv2.IMREAD_UNCHANGED)
            assert chunked is not None and one is not None
            assert np.array_equal(chunked, one), f"frame {n} differs: max {np.abs(chunked.astype(int) - one).max()}"
        check = vfxswap("verify", tmp_path / "chunked" / "out.####.png", "--frames", "1001-1016")
        assert check.returncode == 0 and "all 16 frames present and readable" in check.stdout


@pytest.fixture(scope="module")
def ran_plans(model, tmp_path_factory) -> dict[str, Path]:
    """The same movie plan (frames 1001-1006, chunks of 3, lossless) run by each executor."""
    outputs = {}
    for executor in ("local", "ray"):
        folder = tmp_path_factory.mktemp(executor)
        plan = folder / "plan.json"
        made = vfxswap("plan", PLATE, "-m", model, "-o", folder / "swap.mkv", "--codec", "ffv1", "--frames",
                       "1001-1006", "--chunk", "3", "--plan-out", plan, *CONVERT)
        assert made.returncode == 0, made.stderr
        run = vfxswap("run-plan", plan, "--executor", executor, "--workers", "2", "--progress", "plain", timeout=400)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"ran 3 tasks (3 ok, 0 failed, 0 skipped) with {executor}" in run.stdout
        assert "Progress: 100% (3/3 tasks)" in run.stdout
        outputs[executor] = folder
    return outputs


class TestRunPlan:
    def test_local_and_ray_give_identical_movies(self, ran_plans):
        local, ray = (ran_plans[k] / "swap.mkv" for k in ("local", "ray"))
        local_frames, local_times = decode(local)
        ray_frames, ray_times = decode(ray)
        assert len(local_frames) == 6 and local_times == ray_times
        assert all(np.array_equal(a, b) for a, b in zip(local_frames, ray_frames))
        assert audio_packets(local) == audio_packets(ray) and audio_packets(local)
        plate, plate_times = decode(PLATE)
        assert np.allclose(np.array(local_times) - local_times[0], np.array(plate_times[:6]), atol=0.0011)

    def test_outputs_verify_and_logs_are_kept(self, ran_plans):
        for folder in ran_plans.values():
            check = vfxswap("verify", folder / "swap.mkv", "--frames", "1001-1006")
            assert check.returncode == 0, check.stdout
            assert sorted(p.name for p in (folder / "plan.logs").iterdir()) == [
                "swap.1001-1003.log", "swap.1004-1006.log", "swap.assemble.log"]
            chunks = sorted(p.name for p in (folder / "swap.chunks").glob("*.mkv"))
            assert chunks == ["swap.1001-1003.mkv", "swap.1004-1006.mkv"]

    def test_a_failing_task_is_retried_then_reported(self, model, tmp_path):
        plate = tmp_path / "plate.mp4"
        shutil.copy(PLATE, plate)
        plan = tmp_path / "plan.json"
        made = vfxswap("plan", plate, "-m", model, "-o", tmp_path / "out.####.png", "--frames", "1001-1002",
                       "--chunk", "2", "--plan-out", plan, *CONVERT)
        assert made.returncode == 0, made.stderr
        plate.unlink()  # the plate goes offline between planning and rendering
        run = vfxswap("run-plan", plan, "--retries", "1", "--progress", "none", "--logs", tmp_path / "logs")
        assert_one_line_error(run, 1, "task out.1001-1002 failed after 2 attempts (exit 3)", "no such file")
        log = (tmp_path / "logs" / "out.1001-1002.log").read_text()
        assert log.count("=== attempt") == 2 and log.count("=== exit 3") == 2

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal is Linux's")
    @pytest.mark.parametrize(("sig", "code"), [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, 130)])
    def test_a_killed_run_plan_takes_its_convert_task_with_it(self, model, tmp_path, sig, code):
        plan = tmp_path / "plan.json"
        # a silent task (no progress lines): one that prints would die of a broken pipe with run-plan anyway
        made = vfxswap("plan", PLATE, "-m", model, "-o", tmp_path / "out" / "out.####.png", "--chunk", "72",
                       "--progress", "none", "--plan-out", plan, *CONVERT)
        assert made.returncode == 0, made.stderr
        runner = subprocess.Popen([sys.executable, "-m", "vfxswap.cli", "run-plan", str(plan), "--progress", "none",
                                   "--logs", str(tmp_path / "logs")], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        child = None
        try:
            child = _wait_for(lambda: next(iter(_children(runner.pid)), None), 120, "the convert task to start")
            _wait_for(lambda: any((tmp_path / "out").glob("out.*.png")), 120, "the first converted frame")
            assert _alive(child)
            runner.send_signal(sig)  # SIGKILL: run-plan gets no chance to stop its task itself
            assert runner.wait(timeout=60) == code
            _wait_for(lambda: not _alive(child), 30, f"convert task {child} to die with run-plan")
        finally:
            for pid in (runner.pid, child):
                if pid is not None and _alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            runner.wait(timeout=30)
        frames = sorted((tmp_path / "out").glob("out.*.png"))
        assert 0 < len(frames) < 72  # stopped mid-shot, not finished
        assert all(cv2.imread(str(f)) is not None for f in frames)  # what it left under final names is whole

    def test_a_malformed_plan_is_refused(self, tmp_path):
        plan = tmp_path / "plan.json"
        plan.write_text('{"format": "vfxswap.plan", "version": 1}')
        assert_one_line_error(vfxswap("run-plan", plan), 3, "malformed vfxswap plan")


class TestOpenJD:
    def test_template_runs_under_openjd(self, model, tmp_path):
        template = tmp_path / "plan.openjd.json"
        made = vfxswap("plan", PLATE, "-m", model, "-o", tmp_path / "swap.mkv", "--codec", "ffv1", "--frames",
                       "1001-1003", "--chunk", "2", "--format", "openjd", "--plan-out", template, *CONVERT)
        assert made.returncode == 0, made.stderr
        check = subprocess.run([str(VENV_BIN / "openjd"), "check", str(template)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        run = subprocess.run([str(VENV_BIN / "openjd"), "run", str(template), "--step", "swap assemble",
                              "--run-dependencies", "-p", f"VfxswapCommand={VENV_BIN / 'vfxswap'}"],
                             capture_output=True, text=True, timeout=300, env=_env())
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr
        assert "openjd_progress: 100" in run.stdout
        frames, _ = decode(tmp_path / "swap.mkv")
        assert len(frames) == 3
        assert len(list((tmp_path / "swap.chunks").glob("*.mkv"))) == 2  # the farm's chunking, not ours


class TestPlanCli:
    def test_deadline_files(self, model, tmp_path):
        result = vfxswap("plan", PLATE, "-m", model, "-o", tmp_path / "swap.mov", "--chunk", "25", "--format",
                         "deadline", "--plan-out", tmp_path / "dl", *CONVERT)
        assert result.returncode == 0, result.stderr
        job = read_key_values((tmp_path / "dl" / "swap.job_info.job").read_text())
        plugin = read_key_values((tmp_path / "dl" / "swap.plugin_info.job").read_text())
        assert job["Frames"] == "1001-1072" and job["ChunkSize"] == "25" and job["Plugin"] == "CommandLine"
        assert "--frames <STARTFRAME>-<ENDFRAME>" in plugin["Arguments"]
        assert f"--reference {REFERENCE}" in plugin["Arguments"] and "--progress deadline" in plugin["Arguments"]
        assert (tmp_path / "dl" / "swap.assemble.job_info.job").is_file()
        assert os.access(tmp_path / "dl" / "submit_deadline.sh", os.X_OK)

    def test_json_on_stdout_for_a_sequence(self, model):
        result = vfxswap("plan", PLATE_SEQ, "-m", model, "-o", "/renders/out.####.exr", "--chunk", "3")
        assert result.returncode == 0, result.stderr
        plan = json.loads(result.stdout)
        assert [t["frames"] for t in plan["tasks"]] == ["1001-1003", "1004-1006", "1007-1008"]
        assert plan["tasks"][0]["argv"][:3] == ["vfxswap", "convert", str(PLATE_SEQ)]

    def test_a_cut_plans_each_selected_clip(self, model, tmp_path):
        cut = PLATE.parent / "cut.otio"
        result = vfxswap("plan", cut, "-m", model, "--chunk", "4", "--output-dir", tmp_path / "media", *CONVERT)
        assert result.returncode == 0, result.stderr
        plan = json.loads(result.stdout)
        assert plan["shots"] and plan["name"] == "cut"
        for shot in plan["shots"]:
            tasks = [t for t in plan["tasks"] if t["shot"] == shot["name"] and t["kind"] == "convert"]
            frames = [n for t in tasks for n in range(int(t["frames"].split("-")[0]), int(t["frames"].split("-")[-1]) + 1)]
            assert frames == list(range(shot["first"], shot["last"] + 1))
            assert all(t["output"].startswith(str(tmp_path / "media")) for t in tasks)
            assert all(t["argv"][t["argv"].index("--reference") + 1] == str(REFERENCE) for t in tasks)
        refused = vfxswap("plan", cut, "-m", model, "-o", tmp_path / "x.mov")
        assert_one_line_error(refused, 2, "-o and --frames apply to a plate")

    @pytest.mark.parametrize("extra, code, fragment", [
        (["--format", "deadline"], 2, "pass --plan-out FOLDER"),
        (["--frames", "1001-1005,1010"], 2, "one contiguous range"),
        (["--chunk", "0"], 2, "--chunk must be an int >= 1"),
    ])
    def test_bad_requests(self, model, tmp_path, extra, code, fragment):
        result = vfxswap("plan", PLATE, "-m", model, "-o", tmp_path / "out.mov", *extra)
        assert_one_line_error(result, code, fragment)

    def test_missing_input(self, model, tmp_path):
        result = vfxswap("plan", tmp_path / "none.mov", "-m", model, "-o", tmp_path / "out.mov")
        assert_one_line_error(result, 3, "no such file")


@pytest.fixture(scope="module")
def chunk_renders(tmp_path_factory) -> dict[str, Path]:
    """Lossless chunks of the whole plate as `convert --frames` writes them (the plate's audio over
    each chunk, settings beside it), a mismatched chunk, and the same frames rendered in one go."""
    folder = tmp_path_factory.mktemp("assemble")
    with open_source(PLATE) as src:
        info, frames = src.info, list(src.frames())
    chunks = folder / "swap.chunks"
    for a, b in ((0, 24), (24, 48), (48, 72)):
        name = f"swap.{1001 + a}-{1000 + b}"
        with open_writer(chunks / f"{name}.mkv", info, codec="ffv1", source=str(PLATE)) as writer:
            for frame in frames[a:b]:
                writer.write(frame)
        settings = {"source": str(PLATE), "settings": {"frames": f"{1001 + a}-{1000 + b}", "start_frame": 1001}}
        (chunks / f"{name}.vfxswap.json").write_text(json.dumps(settings))
    with open_writer(folder / "single.mkv", info, codec="ffv1", source=str(PLATE)) as writer:
        for frame in frames:
            writer.write(frame)
    small = folder / "small.chunks"
    shutil.copytree(chunks, small)
    odd = small / "swap.1025-1048.mkv"
    odd.unlink()
    import dataclasses

    with open_writer(odd, dataclasses.replace(info, width=640, height=360), codec="ffv1") as writer:
        for frame in frames[24:48]:
            writer.write(dataclasses.replace(frame, image=np.ascontiguousarray(frame.image[::2, ::2])))
    return {"chunks": chunks, "single": folder / "single.mkv", "mismatched": small}


class TestAssembleCli:
    def test_chunks_join_into_the_single_run(self, chunk_renders, tmp_path):
        out = tmp_path / "swap.mkv"
        result = vfxswap("assemble", chunk_renders["chunks"], "-o", out, "--frames", "1001-1072", "--progress", "none")
        assert result.returncode == 0, result.stderr
        assert "assembled 3 chunks: 72 frames" in result.stdout
        joined, joined_times = decode(out)
        single, single_times = decode(chunk_renders["single"])
        assert len(joined) == 72 and joined_times == single_times
        assert all(np.array_equal(a, b) for a, b in zip(joined, single))
        assert audio_packets(out) == audio_packets(PLATE)  # copied once from the plate the settings name
        settings = json.loads((tmp_path / "swap.vfxswap.json").read_text())
        assert settings["settings"]["frames"] == "1001-1072" and len(settings["chunks"]) == 3

    def test_no_audio(self, chunk_renders, tmp_path):
        out = tmp_path / "swap.mkv"
        result = vfxswap("assemble", *sorted(chunk_renders["chunks"].glob("*.mkv")), "-o", out, "--no-audio")
        assert result.returncode == 0, result.stderr
        assert "0 audio packets" in result.stdout
        with av.open(str(out)) as c:
            assert not c.streams.audio

    def test_mismatched_chunks_are_refused(self, chunk_renders, tmp_path):
        result = vfxswap("assemble", chunk_renders["mismatched"], "-o", tmp_path / "swap.mkv")
        assert_one_line_error(result, 3, "cannot join swap.1025-1048.mkv", "width 1280 vs 640")
        assert not list(tmp_path.iterdir())

    def test_missing_frames_are_refused(self, chunk_renders, tmp_path):
        result = vfxswap("assemble", chunk_renders["chunks"], "-o", tmp_path / "swap.mkv", "--frames", "1001-1080")
        assert_one_line_error(result, 3, "no chunk holds frames 1073-1080")


class TestVerifyCli:
    @pytest.fixture
    def render(self, tmp_path) -> Path:
        for path in PLATE_SEQ.parent.glob("plate.*.png"):
            shutil.copy(path, tmp_path / path.name.replace("plate.", "out."))
        return tmp_path / "out.####.png"

    def test_all_present(self, render):
        result = vfxswap("verify", render, "--frames", "1001-1008")
        assert result.returncode == 0 and "all 8 frames present and readable" in result.stdout

    def test_deleted_and_truncated_frames(self, render):
        (render.parent / "out.1003.png").unlink()
        damaged = render.parent / "out.1005.png"
        damaged.write_bytes(damaged.read_bytes()[:5000])
        result = vfxswap("verify", render, "--frames", "1001-1008")
        assert result.returncode == 1, result.stderr
        assert "2 of 8 frames to render again" in result.stdout
        assert "requeue     --frames 1003,1005" in result.stdout
        report = json.loads(vfxswap("verify", render, "--frames", "1001-1008", "--json").stdout)
        assert report["missing"] == "1003" and report["unreadable"] == "1005" and report["ok"] is False

    def test_bad_range(self, render):
        assert_one_line_error(vfxswap("verify", render, "--frames", "1008-1001"), 2, "runs backwards")
