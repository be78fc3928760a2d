"""Evaluation data read image by image: memory stays flat whatever the split's size.

``eval_images(dataset, data_dir, split, preprocessing)`` gives a dataset of ``(x, label, error)``
items for a ``DataLoader`` (``collate_eval`` batches them):

- an ImageFolder directory: one file opened per item (``ImageFiles``, map-style, any number of
  workers);
- a ``.tar``/``.tar.gz`` of one: its members read in archive order (``ArchiveImages``, an
  ``IterableDataset``; each worker reads the archive and decodes its share), never extracted or
  held in memory;
- CIFAR and digits (small, decoded once by ``build_dataset``): each uint8 image goes through the
  same PIL transform (``TensorImages``).

Every image is opened with ``Preprocessing.open_image`` and transformed with the weights' own
``Preprocessing`` (or a test-time-augmentation variant), exactly as ``senet predict`` does, so the
accuracy of ``senet eval`` is the accuracy of ``senet predict`` on the same files. A decode error
travels with its item (``error``) instead of killing a worker, so the caller can name the file or
skip it.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from senet.data.datasets import (
    IMAGE_EXTENSIONS,
    SPLIT_DIRS,
    ImageTensorSet,
    balanced_subset,
    build_dataset,
    resolve_split_dir,
    scan_folder,
)
from senet.data.preprocessing import Preprocessing

Item = tuple[torch.Tensor | None, int, str | None]  # (image, label, error message or None)


def _load(
    prep: Preprocessing,
    transform: Callable[[Any], torch.Tensor],
    path: str,
    data: bytes | None = None,
) -> tuple[torch.Tensor | None, str | None]:
    try:
        return transform(prep.open_image(path, data)), None
    except ValueError as err:
        return None, str(err)


class ImageFiles(Dataset):
    """Image files ``(path, label)`` opened and transformed one at a time."""

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        classes: Sequence[str],
        prep: Preprocessing,
        transform: Callable[[Any], torch.Tensor],
    ) -> None:
        self.samples, self.classes = list(samples), list(classes)
        self.prep, self.transform = prep, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Item:
        path, label = self.samples[i]
        x, err = _load(self.prep, self.transform, path)
        return x, label, err


class TensorImages(Dataset):
    """A decoded ``ImageTensorSet`` (uint8 N×C×H×W) through the same PIL transform as files."""

    def __init__(
        self, data: ImageTensorSet, prep: Preprocessing, transform: Callable[[Any], torch.Tensor]
    ) -> None:
        self.data, self.classes = data, list(data.classes)
        self.prep, self.transform = prep, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> Item:
        from PIL import Image

        image, label = self.data[i]
        array = image.permute(1, 2, 0).numpy()
        pil = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
        pil = pil.convert("L" if self.prep.in_chans == 1 else "RGB")
        return self.transform(pil), label, None


class ArchiveImages(IterableDataset):
    """The ``split`` of an ImageFolder tree inside a tar archive, read member by member."""

    def __init__(
        self,
        archive: str | Path,
        samples: Sequence[tuple[str, int]],
        classes: Sequence[str],
        prep: Preprocessing,
        transform: Callable[[Any], torch.Tensor],
    ) -> None:
        self.archive = Path(archive)
        self.labels = dict(samples)
        self.classes = list(classes)
        self.prep, self.transform = prep, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[Item]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        remaining = len(self.labels)
        index = 0
        with tarfile.open(self.archive) as tar:
            while remaining and (member := tar.next()) is not None:
                tar.members = []  # tarfile keeps every header it has read: drop them
                label = self.labels.get(member.name)
                if label is None:
                    continue
                remaining -= 1
                index += 1
                if (index - 1) % workers != worker:
                    continue
                f = tar.extractfile(member)
                data = f.read() if f is not None else b""
                x, err = _load(self.prep, self.transform, member.name, data)
                yield x, label, err


def scan_archive(archive: str | Path, split: str) -> tuple[list[str], list[tuple[str, int]]]:
    """Classes and sorted ``(member name, label)`` samples of ``split`` in a tar archive, from
    the member names alone (nothing is decoded or kept)."""
    wanted = SPLIT_DIRS.get(split, (split,))
    names: dict[str, list[str]] = {}
    with tarfile.open(archive) as tar:
        while (member := tar.next()) is not None:
            tar.members = []
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 3 or parts[-3] not in wanted:
                continue
            if parts[-1].lower().endswith(IMAGE_EXTENSIONS) and not parts[-1].startswith("."):
                names.setdefault(parts[-3], []).append(member.name)
    for split_name in wanted:
        if split_name in names:
            files = sorted(names[split_name])
            classes = sorted({p.split("/")[-2] for p in files})
            index = {c: i for i, c in enumerate(classes)}
            return classes, [(p, index[p.split("/")[-2]]) for p in files]
    raise FileNotFoundError(
        f"archive {archive} has no {split!r} split (…/{'|'.join(wanted)}/<class>/<images>)"
    )


def eval_images(
    dataset: str,
    data_dir: str | Path | None,
    split: str,
    prep: Preprocessing,
    transform: Callable[[Any], torch.Tensor] | None = None,
    subset: int | None = None,
) -> ImageFiles | ArchiveImages | TensorImages:
    """The evaluation images of ``split`` (see the module docstring); ``subset`` keeps the first
    ``subset`` images class by class, as training's ``val_subset`` does."""
    transform = transform or prep.transform()
    if dataset != "imagefolder":
        data = build_dataset(
            dataset, data_dir, split, in_memory=True, input_size=prep.input_size, subset=subset
        )
        if not isinstance(data, ImageTensorSet):  # pragma: no cover - build_dataset's contract
            raise ValueError(f"{dataset} is not an in-memory dataset")
        return TensorImages(data, prep, transform)
    if data_dir is None:
        raise ValueError(
            "dataset imagefolder needs --data-dir (a folder with val/ or test/, or a .tar.gz of one)"
        )
    root = Path(data_dir)
    if root.is_file() and root.name.endswith((".tar", ".tar.gz", ".tgz")):
        classes, samples = scan_archive(root, split)
        samples = [samples[i] for i in balanced_subset(samples, subset, len(classes))]
        return ArchiveImages(root, samples, classes, prep, transform)
    classes, samples = scan_folder(resolve_split_dir(root, split))
    samples = [samples[i] for i in balanced_subset(samples, subset, len(classes))]
    return ImageFiles(samples, classes, prep, transform)


def collate_eval(items: list[Item]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stack the readable images; the error messages of the others come back as a list."""
    good = [(x, y) for x, y, err in items if err is None]
    errors = [err for _, _, err in items if err is not None]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), errors  # type: ignore[list-item]
    xs, ys = zip(*good)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.long), errors  # type: ignore[list-item]
