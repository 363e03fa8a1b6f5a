"""Write a file under a temporary name and rename it into place, so a kill never leaves half a file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .errors import OutputError


def replace_atomically(path: Path, write: Callable[[Path], object], *, durable: bool = True) -> None:
    """Call ``write(tmp)`` for ``.tmp-NAME`` beside ``path``, then rename it onto ``path``.

    Args:
        path: the final file.
        write: writes the temporary file (its name keeps the extension, so format-by-extension
            writers such as ``cv2.imwrite`` work); it may return ``False`` to report failure.
        durable: fsync before the rename (checkpoints); off for many small per-frame files.

    Raises:
        OutputError: the file cannot be written.
    """
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        if write(tmp) is False:
            raise OSError(f"cannot write {tmp}")
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}; check free space and permissions") from None


def remove_quietly(path: str | os.PathLike[str]) -> None:
    """Delete a file if it is there (a temp file after a failed write); never raises."""
    try:
        os.remove(path)
    except OSError:
        pass
