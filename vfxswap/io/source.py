"""Open any frame source by path: a movie, an image-sequence pattern, a folder or one image."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from types import TracebackType
from typing import Literal, Protocol

from ..errors import MediaError
from ..types import Frame, VideoInfo
from . import sequences


class FrameSource(Protocol):
    """What :func:`open_source` returns: a context manager that yields frames in order.

    Attributes:
        info: the source's :class:`VideoInfo`.
    """

    info: VideoInfo

    def frames(self, start: int | None = None) -> Iterator[Frame]:
        """Frames in order, from frame number ``start`` (``Frame.index >= start``) if given."""
        ...

    def close(self) -> None:
        """Release the files held (idempotent)."""
        ...

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://|pipe:")


def is_stream(path: str) -> bool:
    """Whether ``path`` names a stream FFmpeg opens rather than a local file: ``-`` (standard input),
    ``pipe:N`` or a URL (``http://``, ``rtsp://``, ``srt://``, ``file://`` ...)."""
    return path == "-" or _URL_RE.match(path) is not None


def _reader(path: str) -> Literal["images", "movie"]:
    """Which module reads ``path``: images (folder, image file, sequence pattern) or movie."""
    if is_stream(path):
        return "movie"
    if os.path.isdir(path):
        return "images"
    if os.path.exists(path):
        return "images" if sequences.is_image_path(path) else "movie"
    if sequences.is_sequence_pattern(path):
        return "images"
    raise MediaError(f"no such file: {path}")


def _check_path(path: str | os.PathLike[str]) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise MediaError(f"expected a path to a movie, sequence or folder, got {type(path).__name__}")
    text = os.fspath(path)
    if not text:
        raise MediaError("expected a path to a movie, sequence or folder, got an empty string")
    return text


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe a source from its headers, decoding nothing beyond what probing needs.

    Args:
        path: a movie file (anything FFmpeg opens), a sequence pattern (``shot.%04d.exr``,
            ``shot.####.png``, ``shot.@@@@.dpx``), a folder of images, one image file, or a stream
            (:func:`is_stream`: ``-`` for standard input, a URL). Probing a stream consumes it:
            open it once with :func:`open_source` instead.

    Returns:
        The source's :class:`VideoInfo`.

    Raises:
        MediaError: the path is missing, empty or unreadable (one-line message saying what to do).
    """
    text = _check_path(path)
    if _reader(text) == "images":
        return sequences.probe_images(text)
    from . import video  # PyAV loads only when a movie is read

    return video.probe_movie(text)


def open_source(path: str | os.PathLike[str]) -> FrameSource:
    """Open a source of frames; use it as a context manager.

    Example::

        with open_source("plate.####.exr") as src:
            for frame in src.frames(start=src.info.first_frame + 10):
                ...

    Args:
        path: as for :func:`probe`. A folder whose images share one numbered pattern is a
            ``sequence``; any other folder of images (or one image file) is ``stills``.

    Returns:
        A :class:`FrameSource` whose ``frames()`` yields :class:`Frame` objects in order.

    Raises:
        MediaError: the path is missing, empty or unreadable.
    """
    text = _check_path(path)
    if _reader(text) == "images":
        return sequences.ImageSource(text)
    from . import video

    return video.MovieSource(text)
