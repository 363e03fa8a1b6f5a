"""Face alignment: fit the stable 68-point landmarks to a mean face and cut the canonical crop.

The template and crop geometry follow DeepFaceLab so that facesets and models line up with what
users know: the brows, eyes, nose and mouth corners (iBUG-300W points 17..48 and 54, not the jaw)
are fitted by a least-squares similarity to DeepFaceLab's mean face in the unit square; the crop is
a square with side ``1 + 2*sqrt(2)*pad`` (in unit-square sides), ``pad`` per face type, around the
unit square's centre; ``whole_face`` is moved 7% up to take in more forehead, ``head`` 50% up and
sideways by DeepFaceLab's yaw estimate (:func:`head_shift`). Crop pixels are DeepFaceLab's minus
half a pixel: DeepFaceLab puts the square's corner on pixel centre 0, vfxswap on the pixel's edge.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import ConfigError
from ..types import FACE_TYPES, AlignedFace, Face, FaceType
from .geometry import compose, invert, transform_points, umeyama

# DeepFaceLab's mean face (``landmarks_2D_new``) in the unit square, for points 17..48 and 54.
MEAN_FACE = np.array([
    [0.000213256, 0.106454], [0.0752622, 0.038915], [0.18113, 0.0187482], [0.29077, 0.0344891],
    [0.393397, 0.0773906], [0.586856, 0.0773906], [0.689483, 0.0344891], [0.799124, 0.0187482],
    [0.904991, 0.038915], [0.98004, 0.106454],  # brows 17..26
    [0.490127, 0.203352], [0.490127, 0.307009], [0.490127, 0.409805], [0.490127, 0.515625],
    [0.36688, 0.587326], [0.426036, 0.609345], [0.490127, 0.628106], [0.554217, 0.609345],
    [0.613373, 0.587326],  # nose 27..35
    [0.121737, 0.216423], [0.187122, 0.178758], [0.265825, 0.179852], [0.334606, 0.231733],
    [0.260918, 0.245099], [0.182743, 0.244077], [0.645647, 0.231733], [0.714428, 0.179852],
    [0.793132, 0.178758], [0.858516, 0.216423], [0.79751, 0.244077], [0.719335, 0.245099],  # eyes 36..47
    [0.254149, 0.780233], [0.726104, 0.780233],  # mouth corners 48, 54
])
STABLE_POINTS = np.array([*range(17, 49), 54])

# DeepFaceLab's padding per face type (FaceType_to_padding_remove_align).
FACE_TYPE_PADDING: dict[str, float] = {"half": 0.0, "full": 0.2109375, "whole_face": 0.40, "head": 0.70}
WHOLE_FACE_SHIFT_UP = 0.07
HEAD_SHIFT_UP = 0.50


def unit_from_frame(landmarks: np.ndarray) -> np.ndarray:
    """``(2, 3)`` similarity from frame pixels to the mean face's unit square."""
    return umeyama(np.asarray(landmarks)[STABLE_POINTS], MEAN_FACE)


def averaged_yaw(unit_landmarks: np.ndarray) -> float:
    """DeepFaceLab's ``estimate_averaged_yaw`` of ``(68, 2)`` landmarks in the unit square.

    The jaw's mean reach right of the nose bridge (points 27..29 to 16..14) minus its reach left of
    it (0..2 to 27..29), in unit-square sides: 0 for a frontal face, positive when the face turns
    towards the image's left (its image-right half shows wider).
    """
    lm = np.asarray(unit_landmarks, dtype=np.float64)
    left = (lm[27:30, 0] - lm[0:3, 0]).sum() / 3.0
    right = (lm[16:13:-1, 0] - lm[27:30, 0]).sum() / 3.0
    return float(right - left)


def head_shift(yaw: float) -> float:
    """Sideways shift (unit-square sides, +x) of the ``head`` crop for :func:`averaged_yaw` ``yaw``:
    half the yaw, damped near zero by ``|tanh(2 yaw)|`` (DeepFaceLab's ``get_transform_mat``)."""
    return yaw * abs(math.tanh(2.0 * yaw)) / 2.0


def crop_from_unit(size: int, face_type: FaceType, yaw: float = 0.0) -> np.ndarray:
    """``(2, 3)`` affine from the unit square to a ``size``-pixel crop of ``face_type``.

    The crop covers a square of side ``1 + 2*sqrt(2)*pad`` unit-square sides centred on the unit
    square's centre, moved up by 7% of a side for ``whole_face``; for ``head`` moved up by 50% and
    right by :func:`head_shift` of the face's ``yaw`` (:func:`averaged_yaw`; ignored by other types).
    """
    if face_type not in FACE_TYPE_PADDING:
        raise ConfigError(f"face_type must be one of {', '.join(FACE_TYPES)}, got {face_type!r}")
    if size < 8:
        raise ConfigError(f"crop size must be at least 8 pixels, got {size}")
    side = 1.0 + 2.0 * math.sqrt(2.0) * FACE_TYPE_PADDING[face_type]
    cx, cy = 0.5, 0.5
    if face_type == "whole_face":
        cy -= WHOLE_FACE_SHIFT_UP
    elif face_type == "head":
        cx, cy = cx + head_shift(yaw), cy - HEAD_SHIFT_UP
    s = size / side
    # Crop pixel centres: the crop's left edge (x = -0.5 in pixel-centre coordinates) is the square's edge.
    return np.array([[s, 0.0, (side / 2 - cx) * s - 0.5], [0.0, s, (side / 2 - cy) * s - 0.5]])


def face_from_frame(landmarks: np.ndarray, size: int, face_type: FaceType = "whole_face") -> np.ndarray:
    """``(2, 3)`` affine from frame pixels to the aligned crop for a face with these ``(68, 2)`` landmarks."""
    unit = unit_from_frame(landmarks)
    yaw = averaged_yaw(transform_points(unit, landmarks)) if face_type == "head" else 0.0
    return compose(crop_from_unit(size, face_type, yaw), unit)


def warp_to_face(image: np.ndarray, face_from_frame: np.ndarray, size: int) -> np.ndarray:
    """Cut the ``(size, size, C)`` crop out of ``image`` (any dtype OpenCV warps); borders replicate."""
    scale = math.sqrt(abs(np.linalg.det(face_from_frame[:, :2])))
    interp = cv2.INTER_AREA if scale < 0.5 else (cv2.INTER_LINEAR if scale < 1.0 else cv2.INTER_CUBIC)
    return cv2.warpAffine(image, face_from_frame, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def align_face(image: np.ndarray, face: Face, size: int = 256, face_type: FaceType = "whole_face") -> AlignedFace:
    """Align one face of ``image`` (``(H, W, 3)``, any dtype) into a ``size``-pixel crop."""
    m = face_from_frame(face.landmarks, size, face_type)
    return AlignedFace(image=warp_to_face(image, m, size), face_from_frame=m, size=size,
                       face_type=face_type, face=face)


def frame_from_face(face_from_frame: np.ndarray) -> np.ndarray:
    """Inverse of :func:`face_from_frame`: crop pixels back to frame pixels."""
    return invert(face_from_frame)


def landmarks_in_face(aligned: AlignedFace) -> np.ndarray:
    """The face's ``(68, 2)`` landmarks in crop pixels."""
    return transform_points(aligned.face_from_frame, aligned.face.landmarks)
