"""vfxswap.eval.report and .compare: the contact-sheet grid, SVG charts and comparison tables."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from vfxswap.eval.compare import SHORT_LABELS, Run, compare_markdown, run_labels
from vfxswap.eval.inputs import ShotFrame
from vfxswap.eval.report import (CELL, COLUMNS, SUMMARY_ROWS, cell_origin, contact_sheet, frame_cells, sheet_size,
                                 svg_chart)
from vfxswap.eval.shot import TARGETS


def frame(number: int) -> ShotFrame:
    plate = np.full((180, 320, 3), 90, np.uint8)
    swapped = plate.copy()
    mask = np.zeros((180, 320), np.float32)
    mask[60:120, 200:260] = 1.0  # a face right of centre
    swapped[mask > 0] = 200
    return ShotFrame(number=number, plate=plate, swapped=swapped, mask=mask, mask_source="matte")


class TestContactSheet:
    def test_size_and_cells_follow_the_grid(self):
        sheet = contact_sheet([frame(1001), frame(1002), frame(1003)], {1002: ["worst seam"]})
        assert sheet.shape == (sheet_size(3)[1], sheet_size(3)[0], 3)
        x, y = cell_origin(2, len(COLUMNS) - 1)
        assert x + CELL < sheet.shape[1] and y + CELL < sheet.shape[0]
        cells = frame_cells(frame(1003))
        for col, cell in enumerate(cells):
            x, y = cell_origin(2, col)
            assert np.array_equal(sheet[y:y + CELL, x:x + CELL], cell)

    def test_cells_are_centred_on_the_face_and_the_worst_row_is_framed_red(self):
        plate, swap, matte, diff = frame_cells(frame(1001))
        c = CELL // 2
        assert matte[c, c, 0] == 255 and matte[2, 2, 0] == 0
        assert swap[c, c, 0] == 200 and plate[c, c, 0] == 90 and diff[c, c].sum() > diff[2, 2].sum()
        sheet = contact_sheet([frame(1001), frame(1002)], {1002: ["worst seam"]})
        _, y = cell_origin(1, 0)
        assert tuple(sheet[y + 10, 2]) == (220, 40, 40)  # red frame on row 2
        _, y = cell_origin(0, 0)
        assert tuple(sheet[y + 10, 2]) != (220, 40, 40)


class TestSvgChart:
    def test_missing_values_break_the_line_and_nothing_is_referenced(self):
        svg = svg_chart([("a", [1, 2, 3, 4, 5], [0.1, 0.2, None, 0.3, 0.4])], title="t", limit=0.5, marks=[2])
        assert svg.startswith("<svg") and svg.count("<polyline") == 2
        assert 'stroke="#d62728" stroke-dasharray' in svg  # the target line
        assert not re.search(r'\s(src|href)=', svg)

    def test_nothing_to_draw(self):
        assert "not measured" in svg_chart([("a", [1, 2], [None, float("nan")])], title="landmarks")


class TestCompare:
    def run(self, color: str, seam: float, folder: str) -> tuple[dict, Path]:
        return ({"format": "vfxswap-eval", "summary": {"seam_ratio_mean": seam, "identity_toward_src": 1.0},
                 "convert_settings": {"color": color, "blend": "feather", "matte": f"{folder}/m.####.png"}},
                Path(folder))

    def test_labels_come_from_the_settings_that_differ(self):
        runs = [self.run("rct", 0.8, "a"), self.run("mkl", 0.9, "b")]
        assert run_labels([r for r, _ in runs], [f for _, f in runs]) == ["color=rct", "color=mkl"]
        same = [self.run("rct", 0.8, "a"), self.run("rct", 0.9, "b")]
        assert run_labels([r for r, _ in same], [f for _, f in same]) == ["a", "b"]

    def test_markdown_table_marks_the_best_value(self):
        runs = [Run(folder=f, metrics=m, label=label)
                for (m, f), label in zip([self.run("rct", 0.8, "a"), self.run("mkl", 0.9, "b")], ["rct", "mkl"])]
        table = compare_markdown(runs).splitlines()
        assert table[0] == "| run | toward src | seam |"
        assert table[2] == "| rct | 100% | **0.800** |" and table[3] == "| mkl | 100% | 0.900 |"

    def test_blur_proof_rows_show_and_a_blur_loses_on_detail(self):
        """Issue 16: a sharp swap beats a blur on detail and face found, though both sit close to src."""
        sharp = {"format": "vfxswap-eval", "summary": {"identity_toward_src": 1.0, "face_found_rate": 1.0,
                                                       "face_detail_ratio_mean": 0.95, "mouth_correlation": 0.93}}
        blur = {"format": "vfxswap-eval", "summary": {"identity_toward_src": 1.0, "face_found_rate": 0.5,
                                                      "face_detail_ratio_mean": 0.3, "mouth_correlation": 0.4}}
        runs = [Run(folder=Path("a"), metrics=sharp, label="sharp"), Run(folder=Path("b"), metrics=blur, label="blur")]
        table = compare_markdown(runs).splitlines()
        assert table[0] == "| run | toward src | face found | detail | mouth corr. |"
        assert table[2] == "| sharp | 100% | **100%** | **0.950** | **0.930** |"

    def test_every_target_and_summary_row_has_a_short_label(self):
        keys = {key for key, _, _, _ in SUMMARY_ROWS}
        assert {key for key, _, _, _ in TARGETS} <= keys
        assert keys <= set(SHORT_LABELS)
