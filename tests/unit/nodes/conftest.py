"""Host integrations live in nodes/, outside the installed packages: tests load them by path."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
NODES = ROOT / "nodes"
SAMPLES = ROOT / "samples"
VFXSWAP = [sys.executable, "-m", "vfxswap.cli"]  # the vfxswap command of this environment


def load_by_path(name: str, path: Path) -> ModuleType:
    """Import ``path`` (a module file, or a package's ``__init__.py``) under ``name``."""
    package = path.name == "__init__.py"
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(path.parent)] if package else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory) -> Path:
    """A private copy of the demo model (the onnxruntime runner caches its export inside)."""
    out = tmp_path_factory.mktemp("model") / "demo_model"
    shutil.copytree(SAMPLES / "demo_model", out)
    return out


@pytest.fixture(scope="session")
def comfy() -> ModuleType:
    """The ComfyUI node package (nodes/comfyui), as ComfyUI loads a custom-node folder."""
    return load_by_path("vfxswap_comfyui_nodes", NODES / "comfyui" / "__init__.py")


@pytest.fixture(scope="session")
def nuke_script() -> ModuleType:
    """nodes/nuke/vfxswap_nuke.py (it imports ``nuke`` only inside its host functions)."""
    return load_by_path("vfxswap_nuke", NODES / "nuke" / "vfxswap_nuke.py")


@pytest.fixture(scope="session")
def resolve_script() -> ModuleType:
    """nodes/resolve/vfxswap_resolve.py."""
    return load_by_path("vfxswap_resolve", NODES / "resolve" / "vfxswap_resolve.py")
