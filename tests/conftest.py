"""Shared fixtures: real faces that ship inside installed packages."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"


def _insightface_images() -> Path:
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("insightface is not installed (pip install -e .[dev]): its wheel ships the test photos")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "images"


@pytest.fixture(scope="session")
def group_photo() -> np.ndarray:
    """insightface's t1.jpg: six people, (886, 1280, 3) uint8 RGB."""
    return cv2.cvtColor(cv2.imread(str(_insightface_images() / "t1.jpg")), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut portrait, (512, 512, 3) uint8 RGB."""
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.astronaut())


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory) -> Path:
    """A private copy of samples/demo_model per test module (the onnxruntime runner caches its
    export inside the model folder)."""
    import shutil

    out = tmp_path_factory.mktemp("model") / "demo"
    shutil.copytree(SAMPLES / "demo_model", out)
    return out


@pytest.fixture(scope="session")
def dlib_analyzer():
    from vfxswap.faces.analysis import open_analyzer

    return open_analyzer("dlib")


@pytest.fixture(scope="session")
def group_faces(dlib_analyzer, group_photo):
    """The six faces dlib finds in the group photo, left to right."""
    return sorted(dlib_analyzer.detect(group_photo), key=lambda f: f.box[0])


def pytest_collection_modifyitems(config, items):
    """GPU tests skip without CUDA, and fail instead when VFXSWAP_REQUIRE_GPU=1."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda or os.environ.get("VFXSWAP_REQUIRE_GPU") == "1":
        return
    skip = pytest.mark.skip(reason="needs CUDA (set VFXSWAP_REQUIRE_GPU=1 to fail instead)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a fresh 64 MiB tmpfs (disk-full tests); skips unless root can mount one here.

    Yields ``(folder, fill)``: ``fill(leave_bytes)`` writes a ballast file so that about
    ``leave_bytes`` stay free, so the next writes run out of space.
    """
    import subprocess

    folder = tmp_path / "small_disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("disk-full tests mount a tmpfs: run as root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def fill(leave_bytes: int) -> None:
        stat = os.statvfs(folder)
        free = stat.f_bavail * stat.f_frsize
        with open(folder / "ballast", "wb") as f:
            f.write(b"\0" * max(0, free - leave_bytes))

    try:
        yield folder, fill
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
