"""Ablation grids like the paper's Sec. 6 (Tables 10–16): variants × seeds, each an ordinary run.

A grid is the base SE network with every combination of the ``vary`` options (``reduction``,
``gate``, ``squeeze``, ``integration``, ``se_stages``, ``se_bias``, ...), optionally plus the plain
baseline and NoSqueeze (``squeeze="none"``), each trained with ``seeds`` seeds. Every run is an
ordinary ``senet.train.train`` run in its own directory ``out/<variant>__s<seed>/``:

- a finished run (``summary.json`` present) is skipped, an interrupted one resumed (``resume=True``);
- several workers (processes, machines on a shared filesystem, GPUs) can work through one grid:
  a run is taken by creating ``out/.claims/<run>.claim`` with ``O_CREAT|O_EXCL`` (pid, host, time);
  the holder refreshes its mtime every ``heartbeat`` seconds, and a claim is stale — free to take —
  when its process is gone (same host) or it has not been refreshed for ``stale_after`` seconds;
- the table (Markdown + CSV) is written from the per-seed ``summary.json`` files: top-1/top-5
  error mean ± std over seeds (sample std, n−1), params, MACs and training images/s.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from senet.utils.io import atomic_write_json, atomic_write_text

Runner = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Variant:
    """One row of an ablation table: a network name and its options."""

    name: str  # "reduction=4,gate=relu", "baseline", "nosqueeze"
    model: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def slug(self) -> str:
        """File-system-safe form of ``name`` (``reduction-4_gate-relu``)."""
        s = self.name.replace("=", "-").replace(",", "_").replace("+", "p")
        return re.sub(r"[^A-Za-z0-9._-]", "", s) or "variant"


@dataclass(frozen=True)
class Run:
    variant: Variant
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.variant.slug}__s{self.seed}"


def parse_value(text: str) -> Any:
    """``4`` → 4, ``0.5`` → 0.5, ``true`` → True, ``none`` → None, ``1+2`` → (1, 2), else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if "+" in low:
        return tuple(parse_value(p) for p in low.split("+"))
    for kind in (int, float):
        try:
            return kind(low)
        except ValueError:
            pass
    return text.strip()


