import cv2
import numpy as np
import pytest

from vfxswap.errors import ConfigError
from vfxswap.faces.geometry import affine_scale, transform_points
from vfxswap.train.augment import (
    color_jitter_lab,
    color_transfer_rct,
    lab_stats,
    random_affine,
    random_warp_grid,
    transfer_lab_stats,
)


class TestRandomAffine:
    def test_within_bounds(self):
        rng = np.random.default_rng(0)
        size, c = 64, 31.5
        dets = []
        for _ in range(300):
            m = random_affine(rng, size, rotation=10.0, scale=0.05, shift=0.05)
            assert m.shape == (2, 3) and m.dtype == np.float64
            moved = transform_points(m, [[c, c]])[0] - c
            assert np.all(np.abs(moved) <= 0.05 * size + 1e-9)
            assert 0.95 - 1e-9 <= affine_scale(m) <= 1.05 + 1e-9
            det = np.linalg.det(m[:, :2])
            dets.append(det)
            angle = np.degrees(np.arctan2(m[1, 0], m[1, 1]))  # the column not touched by the flip
            assert abs(angle) <= 10.0 + 1e-6
        mirrored = np.mean(np.array(dets) < 0)
        assert 0.35 < mirrored < 0.65

    def test_no_flip_never_mirrors(self):
        rng = np.random.default_rng(1)
        assert all(np.linalg.det(random_affine(rng, 64, flip=False)[:, :2]) > 0 for _ in range(100))

    def test_flip_mirrors_the_image(self):
        image = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        rng = np.random.default_rng(3)
        seen = set()
        for _ in range(20):
            m = random_affine(rng, 32, rotation=0.0, scale=0.0, shift=0.0)
            out = cv2.warpAffine(image, m, (32, 32), flags=cv2.INTER_LINEAR)
            mirrored = np.linalg.det(m[:, :2]) < 0
            np.testing.assert_array_equal(out, image[:, ::-1] if mirrored else image)
            seen.add(mirrored)
        assert seen == {True, False}

    def test_flip_flag_does_not_change_the_other_draws(self):
        a = random_affine(np.random.default_rng(4), 64, flip=True)
        b = random_affine(np.random.default_rng(4), 64, flip=False)
        np.testing.assert_allclose(np.abs(a[:, 0]), np.abs(b[:, 0]))
        np.testing.assert_allclose(a[:, 1], b[:, 1])
        np.testing.assert_allclose(transform_points(a, [[31.5, 31.5]]), transform_points(b, [[31.5, 31.5]]))

    def test_deterministic(self):
        a, b = (random_affine(np.random.default_rng(5), 64) for _ in range(2))
        np.testing.assert_array_equal(a, b)

    def test_bad_ranges_are_refused(self):
        with pytest.raises(ConfigError):
            random_affine(np.random.default_rng(0), 64, scale=1.5)


class TestRandomWarpGrid:
    def test_maps_are_a_moderate_displacement_of_the_identity(self):
        size = 64
        map_x, map_y = random_warp_grid(np.random.default_rng(0), size)
        assert map_x.shape == map_y.shape == (size, size) and map_x.dtype == map_y.dtype == np.float32
        grid = np.arange(size, dtype=np.float32)
        dx, dy = map_x - grid[None, :], map_y - grid[:, None]
        magnitude = np.hypot(dx, dy)
        assert 0.3 < magnitude.mean() < 0.1 * size  # visible but moderate
        # Smooth: neighbouring pixels move almost alike.
        assert np.abs(np.diff(dx, axis=1)).max() < 0.5

    def test_zero_strength_is_the_identity(self):
        map_x, map_y = random_warp_grid(np.random.default_rng(0), 32, strength=0.0)
        image = np.random.default_rng(1).random((32, 32, 3), dtype=np.float32)
        np.testing.assert_allclose(cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR), image, atol=1e-6)

    def test_deterministic_and_seed_dependent(self):
        a = random_warp_grid(np.random.default_rng(7), 48)
        b = random_warp_grid(np.random.default_rng(7), 48)
        c = random_warp_grid(np.random.default_rng(8), 48)
        np.testing.assert_array_equal(a[0], b[0])
        assert not np.array_equal(a[0], c[0])


class TestColorJitterLab:
    def test_dtype_and_range_kept(self, src_bank):
        image = src_bank.images[0]
        rng = np.random.default_rng(0)
        out8 = color_jitter_lab(rng, image)
        assert out8.dtype == np.uint8 and out8.shape == image.shape
        outf = color_jitter_lab(rng, image.astype(np.float32) / 255)
        assert outf.dtype == np.float32 and outf.min() >= 0.0 and outf.max() <= 1.0

    def test_small_but_real_change(self, src_bank):
        image = src_bank.images[3].astype(np.float32) / 255
        diffs = [np.abs(color_jitter_lab(np.random.default_rng(s), image) - image).mean() for s in range(10)]
        assert 0.002 < np.mean(diffs) and max(diffs) < 0.12

    def test_zero_jitter_is_identity(self, src_bank):
        image = src_bank.images[0].astype(np.float32) / 255
        out = color_jitter_lab(np.random.default_rng(0), image, l=0.0, ab=0.0)
        np.testing.assert_allclose(out, image, atol=2e-3)

    def test_refuses_other_dtypes(self):
        with pytest.raises(ConfigError):
            color_jitter_lab(np.random.default_rng(0), np.zeros((8, 8, 3), np.float64))


class TestColorTransferRct:
    def test_matches_the_target_statistics_in_the_masks(self, src_bank, dst_bank):
        source, target = src_bank.images[0], dst_bank.images[5]
        out = color_transfer_rct(source, target, src_bank.masks[0], dst_bank.masks[5])
        assert out.dtype == np.uint8 and out.shape == source.shape
        mean, std = lab_stats(out, src_bank.masks[0])
        want_mean, want_std = lab_stats(target, dst_bank.masks[5])
        before, _ = lab_stats(source, src_bank.masks[0])
        assert np.abs(before - want_mean).max() > 3.0  # the test would be vacuous otherwise
        np.testing.assert_allclose(mean, want_mean, atol=1.5)
        np.testing.assert_allclose(std, want_std, rtol=0.15, atol=0.5)

    def test_float_images_and_whole_image_stats(self, src_bank, dst_bank):
        source = src_bank.images[1].astype(np.float32) / 255
        target = dst_bank.images[2].astype(np.float32) / 255
        out = color_transfer_rct(source, target)
        assert out.dtype == np.float32
        np.testing.assert_allclose(lab_stats(out)[0], lab_stats(target)[0], atol=2.0)

    def test_transfer_to_own_stats_is_identity(self, src_bank):
        image = src_bank.images[4]
        out = transfer_lab_stats(image, *lab_stats(image))
        assert np.abs(out.astype(int) - image).max() <= 2
