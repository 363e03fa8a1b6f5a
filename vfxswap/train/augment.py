"""Training augmentation: random similarity (+flip), the deepfakes "random warp", LAB colour jitter, RCT.

Pure functions over NumPy arrays. Every random function takes a ``np.random.Generator`` and draws
from it only, so a batch is a function of its generator's seed. Pixel convention as
:mod:`vfxswap.faces.geometry`: the centre of the top-left pixel is ``(0, 0)``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import ConfigError


def random_affine(rng: np.random.Generator, size: int, *, rotation: float = 10.0, scale: float = 0.05,
                  shift: float = 0.05, flip: bool = True) -> np.ndarray:
    """A random similarity about the crop centre, with an optional horizontal flip.

    ``aug = T(centre + t) · s·R(θ) · F · T(-centre)`` with θ uniform in ``±rotation`` degrees,
    ``s`` uniform in ``1 ± scale``, ``t`` uniform in ``±shift·size`` pixels per axis and ``F`` a
    mirror about the vertical centre line with probability 0.5 when ``flip``.

    Args:
        rng: the random generator (5 draws: angle, scale, shift x/y, flip).
        size: crop side in pixels.
        rotation: largest rotation in degrees, >= 0.
        scale: largest relative scale change, in [0, 1).
        shift: largest shift as a fraction of ``size``, >= 0.
        flip: mirror left-right with probability 0.5.

    Returns:
        ``(2, 3)`` float64 ``augmented_from_crop`` (use with ``cv2.warpAffine``).
    """
    if rotation < 0 or not 0 <= scale < 1 or shift < 0:
        raise ConfigError(f"random_affine needs rotation >= 0, 0 <= scale < 1, shift >= 0; "
                          f"got rotation={rotation}, scale={scale}, shift={shift}")
    theta = math.radians(rng.uniform(-rotation, rotation))
    s = rng.uniform(1.0 - scale, 1.0 + scale)
    tx, ty = rng.uniform(-shift, shift, size=2) * size
    mirrored = bool(rng.random() < 0.5)  # drawn even when flip is off, so flip does not change the rest
    f = -1.0 if (flip and mirrored) else 1.0
    c = (size - 1) / 2.0
    cos, sin = s * math.cos(theta), s * math.sin(theta)
    # Linear part: s·R(θ)·diag(f, 1); translation keeps the centre at centre + t.
    a = np.array([[cos * f, -sin], [sin * f, cos]])
    t = np.array([c + tx, c + ty]) - a @ np.array([c, c])
    return np.hstack([a, t[:, None]])


def random_warp_grid(rng: np.random.Generator, size: int, *, points: int = 5,
                     strength: float = 0.025) -> tuple[np.ndarray, np.ndarray]:
    """The original deepfakes "random warp": a jittered control grid interpolated to a dense map.

    A ``points × points`` grid of displacements, each normal with sigma ``strength · size`` pixels, is
    upsampled with bicubic interpolation and added to the identity map. The default 0.025 with 5 points
    makes sigma 1/8 of the control-point spacing, as the original's 5 px on a 40 px grid. Warp the
    network *input* with it; the target stays unwarped.

    Args:
        rng: the random generator (``2 · points²`` normal draws).
        size: crop side in pixels.
        points: control points per side, >= 2.
        strength: displacement sigma as a fraction of ``size``, >= 0.

    Returns:
        ``(map_x, map_y)``, each ``(size, size)`` float32 absolute source coordinates for ``cv2.remap``.
    """
    if points < 2 or strength < 0:
        raise ConfigError(f"random_warp_grid needs points >= 2 and strength >= 0, got {points}, {strength}")
    noise = rng.normal(0.0, strength * size, size=(2, points, points)).astype(np.float32)
    dx = cv2.resize(noise[0], (size, size), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(noise[1], (size, size), interpolation=cv2.INTER_CUBIC)
    grid = np.arange(size, dtype=np.float32)
    return dx + grid[None, :], dy + grid[:, None]


def _to_float(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) * np.float32(1 / 255)
    if image.dtype == np.float32:
        return image
    raise ConfigError(f"expected a uint8 or float32 RGB image, got {image.dtype}")


def _like(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 RGB (any range) back to ``dtype``, clipped to the valid range."""
    if dtype == np.uint8:
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.clip(out, 0.0, 1.0, out=out)


