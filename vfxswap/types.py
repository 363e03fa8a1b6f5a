"""Frozen dataclasses that cross module borders (DESIGN.md section 3).

Conventions: images are ``(H, W, 3)`` RGB; coordinates are ``(x, y)`` in pixels with the origin at
the centre of the top-left pixel; matrices are ``(2, 3)`` affines named after the frames they map
between (``face_from_frame`` maps frame pixels to aligned-crop pixels).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Literal

import numpy as np

from .errors import ConfigError

FaceType = Literal["half", "full", "whole_face", "head"]
FACE_TYPES: tuple[str, ...] = ("half", "full", "whole_face", "head")
ImageDtype = Literal["uint8", "uint16", "float32"]


def _shape(a: np.ndarray | None) -> str:
    return "None" if a is None else f"{a.dtype}{list(a.shape)}"


def _check_array(name: str, a: np.ndarray, shape: tuple[int | None, ...]) -> None:
    if not isinstance(a, np.ndarray) or a.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(a.shape, shape)
    ):
        want = "x".join("N" if s is None else str(s) for s in shape)
        got = _shape(a) if isinstance(a, np.ndarray) else type(a).__name__
        raise ConfigError(f"{name} must be an array of shape {want}, got {got}")


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a source holds, as probed before decoding.

    Attributes:
        path: the source as given (movie path, sequence pattern or folder).
        kind: ``movie``, ``sequence`` (numbered files) or ``stills`` (a folder of unrelated images).
        width, height: frame size in pixels.
        fps: frame rate (exact ``Fraction``; sequences and stills default to 24).
        time_base: seconds per pts tick (movies); ``1/fps`` for sequences.
        frame_count: number of frames (decoded count when the container does not say).
        first_frame: number of the first frame (1001 for a sequence numbered from 1001, 0 for movies).
        pix_fmt: FFmpeg pixel format (movies) or ``rgb24``/``rgb48``/``rgbf32`` (images).
        bit_depth: bits per channel of the stored pixels (8, 10, 12, 16, 32).
        color_primaries, color_trc, colorspace, color_range: container colour tags, if any.
        timecode: start timecode ``HH:MM:SS:FF`` if the source carries one.
        has_audio: whether the source has an audio stream.
        codec: codec name (``h264``, ``prores``) or the image file extension (``exr``).
    """

    path: str
    kind: Literal["movie", "sequence", "stills"]
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frame_count: int
    first_frame: int = 0
    pix_fmt: str = "rgb24"
    bit_depth: int = 8
    color_primaries: str | None = None
    color_trc: str | None = None
    colorspace: str | None = None
    color_range: str | None = None
    timecode: str | None = None
    has_audio: bool = False
    codec: str = ""


@dataclasses.dataclass(frozen=True, repr=False)
class Frame:
    """One decoded frame.

    Attributes:
        image: ``(H, W, 3)`` RGB; ``uint8`` or ``uint16`` display-referred code values, or ``float32``
            (scene-linear for EXR unless ``color_space`` says otherwise).
        index: frame number: position from 0 in a movie, the file's number in a sequence.
        color_space: name of the colour space of ``image`` (``srgb``, ``linear``, an OCIO name, or
            ``data``: non-colour values such as mattes, written to every format without conversion).
        pts: presentation timestamp in ``time_base`` units (movies), else ``None``.
        time_base: seconds per pts tick, else ``None``.
        timecode: this frame's timecode, if known.
        source: the file the frame came from (image sequences and stills), else ``None``.
        alpha: ``(H, W)`` float32 coverage in [0, 1] for outputs with an alpha channel (the
            converter's face matte; ``image`` is not premultiplied by it), else ``None``.
    """

    image: np.ndarray
    index: int
    color_space: str = "srgb"
    pts: int | None = None
    time_base: Fraction | None = None
    timecode: str | None = None
    source: str | None = None
    alpha: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_array("Frame.image", self.image, (None, None, 3))
        if self.image.dtype not in (np.uint8, np.uint16, np.float32):
            raise ConfigError(f"Frame.image dtype must be uint8, uint16 or float32, got {self.image.dtype}")
        if self.alpha is not None:
            _check_array("Frame.alpha", self.alpha, self.image.shape[:2])

    def __repr__(self) -> str:
        return f"Frame(index={self.index}, image={_shape(self.image)}, color_space={self.color_space!r}, pts={self.pts})"


