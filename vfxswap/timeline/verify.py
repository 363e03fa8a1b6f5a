"""Check a render: which frames of an output are missing or unreadable, so a farm re-queues just those.

* Image sequence (``out.####.exr``): each expected file must exist and decode completely (a
  truncated file is caught by reading its pixels, not just its header).
* Movie: the file is decoded to the end; its frames are numbered by the ``--frames`` expression in
  the ``NAME.vfxswap.json`` settings beside it (what ``vfxswap convert`` and ``vfxswap assemble``
  write), else consecutively from the first expected frame. Frames not in the movie are missing;
  frames from the point where decoding fails are unreadable (a cut-off MP4/MOV, whose sample table
  says how many frames it holds; a cut-off Matroska file just ends early: its last frames are
  missing).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from ..errors import ConfigError, MediaError
from ..io.frames import format_frames, parse_frames
from ..io.sequences import _format_number, _parse_pattern, is_sequence_pattern, read_image
from ..io.writer import is_movie_path
from ..io.writer import settings_file


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """Frames of an output that need rendering again.

    Attributes:
        output: the movie or sequence pattern checked.
        kind: ``sequence`` or ``movie``.
        expected: the frames asked for, ascending.
        missing: frames with no file (sequences) or not in the movie.
        unreadable: frames whose file (or the movie from that frame on) does not decode.
        reasons: a one-line reason per unreadable frame.
    """

    output: str
    kind: Literal["sequence", "movie"]
    expected: tuple[int, ...]
    missing: tuple[int, ...]
    unreadable: tuple[int, ...]
    reasons: dict[int, str] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every expected frame is present and readable."""
        return not self.missing and not self.unreadable

    @property
    def bad(self) -> tuple[int, ...]:
        """Missing and unreadable frames, ascending."""
        return tuple(sorted(set(self.missing) | set(self.unreadable)))

    @property
    def requeue(self) -> str:
        """The frames to render again as a ``--frames`` expression (``""`` when none)."""
        return format_frames(self.bad)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (frame lists as compact expressions)."""
        return {"output": self.output, "kind": self.kind, "ok": self.ok, "expected": format_frames(self.expected),
                "missing": format_frames(self.missing), "unreadable": format_frames(self.unreadable),
                "requeue": self.requeue, "reasons": {str(k): v for k, v in sorted(self.reasons.items())}}


def verify_output(output: str | os.PathLike[str], frames: Iterable[int] | str, *,
                  workers: int = 4) -> VerifyReport:
    """List the missing or unreadable frames of a sequence or movie output.

    Args:
        output: a sequence pattern (``out.####.exr``, ``out.%04d.png``) or a movie file.
        frames: the frames that should be there: an expression (``1001-1100``) or frame numbers.
        workers: threads decoding sequence files.

    Returns:
        A :class:`VerifyReport` (a missing movie or folder: every frame missing).

    Raises:
        ConfigError: a bad frame expression, or an output that is neither a movie nor a pattern.
    """
    path = os.fspath(output)
    expected = tuple(parse_frames(frames) if isinstance(frames, str) else sorted(set(frames)))
    if not expected:
        raise ConfigError("no frames to verify; pass --frames A-B")
    if is_movie_path(path):
        return _verify_movie(path, expected)
    if is_sequence_pattern(path):
        return _verify_sequence(path, expected, max(1, int(workers)))
    raise ConfigError(f"cannot tell what {path!r} is: pass a movie or a sequence pattern such as out.####.exr")


def _check_file(path: str) -> str | None:
    """``None`` when the image decodes completely, else the one-line reason."""
    try:
        read_image(path)
    except MediaError as exc:
        return str(exc)
    return None


def _verify_sequence(pattern: str, expected: tuple[int, ...], workers: int) -> VerifyReport:
    parsed = _parse_pattern(pattern)
    folder = os.path.dirname(pattern)
    paths = {n: os.path.join(folder, _format_number(parsed, n)) for n in expected}
    missing = [n for n, p in paths.items() if not os.path.isfile(p)]
    present = [n for n in expected if n not in set(missing)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = dict(zip(present, pool.map(lambda n: _check_file(paths[n]), present)))
    reasons = {n: r for n, r in results.items() if r is not None}
    return VerifyReport(output=pattern, kind="sequence", expected=expected, missing=tuple(missing),
                        unreadable=tuple(sorted(reasons)), reasons=reasons)


def _movie_numbers(path: str, expected: tuple[int, ...]) -> list[int] | None:
    """The frame numbers a movie holds in order, from its settings' ``frames`` (``None``: unknown)."""
    try:
        data = json.loads(settings_file(path).read_text(encoding="utf-8"))
        expr = data["settings"]["frames"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(expr, str) or not expr:
        return None
    try:
        return parse_frames(expr)
    except ConfigError:
        return None


def _verify_movie(path: str, expected: tuple[int, ...]) -> VerifyReport:
    from ..io.source import open_source

    if not os.path.isfile(path):
        return VerifyReport(output=path, kind="movie", expected=expected, missing=expected, unreadable=())
    numbers = _movie_numbers(path, expected)
    decoded = 0
    failure: str | None = None
    try:
        with open_source(path) as src:
            for _ in src.frames():
                decoded += 1
    except MediaError as exc:
        failure = str(exc)
    if numbers is None:
        numbers = list(range(expected[0], expected[0] + max(decoded, len(expected))))
    present = set(numbers[:decoded])
    broken = set(numbers[decoded:]) if failure is not None else set()
    unreadable = tuple(n for n in expected if n in broken)
    missing = tuple(n for n in expected if n not in present and n not in broken)
    return VerifyReport(output=path, kind="movie", expected=expected, missing=missing, unreadable=unreadable,
                        reasons={n: failure for n in unreadable if failure})
