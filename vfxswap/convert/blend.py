"""Face masks and compositing the swapped face back into the plate.

Pure functions: arrays in, arrays (or an in-place edit of the frame passed in) out.

Geometry follows :mod:`vfxswap.faces.align`: ``frame_from_face`` is the ``(2, 3)`` affine from aligned-
crop pixels to frame pixels (the inverse of ``face_from_frame``), pixel centres at integer coordinates.

Compositing touches only the face's region of interest (ROI): the axis-aligned bounding box of the
warped crop square, padded by :data:`ROI_PAD` pixels and clipped to the frame. The patch and the mask
are warped straight into the ROI (never into a full-size frame); :func:`composite` then cuts the ROI
to the warped mask's support, blends there in float32 code values and writes back only where the
warped mask is > 0, so every pixel outside the mask stays bit-exact.

Blend methods live in :data:`BLEND_METHODS`; a method is a function
``(plate, patch, mask, *, dtype) -> blended`` over ROI-sized float32 arrays (see :data:`BlendFn`),
so plugins can add their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Literal, get_args

import cv2
import numpy as np
from scipy import fft as sfft

from ..errors import ConfigError
from ..faces.geometry import affine_scale, transform_points
from ..faces.masks import erode_dilate, feather_mask
from ..registry import Registry

MaskSource = Literal["hull", "learned", "learned*hull"]
MASK_SOURCES: tuple[str, ...] = get_args(MaskSource)

#: Pixels added around the warped crop's bounding box (room for interpolation taps).
ROI_PAD = 2
#: Most Laplacian-pyramid levels; fewer when the ROI is small (the coarsest level keeps >= 8 pixels).
LAPLACIAN_LEVELS = 5
#: The Poisson clone region is where the warped mask is >= this (the feathered mask's mid-edge).
CLONE_THRESHOLD = 0.5
#: Pixels of replicated border around the ROI before cloning (keeps the region off the clone's border).
CLONE_PAD = 8
#: Erosion (3x3, iterations) of the clone region before its gradients are used (OpenCV's own value).
_CLONE_ERODE = 3

_CODE_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}

BlendFn = Callable[..., np.ndarray]
"""``fn(plate, patch, mask, *, dtype) -> blended``.

Args:
    plate: ``(h, w, 3)`` float32 ROI of the frame in code values (uint8/uint16 frames scaled to [0, 1];
        float32 frames as they are, possibly scene-linear above 1).
    patch: ``(h, w, 3)`` float32 swapped face warped into the ROI, same space as ``plate``.
    mask: ``(h, w)`` float32 warped mask in [0, 1].
    dtype: the frame's dtype (a method may take an exact 8-bit path for uint8 frames).

Returns:
    ``(h, w, 3)`` float32 blended ROI; its pixels where ``mask`` is 0 are ignored (the caller writes
    back only where ``mask > 0``). Inputs must not be modified.
