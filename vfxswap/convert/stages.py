"""The converter's stages: FrameWork in, FrameWork out (``dataclasses.replace``), one job each.

Stateful stages (tracking, colour smoothing) are small classes whose ``__call__`` is the stage; the
pipeline (``pipeline.py``) owns threads and queues. Colour: the model works in its card's colour
space (display-referred sRGB in [0, 1]); :class:`ColorPath` carries crops there and back (built-in
sRGB transfer, or OpenColorIO when the user names a config or the plate's colour space).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from ..accel.runtime import SwapRunner
from ..config import ConvertConfig
from ..extract import detect_full_res
from ..faces.align import face_from_frame, frame_from_face, landmarks_in_face, warp_to_face
from ..faces.analysis import FaceAnalyzer
from ..faces.identity import TrackIdentities
from ..faces.masks import hull_mask
from ..faces.track import FaceTracker
from ..io.colorspace import FaceSpace, to_display_uint8
from ..model.card import ModelCard
from ..types import AlignedFace, Face, Frame, FrameWork, SwapResult
from .blend import composite, face_mask, matte
from .color import ColorSmoother


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB transfer function, linear [0, 1] -> encoded [0, 1] (float32)."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """Inverse of :func:`srgb_encode` (float32)."""
    x = np.clip(encoded, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4)).astype(np.float32)


def to_model_space(crop: np.ndarray, frame: Frame) -> np.ndarray:
    """A crop of ``frame``'s pixels as float32 sRGB [0, 1], the model's input space."""
    if crop.dtype == np.uint8:
        return crop.astype(np.float32) / 255.0
    if crop.dtype == np.uint16:
        return crop.astype(np.float32) / 65535.0
    return srgb_encode(crop) if frame.color_space == "linear" else np.clip(crop, 0.0, 1.0).astype(np.float32)


def from_model_space(rgb: np.ndarray, frame: Frame) -> np.ndarray:
    """Model output back into the frame's space, as the float values :func:`composite` blends."""
    if frame.image.dtype != np.float32 or frame.color_space != "linear":
        return rgb
    return srgb_decode(rgb)


class ColorPath:
    """The converter's colour path: the display image faces are found on, and face crops into the
    model's space and back.

    Without OpenColorIO settings, integer frames are sRGB code values and float frames scene-linear
    Rec.709 (:func:`to_model_space`). With ``ocio_config`` or ``input_colorspace`` every frame goes
    through OCIO (:class:`~vfxswap.io.colorspace.FaceSpace`), from ``input_colorspace`` or else the
    frame's own ``color_space``. Thread-safe.
    """

    def __init__(self, *, ocio_config: str | None = None, input_colorspace: str | None = None,
                 model_space: str = "srgb") -> None:
        self.enabled = bool(ocio_config or input_colorspace)
        self._config, self._input, self._model = ocio_config, input_colorspace, model_space
        self._spaces: dict[str, FaceSpace] = {}
        self._lock = threading.Lock()
        if self.enabled and input_colorspace:
            self._space(input_colorspace)  # fail early on a bad config or name

    def _space(self, plate_space: str) -> FaceSpace:
        with self._lock:
            if plate_space not in self._spaces:
                self._spaces[plate_space] = FaceSpace(plate_space, config=self._config, model_space=self._model)
            return self._spaces[plate_space]

    def _for(self, frame: Frame) -> FaceSpace:
        return self._space(self._input or frame.color_space)

    def display(self, frame: Frame) -> np.ndarray:
        """``(H, W, 3)`` uint8 sRGB image of the frame for detection and tracking."""
        return self._for(frame).display(frame.image) if self.enabled else to_display_uint8(frame)

    def to_model(self, crop: np.ndarray, frame: Frame) -> np.ndarray:
        """``(S, S, 3)`` crop of ``frame`` -> float32 model values in [0, 1]."""
        return self._for(frame).to_model(crop) if self.enabled else to_model_space(crop, frame)

    def from_model(self, rgb: np.ndarray, frame: Frame) -> np.ndarray:
        """``(S, S, 3)`` model values -> the frame's values as :func:`composite` blends them."""
        return self._for(frame).from_model(rgb) if self.enabled else from_model_space(rgb, frame)


class FaceFinder:
    """Tracks faces on the frames' display images and keeps the ones to swap (``--faces largest``
    keeps them all: the smoother picks one track per frame over its window).

    ``detections`` is the output of the detection stage for detection frames, ``None`` in between.
    """

    def __init__(self, analyzer: FaceAnalyzer, config: ConvertConfig, references: np.ndarray | None) -> None:
        self.config = config
        self.tracker = FaceTracker(analyzer)
        self.identities = TrackIdentities(analyzer, references if config.faces == "reference" else None,
                                          config.identity_threshold or analyzer.identity_threshold)

    def __call__(self, item: tuple[FrameWork, list[Face] | None]) -> FrameWork:
        work, detections = item
        image = work.display
        if detections is None:
            faces = self.tracker.track(image)
        else:
            faces = self.tracker.update_detections(image, detections)[0]
        faces = [f for f in faces if f.size >= self.config.min_size]
        if self.config.faces == "reference":
            faces = [f for f in faces if self.identities.wanted(image, f)]
        return dataclasses.replace(work, faces=tuple(faces))


