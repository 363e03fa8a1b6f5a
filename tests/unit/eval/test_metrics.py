"""vfxswap.eval.metrics on constructed cases whose right answer is known."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from vfxswap.errors import ConfigError
from vfxswap.eval import metrics


def textured(h: int = 200, w: int = 200, seed: int = 0) -> np.ndarray:
    """A smooth random texture (skin-like detail), (h, w, 3) float32 in [0.2, 0.8]."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 2.0)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return (0.2 + 0.6 * noise).astype(np.float32)


def disc(h: int = 200, w: int = 200, r: float = 60.0) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (((yy - h / 2) ** 2 + (xx - w / 2) ** 2) <= r * r).astype(np.float32)


def face_landmarks(cx: float = 100.0, cy: float = 100.0, scale: float = 1.0) -> np.ndarray:
    """68 points with eyes 40 px apart (times scale) around (cx, cy)."""
    rng = np.random.default_rng(1)
    pts = rng.uniform(-50, 50, (68, 2))
    pts[36:42] = [-20, -10] + rng.uniform(-3, 3, (6, 2))
    pts[42:48] = [20, -10] + rng.uniform(-3, 3, (6, 2))
    pts[36:42] -= pts[36:42].mean(axis=0) - [-20, -10]
    pts[42:48] -= pts[42:48].mean(axis=0) - [20, -10]
    return (pts * scale + [cx, cy]).astype(np.float32)


class TestIdentity:
    def test_similarity_of_identical_opposite_and_orthogonal_embeddings(self):
        a = np.array([0.6, 0.8, 0.0])
        assert metrics.cosine_similarity(a, a) == pytest.approx(1.0)
        assert metrics.cosine_similarity(a, -a) == pytest.approx(-1.0)
        assert metrics.cosine_similarity(a, [0.0, 0.0, 2.0]) == pytest.approx(0.0)
        assert metrics.cosine_similarity(a, 5 * a) == pytest.approx(1.0)  # norm does not matter

    def test_identity_is_the_normalised_mean_of_the_references(self):
        refs = np.array([[1.0, 0.0], [0.0, 1.0]])
        assert metrics.identity_similarity(np.array([1.0, 1.0]), refs) == pytest.approx(1.0)
        assert metrics.identity_similarity(np.array([1.0, 0.0]), refs) == pytest.approx(math.sqrt(0.5))
        assert metrics.identity_similarity(np.array([3.0, 4.0]), np.array([3.0, 4.0])) == pytest.approx(1.0)

    def test_bad_embeddings_are_config_errors(self):
        with pytest.raises(ConfigError):
            metrics.cosine_similarity(np.ones(3), np.ones(4))
        with pytest.raises(ConfigError):
            metrics.identity_centroid(np.zeros((0, 128)))

    def test_a_face_is_closer_to_itself_than_to_another_person(self, dlib_analyzer, group_photo, group_faces):
        a, b = group_faces[0], group_faces[3]
        emb_a = dlib_analyzer.embed(group_photo, a.landmarks)
        emb_b = dlib_analyzer.embed(group_photo, b.landmarks)
        shifted = np.ascontiguousarray(np.roll(group_photo, (7, 11), axis=(0, 1)))
        again = dlib_analyzer.embed(shifted, a.landmarks + np.float32([11, 7]))
        assert metrics.identity_similarity(again, emb_a) > 0.97
        assert metrics.identity_similarity(again, emb_a) > metrics.identity_similarity(again, emb_b) + 0.03


class TestLandmarkError:
    def test_identical_landmarks_have_zero_error(self):
        pts = face_landmarks()
        assert metrics.landmark_error(pts, pts) == 0.0

    def test_interocular_distance_of_constructed_eyes(self):
        assert metrics.interocular_distance(face_landmarks()) == pytest.approx(40.0, abs=1e-4)
        assert metrics.interocular_distance(face_landmarks(scale=2.5)) == pytest.approx(100.0, abs=1e-3)

    def test_a_shift_of_a_tenth_of_the_eye_distance_is_0_1(self):
        pts = face_landmarks()
        assert metrics.landmark_error(pts, pts + [3.2, 2.4]) == pytest.approx(0.1, rel=1e-5)  # |(3.2, 2.4)| = 4 px

    def test_error_does_not_depend_on_face_size(self):
        small, big = face_landmarks(scale=1.0), face_landmarks(scale=3.0)
        rng = np.random.default_rng(2)
        offset = rng.normal(0, 2, (68, 2))
        assert metrics.landmark_error(small, small + offset) == pytest.approx(
            metrics.landmark_error(big, big + 3 * offset), rel=1e-5)

    def test_coincident_eyes_and_bad_shapes_are_config_errors(self):
        pts = face_landmarks()
        flat = pts.copy()
        flat[36:48] = 0
        with pytest.raises(ConfigError, match="coincident eyes"):
            metrics.landmark_error(flat, pts)
        with pytest.raises(ConfigError, match=r"\(68, 2\)"):
            metrics.landmark_error(pts, pts[:5])



