"""When extract detects rather than tracks: every N frames, after a numbering gap, always on stills."""

from __future__ import annotations

from vfxswap.extract import _detection_due


def _detected(numbers, every, kind="sequence", **resume):
    due = _detection_due(every, kind, **resume)
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


def test_a_resumed_run_keeps_the_schedule_of_an_uninterrupted_one():
    whole = _detected(range(1001, 1020), 4)
    for last in range(1001, 1019):  # interrupted after frame `last`, resumed after it
        rest = _detected(range(last + 1, 1020), 4, after=last, first=1001)
        assert rest == [n for n in whole if n > last]
    assert _detected([7, 8], 4, kind="stills", after=6) == [7, 8]
