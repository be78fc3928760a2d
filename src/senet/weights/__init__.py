"""Pretrained weights by name: registry, download/cache/hash check, loading with adaptation.

- ``registry``: ``WeightsEntry``, ``register`` (your own weights), ``list_weights``, ``get_weights``
- ``catalog``: the released ImageNet weights (original release, timm, torchvision), registered on import
- ``download``: the cache (``$SENET_HOME``, default ``~/.cache/senet``), hash-checked downloads
- ``pretrained``: ``build_pretrained`` (what ``create_model(..., pretrained=...)`` calls),
  ``adapt_input_conv``

See docs/pretrained.md.
"""

from senet.weights import catalog  # noqa: F401  (registers the released weights)
from senet.weights.download import (
    HashMismatchError,
    WeightsUnavailableError,
    cached_file,
    clear_cache,
    fetch,
    senet_home,
)
from senet.weights.pretrained import adapt_input_conv, build_pretrained
from senet.weights.registry import (
    WEIGHT_SOURCES,
    Mirror,
    WeightsEntry,
    default_tag,
    find_weights,
    get_weights,
    list_weights,
    register,
    unregister,
    weights_tags,
)

__all__ = [
    "WEIGHT_SOURCES",
    "HashMismatchError",
    "Mirror",
    "WeightsEntry",
    "WeightsUnavailableError",
    "adapt_input_conv",
    "build_pretrained",
    "cached_file",
    "clear_cache",
    "default_tag",
    "fetch",
    "find_weights",
    "get_weights",
    "list_weights",
    "register",
    "senet_home",
    "unregister",
    "weights_tags",
]
