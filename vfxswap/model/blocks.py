"""Building blocks of the autoencoder (PyTorch). Tensors are ``(B, C, H, W)`` float.

With ``separable=True`` each k x k convolution becomes a depthwise k x k plus a pointwise 1 x 1
convolution (about k*k times fewer FLOPs), which is what makes the ``cpu`` preset fast enough for a
CPU converter (PERF_NOTES: <~1 GFLOP per face).
"""

from __future__ import annotations

import torch
from torch import nn


def conv(cin: int, cout: int, k: int, *, stride: int = 1, separable: bool = False) -> nn.Module:
    """A k x k convolution with 'same' padding; depthwise-separable when asked and ``cin`` > 3."""
    if separable and cin > 3:
        return nn.Sequential(nn.Conv2d(cin, cin, k, stride=stride, padding=k // 2, groups=cin),
                             nn.Conv2d(cin, cout, 1))
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


class Downscale(nn.Sequential):
    """5x5 stride-2 conv + LeakyReLU(0.1): halves H and W."""

    def __init__(self, cin: int, cout: int, separable: bool = False) -> None:
        super().__init__(conv(cin, cout, 5, stride=2, separable=separable), nn.LeakyReLU(0.1))


class Upscale(nn.Sequential):
    """3x3 conv to 4x channels + LeakyReLU(0.1) + PixelShuffle(2): doubles H and W."""

    def __init__(self, cin: int, cout: int, separable: bool = False) -> None:
        super().__init__(conv(cin, cout * 4, 3, separable=separable), nn.LeakyReLU(0.1), nn.PixelShuffle(2))


class ResidualBlock(nn.Module):
    """Two 3x3 convs with LeakyReLU(0.2) and a skip connection."""

    def __init__(self, ch: int, separable: bool = False) -> None:
        super().__init__()
        self.conv1 = conv(ch, ch, 3, separable=separable)
        self.conv2 = conv(ch, ch, 3, separable=separable)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))
