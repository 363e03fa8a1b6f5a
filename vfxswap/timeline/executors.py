"""Run a plan's tasks beyond one process: a local process pool or a Ray cluster.

Each task is one subprocess running its ``vfxswap`` command (``python -m vfxswap ...`` with the
interpreter of the machine that runs it); a task starts once the tasks it depends on succeeded
(a movie's assemble task after its chunks), failures are retried, and a task whose dependency
failed for good is skipped. Outputs are the same whichever executor ran them: the commands are.

Ray is imported here only, when ``executor="ray"``: ``ray.init(address=...)`` joins a cluster
(``None`` starts a local instance with ``workers`` CPUs) and every attempt is a ``@ray.remote``
call that needs one CPU, so Ray may retry a task on another node.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from ..atomic import open_for_append, write_error
from ..errors import ConfigError, EngineError
from .farm import Plan, Task

Executor = Literal["local", "ray"]
EXECUTORS: tuple[str, ...] = ("local", "ray")
ProgressFn = Callable[[int, int], None]
_TAIL_LINES = 20


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """How one task went.

    Attributes:
        name: the task's name.
        status: ``ok``, ``failed`` (after every attempt) or ``skipped`` (a dependency failed).
        returncode: exit code of the last attempt (``None`` when skipped).
        attempts: how many times it ran.
        seconds: wall time of all attempts.
        tail: the last lines of the last attempt's output (stdout and stderr).
    """

    name: str
    status: Literal["ok", "failed", "skipped"]
    returncode: int | None
    attempts: int
    seconds: float
    tail: str = ""


@dataclasses.dataclass(frozen=True)
class RunReport:
    """What :func:`run_plan` did: a result per task, in plan order."""

    executor: str
    results: tuple[TaskResult, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether every task succeeded."""
        return all(r.status == "ok" for r in self.results)

    @property
    def failed(self) -> tuple[TaskResult, ...]:
        return tuple(r for r in self.results if r.status == "failed")

    @property
    def skipped(self) -> tuple[TaskResult, ...]:
        return tuple(r for r in self.results if r.status == "skipped")


def task_command(argv: Sequence[str]) -> list[str]:
    """The process to start for a plan task: ``vfxswap ARGS`` -> ``[sys.executable, -m, vfxswap, ARGS]``."""
    if not argv or argv[0] != "vfxswap":
        raise ConfigError(f"plan tasks run vfxswap commands, got {' '.join(argv[:1]) or 'an empty command'}")
    return [sys.executable, "-m", "vfxswap", *argv[1:]]


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> Callable[[], None] | None:
    """Linux: a ``preexec_fn`` asking the kernel to send the child SIGTERM when its parent dies,
    even by SIGKILL (vfxswap turns SIGTERM into a clean interrupt); ``None`` elsewhere.

    The kernel signals when the parent *thread* that started the child ends: every executor waits
    for its child in that thread. ``prctl`` is looked up here, before the fork, so the child only
    makes the call (and exits if the parent already died in between)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(128 + signal.SIGTERM)

    return preexec


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to a task: to its whole process group (the task and anything it started) when
    it leads one, else to the process."""
    if process.poll() is not None:
        return
    try:
        if hasattr(os, "killpg") and os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def execute_task(argv: Sequence[str], env: dict[str, str] | None = None,
                 on_start: Callable[[subprocess.Popen], None] | None = None) -> tuple[int, str]:
    """Run one task command to completion in a subprocess (what every executor calls).

    On Linux the child gets SIGTERM when this process dies, even by SIGKILL, so no task outlives
    the run, and leads its own process group (a terminal's Ctrl-C reaches this process, which stops
    its tasks with :func:`stop_process`). Elsewhere it stays in this process's group, so a signal to
    the group still reaches it.

    Args:
        argv: the task's command (``vfxswap ...``).
        env: the environment (default: this process's).
        on_start: called with the process once started (to stop it on interrupt).

    Returns:
        ``(exit code, combined stdout and stderr)``.
    """
    process_env = dict(os.environ if env is None else env)
    process_env.setdefault("PYTHONUNBUFFERED", "1")
    die_with_parent = _die_with_parent()
    try:
        process = subprocess.Popen(task_command(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True, errors="replace", env=process_env,
                                   start_new_session=die_with_parent is not None, preexec_fn=die_with_parent)
    except OSError as exc:
        return 127, f"cannot start {sys.executable}: {exc.strerror or exc}\n"
    if on_start is not None:
        on_start(process)
    try:
        output, _ = process.communicate()
    except BaseException:  # interrupted while waiting (Ray cancels, Ctrl-C): take the task down too
        stop_process(process)
        raise
    return process.returncode, output


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-_TAIL_LINES:])


