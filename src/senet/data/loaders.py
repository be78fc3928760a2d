"""Batch loaders: in-memory uint8 tensors with batched augmentation, or torchvision files.

Both loaders yield normalised float batches ``(x, y)`` and are deterministic: the order and the
augmentation of epoch ``e`` step ``i`` depend only on ``(seed, e, i)``, so a run resumed at any
step sees exactly the batches an uninterrupted run sees. With ``world_size`` processes the
in-memory loader cuts every *global* batch into ``world_size`` equal slices (so N processes see
the same global batches as one process); the file loader uses ``DistributedSampler``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from senet.data.datasets import FolderDataset, ImageTensorSet
from senet.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, normalize_uint8

_MIX = 0x9E3779B97F4A7C15


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (order matters), for per-epoch and per-step generators."""
    h = 0x243F6A8885A308D3
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * _MIX + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h & 0x7FFFFFFFFFFFFFFF


def generator(*parts: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(mix_seed(*parts))
    return g


def random_crop_flip(
    images: torch.Tensor, padding: int, flip: bool, g: torch.Generator
) -> torch.Tensor:
    """Zero-pad by ``padding``, crop back to H×W at a random offset, flip half (CIFAR, Sec. 5)."""
    n, c, h, w = images.shape
    out = images
    if padding > 0:
        padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=g).to(images.device)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=g).to(images.device)
        rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
        batch = torch.arange(n, device=images.device)[:, None, None, None]
        chans = torch.arange(c, device=images.device)[None, :, None, None]
        out = padded[batch, chans, rows, cols]
    if flip:
        mask = (torch.rand(n, generator=g) < 0.5).to(images.device)[:, None, None, None]
        out = torch.where(mask, out.flip(3), out)
    return out


