"""The "plain loop" reference of issue 7: a CIFAR ResNet-20 the way most reimplementations write it.

SE is ``AdaptiveAvgPool2d → Linear → ReLU → Linear → Sigmoid → mul`` before the residual sum; the
data come through ``torchvision.datasets.ImageFolder`` and a ``DataLoader`` with the usual
crop+flip transforms. It is the same network as ``cifar_se_resnet20``/``cifar_resnet20`` (option-A
shortcuts, r=16), so the benchmark compares code paths, not architectures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class PlainSE(nn.Module):
    """SE as most code writes it (Sec. 3): pool, two Linear layers, sigmoid, multiply."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        return x * self.fc(self.pool(x).view(n, c)).view(n, c, 1, 1)


class PlainBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, se: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = PlainSE(cout) if se else nn.Identity()
        self.stride, self.pad = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        shortcut = x
        if self.stride != 1 or self.pad:
            shortcut = F.pad(
                x[:, :, :: self.stride, :: self.stride],
                (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2),
            )
        return F.relu(out + shortcut)


class PlainCifarResNet(nn.Module):
    """CIFAR ResNet-(6n+2) with optional plain SE (He et al. 2016, Sec. 4.2)."""

    def __init__(self, n: int = 3, se: bool = True, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, cout in enumerate((16, 32, 64)):
            for j in range(n):
                layers.append(PlainBasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1, se))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def imagefolder_batches(
    root: str | Path, batch_size: int, workers: int = 2, seed: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training batches from an ImageFolder tree, the way a plain loop reads CIFAR."""
    from torchvision import datasets
    from torchvision import transforms as T

    transform = T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        ]
    )
    data = datasets.ImageFolder(str(root), transform=transform)
    g = torch.Generator()
    g.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=g,
    )
    while True:
        yield from loader


def prepare_imagefolder(data_dir: str | Path | None, subset: int, workdir: str | Path) -> Path:
    """An ImageFolder ``train`` tree for the plain loop: ``data_dir`` itself when it is a folder;
    ``subset`` class-balanced images extracted from a ``.tar.gz``; or generated JPEGs when None."""
    workdir = Path(workdir)
    if data_dir is None:
        from PIL import Image

        g = torch.Generator().manual_seed(0)
        root = workdir / "generated" / "train"
        for i in range(subset):
            folder = root / f"class{i % 10}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8, generator=g).numpy()
            Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=75)
        return root
    path = Path(data_dir)
    if path.is_dir():
        for candidate in (path / "train", path / "cifar10-jpeg" / "train", path):
            if candidate.is_dir() and any(p.is_dir() for p in candidate.iterdir()):
                return candidate
        raise FileNotFoundError(
            f"{path} has no class folders; pass the cifar10-jpeg folder or its .tar.gz"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; pass --data-dir ../shared/data/cifar10-jpeg.tar.gz"
        )
    import tarfile

    per_class: dict[str, int] = {}
    root = workdir / "extracted"
    limit = max(1, subset // 10)
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3 or parts[-3] != "train":
                continue
            cls = parts[-2]
            if per_class.get(cls, 0) >= limit:
                continue
            per_class[cls] = per_class.get(cls, 0) + 1
            target = root / "train" / cls / Path(member.name).name
            target.parent.mkdir(parents=True, exist_ok=True)
            fh = tar.extractfile(member)
            assert fh is not None
            target.write_bytes(fh.read())
    if not per_class:
        raise FileNotFoundError(
            f"{path} has no train/<class>/ images; pass the CIFAR-10 JPEG archive"
        )
    return root / "train"
