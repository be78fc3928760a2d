"""Training configuration and the paper's recipes as named presets (Sec. 5.1, Tables 3–5, appendix).

``TrainConfig`` is the whole effective configuration of a run (saved as ``config.json``);
``RECIPES`` maps a name to the overrides that define it on top of the dataclass defaults, and
``get_recipe(name, **overrides)`` builds the config a run uses. The learning rate follows the
paper's *linear scaling*: ``lr = base_lr × batch_size / base_batch_size`` unless ``lr`` is given.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import os
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin, get_type_hints

from senet.data.datasets import IMAGENET_MEAN
from senet.models.registry import get_entry

Schedule = Literal["step", "multistep", "cosine", "plateau", "constant"]
Augment = Literal["crop_flip", "crop", "rrc_flip", "none"]
Normalize = Literal["meanstd", "mean"]
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
    input_size: int | None = field(
        default=None,
        metadata=cli(
            "data", "training crop size; default: the images' own (in memory) or 224 (files)"
        ),
    )
    eval_resize: int | None = field(
        default=None,
        metadata=cli("data", "shorter side before the evaluation centre crop (256 for 224)"),
    )
    normalize: Normalize = field(
        default="meanstd",
        metadata=cli("data", "mean/std, or the paper's mean-RGB subtraction (mean)"),
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
            "optimisation", "freeze BatchNorm statistics for the last N epochs (SENet-154: 2)"
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
            close = difflib.get_close_matches(unknown[0], sorted(names), n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
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
    """The ``TrainConfig`` of recipe ``name`` with ``overrides`` applied (``None`` values ignored).

    When ``overrides`` name another model than the recipe's, the recipe's model options are
    dropped except ``in_chans`` (it follows the data, not the network).
    """
    base = {k: v for k, v in _recipe(name).items() if not k.startswith("_")}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(k for k in overrides if k not in names)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(names), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown TrainConfig option(s) {unknown}{hint}")
    options = dict(base.get("model_options") or {})
    model = overrides.get("model")
    if model is not None and model != base.get("model"):
        options = {k: v for k, v in options.items() if k == "in_chans"}
    options.update(overrides.get("model_options") or {})
    base.update({k: v for k, v in overrides.items() if v is not None})
    base["model_options"] = options
    return TrainConfig(**{"recipe": name, **base})


# --------------------------------------------------------------------------------------------
# Which recipe a run gets when none is named
# --------------------------------------------------------------------------------------------
#: model-specific recipes: shell patterns of model names → recipe, first match wins. A recipe
#: written for one family of networks (CIFAR pre-activation ResNets, WRNs, ...) is registered
#: here; it applies when no --dataset is given or the recipe's dataset is the one asked for.
MODEL_RECIPES: dict[str, str] = {
    "senet154": "senet154",
    "*mobilenet*": "mobile",
    "*shufflenet*": "mobile",
}

#: each dataset's default recipe
DATASET_RECIPES: dict[str, str] = {
    "imagefolder": "imagenet",
    "cifar10": "cifar",
    "cifar100": "cifar",
    "digits": "digits",
}

DEFAULT_RECIPE = "digits"  # `senet train` with no model and no dataset: the offline main job


def choose_recipe(
    recipe: str | None = None, model: str | None = None, dataset: str | None = None
) -> tuple[str, str]:
    """The recipe a run uses and why: ``--recipe`` > the model's (``MODEL_RECIPES``) > the
    dataset's (``DATASET_RECIPES``) > the model's input size (≤ 64 px: ``cifar``, else
    ``imagenet``) > ``digits`` when neither model nor dataset is given."""
    if recipe is not None:
        _recipe(recipe)
        return recipe, "as asked"
    if model is not None:
        for pattern, name in MODEL_RECIPES.items():
            fits = dataset is None or RECIPES[name].get("dataset") == dataset
            if fnmatch.fnmatchcase(model, pattern) and fits:
                return name, f"the recipe registered for {model}"
    if dataset is not None:
        if dataset not in DATASET_RECIPES:
            raise ValueError(
                f"unknown dataset {dataset!r}; choose one of {', '.join(DATASET_RECIPES)}"
            )
        return DATASET_RECIPES[dataset], f"the default for --dataset {dataset}"
    if model is not None:
        small = get_entry(model).input_size <= 64
        return ("cifar" if small else "imagenet"), (
            f"{model} takes {get_entry(model).input_size}-pixel inputs"
        )
    return DEFAULT_RECIPE, "no --recipe, --model or --dataset given"
