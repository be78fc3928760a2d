"""Reading command-line values: one reading of ``8``, ``0.5``, ``true``, ``none``, ``tanh`` and
tuples (``1,2``, ``(1,2)``, ``[1, 2]``) for every command and for the library code behind them."""

from __future__ import annotations

import ast

TRUE_WORDS, FALSE_WORDS, NONE_WORDS = (
    ("true", "yes", "on"),
    ("false", "no", "off"),
    ("none", "null"),
)


def parse_value(text: str) -> object:
    """``8`` → 8, ``0.5`` → 0.5, ``true`` → True, ``none`` → None, ``1,2`` / ``(1,2)`` → (1, 2),
    ``'a b'`` → "a b", else the text itself (``tanh``). Lists become tuples."""
    text = text.strip()
    if not text:
        raise ValueError("empty value")
    low = text.lower()
    if low in TRUE_WORDS or low in FALSE_WORDS:
        return low in TRUE_WORDS
    if low in NONE_WORDS:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        if text[0] in "([{'\"" or text[-1] in ")]}'\"":
            raise ValueError(
                f"cannot read {text!r} (unbalanced brackets or quotes?); write a tuple as 1,2 or (1,2)"
            ) from None
        if "," in text:
            return tuple(parse_value(t) for t in text.split(",") if t.strip())
        return text
    return _tuples(value)


def _tuples(value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value


def parse_key_value(item: str, what: str = "model option") -> tuple[str, object]:
    """``"reduction=8"`` → ``("reduction", 8)``; bad syntax raises a one-line ``ValueError``."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key or not key.isidentifier():
        raise ValueError(f"{what} {item!r} must look like KEY=VALUE (e.g. -o reduction=8)")
    try:
        return key, parse_value(value)
    except ValueError as err:
        raise ValueError(f"{what} {item!r}: {err}") from None
