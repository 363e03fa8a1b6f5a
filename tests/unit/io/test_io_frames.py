"""Frame-range expressions (vfxswap.io.frames): parse and format; frame rates (parse_rate)."""

from __future__ import annotations

import random
import re
from fractions import Fraction

import opentimelineio as otio
import pytest

from vfxswap.errors import ConfigError
from vfxswap.io import format_frames, parse_frames
from vfxswap.io.frames import MAX_FRAMES, parse_rate


class TestParseFrames:
    @pytest.mark.parametrize(("expr", "expected"), [
        ("1001", [1001]),
        ("1001-1005", [1001, 1002, 1003, 1004, 1005]),
        ("1001-1010x3", [1001, 1004, 1007, 1010]),
        ("1001-1011x3", [1001, 1004, 1007, 1010]),
        ("1001-1100x2", list(range(1001, 1101, 2))),
        ("1001,1005,1010-1012", [1001, 1005, 1010, 1011, 1012]),
        (" 1001 , 1003-1004 ", [1001, 1003, 1004]),
        ("1010-1012,1001,1011,1001", [1001, 1010, 1011, 1012]),  # sorted, de-duplicated
        ("5-5", [5]),
        ("0-2", [0, 1, 2]),
        ("1-9X4", [1, 5, 9]),
    ])
    def test_expressions(self, expr, expected):
        assert parse_frames(expr) == expected

    @pytest.mark.parametrize(("expr", "token"), [
        ("abc", "abc"),
        ("1001-", "1001-"),
        ("-5", "-5"),
        ("1001-1100x", "1001-1100x"),
        ("1001:1100", "1001:1100"),
        ("1.5", "1.5"),
        ("1001,,1002", "(empty)"),
        ("1001,", "(empty)"),
        ("1001-1100x2x3", "1001-1100x2x3"),
        ("1100-1001", "1100-1001"),
        ("1-10x0", "1-10x0"),
    ])
    def test_malformed_names_the_token(self, expr, token):
        with pytest.raises(ConfigError) as info:
            parse_frames(expr)
        message = str(info.value)
        assert token in message and "\n" not in message

    @pytest.mark.parametrize("expr", ["", "   "])
    def test_empty(self, expr):
        with pytest.raises(ConfigError, match="empty"):
            parse_frames(expr)

    def test_backwards_range_says_how_to_fix(self):
        with pytest.raises(ConfigError, match="write 1001-1100"):
            parse_frames("1100-1001")

    def test_too_many_frames(self):
        with pytest.raises(ConfigError, match="more than"):
            parse_frames(f"1-{MAX_FRAMES + 1}")

    def test_not_a_string(self):
        with pytest.raises(ConfigError, match="string"):
            parse_frames(1001)  # type: ignore[arg-type]


class TestFormatFrames:
    @pytest.mark.parametrize(("frames", "expected"), [
        ([], ""),
        ([1001], "1001"),
        (range(1001, 1011), "1001-1010"),
        (list(range(1001, 1011)) + [1020], "1001-1010,1020"),
        ([1020, 1001, 1002, 1001], "1001-1002,1020"),
        (range(1001, 1101, 2), "1001-1099x2"),
        ([1, 2, 3, 5, 7, 9, 20], "1-3,5-9x2,20"),
        ([1, 3], "1,3"),
        ([1, 3, 4, 5], "1,3-5"),
    ])
    def test_compacts(self, frames, expected):
        assert format_frames(frames) == expected

    def test_round_trip(self):
        rng = random.Random(7)
        for _ in range(200):
            frames = {rng.randrange(990, 1060) for _ in range(rng.randrange(1, 40))}
            assert parse_frames(format_frames(frames)) == sorted(frames)

    @pytest.mark.parametrize("bad", [[-1, 3], [1, 2.5], [True]])
    def test_rejects_non_frame_numbers(self, bad):
        with pytest.raises(ConfigError, match="non-negative ints"):
            format_frames(bad)


class TestParseRate:
    @pytest.mark.parametrize(("text", "expected"), [
        ("24", Fraction(24)), ("25", Fraction(25)), ("30", Fraction(30)), (" 60 ", Fraction(60)), ("5", Fraction(5)),
        ("23.976", Fraction(24000, 1001)), ("23.98", Fraction(24000, 1001)), ("23,976", Fraction(24000, 1001)),
        ("24000/1001", Fraction(24000, 1001)), ("24000 / 1001", Fraction(24000, 1001)),
        ("2997/125", Fraction(24000, 1001)), ("29.97", Fraction(30000, 1001)), ("30000/1001", Fraction(30000, 1001)),
        ("47.952", Fraction(48000, 1001)), ("59.94", Fraction(60000, 1001)), ("119.88", Fraction(120000, 1001)),
        ("12.5", Fraction(25, 2)), ("48/2", Fraction(24)), ("24.0", Fraction(24)),
        (23.976, Fraction(24000, 1001)), (24000 / 1001, Fraction(24000, 1001)), (25, Fraction(25)),
    ])
    def test_decimals_and_fractions_give_exact_rates(self, text, expected):
        assert parse_rate(text) == expected

    @pytest.mark.parametrize(("text", "nominal"), [("23.976", 24), ("23.98", 24), ("29.97", 30), ("59.94", 60),
                                                   ("47.952", 48), ("24000/1001", 24), ("24", 24), ("25", 25)])
    def test_every_broadcast_rate_is_one_otio_timecode_counts_in(self, text, nominal):
        # the rates as typed fail: "SMPTE timecode does not support this rate"
        time = otio.opentime.from_timecode("01:00:00:10", float(parse_rate(text)))
        assert time.value == nominal * 3600 + 10

    @pytest.mark.parametrize(("text", "fragment"), [
        ("abc", "bad frame rate 'abc'"), ("", "bad frame rate ''"), ("2x", "bad frame rate"), ("1/0", "bad frame rate"),
        ("nan", "bad frame rate"), ("inf", "bad frame rate"), (float("inf"), "bad frame rate"),
        (True, "bad frame rate"), (None, "bad frame rate"), ("0", "must be > 0"), ("-24", "must be > 0"),
        ("2000", "at most 1000"),
    ])
    def test_bad_rates_are_one_line_config_errors(self, text, fragment):
        with pytest.raises(ConfigError, match=re.escape(fragment)) as info:
            parse_rate(text)
        assert "\n" not in str(info.value) and "30000/1001" in str(info.value)
