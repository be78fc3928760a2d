"""The network a run trains: built for the data, optionally from pretrained weights, partly frozen.

``build_for_data`` creates the model for the data's classes and channels (random, ``--pretrained
[TAG]`` or ``--init WEIGHTS`` through ``senet.factory.create_model(name, pretrained=...)``, which
keeps every tensor but a resized classifier and adapts the input convolution), and checks that
it takes the data's images. ``param_groups`` gives the optimizer its groups (the backbone at
``backbone_lr_mult`` × the rate, or nothing of it with ``freeze_backbone``), and
``set_train_mode`` puts the model in training mode with the frozen parts' BatchNorm in eval mode.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from senet.factory import create_model
from senet.interop.weights_file import weights_path
from senet.train.recipes import TrainConfig

_BN = nn.modules.batchnorm._BatchNorm


def start_weights(config: TrainConfig) -> bool | str:
    """What ``create_model(pretrained=...)`` gets: False, True/a tag, or a weights file path."""
    if config.init is not None:
        return str(weights_path(config.init, "--init"))
    return config.pretrained if config.pretrained not in (None, "", False) else False


def describe_start(config: TrainConfig) -> str:
    """One phrase for the summary and the weights' metadata: what the weights started from."""
    if config.init is not None:
        return f"weights file {config.init}"
    if config.pretrained not in (None, "", False):
        return "pretrained weights" + (
            "" if config.pretrained is True else f" {config.pretrained!r}"
        )
    return f"random initialisation (seed {config.seed})"


def build_for_data(
    config: TrainConfig, num_classes: int, in_chans: int, size: int, *, resuming: bool = False
) -> tuple[nn.Module, list[str]]:
    """The model of ``config`` for the data; notes for the user (automatic choices).

    ``resuming``: the weights come from the checkpoint, so pretrained weights are not loaded.
    """
    options = dict(config.model_options)
    notes = []
    if config.num_classes is not None and config.num_classes != num_classes:
        raise ValueError(
            f"--num-classes {config.num_classes} disagrees with the data, which has {num_classes} classes; "
            "drop --num-classes (it defaults to the data's) or point --data-dir at the right dataset"
        )
    if "in_chans" not in options and in_chans != 3:
        options["in_chans"] = in_chans
        notes.append(f"model option in_chans={in_chans}: the data has {in_chans}-channel images")
    start = False if resuming else start_weights(config)
    kwargs: dict[str, Any] = {"pretrained": start} if start is not False else {}
    model = create_model(config.model, num_classes=num_classes, **kwargs, **options)
    _check_fits(model, config.model, in_chans, size, num_classes)
    return model, notes


def _check_fits(model: nn.Module, name: str, in_chans: int, size: int, num_classes: int) -> None:
    probe = torch.zeros(2, in_chans, min(size, 64), min(size, 64))
    try:
        model.eval()
        with torch.no_grad():
            out = model(probe)
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"model {name} does not take the data's {in_chans}-channel images ({first}); "
            f"pass the model option in_chans={in_chans} (e.g. -o in_chans={in_chans})"
        ) from None
    finally:
        model.train()
    if out is not None and out.shape[1] != num_classes:
        raise ValueError(
            f"model {name} outputs {out.shape[1]} classes but the data has {num_classes}"
        )


def _classifier(model: nn.Module, why: str) -> nn.Module:
    getter = getattr(model, "get_classifier", None)
    if getter is None:
        raise ValueError(
            f"{why} needs a model with get_classifier(); {type(model).__name__} has none"
        )
    head = getter()
    if not isinstance(head, nn.Module) or not any(True for _ in head.parameters()):
        raise ValueError(f"{why}: the model's classifier has no parameters to train")
    return head


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: one group, or classifier + backbone (``lr_mult``).

    With ``freeze_backbone`` the backbone's parameters stop requiring gradients and only the
    classifier's group is returned.
    """
    if not config.freeze_backbone and config.backbone_lr_mult == 1.0:
        return [{"params": list(model.parameters())}]
    why = "--freeze-backbone" if config.freeze_backbone else "--backbone-lr-mult"
    head_ids = {id(p) for p in _classifier(model, why).parameters()}
    head = [p for p in model.parameters() if id(p) in head_ids]
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    if config.freeze_backbone:
        for p in backbone:
            p.requires_grad_(False)
        return [{"params": head, "lr_mult": 1.0}]
    return [
        {"params": head, "lr_mult": 1.0},
        {"params": backbone, "lr_mult": config.backbone_lr_mult},
    ]


def bn_frozen(config: TrainConfig, epoch: int) -> bool:
    """Whether epoch ``epoch`` (0-based) is one of the last ``freeze_bn_epochs`` (SENet-154)."""
    return bool(config.freeze_bn_epochs) and epoch >= config.epochs - config.freeze_bn_epochs


def frozen_bn_params(model: nn.Module, config: TrainConfig, epoch: int) -> tuple[nn.Parameter, ...]:
    """BatchNorm weights and biases the optimizer must not move in ``epoch``: all of them in the
    last ``freeze_bn_epochs`` epochs with ``freeze_bn_params`` (the paper's SENet-154), else none.

    (The runner drops their gradients before each step; ``requires_grad`` is left alone, so
    DDP's gradient buckets stay as they were built.)
    """
    if not (config.freeze_bn_params and bn_frozen(config, epoch)):
        return ()
    return tuple(
        p for m in model.modules() if isinstance(m, _BN) for p in m.parameters(recurse=False)
    )


def set_train_mode(
    model: nn.Module, config: TrainConfig, epoch: int, wrapper: nn.Module | None = None
) -> None:
    """Training mode (of ``wrapper``, a DDP/compiled ``model``, too), with BatchNorm in eval mode
    where it must not learn: everywhere in the last ``freeze_bn_epochs`` epochs (SENet-154), and
    outside the classifier with ``freeze_backbone``."""
    (wrapper or model).train()
    inner = model
    freeze_all = bn_frozen(config, epoch)
    if not (freeze_all or config.freeze_backbone):
        return
    head = (
        _classifier(inner, "--freeze-backbone")
        if config.freeze_backbone and not freeze_all
        else None
    )
    head_modules = {id(m) for m in head.modules()} if head is not None else set()
    for m in inner.modules():
        if isinstance(m, _BN) and id(m) not in head_modules:
            m.eval()
