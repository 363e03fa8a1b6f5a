"""Face masks from landmarks, in crop pixels.

Pure functions: arrays in, arrays out.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import ConfigError

JAW = slice(0, 17)
BROWS = slice(17, 27)


def lift_brows(landmarks: np.ndarray, lift: float = 0.3) -> np.ndarray:
    """Landmarks with the brows (17..26) moved up toward the hairline.

    The brows move along the face's up direction (from the chin, point 8, through the brow centre)
    by ``lift`` times the chin-to-brow distance, so the hull takes in the forehead as DeepFaceLab's
    whole-face masks do.

    Args:
        landmarks: ``(68, 2)`` points in any pixel frame.
        lift: fraction of the chin-to-brow distance, >= 0.

    Returns:
        ``(68, 2)`` float64 copy with points 17..26 moved.
    """
    if lift < 0:
        raise ConfigError(f"brow lift must be >= 0, got {lift}")
    pts = np.array(landmarks, dtype=np.float64)
    up = pts[BROWS].mean(axis=0) - pts[8]
    pts[BROWS] += up * lift
    return pts


def hull_mask(landmarks: np.ndarray, size: int, *, lift: float = 0.3, erode: int = 0,
              feather: int = 0) -> np.ndarray:
    """Landmark-hull mask of a face in a ``size``-pixel crop.

    Args:
        landmarks: ``(68, 2)`` landmarks in crop pixels.
        size: crop side in pixels.
        lift: brow lift (see :func:`lift_brows`).
        erode: pixels to erode (> 0) or dilate (< 0) the hull by.
        feather: width in pixels of the soft edge (Gaussian blur sigma ``feather / 2``); 0 = hard edge.

    Returns:
        ``(size, size)`` float32 mask in [0, 1].
    """
    if feather < 0:
        raise ConfigError(f"feather must be >= 0 pixels, got {feather}")
    pts = lift_brows(landmarks, lift)
    hull = cv2.convexHull(np.round(np.concatenate([pts[JAW], pts[BROWS]])).astype(np.int32))
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_AA)
    mask = erode_dilate(mask, erode)
    out = mask.astype(np.float32) / 255.0
    return feather_mask(out, feather)


def erode_dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Erode (``pixels`` > 0) or dilate (< 0) a mask with an elliptical kernel; 0 returns it as is."""
    if pixels == 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(pixels) + 1, 2 * abs(pixels) + 1))
    return cv2.erode(mask, k) if pixels > 0 else cv2.dilate(mask, k)


def feather_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Soften a float mask's edge over about ``pixels`` pixels (Gaussian, sigma = pixels / 2)."""
    if pixels <= 0:
        return mask
    return np.clip(cv2.GaussianBlur(mask, (0, 0), sigmaX=pixels / 2.0), 0.0, 1.0)
