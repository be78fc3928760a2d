"""Parsing ``-o key=value`` model options from the command line."""

from __future__ import annotations

import argparse


def parse_value(text: str) -> object:
    """``8`` → 8, ``0.5`` → 0.5, ``true`` → True, ``none`` → None, ``1,2,3`` → (1, 2, 3), else str."""
    low = text.strip().lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    if low in ("none", "null"):
        return None
    if "," in text:
        return tuple(parse_value(t) for t in text.split(",") if t.strip())
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_model_options(items: list[str] | None) -> dict[str, object]:
    """``["reduction=8", "se_stages=1,2"]`` → ``{"reduction": 8, "se_stages": (1, 2)}``."""
    options: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"model option {item!r} must look like key=value (e.g. -o reduction=8)"
            )
        value_obj = parse_value(value)
        if key.strip() == "se_stages" and isinstance(value_obj, int):
            value_obj = (value_obj,)
        options[key.strip()] = value_obj
    return options


def add_model_options_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--model-option",
        dest="model_options",
        action="append",
        metavar="KEY=VALUE",
        help="model option, repeatable: -o reduction=8 -o gate=tanh -o se_stages=1,2,3 -o layout=torchvision",
    )
