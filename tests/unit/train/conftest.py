"""Real facesets for the training tests, extracted once per session from the sample media."""

from __future__ import annotations

from pathlib import Path

import pytest

from vfxswap.config import ExtractConfig

SAMPLES = Path(__file__).resolve().parents[3] / "samples"


@pytest.fixture(scope="session")
def dst_faceset(tmp_path_factory) -> Path:
    """48 whole-face 128 px crops: the six people of the 8-frame PNG plate."""
    from vfxswap.extract import extract

    folder = tmp_path_factory.mktemp("facesets") / "dst"
    report = extract(str(SAMPLES / "plate_seq" / "plate.####.png"), folder, ExtractConfig(every=4, size=128))
    assert report.faces_written == 48
    return folder


@pytest.fixture(scope="session")
def src_faceset(tmp_path_factory) -> Path:
    """72 whole-face 128 px crops of the astronaut clip (one face per frame)."""
    from vfxswap.extract import extract

    folder = tmp_path_factory.mktemp("facesets") / "src"
    report = extract(str(SAMPLES / "src.mp4"), folder, ExtractConfig(every=4, size=128))
    assert report.faces_written == 72
    return folder


@pytest.fixture(scope="session")
def src_bank(src_faceset):
    """The src faceset as a 64 px whole-face bank (shared: do not modify)."""
    from vfxswap.train.data import FaceBank

    return FaceBank(src_faceset, resolution=64, face_type="whole_face")


@pytest.fixture(scope="session")
def dst_bank(dst_faceset):
    """The dst faceset as a 64 px whole-face bank (shared: do not modify)."""
    from vfxswap.train.data import FaceBank

    return FaceBank(dst_faceset, resolution=64, face_type="whole_face")
