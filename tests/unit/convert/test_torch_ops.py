"""Torch per-face ops (vfxswap.convert.torch_ops) against the OpenCV/NumPy ops they mirror.

Real faces: the six people of the insightface group photo (dlib landmarks), the astronaut portrait.
Every check runs on CPU tensors; the ``gpu`` class repeats some of them on CUDA tensors.

Tolerances, and why:
- warps: float32 sample positions carry ~1e-4 px of round-off on a 1280-px frame (as OpenCV's own
  float32 kernels do, in another order), so steep edges differ by ~1e-4 of the range: at most one
  uint8 code value on a few pixels (ties in the rounding), a few uint16 code values, ~1e-4 in float;
- erode/dilate: exact (min/max); feather: 1e-6 (float32 sums in another order);
- RGB->Lab: bit-exact (OpenCV's own table and integer interpolation); Lab->RGB: 1e-5;
- colour params: 1e-6 (float64 statistics; the host takes the covariance in float32), images 1e-4;
- compositing: uint8 / uint16 within 1 code value (2 for poisson), on under 1% of the masked pixels;
  float32 within 1e-5 of the range; mattes within 1e-5; pixels outside the mask bit-exact.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vfxswap.convert import blend, color, stages
from vfxswap.convert import torch_ops as T
from vfxswap.errors import ConfigError
from vfxswap.faces import align, masks
from vfxswap.faces.geometry import invert, transform_points
from vfxswap.types import Frame

CODE_MAX = {np.uint8: 255.0, np.uint16: 65535.0, np.float32: 1.0}
DTYPES = [np.uint8, np.uint16, np.float32]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a small shared VM OpenMP spinning makes small ops 10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def frames(group_photo) -> dict:
    """The group photo as each frame dtype: uint8, full-range uint16, scene-linear float32 up to 4."""
    rng = np.random.default_rng(0)
    u16 = (group_photo.astype(np.uint16) * 257 + rng.integers(0, 257, group_photo.shape)).astype(np.uint16)
    lin = ((group_photo.astype(np.float32) / 255.0) ** 2.2 * 4.0).astype(np.float32)
    return {np.uint8: group_photo, np.uint16: u16, np.float32: lin}


@pytest.fixture(scope="module")
def face_geometry(group_faces):
    """``size -> [(face_from_frame, hull (S, S) float32)]`` for the six faces, whole-face crops."""
    out = {}
    for size in (64, 128, 256):
        out[size] = []
        for face in group_faces:
            m = align.face_from_frame(face.landmarks, size)
            out[size].append((m, masks.hull_mask(transform_points(m, face.landmarks), size)))
    return out


def chw(a: np.ndarray, device="cpu") -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(2, 0, 1))).to(device)


def hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).cpu().numpy()


def similarity(scale: float, angle: float, centre, size: int) -> np.ndarray:
    """``frame_from_face`` putting the crop's centre at ``centre``, rotated and scaled."""
    a = np.deg2rad(angle)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = (size - 1) / 2.0
    return np.hstack([rot, (np.asarray(centre) - rot @ np.array([c, c]))[:, None]])