class TensorBatchLoader:
    """Batches from an ``ImageTensorSet`` held on ``device``, augmented in batched tensor ops."""

    def __init__(
        self,
        data: ImageTensorSet,
        batch_size: int,
        *,
        train: bool,
        augment: str = "none",
        crop_padding: int = 4,
        mean: Sequence[float],
        std: Sequence[float],
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
    ) -> None:
        if augment not in ("crop_flip", "crop", "none"):
            raise ValueError(f"augment={augment!r} needs the file loader (in_memory=False)")
        if train and batch_size % world_size:
            raise ValueError(
                f"batch_size {batch_size} must be divisible by the {world_size} processes"
            )
        if train and batch_size > len(data):
            raise ValueError(
                f"batch_size {batch_size} is larger than the {len(data)} training images; pass a smaller --batch-size"
            )
        self.dataset, self.batch_size, self.train = data, batch_size, train
        self.augment, self.crop_padding = (augment if train else "none"), crop_padding
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        c = self.images.shape[1]
        if len(mean) != c or len(std) != c:
            raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {c}-channel images")
        self.mean, self.std = tuple(mean), tuple(std)
        self.epoch = 0
        # evaluation: this rank's shard, in order
        self._eval_index = torch.arange(rank, len(data), world_size, device=self.device)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def num_samples(self) -> int:
        """Images this process sees per epoch."""
        if self.train:
            return len(self) * self.batch_size // self.world_size
        return len(self._eval_index)

    def __len__(self) -> int:
        if self.train:
            return len(self.dataset) // self.batch_size  # drop_last: every global batch is full
        return -(-len(self._eval_index) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iterate(0)

    def iterate(self, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.train:
            for i in range(start_step, len(self)):
                idx = self._eval_index[i * self.batch_size : (i + 1) * self.batch_size]
                yield self._finish(self.images[idx]), self.labels[idx]
            return
        perm = torch.randperm(len(self.dataset), generator=generator(self.seed, self.epoch)).to(
            self.device
        )
        local = self.batch_size // self.world_size
        for i in range(start_step, len(self)):
            idx = perm[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[idx]
            if self.augment != "none":
                g = generator(self.seed, self.epoch, i, 1)
                x = random_crop_flip(x, self.crop_padding, self.augment == "crop_flip", g)
            sl = slice(self.rank * local, (self.rank + 1) * local)
            yield self._finish(x[sl]), self.labels[idx][sl]

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        x = normalize_uint8(x, self.mean, self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class _SkipSampler(Sampler[int]):
    """The indices of ``base`` from position ``start`` on (resuming mid-epoch)."""

    def __init__(self, base: Sampler[int], start: int) -> None:
        self.base, self.start = base, start

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.base)[self.start :])

    def __len__(self) -> int:
        return max(0, len(self.base) - self.start)  # type: ignore[arg-type]


class FileBatchLoader:
    """Batches from a ``FolderDataset`` through torchvision transforms and a ``DataLoader``."""

    def __init__(
        self,
        data: FolderDataset,
        batch_size: int,
        *,
        train: bool,
        transform: Any,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 2,
        channels_last: bool = False,
    ) -> None:
        if train and batch_size % world_size:
            raise ValueError(
                f"batch_size {batch_size} must be divisible by the {world_size} processes"
            )
        self.dataset, self.batch_size, self.train = data, batch_size, train
        self.local = batch_size // world_size if train else batch_size
        data.transform = transform
        self.seed, self.rank, self.world_size, self.workers = seed, rank, world_size, workers
        self.channels_last = channels_last
        self.sampler = DistributedSampler(
            data, num_replicas=world_size, rank=rank, shuffle=train, seed=seed, drop_last=train
        )
        if not train:  # evaluation: every image exactly once (no padding), strided by rank
            self._eval_index = list(range(rank, len(data), world_size))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    @property
    def num_samples(self) -> int:
        return len(self) * self.local if self.train else len(self._eval_index)

    def __len__(self) -> int:
        if self.train:
            return len(self.sampler) // self.local
        return -(-len(self._eval_index) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iterate(0)

    def iterate(self, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        sampler: Any = self.sampler if self.train else self._eval_index
        sampler = _SkipSampler(sampler, start_step * self.local) if start_step else sampler
        loader = DataLoader(
            self.dataset, batch_size=self.local, sampler=sampler, drop_last=self.train,
            num_workers=self.workers, pin_memory=torch.cuda.is_available(),
            generator=generator(self.seed, self.epoch, self.rank), persistent_workers=False,
        )  # fmt: skip
        for x, y in loader:
            yield (x.contiguous(memory_format=torch.channels_last) if self.channels_last else x), y


def file_transform(
    train: bool,
    augment: str,
    input_size: int,
    eval_resize: int | None,
    mean: Sequence[float],
    std: Sequence[float],
    crop_padding: int = 4,
    rrc_scale_min: float = 0.08,
) -> Any:
    """torchvision transforms: random-size crop + flip for training, resize → centre crop for eval."""
    from torchvision import transforms as T

    if not train or augment == "none":
        return Preprocessing(input_size, eval_resize, mean=tuple(mean), std=tuple(std)).transform()
    tail = [T.ToTensor(), T.Normalize(list(mean), list(std))]
    if augment == "rrc_flip":
        return T.Compose(
            [
                T.RandomResizedCrop(input_size, scale=(rrc_scale_min, 1.0)),
                T.RandomHorizontalFlip(),
                *tail,
            ]
        )
    ops = [
        T.Resize(input_size),
        T.CenterCrop(input_size),
        T.RandomCrop(input_size, padding=crop_padding),
    ]
    if augment == "crop_flip":
        ops.append(T.RandomHorizontalFlip())
    return T.Compose([*ops, *tail])


def build_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    train: bool = False,
    augment: str = "none",
    crop_padding: int = 4,
    rrc_scale_min: float = 0.08,
    input_size: int | None = None,
    eval_resize: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    workers: int = 2,
    channels_last: bool = False,
) -> TensorBatchLoader | FileBatchLoader:
    """A deterministic batch loader for ``dataset`` (see the module docstring).

    ``mean``/``std`` default to the dataset's own channel statistics (in memory) or ImageNet's
    (files). Evaluation loaders (``train=False``) visit every image once, in order, sharded by rank.
    """
    if isinstance(dataset, ImageTensorSet):
        if mean is None or std is None:
            m, s = dataset.channel_stats()
            mean, std = mean or m, std or s
        return TensorBatchLoader(
            dataset, batch_size, train=train, augment=augment, crop_padding=crop_padding, mean=mean,
            std=std, seed=seed, rank=rank, world_size=world_size, device=device, channels_last=channels_last,
        )  # fmt: skip
    if isinstance(dataset, FolderDataset):
        size = input_size or 224
        tf = file_transform(
            train, augment, size, eval_resize, mean or IMAGENET_MEAN, std or IMAGENET_STD,
            crop_padding, rrc_scale_min,
        )  # fmt: skip
        return FileBatchLoader(
            dataset, batch_size, train=train, transform=tf, seed=seed, rank=rank,
            world_size=world_size, workers=workers, channels_last=channels_last,
        )  # fmt: skip
    raise ValueError(
        f"build_loader takes an ImageTensorSet or FolderDataset, not {type(dataset).__name__}"
    )