@dataclasses.dataclass(frozen=True, repr=False)
class Face:
    """A face found in a frame.

    Attributes:
        box: ``(x0, y0, x1, y1)`` detector box in frame pixels.
        landmarks: ``(68, 2)`` float32, iBUG-300W order, frame pixels.
        score: detector confidence (backend-specific scale; larger is surer).
        track_id: id of the track the face belongs to, ``None`` before tracking.
        embedding: ``(D,)`` float32 identity embedding, L2-normalised, or ``None``.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float = 1.0
    track_id: int | None = None
    embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_array("Face.landmarks", self.landmarks, (68, 2))
        if self.embedding is not None:
            _check_array("Face.embedding", self.embedding, (None,))

    @property
    def size(self) -> float:
        """Side of the landmarks' bounding square in pixels (the face's size for ``--min-size``)."""
        span = self.landmarks.max(axis=0) - self.landmarks.min(axis=0)
        return float(span.max())

    def __repr__(self) -> str:
        box = ", ".join(f"{v:.1f}" for v in self.box)
        return (f"Face(box=({box}), landmarks={_shape(self.landmarks)}, score={self.score:.3f}, "
                f"track_id={self.track_id}, embedding={_shape(self.embedding)})")


@dataclasses.dataclass(frozen=True, repr=False)
class AlignedFace:
    """A face warped into the canonical crop.

    Attributes:
        image: ``(S, S, 3)`` crop, same dtype and colour space as the frame it came from.
        face_from_frame: ``(2, 3)`` float64 affine from frame pixels to crop pixels.
        size: ``S``, the crop side in pixels.
        face_type: how much of the head the crop covers (``half``, ``full``, ``whole_face``, ``head``).
        face: the source :class:`Face`.
    """

    image: np.ndarray
    face_from_frame: np.ndarray
    size: int
    face_type: FaceType
    face: Face

    def __post_init__(self) -> None:
        _check_array("AlignedFace.image", self.image, (self.size, self.size, 3))
        _check_array("AlignedFace.face_from_frame", self.face_from_frame, (2, 3))
        if self.face_type not in FACE_TYPES:
            raise ConfigError(f"face_type must be one of {', '.join(FACE_TYPES)}, got {self.face_type!r}")

    def __repr__(self) -> str:
        return f"AlignedFace(image={_shape(self.image)}, face_type={self.face_type!r}, face={self.face!r})"


@dataclasses.dataclass(frozen=True, repr=False)
class SwapResult:
    """One swapped face.

    Attributes:
        aligned: the plate face in the model's crop (``image`` float32 RGB [0, 1] in the model's colour space).
        swapped: ``(S, S, 3)`` float32 RGB in [0, 1], the model's output.
        mask: ``(S, S)`` float32 in [0, 1], the model's learned mask (ones without a mask head).
    """

    aligned: AlignedFace
    swapped: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        s = self.aligned.size
        _check_array("SwapResult.swapped", self.swapped, (s, s, 3))
        _check_array("SwapResult.mask", self.mask, (s, s))

    def __repr__(self) -> str:
        return f"SwapResult(swapped={_shape(self.swapped)}, track_id={self.aligned.face.track_id})"


@dataclasses.dataclass(frozen=True, repr=False)
class FrameWork:
    """A frame on its way through the converter; each stage returns ``dataclasses.replace(work, ...)``.

    Attributes:
        frame: the decoded frame (never modified).
        display: ``(H, W, 3)`` uint8 sRGB image for face analysis (the frame itself when it is 8-bit sRGB).
        faces: the faces to swap, with track ids.
        aligned: the faces in the model's crop.
        swaps: the swapped faces.
        output: the composited image (same dtype and colour space as ``frame.image``); ``None`` until
            composited — a frame with nothing to swap is written as ``frame.image``, untouched.
        matte: ``(H, W)`` float32 [0, 1] blend mask of all swapped faces, when asked for.
        number: the frame's number in ``--frames`` terms (movies: ``start_frame + index``).
        to_write: whether the frame goes to the output (``False``: a handle that tracking,
            smoothing or colour history of written frames depends on).
        to_swap: whether its faces go through the model.
    """

    frame: Frame
    display: np.ndarray | None = None
    faces: tuple[Face, ...] = ()
    aligned: tuple[AlignedFace, ...] = ()
    swaps: tuple[SwapResult, ...] = ()
    output: np.ndarray | None = None
    matte: np.ndarray | None = None
    number: int = 0
    to_write: bool = True
    to_swap: bool = True

    @property
    def result(self) -> np.ndarray:
        """The image to write: the composite, or the untouched frame."""
        return self.frame.image if self.output is None else self.output

    def __repr__(self) -> str:
        return (f"FrameWork(index={self.frame.index}, faces={len(self.faces)}, swaps={len(self.swaps)}, "
                f"output={_shape(self.output)})")


@dataclasses.dataclass(frozen=True)
class SwapJob:
    """One convert job: frames ``first``..``last`` (inclusive, in the numbering ``convert --frames``
    uses) of ``source`` into ``output``; a timeline clip's media range or a whole plate.

    Attributes:
        name: the job's name (a shot or media name; unique within a plan).
        source: movie, image-sequence pattern or folder to convert.
        output: movie path or image-sequence pattern (``out.####.exr``).
        first, last: frame numbers, inclusive.
        start_frame: ``--start-frame``: the number of a movie source's first frame.
    """

    name: str
    source: str
    output: str  # movie path or image-sequence pattern (out.####.exr)
    first: int
    last: int
    start_frame: int = 1001  # passed to convert as --start-frame (numbering of a movie source)

    def __post_init__(self) -> None:
        if not self.name or not str(self.name).strip():
            raise ConfigError("a swap job needs a name")
        for field in ("first", "last", "start_frame"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"shot {self.name}: {field} must be a non-negative int, got {value!r}")
        if self.last < self.first:
            raise ConfigError(f"shot {self.name}: frame range {self.first}-{self.last} runs backwards")
        if not self.source or not self.output:
            raise ConfigError(f"shot {self.name}: source and output must be paths")

    @property
    def frames(self) -> str:
        """The job's range as a frame expression (``1001-1100``)."""
        from .io.frames import format_frames

        return format_frames(range(self.first, self.last + 1))

    @property
    def is_movie(self) -> bool:
        """Whether the output is a movie (joined from chunk files by an assemble task)."""
        from .io.writer import is_movie_path

        return is_movie_path(self.output)