def color_jitter_lab(rng: np.random.Generator, image: np.ndarray, *, l: float = 0.1,  # noqa: E741
                     ab: float = 6.0) -> np.ndarray:
    """Small random changes of lightness, contrast and tint in CIELAB.

    ``L' = mean_L + (L - mean_L)·(1 + c) + dL`` with ``c`` uniform in ``±l`` and ``dL`` uniform in
    ``±l·50`` L units; ``a' = a + da``, ``b' = b + db`` with ``da, db`` uniform in ``±ab`` units.

    Args:
        rng: the random generator (4 draws).
        image: ``(H, W, 3)`` RGB, uint8 or float32 in [0, 1].
        l: relative contrast change and (times 50) lightness shift, >= 0.
        ab: largest shift of a and b in LAB units (their range is about ±100), >= 0.

    Returns:
        The jittered image, same shape and dtype, clipped to the valid range.
    """
    if l < 0 or ab < 0:
        raise ConfigError(f"color_jitter_lab needs l >= 0 and ab >= 0, got l={l}, ab={ab}")
    contrast = 1.0 + rng.uniform(-l, l)
    d_l = rng.uniform(-l, l) * 50.0
    d_a, d_b = rng.uniform(-ab, ab, size=2)
    lab = cv2.cvtColor(_to_float(image), cv2.COLOR_RGB2LAB)
    mean_l = cv2.mean(lab)[0]
    # One per-channel affine: L*contrast + (mean_L*(1-contrast) + dL), a + da, b + db.
    return _like(cv2.cvtColor(_channel_affine(lab, [contrast, 1.0, 1.0], [mean_l * (1.0 - contrast) + d_l, d_a, d_b]),
                              cv2.COLOR_LAB2RGB), image.dtype)


def _channel_affine(image: np.ndarray, gain, bias) -> np.ndarray:
    """``image * gain + bias`` per channel of an ``(H, W, 3)`` float32 image, in one OpenCV pass."""
    m = np.zeros((3, 4), np.float32)
    m[[0, 1, 2], [0, 1, 2]] = gain
    m[:, 3] = bias
    return cv2.transform(image, m)


def lab_stats(image: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of an RGB image in CIELAB, over ``mask > 0.5`` (all pixels if ``None``).

    Args:
        image: ``(H, W, 3)`` RGB, uint8 or float32 in [0, 1].
        mask: ``(H, W)`` mask (any dtype; uint8 masks use ``> 127``), or ``None``.

    Returns:
        ``(mean, std)``, each ``(3,)`` float64 in LAB units (L 0..100, a/b about ±100).
    """
    lab = cv2.cvtColor(_to_float(image), cv2.COLOR_RGB2LAB)
    mean, std = cv2.meanStdDev(lab, mask=_binary(mask))
    return mean.ravel(), std.ravel()


def color_transfer_rct(source: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None,
                       target_mask: np.ndarray | None = None) -> np.ndarray:
    """Reinhard colour transfer: give ``source`` the LAB mean and std of ``target``.

    Reinhard et al., "Color transfer between images", 2001 (DeepFaceLab's ``rct``). Statistics are
    taken over the masks where given, so the background does not sway them; the transfer is applied
    to the whole of ``source``.

    Args:
        source: ``(H, W, 3)`` RGB to recolour, uint8 or float32 in [0, 1].
        target: ``(H', W', 3)`` RGB whose colours to take, uint8 or float32 in [0, 1].
        mask: ``(H, W)`` region of ``source`` for its statistics (also used for ``target`` when
            ``target_mask`` is ``None`` and the shapes match), or ``None`` for all pixels.
        target_mask: ``(H', W')`` region of ``target`` for its statistics, or ``None``.

    Returns:
        The recoloured ``source``, same shape and dtype, clipped to the valid range.
    """
    if target_mask is None and mask is not None and mask.shape == target.shape[:2]:
        target_mask = mask
    mean, std = lab_stats(target, target_mask)
    return transfer_lab_stats(source, mean, std, mask)


def transfer_lab_stats(source: np.ndarray, mean: np.ndarray, std: np.ndarray,
                       mask: np.ndarray | None = None) -> np.ndarray:
    """Give ``source`` a LAB ``mean`` and ``std`` (from :func:`lab_stats`); the core of RCT.

    Args:
        source: ``(H, W, 3)`` RGB, uint8 or float32 in [0, 1].
        mean: ``(3,)`` target LAB mean.
        std: ``(3,)`` target LAB standard deviation.
        mask: ``(H, W)`` region of ``source`` for its own statistics, or ``None`` for all pixels.

    Returns:
        The recoloured ``source``, same shape and dtype, clipped to the valid range.
    """
    src_lab = cv2.cvtColor(_to_float(source), cv2.COLOR_RGB2LAB)
    mu_s, sd_s = (v.ravel() for v in cv2.meanStdDev(src_lab, mask=_binary(mask)))
    gain = (np.asarray(std, np.float64) / np.maximum(sd_s, 1e-6)).astype(np.float32)
    bias = (np.asarray(mean, np.float64) - mu_s * gain).astype(np.float32)
    return _like(cv2.cvtColor(_channel_affine(src_lab, gain, bias), cv2.COLOR_LAB2RGB), source.dtype)


def _binary(mask: np.ndarray | None) -> np.ndarray | None:
    """A uint8 0/1 mask for OpenCV's statistics (uint8 masks: > 127, others: > 0.5); ``None`` if empty."""
    if mask is None:
        return None
    m = ((mask > 127) if mask.dtype == np.uint8 else (mask > 0.5)).astype(np.uint8)
    return m if m.any() else None
