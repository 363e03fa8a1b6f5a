"""Colour matching of the swapped face to the plate, with optional temporal smoothing.

Every function here is pure: it takes arrays and returns arrays, and reads no files, environment or
globals. Images are aligned face crops of one size, ``(S, S, 3)`` RGB, float32 in [0, 1] in the
model's colour space (display-referred sRGB); ``uint8`` is accepted too and scaled by 1/255. The
*source* is the swapped face to recolour, the *target* the plate's face in the same crop, and the
mask ``(S, S)`` (float in [0, 1]; ``uint8`` masks use ``> 127``) marks the face: statistics are taken
over ``mask > 0.5`` only, in both images, so background, hair and occluders outside the mask never
sway them. The transfer itself is applied to every pixel of the source (the blend mask decides what
is kept); results are float32 clipped to [0, 1].

Methods (registered in :data:`COLOR_METHODS`; times per 256² face with a whole-face mask on a 2-core
CPU VM; the parametric ones take about a third of that at 128²):

===========  ==========================================================================  ==========
``rct``      Reinhard et al. 2001: per-channel mean and std in CIELAB.                   ~2 ms
``lct``      Linear colour transfer (DeepFaceLab ``linear_color_transfer``, ``pca``):    ~1 ms
             mean and covariance in RGB through symmetric matrix square roots.
``mkl``      Monge–Kantorovich linear map (Pitié & Kokaram 2007), the optimal-transport  ~1 ms
             affine map between the two Gaussians: mean and covariance in RGB.
``hist``     Per-channel histogram (quantile) matching in RGB, 256 quantiles.            ~3 ms
``idt``      Iterative distribution transfer (Pitié et al. 2005/2007): random            ~25 ms
             rotations, 1-D matching along each rotated axis, repeated.
``sot``      Sliced optimal transport (Rabin/Bonneel): random 3-D directions,            ~50 ms
             sort-matching of projections, averaged steps, repeated.
``none``     Identity.                                                                   ~0.1 ms
===========  ==========================================================================  ==========

The parametric methods (``rct``, ``lct``, ``mkl``, ``hist``, ``none``) split into
:meth:`ParametricColorMethod.estimate` (the statistics of both images, a :class:`ColorParams`) and
:meth:`ParametricColorMethod.apply` (build the transfer from statistics and recolour). That split is
what :class:`ColorSmoother` uses to average the plate's statistics over a face track's last frames
(``--color-smooth N``), so the match does not flicker with grain, compression noise or mask jitter.
``idt`` and ``sot`` are iterative and non-parametric (their result is not a function of a few
statistics), so they cannot be smoothed over time; they draw their random directions from a seeded
generator, so a call is deterministic and every frame uses the same directions.

The CIELAB helpers used for training augmentation (:func:`lab_stats`, :func:`transfer_lab_stats`,
:func:`color_transfer_rct`) live here too; :mod:`vfxswap.train.augment` re-exports them.
"""

from __future__ import annotations

import functools
import logging
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar

import cv2
import numpy as np

from ..errors import ConfigError
from ..registry import Registry

log = logging.getLogger(__name__)

#: Fewer masked pixels than this and a frame's colour match is the identity (nothing to measure).
MIN_PIXELS = 16
#: Floor on covariance eigenvalues for ``lct``/``mkl`` (RGB units², i.e. a std of 1e-3 ≈ 0.26/255).
_EIG_FLOOR = 1e-6
#: Entries of the 1-D lookup tables that apply ``hist``/``idt``/``sot`` maps (linear in between).
_LUT_SIZE = 2048


# --------------------------------------------------------------------------------------------------
# Shared pixel helpers (also used by vfxswap.train.augment)
# --------------------------------------------------------------------------------------------------

def _to_float(image: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 or float32 RGB image as float32 (uint8 scaled to [0, 1]); float32 is not copied."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(f"expected an (H, W, 3) RGB image, got {_describe(image)}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) * np.float32(1 / 255)
    if image.dtype == np.float32:
        return image
    raise ConfigError(f"expected a uint8 or float32 RGB image, got {image.dtype}")


