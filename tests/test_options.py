"""senet.cli._options: one reading of KEY=VALUE everywhere, boolean flags, generated flags, help."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Literal

import pytest

from senet.cli._options import (
    BoolFlag,
    HelpFormatter,
    add_dataclass_arguments,
    parse_model_options,
    parse_value,
)


@pytest.mark.parametrize(
    "text, value",
    [
        ("8", 8),
        ("0.5", 0.5),
        ("-3", -3),
        ("1e-4", 1e-4),
        ("true", True),
        ("False", False),
        ("none", None),
        ("tanh", "tanh"),
        ("'a b'", "a b"),
        ("1,2", (1, 2)),
        ("(1,2)", (1, 2)),
        ("[1, 2]", (1, 2)),
        ("(1,)", (1,)),
        ("avg,max", ("avg", "max")),
    ],
)
def test_values_read_the_same_in_every_spelling(text: str, value: object) -> None:
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_tuple_options_accept_every_spelling() -> None:
    same = [parse_model_options([f"se_stages={v}"]) for v in ("(1,2)", "1,2", "[1, 2]")]
    assert same == [{"se_stages": (1, 2)}] * 3
    assert parse_model_options(["se_stages=1"]) == parse_model_options(["se_stages=(1,)"])
    assert parse_model_options(["se_stages=1"]) == {"se_stages": (1,)}
    assert parse_model_options(["reduction=8", "gate=tanh", "se_bias=false"]) == {
        "reduction": 8,
        "gate": "tanh",
        "se_bias": False,
    }


@pytest.mark.parametrize(
    "item, match",
    [
        ("se_stages=(1,2", r"unbalanced brackets"),
        ("reduction", r"must look like KEY=VALUE"),
        ("=3", r"must look like KEY=VALUE"),
        ("reduction=", r"empty value"),
        ("two words=1", r"must look like KEY=VALUE"),
    ],
)
def test_bad_syntax_is_one_line(item: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        parse_model_options([item])
    assert "\n" not in str(err.value) and repr(item) in str(err.value)


def test_bool_flag_pairs_and_values() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--progress", action=BoolFlag, default=None)
    assert p.parse_args([]).progress is None
    assert p.parse_args(["--progress"]).progress is True
    assert p.parse_args(["--no-progress"]).progress is False
    assert p.parse_args(["--progress", "false"]).progress is False  # older scripts' spelling
    with pytest.raises(SystemExit):
        p.parse_args(["--progress", "maybe"])


@dataclasses.dataclass
class _Cfg:
    kind: Literal["a", "b"] = dataclasses.field(
        default="a", metadata={"help": "kind", "group": "g"}
    )
    size: int | None = dataclasses.field(default=None, metadata={"help": "size", "group": "g"})
    flag: bool = dataclasses.field(default=False, metadata={"help": "a flag", "group": "g"})
    xs: tuple[float, ...] = dataclasses.field(default=(), metadata={"help": "xs", "group": "g"})
    hidden: int = dataclasses.field(default=0, metadata={"help": "h", "group": "g", "cli": False})


def test_flags_generated_from_a_dataclass(capsys: pytest.CaptureFixture[str]) -> None:
    import typing

    p = argparse.ArgumentParser(formatter_class=HelpFormatter)
    add_dataclass_arguments(p, _Cfg, typing.get_type_hints(_Cfg), ["g"])
    assert vars(p.parse_args([])) == {}  # unset flags are absent: they never hide a base value
    ns = p.parse_args(["--kind", "b", "--size", "3", "--flag", "--xs", "82,123"])
    assert vars(ns) == {"kind": "b", "size": 3, "flag": True, "xs": (82.0, 123.0)}
    assert p.parse_args(["--xs", "(1, 2.5)"]).xs == (1.0, 2.5)
    with pytest.raises(SystemExit):
        p.parse_args(["--kind", "c"])
    with pytest.raises(SystemExit):
        p.parse_args(["--hidden", "1"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        p.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "--flag, --no-flag" in text and "{a,b}" in text and "default: None" not in text
