import math

import numpy as np
import pytest

from vfxswap.errors import ConfigError
from vfxswap.faces.align import (FACE_TYPE_PADDING, MEAN_FACE, STABLE_POINTS, align_face, crop_from_unit,
                                 face_from_frame, frame_from_face, landmarks_in_face)
from vfxswap.faces.geometry import affine_scale, compose, invert, scale_matrix, transform_points, umeyama


def _rotation(deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)) * scale, math.sin(math.radians(deg)) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


class TestUmeyama:
    def test_recovers_a_known_similarity(self):
        rng = np.random.default_rng(0)
        pts = rng.uniform(0, 100, (33, 2))
        m = _rotation(23.0, 1.7, 12.0, -40.0)
        est = umeyama(pts, transform_points(m, pts))
        np.testing.assert_allclose(est, m, atol=1e-9)

    def test_rejects_mismatched_points(self):
        with pytest.raises(ConfigError):
            umeyama(np.zeros((5, 2)), np.zeros((4, 2)))


class TestAlignment:
    @pytest.mark.parametrize("face_type", list(FACE_TYPE_PADDING))
    def test_crop_side_follows_deepfacelab_padding(self, face_type):
        # The unit square maps to a square of side S / (1 + 2*sqrt(2)*pad) pixels.
        m = crop_from_unit(256, face_type)
        side = 1 + 2 * math.sqrt(2) * FACE_TYPE_PADDING[face_type]
        assert affine_scale(m) == pytest.approx(256 / side)

    def test_whole_face_is_moved_up_seven_percent(self):
        centre_full = transform_points(crop_from_unit(256, "full"), [[0.5, 0.5]])[0]
        centre_whole = transform_points(crop_from_unit(256, "whole_face"), [[0.5, 0.5]])[0]
        assert centre_full[1] == pytest.approx(127.5)
        unit_px = affine_scale(crop_from_unit(256, "whole_face"))
        assert centre_whole[1] - 127.5 == pytest.approx(0.07 * unit_px)

    def test_mean_face_lands_on_the_template(self):
        lm = np.zeros((68, 2))
        frame_from_unit = _rotation(-12.0, 180.0, 300.0, 120.0)
        lm[STABLE_POINTS] = transform_points(frame_from_unit, MEAN_FACE)
        m = face_from_frame(lm, 256, "half")
        # half face: the unit square is the whole crop, edges at -0.5 and 255.5
        np.testing.assert_allclose(transform_points(m, lm[STABLE_POINTS]), MEAN_FACE * 256 - 0.5, atol=1e-6)

    def test_round_trip_within_half_a_pixel(self, group_photo, group_faces):
        for face in group_faces:
            aligned = align_face(group_photo, face, 256, "whole_face")
            back = transform_points(frame_from_face(aligned.face_from_frame), landmarks_in_face(aligned))
            assert np.abs(back - face.landmarks).max() < 0.5

    def test_image_round_trip(self, group_photo, group_faces):
        import cv2

        face = group_faces[0]
        aligned = align_face(group_photo, face, 256, "full")
        h, w = group_photo.shape[:2]
        back = cv2.warpAffine(aligned.image, frame_from_face(aligned.face_from_frame), (w, h), flags=cv2.INTER_CUBIC)
        cx, cy = face.landmarks[30].astype(int)  # nose tip, well inside the crop
        patch = (slice(cy - 15, cy + 15), slice(cx - 15, cx + 15))
        err = np.abs(back[patch].astype(float) - group_photo[patch].astype(float)).mean()
        assert err < 6.0

    def test_aligned_faces_are_upright_and_scaled(self, group_photo, group_faces):
        eye_distances = []
        for face in group_faces:
            lm = landmarks_in_face(align_face(group_photo, face, 256))
            left_eye, right_eye = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
            assert abs(left_eye[1] - right_eye[1]) < 6  # eyes level
            eye_distances.append(right_eye[0] - left_eye[0])
        # the template's eye centres are 0.54 unit-square sides apart (turned heads show less)
        expected = 0.54 * affine_scale(crop_from_unit(256, "whole_face"))
        assert np.median(eye_distances) == pytest.approx(expected, rel=0.15)


class TestProxyRescale:
    def test_scale_matrix_preserves_pixel_centres(self):
        import cv2

        img = np.zeros((400, 600), np.float32)
        img[200, 300] = 1.0
        img = cv2.GaussianBlur(img, (0, 0), 8)
        proxy = cv2.resize(img, (150, 100), interpolation=cv2.INTER_AREA)
        y, x = np.unravel_index(np.argmax(proxy), proxy.shape)
        expected = transform_points(scale_matrix(0.25), [[300, 200]])[0]
        assert abs(x - expected[0]) <= 0.5 and abs(y - expected[1]) <= 0.5

    def test_matrices_compose_to_full_resolution(self):
        proxy_from_full = scale_matrix(0.25)
        face_from_full = _rotation(10, 0.9, 5, 7)
        face_from_proxy = compose(face_from_full, invert(proxy_from_full))
        pts = np.array([[100.0, 50.0], [800.0, 600.0]])
        np.testing.assert_allclose(transform_points(compose(face_from_proxy, proxy_from_full), pts),
                                   transform_points(face_from_full, pts))

    def test_detection_on_a_proxy_matches_full_resolution(self, dlib_analyzer, group_photo, group_faces):
        from vfxswap.extract import detect_full_res

        big = np.ascontiguousarray(np.kron(group_photo, np.ones((2, 2, 1), np.uint8)))  # 2x: faces ~200 px
        found = sorted(detect_full_res(dlib_analyzer, big, 0.5), key=lambda f: f.box[0])
        assert len(found) == len(group_faces) == 6
        for f, ref in zip(found, group_faces):
            # same face, landmarks refitted at full resolution: within a few source pixels
            assert np.abs(f.landmarks - (ref.landmarks * 2 + 0.5)).mean() < 4.0


def test_unknown_face_type_is_a_config_error():
    with pytest.raises(ConfigError, match="face_type must be one of"):
        crop_from_unit(256, "chin")
