"""One error hierarchy for the whole library.

Every error carries the process exit code that ``cli.py`` maps it to, so callers in other hosts
(ComfyUI, Nuke, a farm wrapper) can catch :class:`VfxSwapError` and still report the right code.

Exit codes (documented in the README):
    0 ok, 1 failure, 2 usage/configuration, 3 unreadable input, 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_INTERRUPTED = 130


class VfxSwapError(Exception):
    """Base of every error vfxswap raises on purpose; its message is one line that says what to do."""

    exit_code: int = EXIT_FAILURE


class ConfigError(VfxSwapError, ValueError):
    """A bad option or combination of options."""

    exit_code = EXIT_USAGE


class MediaError(VfxSwapError):
    """An input that is missing, unreadable, truncated or of a format we do not read."""

    exit_code = EXIT_BAD_INPUT


class ShortMediaError(MediaError):
    """A movie that decodes fewer frames than its container says (cut off or a corrupt sample table);
    raised after its last decodable frame. ``decoded``, ``expected``: the two counts."""

    def __init__(self, message: str, *, decoded: int, expected: int) -> None:
        super().__init__(message)
        self.decoded = decoded
        self.expected = expected


class FacesetError(MediaError):
    """A faceset folder that is missing, corrupt or of another layout."""


class OutputError(VfxSwapError):
    """An output that cannot be written (permissions, disk full, an existing result we refuse to clobber)."""

    exit_code = EXIT_FAILURE


class ModelError(VfxSwapError):
    """A model (or model pack) that is missing, corrupt, untrusted or from a newer format version."""

    exit_code = EXIT_BAD_INPUT


class TimelineError(VfxSwapError):
    """A malformed or unsupported editorial timeline."""

    exit_code = EXIT_BAD_INPUT


class EngineError(VfxSwapError):
    """An inference backend that is unavailable or failed (ONNX Runtime, TensorRT, CUDA)."""

    exit_code = EXIT_FAILURE


def one_line(reason: object, limit: int = 300) -> str:
    """``reason`` (an exception or a message) as text on one line for an error message: an OS or
    FFmpeg error's own words (``strerror``, without errno), whitespace and newlines collapsed, cut at
    ``limit`` characters; an exception without text gives its type name."""
    text = getattr(reason, "strerror", None) if isinstance(reason, BaseException) else None
    text = " ".join(str(text or reason).split())
    if not text and isinstance(reason, BaseException):
        return type(reason).__name__
    return text[:limit] + "..." if len(text) > limit else text
