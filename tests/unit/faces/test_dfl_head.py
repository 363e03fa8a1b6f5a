"""vfxswap's aligned crops against DeepFaceLab's ``LandmarksProcessor.get_transform_mat`` on real faces.

``dfl_transform_mat`` below is an independent numpy transcription of DeepFaceLab's published code
(facelib/LandmarksProcessor.py: ``get_transform_mat``, ``estimate_averaged_yaw``,
``FaceType_to_padding_remove_align``, ``landmarks_2D_new``; core/mathlib/umeyama.py), with
``cv2.transform``/``cv2.invertAffineTransform``/``cv2.getAffineTransform`` written out. DeepFaceLab puts
the crop square's corner on pixel centre 0, vfxswap on the pixel's edge (-0.5): vfxswap's crop pixels
are DeepFaceLab's minus half a pixel.
"""

import math

import numpy as np
import pytest

from vfxswap.faces.align import align_face, face_from_frame
from vfxswap.faces.geometry import transform_points

SIZE = 256

DFL_LANDMARKS_2D_NEW = np.array([
    [0.000213256, 0.106454], [0.0752622, 0.038915], [0.18113, 0.0187482], [0.29077, 0.0344891],
    [0.393397, 0.0773906], [0.586856, 0.0773906], [0.689483, 0.0344891], [0.799124, 0.0187482],
    [0.904991, 0.038915], [0.98004, 0.106454], [0.490127, 0.203352], [0.490127, 0.307009],
    [0.490127, 0.409805], [0.490127, 0.515625], [0.36688, 0.587326], [0.426036, 0.609345],
    [0.490127, 0.628106], [0.554217, 0.609345], [0.613373, 0.587326], [0.121737, 0.216423],
    [0.187122, 0.178758], [0.265825, 0.179852], [0.334606, 0.231733], [0.260918, 0.245099],
    [0.182743, 0.244077], [0.645647, 0.231733], [0.714428, 0.179852], [0.793132, 0.178758],
    [0.858516, 0.216423], [0.79751, 0.244077], [0.719335, 0.245099], [0.254149, 0.780233],
    [0.726104, 0.780233],
])
# FaceType_to_padding_remove_align for the face types vfxswap offers (none of them removes the alignment).
DFL_PADDING = {"half": (0.0, False), "full": (0.2109375, False), "whole_face": (0.40, False), "head": (0.70, False)}


def dfl_umeyama(src, dst):
    """core/mathlib/umeyama.py with estimate_scale=True: (3, 3) dst_from_src."""
    num, dim = src.shape
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_demean, dst_demean = src - src_mean, dst - dst_mean
    a = dst_demean.T @ src_demean / num
    d = np.ones(dim)
    if np.linalg.det(a) < 0:
        d[dim - 1] = -1
    t = np.eye(dim + 1)
    u, s, v = np.linalg.svd(a)
    rank = np.linalg.matrix_rank(a)
    assert rank > 0
    if rank == dim - 1:
        if np.linalg.det(u) * np.linalg.det(v) > 0:
            t[:dim, :dim] = u @ v
        else:
            keep = d[dim - 1]
            d[dim - 1] = -1
            t[:dim, :dim] = u @ np.diag(d) @ v
            d[dim - 1] = keep
    else:
        t[:dim, :dim] = u @ np.diag(d) @ v
    scale = 1.0 / src_demean.var(axis=0).sum() * (s @ d)
    t[:dim, dim] = dst_mean - scale * (t[:dim, :dim] @ src_mean.T)
    t[:dim, :dim] *= scale
    return t


def dfl_transform_points(points, mat, invert=False):
    if invert:
        mat = np.linalg.inv(np.vstack([mat, [0.0, 0.0, 1.0]]))[:2]
    return np.asarray(points, np.float64) @ mat[:, :2].T + mat[:, 2]


def dfl_estimate_averaged_yaw(landmarks):
    l = ((landmarks[27][0] - landmarks[0][0]) + (landmarks[28][0] - landmarks[1][0])
         + (landmarks[29][0] - landmarks[2][0])) / 3.0
    r = ((landmarks[16][0] - landmarks[27][0]) + (landmarks[15][0] - landmarks[28][0])
         + (landmarks[14][0] - landmarks[29][0])) / 3.0
    return float(r - l)


def dfl_get_affine_transform(src, dst):
    """cv2.getAffineTransform: the (2, 3) affine taking 3 src points to 3 dst points."""
    a = np.hstack([src, np.ones((3, 1))])
    return np.linalg.solve(a, dst).T


