"""The networks of the paper; importing this package registers every name."""

from senet.models import (  # noqa: F401  (register families)
    inception,
    inception_resnet,
    mobile,
    resnet,
    shakeshake,
    vgg,
)
from senet.models.registry import ModelEntry, PaperRef, build_model, get_entry, list_models
from senet.models.resnet import ResNet, ResNetSpec
from senet.models.retrofit import add_se

__all__ = [
    "ModelEntry",
    "PaperRef",
    "ResNet",
    "ResNetSpec",
    "add_se",
    "build_model",
    "get_entry",
    "list_models",
]
