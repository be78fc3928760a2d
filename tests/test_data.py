"""senet.data: datasets, bad-input errors, deterministic in-memory and file loaders."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest
import torch

from senet.data import (
    FolderDataset,
    ImageTensorSet,
    balanced_subset,
    build_dataset,
    build_loader,
    check_same_classes,
)
from senet.data.loaders import generator, random_crop_flip


def test_imagefolder_in_memory_layout(tiny_imagefolder: Path) -> None:
    ds = build_dataset("imagefolder", tiny_imagefolder, "train")
    assert isinstance(ds, ImageTensorSet)
    assert ds.classes == ["bars", "blob", "stripes"]
    assert ds.images.shape == (3 * 24, 3, 16, 16) and ds.images.dtype == torch.uint8
    assert torch.bincount(ds.labels).tolist() == [24, 24, 24]
    val = build_dataset("imagefolder", tiny_imagefolder, "val")
    assert len(val) == 3 * 8
    check_same_classes(ds, val)


def test_archive_reads_like_folder(tiny_imagefolder: Path, tmp_path: Path) -> None:
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_imagefolder, arcname="tiny")
    a = build_dataset("imagefolder", tiny_imagefolder, "train")
    b = build_dataset("imagefolder", archive, "train")
    assert (
        torch.equal(a.images, b.images)
        and torch.equal(a.labels, b.labels)
        and a.classes == b.classes
    )


def test_balanced_subset_takes_first_per_class() -> None:
    samples = [(i, i % 3) for i in range(30)]
    idx = balanced_subset(samples, 7, 3)
    labels = [samples[i][1] for i in idx]
    assert sorted(labels) == [0, 0, 0, 1, 1, 2, 2]
    assert idx == sorted(idx) and idx[:3] == [0, 1, 2]


def test_subset_option(tiny_imagefolder: Path) -> None:
    ds = build_dataset("imagefolder", tiny_imagefolder, "train", subset=9)
    assert torch.bincount(ds.labels).tolist() == [3, 3, 3]


def test_missing_and_empty_data_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"does not exist.*--data-dir"):
        build_dataset("imagefolder", tmp_path / "nope", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="is empty"):
        build_dataset("imagefolder", tmp_path / "empty", "train")
    (tmp_path / "noclass" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no class folders"):
        build_dataset("imagefolder", tmp_path / "noclass", "train")
    (tmp_path / "noimg" / "train" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no images"):
        build_dataset("imagefolder", tmp_path / "noimg", "train")
    with pytest.raises(ValueError, match="needs --data-dir"):
        build_dataset("imagefolder", None, "train")


def test_val_falls_back_to_test(tiny_imagefolder: Path, tmp_path: Path) -> None:
    root = tmp_path / "t"
    shutil.copytree(tiny_imagefolder / "train", root / "train")
    shutil.copytree(tiny_imagefolder / "val", root / "test")
    assert len(build_dataset("imagefolder", root, "val")) == 24


def test_class_folders_differ(tmp_path: Path, imagefolder_factory) -> None:
    root = imagefolder_factory(tmp_path / "d", n_train=2, n_val=2)
    shutil.rmtree(root / "val" / "blob")
    (root / "val" / "circles").mkdir()
    shutil.copy(root / "train" / "bars" / "0000.png", root / "val" / "circles" / "0000.png")
    train, val = (build_dataset("imagefolder", root, s) for s in ("train", "val"))
    with pytest.raises(ValueError, match=r"only in train: blob; only in val: circles"):
        check_same_classes(train, val)


def test_corrupt_image_named_and_skipped(tmp_path: Path, imagefolder_factory) -> None:
    root = imagefolder_factory(tmp_path / "c", n_train=4, n_val=2)
    bad = root / "train" / "blob" / "0002.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"0002\.png.*--skip-corrupt"):
        build_dataset("imagefolder", root, "train")
    ds = build_dataset("imagefolder", root, "train", skip_corrupt=True)
    assert len(ds) == 11 and ds.skipped == [str(bad)]
    files = build_dataset("imagefolder", root, "train", in_memory=False, skip_corrupt=True)
    assert isinstance(files, FolderDataset) and len(files) == 11 and files.skipped == [str(bad)]
    lazy = build_dataset("imagefolder", root, "train", in_memory=False)
    with pytest.raises(ValueError, match=r"0002\.png"):
        [lazy[i] for i in range(len(lazy))]


def test_digits_split_is_fixed_and_disjoint() -> None:
    pytest.importorskip("sklearn")
    train, val = build_dataset("digits", split="train"), build_dataset("digits", split="val")
    assert len(train) + len(val) == 1797 and len(val) == sum(
        n // 5 for n in torch.bincount(torch.cat([train.labels, val.labels])).tolist()
    )
    assert train.images.shape[1:] == (1, 8, 8)
    up = build_dataset("digits", split="val", input_size=16)
    assert up.images.shape[1:] == (1, 16, 16) and torch.equal(up.labels, val.labels)
    # the same 8×8 images, not a reshuffle: downsampling the upsampled set correlates with the original
    down = torch.nn.functional.avg_pool2d(up.images.float(), 2)
    corr = torch.corrcoef(torch.stack([down.flatten(), val.images.float().flatten()]))[0, 1]
    assert corr > 0.9


def test_cifar_absent_offline_says_where(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py.*--data-dir.*--download"):
        build_dataset("cifar10", tmp_path, "train")


def test_unknown_dataset() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; choose one of"):
        build_dataset("imagenet", "x", "train")


def _toy(n: int = 20, size: int = 8) -> ImageTensorSet:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return ImageTensorSet(images, torch.arange(n) % 4, ["a", "b", "c", "d"])


def test_crop_flip_matches_manual_pad_and_slice() -> None:
    x = _toy(6).images
    out = random_crop_flip(x, 2, True, generator(7))
    g = generator(7)
    dy = torch.randint(0, 5, (6,), generator=g)
    dx = torch.randint(0, 5, (6,), generator=g)
    flip = torch.rand(6, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):
        ref = padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8]
        assert torch.equal(out[i], ref.flip(2) if flip[i] else ref)


def test_loader_is_deterministic_and_resumable() -> None:
    data = _toy()
    kw = {"train": True, "augment": "crop_flip", "mean": (0.5,) * 3, "std": (0.25,) * 3, "seed": 3}
    a, b = build_loader(data, 4, **kw), build_loader(data, 4, **kw)
    a.set_epoch(2), b.set_epoch(2)
    batches = list(a)
    assert len(batches) == 5 and all(torch.equal(x, y) for (x, _), (y, _) in zip(batches, b))
    tail = list(b.iterate(3))
    assert torch.equal(tail[0][0], batches[3][0]) and torch.equal(tail[1][1], batches[4][1])
    b.set_epoch(3)
    assert not torch.equal(next(iter(b))[0], batches[0][0])
    # normalisation: (x/255 - mean)/std
    ev = build_loader(data, 8, train=False, mean=(0.5,) * 3, std=(0.25,) * 3)
    x, y = next(iter(ev))
    assert torch.allclose(
        x, (data.images[:8].float() / 255 - 0.5) / 0.25, atol=1e-5
    ) and torch.equal(y, data.labels[:8])


def test_loader_shards_global_batches_across_ranks() -> None:
    data = _toy()
    kw = {"train": True, "augment": "crop_flip", "mean": (0.5,) * 3, "std": (0.25,) * 3, "seed": 1}
    whole = list(build_loader(data, 4, **kw))
    parts = [list(build_loader(data, 4, rank=r, world_size=2, **kw)) for r in range(2)]
    for i, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([parts[0][i][0], parts[1][i][0]]), x)
        assert torch.equal(torch.cat([parts[0][i][1], parts[1][i][1]]), y)
    ev = [
        build_loader(data, 8, train=False, rank=r, world_size=2, mean=(0.5,) * 3, std=(0.25,) * 3)
        for r in range(2)
    ]
    seen = sorted(torch.cat([y for e in ev for _, y in e]).tolist())
    assert seen == sorted(data.labels.tolist()) and sum(e.num_samples for e in ev) == len(data)


def test_loader_rejects_bad_batch() -> None:
    with pytest.raises(ValueError, match="larger than the 20 training images"):
        build_loader(_toy(), 64, train=True, mean=(0.5,) * 3, std=(0.2,) * 3)
    with pytest.raises(ValueError, match="divisible by the 3 processes"):
        build_loader(_toy(), 4, train=True, world_size=3, mean=(0.5,) * 3, std=(0.2,) * 3)


def test_file_loader_shapes_and_coverage(tiny_imagefolder: Path) -> None:
    ds = build_dataset("imagefolder", tiny_imagefolder, "val", in_memory=False)
    loader = build_loader(ds, 5, train=False, input_size=12, eval_resize=14, workers=0)
    xs, ys = zip(*loader)
    assert xs[0].shape == (5, 3, 12, 12) and sum(len(y) for y in ys) == len(ds) == 24
    tr = build_loader(ds, 8, train=True, augment="rrc_flip", input_size=12, workers=0, seed=0)
    tr.set_epoch(0)
    first = [y for _, y in tr]
    tr2 = build_loader(ds, 8, train=True, augment="rrc_flip", input_size=12, workers=0, seed=0)
    tr2.set_epoch(0)
    assert all(torch.equal(a, b) for a, b in zip(first, (y for _, y in tr2))) and len(first) == 3


def test_channel_stats_match_direct_computation() -> None:
    data = _toy(10)
    mean, std = data.channel_stats()
    x = data.images.double() / 255
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), x.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(
        torch.tensor(std, dtype=torch.float64), x.std((0, 2, 3), unbiased=False), atol=1e-5
    )


def test_cifar_arrays_become_uint8_nchw(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's CIFAR arrays (N×32×32×3 uint8) → ImageTensorSet; train/test chosen by split."""
    import numpy as np
    from torchvision import datasets

    class FakeCIFAR10:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            rng = np.random.default_rng(0 if train else 1)
            self.data = rng.integers(0, 256, (20 if train else 10, 32, 32, 3), dtype=np.uint8)
            self.targets = [i % 10 for i in range(len(self.data))]
            self.classes = [f"c{i}" for i in range(10)]

    monkeypatch.setattr(datasets, "CIFAR10", FakeCIFAR10)
    train = build_dataset("cifar10", "anywhere", "train")
    val = build_dataset("cifar10", "anywhere", "val", subset=5)
    ref = FakeCIFAR10("", True, False)
    assert train.images.shape == (20, 3, 32, 32)
    assert torch.equal(train.images[3], torch.from_numpy(ref.data[3]).permute(2, 0, 1))
    assert len(val) == 5 and val.labels.tolist() == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------------------------
