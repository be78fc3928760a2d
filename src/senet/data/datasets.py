"""Datasets: CIFAR-10/100, any ImageFolder tree (or its .tar.gz), scikit-learn digits (Sec. 5).

Small datasets are decoded once into an ``ImageTensorSet`` (uint8 N×C×H×W + labels) so training
is not bound by JPEG decoding; large ImageFolder trees stay on disk as a ``FolderDataset`` read
through torchvision transforms. ``build_dataset`` picks one and checks the input on the way:
missing or empty directories, corrupt images (named; ``skip_corrupt`` skips and counts them).
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from senet.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401  (re-exported)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
DATASETS = ("cifar10", "cifar100", "imagefolder", "digits")
#: where a split name may live in an ImageFolder tree, in order of preference
SPLIT_DIRS = {
    "train": ("train",),
    "val": ("val", "validation", "test"),
    "test": ("test", "val", "validation"),
}
DEFAULT_DATA_DIR = os.environ.get("SENET_DATA", "data")


class ImageTensorSet(Dataset):
    """A decoded dataset in memory: ``images`` uint8 N×C×H×W, ``labels`` int64 N, ``classes``."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: Sequence[str],
        name: str = "",
        skipped: Sequence[str] = (),
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"images must be uint8 N×C×H×W, got {images.dtype} {tuple(images.shape)}"
            )
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels.long()
        self.classes, self.name, self.skipped = list(classes), name, list(skipped)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std on the [0, 1] scale (the CIFAR protocol's normalisation)."""
        c = self.images.shape[1]
        total = torch.zeros(c, dtype=torch.float64)
        total_sq = torch.zeros(c, dtype=torch.float64)
        for chunk in self.images.split(4096):
            x = chunk.to(torch.float64).div_(255)
            total += x.sum((0, 2, 3))
            total_sq += x.pow(2).sum((0, 2, 3))
        n = self.images.numel() / c
        mean = total / n
        std = (total_sq / n - mean**2).clamp_min(1e-12).sqrt()
        return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())


