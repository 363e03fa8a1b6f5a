"""Reconstruction quality of a model on the held-out faces of a faceset (SSIM, PSNR).

A model reconstructs a src face through ``decoder_src`` and a dst face through ``decoder_dst``; how
close the reconstruction is to the face says how well the model learned that identity. Faces are
held out by their faceset index (:func:`is_held_out`: every ``every``-th face), so the split is
the same on every machine and survives appends; ``vfxswap train --holdout`` (default 10) leaves the
same faces out, so they are faces the model never saw.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

import numpy as np

from ..errors import ConfigError
from ..faces.faceset import is_held_out
from . import metrics

Side = Literal["src", "dst"]


@dataclasses.dataclass(frozen=True, repr=False)
class Reconstruction:
    """Reconstruction scores of one side of a model on one faceset.

    Attributes:
        side: ``src`` or ``dst`` (which decoder).
        faceset: the faceset folder.
        faces: number of held-out faces scored.
        every: the held-out split (:func:`is_held_out`).
        ssim: mean SSIM in [-1, 1]; psnr: mean PSNR in dB.
        originals, reconstructed: up to 8 examples, ``(K, R, R, 3)`` uint8 RGB, for the report.
    """

    side: Side
    faceset: str
    faces: int
    every: int
    ssim: float
    psnr: float
    originals: np.ndarray
    reconstructed: np.ndarray

    def to_json(self) -> dict[str, object]:
        return {"side": self.side, "faceset": self.faceset, "faces": self.faces, "held_out_every": self.every,
                "ssim": self.ssim, "psnr": self.psnr}

    def __repr__(self) -> str:
        return f"Reconstruction({self.side}, faces={self.faces}, ssim={self.ssim:.3f}, psnr={self.psnr:.2f})"


def reconstruct(model_dir: str | os.PathLike, faceset: str | os.PathLike, *, side: Side, every: int = 10,
                device: str = "cpu", batch: int = 32) -> Reconstruction:
    """Reconstruct the held-out faces of ``faceset`` through ``side``'s decoder and score them.

    Args:
        model_dir: a trained model folder.
        faceset: a faceset of that side's person (crops covering at least the model's face type).
        side: ``src`` (``decoder_src``) or ``dst`` (``decoder_dst``).
        every: hold out every ``every``-th face (1 = all faces).
        device: ``cpu``, ``cuda`` or ``auto``.
        batch: faces per forward pass.

    Raises:
        ModelError, FacesetError: unreadable model or faceset.
        ConfigError: a bad side or split, a faceset with no held-out face, or no scikit-image.
    """
    import torch

    from ..model.checkpoint import load_model
    from ..train.data import FaceBank

    if side not in ("src", "dst"):
        raise ConfigError(f"side must be src or dst, got {side!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, card = load_model(model_dir, device=device)
    bank = FaceBank(faceset, resolution=card.resolution, face_type=card.face_type)
    chosen = [i for i, r in enumerate(bank.records) if is_held_out(r.index, every)]
    if not chosen:
        raise ConfigError(f"faceset {faceset} has no held-out face with --holdout {every} "
                          f"({len(bank.records)} faces); use a smaller --holdout")
    originals = bank.images[chosen]
    out = []
    with torch.inference_mode():
        for start in range(0, len(originals), batch):
            x = torch.from_numpy(originals[start:start + batch]).to(device).permute(0, 3, 1, 2).float() / 255.0
            rgb, _ = model(x, side)
            out.append(rgb.permute(0, 2, 3, 1).float().cpu().numpy())
    recon = np.clip(np.concatenate(out) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    scores = metrics.reconstruction_scores(originals, recon)
    return Reconstruction(side=side, faceset=os.fspath(faceset), faces=len(chosen), every=every,
                          ssim=scores["ssim"], psnr=scores["psnr"], originals=originals[:8], reconstructed=recon[:8])
