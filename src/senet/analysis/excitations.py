"""Excitation recording and per-class statistics of every SE block (Sec. 7.2, Figs. 6–7).

``record_excitations`` captures the gate ``s`` each ``SqueezeExcitation`` produces during a normal
forward pass, without recomputing anything and without changing what the model computes: a forward
hook on the block's ``gate_out`` (an identity the SE block passes ``s`` through). For SE modules
without that hook point it shadows the ``excitation`` method for the duration of the context with
a wrapper that passes the result through unchanged. (Hooks on the SE module or on ``se.fc2`` would
miss most gates: residual blocks call ``se.excitation(out)`` directly, and ``excitation`` runs its
FCs functionally.) NoSqueeze gates (N×C×H×W) are averaged over H×W, so every block contributes one
C-vector per image.

``ExcitationStats`` aggregates those vectors per class and per block with streaming sums (memory
is O(blocks × classes × channels), independent of the number of images) and derives the per-class
mean/std, the all-class mean and a class-specificity summary per block.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from senet.layers.se import SqueezeExcitation
from senet.utils.io import atomic_write

_STAGE_BLOCK = re.compile(r"(?:^|\.)layer(\d+)\.(\d+)\.se([12]?)$")

#: Figs. 6–7's classes — goldfish, pug, plane, cliff — as ImageNet wnids, with each one's index in
#: the standard (sorted-wnid) 1,000-class order and its torchvision name ("plane" is ILSVRC's
#: airliner). Checked against torchvision's category list and timm's ImageNetInfo.
PAPER_CLASSES: tuple[tuple[str, int, str], ...] = (
    ("n01443537", 1, "goldfish"),
    ("n02110958", 254, "pug"),
    ("n02690373", 404, "airliner"),
    ("n09246464", 972, "cliff"),
)


@dataclass(frozen=True)
class SEBlockInfo:
    """One SE block of a model: paper-style name, module path, width and gate."""

    name: str  # SE_<stage+1>_<block> as in the paper (the stem is stage 1), else the module path
    path: str  # module path in the model, e.g. "layer1.2.se"
    channels: int
    gate: str
    squeeze: str


def paper_block_name(path: str) -> str:
    """``layer<i>.<j>.se`` → ``SE_<i+1>_<j+1>`` (Sec. 7.2: SE_2_3 is conv2_x's 3rd block).

    Shake-Shake blocks have one SE block per branch: ``layer<i>.<j>.se1``/``se2`` → ``…a``/``…b``.
    """
    m = _STAGE_BLOCK.search(path)
    if m is None:
        return path
    branch = {"": "", "1": "a", "2": "b"}[m.group(3)]
    return f"SE_{int(m.group(1)) + 1}_{int(m.group(2)) + 1}{branch}"


def find_se_blocks(model: nn.Module) -> list[SEBlockInfo]:
    """Every ``SqueezeExcitation`` of ``model`` in forward (registration) order."""
    blocks = [
        SEBlockInfo(paper_block_name(path), path, m.channels, m.gate, m.squeeze)
        for path, m in model.named_modules()
        if isinstance(m, SqueezeExcitation)
    ]
    names = [b.name for b in blocks]
    if len(set(names)) != len(names):  # paper names collide only for unusual layouts: use paths
        blocks = [SEBlockInfo(b.path, b.path, b.channels, b.gate, b.squeeze) for b in blocks]
    return blocks


def default_blocks(blocks: Sequence[SEBlockInfo]) -> list[str]:
    """The paper's choice (Fig. 6): the last SE block of each stage, plus every block of the last stage."""
    by_stage: dict[str, list[str]] = {}
    for b in blocks:
        stage = b.name.rsplit("_", 1)[0] if b.name.startswith("SE_") else b.name
        by_stage.setdefault(stage, []).append(b.name)
    stages = list(by_stage.values())
    if not stages:
        return []
    return [s[-1] for s in stages[:-1]] + stages[-1]


def paper_classes(class_names: Sequence[str]) -> list[str] | None:
    """The paper's four classes among ``class_names`` (by wnid, name or 1,000-class index), or
    None when the classes are not ImageNet's."""
    names = [str(c) for c in class_names]
    found = []
    for wnid, index, name in PAPER_CLASSES:
        if wnid in names:
            found.append(wnid)
        elif name in names:
            found.append(name)
        elif len(names) == 1000 and names[index] == str(index):  # classes stored as indices
            found.append(names[index])
        else:
            return None
    return found


def choose_classes(
    class_names: Sequence[str], requested: Sequence[str] | None = None, preset: str = "auto"
) -> list[str]:
    """The classes a figure shows: ``requested`` (names, wnids or indices) or a preset.

    Presets: ``paper`` (goldfish, pug, plane, cliff; ImageNet classes only), ``first`` (the first
    four classes), ``auto`` (``paper`` where the classes are ImageNet's, else ``first``).
    """
    names = [str(c) for c in class_names]
    if requested:
        chosen = []
        for c in requested:
            if c in names:
                chosen.append(c)
            elif c.isdigit() and int(c) < len(names):
                chosen.append(names[int(c)])
            else:
                raise ValueError(
                    f"unknown class {c!r}; the model's classes are {', '.join(names[:20])}"
                    + (" ..." if len(names) > 20 else "")
                )
        return chosen
    if preset not in ("auto", "paper", "first"):
        raise ValueError(f"class preset {preset!r} is not supported; choose auto, paper or first")
    paper = paper_classes(names) if preset in ("auto", "paper") else None
    if paper is not None:
        return paper
    if preset == "paper":
        raise ValueError(
            "the paper's classes (goldfish n01443537, pug n02110958, airliner n02690373, cliff "
            f"n09246464) are ImageNet classes; this model's are {', '.join(names[:10])} ...; "
            "name classes with --classes or use --class-preset first"
        )
    return names[: min(4, len(names))]


def _select(
    model: nn.Module, names: Sequence[str] | None
) -> list[tuple[SEBlockInfo, SqueezeExcitation]]:
    blocks = find_se_blocks(model)
    if not blocks:
        raise ValueError(
            "the model has no SqueezeExcitation blocks; excitation analysis needs an SE network "
            "(senet.list_models(se=True)) or a model retrofitted with add_se"
        )
    modules = dict(model.named_modules())
    if names is None:
        return [(b, modules[b.path]) for b in blocks]
    lookup = {b.name: b for b in blocks} | {b.path: b for b in blocks}
    unknown = [n for n in names if n not in lookup]
    if unknown:
        raise ValueError(
            f"unknown SE block(s) {unknown}; this model has {', '.join(b.name for b in blocks)}"
        )
    return [(lookup[n], modules[lookup[n].path]) for n in names]


@contextlib.contextmanager
def record_excitations(
    model: nn.Module,
    callback: Callable[[str, torch.Tensor], None],
    blocks: Sequence[str] | None = None,
) -> Iterator[list[SEBlockInfo]]:
    """While active, call ``callback(block_name, s)`` with each SE block's gate as N×C (Sec. 7.2).

    The model's outputs are unchanged; the wrappers are removed on exit, even after an error.
    """
    selected = _select(model, blocks)

    def to_vector(s: torch.Tensor) -> torch.Tensor:
        v = s.detach()
        if v.dim() == 4 and (v.shape[2] > 1 or v.shape[3] > 1):
            v = v.mean((2, 3))  # NoSqueeze: spatial average of the N×C×H×W gate
        return v.reshape(v.shape[0], v.shape[1])

    handles = []
    wrapped_modules = []
    for info, module in selected:
        if isinstance(getattr(module, "gate_out", None), nn.Module):
            # the SE block's hook point: gate_out(s) is the identity on s
            def hook(_m, _inp, out, _name=info.name) -> None:
                callback(_name, to_vector(out))

            handles.append(module.gate_out.register_forward_hook(hook))
            continue
        original = module.excitation  # older SE modules without gate_out: wrap the bound method

        def wrapped(x: torch.Tensor, _orig=original, _name=info.name) -> torch.Tensor:
            s = _orig(x)
            callback(_name, to_vector(s))
            return s

        module.excitation = wrapped  # instance attribute shadows the method, removed on exit
        wrapped_modules.append(module)
    try:
        yield [info for info, _ in selected]
    finally:
        for h in handles:
            h.remove()
        for module in wrapped_modules:
            module.__dict__.pop("excitation", None)


@dataclass
class ExcitationStats:
    """Streaming per-class sums of excitations: ``sum``/``sumsq`` (K×C) and ``count`` (K) per block."""

    blocks: list[SEBlockInfo]
    num_classes: int
    classes: list[str] | None = None
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    sumsqs: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for b in self.blocks:
            self.sums.setdefault(b.name, np.zeros((self.num_classes, b.channels)))
            self.sumsqs.setdefault(b.name, np.zeros((self.num_classes, b.channels)))
            self.counts.setdefault(b.name, np.zeros(self.num_classes, dtype=np.int64))

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.blocks]

    def update(self, name: str, s: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch of gates ``s`` (N×C) with class ``labels`` (N) to block ``name``."""
        s64 = s.detach().to("cpu", torch.float64)
        lab = labels.detach().to("cpu", torch.long)
        k = self.num_classes
        if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= k):
            raise ValueError(f"labels must lie in [0, {k}); got {int(lab.min())}..{int(lab.max())}")
        acc = torch.zeros(k, s64.shape[1], dtype=torch.float64)
        self.sums[name] += acc.index_add(0, lab, s64).numpy()
        self.sumsqs[name] += torch.zeros_like(acc).index_add(0, lab, s64 * s64).numpy()
        self.counts[name] += np.bincount(lab.numpy(), minlength=k)

    # -- derived statistics -------------------------------------------------------------------
    def class_mean(self, name: str) -> np.ndarray:
        """K×C mean excitation per class (NaN for classes never seen)."""
        n = self.counts[name][:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums[name] / n

    def class_std(self, name: str) -> np.ndarray:
        """K×C population standard deviation within each class (Fig. 7)."""
        n = self.counts[name][:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.sums[name] / n
            return np.sqrt(np.maximum(self.sumsqs[name] / n - mean * mean, 0.0))

    def overall_mean(self, name: str) -> np.ndarray:
        """C-vector mean over all images of all classes (Fig. 6's "all")."""
        return self.sums[name].sum(0) / max(1, int(self.counts[name].sum()))

    def specificity(self, name: str) -> dict[str, float]:
        """How class-specific a block is (Sec. 7.2's reading of Fig. 6).

        ``between_class_var``: variance across classes of the per-class mean excitation, averaged
        over channels; ``eta2``: the same as a fraction of the total variance (between + within,
        0 = class-agnostic, 1 = fully determined by the class); ``mean``: the average excitation
        (near 1 for a sigmoid block that saturates).
        """
        n_k = self.counts[name].astype(np.float64)
        seen = n_k > 0
        n = n_k.sum()
        if n == 0:
            raise ValueError(f"block {name} has no recorded samples")
        mu = self.sums[name].sum(0) / n
        means = self.sums[name][seen] / n_k[seen, None]
        between = (n_k[seen, None] * (means - mu) ** 2).sum(0) / n
        total = self.sumsqs[name].sum(0) / n - mu * mu
        with np.errstate(invalid="ignore", divide="ignore"):
            eta2 = np.where(total > 1e-12, between / np.maximum(total, 1e-300), 0.0)
        return {
            "between_class_var": float(np.var(means, axis=0).mean()),
            "eta2": float(eta2.mean()),
            "mean": float(mu.mean()),
            "std": float(np.sqrt(np.maximum(total, 0)).mean()),
            "count": int(n),
        }

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write sums, counts and the derived mean/std per block to an NPZ file, atomically."""
        arrays: dict[str, np.ndarray] = {
            "block_names": np.array(self.names),
            "block_paths": np.array([b.path for b in self.blocks]),
            "block_channels": np.array([b.channels for b in self.blocks]),
            "block_gates": np.array([b.gate for b in self.blocks]),
            "block_squeeze": np.array([b.squeeze for b in self.blocks]),
            "classes": np.array(self.classes or [str(i) for i in range(self.num_classes)]),
        }
        for name in self.names:
            arrays[f"{name}__sum"] = self.sums[name]
            arrays[f"{name}__sumsq"] = self.sumsqs[name]
            arrays[f"{name}__count"] = self.counts[name]
            arrays[f"{name}__mean"] = self.class_mean(name)
            arrays[f"{name}__std"] = self.class_std(name)

        def write(p: Path) -> None:
            with open(p, "wb") as f:
                np.savez(f, **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> ExcitationStats:
        """Read statistics written by ``save`` (NumPy arrays only; no pickles)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"excitation statistics {path} do not exist; run `senet analyze excitations` first"
            )
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["block_names"]]
            blocks = [
                SEBlockInfo(n, str(p), int(c), str(g), str(s))
                for n, p, c, g, s in zip(
                    names,
                    z["block_paths"],
                    z["block_channels"],
                    z["block_gates"],
                    z["block_squeeze"],
                )
            ]
            classes = [str(c) for c in z["classes"]]
            stats = cls(
                blocks,
                len(classes),
                classes,
                sums={n: z[f"{n}__sum"] for n in names},
                sumsqs={n: z[f"{n}__sumsq"] for n in names},
                counts={n: z[f"{n}__count"] for n in names},
            )
        return stats


