"""senet: Squeeze-and-Excitation Networks (Hu et al., CVPR 2018 / TPAMI 2019) in PyTorch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from senet.layers import SEConfig, SqueezeExcitation
from senet.models import add_se, get_entry, list_models
from senet.models.registry import build_model

__version__ = "0.1.0"


def create_model(
    name: str,
    num_classes: int | None = None,
    checkpoint: str | Path | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **options: object,
) -> nn.Module:
    """Build a network by name (``senet.list_models()``), optionally loading a checkpoint file.

    ``options`` are the network's own (``layout``, ``reduction``, ``squeeze``, ``gate``,
    ``se_bias``, ``se_stages``, ``integration``, ...); an unknown name or option raises a
    ``ValueError`` naming the closest valid ones. With ``checkpoint``, ``num_classes`` and the
    options default to the file's (its metadata, or for a raw state dict what its key names imply,
    see ``senet.interop.checkpoint.prepare_checkpoint``); explicit ones must agree with it.
    ``features_only=True`` returns a ``senet.models.features.FeatureExtractor`` giving the
    per-stage feature maps selected by ``out_indices`` (indices into ``model.feature_info``).
    """
    meta = None
    if checkpoint is not None:
        from senet.interop.checkpoint import load_state, prepare_checkpoint

        state, meta, num_classes, options = prepare_checkpoint(
            name, checkpoint, num_classes, options
        )
    model = build_model(name, num_classes=num_classes, **options)
    if checkpoint is not None:
        load_state(model, state, meta, checkpoint)
        model.checkpoint_metadata = meta  # type: ignore[assignment]
    if features_only:
        from senet.models.features import FeatureExtractor

        return FeatureExtractor(model, out_indices)
    if out_indices is not None:
        raise ValueError("out_indices selects feature maps; it needs features_only=True")
    return model


__all__ = [
    "SEConfig",
    "SqueezeExcitation",
    "__version__",
    "add_se",
    "create_model",
    "get_entry",
    "list_models",
]
