"""The benchmark suites: groups of cases timed together, and the ratios issue 7 sets targets for."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from senet.bench.cases import (
    Case,
    infer_case,
    load_cifar,
    loop_case,
    project_batches,
    setting_name,
    train_case,
)
from senet.bench.plain_loop import imagefolder_batches, prepare_imagefolder


@dataclass(frozen=True)
class Comparison:
    """``num`` against ``den`` (case labels) as a time ratio; ``target`` bounds it (``sense``).

    ``invert`` reports den/num instead (a throughput ratio: >1 means ``num`` is faster).
    """

    name: str
    num: str
    den: str
    target: float | None = None
    sense: str = "<="
    invert: bool = False
    row: str | None = None  # the settings table's row (what is compared, whatever the setting)
    setting: str | None = None  # the settings table's column ("fp32 NCHW", "bf16 CL", ...)


@dataclass
class Group:
    """Cases that are interleaved with each other, and the comparisons drawn from them."""

    name: str
    build: Callable[[], list[Case]]
    comparisons: list[Comparison] = field(default_factory=list)
    rounds: int = 5
    steps: int = 3
    clock: str | None = None  # forced clock; "wall" where work happens in other processes
    threads: int | None = None  # forced torch threads for this group (None: the run's setting)


@dataclass
class SuiteOptions:
    data_dir: str | None = None
    cifar_subset: int = 10240
    workers: int = 2
    timm: bool = True
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="senet-bench-"))


def _timm_overhead(group: str, row: str, setting: str) -> Comparison:
    """timm's own SE cost (seresnet50 ÷ resnet50) in a settings-table row: the reference gap."""
    return Comparison(
        f"timm SE overhead {group}",
        "timm:seresnet50 (-)",
        "timm:resnet50 (-)",
        row=f"{row}: timm seresnet50 ÷ resnet50 (time)",
        setting=setting,
    )


def _se_vs_plain(group: str, se: str, plain: str, target: float | None) -> Comparison:
    return Comparison(
        f"SE overhead {group}: {se} ÷ {plain}", f"{se} (fast)", f"{plain} (fast)", target
    )


def _imagenet_groups(
    o: SuiteOptions,
    size: int,
    infer_batches: tuple[int, ...],
    train_batches: tuple[int, ...],
    layouts: tuple[str, ...],
    rounds: int,
    steps: int,
    train_steps: int,
    fused: bool = True,
    full: bool = True,
) -> list[Group]:
    """SE-ResNet-50 against ResNet-50 and timm; ``full=False`` keeps only ours-fast and timm's SE
    model at batches above 16 (they take seconds a step on a CPU)."""
    groups: list[Group] = []
    timm = ["timm:resnet50", "timm:seresnet50"] if o.timm else []
    for batch in infer_batches:
        for layout in layouts:
            g = f"infer b{batch} {size} {layout}"

            def build(batch=batch, layout=layout, g=g) -> list[Case]:
                cases = [
                    infer_case(m, batch, size, layout, "fast", group=g)
                    for m in ("resnet50", "se_resnet50")
                ]
                if full or batch <= 16:
                    cases.append(
                        infer_case("se_resnet50", batch, size, layout, "reference", group=g)
                    )
                cases += [infer_case(m, batch, size, layout, "-", group=g) for m in timm]
                return cases

            comps = [_se_vs_plain(g, "se_resnet50", "resnet50", 1.02 if batch == 1 else None)]
            comps.append(
                Comparison(
                    f"fast ÷ reference path {g}", "se_resnet50 (fast)", "se_resnet50 (reference)"
                )
            )
            if timm:
                comps.append(
                    Comparison(
                        f"ours ÷ timm seresnet50 latency {g}",
                        "se_resnet50 (fast)",
                        "timm:seresnet50 (-)",
                        0.80,
                    )
                )
                comps.append(
                    Comparison(f"timm SE overhead {g}", "timm:seresnet50 (-)", "timm:resnet50 (-)")
                )
            groups.append(Group(g, build, comps, rounds, steps))
    # Inference-optimised, batch 1: our rewrites (BN folded; + early squeeze) against timm's
    # torch.jit.optimize_for_inference and both under torch.compile (Inductor, freezing).
    if not fused:
        return groups + _train_groups(
            o, size, train_batches, layouts, rounds, train_steps, timm, full
        )
    for layout in layouts:
        groups.append(_optimised_group(size, layout, timm, rounds, steps))
    return groups + _train_groups(o, size, train_batches, layouts, rounds, train_steps, timm, full)


