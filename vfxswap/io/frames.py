"""Frame-range expressions (``--frames``): ``1001-1100``, ``1001-1100x2``, ``1001,1005,1010-1012``;
frame rates (``--rate``): ``24``, ``23.976``, ``30000/1001``.

Pure functions, no I/O. Grammar: comma-separated tokens, each ``N`` (one frame), ``A-B`` (``A`` to
``B`` inclusive) or ``A-BxS`` (every ``S``-th frame from ``A``, up to ``B``); frame numbers are
non-negative integers; spaces around tokens are ignored.

    >>> parse_frames("1001-1005x2,1010")
    [1001, 1003, 1005, 1010]
    >>> format_frames([1001, 1002, 1003, 1010])
    '1001-1003,1010'
    >>> parse_rate("23.976")
    Fraction(24000, 1001)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from fractions import Fraction

from ..errors import ConfigError

# A sanity limit: "1-100000000" is a typo, not a shot (4 days of frames at 24 fps is ~8.3 M).
MAX_FRAMES = 10_000_000

_TOKEN_RE = re.compile(r"(\d+)(?:-(\d+)(?:[xX](\d+))?)?")
_GRAMMAR = "use N, A-B or A-BxS separated by commas, e.g. 1001-1100x2,1200"

MAX_RATE = 1000
# 23.976, 23.98, 29.97, 59.94... are N*1000/1001 fps rounded: a rate within this relative distance of
# N*1000/1001 (whole N) is that rate. A whole rate is 0.1 % away from its 1000/1001 twin, never mapped.
_NTSC_TOLERANCE = 3e-4
_RATE_HELP = "give frames per second as a number or a fraction, e.g. 24, 25, 23.976, 29.97 or 30000/1001"


def parse_frames(expr: str) -> list[int]:
    """The frame numbers an expression names.

    Args:
        expr: e.g. ``"1001-1100"``, ``"1001-1100x2"``, ``"1001,1005,1010-1012"``, ``"1001"``.

    Returns:
        The frame numbers, sorted ascending without duplicates.

    Raises:
        ConfigError: an empty or malformed expression, a range that runs backwards, a zero step or
            more than :data:`MAX_FRAMES` frames; the one-line message names the bad token.
    """
    if not isinstance(expr, str):
        raise ConfigError(f"frame range must be a string such as 1001-1100, got {type(expr).__name__}")
    if not expr.strip():
        raise ConfigError(f"frame range is empty; {_GRAMMAR}")
    frames: set[int] = set()
    for raw in expr.split(","):
        token = raw.strip()
        match = _TOKEN_RE.fullmatch(token)
        if match is None:
            shown = token if token else "(empty)"
            raise ConfigError(f"bad frame range token {shown!r} in {expr!r}; {_GRAMMAR}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        step = int(match.group(3)) if match.group(3) is not None else 1
        if last < first:
            raise ConfigError(f"frame range token {token!r} in {expr!r} runs backwards; "
                              f"write {last}-{first}")
        if step == 0:
            raise ConfigError(f"frame range token {token!r} in {expr!r} has step 0; use a step >= 1")
        if (last - first) // step + 1 + len(frames) > MAX_FRAMES:
            raise ConfigError(f"frame range token {token!r} in {expr!r} names more than "
                              f"{MAX_FRAMES} frames; check for a typo")
        frames.update(range(first, last + 1, step))
    return sorted(frames)


def format_frames(frames: Iterable[int]) -> str:
    """A compact expression for a set of frame numbers (the inverse of :func:`parse_frames`).

    Consecutive runs become ``A-B``; runs of three or more with a constant step ``S > 1`` become
    ``A-BxS``; anything else is listed. ``parse_frames(format_frames(x)) == sorted(set(x))``.

    Args:
        frames: frame numbers (non-negative ints), in any order, duplicates allowed.

    Returns:
        e.g. ``"1001-1010,1020"``; ``""`` for no frames.

    Raises:
        ConfigError: a frame number is negative or not an int.
    """
    values = sorted(set(frames))
    for value in values:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"frame numbers must be non-negative ints, got {value!r}")
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        if i + 1 < len(values):
            step = values[i + 1] - values[i]
            while j + 1 < len(values) and values[j + 1] - values[j] == step:
                j += 1
            if step > 1 and j - i < 2:  # two frames with a gap: list the first, retry from the second
                j = i
        else:
            step = 1
        if j == i:
            parts.append(str(values[i]))
        elif step == 1:
            parts.append(f"{values[i]}-{values[j]}")
        else:
            parts.append(f"{values[i]}-{values[j]}x{step}")
        i = j + 1
    return ",".join(parts)


def parse_rate(value: str | float | Fraction) -> Fraction:
    """A frame rate as an exact fraction (what ``--rate`` takes; OTIO wants ``float()`` of it).

    Whole rates stay whole; a rate editors type rounded maps to the exact broadcast rate
    ``N*1000/1001``: ``23.976``, ``23.98``, ``2997/125`` -> 24000/1001; ``29.97`` -> 30000/1001;
    ``47.952``, ``59.94``, ``119.88`` likewise. Other rates are kept as given (``12.5`` -> 25/2).

    Args:
        value: ``"24"``, ``"23.976"`` (or ``"23,976"``), ``"24000/1001"``, or a number.

    Returns:
        The rate in frames per second, ``0 < rate <= MAX_RATE``.

    Raises:
        ConfigError: not a number or fraction, zero, negative, infinite or above :data:`MAX_RATE`;
            the one-line message shows what to type.
    """
    if isinstance(value, bool):
        raise ConfigError(f"bad frame rate {value!r}; {_RATE_HELP}")
    try:
        if isinstance(value, str):
            text = re.sub(r"\s*/\s*", "/", value.strip())
            rate = Fraction(text.replace(",", ".") if text.count(",") == 1 and "." not in text else text)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(value)
            rate = Fraction(value).limit_denominator(1001)
        else:
            rate = Fraction(value)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        raise ConfigError(f"bad frame rate {value!r}; {_RATE_HELP}") from None
    if not 0 < rate <= MAX_RATE:
        raise ConfigError(f"frame rate {value!r} must be > 0 and at most {MAX_RATE} fps, e.g. 24, 23.976 or 30000/1001")
    if rate.denominator == 1:
        return rate
    ntsc = Fraction(round(rate * Fraction(1001, 1000)) * 1000, 1001)
    return ntsc if ntsc and abs(rate - ntsc) <= rate * _NTSC_TOLERANCE else rate