# ------------------------------------------------------------------------------------------- warps
class TestWarpAffine:
    @pytest.mark.parametrize("mode,interp", [("bilinear", cv2.INTER_LINEAR), ("bicubic", cv2.INTER_CUBIC)])
    @pytest.mark.parametrize("border,cv_border", [("replicate", cv2.BORDER_REPLICATE), ("zeros", cv2.BORDER_CONSTANT)])
    def test_matches_cv2_warp_affine(self, astronaut, mode, interp, border, cv_border):
        image = astronaut.astype(np.float32) / 255.0
        m = invert(similarity(1.7, 25.0, (60.0, 450.0), 200))  # dst_from_src, crossing the border
        want = cv2.warpAffine(image, m, (200, 200), flags=interp, borderMode=cv_border, borderValue=0)
        got = hwc(T.warp_affine(chw(image), m, (200, 200), mode=mode, border=border))
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=2e-4)
        assert np.abs(got - want).mean() < 1e-6

    def test_batched_matrices_cut_several_warps_from_one_image(self, astronaut):
        image = chw(astronaut.astype(np.float32))
        ms = np.stack([invert(similarity(s, a, c, 64)) for s, a, c in
                       ((0.8, 10, (200, 200)), (1.5, -40, (300, 260)), (0.4, 90, (100, 400)))])
        batch = T.warp_affine(image, ms, (64, 64))
        assert batch.shape == (3, 3, 64, 64)
        for i, m in enumerate(ms):
            torch.testing.assert_close(batch[i], T.warp_affine(image, m, (64, 64)), rtol=0, atol=0)

    def test_bad_options_are_config_errors(self):
        image = torch.zeros(3, 8, 8)
        with pytest.raises(ConfigError, match="bilinear or bicubic"):
            T.warp_affine(image, np.eye(2, 3), (8, 8), mode="area")
        with pytest.raises(ConfigError, match="replicate or zeros"):
            T.warp_affine(image, np.eye(2, 3), (8, 8), border="reflect")
        with pytest.raises(ConfigError, match="singular"):
            T.warp_affine(image, np.zeros((2, 3)), (8, 8))


class TestWarpToFace:
    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("size", [64, 128, 256])  # crop scales ~0.35 (AREA), ~0.7, ~1.4 (cubic)
    def test_real_faces_match_align_warp_to_face(self, frames, face_geometry, dtype, size):
        frame = frames[dtype]
        tf = torch.from_numpy(frame)
        for m, _ in face_geometry[size]:
            want = align.warp_to_face(frame, m, size).astype(np.float32) / np.float32(CODE_MAX[dtype])
            got = hwc(T.warp_to_face(tf, m, size))
            assert got.dtype == np.float32 and got.shape == (size, size, 3)
            self._check(got, want, dtype)

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_at_and_beyond_the_frame_border(self, frames, dtype):
        frame = frames[dtype]
        h, w = frame.shape[:2]
        for scale, angle, centre in ((2.5, 30, (10.0, 20.0)), (0.8, -20, (w - 15.0, h - 5.0)),
                                     (1.2, 45, (w + 200.0, h / 2)), (3.0, 0, (-400.0, -300.0))):
            m = invert(similarity(scale, angle, centre, 96))
            want = align.warp_to_face(frame, m, 96).astype(np.float32) / np.float32(CODE_MAX[dtype])
            self._check(hwc(T.warp_to_face(torch.from_numpy(frame), m, 96)), want, dtype)

    @staticmethod
    def _check(got: np.ndarray, want: np.ndarray, dtype) -> None:
        diff = np.abs(got - want) * np.float32(CODE_MAX[dtype] if dtype is not np.float32 else 1.0)
        if dtype is np.uint8:
            assert diff.max() <= 1.0001 and (diff > 0.5).mean() < 0.005
        elif dtype is np.uint16:
            assert diff.max() <= 12.0 and diff.mean() < 0.2
        else:  # scene-linear values up to 4
            assert diff.max() < 1e-3 and diff.mean() < 1e-5

    def test_model_space_matches_stages(self, frames, face_geometry):
        m, _ = face_geometry[128][2]
        for dtype, space in ((np.uint8, "srgb"), (np.uint16, "srgb"), (np.float32, "linear"), (np.float32, "acescg")):
            frame = Frame(image=frames[dtype], index=1001, color_space=space)
            want = stages.to_model_space(align.warp_to_face(frame.image, m, 128), frame)
            crop = T.warp_to_face(torch.from_numpy(frame.image), m, 128)
            got = T.to_model_space(crop, dtype=frame.image.dtype, color_space=space)
            tol = 1.5 / CODE_MAX[dtype] if dtype is not np.float32 else 2e-4  # one code value; pow near 0
            np.testing.assert_allclose(hwc(got), want, atol=tol)
            back = T.from_model_space(got, dtype=frame.image.dtype, color_space=space)
            np.testing.assert_allclose(hwc(back), stages.from_model_space(hwc(got), frame), atol=1e-6)