def _optimised_group(size: int, layout: str, timm: list[str], rounds: int, steps: int) -> Group:
    g = f"infer b1 {size} {layout} inference-optimised"

    def build() -> list[Case]:
        cases = [
            infer_case("resnet50", 1, size, layout, "fast", "fused", group=g),
            infer_case("se_resnet50", 1, size, layout, "fast", "fused", group=g),
            infer_case("resnet50", 1, size, layout, "fast", "optimized", group=g),
            infer_case("se_resnet50", 1, size, layout, "fast", "optimized", group=g),
            infer_case("resnet50", 1, size, layout, "-", "compile", group=g),
            infer_case("se_resnet50", 1, size, layout, "-", "compile", group=g),
        ]
        for m in timm:
            cases += [
                infer_case(m, 1, size, layout, "-", mode, group=g)
                for mode in ("eager", "jit", "compile")
            ]
        return cases

    ours_opt, ours_comp = "se_resnet50 [optimized] (fast)", "se_resnet50 [compile] (-)"
    comps = [
        Comparison(
            f"SE overhead {g} [fused]",
            "se_resnet50 [fused] (fast)",
            "resnet50 [fused] (fast)",
            1.02,
        ),
        Comparison(
            f"SE overhead {g}: se [optimized] ÷ plain [optimized]",
            ours_opt,
            "resnet50 [optimized] (fast)",
            1.02,
        ),
        Comparison(
            f"early squeeze + packed convolutions {g}: [optimized] ÷ [fused]",
            ours_opt,
            "se_resnet50 [fused] (fast)",
        ),
        Comparison(f"SE overhead {g} [compile]", ours_comp, "resnet50 [compile] (-)", 1.02),
    ]
    if timm:
        for ours in (ours_opt, ours_comp):
            for mode in ("eager", "jit", "compile"):
                comps.append(
                    Comparison(
                        f"ours {ours.split(' ')[1]} ÷ timm seresnet50 [{mode}] latency {g}",
                        ours,
                        f"timm:seresnet50{'' if mode == 'eager' else f' [{mode}]'} (-)",
                        0.80,
                    )
                )
        comps.append(
            Comparison(
                f"timm SE overhead {g} [jit]",
                "timm:seresnet50 [jit] (-)",
                "timm:resnet50 [jit] (-)",
            )
        )
    return Group(g, build, comps, rounds, steps)


def _train_groups(
    o: SuiteOptions,
    size: int,
    train_batches: tuple[int, ...],
    layouts: tuple[str, ...],
    rounds: int,
    train_steps: int,
    timm: list[str],
    full: bool,
) -> list[Group]:
    groups: list[Group] = []
    for batch in train_batches:
        for layout in layouts:
            g = f"train b{batch} {size} {layout}"

            def build_train(batch=batch, layout=layout, g=g) -> list[Case]:
                cases = [
                    train_case(m, batch, size, layout, "fast", g)
                    for m in ("resnet50", "se_resnet50")
                ]
                if full or batch <= 16:
                    cases.append(train_case("se_resnet50", batch, size, layout, "reference", g))
                    cases += [train_case(m, batch, size, layout, "-", g) for m in timm]
                elif timm:
                    cases.append(train_case("timm:seresnet50", batch, size, layout, "-", g))
                return cases

            comps = [_se_vs_plain(g, "se_resnet50", "resnet50", 1.05)]
            comps.append(
                Comparison(
                    f"fast ÷ reference path {g}", "se_resnet50 (fast)", "se_resnet50 (reference)"
                )
            )
            if timm:
                comps.append(
                    Comparison(
                        f"ours ÷ timm seresnet50 throughput {g}",
                        "se_resnet50 (fast)",
                        "timm:seresnet50 (-)",
                        1.3,
                        ">=",
                        True,
                    )
                )
                comps.append(
                    Comparison(f"timm SE overhead {g}", "timm:seresnet50 (-)", "timm:resnet50 (-)")
                )
            groups.append(Group(g, build_train, comps, rounds, train_steps))
    return groups


