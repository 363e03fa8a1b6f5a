"""Identity: reference embeddings and matching faces against them.

Pure over arrays except :func:`reference_faces` (and :func:`reference_embeddings`), which read the
reference image(s) the user names.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from ..errors import MediaError
from ..types import Face
from .analysis import FaceAnalyzer, identity_distance

log = logging.getLogger(__name__)



def _read_rgb8(path: Path) -> np.ndarray:
    from ..io.colorspace import to_display_uint8
    from ..io.sequences import read_image
    from ..types import Frame

    image, color_space = read_image(str(path))
    return to_display_uint8(Frame(image=image, index=0, color_space=color_space))


def largest_face(analyzer: FaceAnalyzer, image: np.ndarray, *, what: str) -> tuple[Face, np.ndarray]:
    """The largest face in an ``(H, W, 3)`` uint8 RGB image, and the image it was found in.

    Small images are upscaled until the detector's smallest face fits, so tight crops work; the
    face's landmarks are in the pixels of the returned (possibly upscaled) image.

    Raises:
        MediaError: no face found.
    """
    scale = 1.0
    h, w = image.shape[:2]
    while True:
        img = image if scale == 1.0 else cv2.resize(image, (round(w * scale), round(h * scale)),
                                                     interpolation=cv2.INTER_CUBIC)
        faces = analyzer.detect(img)
        if faces or scale >= 4.0 or min(img.shape[:2]) > 2 * analyzer.min_face * 4:
            break
        scale *= 2.0
    if not faces:
        raise MediaError(f"no face found in {what}: give a clear, frontal image of the person")
    return max(faces, key=lambda f: f.size), img


def largest_face_embedding(analyzer: FaceAnalyzer, image: np.ndarray, *, what: str) -> np.ndarray:
    """Embedding of the largest face in an ``(H, W, 3)`` uint8 RGB image (see :func:`largest_face`)."""
    face, img = largest_face(analyzer, image, what=what)
    return analyzer.embed(img, face.landmarks)


def reference_faces(analyzer: FaceAnalyzer, path: str | Path) -> list[tuple[Face, np.ndarray]]:
    """The largest face of each reference image (an image or a folder of images), with its image.

    Raises:
        MediaError: the path is missing, holds no image, or an image shows no face.
    """
    path = Path(path)
    if path.is_dir():
        from ..io.sequences import IMAGE_EXTENSIONS

        files = sorted(p for p in path.iterdir() if p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS)
        if not files:
            raise MediaError(f"no reference images in {path} (looked for: {', '.join(IMAGE_EXTENSIONS)})")
    elif path.is_file():
        files = [path]
    else:
        raise MediaError(f"no such reference image: {path}")
    return [largest_face(analyzer, _read_rgb8(f), what=f"reference image {f}") for f in files]


def reference_embeddings(analyzer: FaceAnalyzer, path: str | Path) -> np.ndarray:
    """``(R, D)`` embeddings of the reference person from an image or a folder of images.

    Raises:
        MediaError: the path is missing, holds no image, or an image shows no face.
    """
    return np.stack([analyzer.embed(img, face.landmarks) for face, img in reference_faces(analyzer, path)])


def distance_to_references(embedding: np.ndarray, references: np.ndarray) -> float:
    """Smallest identity distance from one embedding to any of ``(R, D)`` reference embeddings."""
    return min(identity_distance(embedding, r) for r in references)


class TrackIdentities:
    """Identity per face track: one embedding per track (the costly step, ~100 ms with dlib),
    compared with the reference embeddings when there are any.

    Args:
        analyzer: computes the embeddings.
        references: ``(R, D)`` reference embeddings, or ``None`` to want every track.
        threshold: largest identity distance that counts as the reference person.
    """

    def __init__(self, analyzer: FaceAnalyzer, references: np.ndarray | None, threshold: float) -> None:
        self.analyzer = analyzer
        self.references = references
        self.threshold = threshold
        self.embeddings: dict[int | None, np.ndarray] = {}
        self._rejected: set[int | None] = set()

    def resume(self, embeddings: dict[int | None, np.ndarray]) -> None:
        """Carry on the embeddings of tracks an interrupted run already kept (they stay wanted)."""
        self.embeddings.update(embeddings)
        self._rejected.difference_update(embeddings)

    def wanted(self, image: np.ndarray, face: Face) -> bool:
        """Whether ``face``'s track is the reference person (always true without references)."""
        if face.track_id not in self.embeddings:
            emb = self.analyzer.embed(image, face.landmarks)
            self.embeddings[face.track_id] = emb
            if self.references is not None:
                d = distance_to_references(emb, self.references)
                if d > self.threshold:
                    self._rejected.add(face.track_id)
                log.debug("track %s: identity distance %.3f (threshold %.3f)", face.track_id, d, self.threshold)
        return face.track_id not in self._rejected