def _like(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 RGB (any range) back to ``dtype``, clipped to the valid range (float32 is clipped in place)."""
    if dtype == np.uint8:
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.clip(out, 0.0, 1.0, out=out)


def _channel_affine(image: np.ndarray, gain, bias) -> np.ndarray:
    """``image * gain + bias`` per channel of an ``(H, W, 3)`` float32 image, in one OpenCV pass."""
    m = np.zeros((3, 4), np.float32)
    m[[0, 1, 2], [0, 1, 2]] = gain
    m[:, 3] = bias
    return cv2.transform(image, m)


def _mask_bool(mask: np.ndarray) -> np.ndarray:
    """``mask > 0.5`` (``> 127`` for uint8 masks) as a bool array."""
    return (mask > 127) if mask.dtype == np.uint8 else (mask > 0.5)


def _binary(mask: np.ndarray | None) -> np.ndarray | None:
    """A uint8 0/1 mask for OpenCV's statistics (uint8 masks: > 127, others: > 0.5); ``None`` if empty."""
    if mask is None:
        return None
    m = _mask_bool(mask).astype(np.uint8)
    return m if m.any() else None


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    return type(x).__name__


# --------------------------------------------------------------------------------------------------
# CIELAB statistics (Reinhard) — the training augmentation uses these as well
# --------------------------------------------------------------------------------------------------

def lab_stats(image: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of an RGB image in CIELAB, over ``mask > 0.5`` (all pixels if ``None``).

    Args:
        image: ``(H, W, 3)`` RGB, uint8 or float32 in [0, 1].
        mask: ``(H, W)`` mask (any dtype; uint8 masks use ``> 127``), or ``None``.

    Returns:
        ``(mean, std)``, each ``(3,)`` float64 in LAB units (L 0..100, a/b about ±100).
    """
    lab = cv2.cvtColor(_to_float(image), cv2.COLOR_RGB2LAB)
    mean, std = cv2.meanStdDev(lab, mask=_binary(mask))
    return mean.ravel(), std.ravel()


def color_transfer_rct(source: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None,
                       target_mask: np.ndarray | None = None) -> np.ndarray:
    """Reinhard colour transfer: give ``source`` the LAB mean and std of ``target``.

    Reinhard et al., "Color transfer between images", 2001 (DeepFaceLab's ``rct``). Statistics are
    taken over the masks where given, so the background does not sway them; the transfer is applied
    to the whole of ``source``. (The converter uses the ``rct`` entry of :data:`COLOR_METHODS`.)

    Args:
        source: ``(H, W, 3)`` RGB to recolour, uint8 or float32 in [0, 1].
        target: ``(H', W', 3)`` RGB whose colours to take, uint8 or float32 in [0, 1].
        mask: ``(H, W)`` region of ``source`` for its statistics (also used for ``target`` when
            ``target_mask`` is ``None`` and the shapes match), or ``None`` for all pixels.
        target_mask: ``(H', W')`` region of ``target`` for its statistics, or ``None``.

    Returns:
        The recoloured ``source``, same shape and dtype, clipped to the valid range.
    """
    if target_mask is None and mask is not None and mask.shape == target.shape[:2]:
        target_mask = mask
    mean, std = lab_stats(target, target_mask)
    return transfer_lab_stats(source, mean, std, mask)


def transfer_lab_stats(source: np.ndarray, mean: np.ndarray, std: np.ndarray,
                       mask: np.ndarray | None = None) -> np.ndarray:
    """Give ``source`` a LAB ``mean`` and ``std`` (from :func:`lab_stats`); the core of RCT.

    Args:
        source: ``(H, W, 3)`` RGB, uint8 or float32 in [0, 1].
        mean: ``(3,)`` target LAB mean.
        std: ``(3,)`` target LAB standard deviation.
        mask: ``(H, W)`` region of ``source`` for its own statistics, or ``None`` for all pixels.

    Returns:
        The recoloured ``source``, same shape and dtype, clipped to the valid range.
    """
    src_lab = cv2.cvtColor(_to_float(source), cv2.COLOR_RGB2LAB)
    mu_s, sd_s = (v.ravel() for v in cv2.meanStdDev(src_lab, mask=_binary(mask)))
    return _like(_lab_affine_to_rgb(src_lab, mu_s, sd_s, mean, std), source.dtype)


def lab_gain_bias(mu_s, sd_s, mean, std) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(gain, bias)`` (``(3,)`` float32 each) taking LAB statistics ``(mu_s, sd_s)`` to
    ``(mean, std)``: ``lab * gain + bias`` (the ``rct`` transfer; also used by the device path)."""
    gain = np.asarray(std, np.float64) / np.maximum(np.asarray(sd_s, np.float64), 1e-6)
    bias = np.asarray(mean, np.float64) - np.asarray(mu_s, np.float64) * gain
    return gain.astype(np.float32), bias.astype(np.float32)


def _lab_affine_to_rgb(src_lab: np.ndarray, mu_s, sd_s, mean, std) -> np.ndarray:
    """Map LAB statistics ``(mu_s, sd_s)`` to ``(mean, std)`` per channel; float32 RGB out, not clipped."""
    return cv2.cvtColor(_channel_affine(src_lab, *lab_gain_bias(mu_s, sd_s, mean, std)), cv2.COLOR_LAB2RGB)


# --------------------------------------------------------------------------------------------------
# Parameters and the method interface
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ColorParams:
    """The statistics a parametric colour method estimated from one frame.

    Attributes:
        method: name of the method that made them (``apply`` refuses another method's parameters).
        source: statistics of the swapped face (e.g. ``{"mean": (3,), "cov": (3, 3)}``), float64.
        target: the same statistics of the plate's face, same keys and shapes. :class:`ColorSmoother`
            averages these over frames; averaging is meaningful for every method (LAB means/stds,
            RGB means/covariances, quantile functions — the mean of 1-D quantile functions is the
            Wasserstein barycentre of the distributions).
        pixels: number of masked pixels measured; below :data:`MIN_PIXELS` the params are unusable
            and :meth:`ParametricColorMethod.apply` returns the source unchanged.
    """

    method: str
    source: Mapping[str, np.ndarray] = field(default_factory=dict)
    target: Mapping[str, np.ndarray] = field(default_factory=dict)
    pixels: int = 0

    def __post_init__(self) -> None:
        if set(self.source) != set(self.target):
            raise ConfigError(f"ColorParams source and target need the same keys, got "
                              f"{sorted(self.source)} and {sorted(self.target)}")
        for key, value in self.source.items():
            if np.shape(value) != np.shape(self.target[key]):
                raise ConfigError(f"ColorParams {key!r}: source shape {np.shape(value)} differs from "
                                  f"target shape {np.shape(self.target[key])}")

    @property
    def usable(self) -> bool:
        """Whether enough pixels were measured for a transfer (otherwise it is the identity)."""
        return self.pixels >= MIN_PIXELS

    def __repr__(self) -> str:
        def shapes(d: Mapping[str, np.ndarray]) -> str:
            return "{" + ", ".join(f"{k}: {np.shape(v)}" for k, v in d.items()) + "}"

        return (f"ColorParams(method={self.method!r}, pixels={self.pixels}, source={shapes(self.source)}, "
                f"target={shapes(self.target)})")


class ColorMethod(ABC):
    """A colour-transfer method: recolour ``source`` so its masked statistics match ``target``'s."""

    #: Registry name (set by :func:`_register`).
    name: ClassVar[str] = ""
    #: Whether the method splits into ``estimate``/``apply`` (and so supports temporal smoothing).
    parametric: ClassVar[bool] = False

    @abstractmethod
    def transfer(self, source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Recolour ``source`` toward ``target`` over ``mask``.

        Args:
            source: ``(S, S, 3)`` float32 RGB in [0, 1] (uint8 accepted), the swapped face.
            target: ``(S, S, 3)`` float32 RGB in [0, 1] (uint8 accepted), the plate's face, same crop.
            mask: ``(S, S)`` float in [0, 1] (uint8: ``> 127``); statistics use ``mask > 0.5`` only.

        Returns:
            ``(S, S, 3)`` float32 RGB clipped to [0, 1], the whole source recoloured.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ParametricColorMethod(ColorMethod):
    """A method whose transfer is a function of per-image statistics: ``apply(source, estimate(...))``."""

    parametric: ClassVar[bool] = True

    def estimate(self, source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> ColorParams:
        """Measure both images over ``mask > 0.5``.

        Args:
            source, target, mask: as :meth:`ColorMethod.transfer`.

        Returns:
            The statistics; unusable (``pixels < MIN_PIXELS``, empty dicts) when the mask is (nearly) empty.
        """
        src, tgt, idx = _prepare(source, target, mask)
        if idx.size < MIN_PIXELS:
            log.debug("colour %s: %d masked pixels, leaving the face as is", self.name, idx.size)
            return ColorParams(self.name, {}, {}, int(idx.size))
        return ColorParams(self.name, self.stats(src, idx), self.stats(tgt, idx), int(idx.size))

    def apply(self, source: np.ndarray, params: ColorParams) -> np.ndarray:
        """Recolour ``source`` with the transfer from ``params.source`` to ``params.target`` statistics.

        Args:
            source: ``(S, S, 3)`` float32 RGB in [0, 1] (uint8 accepted).
            params: from :meth:`estimate` of this method (possibly with smoothed ``target``).

        Returns:
            ``(S, S, 3)`` float32 RGB clipped to [0, 1]; a clipped copy of ``source`` when the
            params are not usable.
        """
        if not isinstance(params, ColorParams) or params.method != self.name:
            got = params.method if isinstance(params, ColorParams) else _describe(params)
            raise ConfigError(f"colour method {self.name!r} cannot apply parameters of {got!r}")
        src = _to_float(source)
        if not params.usable:
            return np.clip(src, 0.0, 1.0)
        out = self.apply_stats(src, params.source, params.target)
        return np.clip(out, 0.0, 1.0, out=out)

    def transfer(self, source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.apply(source, self.estimate(source, target, mask))

    @abstractmethod
    def stats(self, image: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
        """One image's statistics over the flat pixel ``index`` (``(N,)`` int64, N >= MIN_PIXELS).

        Args:
            image: ``(S, S, 3)`` float32 RGB.
            index: flat indices (into ``S*S``) of the masked pixels.

        Returns:
            A dict of float64 arrays.
        """

    @abstractmethod
    def apply_stats(self, image: np.ndarray, source: Mapping[str, np.ndarray],
                    target: Mapping[str, np.ndarray]) -> np.ndarray:
        """Recolour ``image`` (``(S, S, 3)`` float32) by the map from ``source`` to ``target``
        statistics; returns a new float32 array (it may be written to), not yet clipped."""


#: Colour methods by name; values are factories (the classes) returning a :class:`ColorMethod`.
COLOR_METHODS: Registry[Callable[..., ColorMethod]] = Registry("colour method")


def _register(name: str):
    """Register a :class:`ColorMethod` subclass under ``name`` and set its ``name``."""

    def decorate(cls):
        cls.name = name
        return COLOR_METHODS.register(name)(cls)

    return decorate


def color_method(method: str | ColorMethod) -> ColorMethod:
    """The method registered as ``method`` (default options), or ``method`` itself if it is one.

    Raises:
        ConfigError: an unknown name (the message lists the valid ones) or another type.
    """
    if isinstance(method, ColorMethod):
        return method
    if not isinstance(method, str):
        raise ConfigError(f"a colour method is a name ({', '.join(COLOR_METHODS.names())}), got {_describe(method)}")
    instance = COLOR_METHODS.get(method)()
    if not isinstance(instance, ColorMethod):
        raise ConfigError(f"colour method {method!r} is registered but made a {_describe(instance)}, "
                          f"not a ColorMethod")
    return instance


def smoothable_methods() -> list[str]:
    """Names of the registered methods that support temporal smoothing (the parametric ones)."""
    names = []
    for name in COLOR_METHODS.names():
        factory = COLOR_METHODS.get(name)
        if getattr(factory, "parametric", False):
            names.append(name)
    return names


def match_color(method: str | ColorMethod, source: np.ndarray, target: np.ndarray,
                mask: np.ndarray) -> np.ndarray:
    """Recolour ``source`` so its masked colour statistics match ``target``'s (one frame, no smoothing).

    Args:
        method: a name registered in :data:`COLOR_METHODS` (``rct``, ``lct``, ``mkl``, ``idt``, ``sot``,
            ``hist``, ``none``) or a :class:`ColorMethod` instance.
        source: ``(S, S, 3)`` float32 RGB in [0, 1] (uint8 accepted), the swapped face.
        target: ``(S, S, 3)`` float32 RGB in [0, 1] (uint8 accepted), the plate's face, same crop.
        mask: ``(S, S)`` float in [0, 1]; only ``mask > 0.5`` pixels enter the statistics.

    Returns:
        ``(S, S, 3)`` float32 RGB clipped to [0, 1].

    Raises:
        ConfigError: unknown method, or images/mask of the wrong shape or dtype.
    """
    return color_method(method).transfer(source, target, mask)


# --------------------------------------------------------------------------------------------------
# Input checks and 1-D mapping machinery
# --------------------------------------------------------------------------------------------------

def _prepare(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked float32 images and the flat indices of ``mask > 0.5``."""
    src, tgt = _to_float(source), _to_float(target)
    if src.shape != tgt.shape:
        raise ConfigError(f"colour match needs source and target crops of one shape, got {src.shape} and {tgt.shape}")
    if not isinstance(mask, np.ndarray) or mask.shape != src.shape[:2]:
        raise ConfigError(f"colour match needs an {src.shape[:2]} mask, got {_describe(mask)}")
    return src, tgt, np.flatnonzero(_mask_bool(mask))


def _channels_first(image: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """``(3, N)`` float32 contiguous pixels of an ``(H, W, 3)`` image (all, or those at flat ``index``)."""
    flat = image.reshape(-1, 3)
    if index is not None:
        flat = np.take(flat, index, axis=0)
    return np.ascontiguousarray(flat.T)


def _sorted_quantiles(sorted_rows: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles of each row of ``sorted_rows`` (``(C, N)``, ascending) at ``levels`` in [0, 1] (Hazen)."""
    n = sorted_rows.shape[1]
    pos = np.clip(levels * n - 0.5, 0.0, n - 1)
    i0 = np.minimum(pos.astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    f = pos - i0
    rows = sorted_rows.astype(np.float64, copy=False)
    return rows[:, i0] * (1.0 - f) + rows[:, i1] * f


def _map_rows(values: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Apply one monotone piecewise-linear map per row: ``values[r] -> interp(values[r], xp[r], fp[r])``.

    Between ``xp[r, 0]`` and ``xp[r, -1]`` the map is sampled into a :data:`_LUT_SIZE` table and read
    with linear interpolation (``cv2.remap``, ~10× faster than ``np.interp`` per pixel); outside it
    continues with slope 1, so values beyond the measured range keep their detail. A row's result
    depends only on that value and the knots.

    Args:
        values: ``(R, H, W)`` float32 (H, W < 32767).
        xp: ``(R, K)`` non-decreasing knots.
        fp: ``(R, K)`` knot values.

    Returns:
        ``(R, H, W)`` float32.
    """
    r, h, w = values.shape
    lo, hi, lut = map_tables(xp, fp)
    lo32, hi32 = lo.astype(np.float32)[:, None, None], hi.astype(np.float32)[:, None, None]
    inside = np.clip(values, lo32, hi32)
    map_x = (inside - lo32) * ((_LUT_SIZE - 1) / (hi - lo)).astype(np.float32)[:, None, None]
    out = cv2.remap(lut, map_x.reshape(r * h, w), _row_map(r, h, w), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE).reshape(r, h, w)
    out += values
    out -= inside  # slope 1 beyond the knots
    return out


def map_tables(xp: np.ndarray, fp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lookup tables of :func:`_map_rows`: ``(lo (R,), hi (R,), lut (R, _LUT_SIZE) float32)``, row
    ``r`` sampling ``interp(x, xp[r], fp[r])`` evenly over ``[lo[r], hi[r]]`` (float64 bounds)."""
    lo = xp[:, 0].astype(np.float64)
    hi = np.maximum(xp[:, -1].astype(np.float64), lo + 1e-9)
    grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, _LUT_SIZE)[None, :]
    lut = np.stack([np.interp(grid[i], xp[i], fp[i]) for i in range(xp.shape[0])]).astype(np.float32)
    return lo, hi, lut


@functools.lru_cache(maxsize=8)
def _row_map(r: int, h: int, w: int) -> np.ndarray:
    """``map_y`` for :func:`_map_rows`: row block ``i`` of ``(r * h, w)`` reads LUT row ``i`` (read-only)."""
    m = np.repeat(np.arange(r, dtype=np.float32), h * w).reshape(r * h, w)
    m.flags.writeable = False
    return m


def _mix(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``matrix @ rows`` for a small ``(a, b)`` matrix and long ``(b, P)`` float32 rows.

    Written as ``b`` broadcast multiply-adds: a BLAS call for so skinny a product is no faster and,
    with its thread pool spinning against the pipeline's other threads, can be 10-50× slower.
    """
    m = np.asarray(matrix, np.float32)
    out = m[:, :1] * rows[0]
    for j in range(1, m.shape[1]):
        out += m[:, j:j + 1] * rows[j]
    return out


def _sqrtm(cov: np.ndarray, *, inverse: bool = False, floor: float = _EIG_FLOOR) -> np.ndarray:
    """Symmetric square root (or its inverse) of a symmetric ``(3, 3)`` matrix, eigenvalues floored at ``floor``."""
    w, v = np.linalg.eigh((cov + cov.T) / 2.0)
    w = np.maximum(w, floor)
    s = 1.0 / np.sqrt(w) if inverse else np.sqrt(w)
    return (v * s) @ v.T


def affine_coefficients(matrix: np.ndarray, mu_s: np.ndarray, mu_t: np.ndarray) -> np.ndarray:
    """``(3, 4)`` float32 ``[A | b]`` with ``A x + b = matrix @ (x - mu_s) + mu_t`` (the ``lct``/``mkl`` map)."""
    m = np.empty((3, 4), np.float32)
    m[:, :3] = matrix
    m[:, 3] = np.asarray(mu_t) - matrix @ np.asarray(mu_s)
    return m


def _affine_rgb(image: np.ndarray, matrix: np.ndarray, mu_s: np.ndarray, mu_t: np.ndarray) -> np.ndarray:
    """``matrix @ (x - mu_s) + mu_t`` for every RGB pixel ``x`` of ``image`` (float32 out)."""
    return cv2.transform(image, affine_coefficients(matrix, mu_s, mu_t))


def _rgb_moments(image: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
    """Mean ``(3,)`` and covariance ``(3, 3)`` (float64) of the RGB pixels at flat ``index``."""
    px = _channels_first(image, index)
    n = px.shape[1]
    mean = px.sum(axis=1, dtype=np.float64) / n
    d = px - mean.astype(np.float32)[:, None]  # centred first: the float32 product stays accurate
    s = d.sum(axis=1, dtype=np.float64) / n
    cov = (d @ d.T).astype(np.float64) / n - np.outer(s, s)
    return {"mean": mean + s, "cov": cov}


# --------------------------------------------------------------------------------------------------
# The methods
# --------------------------------------------------------------------------------------------------

@_register("none")
class NoColorTransfer(ParametricColorMethod):
    """Identity: the swapped face keeps its own colours."""

    def stats(self, image, index):
        return {}

    def apply_stats(self, image, source, target):
        return image.copy()


@_register("rct")
class ReinhardTransfer(ParametricColorMethod):
    """Reinhard et al. 2001: match per-channel mean and std in CIELAB (L 0..100, a/b about ±100).

    Params: ``mean`` and ``std``, each ``(3,)`` LAB.
    """

    def stats(self, image, index):
        lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
        m = np.zeros(image.shape[0] * image.shape[1], np.uint8)
        m[index] = 1
        mean, std = cv2.meanStdDev(lab, mask=m.reshape(image.shape[:2]))
        return {"mean": mean.ravel(), "std": std.ravel()}

    def apply_stats(self, image, source, target):
        lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
        return _lab_affine_to_rgb(lab, source["mean"], source["std"], target["mean"], target["std"])


@_register("lct")
class LinearTransfer(ParametricColorMethod):
    """Linear colour transfer (DeepFaceLab ``linear_color_transfer``, mode ``pca``).

    ``y = Ct^½ Cs^-½ (x - μs) + μt`` with symmetric (eigendecomposition) square roots, so the
    masked output has the target's RGB mean and covariance. Params: ``mean`` ``(3,)``, ``cov`` ``(3, 3)``.
    """

    def stats(self, image, index):
        return _rgb_moments(image, index)

    def apply_stats(self, image, source, target):
        return _affine_rgb(image, self.matrix(source, target), source["mean"], target["mean"])

    @staticmethod
    def matrix(source: Mapping[str, np.ndarray], target: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ``(3, 3)`` map ``Ct^½ Cs^-½`` of the source and target statistics."""
        return _sqrtm(target["cov"]) @ _sqrtm(source["cov"], inverse=True)


@_register("mkl")
class MongeKantorovichTransfer(ParametricColorMethod):
    """Monge–Kantorovich linear transfer (Pitié & Kokaram 2007).

    ``T = Cs^-½ (Cs^½ Ct Cs^½)^½ Cs^-½``, ``y = T (x - μs) + μt``: the affine map of least
    displacement that takes the source's RGB Gaussian to the target's, so colours move as little as
    possible (fewer hue swaps than ``lct``). Params: ``mean`` ``(3,)``, ``cov`` ``(3, 3)``.
    """

    def stats(self, image, index):
        return _rgb_moments(image, index)

    def apply_stats(self, image, source, target):
        return _affine_rgb(image, self.matrix(source, target), source["mean"], target["mean"])

    @staticmethod
    def matrix(source: Mapping[str, np.ndarray], target: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ``(3, 3)`` map ``T`` of the source and target statistics."""
        half = _sqrtm(source["cov"])
        inv_half = _sqrtm(source["cov"], inverse=True)
        # (its eigenvalues are variance², far below _EIG_FLOOR: only clip round-off negatives)
        return inv_half @ _sqrtm(half @ target["cov"] @ half, floor=0.0) @ inv_half


@_register("hist")
class HistogramTransfer(ParametricColorMethod):
    """Per-channel histogram matching in RGB through quantile functions.

    Each channel's map sends the source's ``k``-th quantile to the target's (``levels`` quantiles at
    ``(k + ½)/levels``, linear in between, slope 1 beyond the extremes). Params: ``quantiles``
    ``(3, levels)``.

    Args:
        levels: number of quantiles per channel (>= 2), default 256.
    """

    def __init__(self, levels: int = 256) -> None:
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ConfigError(f"hist colour transfer needs levels >= 2, got {levels!r}")
        self.levels = levels
        self._p = (np.arange(levels) + 0.5) / levels

    def stats(self, image, index):
        return {"quantiles": _sorted_quantiles(np.sort(_channels_first(image, index), axis=1), self._p)}

    def apply_stats(self, image, source, target):
        h, w, _ = image.shape
        planes = _channels_first(image).reshape(3, h, w)
        out = _map_rows(planes, source["quantiles"], target["quantiles"])
        return np.ascontiguousarray(out.reshape(3, -1).T).reshape(h, w, 3)

    def __repr__(self) -> str:
        return f"HistogramTransfer(levels={self.levels})"


class _SlicedTransfer(ColorMethod):
    """Shared engine of ``idt`` and ``sot``: repeated 1-D sort-matching along projections.

    Each step draws directions ``D`` (``(d, 3)`` unit rows), projects every source pixel, builds for
    each direction the monotone map that sends the sorted masked-source projections to the target's
    projections at the same ranks, and moves every pixel by ``step · Dᵀ (mapped - projected)``. At
    most ``samples`` masked pixels of each image (a seeded random subset) define the maps; all
    pixels are moved. Deterministic for a given ``seed``.
    """

    def __init__(self, iterations: int, seed: int, samples: int) -> None:
        for name, value, low in (("iterations", iterations, 1), ("samples", samples, MIN_PIXELS)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{self.name} colour transfer needs {name} >= {low}, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"{self.name} colour transfer needs an int seed, got {seed!r}")
        self.iterations = iterations
        self.seed = seed
        self.samples = samples

    @abstractmethod
    def _directions(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """The ``(d, 3)`` float32 directions of one step and the step size."""

    def transfer(self, source, target, mask):
        src, tgt, idx = _prepare(source, target, mask)
        if idx.size < MIN_PIXELS:
            return np.clip(src, 0.0, 1.0)
        rng = np.random.default_rng(self.seed)
        pick_s = idx if idx.size <= self.samples else np.sort(rng.choice(idx, self.samples, replace=False))
        pick_t = idx if idx.size <= self.samples else np.sort(rng.choice(idx, self.samples, replace=False))
        h, w, _ = src.shape
        pixels = _channels_first(src)                      # (3, P): every pixel moves
        tgt_samples = _channels_first(tgt, pick_t)         # (3, n_t): fixed
        n_s = pick_s.size
        ranks = (np.arange(n_s) + 0.5) / n_s
        for _ in range(self.iterations):
            dirs, step = self._directions(rng)
            proj = _mix(dirs, pixels)                      # (d, P)
            src_sorted = np.sort(proj[:, pick_s], axis=1)  # masked source samples, ascending
            tgt_sorted = np.sort(_mix(dirs, tgt_samples), axis=1)
            matched = _sorted_quantiles(tgt_sorted, ranks)  # target value at each source rank
            moved = _map_rows(proj.reshape(-1, h, w), src_sorted, matched).reshape(proj.shape)
            moved -= proj
            pixels += _mix(step * dirs.T, moved)
        out = np.ascontiguousarray(pixels.T).reshape(h, w, 3)
        return np.clip(out, 0.0, 1.0, out=out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(iterations={self.iterations}, seed={self.seed}, samples={self.samples})"


@_register("idt")
class IterativeDistributionTransfer(_SlicedTransfer):
    """Iterative distribution transfer (Pitié, Kokaram & Dahyot 2005/2007).

    Each iteration draws a random rotation of RGB space and matches the three rotated 1-D marginals
    (full step). Not parametric: no temporal smoothing. ~25 ms per 256² face with the defaults.

    Args:
        iterations: rotations (>= 1), default 10.
        seed: seed of the rotations and the pixel subset.
        samples: most masked pixels per image that define the 1-D maps (>= 16), default 8192.
    """

    def __init__(self, iterations: int = 10, seed: int = 0, samples: int = 8192) -> None:
        super().__init__(iterations, seed, samples)

    def _directions(self, rng):
        q, r = np.linalg.qr(rng.standard_normal((3, 3)))
        q *= np.sign(np.diag(r))  # Haar-distributed rotation (up to reflection, which 1-D matching ignores)
        return q.T.astype(np.float32), 1.0


@_register("sot")
class SlicedOTTransfer(_SlicedTransfer):
    """Sliced optimal transport (Rabin et al. 2011; Bonneel et al. 2015).

    Each iteration draws ``directions`` random unit vectors of RGB space, sort-matches the masked
    projections along each and moves the pixels by the average displacement (scaled by
    ``3 / directions``). Not parametric: no temporal smoothing. ~50 ms per 256² face with the defaults.

    Args:
        iterations: steps (>= 1), default 12.
        directions: random directions per step (>= 1), default 4.
        seed: seed of the directions and the pixel subset.
        samples: most masked pixels per image that define the 1-D maps (>= 16), default 8192.
    """

    def __init__(self, iterations: int = 12, directions: int = 4, seed: int = 0, samples: int = 8192) -> None:
        super().__init__(iterations, seed, samples)
        if isinstance(directions, bool) or not isinstance(directions, int) or directions < 1:
            raise ConfigError(f"sot colour transfer needs directions >= 1, got {directions!r}")
        self.directions = directions

    def _directions(self, rng):
        d = rng.standard_normal((self.directions, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return d.astype(np.float32), 3.0 / self.directions

    def __repr__(self) -> str:
        return (f"SlicedOTTransfer(iterations={self.iterations}, directions={self.directions}, "
                f"seed={self.seed}, samples={self.samples})")


# --------------------------------------------------------------------------------------------------
# Temporal smoothing
# --------------------------------------------------------------------------------------------------

class ColorSmoother:
    """Per-face-track colour matching with the plate's statistics averaged over the last frames.

    Each call measures this frame's statistics of the swapped face (``source``) and of the plate
    (``target``), replaces the target statistics by their mean over this frame and the previous
    ``window - 1`` frames of the same track (a causal moving mean), and applies the transfer. The
    swapped face's own statistics are always this frame's, so the masked output carries the
    window-averaged plate statistics exactly: grain, compression noise and mask jitter in the plate
    no longer flicker the face, and model-output flicker is removed as well. The cost of causality is
    a lag of ``(window - 1) / 2`` frames when the plate's colour really changes (a light switched
    on); keep ``window`` small (3–9 at 24 fps) and :meth:`reset` a track at a cut.

    Only parametric methods (:func:`smoothable_methods`) can be smoothed; ``window == 1`` works with
    every method and is :func:`match_color`. Frames of one track must arrive in order. Frames whose
    mask is (nearly) empty pass through unchanged and are not recorded; faces with ``track_id`` None
    are matched per frame. Thread-safe.

    Args:
        method: a name registered in :data:`COLOR_METHODS` or a :class:`ColorMethod`.
        window: frames averaged (>= 1).

    Raises:
        ConfigError: an unknown method, ``window < 1``, or ``window > 1`` with ``idt``/``sot``.
    """

    def __init__(self, method: str | ColorMethod, window: int = 1) -> None:
        self.method = color_method(method)
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ConfigError(f"colour smoothing window must be an int >= 1, got {window!r}")
        if window > 1 and not self.method.parametric:
            raise ConfigError(
                f"colour method {self.method.name!r} cannot be smoothed over time (--color-smooth {window}); "
                f"use --color-smooth 1, or a method that supports it: {', '.join(smoothable_methods())}")
        self.window = int(window)
        self._history: dict[Hashable, deque[Mapping[str, np.ndarray]]] = {}
        self._lock = threading.Lock()

    def __call__(self, source: np.ndarray, target: np.ndarray, mask: np.ndarray,
                 track_id: Hashable | None) -> np.ndarray:
        """Colour-match one face of one frame.

        Args:
            source: ``(S, S, 3)`` float32 RGB in [0, 1], the swapped face.
            target: ``(S, S, 3)`` float32 RGB in [0, 1], the plate's face, same crop.
            mask: ``(S, S)`` float in [0, 1]; statistics use ``mask > 0.5`` only.
            track_id: the face's track (history is kept per track); ``None``: no smoothing.

        Returns:
            ``(S, S, 3)`` float32 RGB clipped to [0, 1].
        """
        if self.window == 1 or track_id is None:
            return self.method.transfer(source, target, mask)
        method: ParametricColorMethod = self.method  # type: ignore[assignment]  # checked in __init__
        return method.apply(source, self.smooth(method.estimate(source, target, mask), track_id))

    def smooth(self, params: ColorParams, track_id: Hashable | None) -> ColorParams:
        """Record one frame's statistics for ``track_id`` and return them with the target statistics
        averaged over the track's window (the params themselves when ``window == 1``, ``track_id`` is
        None or they are unusable). For callers that estimate elsewhere (the device path)."""
        if self.window == 1 or track_id is None or not params.usable:
            return params
        with self._lock:
            history = self._history.setdefault(track_id, deque(maxlen=self.window))
            history.append(params.target)
            frames = list(history)
        if len(frames) > 1:
            target_stats = {k: np.mean([f[k] for f in frames], axis=0) for k in params.target}
            params = replace(params, target=target_stats)
        return params

    def reset(self, track_id: Hashable | None = None) -> None:
        """Forget one track's history (it ended, or a cut), or every track's when ``track_id`` is None."""
        with self._lock:
            if track_id is None:
                self._history.clear()
            else:
                self._history.pop(track_id, None)

    def __repr__(self) -> str:
        return f"ColorSmoother(method={self.method!r}, window={self.window}, tracks={len(self._history)})"
