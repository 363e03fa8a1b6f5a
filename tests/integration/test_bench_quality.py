"""tools/bench_quality.py end to end on real clips of ../shared/media at a tiny budget (skips without them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[2]
MEDIA = ROOT.parent / "shared" / "media"


@pytest.mark.skipif(not (MEDIA / "d0.mp4").is_file(), reason="../shared/media is absent")
def test_a_tiny_budget_run_writes_a_row_and_a_contact_sheet(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_quality.py"), "--src", "d0.mp4",
                           "--plate", "d20.mp4", "--budget", "15s", "--frames", "24", "--train-args",
                           "--resolution 64 --batch-size 4", "-o", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    [row] = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert row["pair"] == "d0 -> d20" and row["recipe"] == "custom" and row["resolution"] == 64
    assert row["steps"] > 0 and row["budget_s"] == 15 and row["gflop_per_face"] > 0
    summary = row["summary"]
    for key in ("face_found_rate", "identity_toward_src", "face_detail_ratio_mean", "landmark_error_mean"):
        assert key in summary
    sheet = cv2.imread(row["sheet"])
    assert sheet.shape[1] == 3 * 160 and sheet.shape[0] >= 160  # plate | swap | nearest src, a row per sample


def test_without_media_it_skips_in_one_line(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import bench_quality
    finally:
        sys.path.remove(str(ROOT / "tools"))
    monkeypatch.setattr(bench_quality, "MEDIA", tmp_path / "absent")
    monkeypatch.setattr(sys, "argv", ["bench_quality.py", "-o", str(tmp_path / "out")])
    assert bench_quality.main() == 0
    assert not (tmp_path / "out").exists()
