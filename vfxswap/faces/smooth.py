"""Zero-lag temporal smoothing of face tracks, with short gaps filled.

The converter can look ahead, so each frame's landmarks are replaced by a Gaussian-weighted mean of
the same track's landmarks over a centred window of ``radius`` frames on each side (symmetric weights:
no lag on steady motion, unlike causal filters). A track missing for at most ``max_gap`` frames
between two frames where it is present is filled by linear interpolation, so a missed detection does
not flash the original face. Frames are delayed by ``radius`` frames and never dropped or reordered.

``largest_only`` keeps one face per frame, chosen after gap filling from the whole look-ahead window
(the track with the largest mean size where it is present there), so two faces of about the same
size do not take turns frame by frame, and a gap filled in one track never adds a second face.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

import numpy as np

from ..errors import ConfigError
from ..types import Face

T = TypeVar("T")


def _gaussian(offsets: np.ndarray, radius: int) -> np.ndarray:
    sigma = max(radius / 2.0, 0.5)
    return np.exp(-0.5 * (offsets / sigma) ** 2)


def smooth_window(window: list[dict[int, Face]], centre: int, radius: int, max_gap: int) -> list[Face]:
    """The smoothed faces of ``window[centre]``.

    Args:
        window: per frame, the faces by track id (frames ``centre - radius .. centre + radius`` as far
            as they exist).
        centre: index of the frame to smooth.
        radius: frames on each side that contribute.
        max_gap: longest run of missing frames that is filled by interpolation.

    Returns:
        Faces of the centre frame (present or interpolated), sorted by track id.
    """
    here = window[centre]
    tracks = set(here)
    for before in range(max(0, centre - max_gap), centre):
        for after in range(centre + 1, min(len(window), centre + max_gap + 1)):
            if after - before - 1 <= max_gap:
                tracks |= set(window[before]) & set(window[after])
    out = []
    for tid in sorted(tracks):
        face = here.get(tid)
        if face is None:
            face = _interpolate(window, centre, tid)
        frames = [i for i in range(max(0, centre - radius), min(len(window), centre + radius + 1)) if tid in window[i]]
        if radius > 0 and frames:
            w = _gaussian(np.array(frames, float) - centre, radius)
            if centre not in frames:  # an interpolated face counts as this frame's sample
                frames, w = frames + [centre], np.append(w, 1.0)
            stack = np.stack([window[i][tid].landmarks if i != centre else face.landmarks for i in frames])
            landmarks = np.tensordot(w / w.sum(), stack.astype(np.float64), axes=1).astype(np.float32)
            shift = landmarks.mean(axis=0) - face.landmarks.mean(axis=0)
            box = tuple(float(v) for v in np.asarray(face.box) + np.tile(shift, 2))
            face = dataclasses.replace(face, landmarks=landmarks, box=box)
        out.append(face)
    return out


def _interpolate(window: list[dict[int, Face]], centre: int, tid: int) -> Face:
    before = max(i for i in range(centre) if tid in window[i])
    after = min(i for i in range(centre + 1, len(window)) if tid in window[i])
    a, b = window[before][tid], window[after][tid]
    t = (centre - before) / (after - before)
    landmarks = ((1 - t) * a.landmarks + t * b.landmarks).astype(np.float32)
    box = tuple(float((1 - t) * x + t * y) for x, y in zip(a.box, b.box))
    return dataclasses.replace(a, landmarks=landmarks, box=box, score=0.0)


class TrackSmoother(Generic[T]):
    """Streams items carrying faces through :func:`smooth_window`, ``radius`` items late.

    Args:
        radius: frames on each side (0 = no smoothing, gaps still filled).
        max_gap: longest gap filled by interpolation (default: ``radius``, at least 1).
        faces_of: the faces of an item; with_faces: a copy of an item with other faces.
        largest_only: keep one face per frame, that of the track with the largest mean face size over
            the frames ``lookahead`` either side where it is present (see :func:`window_size`).
    """

    def __init__(self, radius: int, *, faces_of: Callable[[T], Iterable[Face]],
                 with_faces: Callable[[T, list[Face]], T], max_gap: int | None = None,
                 largest_only: bool = False) -> None:
        if radius < 0:
            raise ConfigError(f"--smooth must be >= 0 frames, got {radius}")
        self.radius = radius
        self.max_gap = max(1, radius) if max_gap is None else max_gap
        self._faces_of, self._with_faces = faces_of, with_faces
        self.largest_only = largest_only
        self.lookahead = max(self.radius, self.max_gap)  # frames an item waits for the ones after it

    def __call__(self, items: Iterable[T]) -> Iterator[T]:
        keep = self.lookahead
        buffer: list[T] = []
        tracks: list[dict[int, Face]] = []
        next_out = 0  # index in buffer of the next item to emit
        for item in items:
            buffer.append(item)
            tracks.append({f.track_id: f for f in self._faces_of(item)})
            while next_out + keep < len(buffer):
                yield self._emit(buffer, tracks, next_out)
                next_out += 1
                if next_out > keep:  # drop history no window needs any more
                    del buffer[0], tracks[0]
                    next_out -= 1
        while next_out < len(buffer):
            yield self._emit(buffer, tracks, next_out)
            next_out += 1

    def _emit(self, buffer: list[T], tracks: list[dict[int, Face]], i: int) -> T:
        faces = smooth_window(tracks, i, self.radius, self.max_gap)
        if self.largest_only and len(faces) > 1:
            faces = [max(faces, key=lambda f: window_size(tracks, i, self.lookahead, f.track_id))]
        return self._with_faces(buffer[i], faces)


def window_size(window: list[dict[int, Face]], centre: int, reach: int, tid: int) -> float:
    """Mean face size (pixels) of track ``tid`` over the frames of ``window[centre - reach .. centre + reach]``
    where it is present (0 where it is in none)."""
    sizes = [frame[tid].size for frame in window[max(0, centre - reach):centre + reach + 1] if tid in frame]
    return float(np.mean(sizes)) if sizes else 0.0
