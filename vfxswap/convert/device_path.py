"""The converter's device-resident face path: align, swap, colour, mask and blend as torch ops.

One iterator stage (:class:`DeviceSwap`) replaces ``align -> swap -> composite`` when the swap runs
on a GPU (``--compositor torch``, or ``auto`` with a CUDA runner). Each frame with faces to swap is
uploaded once, in its own dtype; the faces are cut out of it on the device, go through the model in
micro-batches gathered across frames, are colour-matched, masked and blended into it there, and the
frame (and its matte) come back once. Only face-sized data crosses otherwise: the hull masks (drawn
by OpenCV, ``S x S``), the colour statistics (a few numbers per face, averaged per track on the host
by :class:`~vfxswap.convert.color.ColorSmoother`) and the swapped crops kept in ``FrameWork.swaps``.

The ops are :mod:`vfxswap.convert.torch_ops`, written once for CPU and CUDA tensors, so this stage
runs (and is tested) on the CPU as well. What has no device version runs on the host on face-sized
data: OpenColorIO transforms of the crops, colour methods outside
:data:`~vfxswap.convert.torch_ops.DEVICE_COLOR_METHODS`, blend methods outside
:data:`~vfxswap.convert.torch_ops.DEVICE_BLEND_METHODS` (the ROI only).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from ..accel.runtime import SwapRunner
from ..config import ConvertConfig
from ..faces.align import face_from_frame, frame_from_face
from ..faces.geometry import transform_points
from ..faces.masks import hull_mask
from ..model.card import ModelCard
from ..types import AlignedFace, Face, FrameWork, SwapResult
from . import torch_ops
from .color import ColorSmoother
from .stages import ColorPath

log = logging.getLogger(__name__)

#: The parts of the stage's busy time, as reported in ``ConvertReport.stage_seconds``.
PARTS = ("upload", "align", "swap", "composite", "download")


def device_path_wanted(compositor: str, runner: SwapRunner) -> bool:
    """Whether ``--compositor`` (``auto``, ``opencv``, ``torch``) runs the faces on the runner's device.

    ``auto`` does when the runner works on a GPU (the frames are going there anyway); on the CPU the
    OpenCV path is as fast and needs no torch copies of the frames.
    """
    if compositor == "torch":
        return True
    return compositor == "auto" and str(runner.device).startswith("cuda")


class DeviceSwap:
    """Stage (iterator transform): FrameWork with faces in, FrameWork with ``swaps``, ``output`` and
    ``matte`` out, everything per face done on ``runner.device``.

    Args:
        runner: a runner with ``swap_tensor`` (every built-in one has it).
        config: converter settings (``color``, ``color_smooth``, ``mask``, ``erode``, ``feather``,
            ``blend``, ``batch``).
        card: the model's card.
        colors: the clip's colour path (OpenColorIO crops go through the host).
        want_matte: build the ``(H, W)`` blend mask of each written frame.

    Attributes:
        seconds: busy time of the whole stage; ``part_seconds``: that time split by :data:`PARTS`
            (CUDA work is synchronised at each part's end, so the split is honest).
    """

    def __init__(self, runner: SwapRunner, config: ConvertConfig, card: ModelCard, colors: ColorPath, *,
                 want_matte: bool) -> None:
        self.runner, self.config, self.card, self.colors = runner, config, card, colors
        self.want_matte = want_matte
        self.device = torch.device(runner.device)
        self.smoother = ColorSmoother(config.color, config.color_smooth)
        self.on_device_color = self.smoother.method.name in torch_ops.DEVICE_COLOR_METHODS
        self.seconds = 0.0
        self.part_seconds = dict.fromkeys(PARTS, 0.0)
        if not self.on_device_color:
            log.info("colour method %s has no device version: it runs on the host on each face crop",
                     config.color)
        if config.blend not in torch_ops.DEVICE_BLEND_METHODS:
            log.info("blend method %s has no device version: it runs on the host on each face's region",
                     config.blend)

    def __call__(self, items: Iterable[FrameWork]) -> Iterator[FrameWork]:
        pending: list[FrameWork] = []
        faces = 0
        for work in items:
            pending.append(work)
            faces += len(work.faces) if work.to_swap else 0
            if faces >= self.config.batch:
                yield from self._flush(pending)
                pending, faces = [], 0
        yield from self._flush(pending)

    # ------------------------------------------------------------------------------------------
    def _flush(self, pending: list[FrameWork]) -> list[FrameWork]:
        todo = [w for w in pending if w.to_swap and w.faces]
        if not todo:
            return pending
        start = time.perf_counter()
        frames = self._timed("upload", lambda: [self._upload(w.frame.image) for w in todo])
        crops, placed = self._timed("align", lambda: self._align(todo, frames))
        rgb, masks = self._timed("swap", lambda: self.runner.swap_tensor(torch.stack(crops)))
        done = self._timed("composite", lambda: self._composite(todo, frames, crops, placed, rgb, masks))
        results = self._timed("download", lambda: self._download(todo, done, placed, crops, rgb, masks))
        self.seconds += time.perf_counter() - start
        by_id = {id(w): r for w, r in zip(todo, results)}
        return [by_id.get(id(w), w) for w in pending]

    def _timed(self, part: str, fn):
        start = time.perf_counter()
        out = fn()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.part_seconds[part] += time.perf_counter() - start
        return out

    def _upload(self, image: np.ndarray) -> torch.Tensor:
        """The frame on the device in its own dtype, ``(H, W, 3)``; a private copy (it is edited in place)."""
        t = torch.from_numpy(np.ascontiguousarray(image))
        return t.to(self.device, copy=True)

    def _align(self, todo: list[FrameWork], frames: list[torch.Tensor]):
        size, face_type = self.card.resolution, self.card.face_type
        crops: list[torch.Tensor] = []
        placed: list[list[tuple[Face, np.ndarray]]] = []  # per frame: (face, face_from_frame)
        for work, frame in zip(todo, frames):
            row = []
            for face in work.faces:
                m = face_from_frame(face.landmarks, size, face_type)
                code = torch_ops.warp_to_face(frame, m, size)  # (3, S, S) code values
                crops.append(self._to_model(code, work))
                row.append((face, m))
            placed.append(row)
        return crops, placed

    def _to_model(self, code: torch.Tensor, work: FrameWork) -> torch.Tensor:
        frame = work.frame
        if self.colors.enabled:  # OpenColorIO runs on the host, on the crop
            host = self.colors.to_model(_hwc(code), frame)
            return _chw(host, self.device)
        return torch_ops.to_model_space(code, dtype=frame.image.dtype, color_space=frame.color_space)

    def _from_model(self, rgb: torch.Tensor, work: FrameWork) -> torch.Tensor:
        frame = work.frame
        if self.colors.enabled:
            return _chw(self.colors.from_model(_hwc(rgb), frame), self.device)
        return torch_ops.from_model_space(rgb, dtype=frame.image.dtype, color_space=frame.color_space)

    def _color(self, swapped: torch.Tensor, plate: torch.Tensor, hull: torch.Tensor, hull_np: np.ndarray,
               track_id) -> torch.Tensor:
        """Colour-match one swapped face (``(3, S, S)`` model space) to the plate's crop."""
        if not self.on_device_color:
            out = self.smoother(_hwc(swapped), _hwc(plate), hull_np, track_id)
            return _chw(out, self.device)
        name = self.smoother.method.name
        params = self.smoother.smooth(torch_ops.estimate(name, swapped, plate, hull), track_id)
        return torch_ops.apply(name, swapped, params)

    def _composite(self, todo, frames, crops, placed, rgb, masks) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        cfg, size = self.config, self.card.resolution
        out = []
        k = 0
        for work, frame, row in zip(todo, frames, placed):
            matte = (torch.zeros(frame.shape[:2], dtype=torch.float32, device=self.device)
                     if self.want_matte and work.to_write else None)
            for face, face_m in row:
                hull_np = hull_mask(transform_points(face_m, face.landmarks), size)
                hull = torch.from_numpy(hull_np).to(self.device)
                matched = self._color(rgb[k], crops[k], hull, hull_np, face.track_id)
                if work.to_write:  # a handle only feeds the colour history
                    learned = masks[k] if self.card.mask_head else None
                    mask = torch_ops.face_mask(source=cfg.mask, hull=hull, learned=learned, erode=cfg.erode,
                                               feather=cfg.feather)
                    m = frame_from_face(face_m)
                    torch_ops.composite_(frame, self._from_model(matched, work), mask, m, method=cfg.blend)
                    if matte is not None:
                        torch_ops.matte_(matte, mask, m)
                k += 1
            out.append((frame, matte))
        return out

    def _download(self, todo, done, placed, crops, rgb, masks) -> list[FrameWork]:
        """The frames (and mattes) back to the host, once each; the face crops as ``aligned``/``swaps``."""
        size, face_type = self.card.resolution, self.card.face_type
        host_crops = torch.stack(crops).permute(0, 2, 3, 1).float().cpu().numpy()
        host_rgb = rgb.permute(0, 2, 3, 1).float().cpu().numpy()
        host_mask = masks.float().cpu().numpy()
        results, k = [], 0
        for work, (frame, matte), row in zip(todo, done, placed):
            aligned, swaps = [], []
            for face, m in row:
                a = AlignedFace(image=host_crops[k], face_from_frame=m, size=size, face_type=face_type, face=face)
                aligned.append(a)
                swaps.append(SwapResult(aligned=a, swapped=host_rgb[k], mask=host_mask[k]))
                k += 1
            done_work = dataclasses.replace(work, aligned=tuple(aligned), swaps=tuple(swaps))
            if work.to_write:
                done_work = dataclasses.replace(done_work, output=frame.cpu().numpy(),
                                                matte=None if matte is None else matte.cpu().numpy())
            results.append(done_work)
        return results


def _hwc(t: torch.Tensor) -> np.ndarray:
    """``(3, S, S)`` tensor -> ``(S, S, 3)`` float32 host array."""
    return np.ascontiguousarray(t.permute(1, 2, 0).float().cpu().numpy())


def _chw(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(S, S, 3)`` host array -> ``(3, S, S)`` float32 tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1).to(device)

