"""Open a frame writer by output path: a movie file or an image-sequence pattern.

    from vfxswap.io import open_source, open_writer

    with open_source("plate.mov") as src, open_writer("out.mov", src.info, source="plate.mov") as out:
        for frame in src.frames():
            out.write(frame)

Numbering: a :class:`~vfxswap.io.sequences.SequenceWriter` writes each frame to the file numbered
``frame.index``; sequence sources already carry their numbers. A movie source's frames are numbered
from 0, so for a movie -> sequence render either map the indexes yourself
(``dataclasses.replace(frame, index=start + frame.index)``) or pass ``start_frame`` here, which then
adds ``start_frame - info.first_frame`` to every index (and to :meth:`exists`); never both.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Protocol

from ..errors import ConfigError
from ..types import Frame, VideoInfo
from . import sequences

MOVIE_EXTENSIONS: tuple[str, ...] = ("mp4", "mov", "mkv", "mxf", "avi")


class FrameWriter(Protocol):
    """What :func:`open_writer` returns: a context manager that takes frames in order.

    Leaving the ``with`` block normally finishes the output; leaving it by an exception leaves no
    partial file under a final name.
    """

    def write(self, frame: Frame) -> object:
        """Write one frame."""
        ...

    def close(self) -> None:
        """Finish the output (idempotent)."""
        ...

    def __enter__(self) -> FrameWriter: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


def is_movie_path(path: str) -> bool:
    """Whether ``path`` names a movie file this package writes (by extension)."""
    return os.path.splitext(path)[1][1:].lower() in MOVIE_EXTENSIONS


def settings_file(output: str | os.PathLike[str]) -> Path:
    """Where the resolved settings of a render go: ``swap.mp4`` -> ``swap.vfxswap.json``,
    ``out.####.exr`` -> ``out.vfxswap.json`` (beside the output)."""
    out = Path(output)
    stem = out.stem if is_movie_path(str(out)) else out.name.split("%")[0].split("#")[0].split("@")[0].rstrip("._")
    return out.parent / f"{stem or 'output'}.vfxswap.json"


def open_writer(path: str | os.PathLike[str], info: VideoInfo, *, source: str | None = None,
                codec: str | None = None, start_frame: int | None = None,
                skip_existing: bool = False, bit_depth: int | None = None,
                start_timecode: str | None = None, alpha: bool = False, **options: object) -> FrameWriter:
    """Open a writer for ``path``; use it as a context manager.

    Args:
        path: a movie (``.mp4``, ``.mov``, ``.mkv``, ``.mxf``, ``.avi``: a
            :class:`~vfxswap.io.video.MovieWriter`) or a sequence pattern (``out.####.exr``,
            ``out.%04d.png``: a :class:`~vfxswap.io.sequences.SequenceWriter`).
        info: the source's :class:`VideoInfo`.
        source: movies only: the input movie whose audio is copied.
        codec: movies only: encoder (see :func:`~vfxswap.io.video.plan_encoder`).
        start_frame: sequences only: the number a movie source's frame 0 gets (the module
            docstring explains numbering); ``None`` writes ``frame.index`` as is.
        skip_existing: sequences only: :meth:`SequenceWriter.exists` reports finished files.
        bit_depth: sequences only: bits per channel to store.
        start_timecode: movies only: timecode of the first frame.
        alpha: write ``frame.alpha`` as an alpha channel (ProRes 4444 / FFV1 movies; EXR, PNG,
            TIFF, DPX sequences); other formats raise ConfigError.
        **options: passed on: ``pix_fmt``, ``profile``, ``crf``, ``preset``, ``options`` (movies);
            ``compression`` (EXR sequences).

    Returns:
        A :class:`FrameWriter`.

    Raises:
        ConfigError: a path that is neither a movie nor a sequence pattern, or an option that does
            not apply to it.
        OutputError: the output folder cannot be written.
    """
    text = os.fspath(path)
    if is_movie_path(text):
        unused = {"start_frame": start_frame, "bit_depth": bit_depth}
        bad = [k for k, v in unused.items() if v is not None] + (["skip_existing"] if skip_existing else [])
        if bad:
            raise ConfigError(f"{', '.join(bad)} apply to image sequences, not to the movie {text}")
        from .video import MovieWriter  # PyAV loads only when a movie is written

        return MovieWriter(text, info, source=source, codec=codec, start_timecode=start_timecode,
                           alpha=alpha, **options)  # type: ignore[arg-type]
    if sequences.is_sequence_pattern(text):
        bad = [k for k, v in {"source": source, "codec": codec, "start_timecode": start_timecode}.items()
               if v is not None] + [k for k in options if k != "compression"]
        if bad:
            raise ConfigError(f"{', '.join(bad)} apply to movies, not to the sequence {text}")
        offset = 0 if start_frame is None else start_frame - info.first_frame
        return sequences.SequenceWriter(text, info, skip_existing=skip_existing, bit_depth=bit_depth,
                                        offset=offset, alpha=alpha, **options)  # type: ignore[arg-type]
    raise ConfigError(f"cannot tell what to write from {text!r}: use a movie "
                      f"({', '.join('.' + e for e in MOVIE_EXTENSIONS)}) or a sequence pattern such "
                      "as out.####.exr")


__all__ = ["FrameWriter", "MOVIE_EXTENSIONS", "is_movie_path", "open_writer", "settings_file"]
