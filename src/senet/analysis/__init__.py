"""What SE blocks do (Sec. 6–7): ablation grids, excitation statistics and plots, SE-guided pruning.

- ``senet.analysis.ablate``: variants × seeds as ordinary training runs, paper-style tables (Sec. 6)
- ``senet.analysis.excitations``: record and aggregate every SE block's gates (Sec. 7.2)
- ``senet.analysis.plots``: Figs. 6–7, class specificity, error vs. params
- ``senet.analysis.prune`` / ``prune_report``: structured pruning ranked by excitations vs. L1 norm

docs/analysis.md describes the commands (``senet ablate``, ``senet analyze excitations``,
``senet prune``) and the choices behind them.
"""
