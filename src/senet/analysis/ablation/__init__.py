"""Ablation grids like the paper's Sec. 6 (Tables 10–16): variants × seeds, each an ordinary run.

- ``grid``: the variants, the runs and each run's training config (``build_variants``, ``AblationGrid``)
- ``queue``: working through a grid with resume, claims for several workers, recorded failures
  (``run_grid``)
- ``tables``: the paper-style table, CSVs and the error-vs-params plot (``write_table``)
"""

from senet.analysis.ablation.grid import (
    AblationGrid,
    Run,
    Variant,
    build_variants,
    default_recipe,
    format_value,
    parse_value,
    parse_vary,
    plain_options,
)
from senet.analysis.ablation.queue import (
    claim_is_stale,
    claim_path,
    failure,
    holding_claim,
    is_finished,
    run_grid,
    run_state,
    train_runner,
    try_claim,
)
from senet.analysis.ablation.tables import collect_results, csv_text, markdown_table, write_table

__all__ = [
    "AblationGrid",
    "Run",
    "Variant",
    "build_variants",
    "claim_is_stale",
    "claim_path",
    "collect_results",
    "csv_text",
    "default_recipe",
    "failure",
    "format_value",
    "holding_claim",
    "is_finished",
    "markdown_table",
    "parse_value",
    "parse_vary",
    "plain_options",
    "run_grid",
    "run_state",
    "train_runner",
    "try_claim",
    "write_table",
]
