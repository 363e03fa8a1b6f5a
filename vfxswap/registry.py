"""Named registries (face analyzers now; colour, blend and runners later).

A registry maps a name to a factory. Registration is an explicit decorator that refuses duplicate
names. Other packages plug in through the ``vfxswap.plugins`` entry-point group: each entry point is
a module (or callable) that registers its factories when loaded.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

ENTRY_POINT_GROUP = "vfxswap.plugins"
_plugins_loaded = False
_plugins_lock = threading.Lock()


def load_plugins() -> None:
    """Import every ``vfxswap.plugins`` entry point once; a broken plugin is logged, not fatal."""
    global _plugins_loaded
    with _plugins_lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = ep.load()
                if callable(loaded):
                    loaded()
            except Exception as exc:  # a third-party plugin must not break the tool
                log.warning("vfxswap plugin %s failed to load: %s", ep.name, exc)


class Registry(Generic[T]):
    """A name -> factory table for one kind of component."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a second registration of a name is an error."""

        def decorate(obj: T) -> T:
            if name in self._items:
                raise ConfigError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        """The factory registered as ``name``; unknown names raise ConfigError listing valid ones."""
        if name not in self._items:
            load_plugins()
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
