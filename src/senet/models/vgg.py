"""VGG-16 with batch normalisation and SE-VGG-16 (Table 2; SE placement from Sec. 3.3 / 5.1).

The plain network is torchvision's ``vgg16_bn`` module for module (same ``features.N`` and
``classifier.N`` indices, convolutions with biases), so its weights load by name. The SE version
adds an SE block after the non-linearity of every convolution, as Sec. 3.3 describes ("the SE
block ... can be integrated ... after the non-linearity following each convolution"): the ReLU
slot ``features.N`` becomes ``ReLUSE`` (ReLU then SE), which keeps every convolution and BN at the
index torchvision uses, so ``vgg16_bn`` weights load into ``se_vgg16_bn`` with only the SE layers
missing.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from senet.layers.se import SEConfig, SqueezeExcitation
from senet.models._common import check_se_stages, init_weights
from senet.models.registry import NO_INTEGRATION, PaperRef, register_pair

#: convolution widths per stage; a max-pool ends every stage (Simonyan & Zisserman, config D)
VGG16_STAGES: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512,) * 3,
    (512,) * 3,
)


class ReLUSE(nn.Module):
    """ReLU followed by an SE block: the SE-VGG unit after each convolution's BN."""

    def __init__(self, channels: int, se: SEConfig) -> None:
        super().__init__()
        self.se = SqueezeExcitation.from_config(channels, se)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(torch.relu(x))


class VGG(nn.Module):
    """VGG with BN after every convolution (torchvision layout), optionally SE after each ReLU."""

    def __init__(
        self,
        stages: tuple[tuple[int, ...], ...] = VGG16_STAGES,
        num_classes: int = 1000,
        in_chans: int = 3,
        se: SEConfig | None = None,
        se_stages: int | tuple[int, ...] | None = None,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        se_stages = check_se_stages(se_stages, len(stages))
        layers: list[nn.Module] = []
        self.feature_info: list[dict[str, object]] = []
        cin = in_chans
        for i, widths in enumerate(stages, start=1):
            for w in widths:
                act = ReLUSE(w, se) if se is not None and i in se_stages else nn.ReLU(inplace=True)
                layers += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), act]
                cin = w
            layers.append(nn.MaxPool2d(2, 2))
            self.feature_info.append(
                {"module": f"features.{len(layers) - 1}", "num_chs": cin, "reduction": 2**i}
            )
        self.features = nn.Sequential(*layers)
        self.num_features = cin
        self.head_hidden_size = 4096
        self.num_classes = num_classes
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(cin * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(4096, num_classes) if num_classes > 0 else nn.Identity(),
        )
        init_weights(self)  # torchvision VGG init: He convolutions, N(0, 0.01) FC

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last max-pool's output (N × 512 × H/32 × W/32)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Adaptive 7×7 pooling and the three FC layers; ``pre_logits`` stops before the last."""
        x = self.avgpool(x).flatten(1)
        *hidden, last = self.classifier  # registered children, so FX can trace them
        for layer in hidden:
            x = layer(x)
        return x if pre_logits else last(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last FC layer with a freshly initialised one (0 removes it)."""
        self.num_classes = num_classes
        fc = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()
        self.classifier[-1] = fc


def _register() -> None:
    register_pair(
        "vgg16_bn",
        "se_vgg16_bn",
        partial(VGG, VGG16_STAGES),
        plain_paper=PaperRef(15.47, None, 27.02, 8.81, "Table 2"),
        se_paper=PaperRef(15.48, None, 25.22, 7.70, "Table 2"),
        description="VGG-16 with BN after every convolution (torchvision layout)",
        se_description="SE-VGG-16: SE after the ReLU of each convolution",
        se_options=NO_INTEGRATION,
        family="vgg",
    )


_register()