class TestSrgb:
    def test_transfer_functions_match_stages(self):
        x = torch.linspace(-0.1, 1.1, 4001)
        np.testing.assert_allclose(T.srgb_encode(x).numpy(), stages.srgb_encode(x.numpy()), atol=1e-6)
        np.testing.assert_allclose(T.srgb_decode(x).numpy(), stages.srgb_decode(x.numpy()), atol=1e-6)
        np.testing.assert_allclose(T.srgb_decode(T.srgb_encode(x)).numpy(), x.clamp(0, 1).numpy(), atol=2e-6)

    def test_bad_frame_dtype_is_a_config_error(self):
        with pytest.raises(ConfigError, match="uint8, uint16 or float32"):
            T.to_model_space(torch.zeros(3, 4, 4), dtype=np.int32, color_space="srgb")


@pytest.fixture(scope="module")
def rgb(astronaut):
    """The astronaut and random colours (some out of [0, 1]) and the corners of the RGB cube."""
    rng = np.random.default_rng(7)
    x = np.concatenate([astronaut.astype(np.float32) / 255.0,
                        rng.random((64, 512, 3), dtype=np.float32) * 1.4 - 0.2])
    x[-1, :6] = [[0, 0, 0], [1, 1, 1], [1e-4, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    return x


class TestLab:
    def test_rgb_to_lab_is_bit_exact_with_cv2(self, rgb):
        want = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
        np.testing.assert_array_equal(hwc(T.rgb_to_lab(chw(rgb))), want)

    def test_lab_to_rgb_matches_cv2(self, rgb):
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB) * np.float32([1.05, 1.2, 0.8]) + np.float32([2, 15, -20])
        want = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
        got = hwc(T.lab_to_rgb(chw(lab)))
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert got.min() >= 0.0 and got.max() <= 1.0

    def test_round_trip_matches_cv2s(self, rgb):
        inside = np.clip(rgb, 0, 1)
        want = cv2.cvtColor(cv2.cvtColor(inside, cv2.COLOR_RGB2LAB), cv2.COLOR_LAB2RGB)
        got = hwc(T.lab_to_rgb(T.rgb_to_lab(chw(inside))))
        np.testing.assert_allclose(got, want, atol=1e-5)
        np.testing.assert_allclose(got, inside, atol=5e-3)  # OpenCV's table: ~1/512 steps


# ------------------------------------------------------------------------------------------- masks
@pytest.fixture(scope="module")
def test_masks(face_geometry):
    """A real hull (hard, anti-aliased edge) and a soft, noisy learned-like mask, 128 px."""
    hull = face_geometry[128][0][1]
    rng = np.random.default_rng(3)
    soft = np.clip(cv2.GaussianBlur(hull, (0, 0), 4.0) + rng.random(hull.shape, dtype=np.float32) * 0.1 - 0.05, 0, 1)
    return {"hull": hull, "soft": soft.astype(np.float32)}


class TestErodeDilate:
    @pytest.mark.parametrize("kind", ["hull", "soft"])
    @pytest.mark.parametrize("pixels", [1, 3, 8, 21, -2, -6])
    def test_equals_cv2_morphology(self, test_masks, kind, pixels):
        mask = test_masks[kind]
        got = T.erode_dilate(torch.from_numpy(mask), pixels).numpy()
        np.testing.assert_array_equal(got, masks.erode_dilate(mask, pixels))

    def test_zero_is_identity(self, test_masks):
        t = torch.from_numpy(test_masks["soft"])
        assert T.erode_dilate(t, 0) is t


class TestFeather:
    @pytest.mark.parametrize("kind", ["hull", "soft"])
    @pytest.mark.parametrize("pixels", [1, 4, 8, 25])
    def test_matches_gaussian_blur(self, test_masks, kind, pixels):
        mask = test_masks[kind]
        got = T.feather_mask(torch.from_numpy(mask), pixels).numpy()
        np.testing.assert_allclose(got, masks.feather_mask(mask, pixels), atol=1e-6)

    def test_kernel_wider_than_the_mask(self, test_masks):
        mask = np.ascontiguousarray(test_masks["soft"][50:62, 40:49])  # 12 x 9, kernel 121 taps
        got = T.feather_mask(torch.from_numpy(mask), 30).numpy()
        np.testing.assert_allclose(got, masks.feather_mask(mask, 30), atol=1e-6)


class TestFaceMask:
    @pytest.mark.parametrize("source", ["hull", "learned", "learned*hull"])
    def test_matches_blend_face_mask(self, test_masks, source):
        hull, learned = test_masks["hull"], test_masks["soft"]
        want = blend.face_mask(source=source, hull=hull, learned=learned, erode=3, feather=6)
        t = torch.from_numpy(learned)
        for shaped in (t, t[None], t[..., None]):  # (S, S), (1, S, S) from a batch, (S, S, 1)
            got = T.face_mask(source=source, hull=torch.from_numpy(hull), learned=shaped, erode=3, feather=6)
            assert got.dtype == torch.float32
            np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
        assert (torch.from_numpy(hull) == torch.from_numpy(test_masks["hull"])).all()  # inputs untouched

    def test_errors_say_what_the_host_op_says(self, test_masks):
        hull = test_masks["hull"]
        cases = [dict(source="bisenet"), dict(source="hull", feather=-1), dict(source="learned"),
                 dict(source="learned", learned=np.ones((128, 127), np.float32))]
        for case in cases:
            with pytest.raises(ConfigError) as host:
                blend.face_mask(hull=hull, **case)
            device_case = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in case.items()}
            with pytest.raises(ConfigError) as dev:
                T.face_mask(hull=torch.from_numpy(hull), **device_case)
            assert str(dev.value) == str(host.value)


