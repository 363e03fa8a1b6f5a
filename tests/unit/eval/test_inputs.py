"""vfxswap.eval.inputs: numbering, masks and settings of a shot, on small image sequences written here."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vfxswap.errors import MediaError
from vfxswap.eval.inputs import difference_mask, iter_shot, patch_tracks, read_patches, resolve_spec


def textured(seed: int = 0, h: int = 120, w: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (0, 0), 1.5)


def disc(h: int = 120, w: int = 160, r: int = 30) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (((yy - 60) ** 2 + (xx - 80) ** 2) <= r * r).astype(np.float32)


def write_seq(folder: Path, name: str, images: dict[int, np.ndarray]) -> str:
    folder.mkdir(exist_ok=True)
    for n, image in images.items():
        cv2.imwrite(str(folder / f"{name}.{n}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3
                    else image)
    return str(folder / f"{name}.####.png")


@pytest.fixture
def shot(tmp_path) -> tuple[str, str, str]:
    """Plate, swap (a brighter disc) and matte sequences, frames 1001-1004."""
    plates = {n: textured(n) for n in range(1001, 1005)}
    inside = disc()[..., None] > 0
    swaps = {n: np.where(inside, np.clip(p.astype(np.int16) + 40, 0, 255), p).astype(np.uint8)
             for n, p in plates.items()}
    mattes = {n: (disc() * 255).astype(np.uint8) for n in plates}
    return (write_seq(tmp_path / "plate", "plate", plates), write_seq(tmp_path / "swap", "swap", swaps),
            write_seq(tmp_path / "matte", "matte", mattes))


class TestDifferenceMask:
    def test_the_changed_region_is_found_despite_noise(self):
        plate = textured()
        rng = np.random.default_rng(1)
        noisy = np.clip(plate.astype(np.int16) + rng.integers(-3, 4, plate.shape), 0, 255)
        swapped = np.where(disc()[..., None] > 0, np.clip(noisy + 40, 0, 255), noisy).astype(np.uint8)
        mask = difference_mask(plate, swapped)
        truth = disc() > 0
        iou = (truth & (mask > 0.5)).sum() / (truth | (mask > 0.5)).sum()
        assert iou > 0.9

    def test_identical_frames_have_an_empty_mask(self):
        assert not difference_mask(textured(), textured()).any()


class TestPatches:
    def test_runs_split_at_gaps_and_per_track(self, tmp_path):
        m = [[2.0, 0, 10], [0, 2.0, 20]]
        lines = [{"frame": n, "track": t, "patch": f"{n}_{t}.png", "size": 64, "frame_from_face": m}
                 for n in (1001, 1002, 1003, 1005, 1006) for t in (0, 1) if not (t == 1 and n > 1002)]
        (tmp_path / "patches.jsonl").write_text("\n".join(json.dumps(d) for d in lines) + "\n")
        runs = patch_tracks(read_patches(tmp_path))
        assert [[p.frame for p in run] for run in runs[0]] == [[1001, 1002, 1003], [1005, 1006]]
        assert [[p.frame for p in run] for run in runs[1]] == [[1001, 1002]]
        assert [[p.frame for p in r] for r in patch_tracks(read_patches(tmp_path), {1002, 1003})[0]] == [[1002, 1003]]

    def test_missing_and_malformed_patch_files(self, tmp_path):
        with pytest.raises(MediaError, match="no patches.jsonl"):
            read_patches(tmp_path)
        (tmp_path / "patches.jsonl").write_text('{"frame": 1001, "track": 0, "patch": "a.png", "size": 64, '
                                                '"frame_from_face": [[1, 0, 0], [0, 1, 0]]}\n{"frame": 1002}\n')
        with pytest.raises(MediaError, match="line 2 is malformed"):
            read_patches(tmp_path)


class TestIterShot:
    def test_frames_pair_by_number_with_their_matte(self, shot):
        plate, swap, matte = shot
        frames = list(iter_shot(resolve_spec(plate, swap, matte=matte)))
        assert [f.number for f in frames] == [1001, 1002, 1003, 1004]
        assert all(f.mask_source == "matte" for f in frames)
        assert np.array_equal(frames[2].plate, textured(1003))
        assert np.array_equal(frames[2].mask > 0.5, disc() > 0)

    def test_frames_select_and_without_a_matte_the_difference_masks(self, shot):
        plate, swap, _ = shot
        frames = list(iter_shot(resolve_spec(plate, swap, frames="1002-1003")))
        assert [f.number for f in frames] == [1002, 1003]
        assert {f.mask_source for f in frames} == {"difference"}
        assert ((frames[0].mask > 0.5) == (disc() > 0)).mean() > 0.97

    def test_a_swapped_frame_without_matte_or_plate_is_an_error(self, shot, tmp_path):
        plate, swap, matte = shot
        Path(matte.replace("####", "1003")).unlink()
        with pytest.raises(MediaError, match="frame 1003 has no frame in the matte"):
            list(iter_shot(resolve_spec(plate, swap, matte=matte)))
        short_plate = write_seq(tmp_path / "p2", "p", {1001: textured(1001), 1002: textured(1002)})
        with pytest.raises(MediaError, match="frame 1003 of .* has no plate frame"):
            list(iter_shot(resolve_spec(short_plate, swap)))

    def test_the_settings_file_beside_the_swap_fills_in_the_rest(self, shot, tmp_path, monkeypatch):
        plate, swap, matte = shot
        settings = {"model": "model_dir", "settings": {"matte": "../matte/matte.####.png", "patches": None,
                                                       "frames": "1001-1004", "start_frame": 1001}}
        (Path(swap).parent / "swap.vfxswap.json").write_text(json.dumps(settings))
        (tmp_path / "a" / "b").mkdir(parents=True)
        monkeypatch.chdir(tmp_path / "a" / "b")  # the settings' relative paths are not valid from here
        spec = resolve_spec(plate, swap)
        assert Path(spec.matte).resolve() == Path(matte).resolve()
        assert spec.model == str(Path(swap).parent / "model_dir")
        assert spec.swapped_numbers == (1001, 1002, 1003, 1004)
        assert [f.mask_source for f in iter_shot(spec)] == ["matte"] * 4
        assert resolve_spec(plate, swap, matte="explicit.####.png").matte == "explicit.####.png"

    def test_a_corrupt_settings_file_is_a_media_error(self, shot):
        plate, swap, _ = shot
        (Path(swap).parent / "swap.vfxswap.json").write_text("{not json")
        with pytest.raises(MediaError, match="swap.vfxswap.json"):
            resolve_spec(plate, swap)
