"""``python -m vfxswap ...``: the ``vfxswap`` command (what farm executors run on each node)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
