"""Model directories on disk (DESIGN.md section 4): ``card.json``, ``weights.safetensors``, ``train_state.pt``.

- ``weights.safetensors``: the model's tensors (inference), step in its metadata. safetensors cannot
  carry code, so a model file is safe to open.
- ``train_state.pt``: everything a resumed run needs — model weights, optimizer state, step, RNG
  state — as plain tensors and numbers, loaded with ``torch.load(weights_only=True)`` so a pickle
  payload is refused, never executed.
- ``card.json``: the :class:`ModelCard`.

Each file is written to a temporary name, flushed to disk and renamed into place, so a kill at any
moment leaves every file either the old or the new version. ``train_state.pt`` is self-contained, so
a kill between two renames never pairs weights and optimizer state of different steps.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .. import __version__
from ..atomic import replace_atomically
from ..errors import ModelError, OutputError, one_line
from .autoencoder import FaceSwapModel
from .card import ModelCard

CARD = "card.json"
WEIGHTS = "weights.safetensors"
TRAIN_STATE = "train_state.pt"


def save_card(model_dir: Path, card: ModelCard) -> None:
    card = dataclasses.replace(card, vfxswap_version=__version__)
    replace_atomically(model_dir / CARD, lambda tmp: tmp.write_text(card.to_json(), encoding="utf-8"))


def save_weights(model_dir: Path, model: FaceSwapModel, *, step: int, dtype: torch.dtype = torch.float32) -> None:
    """Write the model's tensors (cast to ``dtype``, e.g. float16 for a small shipped model)."""
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    replace_atomically(model_dir / WEIGHTS, lambda tmp: save_file(tensors, str(tmp), metadata={
        "format": "vfxswap", "step": str(step)}))


def save_train_state(model_dir: Path, state: dict[str, Any]) -> None:
    """Write a resumable training state (tensors, numbers, strings and containers of them only)."""
    replace_atomically(model_dir / TRAIN_STATE, lambda tmp: torch.save(state, str(tmp)))


def save_model_dir(model_dir: str | os.PathLike, model: FaceSwapModel, card: ModelCard, *,
                   train_state: dict[str, Any] | None = None, weights_dtype: torch.dtype = torch.float32) -> None:
    """Save a model dir: train state first (self-contained), then weights, then the card."""
    root = Path(model_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create model folder {root}: {exc.strerror}") from None
    if train_state is not None:
        save_train_state(root, train_state)
    save_weights(root, model, step=card.steps, dtype=weights_dtype)
    save_card(root, card)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``weights.safetensors`` file (never unpickled)."""
    if not path.is_file():
        raise ModelError(f"{path} is missing: the model folder is incomplete")
    try:
        return load_file(str(path))
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {one_line(exc)}") from None
    except Exception as exc:  # SafetensorError, ValueError, ... of a damaged file
        raise ModelError(f"{path} is not a valid safetensors file ({one_line(exc)}); it may be truncated or "
                         "not a model: restore it from a backup (or train again)") from None


def load_weights_into(model: FaceSwapModel, path: Path) -> None:
    """Load ``weights.safetensors`` into ``model``, checking every name and shape against its card."""
    load_state_into(model, read_weights(path), path)


def copy_matching_weights(model: FaceSwapModel, model_dir: str | os.PathLike, *,
                          skip: tuple[str, ...] = ()) -> list[str]:
    """Copy into ``model`` the tensors of another model dir's ``weights.safetensors`` whose names and
    shapes match ``model``'s, except names starting with a prefix in ``skip``; returns the copied names.
    """
    tensors = read_weights(Path(model_dir) / WEIGHTS)
    own = model.state_dict()
    copied = sorted(k for k, v in tensors.items()
                    if k in own and v.shape == own[k].shape and not k.startswith(skip))
    model.load_state_dict({k: tensors[k].to(torch.float32) for k in copied}, strict=False)
    return copied


def load_state_into(model: FaceSwapModel, tensors: Any, where: Path) -> None:
    """Load the state dict ``tensors`` into ``model`` after checking every name and shape against
    the model its card.json describes.

    Raises:
        ModelError: one line naming the first few missing, unexpected and wrongly shaped tensors.
    """
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise ModelError(f"{where} holds no model tensors: it is not a vfxswap model state")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tensors[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(part for part in (
            f"{len(missing)} missing: {', '.join(missing[:3])}" if missing else "",
            f"{len(unexpected)} unexpected: {', '.join(unexpected[:3])}" if unexpected else "",
            f"{len(wrong)} of another shape: " + ", ".join(
                f"{k} {tuple(tensors[k].shape)} (card: {tuple(expected[k].shape)})" for k in wrong[:3]) if wrong else "",
        ) if part)
        raise ModelError(f"{where} does not match card.json ({detail}): they were made for different models; "
                         "put back the card.json these weights were trained with, or retrain")
    model.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})


def load_model(model_dir: str | os.PathLike, *, device: str | torch.device = "cpu") -> tuple[FaceSwapModel, ModelCard]:
    """Build the model its card describes and load its weights; returns ``(model in eval mode, card)``.

    Raises:
        ModelError: missing files, a newer format version, a corrupt or mismatched weights file.
    """
    root = Path(model_dir)
    card = ModelCard.load(root)
    model = FaceSwapModel(card)
    load_weights_into(model, root / WEIGHTS)
    return model.to(device).eval(), card


def load_train_state(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The resumable state of a model dir, refusing anything but plain tensors and containers."""
    path = Path(model_dir) / TRAIN_STATE
    if not path.is_file():
        raise ModelError(f"{path} is missing: nothing to resume (train without --resume to start)")
    what_to_do = ("restore it from a backup, or train into a new folder to start over "
                  "(weights.safetensors beside it still converts)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of foreign files
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {one_line(exc)}") from None
    except Exception as exc:  # a damaged file makes torch's safe unpickler raise nearly anything
        # torch's own message advises weights_only=False, which must never be done with this file
        found = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", str(exc), re.IGNORECASE)
        what = f"it refers to {found.group(1)}; only plain tensors are accepted" if found else type(exc).__name__
        raise ModelError(f"{path} is corrupt or not a vfxswap training state and was not loaded ({what}): "
                         f"{what_to_do}") from None
    if not isinstance(state, dict) or state.get("format") != "vfxswap-train-state":
        raise ModelError(f"{path} is not a vfxswap training state: {what_to_do}")
    if not isinstance(state.get("model"), dict) or type(state.get("step")) is not int:
        raise ModelError(f"{path} is incomplete (no model tensors or step): {what_to_do}")
    return state
