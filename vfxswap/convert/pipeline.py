"""Threads and bounded queues for the converter (DESIGN.md section 5).

A pipeline is a source iterator and a list of stages; each stage runs on its own thread, joined to the
next by a bounded queue (:func:`vfxswap.concurrency.background_iter`), so memory stays bounded on a
plate of any length. A stage is either a per-item function (``map``) or an iterator transform
(``iter``: batching, look-ahead smoothing). The first error of any stage is re-raised in the caller;
no item is dropped, reordered or duplicated. Each stage's busy time is summed for the report.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

from ..concurrency import background_iter


@dataclasses.dataclass(frozen=True)
class Stage:
    """One pipeline stage: ``fn(item) -> item`` (``map``) or ``fn(items) -> items`` (``iter``; its busy
    time is read from ``fn.seconds`` when it keeps one, and its split from ``fn.part_seconds``, a dict
    reported as ``name.part``)."""

    name: str
    fn: Callable[..., Any]
    kind: Literal["map", "iter"] = "map"


def _timed_map(fn: Callable[[Any], Any], items: Iterable[Any], timings: dict[str, float], name: str) -> Iterator[Any]:
    for item in items:
        start = time.perf_counter()
        out = fn(item)
        timings[name] += time.perf_counter() - start
        yield out


def _timed_iter(items: Iterator[Any], timings: dict[str, float], name: str) -> Iterator[Any]:
    """Time spent producing each item of the source iterator."""
    while True:
        start = time.perf_counter()
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            timings[name] += time.perf_counter() - start
        yield item


def run_pipeline(source: Iterable[Any], stages: list[Stage], sink: Callable[[Any], None], *,
                 maxsize: int = 4, timings: dict[str, float] | None = None) -> dict[str, float]:
    """Push every item of ``source`` through ``stages`` into ``sink`` (called on this thread, in order).

    Returns:
        Seconds each stage (and ``read`` and ``write``) spent working, by name.
    """
    timings = timings if timings is not None else {}
    for name in ("read", *(s.name for s in stages), "write"):
        timings.setdefault(name, 0.0)
    items: Iterator[Any] = background_iter(_timed_iter(iter(source), timings, "read"), maxsize=maxsize, name="read")
    threads = [items]
    for stage in stages:
        if stage.kind == "map":
            body = _timed_map(stage.fn, items, timings, stage.name)
        else:
            body = stage.fn(items)  # its waiting upstream is counted in upstream stages
        items = background_iter(body, maxsize=maxsize, name=stage.name)
        threads.append(items)
    try:
        for item in items:
            start = time.perf_counter()
            sink(item)
            timings["write"] += time.perf_counter() - start
    finally:
        # Stop every stage, downstream first: each close joins that stage's thread, so no stage is
        # still iterating its upstream when that one is closed.
        for thread in reversed(threads):
            thread.close()
    for stage in stages:
        if stage.kind == "iter" and hasattr(stage.fn, "seconds"):
            timings[stage.name] = stage.fn.seconds
        for part, seconds in getattr(stage.fn, "part_seconds", {}).items():
            timings[f"{stage.name}.{part}"] = seconds
    return timings
