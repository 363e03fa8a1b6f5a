"""A peer at equal compute: the original deepfakes autoencoder as faceswap publishes it ("original").

Written here from faceswap's published description of its ``original`` model plugin (not its code):

- 64 px RGB in [0, 1]; encoder of four 5x5 stride-2 convs with 128-256-512-1024 filters
  (LeakyReLU 0.1), flatten, dense 1024, dense 4x4x1024, reshape, one upscale block to 512 x 8x8
  (upscale block: 3x3 conv to 4x filters + LeakyReLU 0.1 + pixel shuffle);
- two decoders, one per identity: upscale blocks 256-128-64, then a 5x5 conv to 3 channels + sigmoid;
- random warp augmentation (vfxswap's own :class:`~vfxswap.train.data.PairBatches`: random
  similarity +-10 deg, +-5 % zoom and shift, flip, and the deepfakes grid warp on the input; no colour
  augmentation, as the original); plain MSE over the crop; Adam lr 5e-5, betas (0.5, 0.99), eps 1e-7
  and batch 16, faceswap's defaults; convs he-uniform and dense layers glorot-uniform, zero biases.

Differences, on purpose: crops are vfxswap's ``whole_face`` (faceswap's original uses its "legacy"
centering) so vfxswap's converter places the face as it places its own; 'same' padding is symmetric
(Keras pads stride-2 convs 1 before and 2 after).

It trains on the same facesets as ``vfxswap train`` (read with :class:`~vfxswap.train.data.FaceBank`,
the same held-out split) for a wall-clock budget counted like ``vfxswap train --time-limit`` (from
the call, the faceset loading included; the step that spends it is the last), on the CPU, then writes
an ONNX-only model folder that ``vfxswap convert PLATE -m OUT --backend onnxruntime --mask hull``
converts with vfxswap's own colour match and blending, so a comparison is of the models only (the
peer has no mask head, so its blend mask is the landmark hull; ``--mask hull`` on vfxswap's model too
makes the blend identical):

- ``OUT/card.json``: resolution 64, ``whole_face``, no mask head, steps (the widths are the nearest
  vfxswap ``df`` description: encoder 128, ae 1024, decoder 32 -> 256-128-64; informative only);
- ``OUT/export/swap.onnx``: the swap path (encoder -> src decoder) in the signature ``vfxswap export``
  writes (input ``face`` (B, 3, 64, 64), outputs ``rgb`` and an all-ones ``mask``), checked against
  PyTorch in ONNX Runtime before it is written;
- ``OUT/peer.json``: steps, seconds, GFLOP per face, last loss.

Run: ``python tools/peer_original.py --faceset-src SRC --faceset-dst DST -o OUT --budget 10m``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vfxswap.atomic import replace_atomically
from vfxswap.errors import EngineError, OutputError, VfxSwapError
from vfxswap.model.autoencoder import flops_per_face
from vfxswap.model.card import ModelCard
from vfxswap.model.checkpoint import WEIGHTS, save_card
from vfxswap.model.export import DEFAULT_OPSET, TOLERANCE, to_onnx
from vfxswap.train.data import FaceBank, PairBatches
from vfxswap.train.loop import TrainConfig

RESOLUTION = 64
FACE_TYPE = "whole_face"
BATCH = 16
LR = 5e-5
BETAS = (0.5, 0.99)
EPS = 1e-7
ENCODER_FILTERS = (128, 256, 512, 1024)
DENSE = 1024
DECODER_FILTERS = (256, 128, 64)
CHECK_BATCH = 3
ONNX_FILE = Path("export") / "swap.onnx"


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """5x5 stride-2 conv + LeakyReLU(0.1): ``(B, cin, H, W)`` -> ``(B, cout, H/2, W/2)``."""
    return nn.Sequential(nn.Conv2d(cin, cout, 5, stride=2, padding=2), nn.LeakyReLU(0.1))


def upscale_block(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv to 4*cout + LeakyReLU(0.1) + pixel shuffle: ``(B, cin, H, W)`` -> ``(B, cout, 2H, 2W)``."""
    return nn.Sequential(nn.Conv2d(cin, 4 * cout, 3, padding=1), nn.LeakyReLU(0.1), nn.PixelShuffle(2))


def peer_card(steps: int = 0) -> ModelCard:
    """The card of a peer model folder (64 px whole_face, no mask head)."""
    return ModelCard(arch="df", resolution=RESOLUTION, face_type=FACE_TYPE, encoder_dims=ENCODER_FILTERS[0],
                     ae_dims=DENSE, decoder_dims=DECODER_FILTERS[0] // 8, separable=False, mask_head=False,
                     steps=steps)


