"""torch.hub entry points: every senet network by name, with senet's pretrained weights.

    model = torch.hub.load("path/to/senet", "se_resnet50", source="local", pretrained=True)
    model = torch.hub.load("path/to/senet", "resnet50", source="local", pretrained="tv2_in1k",
                           num_classes=10)

Each entry point is ``senet.create_model(name, pretrained=..., **kwargs)``: ``pretrained`` is False
(random weights), True (the default tag) or a tag/file (`senet weights` lists the tags);
``num_classes``, ``in_chans`` and the model options pass through.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

dependencies = ["torch", "torchvision", "safetensors"]

try:  # a checkout that is not pip-installed: import from its src/ folder
    import senet
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    import senet


def _entry_point(name: str) -> Callable[..., object]:
    def load(pretrained: bool | str = False, **kwargs: object) -> object:
        return senet.create_model(name, pretrained=pretrained, **kwargs)

    load.__name__ = name
    load.__qualname__ = name
    entry = senet.get_entry(name)
    load.__doc__ = (
        f"{entry.description or name} (senet.create_model({name!r}, pretrained=..., **kwargs))"
    )
    return load


for _name in senet.list_models():
    globals()[_name] = _entry_point(_name)
del _name
