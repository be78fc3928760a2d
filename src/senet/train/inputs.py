"""The data side of a run: datasets, loaders and the preprocessing a model's weights record.

``build_inputs(config)`` gives the train and validation loaders of a ``TrainConfig`` and the
``Preprocessing`` (mean/std, input size, classes) saved beside the weights; ``build_eval_loader``
gives the evaluation loader alone (for analysis code that trains with ``senet.train.train``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from senet.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FileBatchLoader,
    ImageTensorSet,
    TensorBatchLoader,
    build_dataset,
    build_loader,
    check_same_classes,
)
from senet.train.recipes import TrainConfig

Loader = TensorBatchLoader | FileBatchLoader


@dataclass
class Preprocessing:
    """What a model trained on this data expects at inference (stored in the weights' metadata)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: int
    eval_resize: int | None
    normalize: str
    in_memory: bool
    in_chans: int
    classes: list[str]

    def as_metadata(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


def _in_memory(config: TrainConfig) -> bool:
    return config.in_memory if config.in_memory is not None else config.augment != "rrc_flip"


def build_inputs(
    config: TrainConfig, rank: int = 0, world_size: int = 1, device: torch.device | str = "cpu"
) -> tuple[Loader, Loader, Preprocessing]:
    """Train loader, validation loader and preprocessing for ``config`` (classes checked to agree)."""
    in_memory = _in_memory(config)
    common = {
        "in_memory": in_memory, "input_size": config.input_size, "skip_corrupt": config.skip_corrupt,
        "download": config.download,
    }  # fmt: skip
    train_set = build_dataset(
        config.dataset, config.data_dir, config.train_split, subset=config.train_subset, **common
    )
    val_set = build_dataset(
        config.dataset, config.data_dir, config.val_split, subset=config.val_subset, **common
    )
    check_same_classes(train_set, val_set)
    prep = preprocessing_for(config, train_set)
    kw = {
        "augment": config.augment, "crop_padding": config.crop_padding, "rrc_scale_min": config.rrc_scale_min,
        "input_size": prep.input_size, "eval_resize": config.eval_resize, "mean": prep.mean, "std": prep.std,
        "seed": config.seed, "rank": rank, "world_size": world_size, "device": device,
        "workers": config.workers, "channels_last": config.channels_last,
    }  # fmt: skip
    train_loader = build_loader(train_set, config.batch_size, train=True, **kw)
    val_loader = build_loader(
        val_set, config.eval_batch_size or max(config.batch_size, 256), train=False, **kw
    )
    return train_loader, val_loader, prep


def preprocessing_for(config: TrainConfig, train_set: Any) -> Preprocessing:
    """Normalisation statistics: the config's, else the training split's own (in memory), else ImageNet's."""
    if isinstance(train_set, ImageTensorSet):
        c, size = int(train_set.images.shape[1]), train_set.image_size[0]
        mean, std = config.mean, config.std
        if mean is None or (std is None and config.normalize == "meanstd"):
            m, s = train_set.channel_stats()
            mean, std = mean or m, std or s
    else:
        c, size = 3, config.input_size or 224
        mean, std = config.mean or IMAGENET_MEAN, config.std or IMAGENET_STD
    if config.normalize == "mean":  # the paper's mean-RGB subtraction: no division
        std = (1.0,) * len(mean)
    if len(mean) != c:
        raise ValueError(
            f"mean {tuple(mean)} has {len(mean)} values but the images have {c} channels"
        )
    return Preprocessing(
        tuple(mean), tuple(std), size, config.eval_resize, config.normalize, _in_memory(config), c,
        list(train_set.classes),
    )  # fmt: skip


def build_eval_loader(
    config: TrainConfig,
    split: str = "val",
    *,
    preprocessing: Preprocessing | dict[str, Any] | None = None,
    subset: int | None = None,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> Loader:
    """An evaluation loader over ``split`` of ``config``'s dataset (every image once, in order).

    ``preprocessing`` (a ``Preprocessing`` or a weights file's metadata) fixes mean/std and size;
    without it the training split's statistics are used, as in training.
    """
    in_memory = _in_memory(config)
    prep = (
        preprocessing.as_metadata() if isinstance(preprocessing, Preprocessing) else preprocessing
    )
    input_size = (prep or {}).get("input_size", config.input_size)
    data = build_dataset(
        config.dataset, config.data_dir, split, in_memory=in_memory, input_size=input_size,
        subset=subset if subset is not None else config.val_subset, skip_corrupt=config.skip_corrupt,
        download=config.download,
    )  # fmt: skip
    if prep is None:
        train = build_dataset(
            config.dataset, config.data_dir, config.train_split, in_memory=in_memory,
            input_size=config.input_size, subset=config.train_subset, download=config.download,
        )  # fmt: skip
        prep = preprocessing_for(config, train).as_metadata()
    if prep.get("classes") and list(prep["classes"]) != list(data.classes):
        raise ValueError(
            f"the model was trained on classes {prep['classes'][:10]} but {split} has {data.classes[:10]}; "
            "evaluate on data with the same class folders"
        )
    return build_loader(
        data, batch_size, train=False, input_size=input_size, eval_resize=prep.get("eval_resize"),
        mean=prep["mean"], std=prep["std"], device=device, workers=config.workers,
    )  # fmt: skip