class DetectEvery:
    """Stage: pairs each FrameWork with its detections (on a proxy) on keyframes and after a gap in
    the frame numbers (a sequence with missing files: the picture may jump), ``None`` in between.

    Args:
        keyframe: whether a frame number (``FrameWork.number``) is a detection keyframe; fixed
            numbers (not "every n-th frame read") keep partial converts identical to full ones.
    """

    def __init__(self, analyzer: FaceAnalyzer, keyframe: Callable[[int], bool], scale: float) -> None:
        self.analyzer, self.keyframe, self.scale = analyzer, keyframe, scale
        self._previous: int | None = None

    def __call__(self, work: FrameWork) -> tuple[FrameWork, list[Face] | None]:
        n = work.number
        due = self.keyframe(n) or self._previous is None or n != self._previous + 1
        self._previous = n
        return work, (detect_full_res(self.analyzer, work.display, self.scale) if due else None)


def align(work: FrameWork, card: ModelCard, colors: ColorPath) -> FrameWork:
    """Cut each face out of the frame into the model's crop, in the model's colour space (only
    frames whose ``to_swap`` is set)."""
    if not work.to_swap:
        return work
    size = card.resolution
    aligned = []
    for face in work.faces:
        m = face_from_frame(face.landmarks, size, card.face_type)
        crop = colors.to_model(warp_to_face(work.frame.image, m, size), work.frame)
        aligned.append(AlignedFace(image=crop, face_from_frame=m, size=size, face_type=card.face_type, face=face))
    return dataclasses.replace(work, aligned=tuple(aligned))


class SwapBatches:
    """Stage (iterator transform): runs the model on up to ``batch`` faces at a time, gathered across
    consecutive frames. ``seconds`` is the time spent in the model."""

    def __init__(self, runner: SwapRunner, batch: int) -> None:
        self.runner, self.batch = runner, batch
        self.seconds = 0.0

    def _flush(self, pending: list[FrameWork]) -> list[FrameWork]:
        faces = [a for w in pending for a in w.aligned]
        if not faces:
            return pending
        start = time.perf_counter()
        rgb, mask = self.runner.swap(np.stack([a.image for a in faces]))
        self.seconds += time.perf_counter() - start
        out, k = [], 0
        for w in pending:
            swaps = tuple(SwapResult(aligned=a, swapped=rgb[k + i], mask=mask[k + i]) for i, a in enumerate(w.aligned))
            k += len(w.aligned)
            out.append(dataclasses.replace(w, swaps=swaps))
        return out

    def __call__(self, items: Iterable[FrameWork]) -> Iterator[FrameWork]:
        pending: list[FrameWork] = []
        count = 0
        for work in items:
            pending.append(work)
            count += len(work.aligned)
            if count >= self.batch:
                yield from self._flush(pending)
                pending, count = [], 0
        yield from self._flush(pending)


class Compositor:
    """Colour-matches each swapped face to the plate, builds its mask and blends it into a copy of the frame."""

    def __init__(self, config: ConvertConfig, card: ModelCard, color_path: ColorPath, *, want_matte: bool) -> None:
        self.config = config
        self.card = card
        self.color_path = color_path
        self.want_matte = want_matte
        self.colors = ColorSmoother(config.color, config.color_smooth)

    def __call__(self, work: FrameWork) -> FrameWork:
        if not work.swaps:
            return work  # untouched: written bit-exact
        if not work.to_write:  # a handle: only the colour history needs its faces
            for s in work.swaps:
                self.colors(s.swapped, s.aligned.image, hull_mask(landmarks_in_face(s.aligned), self.card.resolution),
                            s.aligned.face.track_id)
            return work
        cfg = self.config
        size = self.card.resolution
        out = work.frame.image.copy()
        placed = []
        for s in work.swaps:
            hull = hull_mask(landmarks_in_face(s.aligned), size)
            learned = s.mask if self.card.mask_head else None
            mask = face_mask(source=cfg.mask, hull=hull, learned=learned, erode=cfg.erode, feather=cfg.feather)
            rgb = self.colors(s.swapped, s.aligned.image, hull, s.aligned.face.track_id)
            m = frame_from_face(s.aligned.face_from_frame)
            composite(out, self.color_path.from_model(rgb, work.frame), mask, m, method=cfg.blend)
            placed.append((mask, m))
        mat = matte(out.shape[:2], placed) if self.want_matte else None
        return dataclasses.replace(work, output=out, matte=mat)