# ------------------------------------------------------------------------------------------ colour
@pytest.fixture(scope="module")
def color_case(frames, face_geometry):
    """Plate crop of one face, a 'swapped' face (another person's crop, recoloured), the hull."""
    (m0, hull), (m1, _) = face_geometry[128][0], face_geometry[128][3]
    plate = align.warp_to_face(frames[np.uint8], m0, 128).astype(np.float32) / 255.0
    other = align.warp_to_face(frames[np.uint8], m1, 128).astype(np.float32) / 255.0
    swapped = np.clip(other * np.float32([1.15, 0.85, 0.9]) + 0.04, 0, 1).astype(np.float32)
    return swapped, plate, hull


class TestColor:
    @pytest.mark.parametrize("name", T.DEVICE_COLOR_METHODS)
    def test_params_and_result_match_the_host_method(self, color_case, name):
        swapped, plate, hull = color_case
        method = color.COLOR_METHODS.get(name)()
        want = method.estimate(swapped, plate, hull)
        got = T.estimate(name, chw(swapped), chw(plate), torch.from_numpy(hull))
        assert (got.method, got.pixels) == (want.method, want.pixels) and got.usable
        for side in ("source", "target"):
            mine, theirs = getattr(got, side), getattr(want, side)
            assert set(mine) == set(theirs)
            for key in theirs:
                assert isinstance(mine[key], np.ndarray) and mine[key].dtype == np.float64
                assert mine[key].shape == np.shape(theirs[key])
                np.testing.assert_allclose(mine[key], theirs[key], rtol=0, atol=1e-6)
        out = T.apply(name, chw(swapped), got)
        assert out.dtype == torch.float32 and 0.0 <= out.min() and out.max() <= 1.0
        np.testing.assert_allclose(hwc(out), method.apply(swapped, want), atol=1e-4)
        # the host's params (e.g. smoothed by ColorSmoother) apply on the device too
        np.testing.assert_allclose(hwc(T.apply(name, chw(swapped), want)), method.apply(swapped, want), atol=1e-5)

    def test_uint8_crops_and_masks_like_the_host(self, color_case):
        swapped, plate, hull = color_case
        s8, p8, m8 = (np.rint(swapped * 255).astype(np.uint8), np.rint(plate * 255).astype(np.uint8),
                      (hull * 255).astype(np.uint8))
        want = color.COLOR_METHODS.get("mkl")().estimate(s8, p8, m8)
        got = T.estimate("mkl", chw(s8), chw(p8), torch.from_numpy(m8))
        assert got.pixels == want.pixels
        np.testing.assert_allclose(got.target["cov"], want.target["cov"], atol=1e-6)

    def test_too_few_pixels_leave_the_face_as_is(self, color_case):
        swapped, plate, _ = color_case
        mask = np.zeros(swapped.shape[:2], np.float32)
        mask[60:63, 60:63] = 1.0  # 9 < MIN_PIXELS
        params = T.estimate("rct", chw(swapped), chw(plate), torch.from_numpy(mask))
        assert not params.usable and params.pixels == 9 and params.source == {} == params.target
        torch.testing.assert_close(T.apply("rct", chw(swapped) * 1.5, params), (chw(swapped) * 1.5).clamp(0, 1))

    def test_refusals(self, color_case):
        swapped, plate, hull = color_case
        args = (chw(swapped), chw(plate), torch.from_numpy(hull))
        with pytest.raises(ConfigError, match="no device version"):
            T.estimate("idt", *args)
        with pytest.raises(ConfigError, match="cannot apply parameters of 'lct'"):
            T.apply("mkl", args[0], T.estimate("lct", *args))
        with pytest.raises(ConfigError, match="unknown colour method|valid|choose"):
            T.estimate("nope", *args)


