"""Close-match suggestions for unknown names (models, options, recipes, weights tags, presets)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(
    name: str,
    choices: Iterable[str],
    n: int = 3,
    cutoff: float = 0.5,
    template: str = "did you mean {}? ",
) -> str:
    """``template`` filled with the closest ``choices`` to ``name`` (comma-separated), or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=cutoff)
    return template.format(", ".join(close)) if close else ""
