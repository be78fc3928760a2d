"""How an image becomes a model's input at evaluation: one description for train, eval, predict, export.

A ``Preprocessing`` is stored in every weights file's metadata (``to_metadata``) and read back the
same way by every consumer (``from_metadata``), so the numbers ``senet eval`` reports are the ones
``senet predict`` reproduces image by image. The evaluation transform is the paper's (Sec. 5.1):
resize the shorter side to ``resize_size`` (256 for a 224 crop), take the centre
``input_size`` × ``input_size`` crop, scale to [0, 1], subtract ``mean`` and divide by ``std``.

- ``resize`` (pixels) wins over ``crop_pct`` (the fraction of the resized image the crop keeps,
  timm's convention): ``resize_size = resize or floor(input_size / crop_pct)``.
- Data decoded into memory for training (CIFAR, digits) was resized so its shorter side *is* the
  input size, so such runs record ``resize = input_size`` (crop_pct 1.0).
- The paper's mean-RGB subtraction without division is ``std = (1, 1, 1)``; Caffe's 0–255 mean
  subtraction is ``mean = m / 255`` with ``std = 1 / 255``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

import torch

#: ImageNet channel means/stds on the [0, 1] scale (the Caffe release's BGR means 104/117/123 ≈ these)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875  # 224 / 256, the paper's evaluation

Interpolation = Literal["bilinear", "bicubic", "nearest"]
INTERPOLATIONS: tuple[str, ...] = get_args(Interpolation)


@dataclass(frozen=True)
class Preprocessing:
    """The evaluation transform of a model's weights (see the module docstring)."""

    input_size: int = 224
    resize: int | None = None
    crop_pct: float = DEFAULT_CROP_PCT
    interpolation: Interpolation = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    in_chans: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if not isinstance(self.input_size, int) or self.input_size < 1:
            raise ValueError(
                f"input size {self.input_size!r} must be a positive integer (e.g. 224)"
            )
        if self.resize is not None and (not isinstance(self.resize, int) or self.resize < 1):
            raise ValueError(f"eval resize {self.resize!r} must be a positive integer (e.g. 256)")
        if self.resize is not None and self.resize < self.input_size:
            raise ValueError(
                f"eval resize {self.resize} is smaller than the {self.input_size} crop; "
                f"use a resize ≥ {self.input_size} (the paper: 256 for 224)"
            )
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct {self.crop_pct} must be in (0, 1] (the paper: 0.875)")
        if self.resize is not None:  # an explicit resize fixes the crop fraction
            object.__setattr__(self, "crop_pct", round(self.input_size / self.resize, 6))
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation {self.interpolation!r} is not supported; "
                f"choose one of {', '.join(INTERPOLATIONS)}"
            )
        if self.in_chans < 1:
            raise ValueError(f"in_chans {self.in_chans} must be ≥ 1")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise ValueError(
                f"mean {self.mean} and std {self.std} need one value per channel ({self.in_chans})"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std {self.std} must be positive")

    @property
    def resize_size(self) -> int:
        """The shorter side before the centre crop."""
        if self.resize is not None:
            return self.resize
        return max(self.input_size, math.floor(self.input_size / self.crop_pct))

    def with_overrides(
        self,
        input_size: int | None = None,
        resize: int | None = None,
        crop_pct: float | None = None,
    ) -> Preprocessing:
        """Evaluate at another resolution (``--input-size``/``--eval-resize``/``--crop-pct``).

        A new ``input_size`` alone keeps the crop fraction (224/256 → 320/365); ``crop_pct``
        replaces an explicit resize; ``resize`` wins over both.
        """
        if input_size is None and resize is None and crop_pct is None:
            return self
        size = self.input_size if input_size is None else input_size
        if resize is not None:
            return replace(self, input_size=size, resize=resize)
        pct = crop_pct if crop_pct is not None else self.input_size / self.resize_size
        return replace(self, input_size=size, resize=None, crop_pct=pct)

    # ---- metadata ------------------------------------------------------------------------
    def to_metadata(self) -> dict[str, Any]:
        """The keys a weights file stores (``resize`` always resolved to pixels)."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["resize"] = self.resize_size
        return d

    @classmethod
    def from_metadata(
        cls, meta: Mapping[str, Any], default: Preprocessing | None = None
    ) -> Preprocessing:
        """Read ``to_metadata``'s keys (and older files' ``eval_resize``); the rest from ``default``."""
        base = default or cls()
        size = meta.get("input_size")
        if isinstance(size, list | tuple):  # [C, H, W] as timm's pretrained configs write it
            size = size[-1]
        resize = meta.get("resize", meta.get("eval_resize"))
        mean, std = meta.get("mean"), meta.get("std")
        chans = meta.get("in_chans")
        if chans is None and mean is not None:
            chans = len(mean)
        kw: dict[str, Any] = {
            "input_size": int(size) if size is not None else base.input_size,
            "resize": int(resize) if resize is not None else None,
            "crop_pct": float(meta.get("crop_pct") or base.crop_pct),
            "interpolation": meta.get("interpolation") or base.interpolation,
            "in_chans": int(chans) if chans is not None else base.in_chans,
        }
        if resize is None and size is None and meta.get("crop_pct") is None:
            kw["resize"] = base.resize  # nothing about sizes in the file: the default's, whole
        kw["mean"] = tuple(mean) if mean is not None else _fit(base.mean, kw["in_chans"])
        kw["std"] = tuple(std) if std is not None else _fit(base.std, kw["in_chans"])
        return cls(**kw)

    # ---- transforms ------------------------------------------------------------------------
    def open_image(self, path: str | Path, data: bytes | None = None) -> Any:
        """A PIL image in the model's colour mode ("L" for 1 channel, else "RGB"); errors name the file.

        ``data``: the file's bytes when it is not on disk (a member of an archive named ``path``).
        """
        import io

        from PIL import Image, UnidentifiedImageError

        path = Path(path)
        if data is None and not path.is_file():
            raise ValueError(f"{path}: no such file")
        try:
            with Image.open(io.BytesIO(data) if data is not None else path) as img:
                return img.convert("L" if self.in_chans == 1 else "RGB")
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(f"{path}: not a readable image ({err})") from err

    def transform(self) -> Callable[[Any], torch.Tensor]:
        """PIL image → normalised float tensor C × input_size × input_size (the eval transform)."""
        from torchvision import transforms as T

        modes = {
            "bilinear": T.InterpolationMode.BILINEAR,
            "bicubic": T.InterpolationMode.BICUBIC,
            "nearest": T.InterpolationMode.NEAREST,
        }
        return T.Compose(
            [
                T.Resize(self.resize_size, interpolation=modes[self.interpolation]),
                T.CenterCrop(self.input_size),
                T.ToTensor(),
                T.Normalize(list(self.mean), list(self.std)),
            ]
        )

    def normalize_uint8(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×C×H×W → float, normalised with exactly the arithmetic of ``transform``."""
        return normalize_uint8(images, self.mean, self.std)


def normalize_uint8(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """``(x / 255 - mean) / std`` in float32, op for op as ``ToTensor`` + ``Normalize`` compute it.

    Training's in-memory batches and the file transform thus give bitwise the same inputs.
    """
    c = images.shape[1]
    m = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, c, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, c, 1, 1)
    return images.float().div_(255).sub_(m).div_(s)


def _fit(values: tuple[float, ...], n: int) -> tuple[float, ...]:
    """Default statistics for ``n`` channels: as given, or their average for grey images."""
    if len(values) == n:
        return values
    if n == 1:
        return (round(sum(values) / len(values), 6),)
    raise ValueError(f"no default mean/std for {n}-channel images; store mean/std in the metadata")
