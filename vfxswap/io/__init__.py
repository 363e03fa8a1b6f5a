"""Frame sources: movies (PyAV), image sequences and stills (OpenImageIO), colour (OpenColorIO).

    from vfxswap.io import open_source, probe, to_display_uint8
"""

from .colorspace import to_display_uint8
from .source import FrameSource, open_source, probe

__all__ = ["FrameSource", "open_source", "probe", "to_display_uint8"]
