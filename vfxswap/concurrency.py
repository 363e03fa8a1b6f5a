"""Small threading helpers: a producer thread feeding an iterator, and a consumer thread draining a queue.

Both use bounded queues (memory stays bounded), a private end sentinel, a stop event, and re-raise the
first worker error in the caller.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def background_iter(items: Iterable[T], *, maxsize: int = 8, name: str = "producer") -> Iterator[T]:
    """Iterate ``items`` in a background thread, yielding them here in order.

    Closing the returned generator (or an exception in the consumer) stops the producer and closes
    ``items`` if it is a generator; chains of ``background_iter`` therefore form a pipeline of stages.
    """
    q: queue.Queue = queue.Queue(maxsize=maxsize)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer thread
            put(_Failure(exc))
        finally:
            # Close an upstream generator here, in the thread that iterated it, so that chained
            # stages shut down in order (a chained background_iter joins its own thread).
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


class BackgroundWorker(Generic[T]):
    """Calls ``fn(item)`` for each submitted item on one background thread, in submission order.

    Use as a context manager: leaving the block waits for the queue to drain and re-raises the first
    error of ``fn``; :meth:`submit` re-raises it as soon as it is seen.
    """

    def __init__(self, fn: Callable[[T], None], *, maxsize: int = 16, name: str = "consumer") -> None:
        self._fn = fn
        self._q: queue.Queue = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if self._error is None:
                try:
                    self._fn(item)
                except BaseException as exc:
                    self._error = exc

    def submit(self, item: T) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(item)

    def __enter__(self) -> BackgroundWorker[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._q.put(_END)
        self._thread.join()
        if self._error is not None and exc_info[0] is None:
            raise self._error