def _cifar_groups(
    o: SuiteOptions, batch: int, layouts: tuple[str, ...], rounds: int, steps: int
) -> list[Group]:
    groups: list[Group] = []
    for layout in layouts:  # the model alone, on a fixed batch
        g = f"cifar train b{batch} {layout} (model only)"

        def build(layout=layout, g=g) -> list[Case]:
            cases = [
                train_case(m, batch, 32, layout, "fast", g, 10)
                for m in ("cifar_resnet20", "cifar_se_resnet20")
            ]
            cases.append(train_case("cifar_se_resnet20", batch, 32, layout, "reference", g, 10))
            cases += [
                train_case(f"plain:{m}", batch, 32, layout, "-", g, 10)
                for m in ("cifar_resnet20", "cifar_se_resnet20")
            ]
            return cases

        groups.append(
            Group(
                g,
                build,
                [
                    _se_vs_plain(g, "cifar_se_resnet20", "cifar_resnet20", 1.10),
                    Comparison(
                        f"fast ÷ reference path {g}",
                        "cifar_se_resnet20 (fast)",
                        "cifar_se_resnet20 (reference)",
                    ),
                    Comparison(
                        f"plain-loop model SE overhead {g}",
                        "plain:cifar_se_resnet20 (-)",
                        "plain:cifar_resnet20 (-)",
                    ),
                ],
                rounds,
                steps,
            )
        )
    g = f"cifar loop b{batch} (data included)"

    def build_loop() -> list[Case]:
        cases = []
        data = load_cifar(o.data_dir, o.cifar_subset)
        src = data.name
        for m, path in (
            ("cifar_resnet20", "fast"),
            ("cifar_se_resnet20", "fast"),
            ("cifar_se_resnet20", "reference"),
        ):
            it = project_batches(data, batch, "nchw")
            cases.append(loop_case(m, it, batch, "nchw", path, g, "senet in-memory loader"))
        root = prepare_imagefolder(o.data_dir, o.cifar_subset, Path(o.workdir))
        for m in ("cifar_resnet20", "cifar_se_resnet20"):
            it = imagefolder_batches(root, batch, o.workers)
            cases.append(
                loop_case(f"plain:{m}", it, batch, "nchw", "-", g, "ImageFolder DataLoader")
            )
        for c in cases:
            c.extra["source"] = src if "senet" in str(c.extra.get("data")) else str(root)
        return cases

    groups.append(
        Group(
            g,
            build_loop,
            [
                _se_vs_plain(
                    g,
                    "cifar_se_resnet20 + senet in-memory loader",
                    "cifar_resnet20 + senet in-memory loader",
                    1.10,
                ),
                Comparison(
                    f"ours ÷ plain loop throughput {g}",
                    "cifar_se_resnet20 + senet in-memory loader (fast)",
                    "plain:cifar_se_resnet20 + ImageFolder DataLoader (-)",
                    1.5,
                    ">=",
                    True,
                ),
                Comparison(
                    f"plain-loop SE overhead {g}",
                    "plain:cifar_se_resnet20 + ImageFolder DataLoader (-)",
                    "plain:cifar_resnet20 + ImageFolder DataLoader (-)",
                ),
            ],
            rounds,
            steps,
            clock="wall",  # the plain loop decodes in worker processes: count elapsed time
            # every core, as a user's training run has: the plain loop's DataLoader workers
            # then compete with the trainer for them, which is the point of this comparison
            threads=os.cpu_count() or 1,
        )
    )
    return groups


SETTINGS = (("none", "nchw"), ("none", "cl"), ("bf16", "nchw"), ("bf16", "cl"))


@dataclass(frozen=True)
class SettingsSizes:
    """Sizes of the settings suite (``quick`` shrinks them)."""

    cifar_batch: int = 128
    cifar_size: int = 32
    train_batch: int = 16
    size: int = 224
    infer_batch: int = 1
    rounds: int = 7
    steps: int = 1
    train_rounds: int = 5
    infer_steps: int = 3
    settings: tuple[tuple[str, str], ...] = SETTINGS


def _settings_groups(o: SuiteOptions, z: SettingsSizes) -> list[Group]:
    """Every setting (fp32/bf16 × NCHW/channels_last) of the three measurements the targets
    name: CIFAR training, ImageNet-size training, batch-1 inference. Each group interleaves
    the SE model, its plain twin, timm's pair and ``optimize_for_inference`` in one setting."""
    timm = _timm(o)
    groups: list[Group] = []
    for amp, layout in z.settings:
        st = setting_name(amp, layout)
        groups += [
            _settings_cifar(z, amp, layout, st),
            _settings_train(z, amp, layout, st, timm),
            _settings_infer(z, amp, layout, st, timm),
        ]
    return groups


