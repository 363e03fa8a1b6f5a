"""PNG structure check: find a truncated or damaged PNG before a decoder reads it.

libpng, inside OpenCV and OpenImageIO, prints its own complaints on stderr ("libpng error: IDAT:
Read error") from C when it meets a cut-short file; walking the chunks first (signature, each
chunk's length and CRC, up to ``IEND``) turns that into one clean error and keeps stderr quiet.
"""

from __future__ import annotations

import os
import zlib

from ..errors import MediaError, one_line

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_problem(data: bytes) -> str | None:
    """Why ``data`` is not a whole PNG file, or ``None`` when its chunks are complete and intact.

    Only the container is checked (chunk lengths and CRCs up to ``IEND``), not the pixels; the cost
    is one CRC pass over the file (~1 ms per MB).
    """
    if not data:
        return "it is empty (0 bytes)"
    if not data.startswith(PNG_SIGNATURE):
        return "it is not a PNG file (no PNG signature)"
    view = memoryview(data)
    pos = len(PNG_SIGNATURE)
    while True:
        if pos + 12 > len(data):
            return "it is truncated (it ends before its IEND chunk)"
        length = int.from_bytes(view[pos:pos + 4], "big")
        kind = bytes(view[pos + 4:pos + 8]).decode("latin-1")
        end = pos + 12 + length
        if end > len(data):
            return f"it is truncated (it ends inside the {kind} chunk)"
        if zlib.crc32(view[pos + 4:end - 4]) != int.from_bytes(view[end - 4:end], "big"):
            return f"it is damaged (the CRC of the {kind} chunk does not match)"
        if kind == "IEND":
            return None
        pos = end


def check_png_file(path: str | os.PathLike[str]) -> None:
    """Raise a one-line :class:`MediaError` when the PNG file ``path`` is unreadable, truncated or damaged."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise MediaError(f"cannot read image {os.fspath(path)}: {one_line(exc)}") from None
    if not data:
        raise MediaError(f"{os.fspath(path)} is empty (0 bytes); re-copy or re-render it")
    problem = png_problem(data)
    if problem is not None:
        raise MediaError(f"cannot read image {os.fspath(path)}: {problem}; re-copy or re-render it")
