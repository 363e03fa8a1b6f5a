"""Torch twins of the per-face ops: warps, colour transfer, masks and compositing on the model's device.

Written once for CPU and CUDA tensors (everything is allocated on the input's device; there is no
second code path), and checked against the OpenCV/NumPy ops they mirror:
:func:`vfxswap.faces.align.warp_to_face`, :mod:`vfxswap.faces.masks`, :mod:`vfxswap.convert.color`
and :mod:`vfxswap.convert.blend`. Same inputs give the same results to float rounding.

Layouts: images are channels-first ``(3, H, W)`` float32 tensors (``(B, 3, H, W)`` where stated);
masks ``(H, W)`` float32 in [0, 1]; a frame on the device is the decoded frame as it is, ``(H, W, 3)``
uint8, uint16 (``torch.uint16``) or float32, whose *code values* are uint8 / 255, uint16 / 65535 and
float32 as is (possibly scene-linear above 1). Affines are the ``(2, 3)`` float64 NumPy matrices the
host code uses, named ``b_from_a``, pixel centres at integer coordinates (as ``cv2.warpAffine``).

Only tiny data crosses between host and device: affines and filter taps go up, colour statistics
(a few numbers per face, which :class:`~vfxswap.convert.color.ColorSmoother` averages on the host) and
ROI bounds come down. Every op is elementwise, a gather, a reduction or ``grid_sample``: no float32
matmul or convolution, so TF32 settings (``torch.backends.cudnn.allow_tf32``,
``torch.set_float32_matmul_precision``) never change a result.

What runs elsewhere: colour methods outside :data:`DEVICE_COLOR_METHODS` and blend methods outside
:data:`DEVICE_BLEND_METHODS` (:func:`composite_` runs the latter on the host on the ROI only).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..faces.geometry import affine_scale, invert, transform_points
from .blend import BLEND_METHODS, LAPLACIAN_LEVELS, MASK_SOURCES, MaskSource, face_roi
from .color import (MIN_PIXELS, ColorParams, HistogramTransfer, ParametricColorMethod, affine_coefficients, color_method,
                    lab_gain_bias, map_tables)

#: Colour methods with a device version (:func:`estimate`, :func:`apply`); others run on the host.
DEVICE_COLOR_METHODS: tuple[str, ...] = ("none", "rct", "lct", "mkl", "hist")
#: Blend methods :func:`composite_` runs on the device; any other registered one runs on the host.
DEVICE_BLEND_METHODS: tuple[str, ...] = ("feather", "laplacian")

WarpMode = Literal["bilinear", "bicubic"]
WarpBorder = Literal["replicate", "zeros"]

_CODE_MAX = {torch.uint8: 255.0, torch.uint16: 65535.0, torch.float32: 1.0}
_NUMPY_DTYPE = {torch.uint8: np.dtype(np.uint8), torch.uint16: np.dtype(np.uint16),
                torch.float32: np.dtype(np.float32)}
_BY_NAME = {str(v): k for k, v in _NUMPY_DTYPE.items()}
#: Extra frame pixels around a face's footprint cut by :func:`warp_to_face` (bicubic reads 2 beyond).
_CUT_PAD = 3


# ------------------------------------------------------------------------------------------- warps
def warp_affine(image: torch.Tensor, matrix: np.ndarray, size: tuple[int, int], *,
                mode: WarpMode = "bilinear", border: WarpBorder = "replicate") -> torch.Tensor:
    """``cv2.warpAffine`` with ``F.grid_sample``: ``out[y, x] = image[src_from_dst(x, y)]``.

    Bilinear and bicubic (Keys, ``A = -0.75``, as OpenCV) interpolation at exact float positions, as
    OpenCV 5 does. ``replicate`` clamps every tap to the image (``BORDER_REPLICATE``); ``zeros`` reads
    0 beyond it (``BORDER_CONSTANT``, value 0).

    Args:
        image: ``(C, H, W)`` or ``(B, C, H, W)`` floating tensor (computed in float32).
        matrix: ``(2, 3)`` or ``(B, 2, 3)`` float64 ``dst_from_src`` (NumPy, on the host); a batch of
            matrices with a ``(C, H, W)`` image cuts several warps out of one image.
        size: ``(h, w)`` of the output in pixels.
        mode: ``bilinear`` or ``bicubic``.
        border: ``replicate`` or ``zeros``.

    Returns:
        ``(C, h, w)`` float32, or ``(B, C, h, w)`` when the image or the matrix is batched.

    Raises:
        ConfigError: bad mode, border, shapes, or a singular or non-finite matrix.
    """
    if mode not in ("bilinear", "bicubic"):
        raise ConfigError(f"warp mode must be bilinear or bicubic, got {mode!r}")
    if border not in ("replicate", "zeros"):
        raise ConfigError(f"warp border must be replicate or zeros, got {border!r}")
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4) or not image.is_floating_point():
        raise ConfigError(f"image must be a floating (C, H, W) or (B, C, H, W) tensor, got {_desc(image)}")
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape[-2:] != (2, 3) or m.ndim not in (2, 3) or not np.isfinite(m).all():
        raise ConfigError(f"matrix must be a finite (2, 3) or (B, 2, 3) affine, got {_desc(m)}")
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ConfigError(f"warp size must be positive, got {size}")
    batched = image.ndim == 4 or m.ndim == 3
    img = image.float() if image.ndim == 4 else image.float()[None]
    mats = m if m.ndim == 3 else m[None]
    if img.shape[0] == 1 and mats.shape[0] > 1:
        img = img.expand(mats.shape[0], -1, -1, -1)
    if img.shape[0] != mats.shape[0]:
        raise ConfigError(f"{img.shape[0]} images but {mats.shape[0]} matrices")
    grid = _sampling_grid(mats, (h, w), tuple(img.shape[-2:]), img.device)
    out = F.grid_sample(img, grid, mode=mode, padding_mode="border" if border == "replicate" else "zeros",
                        align_corners=False)
    return out if batched else out[0]


def _sampling_grid(dst_from_src: np.ndarray, out_size: tuple[int, int], in_size: tuple[int, int],
                   device: torch.device) -> torch.Tensor:
    """``(B, h, w, 2)`` float32 grid for ``grid_sample(align_corners=False)``.

    The source pixel of output pixel ``(x, y)`` is ``src_from_dst @ (x, y, 1)``; normalised for
    ``align_corners=False`` it is ``(2 s + 1) / W - 1``. That normalisation is folded into the affine
    on the host in float64, and the grid is built by elementwise ops (no matmul: no TF32).
    """
    h, w = out_size
    in_h, in_w = in_size
    theta = np.empty_like(dst_from_src)
    for i, m in enumerate(dst_from_src):
        try:
            theta[i] = invert(m)
        except np.linalg.LinAlgError:
            raise ConfigError(f"the affine {m.tolist()} is singular") from None
    theta[:, 0] *= 2.0 / in_w
    theta[:, 1] *= 2.0 / in_h
    theta[:, 0, 2] += 1.0 / in_w - 1.0
    theta[:, 1, 2] += 1.0 / in_h - 1.0
    t = torch.tensor(theta, dtype=torch.float32, device=device)[:, :, :, None, None]  # (B, 2, 3, 1, 1)
    xs = torch.arange(w, dtype=torch.float32, device=device)
    ys = torch.arange(h, dtype=torch.float32, device=device)[:, None]
    grid = t[:, :, 0] * xs + t[:, :, 1] * ys + t[:, :, 2]  # (B, 2, h, w)
    return grid.permute(0, 2, 3, 1)


def warp_to_face(frame: torch.Tensor, face_from_frame: np.ndarray, size: int) -> torch.Tensor:
    """Cut a face's aligned crop out of a frame on the device (:func:`vfxswap.faces.align.warp_to_face`).

    Same interpolation as the host op: bilinear below scale 1 (OpenCV's ``warpAffine`` treats
    ``INTER_AREA`` as bilinear), bicubic from 1 up; the frame's border replicates. Only the frame's
    pixels under the crop's footprint (its bounding box plus :data:`_CUT_PAD`, clipped to the frame)
    are converted to float and warped, so a 4K frame is never converted whole. Integer frames are
    rounded to their code values like the host op, which warps in the frame's dtype, so the model
    sees the same crop either way.

    Args:
        frame: ``(H, W, 3)`` uint8, uint16 or float32 tensor.
        face_from_frame: ``(2, 3)`` float64 affine, frame pixels -> crop pixels.
        size: crop side ``S`` in pixels.

    Returns:
        ``(3, S, S)`` float32 code values on the frame's device: uint8 frames / 255 and uint16 / 65535
        (in [0, 1]), float32 frames as they are.

    Raises:
        ConfigError: a frame of the wrong shape or dtype, or a bad affine.
    """
    code_max = _check_frame(frame)
    m = _check_affine(face_from_frame, "face_from_frame")
    size = int(size)
    fh, fw = int(frame.shape[0]), int(frame.shape[1])
    mode: WarpMode = "bicubic" if affine_scale(m) >= 1.0 else "bilinear"
    # Frame positions the crop's pixel centres sample (an affine's extremes are at the corners).
    e = size - 1.0
    corners = transform_points(invert(m), np.array([[0.0, 0.0], [e, 0.0], [0.0, e], [e, e]]))
    lo = np.floor(corners.min(axis=0)) - _CUT_PAD
    hi = np.floor(corners.max(axis=0)) + _CUT_PAD
    # Clipping both ends into the frame keeps every replicated tap inside the cut.
    x0, y0 = int(np.clip(lo[0], 0, fw - 1)), int(np.clip(lo[1], 0, fh - 1))
    x1, y1 = int(np.clip(hi[0], 0, fw - 1)) + 1, int(np.clip(hi[1], 0, fh - 1)) + 1
    cut = frame[y0:y1, x0:x1].permute(2, 0, 1).float()
    face_from_cut = m.copy()
    face_from_cut[:, 2] += m[:, :2] @ np.array([x0, y0], dtype=np.float64)
    out = warp_affine(cut, face_from_cut, (size, size), mode=mode, border="replicate")
    if code_max != 1.0:
        out = out.round_().clamp_(0.0, code_max).div_(code_max)
    return out


def warped_mask(mask: torch.Tensor, frame_from_face: np.ndarray,
                frame_shape: tuple[int, ...]) -> tuple[tuple[slice, slice], torch.Tensor]:
    """A crop-space mask warped into its ROI of the frame (:func:`vfxswap.convert.blend.warped_mask`).

    Args:
        mask: ``(S, S)`` float mask in [0, 1], crop pixels.
        frame_from_face: ``(2, 3)`` affine, crop pixels -> frame pixels.
        frame_shape: ``(H, W, ...)`` of the frame.

    Returns:
        ``((rows, cols), mask_roi)``: the ROI slices (:func:`vfxswap.convert.blend.face_roi`) and the
        ``(h, w)`` float32 mask over them (bilinear, 0 outside the crop, clipped to [0, 1]).
    """
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ConfigError(f"mask must be an (S, S) tensor, got {_desc(mask)}")
    m = _check_affine(frame_from_face, "frame_from_face")
    rows, cols = face_roi(m, mask.shape[0], frame_shape)
    h, w = rows.stop - rows.start, cols.stop - cols.start
    if h == 0 or w == 0:
        return (rows, cols), torch.zeros((h, w), dtype=torch.float32, device=mask.device)
    out = warp_affine(mask[None], _shifted(m, cols.start, rows.start), (h, w), mode="bilinear", border="zeros")[0]
    return (rows, cols), out.clamp_(0.0, 1.0)


# ------------------------------------------------------------------------------------ colour spaces
def srgb_encode(linear: torch.Tensor) -> torch.Tensor:
    """IEC 61966-2-1 sRGB transfer function, linear [0, 1] -> encoded [0, 1] (float32; clipped first)."""
    x = linear.float().clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.pow(1 / 2.4) - 0.055)


def srgb_decode(encoded: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`srgb_encode`: encoded [0, 1] -> linear [0, 1] (float32; clipped first)."""
    x = encoded.float().clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).pow(2.4))