def collect_excitations(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    blocks: Sequence[str] | None = None,
    classes: list[str] | None = None,
    max_per_class: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> ExcitationStats:
    """Run ``model`` (eval mode, no grad) over ``batches`` and aggregate every SE block's gates.

    ``max_per_class`` keeps at most that many images of each class (the paper uses 50 per class);
    iteration stops once every class is full.
    """
    was_training = model.training
    model.eval().to(device)
    taken = np.zeros(num_classes, dtype=np.int64)
    current: dict[str, torch.Tensor] = {}
    stats: ExcitationStats | None = None

    def sink(name: str, s: torch.Tensor) -> None:
        current[name] = s

    disable = None if progress is None else not progress  # None: tqdm is quiet off a TTY
    try:
        with record_excitations(model, sink, blocks) as infos, torch.no_grad():
            stats = ExcitationStats(list(infos), num_classes, classes)
            for images, labels in tqdm(batches, desc="excitations", unit="batch", disable=disable):
                labels = torch.as_tensor(labels)
                keep = torch.ones(len(labels), dtype=torch.bool)
                if max_per_class is not None:
                    keep = _quota_mask(labels, taken, max_per_class)
                    if not keep.any():
                        if (taken >= max_per_class).all():
                            break
                        continue
                    images, labels = images[keep], labels[keep]
                current.clear()
                model(images.to(device))
                for name in stats.names:
                    if name not in current:
                        raise RuntimeError(
                            f"SE block {name} produced no excitation in the forward pass; "
                            "is it part of the model's computation?"
                        )
                    stats.update(name, current[name], labels)
                if max_per_class is not None and (taken >= max_per_class).all():
                    break
    finally:
        model.train(was_training)
    assert stats is not None
    if int(next(iter(stats.counts.values())).sum()) == 0:
        raise ValueError("no images were seen; check the data path and the class filter")
    return stats


def _quota_mask(labels: torch.Tensor, taken: np.ndarray, limit: int) -> torch.Tensor:
    keep = torch.zeros(len(labels), dtype=torch.bool)
    for i, lab in enumerate(labels.tolist()):
        if 0 <= lab < len(taken) and taken[lab] < limit:
            taken[lab] += 1
            keep[i] = True
    return keep