# Cutout
# --------------------------------------------------------------------------------------------
def test_cutout_masks_full_and_partial_squares() -> None:
    from senet.data import cutout_mask

    g = generator(5)
    mask = cutout_mask(2000, 32, 32, 16, g)
    assert mask.shape == (2000, 1, 32, 32) and set(mask.unique().tolist()) <= {0.0, 1.0}
    holes = (mask == 0).sum((1, 2, 3))
    g = generator(5)
    cy, cx = torch.randint(0, 32, (2000,), generator=g), torch.randint(0, 32, (2000,), generator=g)
    for i in range(2000):
        y0, x0 = int(cy[i]) - 8, int(cx[i]) - 8
        rows = min(y0 + 16, 32) - max(y0, 0)
        cols = min(x0 + 16, 32) - max(x0, 0)
        assert holes[i] == rows * cols  # clipped at the image's edges
        ref = torch.ones(32, 32)
        ref[max(y0, 0) : y0 + 16, max(x0, 0) : x0 + 16] = 0
        assert torch.equal(mask[i, 0], ref)
    assert holes.max() == 256 and holes.min() < 256  # whole squares inside, partial ones at edges
    assert (holes == 64).any()  # a centre in a corner keeps a quarter of the square
    assert torch.equal(mask, cutout_mask(2000, 32, 32, 16, generator(5)))  # seeded
    assert not torch.equal(mask, cutout_mask(2000, 32, 32, 16, generator(6)))


