"""Safe writes (DESIGN.md section 6.12): never half a file under a final name, never through a symlink.

* :func:`create_temp` makes an exclusive temp file with an unpredictable name in the destination
  folder (``O_CREAT|O_EXCL``: a symlink planted at a guessed name is never followed);
* :func:`commit_temp` fsyncs it (optionally) and renames it over the final name; the rename replaces
  a symlink at the final name itself, never the file it points to;
* :func:`replace_atomically` is the two together around a write callback; :func:`write_image`
  encodes an image in memory and writes it so;
* :func:`open_for_append` opens a log-like file (``faceset.jsonl``, ``patches.jsonl``) for appending
  and refuses a symlink (``O_NOFOLLOW``);
* :func:`acquire_lock` / :func:`locked` give one process at a time a file (``flock``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from .errors import OutputError, one_line

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"


def _read_umask() -> int:
    """The process umask, read once at import (setting it back and forth later would race threads)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of our temp files (skipped by scanners, left by a killed write)."""
    return os.path.basename(name).startswith(TEMP_PREFIX)


def write_error(path: str | os.PathLike[str], exc: BaseException | str) -> OutputError:
    """The one-line :class:`OutputError` for a failed write of ``path`` (disk full, permissions).

    A library's own words for a short write (torch's ``enforce fail at inline_container.cc``,
    OpenImageIO's ``could only write``) become "No space left on device" when the disk is full.
    """
    has_errno = isinstance(exc, OSError) and exc.errno is not None
    reason = "No space left on device" if not has_errno and _disk_full(path) else one_line(exc, limit=160)
    return OutputError(f"cannot write {os.fspath(path)}: {reason}; check free space and permissions")


def _disk_full(path: str | os.PathLike[str]) -> bool:
    try:
        stat = os.statvfs(os.path.dirname(os.path.abspath(os.fspath(path))))
    except OSError:
        return False
    return stat.f_bfree * stat.f_frsize < 64 * 1024


def file_in_path(folder: str) -> str | None:
    """The deepest existing component of ``folder`` if it is a file rather than a folder."""
    probe = os.path.abspath(folder)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent
    return None if os.path.isdir(probe) else probe


def prepare_folder(folder: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Create the output folder ``folder`` of ``target`` if needed and check that it is writable.

    Raises:
        OutputError: a file stands where a folder should be, or the folder cannot be made or written.
    """
    folder = os.fspath(folder) or "."
    blocker = file_in_path(folder)
    if blocker is not None:
        raise OutputError(f"cannot write {os.fspath(target)}: {blocker} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {folder} for {os.fspath(target)}: "
                          f"{one_line(exc)}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {os.fspath(target)}: the folder {folder} is not writable")