def to_model_space(crop: torch.Tensor, *, dtype: np.dtype | torch.dtype | str, color_space: str) -> torch.Tensor:
    """A crop from :func:`warp_to_face` as the model's input, float32 sRGB in [0, 1]
    (:func:`vfxswap.convert.stages.to_model_space`).

    Args:
        crop: ``(3, S, S)`` or ``(B, 3, S, S)`` float32 code values (integer frames already in [0, 1]).
        dtype: the frame's dtype (NumPy or torch ``uint8``/``uint16``/``float32``, or its name).
        color_space: the frame's colour space; float frames in ``linear`` are sRGB-encoded, other
            float frames are clipped to [0, 1].

    Returns:
        float32 tensor of the crop's shape (the crop itself for integer frames).
    """
    if _frame_dtype(dtype) != torch.float32:
        return crop.float()
    return srgb_encode(crop) if color_space == "linear" else crop.float().clamp(0.0, 1.0)


def from_model_space(rgb: torch.Tensor, *, dtype: np.dtype | torch.dtype | str, color_space: str) -> torch.Tensor:
    """Model output (sRGB [0, 1]) back to the frame's code values, as :func:`composite_` blends them
    (:func:`vfxswap.convert.stages.from_model_space`): scene-linear for float ``linear`` frames, else as is.

    Args:
        rgb: ``(3, S, S)`` or ``(B, 3, S, S)`` float tensor in [0, 1].
        dtype, color_space: the frame's, as :func:`to_model_space`.
    """
    if _frame_dtype(dtype) != torch.float32 or color_space != "linear":
        return rgb
    return srgb_decode(rgb)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB -> CIELAB (D65) exactly as OpenCV's ``cvtColor(float32, COLOR_RGB2LAB)``.

    OpenCV's float RGB->Lab is not the textbook formula: it rounds each clipped channel to 1/16384,
    looks the colour up in a 33³ table of fixed-point Lab values and interpolates trilinearly with
    weights in 1/16 of a cell, in integers. This does the same with the same table (read from OpenCV
    at its grid points, so it follows the installed OpenCV), hence bit-identical results.

    Args:
        rgb: ``(3, ...)`` float sRGB; values are clipped to [0, 1].

    Returns:
        ``(3, ...)`` float32 L (0..100), a, b (about ±100).
    """
    lut = _lab_lut(rgb.device)
    q = torch.round(rgb.float().clamp(0.0, 1.0) * 16384.0).to(torch.int32).reshape(3, -1)
    cell, frac = q >> 9, (q >> 5) & 15  # cell 0..32, position in it in 1/16
    base = (cell[0] * 34 + cell[1]) * 34 + cell[2]
    w = [(16 - frac[c], frac[c]) for c in range(3)]
    acc = None
    for dr in (0, 1):
        for dg in (0, 1):
            wrg = w[0][dr] * w[1][dg]
            for db in (0, 1):
                term = lut.index_select(0, base + (dr * 34 + dg) * 34 + db) * (wrg * w[2][db])[:, None]
                acc = term if acc is None else acc.add_(term)
    fixed = ((acc + 2048) >> 12).float() * (1.0 / 16384.0)  # (N, 3)
    lab = torch.stack([fixed[:, 0] * 100.0, fixed[:, 1] * 256.0 - 128.0, fixed[:, 2] * 256.0 - 128.0])
    return lab.reshape(rgb.shape)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIELAB (D65) -> sRGB as OpenCV's ``cvtColor(float32, COLOR_LAB2RGB)`` (its float32 steps and
    constants, and its sRGB curve: a natural cubic spline through 1025 samples).

    Args:
        lab: ``(3, ...)`` float L, a, b.

    Returns:
        ``(3, ...)`` float32 sRGB clipped to [0, 1].
    """
    lab = lab.float()
    li, ai, bi = lab[0], lab[1], lab[2]
    low = li <= 8.0
    y_low = li / 903.3
    fy = torch.where(low, 7.787 * y_low + 16.0 / 116.0, (li + 16.0) / 116.0)
    y = torch.where(low, y_low, fy * fy * fy)
    f_thresh = float(np.float32(6.0) / np.float32(29.0))
    xz = []
    for f in (ai / 500.0 + fy, fy - bi / 200.0):
        xz.append(torch.where(f <= f_thresh, (f - 16.0 / 116.0) / 7.787, f * f * f))
    x, z = xz
    c = _XYZ_TO_RGB
    lin = torch.stack([(c[i][0] * x + c[i][1] * y + c[i][2] * z).clamp_(0.0, 1.0) for i in range(3)])
    tab = _inv_gamma_spline(lin.device)
    s = lin * 1024.0
    ix = s.long().clamp_(0, 1023)
    t = s - ix.float()
    k = tab[ix]  # (3, ..., 4)
    return ((k[..., 3] * t + k[..., 2]) * t + k[..., 1]) * t + k[..., 0]


