"""Measure a swapped shot frame by frame (:func:`evaluate_shot`) and summarise it.

The swapped faces of a frame are the connected regions of its mask (see :mod:`.inputs`). In each
region the plate face is detected (its landmarks and identity), the swapped face's landmarks are
fitted in the same box, and the region's mask gives the seam band and the colour rings. The
converter's placement jitter comes from ``patches.jsonl``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError, MediaError
from ..faces.analysis import FaceAnalyzer
from ..types import Face
from . import metrics
from .inputs import MIN_REGION, Patch, ShotFrame, ShotSpec, iter_shot, patch_tracks, read_patches

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]

#: Fewest frames of a face track for its expression correlation.
MIN_TRACK_FRAMES = 5

#: Quality targets of the shot report (issue 16): ``(summary key, comparison, limit, label)``.
TARGETS: tuple[tuple[str, str, float, str], ...] = (
    ("face_found_rate", ">=", 1.0, "swapped faces the face detector still finds"),
    ("identity_toward_src", ">=", 0.95, "frames whose swap is closer to src than to the plate face"),
    ("face_detail_ratio_mean", ">=", 0.6, "face detail ratio (high-frequency energy, swap / plate)"),
    ("landmark_error_mean", "<=", 0.10, "landmark error (inter-ocular distances)"),
    ("mouth_correlation", ">=", 0.9, "mouth-opening correlation with the plate over time"),
    ("landmark_jitter_ratio", "<=", 1.1, "landmark jitter relative to the plate's own"),
    ("seam_ratio_mean", "<=", 1.5, "seam gradient ratio (border / inside)"),
    ("border_delta_e_mean", "<=", 6.0, "border ΔE76 (ring inside vs outside the mask)"),
)


# ---------------------------------------------------------------------------------------- measuring
@dataclasses.dataclass(frozen=True)
class FaceMetrics:
    """The metrics of one swapped face (one mask region) in one frame; ``None`` where not measured.

    Attributes:
        box: ``(x0, y0, x1, y1)`` of the region's mask (>= 0.5), frame pixels.
        area: pixels of the region.
        detected: whether a plate face was found in the region (identity and landmarks need it).
        identity_src: similarity of the swapped face to the src identity (needs a src).
        identity_dst: similarity of the swapped face to the plate's own face there.
        plate_identity_src: similarity of the plate face to the src identity (the starting point).
        landmark_error: swapped vs plate landmarks, in inter-ocular distances.
        src_shape_gap: :func:`~vfxswap.eval.metrics.shape_gap` of the src faces to the plate face:
            the landmark error a swap showing one of them (its own features) would score.
        seam_ratio, plate_seam_ratio: :func:`~vfxswap.eval.metrics.seam_gradient_ratio` of the
            swapped frame and, for reference, of the plate with the same mask.
        border_delta_e, plate_border_delta_e: :func:`~vfxswap.eval.metrics.border_delta_e`, same.
        detail_ratio: :func:`~vfxswap.eval.metrics.detail_ratio`, swap / plate in the region.
        face_found: whether the face detector finds a face at the same place in the swap (``None``
            when no plate face was found there).
        mouth_open, plate_mouth_open: :func:`~vfxswap.eval.metrics.mouth_opening` of the swap and
            the plate face; eye_open, plate_eye_open: :func:`~vfxswap.eval.metrics.eye_opening`.
        landmarks, plate_landmarks: ``(68, 2)`` float32 landmarks of the swap and the plate face in
            frame pixels (for the landmark jitter; not written to ``metrics.json``).
    """

    box: tuple[int, int, int, int]
    area: int
    detected: bool = False
    identity_src: float | None = None
    identity_dst: float | None = None
    plate_identity_src: float | None = None
    landmark_error: float | None = None
    src_shape_gap: float | None = None
    seam_ratio: float | None = None
    plate_seam_ratio: float | None = None
    border_delta_e: float | None = None
    plate_border_delta_e: float | None = None
    detail_ratio: float | None = None
    face_found: bool | None = None
    mouth_open: float | None = None
    plate_mouth_open: float | None = None
    eye_open: float | None = None
    plate_eye_open: float | None = None
    landmarks: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False,
                                                     metadata={"json": False})
    plate_landmarks: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False,
                                                           metadata={"json": False})

    def to_json(self) -> dict[str, Any]:
        """The scalar fields as a dict (the landmark arrays are left out)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("json", True)}

    @property
    def toward_src(self) -> bool | None:
        """Whether the swapped face is closer to src than to the plate face (``None``: not measured)."""
        if self.identity_src is None or self.identity_dst is None:
            return None
        return self.identity_src > self.identity_dst