class _LocalPool:
    """Runs attempts on a thread pool, each in its own subprocess (stopped on interrupt)."""

    def __init__(self, workers: int) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vfxswap-task")
        self._processes: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def _run(self, argv: list[str]) -> tuple[int, str]:
        def started(process: subprocess.Popen) -> None:
            with self._lock:
                self._processes.add(process)

        try:
            return execute_task(argv, on_start=started)
        finally:
            with self._lock:
                self._processes = {p for p in self._processes if p.poll() is None}

    def submit(self, task: Task) -> concurrent.futures.Future:
        return self._pool.submit(self._run, list(task.argv))

    def close(self, cancel: bool = False) -> None:
        if cancel:
            with self._lock:
                for process in self._processes:
                    stop_process(process)  # vfxswap turns SIGTERM into a clean interrupt
        self._pool.shutdown(wait=True, cancel_futures=cancel)


class _RayPool:
    """Runs attempts as Ray tasks (one CPU each) on a local instance or a cluster."""

    def __init__(self, workers: int, address: str | None, gpus: float) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray executor needs Ray: pip install 'vfxswap[ray]' (or use --executor local)") \
                from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            try:
                ray.init(address=address or None, num_cpus=None if address else workers, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
            except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; say what failed in one line
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise EngineError(f"cannot start or join {where}: {' '.join(str(exc).split())[:300]}") from None
            self._started = True
        # A task asking no GPU gets CUDA_VISIBLE_DEVICES="" from Ray: ask for them on GPU nodes.
        self._remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(execute_task)
        self._refs: list[Any] = []

    def submit(self, task: Task) -> concurrent.futures.Future:
        ref = self._remote.remote(list(task.argv))
        self._refs.append(ref)
        return ref.future()

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for ref in self._refs:
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - finished or unknown refs
                    pass
        if self._started:
            self._ray.shutdown()


def run_plan(plan: Plan, *, executor: Executor = "local", workers: int = 2, retries: int = 1,
             address: str | None = None, gpus: float = 0, progress: ProgressFn | None = None,
             log_dir: str | os.PathLike[str] | None = None) -> RunReport:
    """Run every task of ``plan``; a task at a time per worker, dependencies first.

    Args:
        plan: the plan (:func:`vfxswap.timeline.farm.read_plan`).
        executor: ``local`` (subprocesses on this machine) or ``ray``.
        workers: tasks running at once (Ray on a local instance: its CPUs too).
        retries: extra attempts of a failing task (0 = run once).
        address: Ray cluster address (``ray://host:10001``, ``auto``); ``None`` starts a local
            instance (unless Ray is already initialised in this process).
        gpus: Ray only: GPUs each task asks for (Ray hides the GPUs from tasks that ask none).
        progress: ``progress(tasks_done, tasks_total)`` after each finished (or skipped) task.
        log_dir: folder for each task's output (``TASK.log``, every attempt appended).

    Returns:
        A :class:`RunReport`; failures are reported there, not raised.

    Raises:
        ConfigError: an unknown executor, ``workers`` < 1, ``retries`` < 0, or Ray not installed.
        EngineError: Ray cannot start or reach the cluster.
        OutputError: ``log_dir`` cannot be created.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers!r}")
    if not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"--retries must be >= 0, got {retries!r}")
    if gpus < 0 or (gpus and executor != "ray"):
        raise ConfigError(f"--gpus-per-task must be >= 0 and applies to --executor ray, got {gpus!r} with {executor}")
    logs = Path(log_dir) if log_dir is not None else None
    if logs is not None:
        from ..errors import OutputError

        try:
            logs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the log folder {logs}: {exc.strerror}") from None
    start = time.perf_counter()
    pool: _LocalPool | _RayPool = _RayPool(workers, address, gpus) if executor == "ray" else _LocalPool(workers)
    scheduler = _Scheduler(plan.tasks, pool, workers=workers, retries=retries, progress=progress, logs=logs)
    try:
        results = scheduler.run()
    except BaseException:
        pool.close(cancel=True)
        raise
    pool.close()
    return RunReport(executor=executor, results=results, seconds=time.perf_counter() - start)


class _Scheduler:
    """Submits ready tasks (dependencies done) up to ``workers`` at a time; retries failures."""

    def __init__(self, tasks: Sequence[Task], pool: _LocalPool | _RayPool, *, workers: int, retries: int,
                 progress: ProgressFn | None, logs: Path | None) -> None:
        self.tasks = list(tasks)
        self.pool = pool
        self.workers = workers
        self.retries = retries
        self.progress = progress
        self.logs = logs
        self.results: dict[str, TaskResult] = {}
        self.attempts: dict[str, int] = {}
        self.started: dict[str, float] = {}

    def _ready(self, task: Task) -> bool:
        return all(self.results.get(d) is not None and self.results[d].status == "ok" for d in task.depends)

    def _blocked(self, task: Task) -> bool:
        return any(self.results.get(d) is not None and self.results[d].status != "ok" for d in task.depends)

    def _log(self, task: Task, attempt: int, code: int, output: str) -> None:
        if self.logs is None:
            return
        path = self.logs / f"{task.name}.log"
        with open_for_append(path) as f:  # never through a symlink
            try:
                f.write(f"=== attempt {attempt}: {' '.join(task.argv)}\n{output}"
                        f"{'' if output.endswith(chr(10)) or not output else chr(10)}=== exit {code}\n")
                f.flush()
            except OSError as exc:
                raise write_error(path, exc) from None

    def _finish(self, result: TaskResult) -> None:
        self.results[result.name] = result
        if self.progress is not None:
            self.progress(len(self.results), len(self.tasks))

    def run(self) -> tuple[TaskResult, ...]:
        pending = list(self.tasks)
        running: dict[concurrent.futures.Future, Task] = {}
        while pending or running:
            for task in list(pending):
                if self._blocked(task):
                    pending.remove(task)
                    self._finish(TaskResult(task.name, "skipped", None, 0, 0.0, "a task it depends on failed"))
                elif len(running) < self.workers and self._ready(task):
                    pending.remove(task)
                    running[self._submit(task)] = task
            if not running:
                if pending:  # nothing can start: a dependency cycle or an unknown name
                    for task in pending:
                        self._finish(TaskResult(task.name, "skipped", None, 0, 0.0, "its dependencies never ran"))
                    pending.clear()
                break
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                task = running.pop(future)
                try:
                    code, output = future.result()
                except Exception as exc:  # noqa: BLE001 - a worker died (Ray): count it as a failed attempt
                    code, output = -1, f"the worker failed: {' '.join(str(exc).split())[:500]}\n"
                attempt = self.attempts[task.name]
                self._log(task, attempt, code, output)
                if code == 0:
                    self._finish(TaskResult(task.name, "ok", 0, attempt, self._seconds(task), _tail(output)))
                elif attempt <= self.retries:
                    running[self._submit(task)] = task
                else:
                    self._finish(TaskResult(task.name, "failed", code, attempt, self._seconds(task), _tail(output)))
        return tuple(self.results[t.name] for t in self.tasks)

    def _submit(self, task: Task) -> concurrent.futures.Future:
        self.attempts[task.name] = self.attempts.get(task.name, 0) + 1
        self.started.setdefault(task.name, time.perf_counter())
        return self.pool.submit(task)

    def _seconds(self, task: Task) -> float:
        return time.perf_counter() - self.started[task.name]
