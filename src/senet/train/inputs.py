"""The data side of a run: datasets, loaders and the preprocessing a model's weights record.

``build_inputs(config)`` gives the train and validation loaders of a ``TrainConfig`` and the
``DataInfo`` (preprocessing and class names) saved beside the weights; ``build_eval_loader``
gives the evaluation loader alone (for analysis code that trains with ``senet.train.train``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
from senet.data.preprocessing import Preprocessing
from senet.train.recipes import TrainConfig, file_data, model_sizes

Loader = TensorBatchLoader | FileBatchLoader


@dataclass(frozen=True)
class DataInfo:
    """What a model trained on this data expects at inference: its preprocessing and class names."""

    preprocessing: Preprocessing
    classes: list[str]

    def as_metadata(self) -> dict[str, Any]:
        """The weights file's metadata keys (``Preprocessing.to_metadata`` plus ``classes``)."""
        return {**self.preprocessing.to_metadata(), "classes": list(self.classes)}


def _in_memory(config: TrainConfig) -> bool:
    return not file_data(config)


def build_inputs(
    config: TrainConfig, rank: int = 0, world_size: int = 1, device: torch.device | str = "cpu"
) -> tuple[Loader, Loader, DataInfo]:
    """Train loader, validation loader and what the weights record (classes checked to agree)."""
    in_memory = _in_memory(config)
    common = {
        "in_memory": in_memory,
        "input_size": config.input_size,
        "skip_corrupt": config.skip_corrupt,
        "download": config.download,
    }
    train_set = build_dataset(
        config.dataset, config.data_dir, config.train_split, subset=config.train_subset, **common
    )
    val_set = build_dataset(
        config.dataset, config.data_dir, config.val_split, subset=config.val_subset, **common
    )
    check_same_classes(train_set, val_set)
    prep = preprocessing_for(config, train_set)
    info = DataInfo(prep, list(train_set.classes))
    kw = {
        "augment": config.augment,
        "crop_padding": config.crop_padding,
        "rrc_scale_min": config.rrc_scale_min,
        "cutout": config.cutout,
        "balanced": config.balanced_sampler,
        "input_size": prep.input_size,
        "eval_resize": prep.resize,
        "mean": prep.mean,
        "std": prep.std,
        "seed": config.seed,
        "rank": rank,
        "world_size": world_size,
        "device": device,
        "workers": config.workers,
        "channels_last": config.channels_last,
    }
    train_loader = build_loader(train_set, config.batch_size, train=True, **kw)
    val_loader = build_loader(
        val_set, config.eval_batch_size or max(config.batch_size, 256), train=False, **kw
    )
    return train_loader, val_loader, info


def preprocessing_for(config: TrainConfig, train_set: Any) -> Preprocessing:
    """The evaluation preprocessing of a run on ``train_set`` (statistics: the config's, else the
    training split's own (in memory), else ImageNet's).

    In-memory data was resized so its shorter side is the input size, so such a run's evaluation
    resize is the input size itself; file data uses ``input_size``/``eval_resize``, where unset the
    model's registered sizes (224 / 256; 299 / 352 for Inception-ResNet-v2). ``normalize``:
    ``mean`` subtracts the mean on the [0, 1] scale (std 1), ``mean255`` on the 0–255 scale
    (Caffe's: std 1/255).
    """
    if isinstance(train_set, ImageTensorSet):
        c, size = int(train_set.images.shape[1]), train_set.image_size[0]
        mean, std = config.mean, config.std
        if mean is None or (std is None and config.normalize == "meanstd"):
            m, s = train_set.channel_stats()
            mean, std = mean or m, std or s
        resize: int | None = size
    else:
        size, resize = model_sizes(config.model, config.input_size)
        c, size, resize = 3, config.input_size or size, config.eval_resize or resize
        mean, std = config.mean or IMAGENET_MEAN, config.std or IMAGENET_STD
    if config.normalize == "mean":  # the paper's mean-RGB subtraction: no division
        std = (1.0,) * len(mean)
    elif config.normalize == "mean255":  # Caffe: x·255 − mean·255, i.e. the 0–255 scale
        std = (1 / 255,) * len(mean)
    if len(mean) != c:
        raise ValueError(
            f"mean {tuple(mean)} has {len(mean)} values but the images have {c} channels"
        )
    return Preprocessing(size, resize, mean=tuple(mean), std=tuple(std), in_chans=c)


def build_eval_loader(
    config: TrainConfig,
    split: str = "val",
    *,
    preprocessing: Preprocessing | Mapping[str, Any] | None = None,
    subset: int | None = None,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> Loader:
    """An evaluation loader over ``split`` of ``config``'s dataset (every image once, in order).

    ``preprocessing`` (a ``Preprocessing`` or a weights file's metadata, whose ``classes`` must
    match the split's) fixes mean/std and sizes; without it the training split's statistics are
    used, as in training.
    """
    in_memory = _in_memory(config)
    meta: Mapping[str, Any] = {}
    if isinstance(preprocessing, Preprocessing):
        prep: Preprocessing | None = preprocessing
    elif preprocessing is not None:
        meta = preprocessing
        prep = Preprocessing.from_metadata(meta)
    else:
        prep = None
    input_size = prep.input_size if prep is not None else config.input_size
    data = build_dataset(
        config.dataset,
        config.data_dir,
        split,
        in_memory=in_memory,
        input_size=input_size,
        subset=subset if subset is not None else config.val_subset,
        skip_corrupt=config.skip_corrupt,
        download=config.download,
    )
    if prep is None:
        train = build_dataset(
            config.dataset,
            config.data_dir,
            config.train_split,
            in_memory=in_memory,
            input_size=config.input_size,
            subset=config.train_subset,
            download=config.download,
        )
        prep = preprocessing_for(config, train)
    if meta.get("classes") and list(meta["classes"]) != list(data.classes):
        raise ValueError(
            f"the model was trained on classes {list(meta['classes'])[:10]} but {split} has {data.classes[:10]}; "
            "evaluate on data with the same class folders"
        )
    return build_loader(
        data,
        batch_size,
        train=False,
        input_size=prep.input_size,
        eval_resize=prep.resize_size,
        mean=prep.mean,
        std=prep.std,
        device=device,
        workers=config.workers,
    )
