"""When extract detects rather than tracks: every N frames, after a numbering gap, always on stills."""

from __future__ import annotations

from vfxswap.extract import _detection_due


def _detected(numbers, every, kind="sequence"):
    due = _detection_due(every, kind)
    return [n for n in numbers if due(n)]


def test_every_nth_of_contiguous_frames():
    assert _detected(range(1001, 1013), 5) == [1001, 1006, 1011]
    assert _detected(range(0, 4), 1) == [0, 1, 2, 3]


def test_a_gap_in_the_numbering_restarts_detection():
    # src_05, src_17, ...: unrelated pictures numbered with gaps must each be detected
    assert _detected([5, 17, 29, 30, 31, 40], 5) == [5, 17, 29, 40]
    assert _detected([1001, 1002, 1003, 1010, 1011, 1012, 1013, 1014, 1015], 5) == [1001, 1010, 1015]


def test_stills_are_always_detected():
    assert _detected([0, 1, 2, 3], 5, kind="stills") == [0, 1, 2, 3]
