"""Option parsing every ``senet`` command shares: values, ``-o KEY=VALUE``, boolean flags, help.

- ``parse_value``: one reading of a command-line value in every command (``8``, ``0.5``, ``true``,
  ``none``, ``tanh``, and tuples written ``1,2``, ``(1,2)`` or ``[1, 2]``).
- ``-o/--model-option KEY=VALUE`` always means a model option; ``parse_model_options`` reads them
  (a one-element value of a tuple-typed option such as ``se_stages=1`` becomes ``(1,)``).
- ``BoolFlag``: ``--flag`` / ``--no-flag`` (``--flag true|false`` is accepted too).
- ``HelpFormatter``: shows a default only when there is one (never "(default: None)").
- ``add_dataclass_arguments``: flags generated from a dataclass's fields (type, ``Literal``
  choices, and ``metadata`` help/group), as ``senet train`` does for ``TrainConfig``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Union, get_args, get_origin

from senet.utils.options import FALSE_WORDS, TRUE_WORDS, parse_key_value, parse_value


@functools.lru_cache(maxsize=1)
def tuple_options() -> frozenset[str]:
    """Model options whose value is a tuple (``se_stages``, ...), read from the builders' signatures."""
    import inspect

    from senet.models.registry import get_entry, list_models  # lazy: it imports torch

    names = set()
    for model in list_models():
        for name, param in inspect.signature(get_entry(model).builder).parameters.items():
            if "tuple[" in str(param.annotation) or "Sequence[" in str(param.annotation):
                names.add(name)
    return frozenset(names)


def parse_model_options(items: Iterable[str] | None) -> dict[str, object]:
    """``["reduction=8", "se_stages=1,2"]`` → ``{"reduction": 8, "se_stages": (1, 2)}``.

    ``se_stages=(1,2)``, ``se_stages=1,2`` and ``se_stages=[1, 2]`` give the same value;
    ``se_stages=1`` gives ``(1,)``.
    """
    options: dict[str, object] = {}
    for item in items or []:
        key, value = parse_key_value(item)
        if key in tuple_options() and value is not None and not isinstance(value, tuple):
            value = (value,)
        options[key] = value
    return options


def add_model_options_argument(parser: argparse.ArgumentParser | Any) -> None:
    """``-o/--model-option KEY=VALUE`` (repeatable); read the list with ``parse_model_options``."""
    parser.add_argument(
        "-o",
        "--model-option",
        dest="model_options",
        action="append",
        metavar="KEY=VALUE",
        help="model option, repeatable: -o reduction=8 -o gate=tanh -o se_stages=1,2 -o in_chans=1",
    )


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in TRUE_WORDS or low == "1":
        return True
    if low in FALSE_WORDS or low == "0":
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true/false)")


class BoolFlag(argparse.Action):
    """``--flag`` sets True, ``--no-flag`` False; ``--flag false`` also works (older scripts)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kw: Any) -> None:
        strings = []
        for s in option_strings:
            strings.append(s)
            if s.startswith("--"):
                strings.append("--no-" + s[2:])
        kw.pop("nargs", None)
        super().__init__(strings, dest, nargs="?", metavar="BOOL", **kw)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if option_string and option_string.startswith("--no-"):
            if values is not None:
                parser.error(f"{option_string} takes no value")
            setattr(namespace, self.dest, False)
            return
        try:
            setattr(namespace, self.dest, True if values is None else parse_bool(values))
        except argparse.ArgumentTypeError as err:
            parser.error(f"argument {option_string}: {err}")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows ``(default: X)`` only for a real default; ``--flag, --no-flag`` for booleans."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and default not in (None, False, argparse.SUPPRESS, [])
            and action.option_strings
            and not isinstance(action, argparse._HelpAction | argparse._VersionAction)
        ):
            text += " (default: %(default)s)"
        return text

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, BoolFlag):
            return ", ".join(action.option_strings)
        return super()._format_action_invocation(action)


# --------------------------------------------------------------------------------------------
# Flags generated from a dataclass
# --------------------------------------------------------------------------------------------
def _floats(text: str) -> tuple[float, ...]:
    try:
        value = parse_value(text)
        values = value if isinstance(value, tuple) else (value,)
        return tuple(float(v) for v in values)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers"
        ) from None


def _str_or_true(text: str) -> str | bool:
    return True if text.strip().lower() in TRUE_WORDS else text


def _non_none(tp: Any) -> list[Any]:
    if get_origin(tp) in (Union, types.UnionType):
        return [a for a in get_args(tp) if a is not type(None)]
    return [tp]


def argument_kwargs(tp: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """argparse keywords for a field of type ``tp``: choices, bool flags, numbers, tuples."""
    kinds = _non_none(tp)
    kw: dict[str, Any] = {"help": meta.get("help")}
    if "metavar" in meta:
        kw["metavar"] = meta["metavar"]
    if meta.get("nargs"):
        kw.update(nargs=meta["nargs"], const=meta.get("const"), type=_str_or_true)
        return kw
    if len(kinds) == 1 and get_origin(kinds[0]) is Literal:
        kw.update(choices=list(get_args(kinds[0])), metavar=kw.get("metavar"))
        if kw["metavar"] is None:
            kw["metavar"] = "{" + ",".join(get_args(kinds[0])) + "}"
        return kw
    if kinds == [bool]:
        kw["action"] = BoolFlag
        kw.pop("metavar", None)
        return kw
    if len(kinds) == 1 and get_origin(kinds[0]) is tuple:
        kw.update(type=_floats, metavar=kw.get("metavar") or "X,Y,...")
        return kw
    if len(kinds) == 1 and kinds[0] in (int, float, str):
        kw["type"] = kinds[0]
        kw.setdefault("metavar", {int: "N", float: "X", str: "TEXT"}[kinds[0]])
        return kw
    raise TypeError(f"no command-line form for type {tp}")


def add_dataclass_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    hints: dict[str, Any],
    groups: Sequence[str],
    default: Any = argparse.SUPPRESS,
    titles: Callable[[str], str] = str,
) -> dict[str, argparse._ArgumentGroup]:
    """One ``--field-name`` per field of ``cls`` whose metadata has a help text (not ``cli=False``).

    With ``default=SUPPRESS`` only the flags a user gives appear in the parsed namespace, so
    they can override a base config (a recipe, a saved run) without hiding its values.
    """
    made = {g: parser.add_argument_group(titles(g)) for g in groups}
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        if not meta.get("help") or meta.get("cli", True) is False:
            continue
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        kw = argument_kwargs(hints[f.name], meta)
        made[meta.get("group", groups[-1])].add_argument(flag, dest=f.name, default=default, **kw)
    return made
