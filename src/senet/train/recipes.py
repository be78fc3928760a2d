"""Training configuration and the paper's recipes as named presets (Sec. 5.1, Tables 3–5, appendix).

``TrainConfig`` is the whole effective configuration of a run (saved as ``config.json``);
``RECIPES`` maps a name to the overrides that define it on top of the dataclass defaults, and
``get_recipe(name, **overrides)`` builds the config a run uses. The learning rate follows the
paper's *linear scaling*: ``lr = base_lr × batch_size / base_batch_size`` unless ``lr`` is given.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import os
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin, get_type_hints

from senet.data.datasets import IMAGENET_MEAN
from senet.models.registry import get_entry
from senet.utils.names import did_you_mean

Schedule = Literal["step", "multistep", "cosine", "linear", "plateau", "constant"]
Augment = Literal["crop_flip", "crop", "rrc_flip", "none"]
Normalize = Literal["meanstd", "mean", "mean255"]
Amp = Literal["auto", "none", "bf16", "fp16"]
Dataset = Literal["cifar10", "cifar100", "imagefolder", "digits"]

#: the option groups of ``senet train --help``, in order
GROUPS = ("model", "fine-tuning", "data", "optimisation", "precision and speed", "run")


def cli(group: str, help: str, **extra: Any) -> dict[str, Any]:
    """A ``TrainConfig`` field's metadata: its command-line description (``senet train`` reads it).

    ``extra`` keys: ``flag`` (another spelling), ``metavar``, ``nargs``/``const`` (optional value),
    ``cli=False`` (not a flag), ``resume_may_change=True`` (may differ when a run is resumed: it
    does not change the result).
    """
    if group not in GROUPS:
        raise ValueError(f"unknown option group {group!r}; one of {GROUPS}")
    return {"group": group, "help": help, **extra}


@dataclass
class TrainConfig:
    """Everything a training run depends on; ``config.json`` in the run directory is this, as JSON.

    Adding an option is adding one field here: ``senet train`` builds its flag from the field's
    type and metadata (``cli``), and ``config.json``/resume handle it (an older config.json
    without it reads as the default).
    """

    recipe: str = field(
        default="custom",
        metadata=cli(
            "run", "the recipe this config started from", cli=False, resume_may_change=True
        ),
    )
    # model
    model: str = field(
        default="cifar_se_resnet20",
        metadata=cli("model", "registered network name (`senet models`)", metavar="NAME"),
    )
    model_options: dict[str, Any] = field(
        default_factory=dict, metadata=cli("model", "network options (-o KEY=VALUE)", cli=False)
    )
    num_classes: int | None = field(
        default=None,
        metadata=cli("model", "classifier size; default: the number of classes in the data"),
    )
    # fine-tuning
    pretrained: bool | str = field(
        default=False,
        metadata=cli(
            "fine-tuning",
            "start from the model's registered pretrained weights (TAG: a named set); the classifier "
            "is re-initialised when the data's class count differs",
            nargs="?",
            const=True,
            metavar="TAG",
        ),
    )
    init: str | None = field(
        default=None,
        metadata=cli(
            "fine-tuning",
            "start from this weights file (.safetensors or a run directory holding model.safetensors); "
            "classifier re-initialised if the class count differs",
            metavar="WEIGHTS",
        ),
    )
    freeze_backbone: bool = field(
        default=False,
        metadata=cli(
            "fine-tuning",
            "train only the classifier (the rest frozen, its BatchNorm statistics too)",
        ),
    )
    backbone_lr_mult: float = field(
        default=1.0,
        metadata=cli("fine-tuning", "learning rate of everything but the classifier, × this"),
    )
    # data
    dataset: Dataset = field(default="cifar10", metadata=cli("data", "dataset kind"))
    data_dir: str | None = field(
        default=None,
        metadata=cli(
            "data",
            "dataset folder (ImageFolder: <dir>/train, <dir>/val|test; or a .tar.gz of one)",
            resume_may_change=True,
            metavar="DIR",
        ),
    )
    train_split: str = field(
        default="train", metadata=cli("data", "training split name", metavar="SPLIT")
    )
    val_split: str = field(
        default="val",
        metadata=cli(
            "data",
            "validation split (ImageFolder: val/, else test/; CIFAR: the test set)",
            metavar="SPLIT",
        ),
    )
    train_subset: int | None = field(
        default=None,
        metadata=cli("data", "use only the first N training images, class-balanced", metavar="N"),
    )
    val_subset: int | None = field(
        default=None,
        metadata=cli("data", "use only the first N validation images, class-balanced", metavar="N"),
    )
    in_memory: bool | None = field(
        default=None,
        metadata=cli("data", "decode the data once into uint8 tensors (default: unless rrc_flip)"),
    )
    augment: Augment = field(default="crop_flip", metadata=cli("data", "training augmentation"))
    crop_padding: int = field(
        default=4, metadata=cli("data", "zero padding of the random crop (CIFAR: 4)")
    )
    rrc_scale_min: float = field(
        default=0.08, metadata=cli("data", "smallest area fraction of the random-size crop")
    )
    cutout: int = field(
        default=0,
        metadata=cli(
            "data",
            "Cutout: zero one N×N square per training image (its centre anywhere in the image, so "
            "it may fall partly outside), after normalisation; 0 = off (Shake-Shake: 16)",
            metavar="N",
        ),
    )
    balanced_sampler: bool = field(
        default=False,
        metadata=cli(
            "data",
            "class-balanced minibatches: every batch draws the classes evenly, images of each "
            "class in turn (the paper's minibatch balancing, after Relay BP)",
        ),
    )
    input_size: int | None = field(
        default=None,
        metadata=cli(
            "data",
            "training crop size; default: the images' own (in memory) or the model's registered "
            "size (files: 224, 299 for Inception-ResNet-v2)",
        ),
    )
    eval_resize: int | None = field(
        default=None,
        metadata=cli(
            "data",
            "shorter side before the evaluation centre crop; default: the model's (256 for 224, "
            "352 for 299)",
        ),
    )
    normalize: Normalize = field(
        default="meanstd",
        metadata=cli(
            "data",
            "mean/std; mean = the paper's mean-RGB subtraction on the [0,1] scale; mean255 = "
            "Caffe's: mean subtracted on the 0–255 scale, no scaling",
        ),
    )
    mean: tuple[float, ...] | None = field(
        default=None,
        metadata=cli(
            "data",
            "channel means on the [0,1] scale, comma-separated; default: the "
            "training split's (in memory) or ImageNet's",
        ),
    )
    std: tuple[float, ...] | None = field(
        default=None, metadata=cli("data", "channel stds on the [0,1] scale, comma-separated")
    )
    skip_corrupt: bool = field(
        default=False, metadata=cli("data", "skip unreadable images (counted in summary.json)")
    )
    download: bool = field(
        default=False,
        metadata=cli("data", "download CIFAR when it is missing", resume_may_change=True),
    )
    # optimisation
    epochs: int = field(
        default=164,
        metadata=cli(
            "optimisation",
            "number of epochs (with --resume: a larger number extends the run; the LR schedule "
            "keeps its original length, see --schedule-epochs)",
        ),
    )
    batch_size: int = field(
        default=128, metadata=cli("optimisation", "global batch size (split across processes)")
    )
    lr: float | None = field(
        default=None,
        metadata=cli(
            "optimisation", "peak learning rate; default base-lr × batch-size / base-batch-size"
        ),
    )
    base_lr: float = field(
        default=0.1,
        metadata=cli("optimisation", "learning rate at --base-batch-size (linear scaling rule)"),
    )
    base_batch_size: int = field(
        default=128, metadata=cli("optimisation", "batch size --base-lr refers to")
    )
    momentum: float = field(default=0.9, metadata=cli("optimisation", "SGD momentum"))
    nesterov: bool = field(default=False, metadata=cli("optimisation", "Nesterov momentum"))
    weight_decay: float = field(default=1e-4, metadata=cli("optimisation", "L2 weight decay"))
    schedule: Schedule = field(
        default="multistep", metadata=cli("optimisation", "learning-rate schedule")
    )
    schedule_epochs: int | None = field(
        default=None,
        metadata=cli(
            "optimisation",
            "epochs the schedule spans (multistep fractions, cosine); default --epochs. An extended "
            "run keeps its original value",
        ),
    )
    milestones: tuple[float, ...] | None = field(
        default=None,
        metadata=cli("optimisation", "multistep: epochs at which lr ×= gamma (e.g. 82,123)"),
    )
    milestone_fractions: tuple[float, ...] = field(
        default=(0.5, 0.75),
        metadata=cli("optimisation", "multistep: milestones as fractions of the schedule's epochs"),
    )
    step: int = field(
        default=30, metadata=cli("optimisation", "step schedule: lr ×= gamma every N epochs")
    )
    gamma: float = field(
        default=0.1, metadata=cli("optimisation", "decay factor of step/multistep/plateau")
    )
    plateau_patience: int = field(
        default=5,
        metadata=cli("optimisation", "plateau: epochs without improvement before decaying"),
    )
    plateau_drops: int | None = field(
        default=None,
        metadata=cli(
            "optimisation",
            "plateau: decay N times, then end the run at the next plateau (the Sec. 6 ablations: "
            "3); default: decay on every plateau until --epochs",
            metavar="N",
        ),
    )
    warmup_epochs: float = field(
        default=0.0, metadata=cli("optimisation", "linear warm-up length in epochs (modern option)")
    )
    constant_warmup_iters: int = field(
        default=0,
        metadata=cli(
            "optimisation", "ResNet-110 trick: lr --constant-warmup-lr for the first N iterations"
        ),
    )
    constant_warmup_lr: float = field(
        default=0.01, metadata=cli("optimisation", "the constant warm-up learning rate")
    )
    label_smoothing: float = field(
        default=0.0, metadata=cli("optimisation", "label smoothing (SENet-154: 0.1)")
    )
    freeze_bn_epochs: int = field(
        default=0,
        metadata=cli(
            "optimisation",
            "freeze BatchNorm for the last N epochs (SENet-154: 2): its statistics, and its "
            "weight and bias unless --no-freeze-bn-params",
        ),
    )
    freeze_bn_params: bool = field(
        default=True,
        metadata=cli(
            "optimisation",
            "with --freeze-bn-epochs: freeze BatchNorm's weight and bias too, not only its "
            "statistics (the paper's SENet-154 freezes both)",
        ),
    )
    # precision and speed
    amp: Amp = field(
        default="auto",
        metadata=cli(
            "precision and speed",
            "autocast dtype: auto = bf16 on CPUs with native bf16 (AMX/AVX512-BF16) and on CUDA, "
            "else none (fp32); fp16 on CUDA only. A resumed run keeps its stored choice",
            resume_may_change=True,
        ),
    )
    channels_last: bool | None = field(
        default=None,
        metadata=cli(
            "precision and speed",
            "channels_last memory format (default: where bf16 is chosen)",
            resume_may_change=True,
        ),
    )
    compile: bool = field(
        default=False,
        metadata=cli("precision and speed", "torch.compile the model", resume_may_change=True),
    )
    workers: int | None = field(
        default=None,
        metadata=cli(
            "precision and speed",
            "DataLoader workers for file data (default: the usable cores, at most 8)",
            resume_may_change=True,
        ),
    )
    threads: int | None = field(
        default=None,
        metadata=cli(
            "precision and speed",
            "torch CPU threads (torch.set_num_threads)",
            resume_may_change=True,
        ),
    )
    keep_freed_memory: bool = field(
        default=True,
        metadata=cli(
            "precision and speed",
            "raise glibc's malloc thresholds so freed feature maps are reused, not page-faulted in "
            "again (docs/performance.md)",
            resume_may_change=True,
        ),
    )
    eval_batch_size: int | None = field(
        default=None,
        metadata=cli(
            "precision and speed",
            "evaluation batch size (default: max(batch size, 256))",
            resume_may_change=True,
        ),
    )
    sync_bn: bool = field(
        default=False, metadata=cli("precision and speed", "SyncBatchNorm across processes (CUDA)")
    )
    # run
    seed: int = field(
        default=0, metadata=cli("run", "seed of initialisation, data order and augmentation")
    )
    out: str | None = field(
        default=None,
        metadata=cli(
            "run",
            "run directory (default runs/<model>-<dataset>-s<seed>)",
            resume_may_change=True,
            metavar="DIR",
        ),
    )
    device: str = field(
        default="auto",
        metadata=cli(
            "run", "auto, cpu, cuda, cuda:1 ...", resume_may_change=True, metavar="DEVICE"
        ),
    )
    eval_every: int = field(
        default=1, metadata=cli("run", "evaluate every N epochs (and after the last)")
    )
    tensorboard: bool = field(
        default=True,
        metadata=cli(
            "run",
            "TensorBoard logs in OUT/tb (when tensorboard is installed)",
            resume_may_change=True,
        ),
    )
    progress: bool | None = field(
        default=None,
        metadata=cli(
            "run", "progress bar (default: when stderr is a terminal)", resume_may_change=True
        ),
    )
    resume: bool = field(
        default=False,
        metadata=cli(
            "run",
            "continue the run in --out from its checkpoint, with its saved config as the base",
            resume_may_change=True,
        ),
    )
    force: bool = field(
        default=False,
        metadata=cli(
            "run", "train again from scratch even if --out holds a run", resume_may_change=True
        ),
    )
    stop_after_epochs: int | None = field(
        default=None,
        metadata=cli(
            "run",
            "stop (resumably) after N epochs of this call",
            resume_may_change=True,
            metavar="N",
        ),
    )

    def __post_init__(self) -> None:
        for name in ("mean", "std", "milestones", "milestone_fractions"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                if isinstance(value, int | float):
                    value = (value,)
                setattr(self, name, tuple(float(v) for v in value))
        self.model_options = dict(self.model_options or {})
        self.validate()

    def validate(self) -> None:
        """Check every option once, with errors that name the option and the fix."""
        for f in dataclasses.fields(self):
            allowed = literal_choices(f)
            if allowed and getattr(self, f.name) not in allowed:
                raise ValueError(
                    f"{f.name}={getattr(self, f.name)!r} is not supported; choose one of {', '.join(allowed)}"
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
        optional_positive = (
            "train_subset",
            "val_subset",
            "num_classes",
            "stop_after_epochs",
            "threads",
            "schedule_epochs",
        )
        for name in optional_positive:
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name}={value} must be ≥ 1 (or unset)")
        if (self.workers or 0) < 0 or self.crop_padding < 0 or self.weight_decay < 0:
            raise ValueError("workers, crop_padding and weight_decay must be ≥ 0")
        if self.cutout < 0 or self.freeze_bn_epochs < 0 or self.plateau_patience < 0:
            raise ValueError(
                f"cutout ({self.cutout}), freeze_bn_epochs ({self.freeze_bn_epochs}) and "
                f"plateau_patience ({self.plateau_patience}) must be ≥ 0"
            )
        if self.plateau_drops is not None and self.plateau_drops < 0:
            raise ValueError(f"plateau_drops={self.plateau_drops} must be ≥ 0 (or unset)")
        if not 0 < self.rrc_scale_min <= 1:
            raise ValueError(f"rrc_scale_min={self.rrc_scale_min} must be in (0, 1]")
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise ValueError(f"mean {self.mean} and std {self.std} have different lengths")
        if self.backbone_lr_mult < 0:
            raise ValueError(f"backbone_lr_mult={self.backbone_lr_mult} must be ≥ 0")
        if self.init is not None and self.pretrained not in (False, None):
            raise ValueError(
                "--pretrained and --init both choose the starting weights; pass one of them"
            )
        if "num_classes" in self.model_options:
            raise ValueError(
                "set num_classes with --num-classes (TrainConfig.num_classes), not in model options"
            )

    @property
    def effective_lr(self) -> float:
        """The peak learning rate: ``lr``, or the linear-scaling rule applied to ``base_lr``."""
        if self.lr is not None:
            return float(self.lr)
        return self.base_lr * self.batch_size / self.base_batch_size

    @property
    def schedule_span(self) -> int:
        """The epochs the LR schedule spans: ``schedule_epochs``, else ``epochs``."""
        return int(self.schedule_epochs or self.epochs)

    @property
    def milestone_epochs(self) -> tuple[float, ...]:
        if self.milestones is not None:
            return tuple(self.milestones)
        return tuple(round(f * self.schedule_span, 6) for f in self.milestone_fractions)

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
        """The config of a ``to_dict`` (or a run's config.json); absent options take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - DERIVED_KEYS)
        if unknown:
            hint = did_you_mean(unknown[0], sorted(names), template=" (did you mean {}?)")
            raise ValueError(
                f"unknown config keys {unknown}{hint}; valid keys: {', '.join(sorted(names))}"
            )
        return cls(**{k: v for k, v in data.items() if k in names})


#: keys config.json holds beside the fields (they follow from the fields or from the run)
DERIVED_KEYS = frozenset({"effective_lr", "milestone_epochs", "world_size", "precision"})


def literal_choices(f: dataclasses.Field) -> tuple[str, ...]:
    """The allowed values of a ``Literal``-typed field (``()`` for other types)."""
    hint = _hints().get(f.name)
    return tuple(get_args(hint)) if get_origin(hint) is Literal else ()


def field_type(name: str) -> Any:
    """The resolved type annotation of a ``TrainConfig`` field."""
    return _hints()[name]


@functools.lru_cache(maxsize=1)
def _hints() -> dict[str, Any]:
    return get_type_hints(TrainConfig)


def resume_may_change() -> frozenset[str]:
    """Options that may differ between a run and its resumption (they do not change the result)."""
    return frozenset(
        f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("resume_may_change")
    )


# --------------------------------------------------------------------------------------------
# The recipes. Each entry: overrides of the TrainConfig defaults, plus keys starting with "_":
#   _about    one line: what the recipe is and where it comes from
#   _assumed  {field: why}: values the paper does not state (shown by `senet recipes NAME`)
#   _when     [(condition, overrides)]: values for some networks or datasets only; a condition
#             is {"model": glob} (the run's model name), {"dataset": name} or {"se": bool}
#             (the network has SE blocks); "model_options" in the overrides are merged
# A recipe that sets no input_size/eval_resize takes the model's registered sizes.
# --------------------------------------------------------------------------------------------
#: Sec. 5.1's data pipeline: random-size crop + flip, mean-RGB subtraction, class-balanced
#: minibatches ("the data balancing strategy of [Relay BP] for mini-batch sampling")
_IMAGENET_DATA: dict[str, Any] = {
    "dataset": "imagefolder",
    "augment": "rrc_flip",
    "normalize": "mean",
    "mean": IMAGENET_MEAN,
    "balanced_sampler": True,
}
_WD_RELEASE = "not in the paper: 1e-4 is the authors' answer in the release's issue #37"
_CIFAR_DATA: dict[str, Any] = {
    "dataset": "cifar10",
    "augment": "crop_flip",
    "crop_padding": 4,
    "input_size": 32,
}
#: He et al. 2016a (Sec. 4.2): SGD 0.9, batch 128, lr 0.1, wd 1e-4, 64k iterations ≈ 164 epochs,
#: ÷10 at 32k and 48k (50 % and 75 %)
_RESNET_CIFAR: dict[str, Any] = {
    **_CIFAR_DATA,
    "epochs": 164,
    "batch_size": 128,
    "base_lr": 0.1,
    "base_batch_size": 128,
    "weight_decay": 1e-4,
    "schedule": "multistep",
    "milestone_fractions": (0.5, 0.75),
}
_WARMUP_400 = {"constant_warmup_iters": 400, "constant_warmup_lr": 0.01}

RECIPES: dict[str, dict[str, Any]] = {
    "imagenet": {
        "_about": "Sec. 5.1: SGD 0.9, batch 1024 / lr 0.6 (linearly rescaled), ÷10 every 30 epochs, "
        "100 epochs, wd 1e-4 (BN-Inception 2e-4), random-size crop at the model's size (224; 299 "
        "for Inception-ResNet-v2) + flip, mean-RGB subtraction, class-balanced minibatches; eval "
        "256 → centre 224 (352 → 299)",
        "model": "se_resnet50",
        **_IMAGENET_DATA,
        "epochs": 100,
        "batch_size": 1024,
        "base_lr": 0.6,
        "base_batch_size": 1024,
        "weight_decay": 1e-4,
        "schedule": "step",
        "step": 30,
        "_when": [({"model": "*bn_inception"}, {"weight_decay": 2e-4})],
        "_assumed": {
            "weight_decay": _WD_RELEASE + "; 2e-4 for (SE-)BN-Inception ('follow the non-SE "
            "counterpart')",
        },
    },
    "cifar": {
        "_about": "Tables 4–5 / ResNet-110 protocol: pad 4 + random 32 crop + flip, mean/std, SGD 0.9, "
        "batch 128, lr 0.1, wd 1e-4, ÷10 at 50% and 75% of 164 epochs (optional lr-0.01 warm-up: "
        "--constant-warmup-iters 400, the ResNet paper's fix for ResNet-110 not converging)",
        "model": "cifar_se_resnet110",
        **_RESNET_CIFAR,
    },
    "cifar_resnet": {
        "_about": "Tables 4–5, ResNet-20…110 with He et al. 2016a's recipe: the cifar recipe plus "
        "their lr-0.01 warm-up for the first 400 iterations of ResNet-110 (on by default for 110)",
        "model": "cifar_se_resnet110",
        **_RESNET_CIFAR,
        "_when": [({"model": "*resnet110"}, _WARMUP_400)],
        "_assumed": {
            "constant_warmup_iters": "He et al. warm up 'until the training error is below 80% "
            "(about 400 iterations)'; a fixed 400 here",
        },
    },
    "cifar_preact": {
        "_about": "Tables 4–5, pre-activation ResNet-164 with He et al. 2016b's recipe: SGD 0.9, "
        "batch 128, lr 0.1 (0.01 for the first 400 iterations), wd 1e-4, ÷10 at 50% and 75% of 164 "
        "epochs (32k/48k of 64k iterations)",
        "model": "cifar_se_resnet164",
        **_RESNET_CIFAR,
        **_WARMUP_400,
    },
    "cifar_wrn": {
        "_about": "Tables 4–5, WRN-16-8 with Zagoruyko & Komodakis' recipe: SGD 0.9 Nesterov, batch "
        "128, lr 0.1 ×0.2 at 60/120/160 of 200 epochs, wd 5e-4",
        "model": "cifar_se_wrn16_8",
        **_CIFAR_DATA,
        "epochs": 200,
        "batch_size": 128,
        "base_lr": 0.1,
        "base_batch_size": 128,
        "nesterov": True,
        "weight_decay": 5e-4,
        "schedule": "multistep",
        "milestone_fractions": (0.3, 0.6, 0.8),
        "gamma": 0.2,
    },
    "cifar_shakeshake": {
        "_about": "Tables 4–5, Shake-Shake-26 2×96d with Gastaldi's recipe + Cutout: SGD 0.9 "
        "Nesterov, batch 128, lr 0.2 cosine to 0 over 1800 epochs (per iteration), wd 1e-4, "
        "Cutout 16×16 (DeVries & Taylor; 8×8 on cifar100)",
        "model": "cifar_se_shakeshake26_2x96d",
        **_CIFAR_DATA,
        "epochs": 1800,
        "batch_size": 128,
        "base_lr": 0.2,
        "base_batch_size": 128,
        "nesterov": True,
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "cutout": 16,
        "_when": [({"dataset": "cifar100"}, {"cutout": 8})],
        "_assumed": {
            "cutout": "the SE paper says '+Cutout' only; 16 (CIFAR-10) and 8 (CIFAR-100) are the "
            "Cutout paper's sizes. CIFAR-100 as JPEG folders (imagefolder): pass --cutout 8",
        },
    },
    "cifar_fast": {
        "_about": "Not the paper's: a fast CIFAR-10 preset (SE-ResNet-20 towards 91% in ~20 CPU "
        "minutes): batch 128, Nesterov, lr 0.4 with 2 warm-up epochs then linear to 0 over 20 "
        "epochs (18 min on 2 AVX512-BF16 cores), wd 5e-4, label smoothing 0.1, crop + flip "
        "(docs/training.md)",
        "model": "cifar_se_resnet20",
        **_CIFAR_DATA,
        "epochs": 20,
        "batch_size": 128,
        "base_lr": 0.4,
        "base_batch_size": 128,
        "nesterov": True,
        "weight_decay": 5e-4,
        "schedule": "linear",
        "warmup_epochs": 2.0,
        "label_smoothing": 0.1,
        "eval_every": 5,
    },
    "mobile": {
        "_about": "Table 3: batch 256, SGD 0.9, lr 0.1 ÷10 when the validation loss plateaus, ~400 "
        "epochs, lighter augmentation (crop scale ≥ 0.25) and regularisation (wd 4e-5)",
        "model": "se_mobilenet_v1",
        **_IMAGENET_DATA,
        "epochs": 400,
        "batch_size": 256,
        "base_lr": 0.1,
        "base_batch_size": 256,
        "weight_decay": 4e-5,
        "schedule": "plateau",
        "plateau_patience": 5,
        "rrc_scale_min": 0.25,
        "_assumed": {
            "rrc_scale_min": "the paper says 'less aggressive data augmentation'; 0.25 is ours",
            "weight_decay": "the paper says 'less regularisation'; 4e-5 is ours (MobileNet's)",
            "plateau_patience": "not given; 5 epochs",
        },
    },
    "senet154": {
        "_about": "Appendix: SENet-154 with label smoothing, the model's dropout 0.2, batch 2048 / "
        "lr 1.0 (linearly rescaled), ÷10 every 30 of 100 epochs, BatchNorm (statistics and "
        "parameters) frozen for the last few epochs",
        "model": "senet154",
        **_IMAGENET_DATA,
        "epochs": 100,
        "batch_size": 2048,
        "base_lr": 1.0,
        "base_batch_size": 2048,
        "weight_decay": 1e-4,
        "schedule": "step",
        "step": 30,
        "label_smoothing": 0.1,
        "freeze_bn_epochs": 2,
        "freeze_bn_params": True,
        "_assumed": {
            "label_smoothing": "the paper names label smoothing but not ε; 0.1 (Szegedy et al.)",
            "freeze_bn_epochs": "'the last few training epochs'; 2",
            "weight_decay": _WD_RELEASE,
        },
    },
    "ablation": {
        "_about": "Sec. 6 (Tables 10–16): SE-ResNet-50, no biases in the SE FC layers, label "
        "smoothing, lr 0.1 ÷10 each time the validation loss plateaus, three times, then trained "
        "to the next plateau and stopped (~300 epochs); Sec. 5.1's augmentation",
        "model": "se_resnet50",
        **_IMAGENET_DATA,
        "epochs": 400,
        "batch_size": 256,
        "base_lr": 0.1,
        "base_batch_size": 256,
        "weight_decay": 1e-4,
        "schedule": "plateau",
        "plateau_patience": 5,
        "plateau_drops": 3,
        "label_smoothing": 0.1,
        "_when": [({"se": True}, {"model_options": {"se_bias": False}})],
        "_assumed": {
            "batch_size": "not given (one 8-GPU machine); 256, the batch lr 0.1 usually goes with",
            "label_smoothing": "the paper names label smoothing but not ε; 0.1",
            "plateau_patience": "not given; 5 epochs without a lower validation loss",
            "plateau_drops": "'three times in total' read as three ÷10 drops; after the third the "
            "run ends at the next plateau",
            "epochs": "a cap only (the paper: ~300 epochs); the plateaus end the run",
            "weight_decay": _WD_RELEASE,
        },
    },
    "places365": {
        "_about": "Table 6: SE-ResNet-152 on Places365-Challenge (365 classes, ImageFolder), single "
        "224 centre crop; trained with the ImageNet protocol of Sec. 5.1 (the paper gives no "
        "separate recipe)",
        "model": "se_resnet152",
        **_IMAGENET_DATA,
        "epochs": 100,
        "batch_size": 1024,
        "base_lr": 0.6,
        "base_batch_size": 1024,
        "weight_decay": 1e-4,
        "schedule": "step",
        "step": 30,
        "_assumed": {
            "epochs": "the paper gives no Places365 schedule: Sec. 5.1's 100 epochs",
            "batch_size": "Sec. 5.1's (batch 1024, lr 0.6)",
            "schedule": "Sec. 5.1's ÷10 every 30 epochs",
            "weight_decay": _WD_RELEASE,
        },
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


def recipe_assumed(name: str) -> dict[str, str]:
    """The recipe's values the paper does not state: ``{field: why this value}``."""
    return dict(_recipe(name).get("_assumed") or {})


def recipe_conditions(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The recipe's values for some networks or datasets only (``_when``)."""
    return [(dict(c), dict(o)) for c, o in _recipe(name).get("_when") or []]


def _recipe(name: str) -> dict[str, Any]:
    if name not in RECIPES:
        hint = did_you_mean(name, list(RECIPES), cutoff=0.4)
        raise ValueError(
            f"unknown recipe {name!r}; {hint}recipes: {', '.join(RECIPES)} (`senet recipes`)"
        )
    return RECIPES[name]


def condition_holds(condition: dict[str, Any], model: str, dataset: str) -> bool:
    """Whether a ``_when`` condition holds for ``model`` on ``dataset`` (all its keys must)."""
    for key, want in condition.items():
        if key == "model" and not fnmatch.fnmatchcase(model, want):
            return False
        if key == "dataset" and dataset != want:
            return False
        if key == "se" and get_entry(model).has_se != bool(want):
            return False
        if key not in ("model", "dataset", "se"):
            raise ValueError(f"unknown recipe condition {key!r} (model, dataset or se)")
    return True


def model_sizes(model: str, input_size: int | None = None) -> tuple[int, int]:
    """(training/evaluation crop, evaluation resize) of ``model``: its registered sizes, or
    ``input_size`` with the resize in the model's crop/resize ratio (224 → 256)."""
    entry = get_entry(model)
    if input_size is None:
        return entry.input_size, entry.eval_sizes(entry.input_size)[1]
    return entry.eval_sizes(input_size)


def file_data(values: Any) -> bool:
    """Whether a config (or a dict of its values) reads its images from files, not memory."""
    get = values.get if isinstance(values, dict) else lambda k, d=None: getattr(values, k, d)
    in_memory = get("in_memory")
    return (not in_memory) if in_memory is not None else get("augment", "crop_flip") == "rrc_flip"


def get_recipe(name: str, **overrides: Any) -> TrainConfig:
    """The ``TrainConfig`` of recipe ``name`` with ``overrides`` applied (``None`` values ignored).

    Layers, each over the one before: ``TrainConfig``'s defaults, the recipe, the recipe's
    ``_when`` values that hold for the run's model and dataset, ``overrides``. When ``overrides``
    name another model than the recipe's, the recipe's own model options are dropped except
    ``in_chans`` (it follows the data, not the network). A recipe without ``input_size`` takes the
    model's registered training and evaluation sizes (``model_sizes``).
    """
    recipe = _recipe(name)
    base = {k: v for k, v in recipe.items() if not k.startswith("_")}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(k for k in overrides if k not in names)
    if unknown:
        hint = did_you_mean(unknown[0], sorted(names), template=" (did you mean {}?)")
        raise ValueError(f"unknown TrainConfig option(s) {unknown}{hint}")
    given = {k: v for k, v in overrides.items() if v is not None}
    options = dict(base.get("model_options") or {})
    model = given.get("model", base.get("model", TrainConfig.model))
    dataset = given.get("dataset", base.get("dataset", TrainConfig.dataset))
    if model != base.get("model"):
        options = {k: v for k, v in options.items() if k == "in_chans"}
    for condition, values in recipe.get("_when") or []:
        if condition_holds(condition, model, dataset):
            options.update(values.get("model_options") or {})
            base.update({k: v for k, v in values.items() if k != "model_options"})
    options.update(given.get("model_options") or {})
    base.update(given)
    base["model_options"] = options
    if "input_size" not in recipe and base.get("input_size") is None:
        base["input_size"], resize = model_sizes(model)
        base.setdefault("eval_resize", resize)
    elif base.get("eval_resize") is None and base.get("input_size") and file_data(base):
        base["eval_resize"] = model_sizes(model, base["input_size"])[1]  # the model's ratio
    return TrainConfig(**{"recipe": name, **base})


# --------------------------------------------------------------------------------------------
# Which recipe a run gets when none is named
# --------------------------------------------------------------------------------------------
#: model-specific recipes: shell patterns of model names → recipe, first match wins. A recipe
#: written for one family of networks (CIFAR pre-activation ResNets, WRNs, ...) is registered
#: here; see ``choose_recipe`` for when it applies.
MODEL_RECIPES: dict[str, str] = {
    "senet154": "senet154",
    "*mobilenet*": "mobile",
    "*shufflenet*": "mobile",
    "cifar_*resnet164": "cifar_preact",
    "cifar_*resnet*": "cifar_resnet",
    "cifar_*wrn*": "cifar_wrn",
    "cifar_*shakeshake*": "cifar_shakeshake",
}

#: each dataset's default recipe
DATASET_RECIPES: dict[str, str] = {
    "imagefolder": "imagenet",
    "cifar10": "cifar",
    "cifar100": "cifar",
    "digits": "digits",
}

#: datasets a CIFAR recipe fits: CIFAR itself, and image folders (CIFAR as JPEGs is the common case)
CIFAR_LIKE = ("cifar10", "cifar100", "imagefolder")

DEFAULT_RECIPE = "digits"  # `senet train` with no model and no dataset: the offline main job


def _recipe_fits(name: str, dataset: str | None) -> bool:
    """A model's recipe applies to ``dataset``: none given, the recipe's own, or — for a CIFAR
    recipe — any CIFAR-like data (its dataset is then overridden)."""
    own = RECIPES[name].get("dataset")
    if dataset is None or own == dataset:
        return True
    return own in ("cifar10", "cifar100") and dataset in CIFAR_LIKE


def choose_recipe(
    recipe: str | None = None, model: str | None = None, dataset: str | None = None
) -> tuple[str, str]:
    """The recipe a run uses and why: ``--recipe`` > the model's (``MODEL_RECIPES``, when it fits
    the dataset: a CIFAR network's CIFAR recipe also on image folders) > for image folders, the
    model's input size (≤ 64 px: ``cifar``, else ``imagenet``) > the dataset's
    (``DATASET_RECIPES``) > the model's input size > ``digits`` when neither is given."""
    if recipe is not None:
        _recipe(recipe)
        return recipe, "as asked"
    if dataset is not None and dataset not in DATASET_RECIPES:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASET_RECIPES)}")
    if model is not None:
        for pattern, name in MODEL_RECIPES.items():
            if fnmatch.fnmatchcase(model, pattern) and _recipe_fits(name, dataset):
                on = f" on {dataset}" if dataset and dataset != RECIPES[name].get("dataset") else ""
                return name, f"the recipe registered for {model}{on}"
    size = get_entry(model).input_size if model is not None else None
    if dataset == "imagefolder" and size is not None and size <= 64:
        return "cifar", f"{model} is a {size}-pixel network; image folders of small images"
    if dataset is not None:
        return DATASET_RECIPES[dataset], f"the default for --dataset {dataset}"
    if model is not None:
        return ("cifar" if size <= 64 else "imagenet"), f"{model} takes {size}-pixel inputs"  # type: ignore[operator]
    return DEFAULT_RECIPE, "no --recipe, --model or --dataset given"
