"""2-D affine helpers. Matrices are ``(2, 3)`` float64 and named ``b_from_a`` (maps points of a to b).

Pixel convention: the centre of the top-left pixel is ``(0, 0)`` (as OpenCV's ``warpAffine``).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``.

    Umeyama, "Least-squares estimation of transformation parameters between two point patterns",
    PAMI 1991. Reflections are excluded.

    Args:
        src: ``(N, 2)`` points, N >= 2.
        dst: ``(N, 2)`` corresponding points.

    Returns:
        ``(2, 3)`` float64 ``dst_from_src``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ConfigError(f"umeyama needs two (N,2) point sets with N >= 2, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.array([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) > 0 else -1.0])
    rot = u @ np.diag(d) @ vt
    var = src_c.var(axis=0).sum()
    scale = (s * d).sum() / var if var > 0 else 1.0
    out = np.empty((2, 3))
    out[:, :2] = scale * rot
    out[:, 2] = dst_mean - out[:, :2] @ src_mean
    return out


def to3x3(m: np.ndarray) -> np.ndarray:
    """``(2, 3)`` affine as a ``(3, 3)`` homogeneous matrix."""
    return np.vstack([np.asarray(m, dtype=np.float64), [0.0, 0.0, 1.0]])


def compose(c_from_b: np.ndarray, b_from_a: np.ndarray) -> np.ndarray:
    """``c_from_a = c_from_b ∘ b_from_a`` for ``(2, 3)`` affines."""
    return (to3x3(c_from_b) @ to3x3(b_from_a))[:2]


def invert(b_from_a: np.ndarray) -> np.ndarray:
    """``a_from_b`` for an invertible ``(2, 3)`` affine."""
    return np.linalg.inv(to3x3(b_from_a))[:2]


def transform_points(b_from_a: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine to ``(N, 2)`` points; returns float64 ``(N, 2)``."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ np.asarray(b_from_a, dtype=np.float64)[:, :2].T + np.asarray(b_from_a)[:, 2]


def scale_matrix(scale: float) -> np.ndarray:
    """``proxy_from_full`` for an image resized by ``scale`` (pixel centres preserved, as cv2.resize).

    A pixel centre ``x`` of the full image lands at ``(x + 0.5) * scale - 0.5`` in the proxy.
    """
    off = 0.5 * scale - 0.5
    return np.array([[scale, 0.0, off], [0.0, scale, off]])


def affine_scale(m: np.ndarray) -> float:
    """Uniform scale factor of a similarity ``(2, 3)`` affine (sqrt of |det|)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(m, dtype=np.float64)[:, :2]))))
