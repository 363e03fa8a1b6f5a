"""swap_frames: the converter on in-memory frames (what host integrations such as ComfyUI call)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vfxswap.config import ConvertConfig
from vfxswap.convert.api import SwapModel, swap_frames
from vfxswap.io import open_source

SAMPLES = Path(__file__).resolve().parents[3] / "samples"


@pytest.fixture(scope="module")
def frames():
    with open_source(SAMPLES / "plate.mp4") as src:
        return [f for f, _ in zip(src.frames(), range(4))]


def test_swaps_a_clip_in_memory(frames, demo_model):
    config = ConvertConfig(faces="largest", backend="onnxruntime")
    with SwapModel(demo_model, config) as model:
        works = swap_frames(frames, model, config)
    assert len(works) == 4
    for frame, work in zip(frames, works):
        assert work.result.shape == frame.image.shape and work.result.dtype == np.uint8
        assert len(work.swaps) == 1 and work.matte is not None and work.matte.dtype == np.float32
        inside = work.matte > 0
        assert np.array_equal(work.result[~inside], frame.image[~inside])  # outside the mask: the plate
        assert not np.array_equal(work.result[inside], frame.image[inside])


def test_faceless_frames_pass_through(demo_model):
    from vfxswap.types import Frame

    blank = [Frame(image=np.full((120, 160, 3), 90, np.uint8), index=i) for i in range(3)]
    with SwapModel(demo_model, ConvertConfig(backend="onnxruntime")) as model:
        works = swap_frames(blank, model)
    assert all(w.matte is None and w.result is f.image for w, f in zip(works, blank))
