"""Face tracking between detections.

On a detection frame the detector's faces are matched to the live tracks by the overlap of their
landmark boxes (Hungarian assignment); unmatched detections start tracks and unmatched tracks end.
On the frames in between each track's box follows the image motion — pyramidal Lucas-Kanade flow of
its landmarks inside a region around the face, forward-backward checked, fitted by a RANSAC
similarity — and the landmarks are refitted inside the moved box. The box therefore moves with the
picture, not with the landmark fit (re-deriving the box from the last fit drifts on turned heads),
and a face whose points cannot be followed (it left, or was covered) ends its track. Cost per face:
one landmark fit (~2.5 ms with dlib) plus the flow of 68 points in a region scaled so the face
spans ~128 pixels (well under 1 ms).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from ..types import Face
from .analysis import FaceAnalyzer
from .geometry import affine_scale, compose, invert, transform_points

_LK = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """``[x0, y0, x1, y1]`` bounding box of ``(N, 2)`` points."""
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)]).astype(np.float64)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``[x0, y0, x1, y1]`` boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _region_gray(image: np.ndarray, x0: int, y0: int, x1: int, y1: int, dsize: tuple[int, int] | None) -> np.ndarray:
    region = image[y0:y1, x0:x1]
    if dsize is not None:
        region = cv2.resize(region, dsize, interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(region, cv2.COLOR_RGB2GRAY)


def face_motion(before: np.ndarray, now: np.ndarray, points: np.ndarray, *, min_points: int = 12,
                max_error: float = 0.5, face_px: int = 128) -> np.ndarray | None:
    """Similarity ``(2, 3)`` ``now_from_before`` moving ``points`` from image ``before`` to ``now``.

    Both images are ``(H, W, 3)`` uint8 RGB. Flow is computed only in a region around the points,
    scaled so the face spans about ``face_px`` pixels and turned grey there (cheap on 4K frames and
    for large faces). Returns ``None`` when fewer than ``min_points`` points survive the
    forward-backward check (``max_error`` region pixels) and RANSAC.
    """
    h, w = now.shape[:2]
    box = landmark_box(points)
    size = max(box[2] - box[0], box[3] - box[1], 1.0)
    pad = 0.6 * size + 24
    x0, y0 = int(max(0, box[0] - pad)), int(max(0, box[1] - pad))
    x1, y1 = int(min(w, box[2] + pad + 1)), int(min(h, box[3] + pad + 1))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    # region_from_frame: crop at (x0, y0), then scale by s
    s = min(1.0, face_px / size)
    region_from_frame = np.array([[s, 0.0, -s * x0], [0.0, s, -s * y0]])
    dsize = (max(16, round((x1 - x0) * s)), max(16, round((y1 - y0) * s))) if s < 1.0 else None
    g0, g1 = _region_gray(before, x0, y0, x1, y1, dsize), _region_gray(now, x0, y0, x1, y1, dsize)
    p0 = transform_points(region_from_frame, points).astype(np.float32).reshape(-1, 1, 2)
    p1, ok1, _ = cv2.calcOpticalFlowPyrLK(g0, g1, p0, None, **_LK)
    back, ok2, _ = cv2.calcOpticalFlowPyrLK(g1, g0, p1, None, **_LK)
    good = (ok1.ravel() == 1) & (ok2.ravel() == 1) & (np.linalg.norm((back - p0).reshape(-1, 2), axis=1) < max_error)
    if good.sum() < min_points:
        return None
    m, inliers = cv2.estimateAffinePartial2D(p0[good], p1[good], method=cv2.RANSAC, ransacReprojThreshold=1.0)
    if m is None or inliers is None or inliers.sum() < min_points:
        return None
    # the motion found in region pixels, expressed in frame pixels
    return compose(invert(region_from_frame), compose(m.astype(np.float64), region_from_frame))


def move_box(box: tuple[float, float, float, float], now_from_before: np.ndarray) -> tuple[float, float, float, float]:
    """An axis-aligned box moved by a similarity: its centre is mapped and its size scaled."""
    cx, cy = transform_points(now_from_before, [[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]])[0]
    s = affine_scale(now_from_before)
    hw, hh = s * (box[2] - box[0]) / 2, s * (box[3] - box[1]) / 2
    return (cx - hw, cy - hh, cx + hw, cy + hh)


class FaceTracker:
    """Keeps face tracks across the frames of one shot.

    Args:
        analyzer: the backend whose ``landmarks`` refits faces between detections.
        min_iou: smallest landmark-box overlap for a detection to continue a track.
        first_id: id of the first new track (a resumed extract continues the numbering).
    """

    def __init__(self, analyzer: FaceAnalyzer, *, min_iou: float = 0.3, first_id: int = 0) -> None:
        self.analyzer = analyzer
        self.min_iou = min_iou
        self._faces: list[Face] = []
        self._prev_image: np.ndarray | None = None
        self._next_id = first_id

    def resume(self, image: np.ndarray, faces: list[Face]) -> None:
        """Continue the tracks of ``faces`` (track ids set), found in ``image`` (``(H, W, 3)`` uint8 RGB):
        a resumed extract seeds the tracker with the last frame an interrupted run committed."""
        self._faces = list(faces)
        self._prev_image = image
        self._next_id = max([self._next_id] + [f.track_id + 1 for f in faces if f.track_id is not None])

    @property
    def active(self) -> int:
        """Number of live tracks."""
        return len(self._faces)

    def update_detections(self, image: np.ndarray, detections: list[Face]) -> tuple[list[Face], list[int]]:
        """Match the faces detected on ``image`` (``(H, W, 3)`` uint8 RGB) to the live tracks.

        Returns:
            The detections with ``track_id`` set, and the ids of the tracks that start here.
        """
        old = self._faces
        cost = np.ones((len(old), len(detections)))
        for i, t in enumerate(old):
            tb = landmark_box(t.landmarks)
            for j, d in enumerate(detections):
                cost[i, j] = 1.0 - iou(tb, landmark_box(d.landmarks))
        matched: dict[int, int] = {}
        if old and detections:
            for i, j in zip(*linear_sum_assignment(cost)):
                if 1.0 - cost[i, j] >= self.min_iou:
                    matched[j] = old[i].track_id
        new_ids: list[int] = []
        faces: list[Face] = []
        for j, det in enumerate(detections):
            tid = matched.get(j)
            if tid is None:
                tid = self._next_id
                self._next_id += 1
                new_ids.append(tid)
            faces.append(dataclasses.replace(det, track_id=tid))
        self._faces = faces
        self._prev_image = image
        return faces, new_ids

    def track(self, image: np.ndarray) -> list[Face]:
        """Follow every live track onto ``image`` (``(H, W, 3)`` uint8 RGB); lost tracks end."""
        kept: list[Face] = []
        if self._prev_image is not None and self._prev_image.shape == image.shape:
            for face in self._faces:
                motion = face_motion(self._prev_image, image, face.landmarks)
                if motion is None:
                    continue
                box = move_box(face.box, motion)
                kept.append(dataclasses.replace(face, box=box, landmarks=self.analyzer.landmarks(image, box)))
        self._faces = kept
        self._prev_image = image
        return kept