def test_loader_cutout_is_seeded_resumable_and_zeroes_normalised_pixels() -> None:
    data = _toy()
    kw = {"train": True, "augment": "crop_flip", "mean": (0.5,) * 3, "std": (0.25,) * 3, "seed": 3}
    plain = build_loader(data, 4, **kw)
    cut = build_loader(data, 4, cutout=4, **kw)
    again = build_loader(data, 4, cutout=4, **kw)
    for loader in (plain, cut, again):
        loader.set_epoch(1)
    pb, cb = list(plain), list(cut)
    assert torch.equal(torch.stack([x for x, _ in cb]), torch.stack([x for x, _ in again]))
    assert torch.equal(next(iter(again.iterate(3)))[0], cb[3][0])  # resumed mid-epoch: same cut
    for (p, _), (c, _) in zip(pb, cb):
        zeroed = (c == 0) & (p != 0)
        assert zeroed.any() and torch.equal(c[c != 0], p[c != 0])  # only the squares changed
        assert torch.equal(
            zeroed[:, :1].expand_as(zeroed), zeroed
        )  # the same square in every channel
    ev = build_loader(data, 8, train=False, cutout=4, mean=(0.5,) * 3, std=(0.25,) * 3)
    ref = build_loader(data, 8, train=False, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(ev, ref))  # never at evaluation