# ------------------------------------------------------------------------------------- compositing
@pytest.fixture(scope="module")
def composite_cases(frames, face_geometry):
    """Per crop size: the faces' ``frame_from_face``, masks and 'swapped' faces (the next person's crop)."""
    cases = {}
    for size, feather in ((64, 2), (256, 8)):  # patch warp bicubic (scale > 1) / bilinear (< 1)
        geo = face_geometry[size]
        out = []
        for i, (m, hull) in enumerate(geo):
            other = align.warp_to_face(frames[np.uint8], geo[(i + 1) % len(geo)][0], size).astype(np.float32) / 255.0
            mask = blend.face_mask(source="hull", hull=hull, feather=feather)
            out.append((invert(m), mask, np.ascontiguousarray(other)))
        cases[size] = out
    return cases


def _composite_both(frame: np.ndarray, cases, method: str):
    host, dev = frame.copy(), torch.from_numpy(frame.copy())
    lin = frame.dtype == np.float32
    regions = []
    for m, mask, swapped in cases:
        face = (swapped ** 2.2 * 4.0).astype(np.float32) if lin else swapped
        blend.composite(host, face, mask, m, method=method)
        regions.append(T.composite_(dev, chw(face), torch.from_numpy(mask), m, method=method))
    return host, dev.numpy(), regions


