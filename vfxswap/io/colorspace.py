"""Colour conversions with OpenColorIO: frames to 8-bit sRGB display images.

Float frames are converted with OpenColorIO's built-in CG config (``ocio://cg-config-latest``,
available offline): ``color_space="linear"`` means scene-linear Rec.709/sRGB primaries
(``lin_rec709_srgb``) and is encoded with the sRGB curve (``srgb_encoded_rec709_srgb``); no tone
mapping is applied. A full OCIO display/view API comes later.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import PyOpenColorIO as ocio

from ..errors import ConfigError
from ..types import Frame

OCIO_CONFIG = "ocio://cg-config-latest"
DISPLAY_SPACE = "srgb_encoded_rec709_srgb"
# Frame.color_space names that are shorthands for colour spaces of the built-in config.
_ALIASES = {"linear": "lin_rec709_srgb", "srgb": DISPLAY_SPACE}


def _config() -> ocio.Config:
    """The built-in CG config (cached by :func:`open_config`)."""
    return open_config(OCIO_CONFIG)


@functools.lru_cache(maxsize=16)
def _to_display(color_space: str) -> ocio.CPUProcessor:
    """A cached CPU processor from float ``color_space`` to 8-bit sRGB-encoded Rec.709.

    OCIO clamps and quantises to uint8 itself (NaN -> 0, +inf -> 255): no float copy of the frame.
    """
    config = _config()
    source = _ALIASES.get(color_space, color_space)
    if config.getColorSpace(source) is None:
        raise ConfigError(f"unknown colour space {color_space!r}; use 'linear', 'srgb' or a colour "
                          f"space of {OCIO_CONFIG} such as 'lin_rec709_srgb' or 'lin_ap1_scene'")
    return config.getProcessor(source, DISPLAY_SPACE).getOptimizedCPUProcessor(
        ocio.BIT_DEPTH_F32, ocio.BIT_DEPTH_UINT8, ocio.OPTIMIZATION_DEFAULT)


def _apply_to_uint8(processor: ocio.CPUProcessor, image: np.ndarray) -> np.ndarray:
    """Run an F32 -> UINT8 processor over a ``(H, W, 3)`` float32 image into a new uint8 image."""
    source = np.ascontiguousarray(image)
    height, width = source.shape[:2]
    out = np.empty((height, width, 3), np.uint8)
    processor.apply(
        ocio.PackedImageDesc(source, width, height, 3, ocio.BIT_DEPTH_F32, 4, 12, 12 * width),
        ocio.PackedImageDesc(out, width, height, 3, ocio.BIT_DEPTH_UINT8, 1, 3, 3 * width),
    )
    return out


def to_display_uint8(frame: Frame) -> np.ndarray:
    """An 8-bit sRGB display image of a frame, for detectors, previews and thumbnails.

    Args:
        frame: a :class:`Frame` whose image is ``(H, W, 3)`` RGB — ``uint8`` or ``uint16``
            display-referred code values, or ``float32`` in ``frame.color_space`` (``"linear"``:
            scene-linear Rec.709/sRGB; ``"srgb"``: sRGB-encoded in [0, 1]; or an OCIO colour space
            name of the built-in CG config).

    Returns:
        ``(H, W, 3)`` ``uint8`` C-contiguous sRGB image in [0, 255]. A C-contiguous ``uint8`` frame
        image is returned as is (not copied); do not write into it.

    Raises:
        ConfigError: a float frame's ``color_space`` is unknown to the config.
    """
    image = frame.image
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype == np.uint16:
        # x / 257 rounded is the exact inverse of the 8 -> 16 bit expansion (v * 257) OIIO and FFmpeg use.
        return cv2.convertScaleAbs(np.ascontiguousarray(image), alpha=1.0 / 257.0)
    if frame.color_space in ("srgb", "data"):  # display-encoded floats (or non-colour data) in [0, 1]
        return cv2.convertScaleAbs(np.clip(image, 0.0, 1.0), alpha=255.0)
    return _apply_to_uint8(_to_display(frame.color_space), image)


# -- the face path: plate colour space <-> the model's --------------------------------------------

# Names the model's display-referred sRGB space goes by in common configs (the CG/studio configs
# alias the ACES 1.x names too).
_SRGB_NAMES = ("srgb_encoded_rec709_srgb", "sRGB - Texture", "Utility - sRGB - Texture", "srgb_texture", "sRGB")


@functools.lru_cache(maxsize=4)
def open_config(path: str) -> ocio.Config:
    """An OpenColorIO config from a file or a built-in ``ocio://`` URI (cached).

    Raises:
        ConfigError: the config cannot be read.
    """
    try:
        return ocio.Config.CreateFromFile(str(path))
    except Exception as exc:  # OCIO's exception types (missing file, parse error) share no public base
        first = (str(exc).splitlines()[0] if str(exc) else type(exc).__name__).rstrip(".")
        raise ConfigError(f"cannot load OCIO config {path}: {first}; name a .ocio file or a built-in "
                          f"config such as {OCIO_CONFIG} or ocio://studio-config-latest") from None


def resolve_color_space(config: ocio.Config, name: str, *, config_name: str, what: str) -> str:
    """The config's name for ``name``: a colour space, alias or role; ``linear`` means the
    ``scene_linear`` role and ``srgb`` the sRGB-encoded Rec.709 texture space.

    Raises:
        ConfigError: the config has no such colour space (the message lists a few it has).
    """
    candidates = {"linear": ("scene_linear", "lin_rec709_srgb"), "srgb": _SRGB_NAMES}.get(name, (name,))
    for candidate in candidates:
        space = config.getColorSpace(candidate)
        if space is not None:
            return space.getName()
    scene = [cs.getName() for cs in config.getColorSpaces()
             if cs.getReferenceSpaceType() == ocio.REFERENCE_SPACE_SCENE]
    some = ", ".join(repr(n) for n in scene[:6])
    raise ConfigError(f"{config_name} has no colour space {name!r} for the {what}; it has e.g. {some}")


class FaceSpace:
    """Carries face crops between the plate's colour space and the model's through OpenColorIO.

    The model sees display-referred values in [0, 1] (its card's colour space, normally sRGB-encoded
    Rec.709); the plate may be scene-linear ACEScg EXRs, log DPXs or anything the config knows.
    Processors are built once. Values the model space cannot hold (scene-linear highlights above its
    white) are clipped in the face patch only; the rest of the plate is never converted.

    Args:
        plate_space: colour space of the plate's pixels (integer frames: their code values / max).
        config: an OCIO config file or ``ocio://`` URI (default: the built-in CG config).
        model_space: the model's colour space (``srgb``, or a name in ``config``).

    Raises:
        ConfigError: an unreadable config or an unknown colour space.
    """

    def __init__(self, plate_space: str, *, config: str | None = None, model_space: str = "srgb") -> None:
        name = config or OCIO_CONFIG
        cfg = open_config(name)
        self.plate_space = resolve_color_space(cfg, plate_space, config_name=name, what="plate (--input-colorspace)")
        self.model_space = resolve_color_space(cfg, model_space, config_name=name, what="model")
        display = resolve_color_space(cfg, "srgb", config_name=name, what="face detection display")
        self._to_model = cfg.getProcessor(self.plate_space, self.model_space).getDefaultCPUProcessor()
        self._from_model = cfg.getProcessor(self.model_space, self.plate_space).getDefaultCPUProcessor()
        self._to_display = cfg.getProcessor(self.plate_space, display).getOptimizedCPUProcessor(
            ocio.BIT_DEPTH_F32, ocio.BIT_DEPTH_UINT8, ocio.OPTIMIZATION_DEFAULT)

    def to_model(self, crop: np.ndarray) -> np.ndarray:
        """``(S, S, 3)`` plate pixels (uint8, uint16 or float32) -> float32 model values in [0, 1]."""
        out = _normalized(crop)
        self._to_model.applyRGB(out)
        return np.clip(out, 0.0, 1.0, out=out)

    def from_model(self, rgb: np.ndarray) -> np.ndarray:
        """``(S, S, 3)`` float32 model values -> plate values (integer plates: code values / max)."""
        out = np.array(rgb, dtype=np.float32, order="C", copy=True)
        self._from_model.applyRGB(out)
        return out

    def display(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` plate image -> ``(H, W, 3)`` uint8 sRGB for face detection and tracking."""
        return _apply_to_uint8(self._to_display, _normalized(image))


def _normalized(image: np.ndarray) -> np.ndarray:
    """A float32 C-contiguous copy: integer code values scaled to [0, 1], floats as they are."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(65535)
    return np.array(image, dtype=np.float32, order="C", copy=True)
