"""The model table (README, ``senet models --table``): params and MACs beside the paper's values."""

from __future__ import annotations

from tqdm import tqdm

from senet.complexity import count
from senet.models.registry import build_model, get_entry


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _beside_baseline(name: str) -> tuple[str, bool, str]:
    """Sort key that puts each SE network right after its plain baseline."""
    entry = get_entry(name)
    return (entry.baseline or name, entry.has_se, name)


def model_table(names: list[str], progress: bool = False) -> str:
    """Markdown table: name, input, params, conv/FC GMACs, total with SE ops, paper GFLOPs/params."""
    header = (
        "| model | input | params | GMACs (conv+FC) | GMACs (+SE ops) | paper GFLOPs | paper params (M) |\n"
        "|---|---|---|---|---|---|---|"
    )
    rows = [header]
    names = sorted(names, key=_beside_baseline)
    for name in tqdm(names, desc="counting", disable=not progress, leave=False):
        entry = get_entry(name)
        c = count(build_model(name), entry.input_size)
        rows.append(
            f"| `{name}` | {entry.input_size} | {c.params:,} | {c.gmacs:.3f} | {c.gtotal:.3f} | "
            f"{_fmt(entry.paper.gmacs, '.4g')} | {_fmt(entry.paper.params_m, '.1f')} |"
        )
    return "\n".join(rows)