def _settings_cifar(z: SettingsSizes, amp: str, layout: str, st: str) -> Group:
    """CIFAR training: SE-ResNet-20 vs ResNet-20, the reference path and the plain loop."""
    cifar_row = f"CIFAR training b{z.cifar_batch}"
    g = f"cifar train b{z.cifar_batch} {st}"

    def cifar(amp=amp, layout=layout, g=g) -> list[Case]:
        args = (z.cifar_batch, z.cifar_size, layout)
        return [
            train_case("cifar_resnet20", *args, "fast", g, 10, amp),
            train_case("cifar_se_resnet20", *args, "fast", g, 10, amp),
            train_case("cifar_se_resnet20", *args, "reference", g, 10, amp),
            train_case("plain:cifar_se_resnet20", *args, "-", g, 10, amp),
            train_case("cifar_se_resnet20", *args, "aten", g, 10, amp),  # native kernels off
        ]

    native_rows = [
        Comparison(
            f"native kernels ÷ ATen {g}",
            "cifar_se_resnet20 (fast)",
            "cifar_se_resnet20 (aten)",
            row=f"{cifar_row}: SE-ResNet-20 native kernels ÷ ATen only (time)",
            setting=st,
        ),
        Comparison(
            f"SE overhead without native kernels {g}",
            "cifar_se_resnet20 (aten)",
            "cifar_resnet20 (fast)",
            row=f"{cifar_row}: SE-ResNet-20 (ATen only) ÷ ResNet-20 (time)",
            setting=st,
        ),
    ]

    return Group(
        g,
        cifar,
        [
            Comparison(
                f"SE overhead {g}",
                "cifar_se_resnet20 (fast)",
                "cifar_resnet20 (fast)",
                1.05,
                row=f"{cifar_row}: SE-ResNet-20 ÷ ResNet-20 (time)",
                setting=st,
            ),
            Comparison(
                f"fast ÷ reference path {g}",
                "cifar_se_resnet20 (fast)",
                "cifar_se_resnet20 (reference)",
                row=f"{cifar_row}: SE fast ÷ reference path (time)",
                setting=st,
            ),
            Comparison(
                f"ours ÷ plain-loop SE-ResNet-20 {g}",
                "cifar_se_resnet20 (fast)",
                "plain:cifar_se_resnet20 (-)",
                row=f"{cifar_row}: ours ÷ plain-loop SE-ResNet-20 (time)",
                setting=st,
            ),
            *native_rows,
        ],
        z.rounds,
        z.steps,
    )


def _settings_train(z: SettingsSizes, amp: str, layout: str, st: str, timm: list[str]) -> Group:
    """224-px training: SE-ResNet-50 vs ResNet-50 and timm's pair."""
    train_row = f"{z.size}px training b{z.train_batch}"
    g = f"train b{z.train_batch} {z.size} {st}"

    def train(amp=amp, layout=layout, g=g) -> list[Case]:
        args = (z.train_batch, z.size, layout)
        cases = [train_case(m, *args, "fast", g, 1000, amp) for m in ("resnet50", "se_resnet50")]
        cases.append(train_case("se_resnet50", *args, "aten", g, 1000, amp))  # without the kernels
        return cases + [train_case(m, *args, "-", g, 1000, amp) for m in timm]

    comps = [
        Comparison(
            f"SE overhead {g}",
            "se_resnet50 (fast)",
            "resnet50 (fast)",
            1.05,
            row=f"{train_row}: SE-ResNet-50 ÷ ResNet-50 (time)",
            setting=st,
        )
    ]
    comps.append(
        Comparison(
            f"native kernels ÷ ATen {g}",
            "se_resnet50 (fast)",
            "se_resnet50 (aten)",
            row=f"{train_row}: SE-ResNet-50 native kernels ÷ ATen only (time)",
            setting=st,
        )
    )
    if timm:
        comps += [
            Comparison(
                f"ours ÷ timm seresnet50 throughput {g}",
                "se_resnet50 (fast)",
                "timm:seresnet50 (-)",
                1.3,
                ">=",
                True,
                row=f"{train_row}: ours ÷ timm seresnet50 (throughput)",
                setting=st,
            ),
            _timm_overhead(g, train_row, st),
        ]
    return Group(g, train, comps, z.train_rounds, z.steps)