def create_temp(path: str | os.PathLike[str]) -> str:
    """Create an empty temp file for ``path`` in its folder and return its name.

    The name is ``.tmp-RANDOM-NAME`` (it keeps ``NAME``'s extension, so writers that pick the format
    by extension work), created with ``O_EXCL`` and mode 0666 less the umask.

    Raises:
        OutputError: the folder is missing or not writable.
    """
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    try:
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=f"-{name}", dir=folder)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are shared with a pipeline
    except OSError:
        pass
    except BaseException:  # Ctrl-C: leave nothing behind
        os.close(fd)
        remove_quietly(temp)
        raise
    os.close(fd)
    return temp


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a written file to disk (raises ``OSError``, e.g. ENOSPC on a delayed allocation)."""
    fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_temp(temp: str | os.PathLike[str], path: str | os.PathLike[str], *, durable: bool = True) -> None:
    """Rename ``temp`` over ``path`` (after an fsync when ``durable``); removes ``temp`` on failure.

    Raises:
        OutputError: the flush or the rename failed (nothing appears under ``path``).
    """
    try:
        if durable:
            fsync_file(temp)
        os.replace(temp, path)
    except BaseException as exc:  # a full disk, or Ctrl-C during the flush
        remove_quietly(temp)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise


def replace_atomically(path: Path, write: Callable[[Path], object], *, durable: bool = True) -> None:
    """Call ``write(tmp)`` for an exclusive temp file beside ``path``, then rename it onto ``path``.

    Args:
        path: the final file (a symlink there is replaced, never written through).
        write: writes the temporary file (its name keeps the extension, so format-by-extension
            writers such as ``cv2.imwrite`` work); it may return ``False`` to report failure.
        durable: fsync before the rename. Writers check every write: the first error stops the job.

    Raises:
        OutputError: the file cannot be written; no temp file is left behind.
    """
    temp = Path(create_temp(path))
    try:
        if write(temp) is False:
            raise OSError(f"the writer failed on {temp.name}")
    except OSError as exc:
        remove_quietly(temp)
        raise write_error(path, exc) from None
    except BaseException as exc:
        remove_quietly(temp)
        if _is_disk_error(exc):
            raise write_error(path, exc) from None
        raise
    commit_temp(temp, path, durable=durable)


def write_image(path: Path, bgr: np.ndarray, params: Sequence[int] = (), *, durable: bool = False) -> None:
    """Encode an 8/16-bit BGR(A) image with OpenCV by ``path``'s extension and write it atomically.

    Encoding in memory and writing the bytes ourselves makes a full disk an :class:`OutputError`
    (``cv2.imwrite`` only returns ``False`` and lets libpng print to stderr).
    """
    import cv2

    ok, data = cv2.imencode(Path(path).suffix, bgr, list(params))
    if not ok:
        raise OutputError(f"cannot encode {path} ({bgr.shape} {bgr.dtype})")
    replace_atomically(Path(path), lambda tmp: tmp.write_bytes(data.tobytes()), durable=durable)


def _is_disk_error(exc: BaseException) -> bool:
    """Whether a library's own exception (torch's ``[enforce fail at inline_container.cc]``, an
    OpenCV error) reports a failed file write rather than a bug."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(key in text for key in (
        "inline_container", "file write failed", "No space left", "unexpected pos", "PytorchStreamWriter"))


def open_for_append(path: str | os.PathLike[str]) -> IO[str]:
    """Open a text file for appending (created if missing), refusing a symlink at ``path``.

    Raises:
        OutputError: ``path`` is a symlink or cannot be opened.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(os.fspath(path), flags, 0o666)
    except OSError as exc:
        if os.path.islink(path):
            raise OutputError(f"refusing to write {os.fspath(path)}: it is a symlink; "
                              "remove the link or pick another output folder") from None
        raise write_error(path, exc) from None
    return os.fdopen(fd, "a", encoding="utf-8")


def acquire_lock(path: str | os.PathLike[str], *, busy: str | None = None,
                 on_wait: Callable[[], object] | None = None) -> int | None:
    """Take an exclusive ``flock`` on the lock file ``path`` (created if missing, never through a
    symlink) and return its descriptor: closing it, or the process ending, releases the lock.

    Args:
        busy: when given, do not wait for another holder: raise :class:`OutputError` with this message.
        on_wait: called once before waiting for another holder (to say so).

    Returns:
        The descriptor, or ``None`` where there are no advisory locks (Windows).

    Raises:
        OutputError: ``busy`` and another process holds the lock, or the lock file is a symlink or
            cannot be created.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks
        return None
    try:
        fd = os.open(os.fspath(path), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as exc:
        if os.path.islink(path):
            raise OutputError(f"refusing to write {os.fspath(path)}: it is a symlink; "
                              "remove the link or pick another output folder") from None
        raise write_error(path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if busy is not None:
                raise OutputError(busy) from None
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
    except BlockingIOError:
        os.close(fd)
        raise
    except OSError as exc:  # a file system without locks (some NFS set-ups): go on, unlocked
        logger.warning("cannot lock %s (%s): carrying on without the lock", os.fspath(path), one_line(exc))
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], *, busy: str | None = None,
           on_wait: Callable[[], object] | None = None) -> Iterator[None]:
    """Hold :func:`acquire_lock` on ``path`` for the ``with`` block."""
    fd = acquire_lock(path, busy=busy, on_wait=on_wait)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def remove_quietly(path: str | os.PathLike[str]) -> None:
    """Delete a file if it is there (a temp file after a failed write); never raises."""
    try:
        os.remove(path)
    except OSError:
        pass
