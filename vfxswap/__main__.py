"""``python -m vfxswap ...``: the ``vfxswap`` command (what farm executors run on each node)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