def _settings_infer(z: SettingsSizes, amp: str, layout: str, st: str, timm: list[str]) -> Group:
    """Batch-1 inference: eager, BN-folded and optimize_for_inference, and timm's pair."""
    infer_row = f"{z.size}px inference b{z.infer_batch}"
    g = f"infer b{z.infer_batch} {z.size} {st}"

    def infer(amp=amp, layout=layout, g=g) -> list[Case]:
        args = (z.infer_batch, z.size, layout)
        cases = [
            infer_case("resnet50", *args, "fast", "eager", g, amp),
            infer_case("se_resnet50", *args, "fast", "eager", g, amp),
            infer_case("resnet50", *args, "fast", "optimized", g, amp),
            infer_case("se_resnet50", *args, "fast", "optimized", g, amp),
        ]
        cases += [infer_case(m, *args, "-", "eager", g, amp) for m in timm]
        if timm and amp == "bf16":  # timm without autocast: the whole model cast to bf16
            cases.append(infer_case("timm:seresnet50", *args, "-", "cast", g, amp))
        return cases

    opt = "se_resnet50 [optimized] (fast)"
    comps = [
        Comparison(
            f"SE overhead {g}",
            "se_resnet50 (fast)",
            "resnet50 (fast)",
            1.02,
            row=f"{infer_row}: SE-ResNet-50 ÷ ResNet-50 (time)",
            setting=st,
        ),
        Comparison(
            f"SE overhead {g} [optimized]",
            opt,
            "resnet50 [optimized] (fast)",
            row=f"{infer_row}: optimize_for_inference SE ÷ plain (time)",
            setting=st,
        ),
    ]
    if timm:
        comps += [
            Comparison(
                f"ours ÷ timm seresnet50 latency {g}",
                "se_resnet50 (fast)",
                "timm:seresnet50 (-)",
                0.80,
                row=f"{infer_row}: ours ÷ timm seresnet50 (time)",
                setting=st,
            ),
            Comparison(
                f"optimize_for_inference ÷ timm seresnet50 latency {g}",
                opt,
                "timm:seresnet50 (-)",
                0.80,
                row=f"{infer_row}: optimize_for_inference ÷ timm seresnet50 (time)",
                setting=st,
            ),
            _timm_overhead(g, infer_row, st),
        ]
        if amp == "bf16":
            comps.append(
                Comparison(
                    f"optimize_for_inference ÷ timm seresnet50 cast to bf16, latency {g}",
                    opt,
                    "timm:seresnet50 [cast] (-)",
                    row=f"{infer_row}: optimize_for_inference ÷ timm seresnet50 .to(bf16) (time)",
                    setting=st,
                )
            )
    return Group(g, infer, comps, z.rounds, z.infer_steps)


def _timm(o: SuiteOptions) -> list[str]:
    return ["timm:resnet50", "timm:seresnet50"] if o.timm else []


SUITES = ("quick", "settings", "inference", "train224", "cifar", "full")
# the two settings the targets name (fp32 NCHW, bf16 channels_last), at sizes that take seconds
QUICK_SIZES = SettingsSizes(4, 16, 2, 32, 1, 2, 1, 2, 1, (SETTINGS[0], SETTINGS[3]))


def build_suite(name: str, o: SuiteOptions) -> list[Group]:
    """The groups of suite ``name`` (see ``SUITES``); ``quick`` is ``settings`` at tiny sizes.

    ``settings``: fp32/bf16 × NCHW/channels_last for CIFAR training, 224 px training and batch-1
    inference (the issue-12 targets). ``inference``/``train224``/``cifar``/``full``: issue 7's
    groups (float32; inference-optimised and compiled cases, batch 32, the data-included loop).
    """
    if name == "quick":
        return _settings_groups(o, QUICK_SIZES)
    if name == "settings":
        return _settings_groups(o, SettingsSizes())
    if name == "inference":
        b1 = _imagenet_groups(o, 224, (1,), (), ("nchw", "cl"), 5, 3, 1)
        return b1 + _imagenet_groups(o, 224, (32,), (), ("nchw",), 3, 1, 1, fused=False, full=False)
    if name == "train224":
        b16 = _train_groups(o, 224, (16,), ("nchw", "cl"), 3, 1, _timm(o), True)
        return b16 + _train_groups(o, 224, (32,), ("nchw",), 2, 1, _timm(o), False)
    if name == "cifar":
        return _cifar_groups(o, 128, ("nchw", "cl"), 5, 2)
    if name == "full":
        return build_suite("inference", o) + build_suite("train224", o) + build_suite("cifar", o)
    raise ValueError(f"unknown benchmark suite {name!r}; choose one of {', '.join(SUITES)}")
