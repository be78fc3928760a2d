"""Batch loaders: in-memory uint8 tensors with batched augmentation, or torchvision files.

Both loaders yield normalised float batches ``(x, y)`` and are deterministic: the order and the
augmentation of epoch ``e`` step ``i`` depend only on ``(seed, e, i)``, so a run resumed at any
step sees exactly the batches an uninterrupted run sees. With ``world_size`` processes the
in-memory loader cuts every *global* batch into ``world_size`` equal slices (so N processes see
the same global batches as one process); the file loader uses ``DistributedSampler``.
"""

from __future__ import annotations

import os
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
    """Zero-pad by ``padding``, crop back to H×W at a random offset, flip half (CIFAR, Sec. 5).

    One ``gather`` per batch does crop and flip together (no per-image Python); the offsets and
    flips are drawn from ``g`` as (dy, dx, flip), so a batch depends only on ``g``'s seed.
    """
    n, c, h, w = images.shape
    dev = images.device
    if padding > 0:
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=g).to(dev)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=g).to(dev)
        src = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    elif not flip:
        return images
    else:
        dy = dx = torch.zeros(n, dtype=torch.long, device=dev)
        src = images
    cols = torch.arange(w, device=dev).expand(n, w)
    if flip:
        mask = (torch.rand(n, generator=g) < 0.5).to(dev)
        cols = torch.where(mask[:, None], (w - 1) - cols, cols)
    hp, wp = src.shape[2], src.shape[3]
    rows = dy[:, None] + torch.arange(h, device=dev)
    index = (rows[:, :, None] * wp + (dx[:, None] + cols)[:, None, :]).reshape(n, 1, h * w)
    out = src.reshape(n, c, hp * wp).gather(2, index.expand(n, c, h * w))
    return out.reshape(n, c, h, w)


