import threading
import time

import numpy as np
import pytest

from vfxswap.convert.pipeline import Stage, run_pipeline
from vfxswap.faces.smooth import TrackSmoother, smooth_window
from vfxswap.types import Face


class TestRunPipeline:
    def test_order_count_and_timings(self):
        out = []

        def slow_square(x):
            time.sleep(0.001 * (x % 3))  # uneven work must not reorder
            return x * x

        def pairs(items):
            for x in items:
                yield x
                yield -x

        timings = run_pipeline(range(50), [Stage("square", slow_square), Stage("pairs", pairs, "iter")], out.append)
        assert out == [v for x in range(50) for v in (x * x, -x * x)]
        assert set(timings) == {"read", "square", "pairs", "write"} and timings["square"] > 0

    def test_first_error_is_raised_and_threads_stop(self):
        before = threading.active_count()

        def boom(x):
            if x == 7:
                raise ValueError("frame 7 is bad")
            return x

        seen = []
        with pytest.raises(ValueError, match="frame 7"):
            run_pipeline(range(1000), [Stage("boom", boom), Stage("id", lambda x: x)], seen.append)
        assert seen == list(range(7))
        time.sleep(0.3)
        assert threading.active_count() <= before

    def test_bounded_queues_do_not_read_ahead_without_limit(self):
        read = []

        def source():
            for i in range(10_000):
                read.append(i)
                yield i

        ahead = []

        def slow_sink(x):
            if x == 0:
                time.sleep(0.3)  # the stages fill their queues meanwhile, then must wait
                ahead.append(len(read))

        run_pipeline(source(), [Stage("a", lambda x: x)], slow_sink, maxsize=4)
        assert len(read) == 10_000
        assert ahead[0] <= 4 * 3 + 3  # two queues of 4 (+ one item in each thread's hands)


def _face(track: int, landmarks: np.ndarray) -> Face:
    return Face(box=(0.0, 0.0, 1.0, 1.0), landmarks=landmarks.astype(np.float32), track_id=track)


class TestTrackSmoother:
    def test_zero_lag_on_steady_motion_and_less_jitter(self):
        rng = np.random.default_rng(1)
        base = rng.random((68, 2)) * 100
        truth = [base + [3.0 * t, 1.0 * t] for t in range(40)]
        items = [(t, [_face(0, truth[t] + rng.normal(0, 1.5, (68, 2)))]) for t in range(40)]
        smoother = TrackSmoother(3, faces_of=lambda it: it[1], with_faces=lambda it, f: (it[0], f))
        out = list(smoother(items))
        assert [t for t, _ in out] == list(range(40))
        raw = np.mean([np.abs(f[0].landmarks - truth[t]).mean() for t, f in items[5:-5]])
        smooth = np.mean([np.abs(f[0].landmarks - truth[t]).mean() for t, f in out[5:-5]])
        assert smooth < 0.6 * raw
        bias = np.mean([(f[0].landmarks - truth[t]).mean(axis=0) for t, f in out[5:-5]], axis=0)
        assert np.abs(bias).max() < 0.3  # centred window: no lag behind the motion

    def test_short_gaps_are_filled_long_ones_are_not(self):
        lm = np.zeros((68, 2))
        window = [{0: _face(0, lm)}, {}, {0: _face(0, lm + 10)}]
        filled = smooth_window(window, 1, radius=0, max_gap=1)
        assert len(filled) == 1 and np.allclose(filled[0].landmarks, lm + 5)
        window = [{0: _face(0, lm)}, {}, {}, {}, {0: _face(0, lm + 10)}]
        assert smooth_window(window, 2, radius=0, max_gap=2) == []

    def test_largest_only_keeps_one_track_when_two_near_equal_faces_take_turns(self):
        """Per frame, faces A (100 px) and B (104 px, but missed on odd frames) would alternate as
        "the largest", and B's one-frame gaps would be filled back in next to A: two faces a frame."""
        square = np.array([[0, 0], [1, 0], [0, 1], [1, 1]] * 17, np.float64)
        a, b = _face(0, square * 100), _face(1, square * 104 + 500)
        items = [(t, [a] if t % 2 else [a, b]) for t in range(21)]  # B seen in the first and last frames
        both = TrackSmoother(1, faces_of=lambda it: it[1], with_faces=lambda it, f: (it[0], f))
        assert max(len(f) for _, f in both(items)) == 2  # the gap fill adds B back next to A
        one = TrackSmoother(1, faces_of=lambda it: it[1], with_faces=lambda it, f: (it[0], f), largest_only=True)
        out = list(one(items))
        assert [t for t, _ in out] == list(range(21))
        assert {len(f) for _, f in out} == {1}
        assert {f[0].track_id for _, f in out} == {1}  # B, the larger where seen, in every frame