# OpenCV's XYZ2sRGB_D65 scaled by the D65 white point per column, rounded to float32 (as Lab2RGBfloat).
_XYZ_TO_RGB = [[float(v) for v in row] for row in (
    np.array([[3.240479, -1.53715, -0.498535], [-0.969256, 1.875991, 0.041556], [0.055648, -0.204043, 1.057311]])
    * np.array([0.950456, 1.0, 1.088754])[None, :]).astype(np.float32)]


@functools.lru_cache(maxsize=1)
def _lab_lut_host() -> np.ndarray:
    """OpenCV's fixed-point RGB->Lab table, ``(34³, 3)`` int32 indexed ``(r * 34 + g) * 34 + b``.

    Read back from ``cv2.cvtColor`` at the table's 33³ grid points (``k / 32``), where its trilinear
    interpolation has a single weight and returns the table's entry; padded with zeros to 34 per
    axis so that a cell's far corners never need clamping (at 1.0 their weight is 0).
    """
    k = np.arange(33, dtype=np.float32) / 32.0
    r, g, b = np.meshgrid(k, k, k, indexing="ij")
    lab = cv2.cvtColor(np.stack([r, g, b], -1).reshape(-1, 1, 3), cv2.COLOR_RGB2LAB).reshape(-1, 3)
    fixed = np.stack([lab[:, 0] / 100.0, (lab[:, 1] + 128.0) / 256.0, (lab[:, 2] + 128.0) / 256.0], -1)
    out = np.zeros((34, 34, 34, 3), np.int32)
    out[:33, :33, :33] = np.rint(fixed.astype(np.float64) * 16384.0).reshape(33, 33, 33, 3)
    return out.reshape(-1, 3)


