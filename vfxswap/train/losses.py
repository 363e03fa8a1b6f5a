"""Training losses (pure: tensors in, tensors out). Images are ``(B, C, H, W)`` float in [0, 1]."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=8)
def _gaussian_window(size: int, sigma: float, channels: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = (g / g.sum()).to(dtype)
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous().to(device)


def ssim_map(a: torch.Tensor, b: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM of two ``(B, C, H, W)`` images in [0, 1] (Wang et al. 2004, Gaussian window)."""
    c = a.shape[1]
    w = _gaussian_window(window, sigma, c, str(a.device), a.dtype)
    pad = window // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, [pad] * 4, mode="reflect"), w, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def dssim(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Structural dissimilarity ``(1 - SSIM) / 2``, averaged (weighted by ``(B, 1, H, W)`` ``weight``)."""
    d = (1.0 - ssim_map(a, b)) / 2.0
    if weight is None:
        return d.mean()
    return (d * weight).sum() / (weight.sum() * a.shape[1] + 1e-8)


def weighted_l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean absolute error weighted by a ``(B, 1, H, W)`` map."""
    return ((a - b).abs() * weight).sum() / (weight.sum() * a.shape[1] + 1e-8)


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, *,
                        dssim_weight: float = 10.0, l1_weight: float = 10.0) -> torch.Tensor:
    """DSSIM + L1 over the masked face region, with eye/mouth priority in ``weight``.

    Args:
        pred, target: ``(B, 3, R, R)`` in [0, 1].
        mask: ``(B, 1, R, R)`` face mask in {0, 1} (pixels outside do not count).
        weight: ``(B, 1, R, R)`` priority (1, larger at eyes and mouth).
    """
    w = mask * weight
    return dssim_weight * dssim(pred * mask, target * mask, w) + l1_weight * weighted_l1(pred, target, w)


def mask_loss(pred_mask: torch.Tensor, target_mask: torch.Tensor, *, weight: float = 10.0) -> torch.Tensor:
    """MSE between the predicted and the landmark-hull mask, both ``(B, 1, R, R)`` in [0, 1]."""
    return weight * F.mse_loss(pred_mask, target_mask)
