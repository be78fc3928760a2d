"""Shared fixtures: a few hundred real CIFAR-10 JPEGs, and a tiny generated ImageFolder tree.

- ``cifar_jpeg_dir``: ``<tmp>/cifar10-jpeg/{train,test}/<class>/*.jpg`` with the first
  ``CIFAR_TRAIN_PER_CLASS``/``CIFAR_TEST_PER_CLASS`` images of each class, read with ``tarfile``
  from ``../shared/data/cifar10-jpeg.tar.gz`` (or ``$SENET_CIFAR_JPEG``); skipped when absent.
- ``tiny_imagefolder``: ``<tmp>/tiny/{train,val}/<class>/*.png``, three classes of 16×16 RGB
  images with class-specific structure (learnable in a few steps), generated, always available.
- ``imagefolder_factory``: ``make_imagefolder(root, ...)`` itself, for tests that need a variant.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CIFAR_ARCHIVE = Path(
    os.environ.get("SENET_CIFAR_JPEG", REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz")
)
CIFAR_TRAIN_PER_CLASS = 40
CIFAR_TEST_PER_CLASS = 20
TINY_CLASSES = ("bars", "blob", "stripes")


def make_imagefolder(
    root: Path,
    classes: tuple[str, ...] = TINY_CLASSES,
    n_train: int = 24,
    n_val: int = 8,
    size: int = 16,
    seed: int = 0,
    splits: tuple[str, str] = ("train", "val"),
) -> Path:
    """Write a small ImageFolder tree of structured PNGs (one pattern per class, plus noise)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    patterns = [
        (yy // 2 % 2).astype(float),  # horizontal bars
        np.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (size**2 / 8)),  # centred blob
        (xx // 2 % 2).astype(float),  # vertical stripes
    ]
    for split, n in zip(splits, (n_train, n_val)):
        for c, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            base = patterns[c % len(patterns)]
            tint = np.array([[0.9, 0.3, 0.3], [0.3, 0.9, 0.3], [0.3, 0.3, 0.9]])[c % 3]
            for i in range(n):
                img = base[..., None] * tint + rng.normal(0, 0.15, (size, size, 3))
                img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i:04d}.png")
    return root


@pytest.fixture(scope="session")
def imagefolder_factory() -> object:
    """``make_imagefolder`` itself, for tests that need a variant tree (corrupt files, other classes)."""
    return make_imagefolder


@pytest.fixture(scope="session")
def tiny_imagefolder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated ImageFolder tree: <dir>/{train,val}/{bars,blob,stripes}/*.png, 16×16 RGB."""
    return make_imagefolder(tmp_path_factory.mktemp("tiny") / "tiny")


@pytest.fixture(scope="session")
def cifar_jpeg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first few real CIFAR-10 JPEGs per class and split (skips when the archive is absent)."""
    if not CIFAR_ARCHIVE.is_file():
        pytest.skip(f"real-data test: {CIFAR_ARCHIVE} is absent (set SENET_CIFAR_JPEG to its path)")
    root = tmp_path_factory.mktemp("cifar") / "cifar10-jpeg"
    quota = {"train": CIFAR_TRAIN_PER_CLASS, "test": CIFAR_TEST_PER_CLASS}
    counts: dict[tuple[str, str], int] = {}
    with tarfile.open(CIFAR_ARCHIVE) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 4 or parts[-3] not in quota:
                continue
            key = (parts[-3], parts[-2])
            if counts.get(key, 0) >= quota[parts[-3]]:
                continue
            counts[key] = counts.get(key, 0) + 1
            target = root / parts[-3] / parts[-2] / parts[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            target.write_bytes(src.read())
    if len(counts) != 20:
        pytest.skip(f"{CIFAR_ARCHIVE} does not have the expected train/test × 10 classes layout")
    return root


@pytest.fixture
def kernels():
    """The native SE kernels, built (or the test skips with the reason), on 2 threads."""
    from senet.layers import native

    if os.environ.get("SENET_NATIVE", "auto") == "0":
        pytest.skip("SENET_NATIVE=0")
    if not native.available():
        pytest.skip(f"native SE kernels cannot be built here: {native.status()}")
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the kernels' parallel split is part of what is tested
    yield
    torch.set_num_threads(before)
