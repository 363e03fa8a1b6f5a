"""Training augmentation: random similarity (+flip), the deepfakes "random warp", LAB colour jitter, RCT.

The CIELAB statistics and Reinhard transfer (``lab_stats``, ``transfer_lab_stats``,
``color_transfer_rct``) live in :mod:`vfxswap.convert.color` and are re-exported here.

Pure functions over NumPy arrays. Every random function takes a ``np.random.Generator`` and draws
from it only, so a batch is a function of its generator's seed. Pixel convention as
:mod:`vfxswap.faces.geometry`: the centre of the top-left pixel is ``(0, 0)``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..convert.color import (  # noqa: F401  (lab_stats, transfer_lab_stats, color_transfer_rct re-exported)
    _channel_affine,
    _like,
    _to_float,
    color_transfer_rct,
    lab_stats,
    transfer_lab_stats,
)
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