"""

BLEND_METHODS: Registry[BlendFn] = Registry("blend method")


# --------------------------------------------------------------------------------------------- masks
def face_mask(*, source: MaskSource, hull: np.ndarray, learned: np.ndarray | None = None,
              erode: int = 0, feather: int = 0) -> np.ndarray:
    """The mask a swapped face is composited with, in crop pixels.

    Args:
        source: ``hull`` (landmark hull), ``learned`` (the model's mask head) or ``learned*hull``
            (their product: the learned mask limited to the hull).
        hull: ``(S, S)`` float32 hull mask in [0, 1] (see :func:`vfxswap.faces.masks.hull_mask`).
        learned: ``(S, S)`` or ``(S, S, 1)`` float mask in [0, 1] from the model, or None.
        erode: crop pixels to erode (> 0) or dilate (< 0) the combined mask by.
        feather: width in crop pixels of the soft edge (Gaussian sigma ``feather / 2``); 0 = as is.

    Returns:
        ``(S, S)`` float32 mask in [0, 1].

    Raises:
        ConfigError: unknown source, bad shapes, negative feather, or a learned source without a
            learned mask.
    """
    if source not in MASK_SOURCES:
        raise ConfigError(f"unknown mask source {source!r}; choose one of: {', '.join(MASK_SOURCES)}")
    if feather < 0:
        raise ConfigError(f"mask feather must be >= 0 pixels, got {feather}")
    hull = np.asarray(hull)
    if hull.ndim != 2 or hull.shape[0] != hull.shape[1]:
        raise ConfigError(f"hull mask must be (S, S), got shape {hull.shape}")
    if source == "hull":
        mask = hull.astype(np.float32, copy=True)
    else:
        if learned is None:
            raise ConfigError(f"mask source {source!r} needs a learned mask but the model has no mask "
                              "head; use --mask hull")
        learned = np.asarray(learned)
        if learned.ndim == 3 and learned.shape[2] == 1:
            learned = learned[..., 0]
        if learned.shape != hull.shape:
            raise ConfigError(f"learned mask must have the hull's shape {hull.shape}, got {learned.shape}")
        mask = learned.astype(np.float32, copy=True)
        if source == "learned*hull":
            mask *= hull.astype(np.float32, copy=False)
    np.clip(mask, 0.0, 1.0, out=mask)
    mask = erode_dilate(mask, int(erode))
    return np.ascontiguousarray(feather_mask(mask, int(feather)), dtype=np.float32)


# ------------------------------------------------------------------------------------------ geometry
def face_roi(frame_from_face: np.ndarray, size: int, frame_shape: tuple[int, ...],
             pad: int = ROI_PAD) -> tuple[slice, slice]:
    """``(rows, cols)`` slices of the frame covered by the warped ``size``-pixel crop.

    The axis-aligned bounding box of the crop square's corners (its outer pixel edges, at -0.5 and
    ``size - 0.5``) mapped by ``frame_from_face``, padded by ``pad`` pixels and clipped to the frame.
    Empty slices when the face lies wholly outside the frame.
    """
    m = _check_affine(frame_from_face)
    h, w = int(frame_shape[0]), int(frame_shape[1])
    e = size - 0.5
    corners = transform_points(m, np.array([[-0.5, -0.5], [e, -0.5], [-0.5, e], [e, e]]))
    lo = np.floor(corners.min(axis=0)) - pad
    hi = np.ceil(corners.max(axis=0)) + pad + 1
    x0, y0 = int(np.clip(lo[0], 0, w)), int(np.clip(lo[1], 0, h))
    x1, y1 = int(np.clip(hi[0], x0, w)), int(np.clip(hi[1], y0, h))
    return slice(y0, y1), slice(x0, x1)


def warped_mask(mask: np.ndarray, frame_from_face: np.ndarray,
                frame_shape: tuple[int, ...]) -> tuple[tuple[slice, slice], np.ndarray]:
    """A crop-space mask warped into its ROI of the frame.

    Args:
        mask: ``(S, S)`` float32 mask in [0, 1], crop pixels.
        frame_from_face: ``(2, 3)`` affine, crop pixels -> frame pixels.
        frame_shape: ``(H, W, ...)`` of the frame.

    Returns:
        ``((rows, cols), mask_roi)``: the ROI slices (see :func:`face_roi`) and the ``(h, w)`` float32
        mask in [0, 1] over them (bilinear, 0 outside the crop). ``image[rows, cols]`` is the ROI.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ConfigError(f"mask must be (S, S), got shape {mask.shape}")
    rows, cols = face_roi(frame_from_face, mask.shape[0], frame_shape)
    h, w = rows.stop - rows.start, cols.stop - cols.start
    if h == 0 or w == 0:
        return (rows, cols), np.zeros((h, w), np.float32)
    m = _roi_matrix(frame_from_face, cols.start, rows.start)
    out = cv2.warpAffine(mask.astype(np.float32, copy=False), m, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return (rows, cols), np.clip(out, 0.0, 1.0, out=out)


def matte(image_shape: tuple[int, ...],
          masks_and_affines: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The matte pass of a frame: every face's warped mask, combined with max.

    Args:
        image_shape: ``(H, W)`` or ``(H, W, C)`` of the frame.
        masks_and_affines: ``(mask (S, S) float32 [0, 1], frame_from_face (2, 3))`` per face.

    Returns:
        ``(H, W)`` float32 matte in [0, 1] (0 where no face).
    """
    out = np.zeros((int(image_shape[0]), int(image_shape[1])), np.float32)
    for mask, frame_from_face in masks_and_affines:
        sl, m = warped_mask(mask, frame_from_face, out.shape)
        if m.size:
            np.maximum(out[sl], m, out=out[sl])
    return out


# --------------------------------------------------------------------------------------- compositing
def composite(image: np.ndarray, swapped: np.ndarray, mask: np.ndarray, frame_from_face: np.ndarray,
              *, method: str = "feather") -> None:
    """Blend a swapped face into ``image`` in place, touching only pixels under the warped mask.

    Args:
        image: ``(H, W, 3)`` uint8, uint16 or float32 frame, edited in place. Blending runs in float32
            code values (uint8 / 255, uint16 / 65535, float32 as is: a scene-linear float frame keeps
            values above 1, and the face must then already be in the frame's space; colour
            conversion is the caller's job). Results are rounded back to the frame's dtype.
        swapped: ``(S, S, 3)`` float32 swapped face in the frame's channel order and code values
            ([0, 1] for integer frames).
        mask: ``(S, S)`` float32 mask in [0, 1] (see :func:`face_mask`).
        frame_from_face: ``(2, 3)`` affine, crop pixels -> frame pixels.
        method: a name in :data:`BLEND_METHODS` (``feather``, ``laplacian``, ``poisson``, plugins).

    Raises:
        ConfigError: unknown method, or arrays of the wrong shape or dtype.

    Pixels where the warped mask is exactly 0 (everything outside the ROI included) are left bit-exact.
    """
    blend = BLEND_METHODS.get(method)
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(f"image must be (H, W, 3), got {_desc(image)}")
    if image.dtype not in _CODE_MAX:
        raise ConfigError(f"image dtype must be uint8, uint16 or float32, got {image.dtype}")
    if not image.flags.writeable:
        raise ConfigError("image is read-only; composite edits the frame in place (pass a writable copy)")
    swapped = np.asarray(swapped)
    size = swapped.shape[0] if swapped.ndim == 3 else -1
    if swapped.shape != (size, size, 3):
        raise ConfigError(f"swapped face must be (S, S, 3), got {_desc(swapped)}")
    if np.shape(mask) != (size, size):
        raise ConfigError(f"mask must be ({size}, {size}) like the swapped face, got {_desc(mask)}")

    (rows, cols), mask_roi = warped_mask(mask, frame_from_face, image.shape)
    if mask_roi.size == 0:
        return
    inside = mask_roi > 0
    # Shrink the ROI to the mask's support: the crop's corners (and the face's surroundings) hold no mask.
    x, y, w, h = cv2.boundingRect(inside.view(np.uint8))
    if w == 0 or h == 0:
        return
    inside, mask_roi = inside[y:y + h, x:x + w], mask_roi[y:y + h, x:x + w]
    rows = slice(rows.start + y, rows.start + y + h)
    cols = slice(cols.start + x, cols.start + x + w)
    m = _roi_matrix(frame_from_face, cols.start, rows.start)
    interp = cv2.INTER_CUBIC if affine_scale(m) > 1.0 else cv2.INTER_LINEAR
    patch = cv2.warpAffine(swapped.astype(np.float32, copy=False), m, (w, h), flags=interp,
                           borderMode=cv2.BORDER_REPLICATE)

    view = image[rows, cols]
    scale = _CODE_MAX[image.dtype]
    plate = view.astype(np.float32) if scale == 1.0 else view.astype(np.float32) * np.float32(1.0 / scale)
    out = blend(plate, patch, mask_roi, dtype=image.dtype)
    if scale != 1.0:  # round half up: values are >= 0 once clipped
        out = out * np.float32(scale)
        out += np.float32(0.5)
        np.clip(out, 0.0, scale, out=out)
    out = out.astype(image.dtype, copy=False)
    # Masked write-back. cv2.copyTo writes into a ROI view with packed pixels in place (~100x faster
    # than np.copyto with a broadcast mask); other layouts (a BGR view, Fortran order) take NumPy.
    packed = view.strides[2] == view.itemsize and view.strides[1] == 3 * view.itemsize
    if not packed or cv2.copyTo(out, inside.view(np.uint8), view) is not view:
        np.copyto(view, out, where=inside[..., None])


# ------------------------------------------------------------------------------------- blend methods
@BLEND_METHODS.register("feather")
def feather_blend(plate: np.ndarray, patch: np.ndarray, mask: np.ndarray, *, dtype: np.dtype) -> np.ndarray:
    """Alpha blend: ``plate + mask * (patch - plate)`` (the mask's own feather makes the soft edge)."""
    out = patch - plate
    out *= mask[..., None]
    out += plate
    return out


@BLEND_METHODS.register("laplacian")
def laplacian_blend(plate: np.ndarray, patch: np.ndarray, mask: np.ndarray, *,
                    dtype: np.dtype) -> np.ndarray:
    """Multi-band blend (Burt & Adelson 1983) inside the ROI, confined to the mask.

    Each band of the Laplacian pyramid of ``patch - plate`` is weighted by the matching level of the
    mask's Gaussian pyramid (up to :data:`LAPLACIAN_LEVELS` levels, fewer for small ROIs), so low
    frequencies (skin tone, shading) cross the seam over a wide band while detail keeps a narrow one.
    The result is then alpha'd with the mask itself, so pixels the mask does not cover stay the plate
    (the transition happens inside the mask's edge, not beyond it). ROIs under 16 pixels blend as
    ``feather``.
    """
    h, w = mask.shape
    levels = min(LAPLACIAN_LEVELS, int(math.log2(max(min(h, w), 1))) - 3)
    if levels < 1:
        return feather_blend(plate, patch, mask, dtype=dtype)
    diff = patch - plate
    bands, masks = [], [mask]
    for _ in range(levels):
        down = cv2.pyrDown(diff)
        bands.append(diff - cv2.pyrUp(down, dstsize=(diff.shape[1], diff.shape[0])))
        masks.append(cv2.pyrDown(masks[-1]))
        diff = down
    acc = diff * masks[-1][..., None]
    for band, m in zip(reversed(bands), reversed(masks[:-1])):
        acc = cv2.pyrUp(acc, dstsize=(band.shape[1], band.shape[0]))
        acc += band * m[..., None]
    acc *= mask[..., None]
    acc += plate
    return acc


@BLEND_METHODS.register("poisson")
def poisson_blend(plate: np.ndarray, patch: np.ndarray, mask: np.ndarray, *, dtype: np.dtype) -> np.ndarray:
    """Poisson (gradient-domain) clone of the patch into the plate, then alpha'd with the mask.

    The clone region is ``mask >= CLONE_THRESHOLD``; inside it the result keeps the patch's gradients
    and matches the plate along the region's edge (Pérez et al. 2003, OpenCV's ``NORMAL_CLONE``). The
    clone is then blended with the feathered mask, so pixels outside the mask stay the plate.

    Placement is stable: the patch arrives already warped into ROI coordinates by the face's affine,
    and ``cv2.seamlessClone`` gets ``NORMAL_CLONE_WIDE`` with the canvas centre as its point, which
    places the source canvas onto the destination one-to-one. The centre never comes from the mask
    (whose bounding box or moments jitter from frame to frame) and no rounding shifts the face.

    Faces at the frame edge: the ROI (plate, patch and region) is padded by :data:`CLONE_PAD` pixels of
    replicated border first, so the clone region never touches the solver's border (where
    ``seamlessClone`` fails); along a frame edge the clone then matches the replicated plate just
    beyond it. Regions smaller than 8 pixels (or an empty one) blend as ``feather``.

    uint8 frames use ``cv2.seamlessClone`` (8-bit only). uint16 and float32 frames solve the same
    equation in float32 with SciPy's fast sine transform (:func:`poisson_clone`), so high-bit-depth
    and scene-linear plates are not quantised to 8 bits.
    """
    region = mask >= CLONE_THRESHOLD
    if not region.any():
        return feather_blend(plate, patch, mask, dtype=dtype)
    ys, xs = np.nonzero(region)
    if ys.max() - ys.min() < 8 or xs.max() - xs.min() < 8:
        return feather_blend(plate, patch, mask, dtype=dtype)
    p = CLONE_PAD
    border = cv2.BORDER_REPLICATE
    src = cv2.copyMakeBorder(patch, p, p, p, p, border)
    dst = cv2.copyMakeBorder(plate, p, p, p, p, border)
    reg = cv2.copyMakeBorder(region.view(np.uint8), p, p, p, p, border)
    reg[[0, -1], :] = 0
    reg[:, [0, -1]] = 0
    if np.dtype(dtype) == np.uint8:
        src8 = np.rint(np.clip(src, 0.0, 1.0) * 255.0).astype(np.uint8)
        dst8 = np.rint(dst * 255.0).astype(np.uint8)
        hh, ww = reg.shape
        # seamlessClone erodes its mask argument in place: hand it a throwaway.
        cloned8 = cv2.seamlessClone(src8, dst8, reg * np.uint8(255), (ww // 2, hh // 2),
                                    cv2.NORMAL_CLONE_WIDE)
        cloned = cloned8[p:-p, p:-p].astype(np.float32) * np.float32(1.0 / 255.0)
    else:
        cloned = poisson_clone(src, dst, reg.astype(bool))[p:-p, p:-p]
    out = cloned - plate
    out *= mask[..., None]
    out += plate
    return out


def poisson_clone(src: np.ndarray, dst: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Float32 seamless clone of ``src`` into ``dst`` over ``region`` (OpenCV's NORMAL_CLONE equation).

    Solves ``lap(f) = div(v)`` where the guidance ``v`` is the gradient of ``src`` inside ``region``
    eroded by 3 pixels (as OpenCV does) and the gradient of ``dst`` elsewhere, with ``f = dst`` on the
    border of the region's bounding box (grown by a pixel, then to a fast transform length). Written as
    ``f = dst + g``, ``g`` is 0 outside the box and solved by a type-I discrete sine transform.

    Args:
        src: ``(h, w, C)`` float32 source, aligned with ``dst``.
        dst: ``(h, w, C)`` float32 destination.
        region: ``(h, w)`` bool; must not touch the outer 1-pixel ring.

    Returns:
        ``(h, w, C)`` float32 clone (equal to ``dst`` outside the solved box).
    """
    h, w = region.shape
    ys, xs = np.nonzero(region)
    out = dst.astype(np.float32, copy=True)
    if ys.size == 0:
        return out
    # Box with a Dirichlet ring just outside the region, grown so its interior length + 1 is a fast FFT size.
    y0, y1 = _fast_span(int(ys.min()) - 1, int(ys.max()) + 2, h)
    x0, x1 = _fast_span(int(xs.min()) - 1, int(xs.max()) + 2, w)
    guide = cv2.erode(region[y0:y1, x0:x1].view(np.uint8), np.ones((3, 3), np.uint8),
                      iterations=_CLONE_ERODE).astype(np.float32)[..., None]
    diff = src[y0:y1, x0:x1].astype(np.float32) - out[y0:y1, x0:x1]
    gx = np.zeros_like(diff)
    gy = np.zeros_like(diff)
    np.subtract(diff[:, 1:], diff[:, :-1], out=gx[:, :-1])
    np.subtract(diff[1:], diff[:-1], out=gy[:-1])
    gx *= guide
    gy *= guide
    div = (gx[1:-1, 1:-1] - gx[1:-1, :-2]) + (gy[1:-1, 1:-1] - gy[:-2, 1:-1])
    ny, nx = div.shape[:2]
    eig_y = 2.0 * np.cos(np.pi * np.arange(1, ny + 1) / (ny + 1))
    eig_x = 2.0 * np.cos(np.pi * np.arange(1, nx + 1) / (nx + 1))
    denom = (eig_y[:, None] + eig_x[None, :] - 4.0).astype(np.float32)
    coeff = sfft.dstn(div, type=1, axes=(0, 1))
    coeff /= denom[..., None]
    out[y0 + 1:y1 - 1, x0 + 1:x1 - 1] += sfft.idstn(coeff, type=1, axes=(0, 1))
    return out


# ------------------------------------------------------------------------------------------- helpers
def _fast_span(lo: int, hi: int, limit: int) -> tuple[int, int]:
    """``[lo, hi)`` clipped to ``[0, limit)``, grown within it so that ``hi - lo - 1`` is a fast FFT length."""
    lo, hi = max(lo, 0), min(hi, limit)
    n = min(sfft.next_fast_len(hi - lo - 1) + 1, limit)
    if n > hi - lo:
        lo = max(0, lo - (n - (hi - lo)) // 2)
        hi = min(limit, lo + n)
        lo = hi - n
    return lo, hi


def _roi_matrix(frame_from_face: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """``roi_from_face``: the affine with the ROI's top-left corner moved to the origin."""
    m = np.array(frame_from_face, dtype=np.float64)
    m[0, 2] -= x0
    m[1, 2] -= y0
    return m


def _check_affine(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (2, 3) or not np.isfinite(m).all():
        raise ConfigError(f"frame_from_face must be a finite (2, 3) affine, got {_desc(m)}")
    return m


def _desc(a: object) -> str:
    return f"{a.dtype}{list(a.shape)}" if isinstance(a, np.ndarray) else type(a).__name__
