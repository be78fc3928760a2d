"""Training and evaluation: the paper's recipes, the loop, checkpoints, distributed helpers.

``get_recipe(name, **overrides) -> TrainConfig``, ``train(config) -> dict``,
``evaluate(model, batches) -> dict``, ``train_one_epoch(runner, batches, epoch)`` (with a
``StepRunner``) and ``build_eval_loader(config, split)``; docs/training.md describes the run
directory and every option.
"""

from senet.train.engine import (
    EpochResult,
    NonFiniteLossError,
    StepRunner,
    StopFlag,
    TrainLog,
    evaluate,
    train_one_epoch,
)
from senet.train.inputs import DataInfo, build_eval_loader, build_inputs
from senet.train.loop import train
from senet.train.recipes import (
    DATASET_RECIPES,
    MODEL_RECIPES,
    RECIPES,
    TrainConfig,
    choose_recipe,
    get_recipe,
    recipe_description,
)

__all__ = [
    "DATASET_RECIPES",
    "MODEL_RECIPES",
    "RECIPES",
    "DataInfo",
    "EpochResult",
    "NonFiniteLossError",
    "StepRunner",
    "StopFlag",
    "TrainConfig",
    "TrainLog",
    "build_eval_loader",
    "build_inputs",
    "choose_recipe",
    "evaluate",
    "get_recipe",
    "recipe_description",
    "train",
    "train_one_epoch",
]
