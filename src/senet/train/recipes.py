"""Training configuration and the paper's recipes as named presets (Sec. 5.1, Tables 3–5, appendix).

``TrainConfig`` is the whole effective configuration of a run (saved as ``config.json``);
``RECIPES`` maps a name to the overrides that define it on top of the dataclass defaults, and
``get_recipe(name, **overrides)`` builds the config a run uses. The learning rate follows the
paper's *linear scaling*: ``lr = base_lr × batch_size / base_batch_size`` unless ``lr`` is given.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from senet.data.datasets import IMAGENET_MEAN

Schedule = Literal["step", "multistep", "cosine", "plateau", "constant"]
Augment = Literal["crop_flip", "crop", "rrc_flip", "none"]
Normalize = Literal["meanstd", "mean"]
Amp = Literal["none", "bf16", "fp16"]


@dataclass
class TrainConfig:
    """Everything a training run depends on; ``config.json`` in the run directory is this, as JSON."""

    recipe: str = "custom"
    # model
    model: str = "cifar_se_resnet20"
    model_options: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None  # None: the number of classes in the data
    # data
    dataset: str = "cifar10"  # cifar10 | cifar100 | imagefolder | digits
    data_dir: str | None = None
    train_split: str = "train"
    val_split: str = "val"  # ImageFolder: val/ or, if absent, test/; CIFAR: the test set
    train_subset: int | None = None  # first-N, class-balanced
    val_subset: int | None = None
    in_memory: bool | None = None  # None: decode once into uint8 tensors unless augment == rrc_flip
    augment: Augment = "crop_flip"
    crop_padding: int = 4
    rrc_scale_min: float = 0.08
    input_size: int | None = None  # None: the images' own size (in memory) / 224 (files)
    eval_resize: int | None = (
        None  # shorter side before the centre crop at evaluation (256 for 224)
    )
    normalize: Normalize = "meanstd"
    mean: tuple[float, ...] | None = None  # None: computed on the training split (in memory)
    std: tuple[float, ...] | None = None
    skip_corrupt: bool = False
    download: bool = False
    # optimisation
    epochs: int = 164
    batch_size: int = 128  # global batch (split across processes)
    lr: float | None = None  # None: base_lr × batch_size / base_batch_size
    base_lr: float = 0.1
    base_batch_size: int = 128
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: Schedule = "multistep"
    milestones: tuple[float, ...] | None = None  # epochs; None: milestone_fractions × epochs
    milestone_fractions: tuple[float, ...] = (0.5, 0.75)
    step: int = 30  # "step" schedule: ÷gamma every `step` epochs
    gamma: float = 0.1
    plateau_patience: int = 5
    warmup_epochs: float = 0.0  # linear warm-up (modern option)
    constant_warmup_iters: int = 0  # ResNet paper's CIFAR trick: lr constant_warmup_lr for N iters
    constant_warmup_lr: float = 0.01
    label_smoothing: float = 0.0
    freeze_bn_epochs: int = 0  # SENet-154: BN statistics frozen for the last N epochs
    # run
    seed: int = 0
    out: str | None = None  # None: runs/<model>-<dataset>-s<seed>
    device: str = "auto"
    amp: Amp = "none"
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    workers: int = 2
    threads: int | None = None
    keep_freed_memory: bool = True  # glibc: reuse freed feature maps (senet.utils.malloc)
    eval_batch_size: int | None = None
    eval_every: int = 1
    tensorboard: bool = True
    progress: bool | None = None  # None: a progress bar when stderr is a TTY
    resume: bool = False
    force: bool = False
    stop_after_epochs: int | None = None  # stop (resumably) after this many epochs of this call

    def __post_init__(self) -> None:
        for name in ("mean", "std", "milestones", "milestone_fractions"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                setattr(self, name, tuple(float(v) for v in value))
        self.validate()

    def validate(self) -> None:
        """Check every option once, with errors that name the option and the fix."""
        choices = {
            "schedule": Schedule, "augment": Augment, "normalize": Normalize, "amp": Amp,
        }  # fmt: skip
        for name, lit in choices.items():
            allowed = get_args(lit)
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is not supported; choose one of {', '.join(allowed)}"
                )
        positive = ("epochs", "batch_size", "base_batch_size", "eval_every", "step")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be ≥ 1")
        if (self.lr is not None and self.lr <= 0) or self.base_lr <= 0:
            raise ValueError(
                f"the learning rate must be > 0 (lr={self.lr}, base_lr={self.base_lr})"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing={self.label_smoothing} must be in [0, 1)")
        for name in ("train_subset", "val_subset", "num_classes", "stop_after_epochs", "threads"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name}={value} must be ≥ 1 (or unset)")
        if self.workers < 0 or self.crop_padding < 0 or self.weight_decay < 0:
            raise ValueError("workers, crop_padding and weight_decay must be ≥ 0")
        if not 0 < self.rrc_scale_min <= 1:
            raise ValueError(f"rrc_scale_min={self.rrc_scale_min} must be in (0, 1]")
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise ValueError(f"mean {self.mean} and std {self.std} have different lengths")

    @property
    def effective_lr(self) -> float:
        """The peak learning rate: ``lr``, or the linear-scaling rule applied to ``base_lr``."""
        if self.lr is not None:
            return float(self.lr)
        return self.base_lr * self.batch_size / self.base_batch_size

    @property
    def milestone_epochs(self) -> tuple[float, ...]:
        if self.milestones is not None:
            return tuple(self.milestones)
        return tuple(round(f * self.epochs, 6) for f in self.milestone_fractions)

    @property
    def out_dir(self) -> str:
        return self.out or os.path.join("runs", f"{self.model}-{self.dataset}-s{self.seed}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict, with the derived values a reader needs (``effective_lr`` ...)."""
        d = dataclasses.asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        d["effective_lr"] = self.effective_lr
        d["milestone_epochs"] = list(self.milestone_epochs)
        d["out"] = self.out_dir
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        derived = {"effective_lr", "milestone_epochs"}
        unknown = sorted(set(data) - names - derived)
        if unknown:
            raise ValueError(
                f"unknown config keys {unknown}; valid keys: {', '.join(sorted(names))}"
            )
        return cls(**{k: v for k, v in data.items() if k in names})


