"""The one schema of the config dataclasses (vfxswap.config): strict types from the fields' hints,
ranges from their metadata, one-line ConfigErrors."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from vfxswap.config import (ConvertConfig, ExtractConfig, allowed_values, check_fields, number, setting_problem,
                            value_problem)
from vfxswap.errors import ConfigError


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sample:
    count: int = number(1, at_least=1, at_most=10)
    ratio: float = number(0.5, above=0, at_most=1)
    on: bool = False
    mode: Literal["a", "b"] = "a"
    label: str | None = None
    pair: tuple[int, int] = (0, 0)
    sizes: tuple[int, ...] = ()
    names: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        check_fields(self)


class TestTypes:
    @pytest.mark.parametrize("name, value", [
        ("count", True), ("count", 1.0), ("count", 1.5), ("count", "3"), ("count", [1]), ("count", None),
        ("ratio", True), ("ratio", "0.5"), ("ratio", float("nan")), ("ratio", float("inf")),
        ("on", 1), ("on", "yes"), ("on", None),
        ("mode", "c"), ("mode", 1), ("mode", None),
        ("label", 5), ("label", ["x"]),
        ("pair", (1,)), ("pair", (1, "2")), ("pair", 3), ("pair", (1, True)),
        ("sizes", (1, 2.5)), ("sizes", "12"),
        ("names", ["a", 1]), ("names", "ab"),
    ])
    def test_wrong_types_are_refused(self, name, value):
        with pytest.raises(ConfigError, match=f"^--{name} must be .*, got ") as refused:
            Sample(**{name: value})
        assert "\n" not in str(refused.value)

    @pytest.mark.parametrize("name, value", [
        ("count", 10), ("ratio", 1), ("ratio", 0.25), ("on", True), ("mode", "b"), ("label", "x"),
        ("label", None), ("pair", [3, 4]), ("pair", (3, 4)), ("sizes", (1, 2, 3)), ("sizes", []), ("names", ["a"]),
    ])
    def test_right_types_are_accepted(self, name, value):
        assert getattr(Sample(**{name: value}), name) == value

    @pytest.mark.parametrize("name, value, message", [
        ("count", 0, "--count must be >= 1, got 0"), ("count", 11, "--count must be <= 10, got 11"),
        ("ratio", 0, r"--ratio must be in \(0, 1\], got 0"), ("ratio", 1.5, r"--ratio must be in \(0, 1\], got 1.5"),
    ])
    def test_ranges(self, name, value, message):
        with pytest.raises(ConfigError, match=f"^{message}$"):
            Sample(**{name: value})

    def test_descriptions_say_what_is_allowed(self):
        assert allowed_values(Sample, "count") == "an integer in 1..10"
        assert allowed_values(Sample, "ratio") == "a number in (0, 1]"
        assert allowed_values(Sample, "on") == "true or false"
        assert allowed_values(Sample, "mode") == "one of a, b"
        assert allowed_values(Sample, "label") == "a string"
        assert allowed_values(Sample, "sizes") == "a list, each item an integer"
        assert setting_problem(Sample, "count", 3) is None
        assert setting_problem(Sample, "count", 30) == "must be <= 10"
        assert value_problem(int, True) == "must be an integer"
        with pytest.raises(ConfigError, match="Sample has no setting nope"):
            setting_problem(Sample, "nope", 1)


class TestConfigs:
    @pytest.mark.parametrize("bad, message", [
        (dict(feather=[1, 2]), "--feather must be an integer in 0..256, got [1, 2]"),
        (dict(erode={"a": 1}), "--erode must be an integer in -128..128, got {'a': 1}"),
        (dict(smooth=1e9), "--smooth must be an integer in 0..100, got 1000000000.0"),
        (dict(smooth=10**9), "--smooth must be <= 100, got 1000000000"),
        (dict(feather=True), "--feather must be an integer in 0..256, got True"),
        (dict(batch=1.5), "--batch must be an integer in 1..1024, got 1.5"),
        (dict(feather=-1), "--feather must be >= 0, got -1"),
        (dict(detect_scale=0.0), "--detect-scale must be in (0, 1], got 0.0"),
        (dict(faces="most"), "--faces must be one of all, largest, reference, got 'most'"),
        (dict(backend="cuda"), "--backend must be one of auto, torch, compiled, tensorrt, onnxruntime, got 'cuda'"),
        (dict(skip_existing=1), "--skip-existing must be true or false, got 1"),
        (dict(color=3), "--color must be a string, got 3"),
        (dict(identity_threshold=0), "--identity-threshold must be > 0, got 0"),
    ])
    def test_convert_config_refuses(self, bad, message):
        with pytest.raises(ConfigError) as refused:
            ConvertConfig(**bad)
        assert str(refused.value) == message

    @pytest.mark.parametrize("bad, message", [
        (dict(size=16), "--size must be >= 32, got 16"),
        (dict(size=256.0), "--size must be an integer in 32..2048, got 256.0"),
        (dict(every=0), "--every must be >= 1, got 0"),
        (dict(face_type="chin"), "--face-type must be one of half, full, whole_face, head, got 'chin'"),
        (dict(detector="mmod"), "--detector must be one of hog, cnn, got 'mmod'"),
        (dict(min_sharpness=-1), "--min-sharpness must be >= 0, got -1"),
        (dict(resume="no"), "--resume must be true or false, got 'no'"),
    ])
    def test_extract_config_refuses(self, bad, message):
        with pytest.raises(ConfigError) as refused:
            ExtractConfig(**bad)
        assert str(refused.value) == message

    def test_defaults_and_plain_values_are_accepted(self):
        config = ConvertConfig(smooth=0, erode=-8, feather=12, batch=1, identity_threshold=1, detect_scale=0.5,
                               reference="ref.png", frames="1001-1010")
        assert config.faces == "reference" and config.identity_threshold == 1
        assert ExtractConfig(size=2048, min_sharpness=0, detect_scale=1).size == 2048

    @pytest.mark.parametrize("cls", [ConvertConfig, ExtractConfig])
    def test_every_field_has_a_described_type(self, cls):
        for field in dataclasses.fields(cls):
            text = allowed_values(cls, field.name)
            assert text.startswith(("an integer", "a number", "true or false", "one of", "a string")), (field.name, text)
            assert setting_problem(cls, field.name, getattr(cls(), field.name)) is None
