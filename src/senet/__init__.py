"""senet: Squeeze-and-Excitation Networks (Hu et al., CVPR 2018 / TPAMI 2019) in PyTorch."""

from __future__ import annotations

from senet._version import __version__
from senet.factory import create_model
from senet.layers import SEConfig, SqueezeExcitation
from senet.models import add_se, get_entry, list_models

__all__ = [
    "SEConfig",
    "SqueezeExcitation",
    "__version__",
    "add_se",
    "create_model",
    "get_entry",
    "list_models",
]
