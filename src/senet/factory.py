"""``create_model``: a network by name, optionally with weights; the one entry point the package
face (``senet.create_model``) and library modules share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from senet.interop.weights_file import build_from_checkpoint
from senet.models.features import FeatureExtractor
from senet.models.registry import build_model
from senet.weights import build_pretrained


def create_model(
    name: str,
    pretrained: bool | str | Path = False,
    *,
    checkpoint: str | Path | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **options: object,
) -> nn.Module:
    """Build a network by name (``senet.list_models()``), optionally with weights.

    - ``pretrained``: weights to *start from*: ``True`` (the model's default registered weights,
      downloaded once into ``$SENET_HOME``), a tag (``"original"``, ``"ra2_in1k"``; ``senet
      weights`` lists them) or a local file in any format ``senet convert`` reads. They are
      adapted to ``num_classes`` (a new classifier, initialised as the network's own) and
      ``in_chans`` (the stem convolution adapted as timm's ``adapt_input_conv``); every other
      tensor must fit. The options the weights imply (the layout) are applied.
    - ``checkpoint``: rebuild exactly the model a file describes (its metadata, or for a raw
      state dict what its key names imply, see
      ``senet.interop.weights_file.prepare_checkpoint``); explicit options must agree with it.
    - ``num_classes=0``: no classifier (``forward`` returns pooled features), as
      ``reset_classifier(0)``.
    - ``options`` are the network's own (``layout``, ``reduction``, ``squeeze``, ``gate``,
      ``se_bias``, ``se_stages``, ``integration``, ...); an unknown name or option raises a
      ``ValueError`` naming the closest valid ones.
    - ``features_only=True`` returns a ``senet.models.features.FeatureExtractor`` giving the
      per-stage feature maps selected by ``out_indices`` (indices into ``model.feature_info``).
    """
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 0):
        raise ValueError(
            f"num_classes={num_classes!r} must be a positive integer, or 0 for no classifier"
        )
    if in_chans is not None and (not isinstance(in_chans, int) or in_chans < 1):
        raise ValueError(f"in_chans={in_chans!r} must be a positive integer (3 for RGB)")
    if pretrained is not False and pretrained is not None and checkpoint is not None:
        raise ValueError(
            "give pretrained= (weights to start from, adapted to num_classes/in_chans) or "
            "checkpoint= (rebuild exactly that model), not both"
        )
    if out_indices is not None and not features_only:
        raise ValueError("out_indices selects feature maps; it needs features_only=True")
    head = None if num_classes == 0 else num_classes
    if pretrained is not False and pretrained is not None:
        model = build_pretrained(name, pretrained, num_classes, in_chans, dict(options))
    else:
        if in_chans is not None:
            options["in_chans"] = in_chans
        if checkpoint is not None:
            model = build_from_checkpoint(name, checkpoint, head, **options)
        else:
            model = build_model(name, num_classes=head, **options)
        if num_classes == 0:
            model.reset_classifier(0)
    if features_only:
        return FeatureExtractor(model, out_indices)
    return model
