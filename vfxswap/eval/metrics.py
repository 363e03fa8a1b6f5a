"""Quality metrics of a face swap: pure functions over arrays (no files, no globals).

Conventions: images are ``(H, W, 3)`` RGB, ``uint8`` (scaled by 1/255) or ``float32`` in [0, 1],
display-referred sRGB; masks are ``(H, W)`` float in [0, 1] (``uint8`` masks are scaled by 1/255),
and a pixel is *inside* where the mask is >= 0.5; landmarks are ``(68, 2)`` iBUG-300W points in
pixels; affines are ``(2, 3)`` ``frame_from_face`` matrices (crop pixels -> frame pixels).

=========================  ===========================================  ==========================
metric                     what it measures                             good
=========================  ===========================================  ==========================
:func:`identity_similarity`  cosine similarity of an embedding to an      toward src > toward dst
                           identity (the mean of reference embeddings)
:func:`landmark_error`     mean landmark distance / inter-ocular dist.  0 (<= 0.08)
:func:`shape_gap`          landmark error of the nearest src face,      reference for the above
                           placed by the best similarity
:func:`affine_jitter`      per-frame noise of the face placement        0
                           (second difference), fraction of face size
:func:`temporal_change`,   face-region change between frames, swap vs   ~1 (> 1: flicker)
:func:`flicker_ratio`      plate
:func:`seam_gradient_ratio`  gradient along the mask border / just      ~1 (<= 1.5)
                           inside
:func:`border_delta_e`     CIELAB ΔE76 between rings just inside and    0 (<= 6)
                           just outside the mask
:func:`reconstruction_scores`  SSIM and PSNR of model reconstructions   1, high dB
:func:`detail_ratio`       high-frequency energy in the face, swap /    ~1 (>= 0.6; a blur ~0.3)
                           plate, at facial-feature scale
:func:`face_in_mask`       which detected face lies in a swapped region  one (the face is found)
:func:`mouth_opening`,     expression from the landmarks; followed by   >= 0.9
:func:`eye_opening`        :func:`expression_correlation` over time
:func:`landmark_jitter`,   landmark motion beyond the smooth path;      ~1 (<= 1.1)
:func:`jitter_ratio`       the swap's / the plate's
=========================  ===========================================  ==========================
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import ConfigError

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
#: Inner-lip point pairs (upper, lower) of the 68-point scheme: 61-67, 62-66, 63-65.
INNER_LIPS = ((61, 67), (62, 66), (63, 65))
#: Eye points ``(corner, upper, upper, corner, lower, lower)`` of each eye, as in the eye aspect ratio.
EYES = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47))
#: Face size (longer side of the mask's box, pixels) at which :func:`detail_energy` measures.
DETAIL_SIDE = 64
#: Rec. 709 luma weights (applied to the display-referred code values).
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


# ------------------------------------------------------------------------------------------ helpers
def _image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """``(H, W, 3)`` uint8/uint16/float image as float32 in [0, 1] (float32 is not copied)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(f"{name} must be an (H, W, 3) RGB array, got {_desc(image)}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) * np.float32(1 / 255)
    if image.dtype == np.uint16:
        return image.astype(np.float32) * np.float32(1 / 65535)
    if image.dtype == np.float32:
        return image
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32)
    raise ConfigError(f"{name} must be uint8, uint16 or float, got {image.dtype}")


