"""Training and evaluation: the paper's recipes, the loop, checkpoints, distributed helpers.

``get_recipe(name, **overrides) -> TrainConfig``, ``train(config) -> dict``,
``evaluate(model, loader_or_dataset) -> dict`` and ``build_eval_loader(config, split)``;
docs/training.md describes the run directory and every option.
"""

from senet.train.inputs import DataInfo, build_eval_loader, build_inputs
from senet.train.loop import NonFiniteLossError, evaluate, train
from senet.train.recipes import RECIPES, TrainConfig, get_recipe, recipe_description

__all__ = [
    "RECIPES",
    "DataInfo",
    "NonFiniteLossError",
    "TrainConfig",
    "build_eval_loader",
    "build_inputs",
    "evaluate",
    "get_recipe",
    "recipe_description",
    "train",
]