class OriginalEncoder(nn.Module):
    """``(B, 3, 64, 64)`` -> convs -> ``(B, 1024, 4, 4)`` -> dense 1024 -> dense 4x4x1024 -> upscale ->
    ``(B, 512, 8, 8)``."""

    def __init__(self) -> None:
        super().__init__()
        self.res = RESOLUTION // 2 ** len(ENCODER_FILTERS)  # 4
        chans = (3, *ENCODER_FILTERS)
        self.convs = nn.Sequential(*(conv_block(a, b) for a, b in zip(chans, chans[1:])))
        self.dense1 = nn.Linear(ENCODER_FILTERS[-1] * self.res**2, DENSE)
        self.dense2 = nn.Linear(DENSE, 1024 * self.res**2)
        self.up = upscale_block(1024, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.dense2(self.dense1(torch.flatten(self.convs(x), 1)))
        return self.up(z.view(-1, 1024, self.res, self.res))


class OriginalModel(nn.Module):
    """faceswap's ``original``: a shared encoder and one decoder per identity.

    ``forward(x (B, 3, 64, 64) float RGB [0, 1], side)`` -> ``(B, 3, 64, 64)`` in [0, 1]; ``side``
    ``src`` or ``swap`` decodes with the src decoder, ``dst`` with the dst decoder.
    """

    def __init__(self) -> None:
        super().__init__()
        self.card = peer_card()  # read by vfxswap's flops_per_face
        self.encoder = OriginalEncoder()
        self.decoder_src = self._decoder()
        self.decoder_dst = self._decoder()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")  # Keras he_uniform
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)  # Keras glorot_uniform
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.zeros_(m.bias)

    @staticmethod
    def _decoder() -> nn.Sequential:
        chans = (512, *DECODER_FILTERS)
        return nn.Sequential(*(upscale_block(a, b) for a, b in zip(chans, chans[1:])),
                             nn.Conv2d(DECODER_FILTERS[-1], 3, 5, padding=2), nn.Sigmoid())

    def forward(self, x: torch.Tensor, side: str = "swap") -> torch.Tensor:
        z = self.encoder(x)
        return self.decoder_dst(z) if side == "dst" else self.decoder_src(z)


class PeerSwapPath(nn.Module):
    """The converter's path, in the export signature: ``face`` -> ``(rgb, mask)``, mask all ones."""

    def __init__(self, model: OriginalModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rgb = self.model(face, "swap")
        return rgb, torch.ones_like(rgb[:, :1])


def gflop_per_face(model: OriginalModel) -> float:
    """GFLOP of one swap-path forward pass, counted by vfxswap's own hooks (convs and dense layers)."""
    return flops_per_face(model) / 1e9  # type: ignore[arg-type]  # duck-typed: .card and forward(x, side)


def train_peer(src_faceset: str | Path, dst_faceset: str | Path, out_dir: str | Path, budget_seconds: float, *,
               batch_size: int = BATCH, seed: int = 0,
               log: Callable[[str], None] | None = None) -> dict:
    """Train the peer for ``budget_seconds`` of wall clock and write its ONNX-only model folder.

    Args:
        src_faceset, dst_faceset: faceset folders made by ``vfxswap extract`` (src: the identity to put in).
        out_dir: the model folder to write (``card.json``, ``export/swap.onnx``, ``peer.json``).
        budget_seconds: wall clock from this call; training stops after the step that spends it.
        batch_size: faces per side per step.
        seed: model init and batches.
        log: called with a progress line now and then (``print`` in the CLI).

    Returns:
        ``{"steps", "seconds" (training loop), "gflop_per_face", "loss" (last MSE, src + dst)}``.

    Raises:
        FacesetError, ConfigError: a faceset is missing, empty or unusable at 64 px whole_face.
        OutputError: ``out_dir`` holds a vfxswap model (weights.safetensors) or cannot be written.
        EngineError: the ONNX export does not reproduce PyTorch.
    """
    deadline = time.perf_counter() + budget_seconds
    out = Path(out_dir)
    if (out / WEIGHTS).exists():
        raise OutputError(f"{out} holds a vfxswap model ({WEIGHTS}): write the peer into another folder")
    torch.manual_seed(seed)
    banks = [FaceBank(f, resolution=RESOLUTION, face_type=FACE_TYPE, holdout=TrainConfig.holdout)
             for f in (src_faceset, dst_faceset)]
    batches = PairBatches(*banks, batch_size=batch_size, seed=seed, color_jitter=False, eyes=1.0, mouth=1.0,
                          workers=TrainConfig.workers)
    model = OriginalModel().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, betas=BETAS, eps=EPS)
    steps, loss, start, last_log = 0, float("nan"), time.perf_counter(), 0.0
    stream = batches.iterate(0)
    try:
        for step, batch in stream:
            steps = step + 1
            loss_src = nn.functional.mse_loss(model(batch["src_in"], "src"), batch["src_target"])
            loss_dst = nn.functional.mse_loss(model(batch["dst_in"], "dst"), batch["dst_target"])
            optimizer.zero_grad(set_to_none=True)
            (loss_src + loss_dst).backward()
            optimizer.step()
            loss = float((loss_src + loss_dst).detach())
            now = time.perf_counter()
            if log is not None and (now - last_log >= 30 or now >= deadline):
                log(f"step {steps}  loss {loss:.5f}  {now - start:.0f} s  {steps / (now - start):.2f} steps/s  "
                    f"{max(0.0, deadline - now):.0f} s left")
                last_log = now
            if now >= deadline:
                break
    finally:
        stream.close()
    seconds = time.perf_counter() - start
    gflop = gflop_per_face(model)
    write_model(model.eval(), out, steps)
    result = {"steps": steps, "seconds": round(seconds, 3), "gflop_per_face": round(gflop, 4), "loss": loss}
    replace_atomically(out / "peer.json", lambda tmp: tmp.write_text(json.dumps(
        {"model": "faceswap original (peer)", "batch_size": batch_size, "lr": LR, **result}, indent=2) + "\n"))
    return result


