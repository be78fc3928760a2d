"""``create_model``: a network by name, optionally with weights; the one entry point the package
face (``senet.create_model``) and library modules share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from senet.models.registry import build_model


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
    see ``senet.interop.weights_file.prepare_checkpoint``); explicit ones must agree with it.
    ``features_only=True`` returns a ``senet.models.features.FeatureExtractor`` giving the
    per-stage feature maps selected by ``out_indices`` (indices into ``model.feature_info``).
    """
    if checkpoint is not None:
        from senet.interop.weights_file import build_from_checkpoint

        model = build_from_checkpoint(name, checkpoint, num_classes, **options)
    else:
        model = build_model(name, num_classes=num_classes, **options)
    if features_only:
        from senet.models.features import FeatureExtractor

        return FeatureExtractor(model, out_indices)
    if out_indices is not None:
        raise ValueError("out_indices selects feature maps; it needs features_only=True")
    return model