@functools.lru_cache(maxsize=8)
def _lab_lut(device: torch.device) -> torch.Tensor:
    return torch.from_numpy(_lab_lut_host()).to(device)


@functools.lru_cache(maxsize=1)
def _inv_gamma_spline_host() -> np.ndarray:
    """OpenCV's ``sRGBInvGammaTab``: ``(1024, 4)`` float32 cubic coefficients (``splineBuild`` in float32)."""
    n = 1024
    x = np.arange(n + 1, dtype=np.float64) / n
    f = np.where(x <= 0.0031308, x * 12.92, np.power(x, 1.0 / 2.4) * 1.055 - 0.055).astype(np.float32)
    tab = np.zeros((n, 4), np.float32)
    f32 = np.float32
    for i in range(1, n):  # the recurrence is sequential: float32 scalars, as OpenCV's softfloat
        t = (f[i + 1] - f[i] * f32(2) + f[i - 1]) * f32(3)
        ell = f32(1) / (f32(4) - tab[i - 1, 0])
        tab[i, 0] = ell
        tab[i, 1] = (t - tab[i - 1, 1]) * ell
    cn, third = f32(0), f32(0.3333333333333333)
    for i in range(n - 1, -1, -1):
        c = tab[i, 1] - tab[i, 0] * cn
        b = f[i + 1] - f[i] - (cn + c * f32(2)) * third
        d = (cn - c) * third
        tab[i] = (f[i], b, c, d)
        cn = c
    return tab


@functools.lru_cache(maxsize=8)
def _inv_gamma_spline(device: torch.device) -> torch.Tensor:
    return torch.from_numpy(_inv_gamma_spline_host()).to(device)


# -------------------------------------------------------------------------------------------- masks
def erode_dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Erode (``pixels`` > 0) or dilate (< 0) a mask with OpenCV's elliptical kernel
    (:func:`vfxswap.faces.masks.erode_dilate`); 0 returns it as is.

    Each row of the ``(2r+1)``-pixel ellipse is a centred horizontal run; the runs' minima (maxima)
    are built up one width at a time from shifted copies and combined over the rows, so the cost is
    ``O(r)`` elementwise passes. Pixels beyond the mask are ignored, as OpenCV does.

    Args:
        mask: ``(H, W)`` floating tensor.
        pixels: erosion radius (> 0) or dilation radius (< 0), in pixels.

    Returns:
        ``(H, W)`` tensor of the mask's dtype, equal to ``cv2.erode``/``cv2.dilate``.
    """
    pixels = int(pixels)
    if pixels == 0:
        return mask
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or not mask.is_floating_point():
        raise ConfigError(f"mask must be a floating (H, W) tensor, got {_desc(mask)}")
    r = abs(pixels)
    op = torch.minimum if pixels > 0 else torch.maximum
    h, w = mask.shape
    padded = F.pad(mask[None, None], (r, r, r, r), value=math.inf if pixels > 0 else -math.inf)[0, 0]
    halves = _ellipse_half_widths(r)
    runs = [padded]  # runs[a][:, j] = extreme of padded[:, j:j + 2a + 1]
    for a in range(1, max(halves) + 1):
        prev = runs[-1]
        runs.append(op(op(prev[:, :-2], prev[:, 1:-1]), prev[:, 2:]) if a == 1 else op(prev[:, :-2], prev[:, 2:]))
    out = None
    for i, a in enumerate(halves):
        block = runs[a][i:i + h, r - a:r - a + w]
        out = block if out is None else op(out, block)
    return out


@functools.lru_cache(maxsize=64)
def _ellipse_half_widths(r: int) -> tuple[int, ...]:
    """Half widths of the rows of ``cv2.getStructuringElement(MORPH_ELLIPSE, (2r+1, 2r+1))``."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    halves = []
    for row in k:
        cols = np.flatnonzero(row)
        a = r - int(cols[0])
        if int(cols[-1]) != r + a or len(cols) != 2 * a + 1:  # OpenCV's rows are centred runs
            raise ConfigError(f"unexpected elliptical kernel row {row.tolist()} for radius {r}")
        halves.append(a)
    return tuple(halves)


def feather_mask(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Soften a mask's edge over about ``pixels`` pixels (:func:`vfxswap.faces.masks.feather_mask`).

    ``cv2.GaussianBlur(mask, (0, 0), pixels / 2)``: OpenCV's float32 taps (``ksize = round(8 sigma + 1)
    | 1``), reflect-101 borders (repeated for kernels wider than the mask), separable, then clipped.

    Args:
        mask: ``(H, W)`` floating tensor.
        pixels: soft-edge width (> 0); 0 or less returns the mask as is.

    Returns:
        ``(H, W)`` float32 in [0, 1].
    """
    pixels = int(pixels)
    if pixels <= 0:
        return mask
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or not mask.is_floating_point():
        raise ConfigError(f"mask must be a floating (H, W) tensor, got {_desc(mask)}")
    taps = _gaussian_taps(pixels)
    out = _symmetric_filter(mask.float(), taps, -1)
    return _symmetric_filter(out, taps, -2).clamp_(0.0, 1.0)


@functools.lru_cache(maxsize=64)
def _gaussian_taps(pixels: int) -> tuple[float, ...]:
    """OpenCV's float32 Gaussian taps for sigma ``pixels / 2`` and the size GaussianBlur picks."""
    sigma = pixels / 2.0
    ksize = int(np.rint(sigma * 8 + 1)) | 1
    return tuple(float(v) for v in cv2.getGaussianKernel(ksize, sigma, cv2.CV_32F).ravel())


