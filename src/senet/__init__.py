"""senet: Squeeze-and-Excitation Networks (Hu et al., CVPR 2018 / TPAMI 2019) in PyTorch."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from senet.layers import SEConfig, SqueezeExcitation
from senet.models import get_entry, list_models
from senet.models.registry import build_model

__version__ = "0.1.0"


def create_model(
    name: str,
    num_classes: int | None = None,
    checkpoint: str | Path | None = None,
    **options: object,
) -> nn.Module:
    """Build a network by name (``senet.list_models()``), optionally loading a checkpoint file.

    ``options`` are the network's own (``layout``, ``reduction``, ``squeeze``, ``gate``,
    ``se_bias``, ``se_stages``, ``integration``, ...); an unknown name or option raises a
    ``ValueError`` naming the closest valid ones.
    """
    model = build_model(name, num_classes=num_classes, **options)
    if checkpoint is not None:
        from senet.interop.checkpoint import load_weights

        load_weights(model, checkpoint)
    return model


__all__ = ["SEConfig", "SqueezeExcitation", "__version__", "create_model", "get_entry", "list_models"]
