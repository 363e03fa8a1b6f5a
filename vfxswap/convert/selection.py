"""Which frames a partial convert (``--frames``, ``--skip-existing``) must read, swap and write.

A farm renders a shot in chunks, and each chunk must come out exactly as the same frames of one run
over the whole plate. The converter's state is short-lived by design: detection runs on keyframes
at fixed frame numbers (``first``, ``first + every``, ...), tracking restarts its landmarks at every
keyframe, the smoother looks ``lookahead`` frames both ways and the colour smoother averages the
last ``color_window`` frames. So a frame ``w`` to write depends only on the frames from the keyframe
at or before ``w - lookahead - (color_window - 1)`` to ``w + lookahead``: those are read and tracked
(handles), and those in ``w - (color_window - 1) .. w`` are swapped as well, for the colour history.

Frame numbers are the ones ``--frames`` uses: a movie's frame ``i`` is ``start_frame + i``, a
sequence keeps its file numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable


class FrameSelection:
    """The frames to write and the handles they need.

    Args:
        wanted: whether frame ``n`` is to be written (``None``: every frame).
        first: number of the source's first frame (detection keyframes count from it).
        every: detection interval in frames (>= 1).
        lookahead: frames the smoother looks back and ahead (>= 0).
        color_window: frames the colour smoother averages (>= 1).
        first_wanted, last_wanted: lowest and highest frame numbers ``wanted`` can accept (``None``:
            unbounded); reading starts at the keyframe the first needs and stops after
            ``last_wanted + lookahead``.
    """

    def __init__(self, wanted: Callable[[int], bool] | None, *, first: int, every: int, lookahead: int,
                 color_window: int, first_wanted: int | None = None, last_wanted: int | None = None) -> None:
        self.first, self.every, self.lookahead = first, every, lookahead
        self.history = color_window - 1
        start = first if first_wanted is None else max(first, first_wanted - lookahead - self.history)
        self.first_read = start - (start - first) % every
        self.last_read = None if last_wanted is None else last_wanted + lookahead
        self._wanted = functools.lru_cache(maxsize=4096)(wanted) if wanted is not None else None

    @property
    def everything(self) -> bool:
        """Whether every frame is written (no handles to compute)."""
        return self._wanted is None

    def keyframe(self, n: int) -> bool:
        """Whether faces are detected (rather than tracked) on frame ``n``."""
        return (n - self.first) % self.every == 0

    def write(self, n: int) -> bool:
        """Whether frame ``n`` goes to the output."""
        return self._wanted is None or self._wanted(n)

    def read(self, n: int) -> bool:
        """Whether frame ``n`` is tracked: written, or a handle some written frame depends on.

        ``n`` is needed by a written ``w`` when ``key(w - lookahead - history) <= n <= w + lookahead``,
        i.e. when some ``w`` in ``[n - lookahead, key(n) + every + lookahead + history - 1]`` is written.
        """
        if self._wanted is None:
            return True
        key = n - (n - self.first) % self.every
        return self._any_written(n - self.lookahead, key + self.every + self.lookahead + self.history - 1)

    def swap(self, n: int) -> bool:
        """Whether frame ``n``'s faces go through the model: written, or in a written frame's colour history."""
        return self._wanted is None or self._any_written(n, n + self.history)

    def _any_written(self, lo: int, hi: int) -> bool:
        return any(self._wanted(w) for w in range(max(lo, self.first), hi + 1))

    def past_end(self, n: int) -> bool:
        """Whether no frame from ``n`` on is needed (reading can stop)."""
        return self.last_read is not None and n > self.last_read