def test_file_transform_cutout_is_seeded() -> None:
    from PIL import Image

    from senet.data import file_transform

    tf = file_transform(True, "crop_flip", 16, 16, (0.5,) * 3, (0.25,) * 3, 2, cutout=8)
    assert "Cutout(size=8)" in repr(tf)
    img = Image.fromarray((torch.rand(16, 16, 3) * 255).to(torch.uint8).numpy())
    torch.manual_seed(1)
    a = tf(img)
    torch.manual_seed(1)
    b = tf(img)
    assert torch.equal(a, b) and 0 < int((a == 0).all(0).sum()) <= 64


# --------------------------------------------------------------------------------------------
# class-balanced minibatches
# --------------------------------------------------------------------------------------------
def _imbalanced(n_per_class: tuple[int, ...] = (30, 6, 3, 1)) -> ImageTensorSet:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 4, 4)
    return ImageTensorSet(images.contiguous(), labels, [str(c) for c in range(len(n_per_class))])


@pytest.mark.parametrize("batch_size", [8, 10, 3])
def test_balanced_order_evens_classes_in_every_batch(batch_size: int) -> None:
    from senet.data.loaders import balanced_order

    labels = _imbalanced().labels
    n_batches = 40 // batch_size
    order = balanced_order(labels, batch_size, n_batches, generator(0))
    assert order.shape == (n_batches * batch_size,)
    batches = labels[order].view(n_batches, batch_size)
    counts = torch.stack([torch.bincount(b, minlength=4) for b in batches])
    assert int(counts.max(1).values.sub(counts.min(1).values).max()) <= 1  # within ±1 per batch
    if batch_size >= 4:
        assert int(counts.min()) >= batch_size // 4  # every class in every batch
    else:  # fewer slots than classes: distinct classes per batch, all classes equally often
        assert int(counts.max()) == 1
        total = counts.sum(0)
        assert int(total.max() - total.min()) <= 1
    # images of a class are used in turn: the one image of class 3 repeats, class 0's do not
    per_class = [order[labels[order] == c] for c in range(4)]
    assert len(per_class[0].unique()) == len(per_class[0])
    assert torch.equal(order, balanced_order(labels, batch_size, n_batches, generator(0)))


def test_balanced_loaders_in_memory_and_from_files(tiny_imagefolder: Path) -> None:
    data = _imbalanced()
    kw = {"train": True, "mean": (0.5,) * 3, "std": (0.25,) * 3, "seed": 2, "balanced": True}
    loader = build_loader(data, 8, **kw)
    loader.set_epoch(1)
    batches = list(loader)
    assert len(batches) == 5 and all(
        torch.bincount(y, minlength=4).tolist() == [2] * 4 for _, y in batches
    )
    again = build_loader(data, 8, **kw)
    again.set_epoch(1)
    assert torch.equal(next(iter(again.iterate(2)))[1], batches[2][1])  # resumable mid-epoch
    halves = [build_loader(data, 8, rank=r, world_size=2, **kw) for r in range(2)]
    for h in halves:
        h.set_epoch(1)
    for (x, y), (xa, ya), (xb, yb) in zip(batches, *halves):
        assert torch.equal(torch.cat([ya, yb]), y) and torch.equal(torch.cat([xa, xb]), x)
    # the file loader: the same order, each rank's slice of every global batch
    files = build_dataset("imagefolder", tiny_imagefolder, "train", in_memory=False, subset=30)
    fl = build_loader(
        files, 6, train=True, augment="rrc_flip", input_size=8, workers=0, seed=2, balanced=True
    )
    fl.set_epoch(0)
    ys = [y for _, y in fl]
    assert len(ys) == 5 and all(torch.bincount(y, minlength=3).tolist() == [2, 2, 2] for y in ys)
    fl.set_epoch(0)
    tail = [x for x, _ in fl.iterate(3)]
    fl.set_epoch(0)
    assert torch.equal(tail[0], [x for x, _ in fl][3])  # resume mid-epoch: same images and crops
