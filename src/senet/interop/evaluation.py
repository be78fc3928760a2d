"""Top-1/top-5 error of weights on image files, streamed batch by batch (``senet eval``).

Single centre crop (the paper's Sec. 5.1 evaluation) with the weights' own ``Preprocessing``;
optional test-time augmentation averages the softmax over the crop and its mirror (``flip``) or
over the four corner crops, the centre crop and their mirrors (``10crop``, the classic ten-crop
test). The precision and memory layout come from ``senet.utils.cpu.choose_precision``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torchvision import transforms as T

from senet.data.preprocessing import Preprocessing
from senet.utils.cpu import PrecisionChoice

TTA_MODES = ("none", "flip", "10crop")
_MODES = {
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
    "nearest": T.InterpolationMode.NEAREST,
}


def tta_transform(prep: Preprocessing, tta: str = "none") -> Callable[[Any], torch.Tensor]:
    """PIL image → C×H×W (``none``) or V×C×H×W views (``flip``: 2, ``10crop``: 10)."""
    if tta not in TTA_MODES:
        raise ValueError(f"--tta {tta!r} is not supported; choose one of {', '.join(TTA_MODES)}")
    if tta == "none":
        return prep.transform()
    tensor = T.Compose([T.ToTensor(), T.Normalize(list(prep.mean), list(prep.std))])
    resize = T.Resize(prep.resize_size, interpolation=_MODES[prep.interpolation])
    if tta == "flip":
        centre = T.CenterCrop(prep.input_size)

        def views(img: Any) -> torch.Tensor:
            x = tensor(centre(resize(img)))
            return torch.stack([x, x.flip(-1)])

        return views
    ten = T.TenCrop(prep.input_size)
    return lambda img: torch.stack([tensor(c) for c in ten(resize(img))])


@torch.inference_mode()
def evaluate_batches(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, list[str]]],
    *,
    device: torch.device,
    precision: PrecisionChoice,
    skip_corrupt: bool = False,
    return_logits: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    """Top-1/top-5 error (%), mean cross-entropy and count over ``(x, y, errors)`` batches.

    ``x`` is N×C×H×W, or N×V×C×H×W for test-time augmentation (the softmax is averaged over the V
    views; the loss is that of the averaged probabilities). Unreadable images (``errors``) raise a
    ``ValueError`` naming the first one, or are counted and skipped with ``skip_corrupt``.
    """
    model.eval()
    loss_sum, hits1, hits5, n = 0.0, 0, 0, 0
    skipped: list[str] = []
    scores, labels = [], []
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision.amp)
    for x, y, errors in batches:
        if errors:
            if not skip_corrupt:
                raise ValueError(
                    f"{errors[0]}; remove or replace the file, or pass --skip-corrupt to skip "
                    "unreadable images"
                )
            skipped.extend(errors)
        if len(y) == 0:
            continue
        views = x.shape[1] if x.ndim == 5 else 1
        x = x.flatten(0, 1) if x.ndim == 5 else x
        x = x.to(device, non_blocking=True)
        if precision.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        logits = logits.float()
        if views > 1:
            probs = logits.softmax(1).view(len(y), views, -1).mean(1)
            out = probs.clamp_min(1e-12).log()
            loss_sum += float(nn.functional.nll_loss(out, y, reduction="sum"))
        else:
            out = logits
            loss_sum += float(nn.functional.cross_entropy(out, y, reduction="sum"))
        k = min(5, out.shape[1])
        top = out.topk(k, dim=1).indices
        hits1 += int((top[:, 0] == y).sum())
        hits5 += int((top == y[:, None]).any(1).sum())
        n += len(y)
        if return_logits:
            scores.append(out.cpu())
            labels.append(y.cpu())
        if progress is not None:
            progress.update(len(y) + len(errors))
    if n == 0:
        raise ValueError(
            "no image could be evaluated (the split is empty or every image is unreadable)"
        )
    result: dict[str, Any] = {
        "top1_err": 100.0 * (1 - hits1 / n),
        "top5_err": 100.0 * (1 - hits5 / n),
        "loss": loss_sum / n,
        "n": n,
        "skipped_corrupt": len(skipped),
    }
    if return_logits:
        result["logits"], result["labels"] = torch.cat(scores), torch.cat(labels)
    return result


def prepare_model(model: nn.Module, device: torch.device, precision: PrecisionChoice) -> nn.Module:
    """``model`` on ``device`` in eval mode, in the chosen memory layout."""
    model = model.to(device).eval()
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
