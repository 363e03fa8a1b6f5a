"""Progress reporting for the CLI: a bar on a TTY, plain flushed lines otherwise.

Library code reports progress through a ``progress(done, total)`` callback; this module turns those
calls into output and is used only by ``cli.py`` (and host integrations that want the same lines).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Literal, TextIO

ProgressMode = Literal["auto", "bar", "plain", "deadline", "openjd", "json", "none"]
PROGRESS_MODES: tuple[str, ...] = ("auto", "bar", "plain", "deadline", "openjd", "json", "none")


class Progress:
    """A ``progress(done, total)`` callable writing to ``stream``.

    Args:
        mode: ``bar`` (tqdm), ``plain`` (``Progress: 45% (32/72 frames)`` lines, at most one per whole
            percent and per ``interval`` seconds), ``deadline`` (``Progress: 45%``, what Deadline's
            stdout handler parses), ``openjd`` (``openjd_progress: 45``), ``json``
            (``{"progress": 45, "done": 32, "total": 72}``), ``none``, or ``auto`` (bar on a TTY, else plain).
        unit: what is counted, for the messages.
        speed: plain lines also show the rate and the time left (``, 3.10 steps/s, 4m10s left``; a
            bar shows both anyway). ``total`` may change between calls (an estimate): the bar follows.
    """

    def __init__(self, mode: ProgressMode = "auto", *, unit: str = "frames", stream: TextIO | None = None,
                 interval: float = 1.0, speed: bool = False) -> None:
        self.stream = stream or sys.stdout
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "plain"
        self.mode = mode
        self.unit = unit
        self.interval = interval
        self._bar = None
        self._last_percent = -1
        self._last_time = 0.0
        self.speed = speed
        self._first: tuple[float, int] | None = None  # (time, done) of the first call

    def __call__(self, done: int, total: int) -> None:
        if self.mode == "bar":
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=total or None, unit=f" {self.unit}", file=self.stream, dynamic_ncols=True)
            elif total and self._bar.total != total:
                self._bar.total = total
            self._bar.update(done - self._bar.n)
        elif self.mode != "none":
            percent = int(100 * done / total) if total else 0
            now = time.monotonic()
            if self._first is None:
                self._first = (now, done)
            if percent != self._last_percent and (now - self._last_time >= self.interval or done >= total):
                self._last_percent, self._last_time = percent, now
                self.stream.write(self._line(percent, done, total) + "\n")
                self.stream.flush()

    def _line(self, percent: int, done: int, total: int) -> str:
        if self.mode == "deadline":
            return f"Progress: {percent}%"
        if self.mode == "openjd":
            return f"openjd_progress: {percent}"
        if self.mode == "json":
            return json.dumps({"progress": percent, "done": done, "total": total})
        return f"Progress: {percent}% ({done}/{total} {self.unit}{self._speed(done, total)})"

    def _speed(self, done: int, total: int) -> str:
        if not self.speed or self._first is None or done <= self._first[1]:
            return ""
        per_second = (done - self._first[1]) / max(time.monotonic() - self._first[0], 1e-6)
        left = round(max(total - done, 0) / per_second)
        clock = f"{left // 3600}h{left // 60 % 60:02d}m" if left >= 3600 else f"{left // 60}m{left % 60:02d}s"
        return f", {per_second:.2f} {self.unit}/s, {clock} left"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
