import copy
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vfxswap.errors import ConfigError, FacesetError
from vfxswap.faces.align import face_from_frame, warp_to_face
from vfxswap.faces.faceset import read_faceset
from vfxswap.train.data import BATCH_KEYS, FaceBank, PairBatches, priority_weights

ROOT = Path(__file__).resolve().parents[3]


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class TestFaceBank:
    def test_shapes_and_dtypes(self, src_bank, dst_bank):
        for bank, n in ((src_bank, 72), (dst_bank, 48)):
            assert len(bank) == n and len(bank.records) == n
            assert bank.images.shape == (n, 64, 64, 3) and bank.images.dtype == np.uint8
            assert bank.landmarks.shape == (n, 68, 2) and bank.landmarks.dtype == np.float32
            assert bank.masks.shape == (n, 64, 64) and bank.masks.dtype == np.uint8
            assert set(np.unique(bank.masks)) == {0, 255}
        assert "faces=72" in repr(src_bank)

    def test_landmarks_land_on_the_face(self, src_bank, dst_bank):
        centre = 31.5
        # The src clip is one frontal-ish face (±15° fake yaw); the plate has three-quarter views.
        assert np.abs(src_bank.landmarks[:, 30, 0] - centre).max() < 0.03 * 64
        off = np.abs(dst_bank.landmarks[:, 30, 0] - centre)
        assert np.median(off) < 0.06 * 64 and off.max() < 0.12 * 64
        for bank in (src_bank, dst_bank):
            nose = np.round(bank.landmarks[:, 30]).astype(int)
            assert (bank.masks[np.arange(len(bank)), nose[:, 1], nose[:, 0]] == 255).all()
            assert (bank.masks[:, 0, 0] == 0).all()
            # The eyes sit above the nose tip, the mouth below it.
            assert (bank.landmarks[:, 36:48, 1].mean(axis=1) < bank.landmarks[:, 30, 1]).all()
            assert (bank.landmarks[:, 48:60, 1].mean(axis=1) > bank.landmarks[:, 30, 1]).all()

    def test_same_geometry_is_the_crop_on_disk(self, dst_faceset):
        bank = FaceBank(dst_faceset, resolution=128, face_type="whole_face")
        record = bank.records[7]
        on_disk = cv2.cvtColor(cv2.imread(str(dst_faceset / record.crop_name)), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(bank.images[7], on_disk)

    def test_holdout_leaves_the_eval_split_out(self, dst_faceset):
        everything = FaceBank(dst_faceset, resolution=32, face_type="whole_face")
        kept = FaceBank(dst_faceset, resolution=32, face_type="whole_face", holdout=10)
        held = [r.index for r in everything.records if r.index % 10 == 9]
        assert held and len(kept) == len(everything) - len(held)
        assert not {r.index for r in kept.records} & set(held)
        position = {r.index: i for i, r in enumerate(everything.records)}
        for i, r in enumerate(kept.records):
            np.testing.assert_array_equal(kept.images[i], everything.images[position[r.index]])

    def test_narrower_face_type_matches_a_crop_cut_from_the_frame(self, dst_faceset):
        bank = FaceBank(dst_faceset, resolution=64, face_type="full")
        for i in (0, 20, 47):
            record = bank.records[i]
            frame_path = Path(record.file) if Path(record.file).is_absolute() else ROOT / record.file
            frame = cv2.cvtColor(cv2.imread(str(frame_path)), cv2.COLOR_BGR2RGB)
            m = face_from_frame(record.landmarks, 64, "full")
            direct = warp_to_face(frame, m, 64)
            expected_landmarks = record.landmarks @ m[:, :2].T + m[:, 2]
            np.testing.assert_allclose(bank.landmarks[i], expected_landmarks, atol=1e-3)
            # Two resamplings (frame -> 128 px whole face -> 64 px full face) against one: close, not equal.
            diff = np.abs(bank.images[i].astype(np.float32) - direct.astype(np.float32))
            assert diff.mean() < 6.0, diff.mean()

    def test_whole_face_from_a_head_faceset_follows_the_face(self, tmp_path):
        """DeepFaceLab's head crop is shifted sideways by the face's yaw: a narrower crop is cut
        through the frame, not by a fixed scale of the head crop."""
        from vfxswap.config import ExtractConfig
        from vfxswap.extract import extract

        seq = ROOT / "samples" / "plate_seq"
        extract(str(seq / "plate.1001.png"), tmp_path / "head", ExtractConfig(size=128, face_type="head"))
        bank = FaceBank(tmp_path / "head", resolution=64, face_type="whole_face")
        frame = cv2.cvtColor(cv2.imread(str(seq / "plate.1001.png")), cv2.COLOR_BGR2RGB)
        for i, record in enumerate(bank.records):
            m = face_from_frame(record.landmarks, 64, "whole_face")
            np.testing.assert_allclose(bank.landmarks[i], record.landmarks @ m[:, :2].T + m[:, 2], atol=0.05)
            diff = np.abs(bank.images[i].astype(np.float32) - warp_to_face(frame, m, 64).astype(np.float32))
            assert diff.mean() < 8.0, (i, diff.mean())

    def test_wider_face_type_is_refused(self, dst_faceset):
        with pytest.raises(ConfigError) as info:
            FaceBank(dst_faceset, resolution=64, face_type="head")
        message = str(info.value)
        assert "\n" not in message and "head" in message and "whole_face" in message

    def test_unknown_face_type_is_refused(self, dst_faceset):
        with pytest.raises(ConfigError):
            FaceBank(dst_faceset, resolution=64, face_type="chin")

    def test_missing_and_unreadable_crops(self, dst_faceset, tmp_path):
        folder = tmp_path / "fs"
        shutil.copytree(dst_faceset, folder)
        record = read_faceset(folder)[5]
        (folder / record.crop_name).unlink()
        with pytest.raises(FacesetError) as info:
            FaceBank(folder, resolution=64, face_type="whole_face")
        assert record.crop_name in str(info.value) and "\n" not in str(info.value)
        (folder / record.crop_name).write_bytes(b"not a png")
        with pytest.raises(FacesetError, match=record.crop_name):
            FaceBank(folder, resolution=64, face_type="whole_face")

    def test_missing_or_empty_faceset(self, tmp_path):
        with pytest.raises(FacesetError, match="vfxswap extract"):
            FaceBank(tmp_path / "nowhere", resolution=64, face_type="whole_face")
        (tmp_path / "faceset.jsonl").write_text("")
        with pytest.raises(FacesetError, match="vfxswap extract") as info:
            FaceBank(tmp_path, resolution=64, face_type="whole_face")
        assert "\n" not in str(info.value)


class TestPriorityWeights:
    def test_eyes_and_mouth_weigh_more(self, src_bank):
        landmarks = src_bank.landmarks[0]
        w = priority_weights(landmarks, 64, eyes=3.0, mouth=2.0)
        assert w.shape == (64, 64) and w.dtype == np.float32 and w.min() == 1.0
        for part, value in ((slice(36, 42), 3.0), (slice(42, 48), 3.0), (slice(48, 60), 2.0)):
            x, y = np.round(landmarks[part].mean(axis=0)).astype(int)
            assert w[y, x] == value
        x, y = np.round(landmarks[30]).astype(int)  # nose tip
        assert w[y, x] == 1.0 and w[0, 0] == 1.0
        assert priority_weights(landmarks, 64, eyes=1.0, mouth=1.0).max() == 1.0

    def test_weights_below_one_are_refused(self, src_bank):
        with pytest.raises(ConfigError):
            priority_weights(src_bank.landmarks[0], 64, eyes=0.5)


class TestPairBatches:
    def test_keys_shapes_and_ranges(self, src_bank, dst_bank):
        batch = PairBatches(src_bank, dst_bank, batch_size=4, seed=0).batch(0)
        assert tuple(batch) == BATCH_KEYS
        for side in ("src", "dst"):
            for key in ("in", "target"):
                t = batch[f"{side}_{key}"]
                assert t.shape == (4, 3, 64, 64) and t.dtype == torch.float32 and t.is_contiguous()
                assert 0.0 <= t.min() and t.max() <= 1.0
            mask, weight = batch[f"{side}_mask"], batch[f"{side}_weight"]
            assert mask.shape == weight.shape == (4, 1, 64, 64)
            assert mask.dtype == weight.dtype == torch.float32
            assert set(mask.unique().tolist()) == {0.0, 1.0}
            assert weight.min() == 1.0 and weight.max() == 3.0  # eyes weigh more

    def test_deterministic_per_step(self, src_bank, dst_bank):
        a = PairBatches(src_bank, dst_bank, batch_size=4, seed=1, color_transfer=True)
        b = PairBatches(src_bank, dst_bank, batch_size=4, seed=1, color_transfer=True)
        assert _equal(a.batch(5), a.batch(5))
        assert _equal(a.batch(5), b.batch(5))
        assert not torch.equal(a.batch(5)["src_in"], a.batch(6)["src_in"])
        c = PairBatches(src_bank, dst_bank, batch_size=4, seed=2, color_transfer=True)
        assert not torch.equal(a.batch(5)["dst_target"], c.batch(5)["dst_target"])

    def test_iterate_with_workers_equals_serial_batches(self, src_bank, dst_bank):
        threaded = PairBatches(src_bank, dst_bank, batch_size=3, seed=7, workers=2)
        serial = PairBatches(src_bank, dst_bank, batch_size=3, seed=7, workers=0)
        got = list(threaded.iterate(3, 10))
        assert [s for s, _ in got] == list(range(3, 10))
        for step, batch in got:
            assert _equal(batch, serial.batch(step))
        # Resuming at step 6 gives the tail of the same run.
        resumed = list(serial.iterate(6, 10))
        assert all(_equal(x, y) for (_, x), (_, y) in zip(resumed, got[3:], strict=True))

    def test_iterate_stops_its_threads_when_closed(self, src_bank, dst_bank):
        before = threading.active_count()
        it = PairBatches(src_bank, dst_bank, batch_size=2, seed=0, workers=2).iterate(0)  # endless
        for step, _ in it:
            if step == 4:
                break
        it.close()
        assert threading.active_count() == before

    def test_mask_and_weights_follow_the_target(self, src_bank, dst_bank):
        # Banks whose images are their own masks: the target must then be the warped mask.
        banks = {}
        for side, bank in (("src", src_bank), ("dst", dst_bank)):
            banks[side] = copy.copy(bank)
            banks[side].images = np.repeat(bank.masks[..., None], 3, axis=3)
        pairs = PairBatches(banks["src"], banks["dst"], batch_size=8, seed=3, color_jitter=False)
        for step in range(3):
            batch = pairs.batch(step)
            for side in ("src", "dst"):
                target = batch[f"{side}_target"][:, 0]
                mask, weight = batch[f"{side}_mask"][:, 0], batch[f"{side}_weight"][:, 0]
                assert ((target > 0.5) == (mask > 0.5)).float().mean() > 0.995
                # The weighted eyes and mouth (from the transformed landmarks) lie inside the warped mask.
                assert mask[weight > 1].mean() > 0.97
            # src faces are frontal: the mask's centroid is the centroid of the eyes and mouth, flipped or not.
            mask, weight = batch["src_mask"][:, 0], batch["src_weight"][:, 0]
            for j in range(8):
                my, mx = (c.float().mean() for c in torch.nonzero(mask[j], as_tuple=True))
                wy, wx = (c.float().mean() for c in torch.nonzero(weight[j] > 1, as_tuple=True))
                assert abs(mx - wx) < 2.0 and abs(my - wy) < 8.0, (j, mx, wx, my, wy)

    def test_warp_changes_the_input_only(self, src_bank, dst_bank):
        warped = PairBatches(src_bank, dst_bank, batch_size=4, seed=5, warp=True).batch(2)
        plain = PairBatches(src_bank, dst_bank, batch_size=4, seed=5, warp=False).batch(2)
        for side in ("src", "dst"):
            for key in ("target", "mask", "weight"):
                assert torch.equal(warped[f"{side}_{key}"], plain[f"{side}_{key}"])
            assert torch.equal(plain[f"{side}_in"], plain[f"{side}_target"])
            change = (warped[f"{side}_in"] - warped[f"{side}_target"]).abs().mean()
            assert 0.005 < change < 0.15

    def test_color_transfer_recolours_src_only(self, src_bank, dst_bank):
        with_ct = PairBatches(src_bank, dst_bank, batch_size=4, seed=6, color_transfer=True, warp=False).batch(0)
        without = PairBatches(src_bank, dst_bank, batch_size=4, seed=6, warp=False).batch(0)
        assert not torch.equal(with_ct["src_target"], without["src_target"])
        assert torch.equal(with_ct["src_in"], with_ct["src_target"])  # input and target alike
        assert torch.equal(with_ct["src_mask"], without["src_mask"])
        for key in ("dst_in", "dst_target", "dst_mask"):
            assert torch.equal(with_ct[key], without[key])

    def test_no_augmentation_gives_the_bank_crops(self, src_bank, dst_bank):
        batch = PairBatches(src_bank, dst_bank, batch_size=8, seed=9, flip=False, rotation=0.0,
                            shift=0.0, scale=0.0, warp=False, color_jitter=False).batch(0)
        target = batch["src_target"].permute(0, 2, 3, 1).numpy()
        indices = [int(np.argmin([np.abs(img - target[j]).mean() for img in src_bank.images.astype(np.float32) / 255]))
                   for j in range(8)]
        for j, i in enumerate(indices):
            np.testing.assert_allclose(target[j], src_bank.images[i] / 255, atol=1e-5)

    def test_mismatched_banks_and_bad_options_are_refused(self, src_bank, src_faceset):
        other = FaceBank(src_faceset, resolution=32, face_type="whole_face")
        with pytest.raises(ConfigError):
            PairBatches(src_bank, other, batch_size=2, seed=0)
        with pytest.raises(ConfigError):
            PairBatches(src_bank, src_bank, batch_size=0, seed=0)
        with pytest.raises(ConfigError):
            PairBatches(src_bank, src_bank, batch_size=2, seed=-1)


def test_holdout_setting_is_checked():
    from vfxswap.train.loop import TrainConfig

    for bad in (-1, 1):
        with pytest.raises(ConfigError, match="--holdout"):
            TrainConfig(src="s", dst="d", output="o", holdout=bad)
    assert TrainConfig(src="s", dst="d", output="o").holdout == 10
