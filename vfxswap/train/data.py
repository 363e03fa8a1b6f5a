"""Training data for the dual-decoder autoencoder: facesets in memory, augmented (src, dst) batches.

:class:`FaceBank` loads a faceset once and maps every crop into the model's crop (its resolution and
face type). :class:`PairBatches` builds the batch of a training step from that step's number alone
(``np.random.default_rng([seed, step])``), so a run resumed at step k sees exactly the batches of an
uninterrupted run, whichever threads built them.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import ConfigError, FacesetError
from ..faces.align import FACE_TYPE_PADDING, crop_from_unit, face_from_frame
from ..faces.faceset import FaceRecord, is_held_out, read_crop, read_faceset
from ..faces.geometry import affine_scale, compose, invert, transform_points
from ..faces.masks import hull_mask
from ..types import FACE_TYPES, FaceType
from .augment import color_jitter_lab, lab_stats, random_affine, random_warp_grid, transfer_lab_stats

log = logging.getLogger(__name__)

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
OUTER_LIPS = slice(48, 60)
BATCH_KEYS = ("src_in", "src_target", "src_mask", "src_weight", "dst_in", "dst_target", "dst_mask", "dst_weight")


class FaceBank:
    """A faceset held in memory, mapped into a model's crop.

    Args:
        folder: faceset folder (``faceset.jsonl`` + ``faces/``).
        resolution: the model's crop side in pixels.
        face_type: the model's face type; must not cover more than the faceset's crops.
        workers: threads that decode the PNG crops (default: CPU count, at most 8).
        holdout: leave out the held-out split (:func:`~vfxswap.faces.faceset.is_held_out`: faces
            whose index is ``holdout - 1`` modulo ``holdout``) for ``vfxswap eval``; 0 keeps every face.

    Attributes:
        images: ``(N, R, R, 3)`` uint8 RGB crops.
        landmarks: ``(N, 68, 2)`` float32 landmarks in model-crop pixels.
        masks: ``(N, R, R)`` uint8 landmark-hull masks, 0 or 255.
        records: the faceset's records, in the same order.

    Raises:
        FacesetError: no faceset, an empty one, or a crop that is missing or unreadable.
        ConfigError: the model's face type covers more than the faceset's (pixels would be missing).
    """

    def __init__(self, folder: str | os.PathLike, *, resolution: int, face_type: FaceType,
                 workers: int | None = None, holdout: int = 0) -> None:
        if face_type not in FACE_TYPES:
            raise ConfigError(f"face_type must be one of {', '.join(FACE_TYPES)}, got {face_type!r}")
        if not 8 <= resolution <= 4096:
            raise ConfigError(f"resolution must be between 8 and 4096 pixels, got {resolution}")
        self.folder = Path(folder)
        self.resolution = resolution
        self.face_type = face_type
        self.records: list[FaceRecord] = [r for r in read_faceset(folder) if not is_held_out(r.index, holdout)]
        if not self.records:
            raise FacesetError(f"faceset {folder} holds no faces{' outside the held-out split' if holdout else ''}: "
                               f"make one with `vfxswap extract SOURCE -o {folder}`")
        for t in sorted({r.face_type for r in self.records}):
            if t not in FACE_TYPE_PADDING:
                raise FacesetError(f"faceset {folder} has crops of unknown face type {t!r}")
            if FACE_TYPE_PADDING[face_type] > FACE_TYPE_PADDING[t]:
                narrower = [k for k, v in FACE_TYPE_PADDING.items() if v <= FACE_TYPE_PADDING[t]]
                raise ConfigError(f"a {face_type} model cannot train on the {t} crops of {folder} (they cover less "
                                  f"of the head, pixels would be missing): use face type {' or '.join(narrower)}, "
                                  f"or re-extract with --face-type {face_type}")
        n, r = len(self.records), resolution
        self.images = np.empty((n, r, r, 3), np.uint8)
        self.landmarks = np.empty((n, 68, 2), np.float32)
        self.masks = np.empty((n, r, r), np.uint8)
        self._upscale = np.ones(n)
        workers = workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facebank") as pool:
            for _ in pool.map(self._load, range(n)):
                pass
        if self._upscale.max() > 1.05:
            worst = int(self._upscale.argmax())
            log.warning("faceset %s: crops are upscaled up to x%.2f into the %d px %s model crop (face %d); "
                        "extract with a larger --size for sharper training data", folder, self._upscale.max(),
                        r, face_type, self.records[worst].index)
        del self._upscale

    def _load(self, i: int) -> None:
        record = self.records[i]
        crop, problem = read_crop(self.folder / record.crop_name, record.size)
        if crop is None:
            raise FacesetError(f"face {record.index} of {self.folder}: crop {record.crop_name} is {problem} "
                               f"(re-extract, or remove its line from faceset.jsonl)")
        r = self.resolution
        if record.face_type == self.face_type:  # a pure scale
            model_from_faceset = compose(crop_from_unit(r, self.face_type),
                                         invert(crop_from_unit(record.size, record.face_type)))
        else:  # through the frame: the head crop's sideways shift depends on the face's yaw
            model_from_faceset = compose(face_from_frame(record.landmarks, r, self.face_type),
                                         invert(record.face_from_frame))
        self._upscale[i] = affine_scale(model_from_faceset)
        self.images[i] = warp_crop(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), model_from_faceset, r)
        landmarks = transform_points(compose(model_from_faceset, record.face_from_frame), record.landmarks)
        self.landmarks[i] = landmarks
        self.masks[i] = np.where(hull_mask(landmarks, r) > 0.5, np.uint8(255), np.uint8(0))

    @classmethod
    def merged(cls, banks: list[FaceBank]) -> FaceBank:
        """One bank holding the faces of ``banks`` in order (same resolution and face type), e.g. the
        pool of many identities ``vfxswap train --pretrain`` feeds to both sides; ``folder`` is the first's."""
        if not banks or any((b.resolution, b.face_type) != (banks[0].resolution, banks[0].face_type) for b in banks):
            raise ConfigError("merged face banks must be one or more of the same resolution and face type")
        pool = cls.__new__(cls)
        pool.folder, pool.resolution, pool.face_type = banks[0].folder, banks[0].resolution, banks[0].face_type
        pool.records = [r for b in banks for r in b.records]
        for name in ("images", "landmarks", "masks"):
            setattr(pool, name, np.concatenate([getattr(b, name) for b in banks]))
        return pool

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (f"FaceBank({str(self.folder)!r}, faces={len(self)}, resolution={self.resolution}, "
                f"face_type={self.face_type!r}, images={self.images.shape})")


