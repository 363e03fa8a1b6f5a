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


@functools.lru_cache(maxsize=1)
def _config() -> ocio.Config:
    return ocio.Config.CreateFromFile(OCIO_CONFIG)


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
    if frame.color_space == "srgb":  # already display-encoded floats in [0, 1]
        return cv2.convertScaleAbs(np.clip(image, 0.0, 1.0), alpha=255.0)
    return _apply_to_uint8(_to_display(frame.color_space), image)