class TestComposite:
    @pytest.mark.parametrize("method", ["feather", "laplacian", "poisson"])
    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("size", [64, 256])
    def test_matches_blend_composite(self, frames, composite_cases, method, dtype, size):
        frame = frames[dtype]
        cases = composite_cases[size]
        host, dev, regions = _composite_both(frame, cases, method)
        covered = blend.matte(frame.shape, [(mask, m) for m, mask, _ in cases]) > 0
        # outside every mask: bit-exact, untouched
        np.testing.assert_array_equal(dev[~covered], frame[~covered])
        np.testing.assert_array_equal(host[~covered], frame[~covered])
        diff = np.abs(dev.astype(np.float64) - host.astype(np.float64))
        if dtype is np.float32:  # scene-linear values up to 4
            assert diff.max() < 5e-5 and diff[covered].mean() < 1e-6
        else:
            assert diff.max() <= (2 if method == "poisson" else 1)
            assert (diff[covered] > 0).mean() < 0.01
        assert (dev != frame).any(axis=-1).sum() > 0.5 * covered.sum()  # the faces really went in
        changed = np.zeros(frame.shape[:2], bool)
        for rows, cols in regions:
            changed[rows, cols] = True
        assert not ((dev != frame).any(axis=-1) & ~changed).any()  # nothing written outside the regions

    def test_plugin_methods_run_on_the_host_on_the_roi(self, frames, composite_cases, monkeypatch):
        calls = []

        def patch_only(plate, patch, mask, *, dtype):  # ignores the mask: only the masked write-back limits it
            calls.append((plate.shape, patch.shape, mask.shape, plate.dtype, patch.dtype, dtype))
            return patch

        monkeypatch.setitem(blend.BLEND_METHODS._items, "patch-only", patch_only)
        frame = frames[np.uint16]
        host, dev, _ = _composite_both(frame, composite_cases[256], "patch-only")
        assert len(calls) == 2 * len(composite_cases[256])
        for plate_shape, patch_shape, mask_shape, plate_dtype, patch_dtype, dtype in calls:
            assert plate_shape == patch_shape == (*mask_shape, 3) and mask_shape[0] < frame.shape[0] / 2
            assert plate_dtype == patch_dtype == np.float32 and dtype == np.dtype(np.uint16)
        # A mask-blind method shows the masked write-back: outside the device's own warped masks
        # nothing moved. On the supports' very edge (masks ~1e-8 on one side, 0 on the other, from
        # sample-position round-off) a mask-blind method differs; built-in methods do not (mask ~0).
        placed = [(mask, m) for m, mask, _ in composite_cases[256]]
        dev_support = torch.zeros(frame.shape[:2])
        for mask, m in placed:
            T.matte_(dev_support, torch.from_numpy(mask), m)
        dev_support = dev_support.numpy() > 0
        host_support = blend.matte(frame.shape, placed) > 0
        np.testing.assert_array_equal(dev[~dev_support], frame[~dev_support])
        both = dev_support & host_support
        assert (dev_support != host_support).sum() < 1e-3 * both.sum()
        assert np.abs(dev[both].astype(int) - host[both].astype(int)).max() <= 1

    @pytest.mark.parametrize("method", T.DEVICE_BLEND_METHODS)
    def test_device_methods_never_call_the_host(self, frames, composite_cases, monkeypatch, method):
        def host_only(*args, **kwargs):
            raise AssertionError(f"{method} ran on the host")

        monkeypatch.setitem(blend.BLEND_METHODS._items, method, host_only)
        m, mask, swapped = composite_cases[256][0]
        frame = torch.from_numpy(frames[np.uint8].copy())
        assert T.composite_(frame, chw(swapped), torch.from_numpy(mask), m, method=method) is not None

    def test_laplacian_blend_on_an_roi(self, astronaut):
        rng = np.random.default_rng(5)
        plate = astronaut[100:237, 150:301].astype(np.float32) / 255.0
        patch = np.clip(plate[::-1] * 1.2, 0, 1).astype(np.float32)
        yy, xx = np.mgrid[:137, :151]
        mask = np.clip(1.5 - np.hypot((xx - 75) / 50, (yy - 68) / 60), 0, 1).astype(np.float32)
        mask *= rng.random(mask.shape, dtype=np.float32) > 0.02
        want = blend.laplacian_blend(plate, patch, mask, dtype=np.uint8)
        got = T.laplacian_blend(chw(plate), chw(patch), torch.from_numpy(mask))
        np.testing.assert_allclose(hwc(got), want, atol=1e-5)

    @pytest.mark.parametrize("hw", [(37, 53), (64, 64), (5, 3), (2, 2), (1, 4), (3, 1)])
    def test_pyramid_steps_match_cv2(self, hw):
        x = np.random.default_rng(hw[0]).random((*hw, 3), dtype=np.float32)
        down = cv2.pyrDown(x)
        np.testing.assert_allclose(hwc(T.pyr_down(chw(x))), down, atol=3e-7)
        np.testing.assert_allclose(hwc(T.pyr_up(chw(down), hw)), cv2.pyrUp(down, dstsize=hw[::-1]), atol=3e-7)

    def test_faces_outside_the_frame_or_without_mask_write_nothing(self, frames, composite_cases):
        frame = frames[np.uint16]
        dev = torch.from_numpy(frame.copy())
        m, mask, swapped = composite_cases[64][0]
        far = m.copy()
        far[:, 2] += [5000.0, 0.0]
        assert T.composite_(dev, chw(swapped), torch.from_numpy(mask), far) is None
        assert T.composite_(dev, chw(swapped), torch.zeros_like(torch.from_numpy(mask)), m) is None
        np.testing.assert_array_equal(dev.numpy(), frame)

    def test_bad_inputs_are_config_errors(self, frames, composite_cases):
        m, mask, swapped = composite_cases[64][0]
        frame = torch.from_numpy(frames[np.uint8].copy())
        with pytest.raises(ConfigError, match="blend method"):
            T.composite_(frame, chw(swapped), torch.from_numpy(mask), m, method="nope")
        with pytest.raises(ConfigError, match="uint8, uint16 or float32"):
            T.composite_(frame.to(torch.int32), chw(swapped), torch.from_numpy(mask), m)
        with pytest.raises(ConfigError, match="like the swapped face"):
            T.composite_(frame, chw(swapped), torch.from_numpy(mask)[:-1], m)


