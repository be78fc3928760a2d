"""The ``senet`` command line: a thin argparse layer over the Python API.

Each module in this package that defines ``register(subparsers)`` contributes its subcommands
(``models.py``: ``models``/``complexity``; ``train.py``: ``train``/``eval``/``recipes``; ...). A
subcommand's handler receives the parsed ``argparse.Namespace`` and returns an exit code. Modules
import heavy dependencies inside their handlers so ``senet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="senet",
        description="Squeeze-and-Excitation Networks: models, training, evaluation and analysis.",
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def _version() -> str:
    from senet import __version__

    return f"senet {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, FileNotFoundError, NotADirectoryError, RuntimeError) as err:
        # bad input: say what and how to fix it, without a traceback
        print(f"senet {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