def similar(pts: np.ndarray, degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """``pts`` rotated, scaled and moved (a similarity without reflection)."""
    t = math.radians(degrees)
    rot = scale * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return np.asarray(pts, np.float64) @ rot.T + shift


class TestShapeGap:
    def test_the_same_shape_placed_anywhere_has_no_gap(self):
        ref = face_landmarks()
        assert metrics.shape_gap(ref, similar(ref, 35.0, 2.7, (400.0, -90.0))) == pytest.approx(0.0, abs=1e-9)

    def test_the_nearest_candidate_counts(self):
        ref = face_landmarks()
        rng = np.random.default_rng(3)
        other = ref + rng.normal(0, 4, (68, 2))
        far = metrics.shape_gap(ref, other)
        assert far > 0.05
        assert metrics.shape_gap(ref, np.stack([other, similar(ref, -10.0, 0.5, (3.0, 4.0))])) == pytest.approx(
            0.0, abs=1e-9)
        assert metrics.shape_gap(ref, np.stack([other, similar(other, 20.0, 1.5, (0.0, 0.0))])) == pytest.approx(
            far, rel=1e-9)

    def test_equals_the_landmark_error_after_the_umeyama_fit(self):
        from vfxswap.faces.geometry import transform_points, umeyama

        ref = face_landmarks()
        rng = np.random.default_rng(4)
        for _ in range(5):
            cand = similar(ref + rng.normal(0, 3, (68, 2)), rng.uniform(-90, 90), rng.uniform(0.3, 3), (50.0, 7.0))
            fitted = transform_points(umeyama(cand, ref), cand)
            assert metrics.shape_gap(ref, cand) == pytest.approx(metrics.landmark_error(ref, fitted), rel=1e-9)

    def test_a_mirror_image_is_not_fitted_away(self):
        ref = face_landmarks()
        mirrored = ref * [-1.0, 1.0]  # the same points reflected, labels unchanged
        assert metrics.shape_gap(ref, mirrored) > 0.5

    def test_bad_shapes_are_config_errors(self):
        ref = face_landmarks()
        with pytest.raises(ConfigError, match=r"\(K, 68, 2\)"):
            metrics.shape_gap(ref, ref[:10])
        with pytest.raises(ConfigError, match=r"\(K, 68, 2\)"):
            metrics.shape_gap(ref, np.zeros((0, 68, 2)))
        flat = ref.copy()
        flat[36:48] = 0
        with pytest.raises(ConfigError, match="coincident eyes"):
            metrics.shape_gap(flat, ref)

def placement_path(frames: int, *, noise_px: float = 0.0, seed: int = 0, size: int = 64) -> np.ndarray:
    """(T, 2, 3) frame_from_face of a face panning and zooming at constant speed, plus translation noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames, dtype=np.float64)
    scale = 3.0 + 0.002 * t  # crop side ~192 px, growing linearly
    m = np.zeros((frames, 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = scale
    m[:, 0, 2] = 400 + 1.5 * t + rng.normal(0, noise_px, frames)
    m[:, 1, 2] = 300 - 0.7 * t + rng.normal(0, noise_px, frames)
    return m


class TestJitter:
    def test_a_face_moving_at_constant_speed_has_no_jitter(self):
        assert metrics.affine_jitter(placement_path(50), 64) == pytest.approx(0.0, abs=1e-12)

    def test_known_per_frame_noise_is_measured(self):
        m = placement_path(2000, noise_px=2.0)
        side = float(metrics.face_side(m, 64).mean())
        assert side == pytest.approx(64 * (3.0 + 0.002 * 999.5), rel=1e-6)
        assert metrics.affine_jitter(m, 64) == pytest.approx(2.0 / side, rel=0.06)

    def test_twice_the_noise_measures_twice_the_jitter(self):
        a = metrics.affine_jitter(placement_path(500, noise_px=1.0, seed=3), 64)
        b = metrics.affine_jitter(placement_path(500, noise_px=2.0, seed=3), 64)
        assert b == pytest.approx(2 * a, rel=1e-6)

    def test_temporal_smoothing_more_than_halves_the_jitter(self):
        m = placement_path(300, noise_px=2.0, seed=4)
        kernel = np.ones(7) / 7  # a centred window of radius 3, like --smooth 3
        smooth = m.copy()
        for i in range(2):
            for j in range(3):
                smooth[3:-3, i, j] = np.convolve(m[:, i, j], kernel, mode="valid")
        assert metrics.affine_jitter(smooth[3:-3], 64) <= 0.5 * metrics.affine_jitter(m[3:-3], 64)

    def test_per_frame_values_are_nan_at_the_ends_and_runs_shorter_than_3_are_skipped(self):
        per = metrics.jitter_per_frame(placement_path(5, noise_px=1.0), 64)
        assert np.isnan(per[0]) and np.isnan(per[-1]) and np.isfinite(per[1:-1]).all()
        noisy = placement_path(40, noise_px=1.0)
        pooled = metrics.pooled_jitter([(noisy, 64), (placement_path(2), 64)])
        assert pooled == pytest.approx(metrics.affine_jitter(noisy, 64))
        assert math.isnan(metrics.pooled_jitter([(placement_path(2), 64)]))
        with pytest.raises(ConfigError, match="at least 3"):
            metrics.affine_jitter(placement_path(2), 64)


class TestFlicker:
    def test_identical_frames_do_not_change_and_a_brightness_step_is_measured(self):
        image = textured()
        mask = disc()
        assert metrics.temporal_change(image, image, mask) == 0.0
        brighter = np.clip(image + 0.1, 0, 1)
        assert metrics.temporal_change(image, brighter, mask) == pytest.approx(0.1, abs=1e-5)

    def test_the_change_is_taken_inside_the_mask_only(self):
        image = textured()
        changed = image.copy()
        changed[disc() == 0] = 0.0  # only outside the disc
        assert metrics.temporal_change(image, changed, disc()) == 0.0
        assert math.isnan(metrics.temporal_change(image, changed, np.zeros((200, 200), np.float32)))

    def test_ratio_of_swap_to_plate_change(self):
        plate = np.array([0.01, 0.02, 0.03])
        assert metrics.flicker_ratio(plate, plate) == pytest.approx(1.0)
        assert metrics.flicker_ratio(2 * plate, plate) == pytest.approx(2.0)
        assert metrics.flicker_ratio(np.array([0.02, np.nan, 0.06]), plate) == pytest.approx(2.0)
        assert math.isnan(metrics.flicker_ratio(plate, np.zeros(3)))


class TestSeam:
    def composite(self, offset: float, feather: float) -> tuple[np.ndarray, np.ndarray]:
        plate = textured(seed=5)
        face = np.clip(textured(seed=6) + offset, 0, 1)
        hard = disc()
        alpha = cv2.GaussianBlur(hard, (0, 0), feather) if feather else hard
        return plate * (1 - alpha[..., None]) + face * alpha[..., None], alpha

    def test_an_untouched_texture_has_a_ratio_near_1(self):
        image = textured(seed=7)
        assert metrics.seam_gradient_ratio(image, disc()) == pytest.approx(1.0, abs=0.15)

    def test_a_hard_step_seam_scores_high_and_a_feathered_one_low(self):
        hard = metrics.seam_gradient_ratio(*self.composite(0.3, 0))
        soft = metrics.seam_gradient_ratio(*self.composite(0.3, 6.0))
        assert hard > 2.5
        assert soft < 1.5
        assert hard > 2 * soft

    def test_uint8_images_and_masks_give_the_same_ratio(self):
        image, alpha = self.composite(0.3, 0)
        as8 = metrics.seam_gradient_ratio((image * 255 + 0.5).astype(np.uint8), (alpha * 255).astype(np.uint8))
        assert as8 == pytest.approx(metrics.seam_gradient_ratio(image, alpha), rel=0.05)

    def test_bands_lie_on_the_edge_and_inside(self):
        border, inner = metrics.seam_bands(disc(), band=3)
        yy, xx = np.mgrid[:200, :200]
        r = np.hypot(yy - 100, xx - 100)
        assert np.abs(r[border] - 60).max() <= 4.5
        assert r[inner].max() < 60 - 5 and r[inner].min() > 60 - 19.5

    def test_an_empty_or_tiny_mask_gives_nan(self):
        image = textured()
        assert math.isnan(metrics.seam_gradient_ratio(image, np.zeros((200, 200), np.float32)))
        assert math.isnan(metrics.seam_gradient_ratio(image, disc(r=4)))
        with pytest.raises(ConfigError):
            metrics.seam_gradient_ratio(image, disc(100, 100))


class TestBorderDeltaE:
    def test_identical_colours_inside_and_outside_have_zero_delta_e(self):
        image = np.full((200, 200, 3), 0.5, np.float32)
        assert metrics.border_delta_e(image, disc()) == pytest.approx(0.0, abs=1e-4)
        assert metrics.border_delta_e(image, disc(), sectors=8) == pytest.approx(0.0, abs=1e-4)

    def test_two_flat_colours_give_their_lab_distance(self):
        a, b = np.float32([0.6, 0.45, 0.35]), np.float32([0.66, 0.45, 0.33])
        mask = disc()
        image = np.where(mask[..., None] >= 0.5, b, a).astype(np.float32)
        lab = cv2.cvtColor(np.stack([a, b])[None], cv2.COLOR_RGB2LAB)[0]
        expected = float(np.linalg.norm(lab[0] - lab[1]))
        assert expected > 2
        assert metrics.border_delta_e(image, mask) == pytest.approx(expected, rel=1e-4)
        assert metrics.border_delta_e((image * 255 + 0.5).astype(np.uint8), mask) == pytest.approx(expected, abs=0.8)

    def test_sectors_find_a_seam_that_the_whole_ring_averages_away(self):
        mask = disc()
        grey = np.float32([0.5, 0.5, 0.5])
        image = np.full((200, 200, 3), grey, np.float32)
        inside = mask >= 0.5
        image[inside & (np.arange(200)[None, :] < 100)] = grey + 0.08  # left half of the face lighter
        image[inside & (np.arange(200)[None, :] >= 100)] = grey - 0.08  # right half darker
        whole = metrics.border_delta_e(image, mask)
        local = metrics.border_delta_e(image, mask, sectors=8)
        assert whole < 1.5 and local > 6

    def test_the_rings_are_just_inside_and_just_outside(self):
        inner, outer = metrics.ring_masks(disc(), width=4, gap=1)
        yy, xx = np.mgrid[:200, :200]
        r = np.hypot(yy - 100, xx - 100)
        assert 54 <= r[inner].min() and r[inner].max() <= 60
        assert 60 < r[outer].min() and r[outer].max() <= 66


class TestReconstruction:
    def test_identical_faces_score_ssim_1_and_infinite_psnr(self):
        faces = (np.random.default_rng(0).random((3, 32, 32, 3)) * 255).astype(np.uint8)
        scores = metrics.reconstruction_scores(faces, faces)
        assert scores["ssim"] == pytest.approx(1.0) and scores["psnr"] == math.inf and scores["faces"] == 3

    def test_psnr_of_a_known_error(self):
        faces = np.full((2, 32, 32, 3), 0.5, np.float32)
        scores = metrics.reconstruction_scores(faces, faces + 0.1)  # mse 0.01 -> 20 dB
        assert scores["psnr"] == pytest.approx(20.0, abs=1e-3)

    def test_noise_lowers_ssim(self):
        faces = np.stack([textured(64, 64, seed=s) for s in range(4)])
        rng = np.random.default_rng(1)
        def noisy(sigma: float) -> np.ndarray:
            return np.clip(faces + rng.normal(0, sigma, faces.shape), 0, 1).astype(np.float32)

        light = metrics.reconstruction_scores(faces, noisy(0.02))
        heavy = metrics.reconstruction_scores(faces, noisy(0.2))
        assert 1.0 > light["ssim"] > heavy["ssim"]
        assert light["psnr"] > heavy["psnr"] + 10

    def test_mismatched_shapes_are_config_errors(self):
        with pytest.raises(ConfigError, match="same|both"):
            metrics.reconstruction_scores(np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 9, 3)))
