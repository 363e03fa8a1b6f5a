"""Frame sources and writers: movies (PyAV), image sequences and stills (OpenImageIO), colour (OpenColorIO).

    from vfxswap.io import open_source, open_writer, parse_frames, probe, to_display_uint8
"""

from .colorspace import to_display_uint8
from .frames import format_frames, parse_frames
from .source import FrameSource, open_source, probe
from .writer import FrameWriter, open_writer

__all__ = ["FrameSource", "FrameWriter", "format_frames", "open_source", "open_writer", "parse_frames",
           "probe", "to_display_uint8"]