@dataclasses.dataclass(frozen=True)
class FrameMetrics:
    """The metrics of one frame.

    Attributes:
        number: frame number.
        faces: one :class:`FaceMetrics` per swapped-face region.
        mask_source: where the mask came from (``matte``, ``patches``, ``difference``).
        swap_change, plate_change: :func:`~vfxswap.eval.metrics.temporal_change` from the previous
            frame inside this frame's mask (``None`` for the first frame of a run).
        jitter: :func:`~vfxswap.eval.metrics.jitter_per_frame` of the converter's placement (the
            largest over tracks; ``None`` without patches or at a run's ends).
    """

    number: int
    faces: tuple[FaceMetrics, ...]
    mask_source: str
    swap_change: float | None = None
    plate_change: float | None = None
    jitter: float | None = None

    def mean(self, name: str) -> float | None:
        """Mean of a face metric over the frame's faces that have it."""
        values = [getattr(f, name) for f in self.faces if getattr(f, name) is not None]
        values = [v for v in values if math.isfinite(v)]
        return float(np.mean(values)) if values else None

    @property
    def toward_src(self) -> bool | None:
        """Every measured face is closer to src than to the plate face (``None``: none measured)."""
        flags = [f.toward_src for f in self.faces if f.toward_src is not None]
        return all(flags) if flags else None

    @property
    def identity_margin(self) -> float | None:
        """Smallest ``identity_src - identity_dst`` over the frame's faces."""
        values = [f.identity_src - f.identity_dst for f in self.faces
                  if f.identity_src is not None and f.identity_dst is not None]
        return min(values) if values else None

    @property
    def flicker(self) -> float | None:
        """``swap_change / plate_change`` of this frame."""
        if self.swap_change is None or self.plate_change is None or self.plate_change <= 0:
            return None
        return self.swap_change / self.plate_change