class FolderDataset(Dataset):
    """An ImageFolder tree read from disk image by image; a decode error names the file."""

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        classes: Sequence[str],
        name: str = "",
        skipped: Sequence[str] = (),
        transform: Callable[[Any], torch.Tensor] | None = None,
    ) -> None:
        self.samples, self.classes, self.name = list(samples), list(classes), name
        self.skipped, self.transform = list(skipped), transform
        self.labels = torch.tensor([t for _, t in self.samples], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        path, target = self.samples[i]
        image = _open_rgb(path)
        return (self.transform(image) if self.transform else image), target


def _open_rgb(path: str, data: bytes | None = None) -> Any:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as im:
            return im.convert("RGB")
    except Exception as err:
        raise ValueError(
            f"cannot decode image {path}: {err}; remove or replace the file, or pass "
            "--skip-corrupt (skip_corrupt=True) to skip unreadable images"
        ) from err


# --------------------------------------------------------------------------------------------
# ImageFolder trees (a directory or a .tar/.tar.gz of one)
# --------------------------------------------------------------------------------------------
def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith((".tar", ".tar.gz", ".tgz"))


def resolve_split_dir(data_dir: str | Path, split: str) -> Path:
    """The folder of ``split`` under ``data_dir`` (``val`` falls back to ``test`` and back)."""
    root = Path(data_dir)
    if not root.exists():
        raise FileNotFoundError(
            f"data directory {root} does not exist; pass --data-dir pointing at an ImageFolder tree "
            "(<dir>/train/<class>/*.jpg and <dir>/val or <dir>/test)"
        )
    if not root.is_dir():
        raise NotADirectoryError(
            f"data directory {root} is a file, not a folder; pass the folder above train/"
        )
    for name in SPLIT_DIRS.get(split, (split,)):
        if (root / name).is_dir():
            return root / name
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not subdirs:
        raise FileNotFoundError(
            f"data directory {root} is empty; expected {root}/{split}/<class>/<images>"
        )
    raise FileNotFoundError(
        f"no {split!r} split in {root} (looked for {', '.join(SPLIT_DIRS.get(split, (split,)))}; found "
        f"{', '.join(subdirs[:8])}); the layout is <dir>/train/<class>/*.jpg and <dir>/val or <dir>/test"
    )


def scan_folder(split_dir: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Classes (sorted sub-folders) and (path, label) samples, sorted, as torchvision assigns them."""
    classes = sorted(
        p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if not classes:
        raise FileNotFoundError(
            f"{split_dir} has no class folders; expected {split_dir}/<class>/<images>"
        )
    samples: list[tuple[str, int]] = []
    for label, cls in enumerate(classes):
        for dirpath, _, files in sorted(os.walk(split_dir / cls, followlinks=True)):
            for f in sorted(files):
                if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."):
                    samples.append((os.path.join(dirpath, f), label))
    if not samples:
        raise FileNotFoundError(
            f"{split_dir} has class folders but no images ({', '.join(IMAGE_EXTENSIONS)})"
        )
    return classes, samples


def _scan_archive(
    archive: Path, split: str
) -> tuple[list[str], list[tuple[str, int]], dict[str, bytes]]:
    """Like ``scan_folder`` for a tar archive of an ImageFolder tree (…/<split>/<class>/<file>)."""
    wanted = SPLIT_DIRS.get(split, (split,))
    by_split: dict[str, dict[str, bytes]] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 3 or parts[-3] not in wanted:
                continue
            if not parts[-1].lower().endswith(IMAGE_EXTENSIONS) or parts[-1].startswith("."):
                continue
            f = tar.extractfile(member)
            if f is not None:
                by_split.setdefault(parts[-3], {})[member.name] = f.read()
    for name in wanted:
        if name in by_split:
            blobs = by_split[name]
            classes = sorted({p.split("/")[-2] for p in blobs})
            index = {c: i for i, c in enumerate(classes)}
            samples = [(p, index[p.split("/")[-2]]) for p in sorted(blobs)]
            return classes, samples, blobs
    raise FileNotFoundError(
        f"archive {archive} has no {split!r} split (…/{'|'.join(wanted)}/<class>/<images>)"
    )


def balanced_subset(
    samples: Sequence[tuple[Any, int]], n: int | None, num_classes: int
) -> list[int]:
    """Indices of the first ``n`` samples taken class by class (⌊n/C⌋ each, the rest to the first)."""
    if n is None or n >= len(samples):
        return list(range(len(samples)))
    quota = [n // num_classes + (1 if c < n % num_classes else 0) for c in range(num_classes)]
    chosen = []
    for i, (_, label) in enumerate(samples):
        if quota[label] > 0:
            quota[label] -= 1
            chosen.append(i)
    return chosen


def _decode_all(
    samples: Sequence[tuple[str, int]],
    input_size: int | None,
    skip_corrupt: bool,
    blobs: dict[str, bytes] | None,
    desc: str,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    from tqdm import tqdm

    images, labels, skipped = [], [], []
    size = None
    for path, label in tqdm(samples, desc=desc, disable=None, leave=False, mininterval=1.0):
        try:
            im = _open_rgb(path, blobs[path] if blobs is not None else None)
        except ValueError:
            if not skip_corrupt:
                raise
            skipped.append(path)
            continue
        if input_size is not None and im.size != (input_size, input_size):
            im = _resize_center(im, input_size)
        elif size is None:
            size = im.size
        elif im.size != size:
            raise ValueError(
                f"image {path} is {im.size[0]}×{im.size[1]} but earlier ones are {size[0]}×{size[1]}; "
                "pass input_size (--input-size) to resize every image in memory"
            )
        images.append(torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1))
        labels.append(label)
    if not images:
        raise FileNotFoundError(
            f"no readable images among {len(samples)} files ({len(skipped)} corrupt)"
        )
    return torch.stack(images), torch.tensor(labels, dtype=torch.long), skipped


def _resize_center(im: Any, size: int) -> Any:
    from torchvision.transforms import functional as F

    return F.center_crop(F.resize(im, size), [size, size])


def _imagefolder(
    data_dir: str | Path,
    split: str,
    in_memory: bool,
    input_size: int | None,
    subset: int | None,
    skip_corrupt: bool,
) -> ImageTensorSet | FolderDataset:
    root = Path(data_dir)
    blobs = None
    if _is_archive(root):
        if not in_memory:
            raise ValueError(
                f"{root} is an archive; extract it (tar -xzf) to train from files, or use in_memory"
            )
        classes, samples, blobs = _scan_archive(root, split)
    else:
        classes, samples = scan_folder(resolve_split_dir(root, split))
    samples = [samples[i] for i in balanced_subset(samples, subset, len(classes))]
    name = f"imagefolder:{root}:{split}"
    if in_memory:
        images, labels, skipped = _decode_all(
            samples, input_size, skip_corrupt, blobs, f"decoding {split}"
        )
        return ImageTensorSet(images, labels, classes, name, skipped)
    skipped = []
    if skip_corrupt:  # check every file once up front, so training never meets a bad one
        good = []
        for path, label in samples:
            try:
                _open_rgb(path)
                good.append((path, label))
            except ValueError:
                skipped.append(path)
        samples = good
    return FolderDataset(samples, classes, name, skipped)


# --------------------------------------------------------------------------------------------
# CIFAR (torchvision) and digits (scikit-learn)
# --------------------------------------------------------------------------------------------
def _cifar(name: str, data_dir: str | Path, split: str, download: bool) -> ImageTensorSet:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    archive = "cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz"
    train = split == "train"
    try:
        ds = cls(str(data_dir), train=train, download=False)
    except RuntimeError:
        if not download:
            raise FileNotFoundError(
                f"{name} is not in {data_dir} (expected {Path(data_dir) / folder}/); put {archive} "
                f"(extracted) there, pass --data-dir to where it is, or pass --download when online. "
                "Offline alternative: --dataset imagefolder --data-dir ../shared/data/cifar10-jpeg.tar.gz"
            ) from None
        try:
            ds = cls(str(data_dir), train=train, download=True)
        except Exception as err:
            raise FileNotFoundError(
                f"could not download {name} into {data_dir} ({err}); download {archive} by hand into "
                "that folder or pass --data-dir"
            ) from err
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    return ImageTensorSet(images, torch.tensor(ds.targets), ds.classes, f"{name}:{split}")


def _digits(split: str, input_size: int | None) -> ImageTensorSet:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ValueError(
            "the digits dataset needs scikit-learn: pip install 'senet[digits]'"
        ) from err
    data = load_digits()
    x = torch.from_numpy(data.images).float().unsqueeze(1) / 16.0  # N×1×8×8 in [0, 1]
    y = torch.from_numpy(data.target).long()
    rng = np.random.RandomState(0)  # the split is fixed, whatever the training seed
    val = np.zeros(len(y), dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(data.target == c)
        val[rng.permutation(idx)[: len(idx) // 5]] = True
    keep = torch.from_numpy(val if split != "train" else ~val)
    x, y = x[keep], y[keep]
    if input_size is not None and input_size != 8:
        x = torch.nn.functional.interpolate(
            x, size=(input_size, input_size), mode="bilinear", align_corners=False
        )
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageTensorSet(images, y, [str(c) for c in range(10)], f"digits:{split}")


def build_dataset(
    name: str,
    data_dir: str | Path | None = None,
    split: str = "train",
    *,
    in_memory: bool | None = None,
    input_size: int | None = None,
    subset: int | None = None,
    skip_corrupt: bool = False,
    download: bool = False,
) -> ImageTensorSet | FolderDataset:
    """Load split ``split`` (``train``/``val``/``test``) of dataset ``name`` (see ``DATASETS``).

    ``in_memory`` (default True) decodes everything once into uint8 tensors; ``subset`` keeps the
    first ``subset`` images, class-balanced. CIFAR's and digits' ``val`` is their test split.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    in_memory = True if in_memory is None else in_memory
    if name == "digits":
        ds: ImageTensorSet | FolderDataset = _digits(split, input_size)
    elif name in ("cifar10", "cifar100"):
        ds = _cifar(name, data_dir or DEFAULT_DATA_DIR, split, download)
    else:
        if data_dir is None:
            raise ValueError(
                "dataset imagefolder needs --data-dir (a folder with train/ and val/ or test/)"
            )
        return _imagefolder(data_dir, split, in_memory, input_size, subset, skip_corrupt)
    if subset is not None and isinstance(ds, ImageTensorSet):
        keep = balanced_subset([(None, int(t)) for t in ds.labels], subset, len(ds.classes))
        ds = ImageTensorSet(ds.images[keep], ds.labels[keep], ds.classes, ds.name)
    return ds


def check_same_classes(train: Dataset, val: Dataset) -> None:
    """Raise if the train and validation splits name different classes (label indices would differ)."""
    a, b = list(train.classes), list(val.classes)  # type: ignore[attr-defined]
    if a != b:
        only_train = sorted(set(a) - set(b))
        only_val = sorted(set(b) - set(a))
        detail = []
        if only_train:
            detail.append(f"only in train: {', '.join(only_train[:10])}")
        if only_val:
            detail.append(f"only in val: {', '.join(only_val[:10])}")
        if not detail:
            detail.append("same names in a different order")
        raise ValueError(
            f"the class folders of the train and validation splits differ ({'; '.join(detail)}); "
            "labels are assigned by sorted folder name, so both splits need the same class folders"
        )
