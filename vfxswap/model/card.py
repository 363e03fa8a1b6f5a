"""ModelCard: everything a checkpoint says about itself (DESIGN.md section 3 and style rule 7).

The converter never guesses: resolution, face type, colour space, normalisation and architecture all
come from ``card.json`` beside the weights.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

from ..config import check_fields, number
from ..errors import ConfigError, ModelError, one_line
from ..types import FaceType

FORMAT_VERSION = 2  # 2 added pretrained and init_from; older cards load with their defaults
_RESTORE = "it is damaged or was edited by hand; restore it from a backup (or from the model's export metadata)"
Arch = Literal["df", "liae"]
ARCHS: tuple[str, ...] = ("df", "liae")

# Presets. "cpu": depthwise-separable convs and narrow widths keep the swap path under 1 GFLOP per
# face at 128 px (PERF_NOTES: a CPU converter at tens of fps needs <~1 GFLOP); "gpu": DeepFaceLab
# SAEHD-sized plain convs (~55 GFLOP per face at 128 px).
PRESETS: dict[str, dict[str, int | bool]] = {
    "cpu": {"encoder_dims": 32, "ae_dims": 128, "decoder_dims": 16, "decoder_mask_dims": 8, "separable": True},
    "gpu": {"encoder_dims": 64, "ae_dims": 256, "decoder_dims": 64, "decoder_mask_dims": 22, "separable": False},
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelCard:
    """Self-description of a model directory.

    Attributes:
        arch: ``df`` (shared encoder + inter, one decoder per identity) or ``liae`` (shared encoder
            and decoder, ``inter_ab`` for both sides plus ``inter_b`` for dst).
        resolution: crop side in pixels, 64..512, a multiple of 16.
        face_type: crop coverage the model was trained on (``half``, ``full``, ``whole_face``, ``head``).
        encoder_dims: channels of the first encoder stage (doubles per stage, 4 stages).
        ae_dims: width of the dense bottleneck.
        decoder_dims: channels of the decoder's last stage (doubles per stage going up).
        decoder_mask_dims: the same for the mask head.
        separable: depthwise-separable convolutions (the CPU-friendly family).
        color_space: colour space of the model's input and output (``srgb``: display-referred RGB).
        normalization: pixel range (``0..1`` float RGB, channels first).
        mask_head: whether each decoder predicts an alpha mask beside RGB.
        steps: training steps done.
        pretrained: trained by ``vfxswap train --pretrain`` on a pool of identities (both decoders
            learn the same faces), to start new pairs from with ``--init``.
        init_from: the model folder this one's weights were initialised from (``--init``), or empty.
        format_version: version of this card/checkpoint layout.
        vfxswap_version: version of vfxswap that wrote it.
    """

    arch: Arch = "df"
    resolution: int = number(128, at_least=64, at_most=512)
    face_type: FaceType = "whole_face"
    encoder_dims: int = number(32, at_least=4, at_most=2048)
    ae_dims: int = number(128, at_least=4, at_most=2048)
    decoder_dims: int = number(16, at_least=4, at_most=2048)
    decoder_mask_dims: int = number(8, at_least=4, at_most=2048)
    separable: bool = True
    color_space: str = "srgb"
    normalization: str = "0..1"
    mask_head: bool = True
    steps: int = number(0, at_least=0)
    pretrained: bool = False
    init_from: str = ""
    format_version: int = FORMAT_VERSION
    vfxswap_version: str = ""

    def __post_init__(self) -> None:
        check_fields(self, label=str)
        if self.resolution % 16:
            raise ConfigError(f"resolution must be a multiple of 16 between 64 and 512, got {self.resolution}")

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> ModelCard:
        """A card with the widths of ``preset`` (``cpu`` or ``gpu``), then ``overrides``."""
        if preset not in PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        return cls(**{**PRESETS[preset], **overrides})

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str = "card.json") -> ModelCard:
        """Parse a card; refuses newer format versions and unknown or malformed fields. An older
        card is read as the current version, the fields it lacks taking their defaults."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}): {_RESTORE}") from None
        if not isinstance(data, dict):
            raise ModelError(f"{where} must hold a JSON object: {_RESTORE}")
        version = data.get("format_version")
        if not isinstance(version, int):
            raise ModelError(f"{where} has no format_version: it is not a vfxswap model card")
        if version > FORMAT_VERSION:
            raise ModelError(f"{where} is format version {version}, newer than this vfxswap reads "
                             f"({FORMAT_VERSION}): upgrade vfxswap")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"{where} has unknown fields {', '.join(unknown)}: written by another tool or version")
        try:
            return cls(**{**data, "format_version": FORMAT_VERSION})
        except (ConfigError, TypeError) as exc:
            raise ModelError(f"{where} is invalid: {exc}: {_RESTORE}") from None

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelCard:
        path = Path(model_dir) / "card.json"
        if not path.is_file():
            raise ModelError(f"no model at {model_dir}: card.json is missing (train one with `vfxswap train`)")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelError(f"cannot read {path}: {one_line(exc)}") from None
        except UnicodeDecodeError as exc:
            raise ModelError(f"{path} is not UTF-8 text (byte {exc.start}): {_RESTORE}") from None
        return cls.from_json(text, where=str(path))
