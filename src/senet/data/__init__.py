"""Datasets (CIFAR, ImageFolder, digits), the paper's transforms and the in-memory uint8 loader."""

from senet.data.datasets import (
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    FolderDataset,
    ImageTensorSet,
    balanced_subset,
    build_dataset,
    check_same_classes,
)
from senet.data.loaders import (
    Cutout,
    FileBatchLoader,
    TensorBatchLoader,
    build_loader,
    cutout_mask,
    file_transform,
    mix_seed,
)

__all__ = [
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Cutout",
    "FileBatchLoader",
    "FolderDataset",
    "ImageTensorSet",
    "TensorBatchLoader",
    "balanced_subset",
    "build_dataset",
    "build_loader",
    "check_same_classes",
    "cutout_mask",
    "file_transform",
    "mix_seed",
]
