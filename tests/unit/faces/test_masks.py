import numpy as np
import pytest

from vfxswap.errors import ConfigError
from vfxswap.faces.align import align_face, landmarks_in_face
from vfxswap.faces.masks import erode_dilate, feather_mask, hull_mask, lift_brows


class TestHullMask:
    @pytest.fixture()
    def crop_landmarks(self, group_photo, group_faces):
        return landmarks_in_face(align_face(group_photo, group_faces[0], 256))

    def test_covers_the_landmarks_and_forehead(self, crop_landmarks):
        mask = hull_mask(crop_landmarks, 256)
        assert mask.shape == (256, 256) and mask.dtype == np.float32
        for x, y in crop_landmarks[[30, 33, 36, 45, 48, 54]].round().astype(int):
            assert mask[y, x] == 1.0
        lifted = lift_brows(crop_landmarks)[17:27]
        assert lifted[:, 1].mean() < crop_landmarks[17:27, 1].mean()  # brows moved up
        top = int(lifted[:, 1].min()) + 2
        assert mask[top, int(lifted[:, 0].mean())] > 0.5
        assert mask[0, 0] == 0.0

    def test_erode_shrinks_and_dilate_grows(self, crop_landmarks):
        base = hull_mask(crop_landmarks, 256).sum()
        assert hull_mask(crop_landmarks, 256, erode=8).sum() < base < hull_mask(crop_landmarks, 256, erode=-8).sum()

    def test_feather_softens_only_the_edge(self, crop_landmarks):
        hard = hull_mask(crop_landmarks, 256)
        soft = hull_mask(crop_landmarks, 256, feather=12)
        assert ((soft > 0.02) & (soft < 0.98)).sum() > ((hard > 0.02) & (hard < 0.98)).sum()
        assert soft.max() <= 1.0 and soft.min() >= 0.0
        cx, cy = crop_landmarks[30].round().astype(int)
        assert soft[cy, cx] == pytest.approx(1.0, abs=1e-3)

    def test_negative_feather_is_refused(self, crop_landmarks):
        with pytest.raises(ConfigError):
            hull_mask(crop_landmarks, 256, feather=-1)


def test_erode_dilate_zero_and_feather_zero_are_identity():
    m = np.zeros((32, 32), np.uint8)
    m[8:24, 8:24] = 255
    assert erode_dilate(m, 0) is m
    f = m.astype(np.float32) / 255
    assert feather_mask(f, 0) is f
