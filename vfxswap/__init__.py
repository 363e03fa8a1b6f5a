"""vfxswap: face replacement for film and TV post-production."""

from .errors import VfxSwapError

__version__ = "0.1.0"
__all__ = ["VfxSwapError", "__version__"]
