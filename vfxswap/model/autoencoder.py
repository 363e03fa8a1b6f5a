"""The dual-decoder face-swap autoencoder (DeepFaceLab's DF and LIAE layouts).

``df``:   src/dst faces -> shared encoder -> shared inter -> decoder_src | decoder_dst.
``liae``: encoder -> inter_ab (both sides) [+ inter_b (dst only)] -> one shared decoder; the latent
          of a face is cat(inter_ab(x), inter_b(x) or inter_ab(x)).
Swapping a dst face runs it through the src path: df: decoder_src(inter(encoder(x)));
liae: decoder(cat(inter_ab(x), inter_ab(x))).

Every decoder predicts RGB in [0, 1] (sigmoid) and, with a mask head, an alpha mask in [0, 1].
Input and output are ``(B, 3, R, R)`` float RGB in [0, 1] (``card.normalization``).
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Downscale, ResidualBlock, Upscale
from .card import ModelCard

ENCODER_STAGES = 4  # R -> R/16


class Encoder(nn.Module):
    """``(B, 3, R, R)`` -> ``(B, 8*dims, R/16, R/16)``."""

    def __init__(self, dims: int, separable: bool = False) -> None:
        super().__init__()
        chans = [3] + [dims * 2**i for i in range(ENCODER_STAGES)]
        self.stages = nn.Sequential(*(Downscale(a, b, separable) for a, b in zip(chans, chans[1:])))
        self.out_channels = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)


class Inter(nn.Module):
    """Dense bottleneck: ``(B, C, r, r)`` -> ``(B, out_ch, 2r, 2r)`` with r = R/16."""

    def __init__(self, in_ch: int, res: int, ae_dims: int, out_ch: int, separable: bool = False) -> None:
        super().__init__()
        self.res, self.out_ch = res, out_ch
        self.dense1 = nn.Linear(in_ch * res * res, ae_dims)
        self.dense2 = nn.Linear(ae_dims, out_ch * res * res)
        self.up = Upscale(out_ch, out_ch, separable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.dense2(self.dense1(torch.flatten(x, 1)))
        return self.up(z.view(-1, self.out_ch, self.res, self.res))


class Decoder(nn.Module):
    """``(B, in_ch, R/8, R/8)`` -> RGB ``(B, 3, R, R)`` and mask ``(B, 1, R, R)`` (or ``None``)."""

    def __init__(self, in_ch: int, dims: int, mask_dims: int, mask_head: bool, separable: bool = False) -> None:
        super().__init__()
        c = [dims * 8, dims * 4, dims * 2]
        self.up = nn.ModuleList([Upscale(a, b, separable) for a, b in zip([in_ch, *c], c)])
        self.res = nn.ModuleList([ResidualBlock(ch, separable) for ch in c])
        self.rgb = nn.Conv2d(c[2], 3, 1)
        self.mask = None
        if mask_head:
            m = [mask_dims * 8, mask_dims * 4, mask_dims * 2]
            self.mask = nn.Sequential(*(Upscale(a, b, separable) for a, b in zip([in_ch, *m], m)),
                                      nn.Conv2d(m[2], 1, 1))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = z
        for up, res in zip(self.up, self.res):
            x = res(up(x))
        rgb = torch.sigmoid(self.rgb(x))
        mask = torch.sigmoid(self.mask(z)) if self.mask is not None else None
        return rgb, mask


class FaceSwapModel(nn.Module):
    """The whole model described by a :class:`ModelCard`."""

    def __init__(self, card: ModelCard) -> None:
        super().__init__()
        self.card = card
        res = card.resolution // 16
        sep = card.separable
        self.encoder = Encoder(card.encoder_dims, sep)
        enc_ch = self.encoder.out_channels
        if card.arch == "df":
            self.inter = Inter(enc_ch, res, card.ae_dims, card.ae_dims, sep)
            self.decoder_src = Decoder(card.ae_dims, card.decoder_dims, card.decoder_mask_dims, card.mask_head, sep)
            self.decoder_dst = Decoder(card.ae_dims, card.decoder_dims, card.decoder_mask_dims, card.mask_head, sep)
        else:
            self.inter_ab = Inter(enc_ch, res, card.ae_dims, card.ae_dims, sep)
            self.inter_b = Inter(enc_ch, res, card.ae_dims, card.ae_dims, sep)
            self.decoder = Decoder(card.ae_dims * 2, card.decoder_dims, card.decoder_mask_dims, card.mask_head, sep)

    def _latent(self, x: torch.Tensor, side: str) -> torch.Tensor:
        features = self.encoder(x)
        if self.card.arch == "df":
            return self.inter(features)
        ab = self.inter_ab(features)
        return torch.cat([ab, self.inter_b(features) if side == "dst" else ab], dim=1)

    def forward(self, x: torch.Tensor, side: str = "swap") -> tuple[torch.Tensor, torch.Tensor | None]:
        """Reconstruct ``side`` (``src``, ``dst``) or swap (``swap``: dst faces -> src identity).

        Args:
            x: ``(B, 3, R, R)`` float RGB in [0, 1].
            side: ``src``, ``dst`` or ``swap``.

        Returns:
            ``(rgb, mask)``: ``(B, 3, R, R)`` in [0, 1] and ``(B, 1, R, R)`` in [0, 1] (``None``
            without a mask head).
        """
        if side == "dst":
            z = self._latent(x, "dst")
            return self.decoder_dst(z) if self.card.arch == "df" else self.decoder(z)
        z = self._latent(x, "src")  # src and swap share the src path
        return self.decoder_src(z) if self.card.arch == "df" else self.decoder(z)

    def train_outputs(self, src: torch.Tensor, dst: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Both reconstructions in one encoder pass over ``cat(src, dst)`` (one batch, one graph)."""
        b = src.shape[0]
        features = self.encoder(torch.cat([src, dst]))
        if self.card.arch == "df":
            z = self.inter(features)
            src_rgb, src_mask = self.decoder_src(z[:b])
            dst_rgb, dst_mask = self.decoder_dst(z[b:])
        else:
            ab = self.inter_ab(features)
            z = torch.cat([torch.cat([ab[:b], ab[:b]], 1), torch.cat([ab[b:], self.inter_b(features[b:])], 1)])
            rgb, mask = self.decoder(z)
            src_rgb, dst_rgb = rgb[:b], rgb[b:]
            src_mask, dst_mask = (mask[:b], mask[b:]) if mask is not None else (None, None)
        return {"src_rgb": src_rgb, "src_mask": src_mask, "dst_rgb": dst_rgb, "dst_mask": dst_mask}


class SwapPath(nn.Module):
    """The converter's path only (dst face -> src identity), for export: returns ``(rgb, mask)``.

    Without a mask head the mask output is all ones, so every exported model has the same outputs.
    """

    def __init__(self, model: FaceSwapModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, mask = self.model(x, "swap")
        if mask is None:
            mask = torch.ones_like(rgb[:, :1])
        return rgb, mask


def flops_per_face(model: FaceSwapModel) -> int:
    """Multiply-adds x2 of one swap-path forward pass at the card's resolution (convs and dense layers)."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += 2 * output.numel() // output.shape[0] * k
        elif isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, model.card.resolution, model.card.resolution), "swap")
    finally:
        for h in handles:
            h.remove()
    return total
