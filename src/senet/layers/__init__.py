"""Building blocks: the SE block and its element-wise operations."""

from senet.layers.se import (
    GATES,
    INTEGRATIONS,
    SQUEEZE_OPS,
    SEConfig,
    SqueezeExcitation,
    make_divisible,
    se_hidden_channels,
)

__all__ = [
    "GATES",
    "INTEGRATIONS",
    "SQUEEZE_OPS",
    "SEConfig",
    "SqueezeExcitation",
    "make_divisible",
    "se_hidden_channels",
]