# --------------------------------------------------------------------------------------------
# The recipes. Each entry: overrides of the TrainConfig defaults, plus a one-line description.
# --------------------------------------------------------------------------------------------
RECIPES: dict[str, dict[str, Any]] = {
    "imagenet": {
        "_about": "Sec. 5.1: SGD 0.9, batch 1024 / lr 0.6 (linearly rescaled), ÷10 every 30 epochs, "
        "100 epochs, wd 1e-4, random-size crop 224 + flip, mean-RGB subtraction; eval 256 → centre 224",
        "model": "se_resnet50",
        "dataset": "imagefolder",
        "epochs": 100,
        "batch_size": 1024,
        "base_lr": 0.6,
        "base_batch_size": 1024,
        "weight_decay": 1e-4,
        "schedule": "step",
        "step": 30,
        "augment": "rrc_flip",
        "input_size": 224,
        "eval_resize": 256,
        "normalize": "mean",
        "mean": IMAGENET_MEAN,
        "workers": 8,
    },
    "cifar": {
        "_about": "Tables 4–5 / ResNet-110 protocol: pad 4 + random 32 crop + flip, mean/std, SGD 0.9, "
        "batch 128, lr 0.1, wd 1e-4, ÷10 at 50% and 75% of 164 epochs (optional lr-0.01 warm-up: "
        "--constant-warmup-iters 400, the ResNet paper's fix for ResNet-110 not converging)",
        "model": "cifar_se_resnet110",
        "dataset": "cifar10",
        "epochs": 164,
        "batch_size": 128,
        "base_lr": 0.1,
        "base_batch_size": 128,
        "weight_decay": 1e-4,
        "schedule": "multistep",
        "milestone_fractions": (0.5, 0.75),
        "augment": "crop_flip",
        "crop_padding": 4,
        "input_size": 32,
    },
    "mobile": {
        "_about": "Table 3: batch 256, SGD 0.9, lr 0.1 ÷10 when the validation loss plateaus, ~400 "
        "epochs, lighter augmentation (crop scale ≥ 0.25) and regularisation (wd 4e-5)",
        "model": "se_mobilenet_v1",
        "dataset": "imagefolder",
        "epochs": 400,
        "batch_size": 256,
        "base_lr": 0.1,
        "base_batch_size": 256,
        "weight_decay": 4e-5,
        "schedule": "plateau",
        "plateau_patience": 5,
        "augment": "rrc_flip",
        "rrc_scale_min": 0.25,
        "input_size": 224,
        "eval_resize": 256,
        "normalize": "mean",
        "mean": IMAGENET_MEAN,
        "workers": 8,
    },
    "senet154": {
        "_about": "Appendix: SENet-154 with label smoothing 0.1, the model's dropout 0.2, batch 2048 / "
        "lr 1.0 (linearly rescaled), ÷10 every 30 of 100 epochs, BN frozen for the last 2 epochs",
        "model": "senet154",
        "dataset": "imagefolder",
        "epochs": 100,
        "batch_size": 2048,
        "base_lr": 1.0,
        "base_batch_size": 2048,
        "weight_decay": 1e-4,
        "schedule": "step",
        "step": 30,
        "label_smoothing": 0.1,
        "freeze_bn_epochs": 2,
        "augment": "rrc_flip",
        "input_size": 224,
        "eval_resize": 256,
        "normalize": "mean",
        "mean": IMAGENET_MEAN,
        "workers": 8,
    },
    "digits": {
        "_about": "Offline main job: SE-ResNet-20 on scikit-learn's 8×8 grey digits, 1-pixel crop "
        "augmentation without flips, SGD 0.9 lr 0.1 batch 64, 12 epochs, ÷10 at 50%/75%, one thread",
        "model": "cifar_se_resnet20",
        "model_options": {"in_chans": 1},
        "dataset": "digits",
        "epochs": 12,
        "batch_size": 64,
        "base_lr": 0.1,
        "base_batch_size": 64,
        "weight_decay": 1e-4,
        "schedule": "multistep",
        "milestone_fractions": (0.5, 0.75),
        "augment": "crop",
        "crop_padding": 1,
        "input_size": 8,
        "threads": 1,  # tiny convolutions: a second thread costs more than it gives, most of all on a busy machine
    },
}


def recipe_description(name: str) -> str:
    return str(_recipe(name).get("_about", ""))


def _recipe(name: str) -> dict[str, Any]:
    if name not in RECIPES:
        close = difflib.get_close_matches(name, list(RECIPES), n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(
            f"unknown recipe {name!r}; {hint}recipes: {', '.join(RECIPES)} (`senet recipes`)"
        )
    return RECIPES[name]


def get_recipe(name: str, **overrides: Any) -> TrainConfig:
    """The ``TrainConfig`` of recipe ``name`` with ``overrides`` applied (``None`` values ignored)."""
    base = {k: v for k, v in _recipe(name).items() if not k.startswith("_")}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(k for k in overrides if k not in names)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(names), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown TrainConfig option(s) {unknown}{hint}")
    base.update({k: v for k, v in overrides.items() if v is not None})
    base["model_options"] = dict(base.get("model_options") or {})
    return TrainConfig(recipe=name, **base)
