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


def hull_mask(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """``(H, W)`` float32 mask of the convex hull of a face's landmarks."""
    mask = np.zeros(image.shape[:2], np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(landmarks.astype(np.int32)), 1.0)
    return mask


class TestDetail:
    """Constructed on the real faces of the group photo: a blur must fail the 0.6 target, sharp faces pass."""

    def test_the_plate_itself_scores_1_and_a_blurred_copy_fails_0_6(self, group_photo, group_faces):
        for face in group_faces:
            mask = hull_mask(group_photo, face.landmarks)
            assert metrics.detail_ratio(group_photo, group_photo, mask) == pytest.approx(1.0)
            for sigma in (0.02, 0.03):  # 2-3% of the face: about a 64 px face blown up 4x
                blurred = cv2.GaussianBlur(group_photo, (0, 0), sigma * face.size)
                assert metrics.detail_ratio(blurred, group_photo, mask) < 0.3

    def test_another_sharp_face_passes_0_6(self, group_photo, group_faces):
        energies = [metrics.detail_energy(group_photo, hull_mask(group_photo, f.landmarks)) for f in group_faces]
        assert all(e > 0 for e in energies)
        ratios = [a / b for a in energies for b in energies]
        assert 0.6 < min(ratios) and max(ratios) < 1 / 0.6

    def test_a_64_px_face_blown_up_loses_detail_but_a_128_px_one_keeps_most(self, astronaut):
        face = astronaut[40:230, 150:340]  # the astronaut's face and a margin, 190 px
        big = cv2.resize(face, (570, 570), interpolation=cv2.INTER_CUBIC)  # as a 570 px plate
        mask = np.zeros(big.shape[:2], np.float32)
        cv2.ellipse(mask, (285, 300), (150, 200), 0, 0, 360, 1.0, -1)
        ratio = {}
        for res in (64, 128):
            small = cv2.resize(big, (res, res), interpolation=cv2.INTER_AREA)
            ratio[res] = metrics.detail_ratio(cv2.resize(small, (570, 570), interpolation=cv2.INTER_CUBIC), big, mask)
        assert ratio[64] < 0.6 < ratio[128] < 1.05

    def test_the_measure_does_not_depend_on_the_plate_resolution(self, group_photo, group_faces):
        face = group_faces[2]
        mask = hull_mask(group_photo, face.landmarks)
        twice = cv2.resize(group_photo, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        mask2 = cv2.resize(mask, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
        assert metrics.detail_energy(twice, mask2) == pytest.approx(metrics.detail_energy(group_photo, mask), rel=0.15)

    def test_the_mask_edge_does_not_count(self):
        flat = np.full((200, 200, 3), 0.5, np.float32)
        swap = flat.copy()
        swap[disc() >= 0.5] = 0.7  # a flat face with a hard edge: no detail inside
        assert metrics.detail_energy(swap, disc()) == pytest.approx(0.0, abs=1e-9)

    def test_empty_masks_flat_plates_and_bad_shapes(self):
        img = textured()
        assert math.isnan(metrics.detail_energy(img, np.zeros((200, 200), np.float32)))
        assert math.isnan(metrics.detail_ratio(img, np.full_like(img, 0.5), disc()))
        with pytest.raises(ConfigError):
            metrics.detail_ratio(img, img[:100], disc())


class TestFaceInMask:
    def test_the_face_whose_centre_lies_in_the_region_is_chosen(self, group_photo, group_faces):
        landmarks = [f.landmarks for f in group_faces]
        for k, face in enumerate(group_faces):
            assert metrics.face_in_mask(landmarks, hull_mask(group_photo, face.landmarks)) == k
        assert metrics.face_in_mask(landmarks, np.zeros(group_photo.shape[:2], np.float32)) is None
        assert metrics.face_in_mask([], hull_mask(group_photo, group_faces[0].landmarks)) is None

    def test_a_face_blurred_to_mush_is_not_found_and_the_real_one_is(self, dlib_analyzer, group_photo, group_faces):
        face = group_faces[0]
        mask = hull_mask(group_photo, face.landmarks)
        found = metrics.face_in_mask([f.landmarks for f in dlib_analyzer.detect(group_photo)], mask)
        assert found is not None
        soft = cv2.GaussianBlur(mask, (0, 0), 4)[..., None]
        mush = (group_photo * (1 - soft) + cv2.GaussianBlur(group_photo, (0, 0), 0.12 * face.size) * soft)
        mush = np.ascontiguousarray(mush.astype(np.uint8))
        assert metrics.face_in_mask([f.landmarks for f in dlib_analyzer.detect(mush)], mask) is None


def expression_landmarks(mouth: float = 0.0, eye: float = 0.3) -> np.ndarray:
    """:func:`face_landmarks` (eyes 40 px apart) with the inner lips ``mouth`` IOD apart and eyes of aspect ``eye``."""
    pts = face_landmarks().astype(np.float64)
    for upper, lower, x in ((61, 67, 90.0), (62, 66, 100.0), (63, 65, 110.0)):
        pts[upper] = [x, 130.0]
        pts[lower] = [x, 130.0 + 40.0 * mouth]
    for p1, p2, p3, p4, p5, p6 in metrics.EYES:
        cx, cy = pts[[p1, p2, p3, p4, p5, p6]].mean(axis=0)
        w = 12.0
        pts[[p1, p4]] = [[cx - w / 2, cy], [cx + w / 2, cy]]
        pts[[p2, p3]] = [[cx - 2, cy - eye * w / 2], [cx + 2, cy - eye * w / 2]]
        pts[[p6, p5]] = [[cx - 2, cy + eye * w / 2], [cx + 2, cy + eye * w / 2]]
    return pts


class TestExpression:
    def test_mouth_and_eye_opening_of_constructed_landmarks(self):
        assert metrics.mouth_opening(expression_landmarks(mouth=0.0)) == pytest.approx(0.0, abs=1e-9)
        assert metrics.mouth_opening(expression_landmarks(mouth=0.35)) == pytest.approx(0.35, rel=1e-3)
        assert metrics.eye_opening(expression_landmarks(eye=0.3)) == pytest.approx(0.3, rel=1e-6)
        assert metrics.eye_opening(expression_landmarks(eye=0.1)) == pytest.approx(0.1, rel=1e-6)

    def test_real_faces_have_plausible_openings(self, group_faces):
        for face in group_faces:
            assert 0 <= metrics.mouth_opening(face.landmarks) < 0.6
            assert 0.1 < metrics.eye_opening(face.landmarks) < 0.5

    def test_correlation_of_identical_unrelated_and_constant_series(self):
        rng = np.random.default_rng(3)
        mouth = 0.2 + 0.1 * np.sin(np.linspace(0, 12, 120)) + 0.02 * rng.standard_normal(120)
        assert metrics.expression_correlation(mouth, mouth) == pytest.approx(1.0)
        assert metrics.expression_correlation(0.5 * mouth + 0.1, mouth) == pytest.approx(1.0)  # scale, offset
        unrelated = 0.2 + 0.1 * rng.standard_normal(120)
        assert abs(metrics.expression_correlation(unrelated, mouth)) < 0.25
        assert metrics.expression_correlation(mouth, np.full(120, 0.2)) is None  # a still plate: nothing to follow
        assert metrics.expression_correlation(np.full(120, 0.2), mouth) == 0.0  # a frozen swap follows nothing
        assert metrics.expression_correlation(mouth[:4], mouth[:4]) is None  # too few frames

    def test_missing_frames_are_left_out(self):
        mouth = np.sin(np.linspace(0, 6, 40))
        swap = mouth.copy()
        swap[::3] = np.nan
        assert metrics.expression_correlation(swap, mouth) == pytest.approx(1.0)
        with pytest.raises(ConfigError):
            metrics.expression_correlation(mouth, mouth[:-1])


class TestLandmarkJitter:
    @staticmethod
    def track(frames: int = 200, noise: float = 0.0, seed: int = 0) -> np.ndarray:
        """A face moving and growing smoothly, ``(T, 68, 2)``, with per-point noise of ``noise`` px."""
        rng = np.random.default_rng(seed)
        t = np.arange(frames)[:, None, None]
        pts = face_landmarks()[None].astype(np.float64) * (1 + 0.001 * t) + np.array([0.8, 0.3]) * t
        return pts + noise * rng.standard_normal(pts.shape)

    def test_smooth_motion_has_no_jitter_and_known_noise_is_measured(self):
        assert metrics.landmark_jitter([self.track()]) == pytest.approx(0.0, abs=1e-9)
        iod = np.mean([metrics.interocular_distance(p) for p in self.track()])
        assert metrics.landmark_jitter([self.track(noise=2.0)]) == pytest.approx(2.0 / iod, rel=0.05)

    def test_ratio_to_the_plate_is_1_for_the_plate_itself_and_above_1_with_added_noise(self):
        plate = self.track(noise=1.0, seed=1)
        assert metrics.jitter_ratio([plate], [plate]) == pytest.approx(1.0)
        rng = np.random.default_rng(2)
        noisy = plate + 1.0 * rng.standard_normal(plate.shape)
        assert metrics.jitter_ratio([noisy], [plate]) == pytest.approx(math.sqrt(2), rel=0.05)

    def test_short_runs_are_skipped_and_a_still_plate_gives_nan(self):
        assert math.isnan(metrics.landmark_jitter([self.track(2)]))
        assert np.isnan(metrics.landmark_jitter_per_frame(self.track(5))[[0, -1]]).all()
        still = np.repeat(face_landmarks()[None].astype(np.float64), 10, axis=0)
        assert math.isnan(metrics.jitter_ratio([self.track(10, noise=1.0)], [still]))
        with pytest.raises(ConfigError):
            metrics.landmark_jitter_per_frame(np.zeros((5, 5, 2)))


def test_unit_distance_of_similarities():
    assert metrics.unit_distance(1.0) == 0.0
    assert metrics.unit_distance(0.0) == pytest.approx(math.sqrt(2))
    assert metrics.unit_distance(-1.0) == pytest.approx(2.0)
    a, b = np.array([0.6, 0.8]), np.array([1.0, 0.0])
    assert metrics.unit_distance(metrics.cosine_similarity(a, b)) == pytest.approx(np.linalg.norm(a - b))
