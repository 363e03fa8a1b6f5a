"""FrameSelection: the handles a partial convert needs, checked against the rule it implements."""

from __future__ import annotations

import pytest

from vfxswap.convert.selection import FrameSelection


def _needed_by(w: int, *, first: int, every: int, lookahead: int, history: int) -> set[int]:
    start = max(first, w - lookahead - history)
    key = start - (start - first) % every
    return set(range(key, w + lookahead + 1))


@pytest.mark.parametrize("every,lookahead,window", [(1, 0, 1), (5, 3, 1), (5, 3, 4), (7, 2, 3)])
def test_read_and_swap_sets_match_the_dependency_rule(every, lookahead, window):
    wanted = {1040, 1041, 1042, 1060, 1075}
    sel = FrameSelection(wanted.__contains__, first=1001, every=every, lookahead=lookahead, color_window=window,
                         first_wanted=min(wanted), last_wanted=max(wanted))
    expected = set().union(*(_needed_by(w, first=1001, every=every, lookahead=lookahead, history=window - 1)
                             for w in wanted))
    frames = range(1001, 1100)
    assert {n for n in frames if sel.read(n)} == expected
    assert {n for n in frames if sel.swap(n)} == {n for w in wanted for n in range(w - window + 1, w + 1)}
    assert {n for n in frames if sel.write(n)} == wanted
    assert sel.first_read == min(expected) and sel.first_read <= min(n for n in frames if sel.read(n))
    assert sel.past_end(max(wanted) + lookahead + 1) and not sel.past_end(max(wanted) + lookahead)
    assert sel.keyframe(min(expected))  # tracking always starts on a detection


def test_everything_reads_every_frame():
    sel = FrameSelection(None, first=0, every=5, lookahead=3, color_window=2)
    assert sel.everything and all(sel.read(n) and sel.swap(n) and sel.write(n) for n in range(20))
    assert [n for n in range(12) if sel.keyframe(n)] == [0, 5, 10] and not sel.past_end(10**9)


def test_detection_runs_on_keyframes_and_after_numbering_gaps():
    import numpy as np

    from vfxswap.convert.stages import DetectEvery
    from vfxswap.faces.analysis import open_analyzer
    from vfxswap.types import Frame, FrameWork

    sel = FrameSelection(None, first=1001, every=5, lookahead=3, color_window=1)
    stage = DetectEvery(open_analyzer("dlib"), sel.keyframe, 1.0)
    blank = np.zeros((48, 64, 3), np.uint8)
    numbers = [1001, 1002, 1003, 1004, 1005, 1006, 1007, 1010, 1011, 1012, 1016]  # files 1008-9, 1013-15 missing
    detected = [n for n in numbers
                if stage(FrameWork(frame=Frame(image=blank, index=n), display=blank, number=n))[1] is not None]
    assert detected == [1001, 1006, 1010, 1011, 1016]  # keyframes 1001, 1006, 1011, 1016; gaps at 1010, 1016
