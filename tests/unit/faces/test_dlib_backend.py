import numpy as np
import pytest

from vfxswap.errors import ConfigError
from vfxswap.faces.analysis import ANALYZERS, FaceAnalyzer, identity_distance, open_analyzer
from vfxswap.faces.identity import largest_face_embedding


class TestDlibBackend:
    def test_is_a_face_analyzer(self, dlib_analyzer):
        assert isinstance(dlib_analyzer, FaceAnalyzer)
        assert "dlib" in ANALYZERS.names()

    def test_finds_the_six_faces_of_the_group_photo(self, group_faces, group_photo):
        assert len(group_faces) == 6
        h, w = group_photo.shape[:2]
        for f in group_faces:
            x0, y0, x1, y1 = f.box
            assert f.landmarks.shape == (68, 2) and f.landmarks.dtype == np.float32
            # landmarks sit on the detected face (nose tip inside the box, all points in the image)
            assert x0 <= f.landmarks[30, 0] <= x1 and y0 <= f.landmarks[30, 1] <= y1
            assert (f.landmarks >= 0).all() and (f.landmarks[:, 0] < w).all() and (f.landmarks[:, 1] < h).all()

    def test_finds_the_astronaut(self, dlib_analyzer, astronaut):
        assert len(dlib_analyzer.detect(astronaut)) == 1

    def test_landmark_refit_inside_the_detector_box_is_stable(self, dlib_analyzer, group_photo, group_faces):
        for f in group_faces:
            assert np.abs(dlib_analyzer.landmarks(group_photo, f.box) - f.landmarks).max() < 1e-3

    def test_embeddings_separate_people(self, dlib_analyzer, group_photo, group_faces):
        import cv2

        embs = [dlib_analyzer.embed(group_photo, f.landmarks) for f in group_faces]
        assert all(e.shape == (128,) and abs(np.linalg.norm(e) - 1) < 1e-5 for e in embs)
        # the same person re-framed (scaled, shifted, brightened) stays closest to itself
        moved_from_photo = np.float32([[0.9, 0, 40], [0, 0.9, 30]])
        moved = cv2.warpAffine(group_photo, moved_from_photo, (1280, 886))
        moved = cv2.convertScaleAbs(moved, alpha=1.1, beta=10)
        for i, f in enumerate(group_faces):
            x0, y0, x1, y1 = (int(v) for v in cv2.transform(np.float32([[f.box[:2], f.box[2:]]]), moved_from_photo)[0].ravel())
            crop = moved[max(0, y0 - 50):y1 + 50, max(0, x0 - 50):x1 + 50]
            e = largest_face_embedding(dlib_analyzer, np.ascontiguousarray(crop), what="test crop")
            d = [identity_distance(e, other) for other in embs]
            assert int(np.argmin(d)) == i
            assert d[i] < dlib_analyzer.identity_threshold
            assert sorted(d)[1] > dlib_analyzer.identity_threshold

    def test_bad_options_are_config_errors(self):
        with pytest.raises(ConfigError, match="hog"):
            open_analyzer("dlib", detector="yolo")
        with pytest.raises(ConfigError, match="unknown face analyzer"):
            open_analyzer("mediapipe")
