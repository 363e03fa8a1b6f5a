"""run_plan with the local executor on real (quick) vfxswap commands: order, retries, skips, logs."""

from __future__ import annotations

import os
import sys
from fractions import Fraction

import numpy as np
import pytest

from vfxswap.errors import ConfigError, OutputError
from vfxswap.io import open_writer
from vfxswap.timeline.executors import execute_task, run_plan, task_command
from vfxswap.timeline.farm import Plan, Task
from vfxswap.types import SwapJob
from vfxswap.types import Frame, VideoInfo

INFO = VideoInfo(path="synthetic", kind="movie", width=96, height=64, fps=Fraction(24), time_base=Fraction(1, 24),
                 frame_count=4, pix_fmt="yuv420p", codec="ffv1")


@pytest.fixture
def chunk_dir(tmp_path):
    folder = tmp_path / "out.chunks"
    rng = np.random.default_rng(1)
    with open_writer(folder / "out.1-4.mkv", INFO, codec="ffv1") as writer:
        for i in range(4):
            writer.write(Frame(image=rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), index=i))
    return folder


def _plan(tasks: list[Task]) -> Plan:
    return Plan(name="test", shots=(SwapJob("out", "plate.mov", "out.mkv", 1, 4),), tasks=tuple(tasks), chunk=4,
                model="m")


def _task(name: str, *argv: str, depends: tuple[str, ...] = ()) -> Task:
    return Task(name=name, kind="assemble", shot="out", frames="1-4", output="", argv=("vfxswap", *argv),
                depends=depends)


class TestLocal:
    def test_dependencies_run_first_and_failures_are_retried_then_reported(self, chunk_dir, tmp_path):
        out = tmp_path / "out.mkv"
        tasks = [
            # listed before what it needs: it may only start once "join" succeeded
            _task("check", "verify", str(out), "--frames", "1-4", depends=("join",)),
            _task("join", "assemble", str(chunk_dir), "-o", str(out), "--frames", "1-4", "--no-audio",
                  "--progress", "none"),
            _task("broken", "verify", str(tmp_path / "never.mkv"), "--frames", "1-2"),
            _task("after-broken", "verify", str(out), "--frames", "1-4", depends=("broken",)),
        ]
        calls = []
        report = run_plan(_plan(tasks), workers=2, retries=2, log_dir=tmp_path / "logs",
                          progress=lambda done, total: calls.append((done, total)))
        results = {r.name: r for r in report.results}
        assert [r.name for r in report.results] == ["check", "join", "broken", "after-broken"]
        assert results["join"].status == results["check"].status == "ok"
        assert results["check"].attempts == 1 and "all 4 frames present" in results["check"].tail
        assert results["broken"].status == "failed" and results["broken"].attempts == 3
        assert results["broken"].returncode == 1 and "requeue     --frames 1-2" in results["broken"].tail
        assert results["after-broken"].status == "skipped" and results["after-broken"].returncode is None
        assert not report.ok and [r.name for r in report.failed] == ["broken"]
        assert calls == [(i, 4) for i in range(1, 5)]
        log = (tmp_path / "logs" / "broken.log").read_text()
        assert log.count("=== attempt") == 3 and log.count("=== exit 1") == 3
        assert out.is_file()

    def test_all_ok(self, chunk_dir, tmp_path):
        out = tmp_path / "out.mkv"
        report = run_plan(_plan([_task("join", "assemble", str(chunk_dir), "-o", str(out), "--no-audio")]),
                          workers=1, retries=0)
        assert report.ok and report.results[0].attempts == 1 and report.executor == "local"


    def test_a_task_log_planted_as_a_symlink_is_not_written_through(self, tmp_path):
        victim = tmp_path / "victim.txt"
        victim.write_text("keep me\n")
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "check.log").symlink_to(victim)
        task = _task("check", "verify", str(tmp_path / "never.mkv"), "--frames", "1-2")
        with pytest.raises(OutputError, match="symlink"):
            run_plan(_plan([task]), workers=1, retries=0, log_dir=tmp_path / "logs")
        assert victim.read_text() == "keep me\n"


class TestCommands:
    def test_tasks_run_this_interpreter(self):
        assert task_command(["vfxswap", "verify", "x"]) == [sys.executable, "-m", "vfxswap", "verify", "x"]
        with pytest.raises(ConfigError, match="vfxswap commands"):
            task_command(["rm", "-rf", "/"])

    def test_execute_task_returns_code_and_output(self):
        code, output = execute_task(["vfxswap", "--version"])
        assert code == 0 and output.startswith("vfxswap ")

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tasks lead their own group on Linux")
    def test_each_task_leads_its_own_process_group(self):
        groups = []
        code, _ = execute_task(["vfxswap", "--version"],
                               on_start=lambda p: groups.append((p.pid, os.getpgid(p.pid), os.getpgid(0))))
        (pid, group, ours), = groups
        assert code == 0 and group == pid != ours  # stop_process() signals the group, Ctrl-C here reaches us only


class TestOptions:
    @pytest.mark.parametrize("kwargs, fragment", [
        ({"executor": "slurm"}, "unknown executor"),
        ({"workers": 0}, "--workers"),
        ({"retries": -1}, "--retries"),
        ({"gpus": 1}, "applies to --executor ray"),
    ])
    def test_bad_options(self, kwargs, fragment):
        with pytest.raises(ConfigError, match=fragment):
            run_plan(_plan([]), **kwargs)

    def test_ray_missing_is_a_clear_error(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the package
        with pytest.raises(ConfigError, match=r"needs Ray: pip install 'vfxswap\[ray\]'"):
            run_plan(_plan([]), executor="ray")
