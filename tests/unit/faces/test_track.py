import cv2
import numpy as np

from vfxswap.faces.track import FaceTracker, iou, landmark_box


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)


class TestFaceTracker:
    def test_tracks_follow_a_moving_shot(self, dlib_analyzer, group_photo):
        tracker = FaceTracker(dlib_analyzer)
        faces, new = tracker.update_detections(group_photo, dlib_analyzer.detect(group_photo))
        assert len(faces) == 6 and sorted(new) == list(range(6))
        start = {f.track_id: f.landmarks.copy() for f in faces}
        for step in range(1, 6):  # 3 px per frame to the right and 2 down
            tracked = tracker.track(_shifted(group_photo, 3 * step, 2 * step))
        assert len(tracked) == 6
        for f in tracked:
            moved = f.landmarks.mean(axis=0) - start[f.track_id].mean(axis=0)
            np.testing.assert_allclose(moved, [15, 10], atol=2.0)
        # the next detection continues the same tracks
        again, new = tracker.update_detections(_shifted(group_photo, 18, 12), dlib_analyzer.detect(_shifted(group_photo, 18, 12)))
        assert new == [] and sorted(f.track_id for f in again) == list(range(6))

    def test_a_face_that_leaves_is_dropped(self, dlib_analyzer, group_photo):
        tracker = FaceTracker(dlib_analyzer)
        tracker.update_detections(group_photo, dlib_analyzer.detect(group_photo))
        blank = np.full_like(group_photo, 128)
        assert tracker.track(blank) == [] and tracker.active == 0

    def test_resume_continues_the_tracks_of_a_committed_frame(self, dlib_analyzer, group_photo):
        """A resumed extract seeds a new tracker with the faces of the last committed frame."""
        first = FaceTracker(dlib_analyzer)
        first.update_detections(group_photo, dlib_analyzer.detect(group_photo))
        committed = first.track(_shifted(group_photo, 3, 2))
        uninterrupted = first.track(_shifted(group_photo, 6, 4))

        resumed = FaceTracker(dlib_analyzer, first_id=6)
        resumed.resume(_shifted(group_photo, 3, 2), committed)
        tracked = resumed.track(_shifted(group_photo, 6, 4))
        assert sorted(f.track_id for f in tracked) == list(range(6))
        by_id = {f.track_id: f for f in uninterrupted}
        for f in tracked:
            np.testing.assert_allclose(f.landmarks, by_id[f.track_id].landmarks, atol=1e-3)
        again, new = resumed.update_detections(_shifted(group_photo, 9, 6), dlib_analyzer.detect(_shifted(group_photo, 9, 6)))
        assert new == [] and sorted(f.track_id for f in again) == list(range(6))
        # faces that appear after the tracks end get fresh ids, after the resumed ones
        resumed.update_detections(group_photo, [])
        assert sorted(resumed.update_detections(group_photo, dlib_analyzer.detect(group_photo))[1]) == list(range(6, 12))

    def test_first_id_continues_numbering(self, dlib_analyzer, group_photo):
        faces, new = FaceTracker(dlib_analyzer, first_id=40).update_detections(group_photo, dlib_analyzer.detect(group_photo))
        assert sorted(new) == list(range(40, 46))


def test_iou_and_landmark_box():
    assert iou(np.array([0, 0, 10, 10.0]), np.array([5, 0, 15, 10.0])) == 1 / 3
    assert iou(np.array([0, 0, 1, 1.0]), np.array([2, 2, 3, 3.0])) == 0.0
    np.testing.assert_array_equal(landmark_box(np.array([[1, 5], [3, 2.0]])), [1, 2, 3, 5])