def warp_crop(image: np.ndarray, out_from_in: np.ndarray, size: int) -> np.ndarray:
    """Resample an image into a ``size``-pixel square through an affine, area-averaging when shrinking.

    ``cv2.warpAffine`` has no area filter (it treats ``INTER_AREA`` as bilinear), so a crop that
    shrinks is first reduced with ``cv2.resize(INTER_AREA)`` and the rest done by the warp.

    Args:
        image: ``(H, W, C)`` or ``(H, W)`` image of any dtype OpenCV warps.
        out_from_in: ``(2, 3)`` affine from ``image`` pixels to output pixels.
        size: output side in pixels.

    Returns:
        ``(size, size[, C])`` image of the same dtype; borders replicate.
    """
    m = np.asarray(out_from_in, np.float64)
    scale = affine_scale(m)
    if scale < 0.95:
        h, w = image.shape[:2]
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        small_from_in = np.array([[nw / w, 0.0, 0.5 * nw / w - 0.5], [0.0, nh / h, 0.5 * nh / h - 0.5]])
        m = compose(m, invert(small_from_in))
    if image.shape[:2] == (size, size) and np.allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-6):
        return image.copy()
    interp = cv2.INTER_CUBIC if affine_scale(m) > 1.05 else cv2.INTER_LINEAR
    out = cv2.warpAffine(image, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    return out


def priority_weights(landmarks: np.ndarray, size: int, *, eyes: float = 3.0, mouth: float = 2.0) -> np.ndarray:
    """Per-pixel loss weights with DeepFaceLab's "eyes and mouth priority".

    1 everywhere; ``eyes`` inside each eye's hull (points 36..41, 42..47) and ``mouth`` inside the outer
    lips' hull (48..59), each dilated by about 12 % of the distance between the eye centres (the higher
    weight wins where regions overlap).

    Args:
        landmarks: ``(68, 2)`` landmarks in crop pixels.
        size: crop side in pixels.
        eyes: weight in the eye regions, >= 1.
        mouth: weight in the mouth region, >= 1.

    Returns:
        ``(size, size)`` float32 weights >= 1.
    """
    if eyes < 1 or mouth < 1:
        raise ConfigError(f"priority weights must be >= 1, got eyes={eyes}, mouth={mouth}")
    pts = np.asarray(landmarks, np.float64)
    w = np.ones((size, size), np.float32)
    if eyes == 1 and mouth == 1:
        return w
    # Fill the lower weight first; the dilation below is a max filter, so the higher weight wins ties.
    regions = sorted([(mouth, OUTER_LIPS), (eyes, LEFT_EYE), (eyes, RIGHT_EYE)], key=lambda t: t[0])
    for value, part in regions:
        if value > 1:
            hull = cv2.convexHull(np.round(pts[part]).astype(np.int32))
            cv2.fillConvexPoly(w, hull, float(value))
    iod = float(np.linalg.norm(pts[LEFT_EYE].mean(axis=0) - pts[RIGHT_EYE].mean(axis=0)))
    radius = max(1, round(0.12 * iod))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(w, kernel)


class PairBatches:
    """Deterministic augmented batches for a (src, dst) pair of face banks.

    The batch of step ``s`` is built from ``np.random.default_rng([seed, s])`` alone, split into
    independent streams (indices, affine, warp, colour, colour-transfer partner) so that switching one
    augmentation off does not change the others. Per sample: optional RCT of a src face toward a random
    dst face, optional LAB colour jitter (input and target alike), one random similarity (+ flip) for
    input, target, mask and weights, and the random warp on the input only.

    Args:
        src: face bank of the identity to put in.
        dst: face bank of the plate's person; same resolution and face type as ``src``.
        batch_size: faces per side, >= 1.
        seed: run seed, >= 0.
        warp: random grid warp of the inputs.
        flip: random horizontal flips.
        color_jitter: random LAB lightness/contrast/tint changes.
        color_transfer: recolour src faces toward a random dst face (RCT) in input and target.
        workers: background threads of :meth:`iterate` (0 = build batches in the caller).
        eyes: loss weight of the eye regions (see :func:`priority_weights`).
        mouth: loss weight of the mouth region.
        rotation: random rotation range in degrees.
        scale: random scale range (fraction).
        shift: random shift range (fraction of the crop side).
        warp_strength: random-warp displacement sigma as a fraction of the crop side.
    """

    def __init__(self, src: FaceBank, dst: FaceBank, *, batch_size: int, seed: int, warp: bool = True,
                 flip: bool = True, color_jitter: bool = True, color_transfer: bool = False, workers: int = 2,
                 eyes: float = 3.0, mouth: float = 2.0, rotation: float = 10.0, scale: float = 0.05,
                 shift: float = 0.05, warp_strength: float = 0.025) -> None:
        if src.resolution != dst.resolution or src.face_type != dst.face_type:
            raise ConfigError(f"src and dst face banks differ: {src.resolution} px {src.face_type} vs "
                              f"{dst.resolution} px {dst.face_type}")
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        if seed < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        if workers < 0:
            raise ConfigError(f"workers must be >= 0, got {workers}")
        if eyes < 1 or mouth < 1:
            raise ConfigError(f"priority weights must be >= 1, got eyes={eyes}, mouth={mouth}")
        self.src, self.dst = src, dst
        self.batch_size, self.seed = batch_size, seed
        self.warp, self.flip, self.color_jitter, self.color_transfer = warp, flip, color_jitter, color_transfer
        self.workers = workers
        self.eyes, self.mouth = eyes, mouth
        self.affine_options = {"rotation": rotation, "scale": scale, "shift": shift}
        self.warp_strength = warp_strength
        self._dst_stats: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(dst)

    @property
    def resolution(self) -> int:
        return self.src.resolution

    def _dst_lab_stats(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        stats = self._dst_stats[i]
        if stats is None:  # a benign race: two threads may compute the same value
            stats = self._dst_stats[i] = lab_stats(self.dst.images[i], self.dst.masks[i])
        return stats

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """The batch of training step ``step`` (a pure function of ``seed`` and ``step``).

        Returns:
            ``src_in``, ``src_target``, ``dst_in``, ``dst_target``: ``(B, 3, R, R)`` float32 RGB in [0, 1];
            ``src_mask``, ``dst_mask``: ``(B, 1, R, R)`` float32 0/1; ``src_weight``, ``dst_weight``:
            ``(B, 1, R, R)`` float32 >= 1.
        """
        if step < 0:
            raise ConfigError(f"step must be >= 0, got {step}")
        rng = np.random.default_rng([self.seed, step])
        out: dict[str, torch.Tensor] = {}
        for side, bank in (("src", self.src), ("dst", self.dst)):
            streams = rng.spawn(5)
            for key, value in self._side(bank, side == "src" and self.color_transfer, *streams).items():
                out[f"{side}_{key}"] = torch.from_numpy(value)
        return out

    def _side(self, bank: FaceBank, transfer: bool, r_index: np.random.Generator, r_affine: np.random.Generator,
              r_warp: np.random.Generator, r_color: np.random.Generator,
              r_partner: np.random.Generator) -> dict[str, np.ndarray]:
        b, r = self.batch_size, bank.resolution
        inputs = np.empty((b, r, r, 3), np.float32)
        targets = np.empty((b, r, r, 3), np.float32)
        masks = np.empty((b, 1, r, r), np.float32)
        weights = np.empty((b, 1, r, r), np.float32)
        indices = r_index.integers(len(bank), size=b)
        partners = r_partner.integers(len(self.dst), size=b)
        for j, i in enumerate(indices):
            image = bank.images[i].astype(np.float32) * np.float32(1 / 255)
            if transfer:
                image = transfer_lab_stats(image, *self._dst_lab_stats(int(partners[j])), bank.masks[i])
            if self.color_jitter:
                image = color_jitter_lab(r_color, image)
            aug_from_crop = random_affine(r_affine, r, flip=self.flip, **self.affine_options)
            cv2.warpAffine(image, aug_from_crop, (r, r), dst=targets[j], flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
            if self.warp:
                map_x, map_y = random_warp_grid(r_warp, r, strength=self.warp_strength)
                # The input is the target warped by the grid: sample the crop at crop_from_aug(grid(p)).
                a = invert(aug_from_crop).astype(np.float32)
                src_x = a[0, 0] * map_x + a[0, 1] * map_y + a[0, 2]
                src_y = a[1, 0] * map_x + a[1, 1] * map_y + a[1, 2]
                cv2.remap(image, src_x, src_y, cv2.INTER_LINEAR, dst=inputs[j], borderMode=cv2.BORDER_REPLICATE)
            else:
                inputs[j] = targets[j]
            mask = cv2.warpAffine(bank.masks[i], aug_from_crop, (r, r), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            masks[j, 0] = mask > 127
            landmarks = transform_points(aug_from_crop, bank.landmarks[i])
            weights[j, 0] = priority_weights(landmarks, r, eyes=self.eyes, mouth=self.mouth)
        return {"in": np.ascontiguousarray(inputs.transpose(0, 3, 1, 2)),
                "target": np.ascontiguousarray(targets.transpose(0, 3, 1, 2)),
                "mask": masks, "weight": weights}

    def iterate(self, start_step: int, stop_step: int | None = None) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """Yield ``(step, batch(step))`` for ``start_step <= step < stop_step`` (endless if ``None``), in order.

        Batches are built ahead by ``workers`` background threads, at most ``workers + 1`` of them at a
        time (memory stays bounded); the results equal serial :meth:`batch` calls. Time spent blocked in
        ``next()`` is the trainer's data wait. Closing the generator cancels the look-ahead.
        """
        if self.workers == 0:
            step = start_step
            while stop_step is None or step < stop_step:
                yield step, self.batch(step)
                step += 1
            return
        look_ahead = self.workers + 1
        pending: deque[tuple[int, Future]] = deque()
        next_step = start_step
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="vfxswap-batches") as pool:
            try:
                while True:
                    while len(pending) < look_ahead and (stop_step is None or next_step < stop_step):
                        pending.append((next_step, pool.submit(self.batch, next_step)))
                        next_step += 1
                    if not pending:
                        return
                    step, future = pending.popleft()
                    yield step, future.result()
            finally:
                for _, future in pending:
                    future.cancel()


__all__ = ["BATCH_KEYS", "FaceBank", "PairBatches", "priority_weights", "warp_crop"]