@dataclasses.dataclass(frozen=True)
class ShotResult:
    """Everything :func:`evaluate_shot` measured; ``to_json()`` is ``metrics.json``.

    Attributes:
        spec: the inputs.
        frames: per-frame metrics, in order.
        track_jitter: :func:`~vfxswap.eval.metrics.pooled_jitter` per patch track.
        summary: shot-level numbers (see :func:`summarize`).
        src: what the src identity came from, or ``None``.
        extra: more results added by the caller (e.g. ``reconstruction``).
    """

    spec: ShotSpec
    frames: tuple[FrameMetrics, ...]
    track_jitter: dict[str, float]
    summary: dict[str, Any]
    src: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def targets(self) -> list[dict[str, Any]]:
        """:data:`TARGETS` against this shot: ``{key, label, op, limit, value, passed}`` (``passed``
        ``None`` when the value could not be measured)."""
        out = []
        for key, op, limit, label in TARGETS:
            value = self.summary.get(key)
            passed = None if value is None else bool(value >= limit if op == ">=" else value <= limit)
            out.append({"key": key, "label": label, "op": op, "limit": limit, "value": value, "passed": passed})
        return out

    def worst(self, count: int = 1) -> dict[str, list[int]]:
        """The ``count`` worst frame numbers per metric: frames where a swapped face is not found;
        identity margin (src - dst) and detail ratio lowest; flicker:
        swap change minus plate change highest (a ratio explodes where the plate hardly moves); the
        others highest."""
        keys: dict[str, Callable[[FrameMetrics], float | None]] = {
            "face_found": lambda f: 1.0 if any(face.face_found is False for face in f.faces) else None,
            "identity": lambda f: None if f.identity_margin is None else -f.identity_margin,
            "detail": lambda f: None if f.mean("detail_ratio") is None else -f.mean("detail_ratio"),
            "landmark_error": lambda f: f.mean("landmark_error"),
            "jitter": lambda f: f.jitter,
            "flicker": lambda f: (None if f.swap_change is None or f.plate_change is None
                                  else f.swap_change - f.plate_change),
            "seam_ratio": lambda f: f.mean("seam_ratio"),
            "border_delta_e": lambda f: f.mean("border_delta_e"),
        }
        out = {}
        for name, key in keys.items():
            scored = [(key(f), f.number) for f in self.frames if key(f) is not None and math.isfinite(key(f))]
            if scored:
                out[name] = [n for _, n in sorted(scored, key=lambda t: (-t[0], t[1]))[:count]]
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (non-finite numbers become ``null``)."""
        settings = (self.spec.settings or {}).get("settings")
        data = {
            "format": "vfxswap-eval", "version": 1,
            "inputs": {"plate": self.spec.plate, "swapped": self.spec.swapped, "matte": self.spec.matte,
                       "patches": self.spec.patches, "model": self.spec.model, "src": self.src,
                       "start_frame": self.spec.start_frame},
            "convert_settings": settings,
            "card": (self.spec.settings or {}).get("card"),
            "summary": self.summary,
            "targets": self.targets(),
            "worst": self.worst(3),
            "track_jitter": self.track_jitter,
            "frames": [{"frame": f.number, "mask": f.mask_source, "swap_change": f.swap_change,
                        "plate_change": f.plate_change, "flicker": f.flicker, "jitter": f.jitter,
                        "toward_src": f.toward_src,
                        "faces": [face.to_json() for face in f.faces]} for f in self.frames],
            **self.extra,
        }
        return _finite(data)


def _finite(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by ``None`` and tuples by lists (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (np.floating, np.integer)):
        return _finite(value.item())
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _regions(mask: np.ndarray) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Connected regions of ``mask >= 0.5`` large enough to be faces: ``(label mask, box)``."""
    binary = (mask >= 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    least = max(64.0, MIN_REGION * mask.size)
    out = []
    for k in range(1, count):
        x, y, w, h, area = stats[k]
        if area >= least:
            out.append((labels == k, (int(x), int(y), int(x + w), int(y + h))))
    return out


def _roi(box: tuple[int, int, int, int], shape: tuple[int, ...], pad: float) -> tuple[slice, slice]:
    x0, y0, x1, y1 = box
    p = int(round(pad * max(x1 - x0, y1 - y0)))
    return slice(max(0, y0 - p), min(shape[0], y1 + p)), slice(max(0, x0 - p), min(shape[1], x1 + p))


class FaceMeter:
    """Measures the swapped faces of frames with a face analyzer.

    Args:
        analyzer: detects the plate face, fits landmarks and computes identity embeddings.
        src_identity: ``(R, D)`` or ``(D,)`` embeddings of the src person, or ``None``.
        src_shapes: ``(K, 68, 2)`` landmarks of src faces (for the shape gap), or ``None``.
        band: half-width in pixels of the seam band; ring_width: width of the colour rings.
    """

    def __init__(self, analyzer: FaceAnalyzer, src_identity: np.ndarray | None = None, *,
                 src_shapes: np.ndarray | None = None, band: float = 3.0, ring_width: float = 4.0) -> None:
        self.analyzer = analyzer
        self.src = None if src_identity is None else metrics.identity_centroid(src_identity)
        self.src_shapes = src_shapes
        self.band = band
        self.ring_width = ring_width

    def faces(self, frame: ShotFrame) -> tuple[FaceMetrics, ...]:
        """One :class:`FaceMetrics` per mask region of the frame."""
        regions = _regions(frame.mask)
        out = []
        for k, (region, box) in enumerate(regions):
            rows, cols = _roi(box, frame.mask.shape, 0.5)
            others = np.zeros_like(region)
            for j, (r, _) in enumerate(regions):
                if j != k:
                    others |= r
            if others.any():  # a soft edge between two faces belongs to the nearer one
                others = cv2.dilate(others.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
            mask = np.where(others[rows, cols], 0.0, frame.mask[rows, cols]).astype(np.float32)
            out.append(self._face(np.ascontiguousarray(frame.plate[rows, cols]),
                                  np.ascontiguousarray(frame.swapped[rows, cols]), mask, box, int(region.sum()),
                                  (cols.start, rows.start)))
        return tuple(out)

    def _face(self, plate: np.ndarray, swapped: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int],
              area: int, origin: tuple[int, int] = (0, 0)) -> FaceMetrics:
        """The metrics of one region: ``plate``, ``swapped`` and ``mask`` are its crops, whose
        top-left pixel is ``origin`` ``(x, y)`` in the frame."""
        result = FaceMetrics(
            box=box, area=area, detail_ratio=_nan_none(metrics.detail_ratio(swapped, plate, mask)),
            seam_ratio=metrics.seam_gradient_ratio(swapped, mask, band=self.band),
            plate_seam_ratio=metrics.seam_gradient_ratio(plate, mask, band=self.band),
            border_delta_e=metrics.border_delta_e(swapped, mask, width=self.ring_width),
            plate_border_delta_e=metrics.border_delta_e(plate, mask, width=self.ring_width))
        face, scale = self._face_in(plate, mask)
        if face is None:
            return result
        found = self._face_in(swapped, mask)[0] is not None
        if scale != 1.0:
            plate, swapped = (cv2.resize(x, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
                              for x in (plate, swapped))
        swap_landmarks = self.analyzer.landmarks(swapped, face.box)
        swap_emb = self.analyzer.embed(swapped, swap_landmarks)
        plate_emb = self.analyzer.embed(plate, face.landmarks)
        offset = np.float32(origin)
        return dataclasses.replace(
            result, detected=True, face_found=found,
            mouth_open=metrics.mouth_opening(swap_landmarks),
            plate_mouth_open=metrics.mouth_opening(face.landmarks),
            eye_open=_nan_none(metrics.eye_opening(swap_landmarks)),
            plate_eye_open=_nan_none(metrics.eye_opening(face.landmarks)),
            landmarks=swap_landmarks / np.float32(scale) + offset,
            plate_landmarks=face.landmarks / np.float32(scale) + offset,
            identity_dst=metrics.identity_similarity(swap_emb, plate_emb),
            identity_src=None if self.src is None else metrics.identity_similarity(swap_emb, self.src),
            plate_identity_src=None if self.src is None else metrics.identity_similarity(plate_emb, self.src),
            landmark_error=metrics.landmark_error(face.landmarks, swap_landmarks),
            src_shape_gap=None if self.src_shapes is None else metrics.shape_gap(face.landmarks, self.src_shapes))

    def _face_in(self, image: np.ndarray, mask: np.ndarray) -> tuple[Face | None, float]:
        """The detected face whose landmarks' centre lies in the mask (detected at x1, else x2),
        in the pixels of the image scaled by the returned factor."""
        for scale in (1.0, 2.0):
            scaled = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale,
                                                            interpolation=cv2.INTER_CUBIC)
            found = self.analyzer.detect(scaled)
            k = metrics.face_in_mask([f.landmarks / np.float32(scale) for f in found], mask)
            if k is not None:
                return found[k], scale
        return None, 1.0


def evaluate_shot(spec: ShotSpec, analyzer: FaceAnalyzer, *, src_identity: np.ndarray | None = None,
                  src_shapes: np.ndarray | None = None, src_label: str | None = None,
                  progress: ProgressFn | None = None, band: float = 3.0, ring_width: float = 4.0) -> ShotResult:
    """Measure every frame of a swapped shot.

    Args:
        spec: the inputs (:func:`resolve_spec`).
        analyzer: the face analyzer (e.g. ``open_analyzer("dlib")``).
        src_identity: ``(R, D)`` embeddings of the src person (see :func:`src_person`), or
            ``None`` to skip similarity to src.
        src_shapes: ``(K, 68, 2)`` landmarks of src faces (see :func:`src_person`), or ``None``
            to skip the src shape gap.
        src_label: what the src identity came from, for the report.
        progress: ``progress(done, total)`` after each frame.
        band, ring_width: seam band and colour ring widths in pixels.

    Returns:
        The :class:`ShotResult`.

    Raises:
        MediaError: unreadable or mismatched inputs, or no frame of SWAPPED to evaluate.
    """
    meter = FaceMeter(analyzer, src_identity, src_shapes=src_shapes, band=band, ring_width=ring_width)
    total = _frame_total(spec)
    frames: list[FrameMetrics] = []
    previous: ShotFrame | None = None
    for frame in iter_shot(spec):
        swap_change = plate_change = None
        if previous is not None and previous.number == frame.number - 1 and (frame.mask >= 0.5).any():
            swap_change = metrics.temporal_change(previous.swapped, frame.swapped, frame.mask)
            plate_change = metrics.temporal_change(previous.plate, frame.plate, frame.mask)
        frames.append(FrameMetrics(number=frame.number, faces=meter.faces(frame), mask_source=frame.mask_source,
                                   swap_change=swap_change, plate_change=plate_change))
        previous = frame
        if progress is not None:
            progress(len(frames), max(total, len(frames)))
    if not frames:
        raise MediaError(f"no frame of {spec.swapped} to evaluate"
                         + (" in --frames" if spec.frames is not None else "")
                         + "; check --frames and --start-frame")
    track_jitter: dict[str, float] = {}
    jitter = None
    if spec.patches:
        frames, track_jitter, jitter = _with_jitter(frames, read_patches(spec.patches))
    return ShotResult(spec=spec, frames=tuple(frames), track_jitter=track_jitter,
                      summary=summarize(frames, jitter), src=src_label)


def _frame_total(spec: ShotSpec) -> int:
    from ..io import probe

    try:
        count = probe(spec.swapped).frame_count
    except MediaError:
        return 0
    return min(count, len(spec.frames)) if spec.frames is not None else count


def _with_jitter(frames: list[FrameMetrics], patches: dict[int, list[Patch]]
                 ) -> tuple[list[FrameMetrics], dict[str, float], float | None]:
    """Frames with the converter's per-frame jitter (largest over tracks), each track's pooled
    jitter, and all tracks' pooled jitter (``None`` without a run of 3 frames)."""
    numbers = {f.number for f in frames}
    per_frame: dict[int, float] = {}
    track_jitter: dict[str, float] = {}
    everything = []
    for track, runs in patch_tracks(patches, numbers).items():
        pooled = [(np.stack([p.frame_from_face for p in run]), run[0].size) for run in runs if len(run) >= 3]
        for run, (matrices, size) in zip([r for r in runs if len(r) >= 3], pooled):
            for p, v in zip(run, metrics.jitter_per_frame(matrices, size)):
                if math.isfinite(v):
                    per_frame[p.frame] = max(per_frame.get(p.frame, 0.0), float(v))
        value = metrics.pooled_jitter(pooled)
        if math.isfinite(value):
            track_jitter[str(track)] = value
        everything += pooled
    total = metrics.pooled_jitter(everything)
    return ([dataclasses.replace(f, jitter=per_frame.get(f.number)) for f in frames], track_jitter,
            total if math.isfinite(total) else None)


def _stats(values: list[float | None]) -> tuple[float | None, float | None, float | None]:
    v = np.array([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if not len(v):
        return None, None, None
    return float(v.mean()), float(np.median(v)), float(v.max())


def face_tracks(frames: list[FrameMetrics] | tuple[FrameMetrics, ...]) -> list[list[FaceMetrics]]:
    """The swapped faces linked into tracks over the evaluated frames.

    A face continues the track of the previous evaluated frame's face whose box holds its box
    centre (the nearest such, each used once), when the two frames are one step apart (the
    smallest step between evaluated frames); otherwise it starts a new track.

    Returns:
        The faces of each track in frame order.
    """
    numbers = [f.number for f in frames]
    steps = [b - a for a, b in zip(numbers, numbers[1:]) if b > a]
    step = min(steps) if steps else 1
    tracks: list[list[FaceMetrics]] = []
    last: list[tuple[FaceMetrics, int]] = []  # (face, track index) of the previous frame
    previous_number = None
    for frame in frames:
        current = []
        free = list(last) if previous_number is not None and frame.number - previous_number == step else []
        for face in frame.faces:
            cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
            holding = [(math.hypot(cx - (b.box[0] + b.box[2]) / 2, cy - (b.box[1] + b.box[3]) / 2), i, k)
                       for i, (b, k) in enumerate(free) if b.box[0] <= cx <= b.box[2] and b.box[1] <= cy <= b.box[3]]
            if holding:
                _, i, k = min(holding)
                free.pop(i)
                tracks[k].append(face)
            else:
                k = len(tracks)
                tracks.append([face])
            current.append((face, k))
        last, previous_number = current, frame.number
    return tracks


def _runs(track: list[FaceMetrics], name: str) -> list[np.ndarray]:
    """``(T, 68, 2)`` arrays of a track's landmarks (``landmarks`` or ``plate_landmarks``) over runs
    of faces where both the swap's and the plate's were measured."""
    runs: list[list[np.ndarray]] = [[]]
    for face in track:
        if face.landmarks is None or face.plate_landmarks is None:
            runs.append([])
        else:
            runs[-1].append(getattr(face, name))
    return [np.stack(r) for r in runs if len(r) >= 3]


def expression_following(tracks: list[list[FaceMetrics]]) -> dict[str, Any]:
    """Expression and landmark-motion numbers over face tracks (see :func:`summarize`)."""
    out: dict[str, Any] = {}
    for key, swap, plate in (("mouth_correlation", "mouth_open", "plate_mouth_open"),
                             ("eye_correlation", "eye_open", "plate_eye_open")):
        values = [metrics.expression_correlation(
            np.array([np.nan if getattr(f, swap) is None else getattr(f, swap) for f in t]),
            np.array([np.nan if getattr(f, plate) is None else getattr(f, plate) for f in t]),
            min_frames=MIN_TRACK_FRAMES) for t in tracks]
        values = [v for v in values if v is not None]
        out[key] = float(np.mean(values)) if values else None
        out[key.replace("correlation", "tracks")] = len(values)
    swap_runs = [r for t in tracks for r in _runs(t, "landmarks")]
    plate_runs = [r for t in tracks for r in _runs(t, "plate_landmarks")]
    out["landmark_jitter"] = _nan_none(metrics.landmark_jitter(swap_runs))
    out["plate_landmark_jitter"] = _nan_none(metrics.landmark_jitter(plate_runs))
    out["landmark_jitter_ratio"] = _nan_none(metrics.jitter_ratio(swap_runs, plate_runs))
    return out


def summarize(frames: list[FrameMetrics] | tuple[FrameMetrics, ...], jitter: float | None = None) -> dict[str, Any]:
    """Shot-level numbers from per-frame metrics.

    Keys: ``frames``, ``frames_with_faces``, ``faces``, ``faces_measured`` (plate face found);
    ``face_found_rate`` (of the measured faces, the fraction the detector still finds in the swap);
    ``face_detail_ratio_mean``/``_median`` (detail swap / plate, every region);
    ``identity_src_mean``, ``identity_dst_mean``, ``plate_identity_src_mean`` (cosine similarities)
    and ``identity_src_distance_mean``, ``identity_dst_distance_mean`` (the same as unit-embedding
    distances: a blur is close to both);
    ``identity_toward_src`` (fraction of frames with measured faces whose every face is closer to
    src than to the plate face); ``landmark_error_mean``/``_median``/``_max``;
    ``mouth_correlation``, ``eye_correlation`` (per face track, the correlation over time of the
    swap's mouth/eye opening with the plate's, averaged over tracks of >= :data:`MIN_TRACK_FRAMES`
    frames whose plate moves; ``mouth_tracks``, ``eye_tracks`` count them);
    ``landmark_jitter``, ``plate_landmark_jitter`` (per-frame landmark noise, inter-ocular
    distances, all tracks pooled) and ``landmark_jitter_ratio`` (swap / plate); ``src_shape_gap_mean``
    (what a swap showing the src faces' own shapes would score on landmarks); ``jitter`` (the
    ``jitter`` argument: all patch tracks pooled, fraction of the crop side); ``flicker_ratio``;
    ``seam_ratio_mean``/``_max``,
    ``plate_seam_ratio_mean``; ``border_delta_e_mean``/``_max``, ``plate_border_delta_e_mean``.
    Values that could not be measured are ``None``.
    """
    faces = [face for f in frames for face in f.faces]

    def col(name: str) -> list[float | None]:
        return [getattr(face, name) for face in faces]

    def distance(name: str) -> float | None:
        values = [metrics.unit_distance(v) for v in col(name) if v is not None]
        return float(np.mean(values)) if values else None

    toward = [f.toward_src for f in frames if f.toward_src is not None]
    found = [face.face_found for face in faces if face.face_found is not None]
    detail = _stats(col("detail_ratio"))
    lm = _stats(col("landmark_error"))
    seam = _stats(col("seam_ratio"))
    de = _stats(col("border_delta_e"))
    return {
        "frames": len(frames),
        "frames_with_faces": sum(1 for f in frames if f.faces),
        "faces": len(faces),
        "faces_measured": sum(1 for face in faces if face.detected),
        "face_found_rate": (sum(found) / len(found)) if found else None,
        "face_detail_ratio_mean": detail[0], "face_detail_ratio_median": detail[1],
        "identity_src_mean": _stats(col("identity_src"))[0],
        "identity_dst_mean": _stats(col("identity_dst"))[0],
        "plate_identity_src_mean": _stats(col("plate_identity_src"))[0],
        "identity_src_distance_mean": distance("identity_src"),
        "identity_dst_distance_mean": distance("identity_dst"),
        "identity_toward_src": (sum(toward) / len(toward)) if toward else None,
        "landmark_error_mean": lm[0], "landmark_error_median": lm[1], "landmark_error_max": lm[2],
        **expression_following(face_tracks(frames)),
        "src_shape_gap_mean": _stats(col("src_shape_gap"))[0],
        "jitter": jitter,
        "flicker_ratio": _nan_none(metrics.flicker_ratio(
            np.array([np.nan if f.swap_change is None else f.swap_change for f in frames]),
            np.array([np.nan if f.plate_change is None else f.plate_change for f in frames]))),
        "seam_ratio_mean": seam[0], "seam_ratio_max": seam[2],
        "plate_seam_ratio_mean": _stats(col("plate_seam_ratio"))[0],
        "border_delta_e_mean": de[0], "border_delta_e_max": de[2],
        "plate_border_delta_e_mean": _stats(col("plate_border_delta_e"))[0],
    }


def _nan_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------- src faces
def src_person(analyzer: FaceAnalyzer, src: str | os.PathLike, *, most: int = 24
               ) -> tuple[np.ndarray, np.ndarray]:
    """The src person from a faceset folder, an image or a folder of images, read once.

    A faceset's stored embeddings are used when its backend is the analyzer's; otherwise up to
    ``most`` of its crops (evenly spread) are embedded again. Its landmarks are every face's stored
    ones (source pixels); an image gives its largest face.

    Returns:
        ``(R, D)`` identity embeddings and ``(K, 68, 2)`` landmarks.

    Raises:
        MediaError: no faces, or a missing or unreadable input.
    """
    from ..faces.faceset import RECORDS_FILE, read_crop, read_faceset
    from ..faces.identity import largest_face_embedding, reference_faces

    path = Path(src)
    if not (path / RECORDS_FILE).is_file():
        faces = reference_faces(analyzer, path)
        return (np.stack([analyzer.embed(img, face.landmarks) for face, img in faces]),
                np.stack([face.landmarks for face, _ in faces]))
    records = read_faceset(path)
    if not records:
        raise MediaError(f"faceset {path} holds no faces; pass another --src")
    landmarks = np.stack([r.landmarks for r in records])
    stored = [r.embedding for r in records if r.embedding is not None and r.backend == analyzer.name]
    if len(stored) == len(records):
        return np.stack(stored), landmarks
    picks = [records[i] for i in np.linspace(0, len(records) - 1, min(most, len(records))).round().astype(int)]
    out = []
    for r in picks:
        crop, problem = read_crop(path / r.crop_name, r.size)
        if crop is None:
            raise MediaError(f"crop {r.crop_name} of {path} is {problem}; re-extract the faceset")
        try:
            out.append(largest_face_embedding(analyzer, cv2.cvtColor(crop, cv2.COLOR_BGR2RGB),
                                              what=str(path / r.crop_name)))
        except MediaError:
            log.info("no face found again in %s", r.crop_name)
    if not out:
        raise MediaError(f"no face of faceset {path} could be embedded with the {analyzer.name} backend")
    return np.stack(out), landmarks


def check_backend_options(face_backend: str, face_models: str | None) -> None:
    """Refuse an insightface backend without a model pack folder (one-line ConfigError)."""
    if face_backend == "insightface" and not face_models:
        raise ConfigError("the insightface backend needs --face-models DIR (a local model pack such as buffalo_l)")