def write_model(model: OriginalModel, out: Path, steps: int) -> None:
    """Write ``out/export/swap.onnx`` (checked against PyTorch) and then ``out/card.json``."""
    card = peer_card(steps)
    try:
        (out / ONNX_FILE).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {out / ONNX_FILE.parent}: {exc.strerror or exc}") from None
    data = export_swap_onnx(PeerSwapPath(model).eval(), card)
    replace_atomically(out / ONNX_FILE, lambda tmp: tmp.write_bytes(data))
    save_card(out, card)


def export_swap_onnx(path: PeerSwapPath, card: ModelCard) -> bytes:
    """The swap path as ONNX bytes in ``vfxswap export``'s signature and metadata (card JSON under
    ``vfxswap.card``, dynamic batch, fixed R), checked in ONNX Runtime against PyTorch (max abs diff
    <= ``vfxswap.model.export.TOLERANCE``) on a fixed random batch of 3.

    Raises:
        EngineError: the export failed or does not reproduce PyTorch.
    """
    import onnxruntime as ort

    r = card.resolution
    names = ["face", "rgb", "mask"]
    example = torch.rand(2, 3, r, r, generator=torch.Generator().manual_seed(0))
    data = to_onnx(path, example, card, input_names=names[:1], output_names=names[1:], opset=DEFAULT_OPSET,
                   kind="swap", extra_metadata={"vfxswap.peer": "faceswap original, tools/peer_original.py"})
    face = torch.rand(CHECK_BATCH, 3, r, r, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = [t.numpy() for t in path(face)]
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(names[1:], {"face": face.numpy()})
    diff = max(float(np.abs(a - b).max()) for a, b in zip(got, expected))
    if not diff <= TOLERANCE:
        raise EngineError(f"the peer's ONNX export does not reproduce PyTorch (max abs diff {diff:.2g})")
    return data


def main(argv: list[str] | None = None) -> int:
    from bench_quality import parse_budget  # tools/ is on sys.path when this file runs as a script

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faceset-src", required=True, type=Path, help="faceset of the identity to put in")
    parser.add_argument("--faceset-dst", required=True, type=Path, help="faceset of the plate's person")
    parser.add_argument("-o", "--output", required=True, type=Path, help="peer model folder to write")
    parser.add_argument("--budget", required=True, type=parse_budget, help="wall clock: 45m, 90s, 2h, 1h30m")
    parser.add_argument("--batch-size", type=int, default=BATCH, help=f"faces per side per step (default {BATCH})")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        result = train_peer(args.faceset_src, args.faceset_dst, args.output, args.budget,
                            batch_size=args.batch_size, seed=args.seed, log=lambda line: print(line, flush=True))
    except VfxSwapError as exc:
        print(f"peer_original: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"peer: {result['steps']} steps in {result['seconds']:.0f} s, {result['gflop_per_face']:.2f} GFLOP/face, "
          f"loss {result['loss']:.5f} -> {args.output} (convert with `vfxswap convert PLATE -m {args.output} "
          f"--backend onnxruntime --mask hull`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