def _symmetric_filter(x: torch.Tensor, taps: tuple[float, ...], dim: int) -> torch.Tensor:
    """Correlate ``x`` along ``dim`` with symmetric odd ``taps`` (reflect-101 border) by shifted adds."""
    r = len(taps) // 2
    n = x.shape[dim]
    p = x.index_select(dim, _reflect101(n, r, x.device))
    out = p.narrow(dim, r, n) * taps[r]
    for i in range(r):
        out += (p.narrow(dim, i, n) + p.narrow(dim, 2 * r - i, n)) * taps[i]
    return out


def _reflect101(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of positions ``-pad .. n + pad - 1`` under OpenCV's BORDER_REFLECT_101 (repeated)."""
    p = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(p)
    period = 2 * n - 2
    q = torch.remainder(p, period)
    return torch.where(q < n, q, period - q)


def face_mask(*, source: MaskSource, hull: torch.Tensor, learned: torch.Tensor | None = None,
              erode: int = 0, feather: int = 0) -> torch.Tensor:
    """The mask a swapped face is composited with, in crop pixels (:func:`vfxswap.convert.blend.face_mask`).

    Args:
        source: ``hull``, ``learned`` or ``learned*hull`` (see :data:`vfxswap.convert.blend.MASK_SOURCES`).
        hull: ``(S, S)`` float tensor in [0, 1], the landmark-hull mask.
        learned: ``(S, S)``, ``(1, S, S)`` or ``(S, S, 1)`` float tensor in [0, 1] from the model, or None.
        erode: crop pixels to erode (> 0) or dilate (< 0) the combined mask by.
        feather: soft-edge width in crop pixels (Gaussian sigma ``feather / 2``); 0 = as is.

    Returns:
        ``(S, S)`` float32 in [0, 1] on the hull's device (a new tensor).

    Raises:
        ConfigError: the same cases and messages as the host op.
    """
    if source not in MASK_SOURCES:
        raise ConfigError(f"unknown mask source {source!r}; choose one of: {', '.join(MASK_SOURCES)}")
    if feather < 0:
        raise ConfigError(f"mask feather must be >= 0 pixels, got {feather}")
    if not isinstance(hull, torch.Tensor) or hull.ndim != 2 or hull.shape[0] != hull.shape[1]:
        raise ConfigError(f"hull mask must be (S, S), got shape {_shape(hull)}")
    if source == "hull":
        mask = hull.float().clone()
    else:
        if learned is None:
            raise ConfigError(f"mask source {source!r} needs a learned mask but the model has no mask "
                              "head; use --mask hull")
        if learned.ndim == 3 and learned.shape[0] == 1:
            learned = learned[0]
        elif learned.ndim == 3 and learned.shape[2] == 1:
            learned = learned[..., 0]
        if learned.shape != hull.shape:
            raise ConfigError(f"learned mask must have the hull's shape {tuple(hull.shape)}, got "
                              f"{tuple(learned.shape)}")
        mask = learned.float().clone()
        if source == "learned*hull":
            mask *= hull.float()
    mask.clamp_(0.0, 1.0)
    mask = erode_dilate(mask, int(erode))
    return feather_mask(mask, int(feather))


# ------------------------------------------------------------------------------------------ colour
def estimate(method: str | ParametricColorMethod, source: torch.Tensor, target: torch.Tensor,
             mask: torch.Tensor) -> ColorParams:
    """Colour statistics of both crops over ``mask > 0.5``, measured on the device
    (:meth:`vfxswap.convert.color.ParametricColorMethod.estimate` on ``(S, S, 3)`` arrays).

    The statistics come back to the host as float64 NumPy arrays in one transfer, ready for
    :class:`~vfxswap.convert.color.ColorSmoother` to average.

    Args:
        method: a name in :data:`DEVICE_COLOR_METHODS`, or such a method's instance (``hist`` levels).
        source: ``(3, S, S)`` float RGB in [0, 1], the swapped face.
        target: ``(3, S, S)`` float RGB in [0, 1], the plate's face, same crop.
        mask: ``(S, S)`` float in [0, 1] (uint8: ``> 127``).

    Returns:
        :class:`~vfxswap.convert.color.ColorParams` with the host method's keys and shapes; unusable
        (empty dicts) with fewer than :data:`~vfxswap.convert.color.MIN_PIXELS` masked pixels.

    Raises:
        ConfigError: a method without a device version, or inputs of the wrong shape.
    """
    inst = _device_method(method)
    src, tgt = _crop(source, "source"), _crop(target, "target")
    if src.shape != tgt.shape:
        raise ConfigError(f"colour match needs source and target crops of one shape, got {tuple(src.shape)} "
                          f"and {tuple(tgt.shape)}")
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(src.shape[1:]):
        raise ConfigError(f"colour match needs an {tuple(src.shape[1:])} mask, got {_desc(mask)}")
    chosen = (mask > 127) if mask.dtype == torch.uint8 else (mask > 0.5)
    index = torch.nonzero(chosen.reshape(-1)).squeeze(1)  # one sync: the count decides what follows
    n = int(index.numel())
    if n < MIN_PIXELS or inst.name == "none":
        return ColorParams(inst.name, {}, {}, n)
    stats = [_stats(inst, img, index) for img in (src, tgt)]
    keys = list(stats[0])
    flat = torch.cat([s[k].reshape(-1) for s in stats for k in keys]).cpu().numpy()
    out, at = [], 0
    for s in stats:
        host = {}
        for k in keys:
            host[k] = flat[at:at + s[k].numel()].reshape(tuple(s[k].shape)).copy()
            at += s[k].numel()
        out.append(host)
    return ColorParams(inst.name, out[0], out[1], n)


def _stats(inst: ParametricColorMethod, image: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
    """float64 device statistics of one ``(3, S, S)`` crop at flat pixel ``index`` (host keys)."""
    if inst.name == "rct":
        px = rgb_to_lab(image.reshape(3, -1)[:, index]).double()
        mean = px.mean(dim=1)
        return {"mean": mean, "std": (px - mean[:, None]).square().mean(dim=1).sqrt()}
    px = image.reshape(3, -1)[:, index]
    if inst.name in ("lct", "mkl"):
        px = px.double()
        mean = px.mean(dim=1)
        d = px - mean[:, None]
        return {"mean": mean, "cov": (d @ d.T) / px.shape[1]}
    # hist: Hazen quantiles at (k + 1/2) / levels of each channel's sorted masked values
    n = px.shape[1]
    pos = np.clip((np.arange(inst.levels) + 0.5) / inst.levels * n - 0.5, 0.0, n - 1)
    i0 = np.minimum(pos.astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    dev = image.device
    rows = torch.sort(px, dim=1).values.double()
    f = torch.tensor(pos - i0, dtype=torch.float64, device=dev)
    return {"quantiles": rows[:, torch.from_numpy(i0).to(dev)] * (1.0 - f) + rows[:, torch.from_numpy(i1).to(dev)] * f}


def apply(method: str | ParametricColorMethod, source: torch.Tensor, params: ColorParams) -> torch.Tensor:
    """Recolour a crop by the transfer from ``params.source`` to ``params.target`` statistics
    (:meth:`vfxswap.convert.color.ParametricColorMethod.apply`).

    The small transfer (3x3 matrices, Lab gains, the ``hist`` lookup table) is built on the host as
    the host method builds it; the pixels are recoloured on the device.

    Args:
        method: a name in :data:`DEVICE_COLOR_METHODS`, or such a method's instance.
        source: ``(3, S, S)`` float RGB in [0, 1].
        params: from :func:`estimate` (or the host method's ``estimate``) of this method, possibly smoothed.

    Returns:
        ``(3, S, S)`` float32 clipped to [0, 1] (a new tensor); the clipped source when ``params`` are
        not usable.

    Raises:
        ConfigError: another method's parameters, or a method without a device version.
    """
    inst = _device_method(method)
    if not isinstance(params, ColorParams) or params.method != inst.name:
        got = params.method if isinstance(params, ColorParams) else type(params).__name__
        raise ConfigError(f"colour method {inst.name!r} cannot apply parameters of {got!r}")
    src = _crop(source, "source")
    if not params.usable or inst.name == "none":
        return src.clamp(0.0, 1.0)
    s, t = params.source, params.target
    if inst.name == "rct":
        gain, bias = lab_gain_bias(s["mean"], s["std"], t["mean"], t["std"])
        out = lab_to_rgb(rgb_to_lab(src) * _column(gain, src.device) + _column(bias, src.device))
    elif inst.name in ("lct", "mkl"):
        out = _affine_rgb(src, inst.matrix(s, t), s["mean"], t["mean"])
    else:
        out = _map_channels(src, np.asarray(s["quantiles"]), np.asarray(t["quantiles"]))
    return out.clamp_(0.0, 1.0)


def _affine_rgb(image: torch.Tensor, matrix: np.ndarray, mu_s: np.ndarray, mu_t: np.ndarray) -> torch.Tensor:
    """``matrix @ (x - mu_s) + mu_t`` per pixel of a ``(3, S, S)`` crop (float32 coefficients, as the host)."""
    c = [[float(v) for v in row] for row in affine_coefficients(matrix, mu_s, mu_t)]
    return torch.stack([c[i][0] * image[0] + c[i][1] * image[1] + c[i][2] * image[2] + c[i][3] for i in range(3)])


def _map_channels(image: torch.Tensor, xp: np.ndarray, fp: np.ndarray) -> torch.Tensor:
    """Per-channel monotone map through knots ``xp -> fp``, slope 1 beyond them
    (:func:`vfxswap.convert.color._map_rows`: the tables of :func:`~vfxswap.convert.color.map_tables` read linearly)."""
    lo, hi, lut = map_tables(xp, fp)
    size = lut.shape[1]
    dev = image.device
    lo32 = _column(lo.astype(np.float32), dev)
    hi32 = _column(hi.astype(np.float32), dev)
    step = _column(((size - 1) / (hi - lo)).astype(np.float32), dev)
    inside = torch.minimum(torch.maximum(image, lo32), hi32)
    pos = (inside - lo32) * step
    i0 = pos.long().clamp_(0, size - 1)
    frac = pos - i0.float()
    table = torch.from_numpy(lut).to(dev)
    flat0, flat1 = i0.reshape(3, -1), (i0 + 1).clamp_(max=size - 1).reshape(3, -1)
    v0 = torch.gather(table, 1, flat0).reshape(image.shape)
    v1 = torch.gather(table, 1, flat1).reshape(image.shape)
    out = v0 * (1.0 - frac) + v1 * frac
    return out + image - inside


def _device_method(method: str | ParametricColorMethod) -> ParametricColorMethod:
    inst = color_method(method)
    if inst.name not in DEVICE_COLOR_METHODS or not isinstance(inst, ParametricColorMethod):
        raise ConfigError(f"colour method {inst.name!r} has no device version (device methods: "
                          f"{', '.join(DEVICE_COLOR_METHODS)}); run it on the host crop")
    if inst.name == "hist" and not isinstance(inst, HistogramTransfer):
        raise ConfigError(f"colour method 'hist' must be a HistogramTransfer, got {type(inst).__name__}")
    return inst


def _crop(image: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 3:
        raise ConfigError(f"colour match needs a (3, S, S) {what} crop, got {_desc(image)}")
    if image.dtype == torch.uint8:
        return image.float() * (1 / 255)
    if not image.is_floating_point():
        raise ConfigError(f"colour match needs a float or uint8 {what} crop, got {image.dtype}")
    return image.float()


def _column(values: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values)).to(device)[:, None, None]


# ------------------------------------------------------------------------------------- compositing
def composite_(frame: torch.Tensor, swapped: torch.Tensor, mask: torch.Tensor, frame_from_face: np.ndarray,
               *, method: str = "feather") -> tuple[slice, slice] | None:
    """Blend a swapped face into a frame on the device, in place (:func:`vfxswap.convert.blend.composite`).

    Same steps: the mask is warped (bilinear, 0 outside the crop) into the face's ROI
    (:func:`~vfxswap.convert.blend.face_roi`), the ROI shrinks to the mask's support (mask > 0), the
    face is warped there (bicubic when the affine enlarges it, else bilinear; border replicated), the
    plate's ROI is blended in float32 code values, integer frames are rounded half up, and only pixels
    where the warped mask is > 0 are written: every other pixel stays bit-exact.

    ``feather`` and ``laplacian`` blend on the device; any other method in
    :data:`~vfxswap.convert.blend.BLEND_METHODS` (``poisson``, plugins) runs on the host on the ROI:
    the plate ROI, warped face and mask go down, the blend comes back up.

    Args:
        frame: ``(H, W, 3)`` uint8, uint16 or float32 tensor, edited in place.
        swapped: ``(3, S, S)`` float tensor, the face in the frame's code values ([0, 1] for integer
            frames; the frame's scene-linear values for a linear float frame), same device.
        mask: ``(S, S)`` float tensor in [0, 1] (:func:`face_mask`), same device.
        frame_from_face: ``(2, 3)`` affine, crop pixels -> frame pixels.
        method: a name in :data:`~vfxswap.convert.blend.BLEND_METHODS`.

    Returns:
        The ``(rows, cols)`` slices of the frame the blend covered, or None when the face's mask does
        not reach the frame (nothing written).

    Raises:
        ConfigError: unknown method, tensors of the wrong shape, dtype or device.
    """
    blend = BLEND_METHODS.get(method)
    code_max = _check_frame(frame)
    if not isinstance(swapped, torch.Tensor) or swapped.ndim != 3 or swapped.shape[0] != 3 \
            or swapped.shape[1] != swapped.shape[2]:
        raise ConfigError(f"swapped face must be (3, S, S), got {_desc(swapped)}")
    size = swapped.shape[1]
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (size, size):
        raise ConfigError(f"mask must be ({size}, {size}) like the swapped face, got {_desc(mask)}")
    for name, t in (("swapped face", swapped), ("mask", mask)):
        if t.device != frame.device:
            raise ConfigError(f"{name} is on {t.device} but the frame is on {frame.device}; move it first")

    (rows, cols), mask_roi = warped_mask(mask, frame_from_face, tuple(frame.shape))
    if mask_roi.numel() == 0:
        return None
    inside = mask_roi > 0
    bounds = _support(inside)
    if bounds is None:
        return None
    y0, y1, x0, x1 = bounds
    inside, mask_roi = inside[y0:y1, x0:x1], mask_roi[y0:y1, x0:x1]
    rows = slice(rows.start + y0, rows.start + y1)
    cols = slice(cols.start + x0, cols.start + x1)
    m = _shifted(_check_affine(frame_from_face, "frame_from_face"), cols.start, rows.start)
    mode: WarpMode = "bicubic" if affine_scale(m) > 1.0 else "bilinear"
    patch = warp_affine(swapped, m, (y1 - y0, x1 - x0), mode=mode, border="replicate")

    view = frame[rows, cols]
    plate = view.permute(2, 0, 1).float()
    if code_max != 1.0:
        plate = plate * (1.0 / code_max)
    if method == "feather":
        out = feather_blend(plate, patch, mask_roi)
    elif method == "laplacian":
        out = laplacian_blend(plate, patch, mask_roi)
    else:
        out = _host_blend(blend, plate, patch, mask_roi, _NUMPY_DTYPE[frame.dtype])
    if code_max != 1.0:  # round half up: values are >= 0 once clipped
        out = (out * code_max + 0.5).clamp_(0.0, code_max)
    out = out.permute(1, 2, 0).to(frame.dtype)
    view.copy_(torch.where(inside[..., None], out, view))
    return rows, cols


def feather_blend(plate: torch.Tensor, patch: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Alpha blend ``plate + mask * (patch - plate)`` of ``(3, h, w)`` ROIs with an ``(h, w)`` mask
    (:func:`vfxswap.convert.blend.feather_blend`)."""
    out = patch - plate
    out *= mask
    out += plate
    return out


def laplacian_blend(plate: torch.Tensor, patch: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Multi-band (Burt & Adelson) blend of ``(3, h, w)`` ROIs (:func:`vfxswap.convert.blend.laplacian_blend`).

    Bands of the Laplacian pyramid of ``patch - plate`` are weighted by the mask's Gaussian pyramid
    (up to :data:`~vfxswap.convert.blend.LAPLACIAN_LEVELS` levels, fewer for small ROIs; :func:`pyr_down`
    and :func:`pyr_up` are OpenCV's), then alpha'd with the mask; ROIs under 16 pixels blend as feather.
    """
    h, w = mask.shape
    levels = min(LAPLACIAN_LEVELS, int(math.log2(max(min(h, w), 1))) - 3)
    if levels < 1:
        return feather_blend(plate, patch, mask)
    cur = torch.cat([patch - plate, mask[None]])  # the mask's pyramid rides along as a 4th channel
    bands, masks = [], [mask]
    for _ in range(levels):
        down = pyr_down(cur)
        diff = cur[:3]
        bands.append(diff - pyr_up(down[:3], tuple(diff.shape[-2:])))
        masks.append(down[3])
        cur = down
    acc = cur[:3] * masks[-1]
    for band, m in zip(reversed(bands), reversed(masks[:-1])):
        acc = pyr_up(acc, tuple(band.shape[-2:]))
        acc += band * m
    acc *= mask
    acc += plate
    return acc


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """``cv2.pyrDown`` of ``(..., H, W)``: 5-tap ``[1, 4, 6, 4, 1] / 16`` blur (reflect-101) at even
    pixels, ``(..., (H + 1) // 2, (W + 1) // 2)`` out; OpenCV's order of float operations."""
    for dim in (-1, -2):
        n = x.shape[dim]
        half = (n + 1) // 2
        p = x.index_select(dim, _reflect101(n, 2, x.device))
        t = [p.narrow(dim, k, 2 * half - 1)[_every_other(dim, x.ndim)] for k in range(5)]
        x = t[2] * 6.0 + (t[1] + t[3]) * 4.0 + t[0] + t[4]
    return x * (1.0 / 256.0)


def pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``cv2.pyrUp(x, dstsize)`` of ``(..., h, w)`` to ``size = (H, W)`` with ``H`` in ``{2h - 1, 2h}``
    (likewise ``W``): even outputs ``(s[i-1] + 6 s[i] + s[i+1]) / 8``, odd ``(s[i] + s[i+1]) / 2`` per axis,
    reflect-101 at the start and replicate at the end, as OpenCV."""
    for dim, out_n in ((-1, size[1]), (-2, size[0])):
        n = x.shape[dim]
        if out_n not in (2 * n - 1, 2 * n):
            raise ConfigError(f"pyr_up cannot take {n} samples to {out_n}")
        idx = torch.arange(-1, n + 1, device=x.device).clamp_(0, n - 1)
        if n > 1:
            idx[0] = 1
        p = x.index_select(dim, idx)
        prev, mid, nxt = p.narrow(dim, 0, n), p.narrow(dim, 1, n), p.narrow(dim, 2, n)
        even = prev + mid * 6.0 + nxt
        odd = (mid + nxt) * 4.0
        x = torch.stack([even, odd], dim=dim if dim == -1 else -2)
        x = x.flatten(-2) if dim == -1 else x.flatten(-3, -2)
        x = x.narrow(dim, 0, out_n)
    return x * (1.0 / 64.0)


def _every_other(dim: int, ndim: int) -> tuple[slice, ...]:
    return tuple([slice(None)] * (ndim + dim) + [slice(None, None, 2)] + [slice(None)] * (-dim - 1))


def _host_blend(blend, plate: torch.Tensor, patch: torch.Tensor, mask: torch.Tensor,
                dtype: np.dtype) -> torch.Tensor:
    """Run a host blend method on the ROI: ``(3, h, w)`` tensors down as ``(h, w, 3)`` arrays, result up."""
    def host(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.permute(1, 2, 0).cpu().numpy()) if t.ndim == 3 else t.cpu().numpy()

    out = blend(host(plate), host(patch), host(mask), dtype=dtype)
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(plate.device).permute(2, 0, 1)


def matte_(matte: torch.Tensor, mask: torch.Tensor, frame_from_face: np.ndarray) -> tuple[slice, slice] | None:
    """Add one face's warped mask to a frame's matte pass with max, in place
    (one face of :func:`vfxswap.convert.blend.matte`).

    Args:
        matte: ``(H, W)`` float32 tensor in [0, 1], edited in place.
        mask: ``(S, S)`` float tensor in [0, 1], same device.
        frame_from_face: ``(2, 3)`` affine, crop pixels -> frame pixels.

    Returns:
        The ``(rows, cols)`` slices updated, or None when the face lies outside the frame.
    """
    if not isinstance(matte, torch.Tensor) or matte.ndim != 2 or matte.dtype != torch.float32:
        raise ConfigError(f"matte must be an (H, W) float32 tensor, got {_desc(matte)}")
    (rows, cols), m = warped_mask(mask, frame_from_face, tuple(matte.shape))
    if m.numel() == 0:
        return None
    view = matte[rows, cols]
    view.copy_(torch.maximum(view, m))
    return rows, cols


# ----------------------------------------------------------------------------------------- helpers
def _support(inside: torch.Tensor) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` bounding box of the True pixels of an ``(h, w)`` bool tensor (one sync)."""
    h, w = inside.shape
    bounds = []
    for hit, n in ((inside.any(dim=1), h), (inside.any(dim=0), w)):
        at = torch.arange(n, device=inside.device)
        bounds += [torch.where(hit, at, n).min(), torch.where(hit, at, -1).max() + 1]
    y0, y1, x0, x1 = torch.stack(bounds).tolist()
    return None if y1 <= y0 else (y0, y1, x0, x1)


def _shifted(m: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The affine with the point ``(x0, y0)`` of its output moved to the origin (``roi_from_face``)."""
    out = np.array(m, dtype=np.float64)
    out[0, 2] -= x0
    out[1, 2] -= y0
    return out


def _check_affine(m: np.ndarray, name: str) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (2, 3) or not np.isfinite(m).all():
        raise ConfigError(f"{name} must be a finite (2, 3) affine, got {_desc(m)}")
    return m


def _check_frame(frame: torch.Tensor) -> float:
    """The frame's largest code value; checks an ``(H, W, 3)`` uint8/uint16/float32 tensor."""
    if not isinstance(frame, torch.Tensor) or frame.ndim != 3 or frame.shape[2] != 3:
        raise ConfigError(f"frame must be an (H, W, 3) tensor, got {_desc(frame)}")
    if frame.dtype not in _CODE_MAX:
        raise ConfigError(f"frame dtype must be uint8, uint16 or float32, got {frame.dtype}")
    return _CODE_MAX[frame.dtype]


def _frame_dtype(dtype: np.dtype | torch.dtype | str) -> torch.dtype:
    """A frame dtype given as torch or NumPy dtype or name, as a torch dtype."""
    if isinstance(dtype, torch.dtype):
        found = dtype if dtype in _CODE_MAX else None
    else:
        try:
            found = _BY_NAME.get(str(np.dtype(dtype)))
        except TypeError:
            found = None
    if found is None:
        raise ConfigError(f"frame dtype must be uint8, uint16 or float32, got {dtype!r}")
    return found


def _shape(x: object) -> tuple[int, ...] | str:
    return tuple(x.shape) if hasattr(x, "shape") else type(x).__name__


def _desc(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"{x.dtype}{list(x.shape)} on {x.device}"
    if isinstance(x, np.ndarray):
        return f"{x.dtype}{list(x.shape)}"
    return type(x).__name__


__all__ = [
    "DEVICE_BLEND_METHODS", "DEVICE_COLOR_METHODS", "apply", "composite_", "erode_dilate",
    "estimate", "face_mask", "feather_blend", "feather_mask", "from_model_space", "lab_to_rgb",
    "laplacian_blend", "matte_", "pyr_down", "pyr_up", "rgb_to_lab", "srgb_decode", "srgb_encode",
    "to_model_space", "warp_affine", "warp_to_face", "warped_mask",
]