class TestMatte:
    def test_matches_blend_matte(self, frames, composite_cases):
        shape = frames[np.uint8].shape
        placed = [(mask, m) for m, mask, _ in composite_cases[64] + composite_cases[256]]
        placed.append((placed[0][0], similarity(2.0, 10, (5.0, 5.0), 64)))  # a face half off the corner
        got = torch.zeros(shape[:2])
        for mask, m in placed:
            T.matte_(got, torch.from_numpy(mask), m)
        np.testing.assert_allclose(got.numpy(), blend.matte(shape, placed), atol=1e-5)
        far = similarity(1.0, 0, (-500.0, -500.0), 64)
        assert T.matte_(got, torch.from_numpy(placed[0][0]), far) is None


# --------------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
class TestOnCuda:
    """The same parity checks on CUDA tensors (TF32 settings must not matter: no matmul/conv is used)."""

    def test_warp_mask_colour_and_composite(self, frames, face_geometry, composite_cases, color_case):
        dev = torch.device("cuda")
        saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        try:
            self._check(dev, frames, face_geometry, composite_cases, color_case)
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved

    @staticmethod
    def _check(dev, frames, face_geometry, composite_cases, color_case):
        frame = frames[np.uint8]
        m, hull = face_geometry[256][1]
        crop = T.warp_to_face(torch.from_numpy(frame).to(dev), m, 256)
        assert crop.device.type == "cuda"
        want = align.warp_to_face(frame, m, 256).astype(np.float32) / 255.0
        assert np.abs(hwc(crop) - want).max() <= 1.0001 / 255

        mask = T.face_mask(source="hull", hull=torch.from_numpy(hull).to(dev), erode=3, feather=8)
        np.testing.assert_allclose(mask.cpu().numpy(), blend.face_mask(source="hull", hull=hull, erode=3, feather=8),
                                   atol=1e-6)

        swapped, plate, chull = color_case
        params = T.estimate("rct", chw(swapped, dev), chw(plate, dev), torch.from_numpy(chull).to(dev))
        host = color.COLOR_METHODS.get("rct")()
        np.testing.assert_allclose(params.target["std"], host.estimate(swapped, plate, chull).target["std"], atol=1e-6)
        np.testing.assert_allclose(hwc(T.apply("rct", chw(swapped, dev), params)),
                                   host.apply(swapped, host.estimate(swapped, plate, chull)), atol=1e-4)

        for method in ("feather", "laplacian", "poisson"):
            ref = frame.copy()
            out = torch.from_numpy(frame.copy()).to(dev)
            for fm, fmask, face in composite_cases[256]:
                blend.composite(ref, face, fmask, fm, method=method)
                T.composite_(out, chw(face, dev), torch.from_numpy(fmask).to(dev), fm, method=method)
            diff = np.abs(out.cpu().numpy().astype(int) - ref.astype(int))
            assert diff.max() <= (2 if method == "poisson" else 1)
