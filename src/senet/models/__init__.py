"""The networks of the paper; importing this package registers every name."""

from senet.models import resnet  # noqa: F401  (registers the residual family)
from senet.models.registry import ModelEntry, PaperRef, build_model, get_entry, list_models
from senet.models.resnet import ResNet, ResNetSpec

__all__ = ["ModelEntry", "PaperRef", "ResNet", "ResNetSpec", "build_model", "get_entry", "list_models"]
