"""vfxswap.eval.shot: the per-face measures on real faces and the shot summary of issue 16's targets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vfxswap.eval import metrics
from vfxswap.eval.inputs import ShotFrame
from vfxswap.eval.shot import TARGETS, FaceMetrics, FaceMeter, FrameMetrics, face_tracks, summarize


def face_mask(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The landmarks' hull grown by 7 px, soft-edged: a converter-like blend mask."""
    mask = np.zeros(image.shape[:2], np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(landmarks.astype(np.int32)), 1.0)
    return cv2.GaussianBlur(cv2.dilate(mask, np.ones((15, 15), np.uint8)), (0, 0), 2)


def composite(plate: np.ndarray, face: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None]
    return np.ascontiguousarray((plate * (1 - m) + face * m + 0.5).astype(np.uint8))


@pytest.fixture(scope="module")
def plate(group_photo, group_faces):
    """The group photo as the plate; its leftmost face is the swapped one."""
    face = group_faces[0]
    return group_photo, face, face_mask(group_photo, face.landmarks)


def measure(analyzer, plate_image, swapped, mask, src) -> FaceMetrics:
    meter = FaceMeter(analyzer, src)
    (face,) = meter.faces(ShotFrame(number=1001, plate=plate_image, swapped=swapped, mask=mask, mask_source="matte"))
    return face


class TestFaceMeter:
    def test_a_sharp_copy_passes_detail_and_is_found(self, dlib_analyzer, plate, group_faces):
        image, face, mask = plate
        src = dlib_analyzer.embed(image, group_faces[3].landmarks)
        m = measure(dlib_analyzer, image, image, mask, src)
        assert m.detected and m.face_found is True
        assert m.detail_ratio == pytest.approx(1.0)
        assert m.landmark_error == pytest.approx(0.0, abs=1e-6)
        assert m.mouth_open == pytest.approx(m.plate_mouth_open) and m.eye_open == pytest.approx(m.plate_eye_open)
        # landmarks in frame pixels, where the detector put them on the whole photo
        assert metrics.landmark_error(face.landmarks, m.plate_landmarks) < 0.03

    def test_a_blurred_copy_fails_detail_and_a_mush_is_not_found(self, dlib_analyzer, plate, group_faces):
        image, face, mask = plate
        src = dlib_analyzer.embed(image, group_faces[3].landmarks)
        blurred = composite(image, cv2.GaussianBlur(image, (0, 0), 0.02 * face.size), mask)
        m = measure(dlib_analyzer, image, blurred, mask, src)
        assert m.detail_ratio < 0.6 and m.detected
        # a blur sits close to the plate face and is no closer to src: identity does not pass it
        assert m.identity_dst > 0.95 and m.toward_src is False
        mush = composite(image, cv2.GaussianBlur(image, (0, 0), 0.12 * face.size), mask)
        m = measure(dlib_analyzer, image, mush, mask, src)
        assert m.detected and m.face_found is False and m.detail_ratio < 0.05

    def test_another_sharp_face_placed_there_passes_and_moves_toward_src(self, dlib_analyzer, plate, group_faces):
        image, face, mask = plate
        other = group_faces[3]
        matrix, _ = cv2.estimateAffinePartial2D(other.landmarks, face.landmarks)
        warped = cv2.warpAffine(image, matrix, image.shape[1::-1], flags=cv2.INTER_CUBIC)
        swapped = composite(image, warped, mask)
        m = measure(dlib_analyzer, image, swapped, mask, dlib_analyzer.embed(image, other.landmarks))
        assert m.face_found is True and 0.6 < m.detail_ratio < 1.6
        assert m.toward_src is True


