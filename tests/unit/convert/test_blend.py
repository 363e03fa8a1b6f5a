"""Masks and compositing (vfxswap.convert.blend) on synthetic plates and patches."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vfxswap.convert.blend import (
    BLEND_METHODS,
    composite,
    face_mask,
    face_roi,
    matte,
    poisson_clone,
    warped_mask,
)
from vfxswap.errors import ConfigError
from vfxswap.faces.geometry import invert, transform_points

S = 64
FRAME = (200, 280)
CODE_MAX = {np.uint8: 255, np.uint16: 65535, np.float32: 1.0}
DTYPES = [np.uint8, np.uint16, np.float32]


def affine(scale: float = 1.5, angle: float = 15.0, centre: tuple[float, float] = (140.0, 100.0),
           size: int = S) -> np.ndarray:
    """``frame_from_face`` putting the crop centre at ``centre``, rotated and scaled."""
    a = np.deg2rad(angle)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = (size - 1) / 2.0
    t = np.asarray(centre) - rot @ np.array([c, c])
    return np.hstack([rot, t[:, None]])


def ellipse(size: int = S, rx: float = 0.32, ry: float = 0.40, down: float = 0.0) -> np.ndarray:
    """A hard elliptic 'hull', its centre ``down`` crop sides below the crop centre."""
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2.0
    cy = c + down * size
    return ((((xx - c) / (rx * size)) ** 2 + ((yy - cy) / (ry * size)) ** 2) <= 1.0).astype(np.float32)


def plate(dtype, shape=FRAME, seed: int = 0) -> np.ndarray:
    """Noisy plate; float32 plates are scene-linear with values up to 4."""
    rng = np.random.default_rng(seed)
    if dtype is np.float32:
        return (rng.random((*shape, 3)) * 4.0).astype(np.float32)
    return rng.integers(0, CODE_MAX[dtype] + 1, (*shape, 3)).astype(dtype)


def patch(size: int = S, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((size, size, 3), dtype=np.float32), (0, 0), 2.0)


def full_mask(mask: np.ndarray, m: np.ndarray, shape=FRAME) -> np.ndarray:
    sl, roi = warped_mask(mask, m, shape)
    out = np.zeros(shape, np.float32)
    out[sl] = roi
    return out


# ------------------------------------------------------------------------------------------- masks
class TestFaceMask:
    def test_sources_combine(self):
        hull = ellipse()
        learned = np.full((S, S), 0.5, np.float32)
        np.testing.assert_array_equal(face_mask(source="hull", hull=hull, learned=learned), hull)
        np.testing.assert_array_equal(face_mask(source="learned", hull=hull, learned=learned), learned)
        np.testing.assert_array_equal(face_mask(source="learned*hull", hull=hull, learned=learned), hull * 0.5)
        out = face_mask(source="learned", hull=hull, learned=learned[..., None])  # (S, S, 1) from a model head
        assert out.shape == (S, S) and out.dtype == np.float32

    def test_does_not_modify_inputs_and_clips(self):
        hull = ellipse()
        learned = np.full((S, S), 1.5, np.float32)
        out = face_mask(source="learned*hull", hull=hull, learned=learned, feather=4)
        assert out.max() <= 1.0 and out.min() >= 0.0
        assert (learned == 1.5).all() and set(np.unique(hull)) == {0.0, 1.0}

    def test_erode_shrinks_and_dilate_grows(self):
        hull = ellipse()
        base = face_mask(source="hull", hull=hull).sum()
        assert face_mask(source="hull", hull=hull, erode=3).sum() < base < face_mask(source="hull", hull=hull,
                                                                                     erode=-3).sum()

    def test_feather_softens_the_edge(self):
        hard = face_mask(source="hull", hull=ellipse())
        soft = face_mask(source="hull", hull=ellipse(), feather=6)
        assert ((soft > 0.02) & (soft < 0.98)).sum() > ((hard > 0.02) & (hard < 0.98)).sum()
        assert soft[S // 2, S // 2] == pytest.approx(1.0, abs=1e-3)

    def test_learned_missing_is_a_config_error(self):
        for source in ("learned", "learned*hull"):
            with pytest.raises(ConfigError, match="no mask head; use --mask hull"):
                face_mask(source=source, hull=ellipse())

    def test_bad_options_are_config_errors(self):
        with pytest.raises(ConfigError, match="hull, learned, learned\\*hull"):
            face_mask(source="bisenet", hull=ellipse())
        with pytest.raises(ConfigError, match="feather"):
            face_mask(source="hull", hull=ellipse(), feather=-1)
        with pytest.raises(ConfigError, match="shape"):
            face_mask(source="learned", hull=ellipse(), learned=np.ones((S, S + 1), np.float32))


# ---------------------------------------------------------------------------------- ROI and matte
class TestWarpedMask:
    def test_matches_a_full_frame_warp_inside_the_roi(self):
        mask, m = face_mask(source="hull", hull=ellipse(), feather=4), affine()
        full = cv2.warpAffine(mask, m, FRAME[::-1], flags=cv2.INTER_LINEAR)
        (rows, cols), roi = warped_mask(mask, m, FRAME)
        assert roi.dtype == np.float32 and roi.shape == (rows.stop - rows.start, cols.stop - cols.start)
        np.testing.assert_allclose(roi, full[rows, cols], atol=1e-3)
        outside = full.copy()
        outside[rows, cols] = 0
        assert outside.max() == 0  # nothing of the face lies outside the ROI

    def test_roi_is_the_padded_box_of_the_warped_crop(self):
        m = affine(scale=1.0, angle=0.0, centre=(100.0, 80.0))
        rows, cols = face_roi(m, S, FRAME)
        # crop edges at -0.5 .. 63.5 map to 68.0 .. 132.0 (x) and 48.0 .. 112.0 (y); 2 pixels of pad
        assert (cols.start, cols.stop, rows.start, rows.stop) == (66, 135, 46, 115)

    def test_face_outside_the_frame_has_an_empty_roi(self):
        (rows, cols), roi = warped_mask(ellipse(), affine(centre=(-300.0, 50.0)), FRAME)
        assert roi.size == 0 and cols.stop == cols.start


class TestMatte:
    def test_combines_faces_with_max(self):
        mask = face_mask(source="hull", hull=ellipse(), feather=4)
        faces = [(mask, affine(centre=(80.0, 100.0))), (mask * 0.5, affine(centre=(120.0, 100.0)))]
        out = matte((*FRAME, 3), faces)
        assert out.shape == FRAME and out.dtype == np.float32
        np.testing.assert_array_equal(out, np.maximum(full_mask(*faces[0]), full_mask(*faces[1])))
        assert out.max() == pytest.approx(1.0) and out[0, 0] == 0.0

    def test_no_faces_is_black(self):
        assert not matte(FRAME, []).any()


# -------------------------------------------------------------------------------------- registry
class TestRegistry:
    def test_a_method_cannot_write_outside_the_mask(self, monkeypatch):
        # A plugin method that ignores the mask (returns the patch everywhere) still changes only
        # pixels under the warped mask: the write-back is masked.
        monkeypatch.setitem(BLEND_METHODS._items, "patch-only", lambda plate, patch, mask, *, dtype: patch)
        mask, m = face_mask(source="hull", hull=ellipse(), feather=2), affine()
        for dtype in DTYPES:
            base = plate(dtype)
            img = base.copy()
            composite(img, patch(), mask, m, method="patch-only")
            cover = full_mask(mask, m)
            np.testing.assert_array_equal(img[cover == 0], base[cover == 0])
            assert (img != base).any(axis=2)[cover > 0].mean() > 0.9

    @pytest.mark.parametrize("layout", ["bgr_view", "fortran", "strided"])
    def test_any_array_layout_is_edited_in_place(self, layout):
        mask, m = face_mask(source="hull", hull=ellipse(), feather=2), affine()
        ref = plate(np.uint16)
        composite(ref, patch(), mask, m)
        base = plate(np.uint16)
        img = {"bgr_view": lambda: base[..., ::-1], "fortran": lambda: np.asfortranarray(base),
               "strided": lambda: np.repeat(base, 2, axis=1)[:, ::2]}[layout]()
        composite(img, patch()[..., ::-1] if layout == "bgr_view" else patch(), mask, m)
        np.testing.assert_array_equal(img, ref[..., ::-1] if layout == "bgr_view" else ref)

    def test_read_only_frame_is_a_config_error(self):
        img = plate(np.uint8)
        img.setflags(write=False)
        with pytest.raises(ConfigError, match="read-only"):
            composite(img, patch(), ellipse(), affine())

    def test_builtin_methods(self):
        assert {"feather", "laplacian", "poisson"} <= set(BLEND_METHODS.names())

    def test_unknown_method_lists_the_names_and_touches_nothing(self):
        img = plate(np.uint8)
        before = img.copy()
        with pytest.raises(ConfigError, match="feather, laplacian, poisson"):
            composite(img, patch(), ellipse(), affine(), method="screen")
        np.testing.assert_array_equal(img, before)

    def test_duplicate_registration_is_refused(self):
        with pytest.raises(ConfigError, match="already registered"):
            BLEND_METHODS.register("feather")(lambda *a, **k: None)

    def test_bad_arrays_are_config_errors(self):
        with pytest.raises(ConfigError, match="dtype"):
            composite(plate(np.uint8).astype(np.float64), patch(), ellipse(), affine())
        with pytest.raises(ConfigError, match="swapped"):
            composite(plate(np.uint8), patch()[..., :2], ellipse(), affine())
        with pytest.raises(ConfigError, match="mask"):
            composite(plate(np.uint8), patch(), ellipse(S + 2), affine())
        with pytest.raises(ConfigError, match="affine"):
            composite(plate(np.uint8), patch(), ellipse(), np.eye(3))


# ------------------------------------------------------------------------ the contract of every method
EDGE_CENTRES = {
    "left_edge": (10.0, 100.0),
    "top_left_corner": (5.0, 3.0),
    "bottom_right_over": (275.0, 198.0),
}


class _BlendContract:
    """Checks every blend method must pass; subclasses set ``method``."""

    method = ""

    @pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
    def test_outside_the_mask_is_bit_exact(self, dtype):
        mask, m = face_mask(source="hull", hull=ellipse(), feather=4), affine()
        base = plate(dtype)
        img = base.copy()
        assert composite(img, patch(), mask, m, method=self.method) is None
        cover = full_mask(mask, m)
        np.testing.assert_array_equal(img[cover == 0], base[cover == 0])
        if dtype is np.float32:
            assert (img[cover == 0] > 1.0).any()  # scene-linear values above 1 were kept, not clipped
        changed = (img != base).any(axis=2)
        assert changed[cover > 0.5].mean() > 0.9

    def test_only_the_roi_is_touched(self):
        mask, m = face_mask(source="hull", hull=ellipse(), feather=4), affine()
        base = plate(np.uint16)
        img = base.copy()
        composite(img, patch(), mask, m, method=self.method)
        sl = face_roi(m, S, FRAME)
        expected = base.copy()
        expected[sl] = img[sl]
        np.testing.assert_array_equal(img, expected)
        assert not np.array_equal(img[sl], base[sl])

    @pytest.mark.parametrize("where", sorted(EDGE_CENTRES))
    @pytest.mark.parametrize("dtype", [np.uint8, np.float32], ids=lambda d: np.dtype(d).name)
    def test_face_over_the_frame_edge(self, where, dtype):
        mask, m = face_mask(source="hull", hull=ellipse(), feather=4), affine(centre=EDGE_CENTRES[where])
        base = plate(dtype)
        img = base.copy()
        composite(img, patch(), mask, m, method=self.method)
        cover = full_mask(mask, m)
        assert (cover > 0.5).any()
        np.testing.assert_array_equal(img[cover == 0], base[cover == 0])
        assert (img != base).any(axis=2)[cover > 0.5].mean() > 0.9

    def test_face_wholly_outside_changes_nothing(self):
        base = plate(np.uint8)
        img = base.copy()
        composite(img, patch(), ellipse(), affine(centre=(-200.0, -200.0)), method=self.method)
        np.testing.assert_array_equal(img, base)

    def test_same_input_same_output(self):
        mask, m = face_mask(source="hull", hull=ellipse(), feather=4), affine()
        a, b = plate(np.uint8), plate(np.uint8)
        composite(a, patch(), mask, m, method=self.method)
        composite(b, patch(), mask, m, method=self.method)
        np.testing.assert_array_equal(a, b)


class TestFeather(_BlendContract):
    method = "feather"

    @pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
    def test_hard_mask_shows_the_warped_patch(self, dtype):
        # A linear ramp warps to a ramp, so the expected frame values follow from the inverse affine.
        yy, xx = np.mgrid[:S, :S].astype(np.float32)
        ramp = np.stack([0.1 + 0.01 * xx, 0.2 + 0.008 * yy, 0.9 - 0.005 * (xx + yy)], axis=-1)
        mask, m = face_mask(source="hull", hull=ellipse()), affine()
        img = plate(dtype)
        composite(img, ramp, mask, m, method="feather")
        cover = full_mask(mask, m)
        ys, xs = np.nonzero(cover == 1.0)
        q = transform_points(invert(m), np.stack([xs, ys], axis=1))
        want = np.stack([0.1 + 0.01 * q[:, 0], 0.2 + 0.008 * q[:, 1], 0.9 - 0.005 * q.sum(axis=1)], axis=1)
        got = img[ys, xs].astype(np.float64) / CODE_MAX[dtype]
        # rounding to the dtype + OpenCV's 1/32-pixel warp coordinates
        tol = (0.0 if dtype is np.float32 else 0.5 / CODE_MAX[dtype]) + 1e-3
        assert len(ys) > 1000 and np.abs(got - want).max() <= tol

    def test_soft_mask_mixes_plate_and_patch(self):
        mask, m = np.full((S, S), 0.25, np.float32), affine(scale=1.0, angle=0.0)
        base = plate(np.float32)
        img = base.copy()
        composite(img, np.full((S, S, 3), 0.5, np.float32), mask, m, method="feather")
        y, x = 100, 140  # the crop centre
        np.testing.assert_allclose(img[y, x], 0.75 * base[y, x] + 0.25 * 0.5, rtol=1e-5)


def border_band(mask: np.ndarray, m: np.ndarray, width: int = 4) -> np.ndarray:
    cover = full_mask(mask, m) >= 0.5
    k = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    c8 = cover.astype(np.uint8)
    return cv2.dilate(c8, k).astype(bool) & ~cv2.erode(c8, k).astype(bool)


def gradient_energy(img: np.ndarray, where: np.ndarray) -> float:
    f = img.astype(np.float64)
    gx = np.zeros_like(f)
    gy = np.zeros_like(f)
    gx[:, :-1] = f[:, 1:] - f[:, :-1]
    gy[:-1] = f[1:] - f[:-1]
    return float(((gx ** 2 + gy ** 2).sum(axis=2))[where].sum())


class TestLaplacian(_BlendContract):
    method = "laplacian"

    def test_seam_is_smoother_than_a_hard_alpha(self):
        size = 128
        mask, m = face_mask(source="hull", hull=ellipse(size)), affine(scale=1.2, centre=(140.0, 100.0),
                                                                      size=size)
        face = np.empty((size, size, 3), np.float32)
        face[:] = (0.8, 0.6, 0.5)
        face += patch(size) * 0.05  # a little texture on a face lighter than the plate
        base = np.empty((*FRAME, 3), np.float32)
        base[:] = (0.3, 0.25, 0.2)
        hard, multi = base.copy(), base.copy()
        composite(hard, face, mask, m, method="feather")
        composite(multi, face, mask, m, method="laplacian")
        band = border_band(mask, m)
        assert gradient_energy(multi, band) < 0.6 * gradient_energy(hard, band)
        # deep inside the face the patch comes through
        np.testing.assert_allclose(multi[100, 140], hard[100, 140], atol=0.03)


def dot(size: int = S, at: tuple[float, float] = (34.0, 30.0), amp: float = 0.5) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    g = amp * np.exp(-((xx - at[0]) ** 2 + (yy - at[1]) ** 2) / (2 * 2.0 ** 2))
    return np.repeat(g[..., None], 3, axis=2).astype(np.float32)


def centroid(diff: np.ndarray) -> np.ndarray:
    w = np.abs(diff.astype(np.float64)).sum(axis=2)
    w[w < 0.2 * w.max()] = 0
    ys, xs = np.mgrid[: w.shape[0], : w.shape[1]]
    return np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()


class TestPoisson(_BlendContract):
    method = "poisson"

    @pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
    def test_matches_the_plate_colour_and_keeps_the_texture(self, dtype):
        mask, m = face_mask(source="hull", hull=ellipse(), feather=3), affine()
        base = np.empty((*FRAME, 3), np.float32)
        base[:] = (0.3, 0.35, 0.4)
        texture = (patch() - 0.5) * 0.3
        face = np.float32(0.7) + texture  # much lighter than the plate
        a = (base * CODE_MAX[dtype]).round().astype(dtype) if dtype is not np.float32 else base.copy()
        b = a.copy()
        composite(a, face, mask, m, method="poisson")
        composite(b, face, mask, m, method="feather")
        inner = full_mask(face_mask(source="hull", hull=ellipse(), erode=6), m) == 1.0
        pois = a[inner].astype(np.float64) / CODE_MAX[dtype]
        feat = b[inner].astype(np.float64) / CODE_MAX[dtype]
        # the clone takes the plate's colour (the feather keeps the patch's); the texture survives
        assert np.abs(pois.mean(axis=0) - base[0, 0]).max() < 0.03
        assert np.abs(feat.mean(axis=0) - base[0, 0]).min() > 0.25
        assert (pois.std(axis=0) > 0.8 * feat.std(axis=0)).all()

    def test_float_solver_agrees_with_opencv(self):
        mask, m = face_mask(source="hull", hull=ellipse(), feather=3), affine()
        eight = plate(np.uint8)
        eight = cv2.GaussianBlur(eight, (0, 0), 3.0)  # a smooth plate: the comparison is of the solvers
        flt = eight.astype(np.float32) / 255.0
        face = patch() * 0.5 + 0.4
        composite(eight, face, mask, m, method="poisson")  # cv2.seamlessClone
        composite(flt, face, mask, m, method="poisson")  # poisson_clone (SciPy DST)
        diff = np.abs(eight.astype(np.float64) - flt * 255.0)
        assert diff.max() < 4.0 and diff.mean() < 0.5

    @pytest.mark.parametrize("dtype", [np.uint8, np.float32], ids=lambda d: np.dtype(d).name)
    def test_placement_follows_the_affine_without_jumps(self, dtype):
        # A dot in the patch must move with subpixel shifts of the affine, never jump by a rounded pixel,
        # and sit where the affine puts it even though the mask is off the crop centre (as whole_face
        # hulls are): a clone centred on the mask's box or on a rounded point would shift it.
        mask = face_mask(source="hull", hull=ellipse(down=0.08), feather=3)
        base = np.full((*FRAME, 3), 0.3, np.float32)
        if dtype is np.uint8:
            base = (base * 255).round().astype(np.uint8)
        face = np.full((S, S, 3), 0.4, np.float32)
        found = []
        shifts = [0.0, 0.2, 0.45, 0.55, 0.8, 1.0]
        for dx in shifts:
            m = affine(scale=1.0, angle=0.0, centre=(140.0 + dx, 100.25))
            with_dot, without = base.copy(), base.copy()
            composite(with_dot, face + dot(), mask, m, method="poisson")
            composite(without, face, mask, m, method="poisson")
            found.append(centroid(with_dot.astype(np.float64) - without))
        found = np.array(found)
        np.testing.assert_allclose(found[:, 0] - found[0, 0], shifts, atol=0.12)
        np.testing.assert_allclose(found[:, 1], found[0, 1], atol=0.12)
        # and where the affine puts it: crop (34, 30) -> frame (140 + 34 - 31.5, 100.25 + 30 - 31.5)
        np.testing.assert_allclose(found[0], [142.5, 98.75], atol=0.25)

    def test_all_soft_mask_falls_back_to_feather(self):
        mask, m = np.full((S, S), 0.3, np.float32), affine()
        a, b = plate(np.uint8), plate(np.uint8)
        composite(a, patch(), mask, m, method="poisson")
        composite(b, patch(), mask, m, method="feather")
        np.testing.assert_array_equal(a, b)


class TestPoissonClone:
    def test_constant_offset_is_removed_and_gradients_kept(self):
        rng = np.random.default_rng(3)
        dst = np.full((60, 70, 3), 0.2, np.float32)
        src = (0.9 + 0.05 * rng.standard_normal((60, 70, 3))).astype(np.float32)
        region = np.zeros((60, 70), bool)
        region[10:50, 12:60] = True
        out = poisson_clone(src, dst, region)
        ring = np.ones((60, 70), bool)
        ring[1:-1, 1:-1] = False
        np.testing.assert_array_equal(out[ring], dst[ring])  # Dirichlet border: the destination
        assert np.abs(out[region] - dst[region]).max() > 0.1 and out.dtype == np.float32
        inner = out[20:40, 22:50] - src[20:40, 22:50]
        assert abs(out[20:40, 22:50].mean() - 0.2) < 0.05
        assert inner.std() < 0.02  # out = src + a smooth membrane inside