def parse_vary(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["reduction=4,16", "gate=sigmoid,relu"]`` → ``{"reduction": [4, 16], "gate": [...]}``."""
    vary: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ValueError(
                f"--vary {item!r} must look like KEY=V1,V2 (e.g. reduction=4,16; se_stages=1,2,1+2+3)"
            )
        if key in vary:
            raise ValueError(f"--vary names {key!r} twice; give all its values in one --vary")
        vary[key] = [parse_value(v) for v in values.split(",") if v.strip()]
    return vary


def _fmt(v: Any) -> str:
    if isinstance(v, tuple | list):
        return "+".join(_fmt(x) for x in v)
    return str(v).lower() if isinstance(v, bool) else str(v)


def build_variants(
    model: str,
    vary: Mapping[str, Sequence[Any]],
    baseline: bool = False,
    nosqueeze: bool = False,
    base_options: Mapping[str, Any] | None = None,
) -> list[Variant]:
    """The rows of the grid; every option is checked by building each variant once (no training)."""
    from senet.models.registry import build_model, get_entry

    entry = get_entry(model)
    if not entry.has_se:
        raise ValueError(
            f"{model} has no SE blocks; give the SE network (e.g. cifar_se_resnet20) — "
            "--baseline adds its plain counterpart"
        )
    base = dict(base_options or {})
    variants = []
    keys = list(vary)
    for combo in itertools.product(*(vary[k] for k in keys)) if keys else [()]:
        opts = dict(zip(keys, combo))
        name = ",".join(f"{k}={_fmt(v)}" for k, v in opts.items()) or "se"
        variants.append(Variant(name, model, tuple(opts.items())))
    if nosqueeze and not any(dict(v.options).get("squeeze") == "none" for v in variants):
        variants.append(Variant("nosqueeze", model, (("squeeze", "none"),)))
    if baseline:
        if entry.baseline is None:
            raise ValueError(f"{model} has no registered plain baseline; drop --baseline")
        variants.append(Variant("baseline", entry.baseline, ()))
    for v in variants:  # fail before any training on a bad option
        se_base = base if get_entry(v.model).has_se else _plain_options(base)
        build_model(v.model, **{**se_base, **dict(v.options)})
    return variants


def _plain_options(options: Mapping[str, Any]) -> dict[str, Any]:
    from senet.models.registry import SE_OPTIONS

    return {k: v for k, v in options.items() if k not in SE_OPTIONS}


@dataclass
class AblationGrid:
    """Variants × seeds, the recipe they share and where the runs go."""

    variants: list[Variant]
    seeds: Sequence[int]
    out: Path
    recipe: str = "cifar"
    #: TrainConfig options shared by all runs
    overrides: dict[str, Any] = field(default_factory=dict)

    def runs(self) -> list[Run]:
        """Seed-major order: a first complete pass over the variants comes before the second seed."""
        return [Run(v, s) for s in self.seeds for v in self.variants]

    def run_dir(self, run: Run) -> Path:
        return Path(self.out) / run.run_id

    def run_config(self, run: Run) -> dict[str, Any]:
        """The ``get_recipe`` overrides of one run (model, options, seed, out, resume)."""
        from senet.models.registry import get_entry
        from senet.train.recipes import RECIPES

        recipe_opts = dict(RECIPES.get(self.recipe, {}).get("model_options") or {})
        base = {**recipe_opts, **dict(self.overrides.get("model_options") or {})}
        if not get_entry(run.variant.model).has_se:
            base = _plain_options(base)
        return {
            **self.overrides,
            "model": run.variant.model,
            "model_options": {**base, **dict(run.variant.options)},
            "seed": run.seed,
            "out": str(self.run_dir(run)),
            "resume": True,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "overrides": self.overrides,
            "seeds": list(self.seeds),
            "variants": [
                {"name": v.name, "model": v.model, "options": dict(v.options)}
                for v in self.variants
            ],
        }


def train_runner(recipe: str) -> Runner:
    """The default runner: ``senet.train.train(get_recipe(recipe, **overrides))``."""

    def run(overrides: dict[str, Any]) -> dict[str, Any]:
        from senet.train import get_recipe, train

        return train(get_recipe(recipe, **overrides))

    return run


# --------------------------------------------------------------------------------------------
# Claims: one worker per run
# --------------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim_path(grid: AblationGrid, run: Run) -> Path:
    return Path(grid.out) / ".claims" / f"{run.run_id}.claim"


def claim_is_stale(path: Path, stale_after: float) -> bool:
    """A claim is stale when its process is gone (same host) or it was not refreshed in time."""
    try:
        info = json.loads(path.read_text())
        age = time.time() - path.stat().st_mtime
    except (OSError, ValueError):
        return False  # vanished or half-written: let the next look decide
    if info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1))):
        return True
    return age > stale_after


def try_claim(path: Path, stale_after: float = 600.0) -> bool:
    """Create the claim file atomically; take over a stale one under a short steal lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps(
        {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
    ).encode()
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not claim_is_stale(path, stale_after):
                return False
            lock = path.with_suffix(".steal")
            try:  # one stealer at a time, or two could each delete the other's fresh claim
                lfd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                with suppress(OSError):
                    if time.time() - lock.stat().st_mtime > 60:
                        lock.unlink()
                return False
            try:
                if claim_is_stale(path, stale_after):
                    with suppress(OSError):
                        path.unlink()
            finally:
                os.close(lfd)
                with suppress(OSError):
                    lock.unlink()
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        return True
    return False


@contextmanager
def holding_claim(path: Path, heartbeat: float = 30.0) -> Iterator[None]:
    """Refresh the claim's mtime while the body runs; remove the claim afterwards (even on error)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat):
            with suppress(OSError):
                os.utime(path)

    t = threading.Thread(target=beat, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        with suppress(OSError):
            path.unlink()


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------
def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / "summary.json").is_file()


def failure(run_dir: Path) -> dict[str, Any] | None:
    """The recorded failure of a run (``failed.json``: the error of its last attempt), if any."""
    path = Path(run_dir) / "failed.json"
    return json.loads(path.read_text()) if path.is_file() else None


def run_grid(
    grid: AblationGrid,
    runner: Runner | None = None,
    stale_after: float = 600.0,
    heartbeat: float = 30.0,
    retry_failed: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Work through the grid as one worker; returns counts of runs by outcome.

    A run that raises (e.g. a diverging loss) is recorded in ``<run>/failed.json`` and the grid
    goes on; failed runs are not retried unless ``retry_failed``. A run that comes back
    unfinished (a signal, ``stop_after_epochs``) stops this worker (``interrupted``): it stays
    resumable and its claim is released.
    """
    runner = runner or train_runner(grid.recipe)
    Path(grid.out).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(grid.out) / "grid.json", grid.describe())
    counts = {
        "trained": 0,
        "finished_before": 0,
        "taken_by_others": 0,
        "interrupted": 0,
        "failed": 0,
    }
    runs = grid.runs()
    for i, run in enumerate(runs, 1):
        run_dir = grid.run_dir(run)
        if is_finished(run_dir):
            counts["finished_before"] += 1
            continue
        if failure(run_dir) is not None and not retry_failed:
            counts["failed"] += 1
            continue
        claim = _claim_path(grid, run)
        if not try_claim(claim, stale_after):
            counts["taken_by_others"] += 1
            continue
        with holding_claim(claim, heartbeat):
            if is_finished(run_dir):  # finished by another worker between our check and claim
                counts["finished_before"] += 1
                continue
            log(f"[{i}/{len(runs)}] {run.run_id}: training ({run_dir})")
            try:
                result = runner(grid.run_config(run))
            except Exception as err:  # one bad variant must not stop the grid
                atomic_write_json(
                    run_dir / "failed.json",
                    {"error": f"{type(err).__name__}: {err}", "time": time.time()},
                )
                log(
                    f"{run.run_id} failed: {type(err).__name__}: {err} (recorded in {run_dir / 'failed.json'})"
                )
                counts["failed"] += 1
                continue
        if not is_finished(run_dir):
            counts["interrupted"] += 1
            log(
                f"{run.run_id} stopped ({result.get('status', 'unfinished')}); re-run the grid to resume it"
            )
            break
        with suppress(OSError):
            (run_dir / "failed.json").unlink()
        counts["trained"] += 1
    return counts


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------
def _mean_std(xs: Sequence[float]) -> tuple[float | None, float | None]:
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def collect_results(
    grid: AblationGrid, input_size: int | None = None
) -> tuple[list[dict], list[dict]]:
    """(rows per variant, rows per run) from the finished runs' ``summary.json`` files."""
    from senet.complexity import count
    from senet.models.registry import build_model, get_entry

    per_run, rows = [], []
    for v in grid.variants:
        runs = [Run(v, s) for s in grid.seeds]
        done = []
        failed = 0
        for r in runs:
            path = grid.run_dir(r) / "summary.json"
            if not path.is_file():
                failed += failure(grid.run_dir(r)) is not None
                continue
            s = json.loads(path.read_text())
            rec = {
                "variant": v.name, "seed": r.seed, "top1_err": s.get("val_top1_err"),
                "top5_err": s.get("val_top5_err"), "params": s.get("params"),
                "images_per_s": s.get("mean_images_per_s"), "epochs": s.get("epochs"),
                "train_time_s": s.get("train_time_s"), "run_dir": str(grid.run_dir(r)),
            }  # fmt: skip
            done.append(rec)
            per_run.append(rec)
        from senet.train import get_recipe

        cfg = get_recipe(grid.recipe, **grid.run_config(runs[0]))
        opts = dict(cfg.model_options)
        size = input_size or cfg.input_size or get_entry(v.model).input_size
        in_chans = opts.get("in_chans")
        model = build_model(
            v.model, num_classes=cfg.num_classes or get_entry(v.model).num_classes, **opts
        )
        c = count(model, size, in_chans)
        t1, t1s = _mean_std([d["top1_err"] for d in done])
        t5, t5s = _mean_std([d["top5_err"] for d in done])
        ips, _ = _mean_std([d["images_per_s"] for d in done])
        rows.append({
            "variant": v.name, "model": v.model, **{k: _fmt(x) for k, x in v.options},
            "seeds_done": len(done), "seeds": len(runs), "seeds_failed": failed,
            "top1_err": t1, "top1_err_std": t1s, "top5_err": t5, "top5_err_std": t5s,
            "params": c.params, "macs": c.macs, "images_per_s": ips,
        })  # fmt: skip
    return rows, per_run


def _pm(m: float | None, s: float | None) -> str:
    if m is None:
        return "–"
    return f"{m:.2f} ± {s:.2f}" if s is not None else f"{m:.2f}"


def markdown_table(rows: Sequence[dict], title: str = "") -> str:
    """The paper's table layout: variant, top-1 err, top-5 err, params, MACs, images/s."""
    lines = [f"### {title}", ""] if title else []
    lines += [
        "| variant | model | top-1 err (%) | top-5 err (%) | params | MMACs | train img/s | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ips = "–" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}"
        failed = f" ({r['seeds_failed']} failed)" if r.get("seeds_failed") else ""
        lines.append(
            f"| {r['variant']} | {r['model']} | {_pm(r['top1_err'], r['top1_err_std'])} | "
            f"{_pm(r['top5_err'], r['top5_err_std'])} | {r['params']:,} | {r['macs'] / 1e6:.3f} | "
            f"{ips} | {r['seeds_done']}/{r['seeds']}{failed} |"
        )
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[dict]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    return buf.getvalue()


def write_table(
    grid: AblationGrid, input_size: int | None = None, plot: bool = True
) -> dict[str, Path]:
    """Write ``table.md``, ``table.csv``, ``runs.csv`` and (for a reduction sweep) ``error_vs_params.png``."""
    rows, per_run = collect_results(grid, input_size)
    out = Path(grid.out)
    title = f"{grid.variants[0].model}: {grid.recipe} recipe, {len(grid.seeds)} seed(s)"
    paths = {
        "table.md": atomic_write_text(out / "table.md", markdown_table(rows, title)),
        "table.csv": atomic_write_text(out / "table.csv", csv_text(rows)),
        "runs.csv": atomic_write_text(out / "runs.csv", csv_text(per_run)),
    }
    sweep = [
        r
        for r in rows
        if r["top1_err"] is not None and ("reduction" in r or r["variant"] == "baseline")
    ]
    if plot and any("reduction" in r for r in sweep):
        from senet.analysis.plots import plot_error_vs_params

        paths["error_vs_params.png"] = plot_error_vs_params(
            sweep, out / "error_vs_params.png", f"{title}: top-1 error vs. params"
        )
    return paths