def faces_over_time(frames: int, plate_mouth: np.ndarray, swap_mouth: np.ndarray, *, noise: float = 0.0,
                    box=(100, 100, 200, 200), seed: int = 0) -> list[FrameMetrics]:
    """Frames with one face moving smoothly; the swap's landmarks are the plate's plus ``noise`` px."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(1).uniform(120, 180, (68, 2))
    base[36:42], base[42:48] = [130, 140], [170, 140]
    out = []
    for t in range(frames):
        plate_lm = base + [0.5 * t, 0.2 * t] + 0.5 * rng.standard_normal((68, 2))
        swap_lm = plate_lm + noise * rng.standard_normal((68, 2))
        x0, y0, x1, y1 = box
        face = FaceMetrics(box=(x0 + t // 2, y0, x1 + t // 2, y1), area=10_000, detected=True, face_found=True,
                           detail_ratio=0.9, mouth_open=float(swap_mouth[t]), plate_mouth_open=float(plate_mouth[t]),
                           eye_open=0.3, plate_eye_open=0.3, landmarks=swap_lm, plate_landmarks=plate_lm)
        out.append(FrameMetrics(number=1001 + t, faces=(face,), mask_source="matte"))
    return out


class TestSummary:
    def test_every_target_is_a_summary_key(self):
        summary = summarize(faces_over_time(10, np.zeros(10), np.zeros(10)))
        assert {key for key, _, _, _ in TARGETS} <= set(summary)
        assert dict((k, limit) for k, _, limit, _ in TARGETS)["landmark_error_mean"] == 0.10

    def test_expression_following_and_jitter_ratio(self):
        mouth = 0.2 + 0.1 * np.sin(np.linspace(0, 8, 40))
        same = summarize(faces_over_time(40, mouth, mouth))
        assert same["mouth_correlation"] == pytest.approx(1.0) and same["mouth_tracks"] == 1
        assert same["eye_correlation"] is None  # the plate's eyes never move
        assert same["landmark_jitter_ratio"] == pytest.approx(1.0)
        assert same["face_found_rate"] == 1.0 and same["face_detail_ratio_mean"] == pytest.approx(0.9)
        shaky = summarize(faces_over_time(40, mouth, mouth[::-1], noise=1.0))
        assert shaky["mouth_correlation"] < 0.5
        assert shaky["landmark_jitter_ratio"] > 1.5
        assert shaky["landmark_jitter"] > shaky["plate_landmark_jitter"] > 0

    def test_too_short_tracks_and_unmeasured_faces_give_none(self):
        short = summarize(faces_over_time(3, np.arange(3.0), np.arange(3.0)))
        assert short["mouth_correlation"] is None and short["mouth_tracks"] == 0
        empty = FaceMetrics(box=(0, 0, 9, 9), area=81)
        blank = summarize([FrameMetrics(number=1, faces=(empty,), mask_source="matte")])
        assert blank["face_found_rate"] is None and blank["landmark_jitter_ratio"] is None
        assert blank["identity_src_distance_mean"] is None

    def test_identity_distances_follow_the_similarities(self):
        frames = faces_over_time(5, np.zeros(5), np.zeros(5))
        frames = [FrameMetrics(number=f.number, mask_source="matte",
                               faces=(FaceMetrics(box=(0, 0, 9, 9), area=81, identity_src=0.9, identity_dst=0.95),))
                  for f in frames]
        s = summarize(frames)
        assert s["identity_src_distance_mean"] == pytest.approx(metrics.unit_distance(0.9))
        assert s["identity_dst_distance_mean"] == pytest.approx(metrics.unit_distance(0.95))
        assert s["identity_toward_src"] == 0.0

    def test_tracks_link_nearby_faces_of_consecutive_frames(self):
        def frame(number, *boxes):
            return FrameMetrics(number=number, mask_source="matte",
                                faces=tuple(FaceMetrics(box=b, area=1) for b in boxes))

        a, b = (0, 0, 50, 50), (300, 0, 350, 50)
        frames = [frame(1, a, b), frame(2, (305, 2, 355, 52), (3, 1, 53, 51)), frame(3, (6, 2, 56, 52)),
                  frame(5, (8, 2, 58, 52))]  # frame 4 missing: a new track
        tracks = face_tracks(frames)
        assert [[f.box[0] for f in t] for t in tracks] == [[0, 3, 6], [300, 305], [8]]