def balanced_order(
    labels: torch.Tensor, batch_size: int, num_batches: int, g: torch.Generator
) -> torch.Tensor:
    """Image indices for ``num_batches`` class-balanced batches of ``batch_size`` (flat, in order).

    The minibatch balancing the paper adopts (Sec. 5.1, citing Relay BP's class-aware sampling):
    each batch holds every class ``batch_size // K`` times (``K`` classes with images) plus
    ``batch_size % K`` more classes taken in turn from a shuffled list of all classes, so class
    counts within a batch differ by at most one (with fewer slots than classes: distinct classes,
    every class equally often over the epoch). The images of a class are used in turn from a
    shuffled list of that class, reshuffled when used up, so rare classes repeat and common ones
    are subsampled. Everything is drawn from ``g``.
    """
    labels = labels.cpu()
    classes = torch.unique(labels)
    k = len(classes)
    base, extra = divmod(batch_size, k)
    per_batch = [classes.repeat(base).expand(num_batches, base * k)]
    if extra:
        per_batch.append(_class_turns(classes, extra, num_batches, g))
    stream = torch.cat(per_batch, 1)  # num_batches × batch_size class ids
    # shuffle each batch so a process's slice (and BatchNorm's view of it) mixes the classes
    stream = stream.gather(1, torch.rand(stream.shape, generator=g).argsort(1)).reshape(-1)
    order = torch.argsort(stream, stable=True)  # positions grouped by class, in stream order
    counts = torch.bincount(stream, minlength=int(classes.max()) + 1)
    draws = []
    for c in classes.tolist():
        members = torch.nonzero(labels == c).flatten()
        n, have = int(counts[c]), len(members)
        laps = [members[torch.randperm(have, generator=g)] for _ in range(-(-n // have))]
        draws.append(torch.cat(laps)[:n])
    out = torch.empty_like(stream)
    out[order] = torch.cat(draws)
    return out


def _class_turns(
    classes: torch.Tensor, extra: int, num_batches: int, g: torch.Generator
) -> torch.Tensor:
    """num_batches × extra classes (extra < K): shuffled passes over all classes, cut into rows;
    a row that spans two passes never repeats a class (the next pass starts with other classes)."""
    k, need = len(classes), num_batches * extra
    turns: list[torch.Tensor] = []
    for t in range(-(-need // k)):
        turn = classes[torch.randperm(k, generator=g)]
        tail = (t * k) % extra  # the row this pass starts in already holds the last `tail` classes
        if turns and tail:
            seen = torch.isin(turn, turns[-1][-tail:])
            turn = torch.cat([turn[~seen], turn[seen]])
        turns.append(turn)
    return torch.cat(turns)[:need].view(num_batches, extra)


def cutout_mask(
    n: int, h: int, w: int, size: int, g: torch.Generator, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Cutout's masks (DeVries & Taylor 2017): float N×1×H×W, 0 inside one ``size``×``size`` square
    per image, 1 elsewhere. Each square's centre is uniform over the whole image, so a square
    near an edge is clipped (it may fall partly outside). Drawn from ``g`` as (cy, cx)."""
    cy = torch.randint(0, h, (n,), generator=g).to(device)
    cx = torch.randint(0, w, (n,), generator=g).to(device)
    y0, x0 = cy - size // 2, cx - size // 2
    rows = torch.arange(h, device=device)[None, :]
    cols = torch.arange(w, device=device)[None, :]
    in_rows = (rows >= y0[:, None]) & (rows < (y0 + size)[:, None])  # N×H
    in_cols = (cols >= x0[:, None]) & (cols < (x0 + size)[:, None])  # N×W
    hole = in_rows[:, :, None] & in_cols[:, None, :]
    return (~hole).to(torch.float32)[:, None]


class Cutout:
    """Cutout as a torchvision-style transform of a normalised C×H×W tensor (after ``Normalize``,
    as the Cutout paper's code does: the square becomes 0, the mean pixel). Draws from torch's
    global RNG, which the file loader seeds per sample."""

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return x * cutout_mask(1, h, w, self.size, torch.default_generator, x.device)[0]

    def __repr__(self) -> str:
        return f"Cutout(size={self.size})"


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
        cutout: int = 0,
        balanced: bool = False,
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
        self.cutout = cutout if train else 0
        self.balanced = balanced and train
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
        if self.balanced:
            g = generator(self.seed, self.epoch, 5)
            perm = balanced_order(self.dataset.labels, self.batch_size, len(self), g).to(
                self.device
            )
        else:
            g = generator(self.seed, self.epoch)
            perm = torch.randperm(len(self.dataset), generator=g).to(self.device)
        local = self.batch_size // self.world_size
        for i in range(start_step, len(self)):
            idx = perm[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[idx]
            if self.augment != "none":
                g = generator(self.seed, self.epoch, i, 1)
                x = random_crop_flip(x, self.crop_padding, self.augment == "crop_flip", g)
            sl = slice(self.rank * local, (self.rank + 1) * local)
            mask = None
            if self.cutout > 0:  # drawn for the global batch, so N processes cut what one would
                g = generator(self.seed, self.epoch, i, 4)
                mask = cutout_mask(len(x), x.shape[2], x.shape[3], self.cutout, g, self.device)[sl]
            yield self._finish(x[sl], mask), self.labels[idx][sl]

    def _finish(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = normalize_uint8(x, self.mean, self.std)
        if mask is not None:
            x.mul_(mask)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class BalancedSampler(Sampler[int]):
    """This process's share of ``balanced_order``'s batches (epoch ``set_epoch``), for the file
    loader: global batch ``b``'s slice ``rank``, in order. Seeded from (seed, epoch)."""

    def __init__(
        self, labels: torch.Tensor, batch_size: int, seed: int, rank: int, world_size: int
    ) -> None:
        self.labels, self.batch_size, self.seed = labels, batch_size, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0
        self.num_batches = len(labels) // batch_size
        self.local = batch_size // world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = generator(self.seed, self.epoch, 5)
        order = balanced_order(self.labels, self.batch_size, self.num_batches, g)
        mine = order.view(self.num_batches, self.world_size, self.local)[:, self.rank]
        return iter(mine.reshape(-1).tolist())

    def __len__(self) -> int:
        return self.num_batches * self.local


class _Positions(Sampler[tuple[int, ...]]):
    """``(epoch, index)`` pairs of the current epoch from position ``start`` (set by the loader);
    ``(epoch, index, position)`` when an image may come twice in an epoch (``by_position``).

    The DataLoader asks for a fresh iterator each epoch, in the main process, so a loader with
    persistent workers is built once and still sees every epoch's order and resume position.
    """

    def __init__(self, indices: Any, by_position: bool = False) -> None:
        self.indices, self.epoch, self.start = indices, 0, 0
        self.by_position = by_position

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        order = list(self.indices)[self.start :]
        if self.by_position:
            return iter([(self.epoch, int(i), p) for p, i in enumerate(order, self.start)])
        return iter([(self.epoch, int(i)) for i in order])

    def __len__(self) -> int:
        return max(0, len(self.indices) - self.start)


class _SeededSamples(Dataset):
    """``dataset[(epoch, i)]``: sample ``i`` with the global RNG seeded from (seed, epoch, i).

    torchvision's random transforms draw from torch's global RNG; seeding it per sample makes a
    sample's augmentation independent of which worker loads it and of what was loaded before, so
    a run resumed mid-epoch sees bitwise the batches of an uninterrupted one, with any number of
    workers. (In the main process, ``workers=0``, this re-seeds the global RNG; the training loop
    re-seeds it before every step anyway.)
    """

    def __init__(self, dataset: Dataset, seed: int, rank: int = 0) -> None:
        self.dataset, self.seed, self.rank = dataset, seed, rank

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, ...]) -> Any:
        if len(key) == 3:  # an image that may repeat within the epoch: seeded by its position
            epoch, i, position = key
            torch.default_generator.manual_seed(mix_seed(self.seed, epoch, self.rank, position, 6))
        else:
            epoch, i = key
            torch.default_generator.manual_seed(mix_seed(self.seed, epoch, i, 3))
        return self.dataset[i]


def default_workers(cap: int = 8) -> int:
    """DataLoader workers when none are asked for: the cores this process may use, at most ``cap``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cap, cores))


class FileBatchLoader:
    """Batches from a ``FolderDataset`` through torchvision transforms and one ``DataLoader``.

    The ``DataLoader`` is built once (persistent workers) and reused by every epoch; each
    sample's augmentation is seeded from (seed, epoch, index), see ``_SeededSamples``.
    """

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
        workers: int | None = None,
        channels_last: bool = False,
        balanced: bool = False,
    ) -> None:
        if train and batch_size % world_size:
            raise ValueError(
                f"batch_size {batch_size} must be divisible by the {world_size} processes"
            )
        self.dataset, self.batch_size, self.train = data, batch_size, train
        self.local = batch_size // world_size if train else batch_size
        data.transform = transform
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.workers = default_workers() if workers is None else workers
        self.channels_last = channels_last
        self.balanced = balanced and train
        self.sampler: DistributedSampler | BalancedSampler
        if self.balanced:
            self.sampler = BalancedSampler(data.labels, batch_size, seed, rank, world_size)
        else:
            self.sampler = DistributedSampler(
                data, num_replicas=world_size, rank=rank, shuffle=train, seed=seed, drop_last=train
            )
        # evaluation: every image exactly once (no padding), strided by rank
        self._positions = _Positions(
            self.sampler if train else range(rank, len(data), world_size), self.balanced
        )
        self._loader: DataLoader | None = None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    @property
    def num_samples(self) -> int:
        return len(self) * self.local if self.train else len(self._positions.indices)

    def __len__(self) -> int:
        if self.train:
            return len(self.sampler) // self.local
        return -(-len(self._positions.indices) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iterate(0)

    def _dataloader(self) -> DataLoader:
        if self._loader is None:
            self._loader = DataLoader(
                _SeededSamples(self.dataset, self.seed, self.rank),
                batch_size=self.local,
                sampler=self._positions,
                drop_last=self.train,
                num_workers=self.workers,
                pin_memory=torch.cuda.is_available(),
                persistent_workers=self.workers > 0,
                generator=generator(self.seed, self.rank),
            )
        return self._loader

    def iterate(self, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self._positions.epoch = self.epoch
        self._positions.start = start_step * self.local
        for x, y in self._dataloader():
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
    cutout: int = 0,
) -> Any:
    """torchvision transforms: random-size crop + flip for training, resize → centre crop for
    eval; ``cutout`` > 0 adds ``Cutout(cutout)`` after normalisation (training only)."""
    from torchvision import transforms as T

    if not train or augment == "none":
        tf = Preprocessing(input_size, eval_resize, mean=tuple(mean), std=tuple(std)).transform()
        return T.Compose([tf, Cutout(cutout)]) if train and cutout > 0 else tf
    tail = [T.ToTensor(), T.Normalize(list(mean), list(std))]
    if cutout > 0:
        tail.append(Cutout(cutout))
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
    cutout: int = 0,
    balanced: bool = False,
    input_size: int | None = None,
    eval_resize: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    workers: int | None = None,
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
            dataset,
            batch_size,
            train=train,
            augment=augment,
            crop_padding=crop_padding,
            cutout=cutout,
            balanced=balanced,
            mean=mean,
            std=std,
            seed=seed,
            rank=rank,
            world_size=world_size,
            device=device,
            channels_last=channels_last,
        )
    if isinstance(dataset, FolderDataset):
        size = input_size or 224
        tf = file_transform(
            train,
            augment,
            size,
            eval_resize,
            mean or IMAGENET_MEAN,
            std or IMAGENET_STD,
            crop_padding,
            rrc_scale_min,
            cutout,
        )
        return FileBatchLoader(
            dataset,
            batch_size,
            train=train,
            transform=tf,
            seed=seed,
            rank=rank,
            world_size=world_size,
            workers=workers,
            channels_last=channels_last,
            balanced=balanced,
        )
    raise ValueError(
        f"build_loader takes an ImageTensorSet or FolderDataset, not {type(dataset).__name__}"
    )