def dfl_transform_mat(image_landmarks, output_size, face_type, scale=1.0):
    """LandmarksProcessor.get_transform_mat, line by line."""
    image_landmarks = np.asarray(image_landmarks, np.float64)
    mat = dfl_umeyama(np.concatenate([image_landmarks[17:49], image_landmarks[54:55]]), DFL_LANDMARKS_2D_NEW)[0:2]
    g_p = dfl_transform_points([(0, 0), (1, 0), (1, 1), (0, 1), (0.5, 0.5)], mat, True)
    g_c = g_p[4]
    tb_diag_vec = g_p[2] - g_p[0]
    tb_diag_vec /= np.linalg.norm(tb_diag_vec)
    bt_diag_vec = g_p[1] - g_p[3]
    bt_diag_vec /= np.linalg.norm(bt_diag_vec)
    padding, remove_align = DFL_PADDING[face_type]
    mod = (1.0 / scale) * (np.linalg.norm(g_p[0] - g_p[2]) * (padding * np.sqrt(2.0) + 0.5))
    if face_type == "whole_face":
        vec = g_p[0] - g_p[3]
        vec_len = np.linalg.norm(vec)
        vec /= vec_len
        g_c += vec * vec_len * 0.07
    elif face_type == "head":
        yaw = dfl_estimate_averaged_yaw(dfl_transform_points(image_landmarks, mat, False))
        hvec = g_p[0] - g_p[1]
        hvec_len = np.linalg.norm(hvec)
        hvec /= hvec_len
        yaw *= np.abs(math.tanh(yaw * 2))
        g_c -= hvec * (yaw * hvec_len / 2.0)
        vvec = g_p[0] - g_p[3]
        vvec_len = np.linalg.norm(vvec)
        vvec /= vvec_len
        g_c += vvec * vvec_len * 0.50
    assert not remove_align
    l_t = np.array([g_c - tb_diag_vec * mod, g_c + bt_diag_vec * mod, g_c + tb_diag_vec * mod])
    pts2 = np.array([(0, 0), (output_size, 0), (output_size, output_size)], np.float64)
    return dfl_get_affine_transform(l_t, pts2)


@pytest.fixture(scope="module")
def real_faces(dlib_analyzer, group_faces, astronaut):
    """(label, landmarks) of the six faces of the group photo and the astronaut's."""
    astro = dlib_analyzer.detect(astronaut)
    assert len(astro) == 1 and len(group_faces) == 6
    return [(f"group{i}", f.landmarks) for i, f in enumerate(group_faces)] + [("astronaut", astro[0].landmarks)]


def crop_corners_error(landmarks, face_type):
    """Largest distance (vfxswap crop pixels) between the corners of DeepFaceLab's crop and vfxswap's."""
    corners = np.array([(0, 0), (SIZE, 0), (SIZE, SIZE), (0, SIZE)], np.float64)
    frame_corners = dfl_transform_points(corners, dfl_transform_mat(landmarks, SIZE, face_type), invert=True)
    ours = transform_points(face_from_frame(landmarks, SIZE, face_type), frame_corners)
    return float(np.abs(ours - (corners - 0.5)).max())


@pytest.mark.parametrize("face_type", list(DFL_PADDING))
def test_crop_corners_match_deepfacelab_on_real_faces(real_faces, face_type):
    for label, landmarks in real_faces:
        assert crop_corners_error(landmarks, face_type) < 1e-3, (label, face_type)


def test_head_is_lifted_and_shifted_by_the_damped_yaw(real_faces):
    # vfxswap's head crop centre in the unit square (= the half-face crop): half a side up, and
    # sideways by half of DeepFaceLab's yaw damped by |tanh(2 yaw)|, a large shift on the turned faces.
    shifts = []
    for label, landmarks in real_faces:
        head = face_from_frame(landmarks, SIZE, "head")
        frame_centre = transform_points(np.linalg.inv(np.vstack([head, [0, 0, 1]]))[:2], [((SIZE - 1) / 2,) * 2])
        cx, cy = (transform_points(face_from_frame(landmarks, SIZE, "half"), frame_centre)[0] + 0.5) / SIZE
        mat = dfl_umeyama(np.concatenate([landmarks[17:49], landmarks[54:55]]), DFL_LANDMARKS_2D_NEW)[0:2]
        yaw = dfl_estimate_averaged_yaw(dfl_transform_points(landmarks, mat))
        assert cy == pytest.approx(0.0, abs=1e-6), label
        assert cx - 0.5 == pytest.approx(yaw * abs(math.tanh(2 * yaw)) / 2, abs=1e-6), label
        shifts.append(cx - 0.5)
    assert max(np.abs(shifts)) > 0.1  # > 8 px at 256 px


def test_aligned_head_crop_is_deepfacelabs_pixels(group_photo, group_faces):
    face = group_faces[0]
    aligned = align_face(group_photo, face, SIZE, "head")
    dfl = dfl_transform_mat(face.landmarks, SIZE, "head")
    # vfxswap's crop pixel p is DeepFaceLab's pixel p + 0.5 (the half-pixel convention)
    np.testing.assert_allclose(aligned.face_from_frame[:, :2], dfl[:, :2], rtol=1e-9)
    np.testing.assert_allclose(aligned.face_from_frame[:, 2], dfl[:, 2] - 0.5, atol=1e-6)