def _mask(mask: np.ndarray, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """``(H, W)`` mask as float32 in [0, 1] (uint8 scaled by 1/255, bool as 0/1)."""
    if not isinstance(mask, np.ndarray) or mask.shape != tuple(shape):
        raise ConfigError(f"{name} must be an array of shape {tuple(shape)}, got {_desc(mask)}")
    if mask.dtype == np.uint8:
        return mask.astype(np.float32) * np.float32(1 / 255)
    return mask.astype(np.float32, copy=False)


def _desc(x: object) -> str:
    return f"{x.dtype}{list(x.shape)}" if isinstance(x, np.ndarray) else type(x).__name__


def luma(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` float32 Rec. 709 luma of an RGB image (code values in [0, 1])."""
    return _image(image) @ LUMA


def _distances(inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance of every pixel to the other side of a binary mask: ``(d_in, d_out)``.

    ``d_in`` is > 0 inside (distance to the nearest outside pixel), ``d_out`` > 0 outside.
    """
    a = inside.astype(np.uint8)
    d_in = cv2.distanceTransform(a, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    d_out = cv2.distanceTransform(1 - a, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return d_in, d_out


# ----------------------------------------------------------------------------------------- identity
def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity in [-1, 1] of two ``(D,)`` vectors (1 = same direction)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ConfigError(f"embeddings must be two vectors of one length, got {a.shape} and {b.shape}")
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def identity_centroid(embeddings: np.ndarray) -> np.ndarray:
    """``(D,)`` L2-normalised mean of ``(R, D)`` (or one ``(D,)``) identity embeddings."""
    e = np.asarray(embeddings, np.float64)
    if e.ndim == 1:
        e = e[None]
    if e.ndim != 2 or len(e) == 0:
        raise ConfigError(f"embeddings must be (R, D) with R >= 1, got {_desc(np.asarray(embeddings))}")
    e = e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-12)
    mean = e.mean(axis=0)
    return mean / (np.linalg.norm(mean) + 1e-12)


def identity_similarity(embedding: np.ndarray, identity: np.ndarray) -> float:
    """Cosine similarity of a face's ``(D,)`` embedding to an identity.

    Args:
        embedding: ``(D,)`` embedding of the face (any norm).
        identity: ``(D,)`` embedding or ``(R, D)`` embeddings of one person (their normalised
            mean is used, so many reference faces count as one identity).

    Returns:
        Similarity in [-1, 1]; 1 = the same direction. With dlib's ResNet embeddings two photos of
        one person are usually above 0.92 and different people below 0.92.
    """
    return cosine_similarity(embedding, identity_centroid(identity))


# ------------------------------------------------------------------------------------ expression
def interocular_distance(landmarks: np.ndarray) -> float:
    """Distance in pixels between the eye centres (means of points 36..41 and 42..47) of ``(68, 2)`` landmarks."""
    pts = np.asarray(landmarks, np.float64)
    if pts.shape != (68, 2):
        raise ConfigError(f"landmarks must be (68, 2), got {_desc(pts)}")
    return float(np.linalg.norm(pts[LEFT_EYE].mean(axis=0) - pts[RIGHT_EYE].mean(axis=0)))


def _reference_iod(reference: np.ndarray) -> float:
    iod = interocular_distance(reference)
    if iod <= 1e-6:
        raise ConfigError("reference landmarks have coincident eyes; cannot normalise the landmark error")
    return iod


def landmark_error(reference: np.ndarray, measured: np.ndarray) -> float:
    """Mean point distance between two ``(68, 2)`` landmark sets, in inter-ocular distances.

    Args:
        reference: the plate face's landmarks (its inter-ocular distance is the unit).
        measured: the swapped face's landmarks, same pixels.

    Returns:
        Error >= 0 (0 = identical; 0.08 is about the spread of a landmark fitter on one face).

    Raises:
        ConfigError: bad shapes, or eyes that coincide.
    """
    ref = np.asarray(reference, np.float64)
    got = np.asarray(measured, np.float64)
    if got.shape != (68, 2):
        raise ConfigError(f"landmarks must be (68, 2), got {_desc(got)}")
    iod = _reference_iod(ref)
    return float(np.linalg.norm(got - ref, axis=1).mean() / iod)


def shape_gap(reference: np.ndarray, candidates: np.ndarray) -> float:
    """How close the src person's own faces come to the plate face's shape: the smallest
    :func:`landmark_error` of a candidate after the least-squares similarity onto ``reference``.

    A swap that paints one of these src faces, placed anywhere, scores about this; only a model that
    also moves src's features to the plate's expression and pose can do better. Identity (face
    proportions) and expressions or poses the src faces lack both count.

    Args:
        reference: ``(68, 2)`` landmarks of the plate face.
        candidates: ``(K, 68, 2)`` (or one ``(68, 2)``) landmarks of src faces, any pixels.

    Returns:
        Error >= 0 in inter-ocular distances of ``reference`` (0: a src face has exactly its shape).
    """
    shapes = np.asarray(candidates, np.float64)
    if shapes.shape == (68, 2):
        shapes = shapes[None]
    if shapes.ndim != 3 or shapes.shape[1:] != (68, 2) or not len(shapes):
        raise ConfigError(f"candidate landmarks must be (K, 68, 2) with K >= 1, got {_desc(shapes)}")
    ref = np.asarray(reference, np.float64)
    iod = _reference_iod(ref)
    # The least-squares similarity (Umeyama, no reflection) in complex form, for all K at once:
    # with centred points z (candidate) and w (reference), w ~ a·z where a = Σ conj(z)·w / Σ |z|².
    z = shapes[..., 0] + 1j * shapes[..., 1]
    w = ref[:, 0] + 1j * ref[:, 1]
    zc, wc = z - z.mean(axis=1, keepdims=True), w - w.mean()
    power = (np.abs(zc) ** 2).sum(axis=1)
    a = (np.conj(zc) * wc).sum(axis=1) / np.where(power > 0, power, 1.0)
    return float((np.abs(a[:, None] * zc - wc).mean(axis=1) / iod).min())


# ---------------------------------------------------------------------------------------- stability
def face_corners(frame_from_face: np.ndarray, size: int) -> np.ndarray:
    """The four corners of a ``size``-pixel crop placed in the frame: ``(T, 4, 2)`` float64 pixels.

    Args:
        frame_from_face: ``(T, 2, 3)`` (or one ``(2, 3)``) affines, crop pixels -> frame pixels.
        size: crop side in pixels.
    """
    m = np.asarray(frame_from_face, np.float64)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[1:] != (2, 3):
        raise ConfigError(f"frame_from_face must be (T, 2, 3), got {_desc(m)}")
    if size < 1:
        raise ConfigError(f"crop size must be >= 1, got {size}")
    e = size - 1.0
    corners = np.array([[0.0, 0.0], [e, 0.0], [0.0, e], [e, e]])
    return np.einsum("tij,kj->tki", m[:, :, :2], corners) + m[:, None, :, 2]


def face_side(frame_from_face: np.ndarray, size: int) -> np.ndarray:
    """``(T,)`` side in frame pixels of the placed crop (``size`` times the affine's scale)."""
    m = np.asarray(frame_from_face, np.float64).reshape(-1, 2, 3)
    return size * np.sqrt(np.abs(np.linalg.det(m[:, :, :2])))


def jitter_per_frame(frame_from_face: np.ndarray, size: int) -> np.ndarray:
    """Per-frame placement noise of one track over consecutive frames.

    The crop's corners are placed in the frame at each frame; their second difference over time
    (``p[t+1] - 2 p[t] + p[t-1]``) is zero for a face moving at constant speed, scale and rotation,
    and ``sqrt(6)`` times the noise for independent per-frame noise. So the RMS of the second
    difference over corners and axes, divided by ``sqrt(6)`` and by the mean crop side, estimates
    the standard deviation of the placement noise as a fraction of the face crop's size.

    Args:
        frame_from_face: ``(T, 2, 3)`` affines of consecutive frames of one face track.
        size: crop side in pixels.

    Returns:
        ``(T,)`` float64; ``nan`` at the first and last frame (no second difference there).
    """
    corners = face_corners(frame_from_face, size)
    out = np.full(len(corners), np.nan)
    if len(corners) < 3:
        return out
    side = float(face_side(frame_from_face, size).mean())
    d2 = corners[2:] - 2 * corners[1:-1] + corners[:-2]  # (T-2, 4, 2)
    out[1:-1] = np.sqrt((d2**2).mean(axis=(1, 2)) / 6.0) / max(side, 1e-9)
    return out


def affine_jitter(frame_from_face: np.ndarray, size: int) -> float:
    """Jitter of one track's face placement: the RMS of :func:`jitter_per_frame` over the track.

    Args:
        frame_from_face: ``(T, 2, 3)`` affines of consecutive frames of one face track, T >= 3.
        size: crop side in pixels.

    Returns:
        Estimated standard deviation of per-frame placement noise, as a fraction of the face crop
        side (0.01 = 1% of the crop; 0 for a face moving smoothly). Independent noise of ``s``
        pixels on every corner measures ``s / side``.

    Raises:
        ConfigError: fewer than 3 frames or bad shapes.
    """
    per = jitter_per_frame(frame_from_face, size)
    if len(per) < 3:
        raise ConfigError(f"jitter needs at least 3 consecutive frames of a track, got {len(per)}")
    return float(np.sqrt(np.nanmean(per[1:-1] ** 2)))


def pooled_jitter(tracks: list[tuple[np.ndarray, int]]) -> float:
    """:func:`affine_jitter` over several tracks (or runs of consecutive frames), frame-weighted.

    Args:
        tracks: ``(frame_from_face (T, 2, 3), size)`` per run of consecutive frames; runs shorter
            than 3 frames are skipped.

    Returns:
        The RMS of every run's per-frame jitter; ``nan`` when no run has 3 frames.
    """
    values = [jitter_per_frame(m, s)[1:-1] for m, s in tracks if len(np.asarray(m).reshape(-1, 2, 3)) >= 3]
    values = [v for v in values if len(v)]
    if not values:
        return math.nan
    return float(np.sqrt(np.mean(np.concatenate(values) ** 2)))


def temporal_change(previous: np.ndarray, current: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute luma change between two frames inside a region.

    Args:
        previous, current: ``(H, W, 3)`` RGB frames (uint8 or float in [0, 1]).
        mask: ``(H, W)`` region (inside where >= 0.5).

    Returns:
        Mean ``|Y_current - Y_previous|`` in code values [0, 1] over the region; ``nan`` if it is empty.
    """
    a, b = luma(previous), luma(current)
    if a.shape != b.shape:
        raise ConfigError(f"frames differ in size: {a.shape} and {b.shape}")
    inside = _mask(mask, a.shape) >= 0.5
    if not inside.any():
        return math.nan
    return float(np.abs(b - a)[inside].mean())


def flicker_ratio(swap_changes: np.ndarray, plate_changes: np.ndarray) -> float:
    """Frame-to-frame change of the swapped face region relative to the plate's own change.

    Args:
        swap_changes: ``(N,)`` :func:`temporal_change` of the swapped frames (same regions).
        plate_changes: ``(N,)`` :func:`temporal_change` of the plate frames.

    Returns:
        ``sum(swap) / sum(plate)`` over pairs where both are finite: 1 = the swap changes as the
        plate does; above 1 = it flickers; ``nan`` without pairs or when the plate never changes.
    """
    s = np.asarray(swap_changes, np.float64)
    p = np.asarray(plate_changes, np.float64)
    if s.shape != p.shape:
        raise ConfigError(f"swap and plate changes differ in length: {s.shape} and {p.shape}")
    ok = np.isfinite(s) & np.isfinite(p)
    if not ok.any() or p[ok].sum() <= 0:
        return math.nan
    return float(s[ok].sum() / p[ok].sum())


# ------------------------------------------------------------------------------------- seams, colour
def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` float32 Sobel gradient magnitude of the luma, in code values per pixel."""
    y = luma(image)
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    return np.sqrt(gx * gx + gy * gy)


def seam_bands(mask: np.ndarray, band: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """The two regions :func:`seam_gradient_ratio` compares.

    Args:
        mask: ``(H, W)`` mask (inside where >= 0.5).
        band: half-width in pixels of the border band.

    Returns:
        ``(border, inner)`` boolean ``(H, W)``: ``border`` = pixels within ``band`` of the mask's
        edge on either side; ``inner`` = inside pixels between ``2 * band`` and ``6 * band`` from
        the edge (just inside, clear of the border band).
    """
    if band <= 0:
        raise ConfigError(f"seam band must be > 0 pixels, got {band}")
    m = np.asarray(mask)
    inside = _mask(m, m.shape[:2]) >= 0.5 if m.ndim == 2 else None
    if inside is None:
        raise ConfigError(f"mask must be (H, W), got {_desc(m)}")
    d_in, d_out = _distances(inside)
    border = (inside & (d_in <= band)) | (~inside & (d_out <= band))
    inner = inside & (d_in > 2 * band) & (d_in <= 6 * band)
    return border, inner


def seam_gradient_ratio(image: np.ndarray, mask: np.ndarray, *, band: float = 3.0) -> float:
    """Gradient energy along the mask border relative to just inside it.

    A composite whose face joins the plate invisibly has no more gradient on the mask's edge than
    in the face next to it (ratio about 1 or below); a hard seam (a step in colour or brightness
    along the edge) raises it.

    Args:
        image: ``(H, W, 3)`` RGB composite (uint8 or float in [0, 1]).
        mask: ``(H, W)`` blend mask of the swapped face (inside where >= 0.5).
        band: half-width in pixels of the border band (see :func:`seam_bands`).

    Returns:
        ``mean |∇Y|`` over the border band / ``mean |∇Y|`` over the inner band; ``nan`` when either
        band is empty (a mask too small or empty).
    """
    img = _image(image)
    border, inner = seam_bands(_mask(mask, img.shape[:2]), band)
    if not border.any() or not inner.any():
        return math.nan
    g = gradient_magnitude(img)
    return float(g[border].mean() / max(float(g[inner].mean()), 1e-6))


def ring_masks(mask: np.ndarray, *, width: float = 4.0, gap: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Rings of ``width`` pixels just inside and just outside a mask's edge, ``gap`` pixels off it.

    Returns:
        ``(inner, outer)`` boolean ``(H, W)``: inside pixels with ``gap < d <= gap + width`` from the
        edge, and outside pixels with the same distances.
    """
    if width <= 0 or gap < 0:
        raise ConfigError(f"ring width must be > 0 and gap >= 0 pixels, got {width} and {gap}")
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ConfigError(f"mask must be (H, W), got {_desc(m)}")
    inside = _mask(m, m.shape) >= 0.5
    d_in, d_out = _distances(inside)
    inner = inside & (d_in > gap) & (d_in <= gap + width)
    outer = ~inside & (d_out > gap) & (d_out <= gap + width)
    return inner, outer


def delta_e76(lab_a: np.ndarray, lab_b: np.ndarray) -> np.ndarray:
    """CIE76 colour difference: Euclidean distance between CIELAB triples (last axis), L in 0..100."""
    return np.linalg.norm(np.asarray(lab_a, np.float64) - np.asarray(lab_b, np.float64), axis=-1)


def to_lab(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float32 CIELAB (D65; L 0..100, a/b about ±100) of an sRGB image."""
    return cv2.cvtColor(_image(image), cv2.COLOR_RGB2LAB)


def border_delta_e(image: np.ndarray, mask: np.ndarray, *, width: float = 4.0, gap: float = 1.0,
                   sectors: int = 1, min_pixels: int = 8) -> float:
    """CIELAB ΔE76 between the mean colour of a ring just inside the mask and one just outside.

    Args:
        image: ``(H, W, 3)`` RGB composite (uint8 or float in [0, 1], sRGB).
        mask: ``(H, W)`` blend mask (inside where >= 0.5).
        width, gap: ring geometry in pixels (see :func:`ring_masks`).
        sectors: compare the rings per angular sector around the mask's centroid and average the
            sectors' ΔE (1 = one mean colour per ring); local sectors find a seam on one side that
            a whole-ring mean averages away.
        min_pixels: sectors with fewer pixels in either ring are skipped.

    Returns:
        ΔE76 >= 0 (about 2.3 is a just noticeable difference); ``nan`` if no sector has both rings.
    """
    img = _image(image)
    inner, outer = ring_masks(_mask(mask, img.shape[:2]), width=width, gap=gap)
    if sectors < 1:
        raise ConfigError(f"sectors must be >= 1, got {sectors}")
    if not inner.any() or not outer.any():
        return math.nan
    lab = to_lab(img)
    if sectors == 1:
        labels = np.zeros(img.shape[:2], np.int32)
    else:
        ys, xs = np.nonzero(np.asarray(mask) >= (0.5 if np.asarray(mask).dtype != np.uint8 else 128))
        cy, cx = ys.mean(), xs.mean()
        yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
        angle = np.arctan2(yy - cy, xx - cx)
        labels = np.minimum(((angle + np.pi) / (2 * np.pi) * sectors).astype(np.int32), sectors - 1)
    values = []
    for k in range(sectors):
        a, b = inner & (labels == k), outer & (labels == k)
        if a.sum() >= min_pixels and b.sum() >= min_pixels:
            inside, outside = lab[a].mean(axis=0, dtype=np.float64), lab[b].mean(axis=0, dtype=np.float64)
            values.append(float(delta_e76(inside, outside)))
    return float(np.mean(values)) if values else math.nan


# ----------------------------------------------------------------------------------- reconstruction
def reconstruction_scores(original: np.ndarray, reconstructed: np.ndarray) -> dict[str, float]:
    """SSIM and PSNR of reconstructed faces against the originals.

    Args:
        original: ``(N, R, R, 3)`` (or one ``(R, R, 3)``) RGB faces, uint8 or float in [0, 1].
        reconstructed: the model's reconstructions, same shape.

    Returns:
        ``{"ssim": mean SSIM in [-1, 1] (1 = identical), "psnr": mean PSNR in dB (inf when all are
        identical), "faces": N}``, per face then averaged (PSNR over the faces' mean squared errors).

    Raises:
        ConfigError: shapes differ, or scikit-image is not installed.
    """
    a = np.asarray(original)
    b = np.asarray(reconstructed)
    if a.ndim == 3 and b.ndim == 3:
        a, b = a[None], b[None]
    if a.shape != b.shape or a.ndim != 4 or a.shape[-1] != 3 or len(a) == 0:
        raise ConfigError(f"original and reconstructed faces must both be (N, R, R, 3), "
                          f"got {_desc(a)} and {_desc(b)}")
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        raise ConfigError("reconstruction scores need scikit-image: pip install scikit-image "
                          "(or pip install 'vfxswap[eval]')") from None
    fa = np.stack([_image(x) for x in a])
    fb = np.stack([_image(x) for x in b])
    win = min(7, a.shape[1], a.shape[2])
    win -= 1 - win % 2  # odd
    ssim = [structural_similarity(x, y, channel_axis=-1, data_range=1.0, win_size=win) for x, y in zip(fa, fb)]
    mse = ((fa.astype(np.float64) - fb) ** 2).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        psnr = np.where(mse > 0, 10 * np.log10(1.0 / np.maximum(mse, 1e-30)), np.inf)
    return {"ssim": float(np.mean(ssim)), "psnr": float(np.mean(psnr)), "faces": int(len(a))}


# -------------------------------------------------------------------------------------------- detail
def detail_energy(image: np.ndarray, mask: np.ndarray, *, side: int = DETAIL_SIDE, margin: float = 0.06) -> float:
    """High-frequency energy of a face: the variance of the Laplacian of the luma inside a mask.

    The region is first scaled so that the longer side of the mask's box is ``side`` pixels: the
    Laplacian then responds to detail at the scale of facial features (lashes, brows, lip edges,
    1/``side`` of the face) rather than to film grain, whatever the face's size in the plate.

    Args:
        image: ``(H, W, 3)`` RGB (uint8 or float in [0, 1]).
        mask: ``(H, W)`` face region (inside where >= 0.5).
        side: face size in pixels at which to measure.
        margin: the region is eroded by ``margin * side`` pixels first, so that the mask's edge
            (where the swap meets the plate) does not count.

    Returns:
        Variance of the 4-neighbour Laplacian (code values in [0, 1]) over the eroded region, >= 0;
        ``nan`` when the region is empty.
    """
    y = luma(image)
    inside = _mask(mask, y.shape) >= 0.5
    if not inside.any():
        return math.nan
    ys, xs = np.nonzero(inside)
    pad = 2
    y0, y1 = max(0, ys.min() - pad), min(y.shape[0], ys.max() + 1 + pad)
    x0, x1 = max(0, xs.min() - pad), min(y.shape[1], xs.max() + 1 + pad)
    scale = side / max(ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min())
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    grey = cv2.resize(np.ascontiguousarray(y[y0:y1, x0:x1]), size, interpolation=interp)
    region = cv2.resize(inside[y0:y1, x0:x1].astype(np.float32), size, interpolation=cv2.INTER_LINEAR) >= 0.5
    k = int(round(margin * side))
    if k > 0:
        region = cv2.erode(region.astype(np.uint8), np.ones((2 * k + 1, 2 * k + 1), np.uint8)).astype(bool)
    if not region.any():
        return math.nan
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REPLICATE)
    return float(lap[region].astype(np.float64).var())


def detail_ratio(swapped: np.ndarray, plate: np.ndarray, mask: np.ndarray, *, side: int = DETAIL_SIDE,
                 margin: float = 0.06) -> float:
    """Face detail of the swap relative to the plate face: :func:`detail_energy` swap / plate.

    Both are measured in the same region at the same scale. A sharp face scores about 1 (the plate
    itself exactly 1, another sharp face roughly 0.7..1.4); a blurred one far less (a Gaussian blur
    of 2% of the face side about 0.2, a 64 px face blown up to 300 px about 0.3).

    Args:
        swapped, plate: ``(H, W, 3)`` RGB frames (or crops) of one size.
        mask: ``(H, W)`` the swapped face's region (inside where >= 0.5).
        side, margin: see :func:`detail_energy`.

    Returns:
        Ratio >= 0; ``nan`` when the region is empty or the plate face has no detail at all.
    """
    if np.shape(swapped) != np.shape(plate):
        raise ConfigError(f"swap and plate differ in size: {_desc(swapped)} and {_desc(plate)}")
    ref = detail_energy(plate, mask, side=side, margin=margin)
    if not math.isfinite(ref) or ref <= 1e-12:
        return math.nan
    return detail_energy(swapped, mask, side=side, margin=margin) / ref


# ----------------------------------------------------------------------------------- face found
def face_in_mask(landmarks: np.ndarray | list[np.ndarray], mask: np.ndarray) -> int | None:
    """Which of the faces detected in an image is the one in a mask region.

    Args:
        landmarks: ``(K, 68, 2)`` landmarks of the detected faces (pixels of the mask), K >= 0.
        mask: ``(H, W)`` region (inside where >= 0.5).

    Returns:
        Index of the largest face (the side of its landmarks' bounding square) whose landmarks'
        centre lies inside the region, or ``None`` when none does (no face found there).
    """
    inside = _mask(np.asarray(mask), np.shape(mask)[:2]) >= 0.5 if np.ndim(mask) == 2 else None
    if inside is None:
        raise ConfigError(f"mask must be (H, W), got {_desc(mask)}")
    best, best_size = None, -1.0
    for k, pts in enumerate(landmarks):
        pts = np.asarray(pts, np.float64)
        cx, cy = pts.mean(axis=0)
        ix, iy = int(round(cx)), int(round(cy))
        if 0 <= iy < inside.shape[0] and 0 <= ix < inside.shape[1] and inside[iy, ix]:
            size = float((pts.max(axis=0) - pts.min(axis=0)).max())
            if size > best_size:
                best, best_size = k, size
    return best


# -------------------------------------------------------------------------------------- expression
def mouth_opening(landmarks: np.ndarray) -> float:
    """Mouth opening of ``(68, 2)`` landmarks: the mean inner-lip gap (61-67, 62-66, 63-65) in
    inter-ocular distances (0 = closed, about 0.3..0.6 wide open)."""
    pts = np.asarray(landmarks, np.float64)
    iod = _reference_iod(pts)
    return float(np.mean([np.linalg.norm(pts[a] - pts[b]) for a, b in INNER_LIPS]) / iod)


def eye_opening(landmarks: np.ndarray) -> float:
    """Eye opening of ``(68, 2)`` landmarks: the eye aspect ratio (Soukupová and Čech 2016),
    ``(|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)`` averaged over both eyes (about 0.3 open, < 0.15
    closed)."""
    pts = np.asarray(landmarks, np.float64)
    if pts.shape != (68, 2):
        raise ConfigError(f"landmarks must be (68, 2), got {_desc(pts)}")
    ratios = []
    for p1, p2, p3, p4, p5, p6 in EYES:
        width = np.linalg.norm(pts[p1] - pts[p4])
        height = np.linalg.norm(pts[p2] - pts[p6]) + np.linalg.norm(pts[p3] - pts[p5])
        ratios.append(height / (2 * width) if width > 1e-9 else math.nan)
    return float(np.mean(ratios))


def expression_correlation(swap: np.ndarray, plate: np.ndarray, *, min_frames: int = 5,
                           min_std: float = 1e-6) -> float | None:
    """How well a swap follows the plate's expression: the Pearson correlation over time of an
    expression series (e.g. :func:`mouth_opening` per frame), swap vs plate.

    Args:
        swap, plate: ``(T,)`` values per frame of one face track; NaN where not measured.
        min_frames: fewest frames with both values.
        min_std: the plate's series must vary more than this (a still face has nothing to follow).

    Returns:
        Correlation in [-1, 1] (1 = follows exactly, up to scale and offset); 0 when the swap does
        not move at all; ``None`` with fewer than ``min_frames`` pairs or a still plate.
    """
    s = np.asarray(swap, np.float64).ravel()
    p = np.asarray(plate, np.float64).ravel()
    if s.shape != p.shape:
        raise ConfigError(f"swap and plate series differ in length: {s.shape} and {p.shape}")
    ok = np.isfinite(s) & np.isfinite(p)
    s, p = s[ok], p[ok]
    if len(s) < max(2, min_frames) or p.std() <= min_std:
        return None
    if s.std() <= min_std:
        return 0.0
    return float(np.clip(np.corrcoef(s, p)[0, 1], -1.0, 1.0))


def landmark_jitter_per_frame(landmarks: np.ndarray) -> np.ndarray:
    """Per-frame landmark noise of one face track: the RMS over the 68 points of the second
    difference ``p[t+1] - 2 p[t] + p[t-1]``, divided by ``sqrt(6)`` and the track's mean
    inter-ocular distance (as :func:`jitter_per_frame` does for the crop corners).

    Args:
        landmarks: ``(T, 68, 2)`` landmarks of consecutive frames, frame pixels.

    Returns:
        ``(T,)`` float64 in inter-ocular distances; ``nan`` at the first and last frame.
    """
    pts = np.asarray(landmarks, np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (68, 2):
        raise ConfigError(f"landmarks must be (T, 68, 2), got {_desc(pts)}")
    out = np.full(len(pts), np.nan)
    if len(pts) < 3:
        return out
    iod = float(np.mean([interocular_distance(p) for p in pts]))
    d2 = pts[2:] - 2 * pts[1:-1] + pts[:-2]
    out[1:-1] = np.sqrt((d2 ** 2).mean(axis=(1, 2)) / 6.0) / max(iod, 1e-9)
    return out


def landmark_jitter(tracks: list[np.ndarray]) -> float:
    """Landmark jitter of one or more tracks: the RMS of :func:`landmark_jitter_per_frame` over
    every run of >= 3 consecutive frames (frame-weighted).

    Args:
        tracks: ``(T, 68, 2)`` landmarks per run of consecutive frames (shorter runs are skipped).

    Returns:
        Estimated per-frame landmark noise in inter-ocular distances (0 = moving smoothly);
        ``nan`` when no run has 3 frames.
    """
    values = [landmark_jitter_per_frame(t)[1:-1] for t in tracks if len(t) >= 3]
    values = [v for v in values if len(v)]
    if not values:
        return math.nan
    return float(np.sqrt(np.mean(np.concatenate(values) ** 2)))


def jitter_ratio(swap_tracks: list[np.ndarray], plate_tracks: list[np.ndarray]) -> float:
    """The swap's landmark jitter relative to the plate's own landmark motion beyond its smooth
    path (which includes the landmark fitter's noise on the real face).

    Args:
        swap_tracks, plate_tracks: ``(T, 68, 2)`` landmarks per run, the swap's and the plate's of
            the same frames (see :func:`landmark_jitter`).

    Returns:
        :func:`landmark_jitter` swap / plate: about 1 = as steady as the plate, above 1 = the swapped
        face's features shake; ``nan`` without runs of 3 frames or when the plate is perfectly still.
    """
    plate = landmark_jitter(plate_tracks)
    if not math.isfinite(plate) or plate <= 1e-12:
        return math.nan
    return landmark_jitter(swap_tracks) / plate


def unit_distance(similarity: float) -> float:
    """Euclidean distance in [0, 2] of two unit embeddings with this cosine similarity,
    ``sqrt(2 - 2 s)`` (dlib's "same person" threshold is a distance of about 0.6)."""
    return math.sqrt(max(0.0, 2.0 - 2.0 * float(similarity)))
