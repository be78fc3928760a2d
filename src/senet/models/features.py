"""Multi-scale feature maps of a classification network, for detection and segmentation backbones.

The paper's COCO experiment (Sec. 6.? "Other tasks", PAPER.md) swaps ResNet for SE-ResNet in
Faster R-CNN: the detector reads the stages' outputs (strides 4, 8, 16, 32). ``FeatureExtractor``
wraps any model that exposes ``feature_info`` (a list of ``{"module", "num_chs", "reduction"}``,
one per stage, as every senet model does) and returns the selected stages' maps.

Indices count stages only (``out_indices=(0, 1, 2, 3)`` = ``layer1..layer4`` of a ResNet), unlike
timm, whose index 0 is the stem. The classifier is removed (``reset_classifier(0)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def resolve_indices(out_indices: Sequence[int] | None, n: int) -> tuple[int, ...]:
    """Normalise ``out_indices`` (negative allowed, default all) against ``n`` stages."""
    if out_indices is None:
        return tuple(range(n))
    if isinstance(out_indices, int):
        out_indices = (out_indices,)
    resolved = []
    for i in out_indices:
        if not isinstance(i, int) or not -n <= i < n:
            raise ValueError(
                f"out_indices={tuple(out_indices)} names stage {i!r}; valid are 0..{n - 1} (or -{n}..-1)"
            )
        resolved.append(i % n)
    if not resolved:
        raise ValueError("out_indices is empty; give at least one stage index")
    return tuple(sorted(set(resolved)))


class FeatureExtractor(nn.Module):
    """Return the feature maps of the stages ``out_indices`` of ``model`` (a list, shallow first).

    ``feature_info``/``channels``/``reductions`` describe the returned maps. Residual networks run
    only up to the deepest selected stage; any other model with ``feature_info`` runs its
    ``forward_features`` and the maps are read with forward hooks.
    """

    def __init__(self, model: nn.Module, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        info = getattr(model, "feature_info", None)
        if not info:
            raise ValueError(
                f"{type(model).__name__} has no feature_info, so its stages are unknown; "
                "features_only needs a model that lists its stages in feature_info"
            )
        self.out_indices = resolve_indices(out_indices, len(info))
        self.feature_info = [dict(info[i], index=i) for i in self.out_indices]
        if hasattr(model, "reset_classifier"):
            model.reset_classifier(0)
        self.model = model
        self.model_name = getattr(model, "model_name", None)
        self._feature_modules = [str(f["module"]) for f in self.feature_info]
        stage_names = [str(f["module"]) for f in info]
        stages = getattr(model, "stages", None)
        self._sequential = (
            hasattr(model, "forward_stem")
            and stages is not None
            and [n for n, _ in model.named_children() if n in stage_names] == stage_names
            and len(stages) == len(stage_names)
        )

    @property
    def channels(self) -> list[int]:
        return [int(f["num_chs"]) for f in self.feature_info]

    @property
    def reductions(self) -> list[int]:
        return [int(f["reduction"]) for f in self.feature_info]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self._sequential:
            return self._forward_stages(x)
        return self._forward_via_hooks(x)

    def _forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        x = self.model.forward_stem(x)
        last = self.out_indices[-1]
        for i, stage in enumerate(self.model.stages[: last + 1]):
            x = stage(x)
            if i in self.out_indices:
                out.append(x)
        return out

    def _forward_via_hooks(self, x: torch.Tensor) -> list[torch.Tensor]:
        found: dict[str, torch.Tensor] = {}
        handles = []
        for name in self._feature_modules:
            module = self.model.get_submodule(name)
            handles.append(
                module.register_forward_hook(lambda _m, _i, o, n=name: found.__setitem__(n, o))
            )
        try:
            self.model.forward_features(x)
        finally:
            for h in handles:
                h.remove()
        return [found[n] for n in self._feature_modules]
