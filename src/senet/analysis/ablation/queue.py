"""Working through an ablation grid: one worker per run (claim files), resume, failures.

- a finished run (``summary.json`` present) is skipped, an interrupted one resumed (``resume=True``);
- several workers (processes, machines on a shared filesystem, GPUs) can work through one grid:
  a run is taken by creating ``out/.claims/<run>.claim`` with ``O_CREAT|O_EXCL`` (pid, host, time);
  the holder refreshes its mtime every ``heartbeat`` seconds, and a claim is stale — free to take —
  when its process is gone (same host) or it has not been refreshed for ``stale_after`` seconds;
- a run that raises is recorded in ``<run>/failed.json`` and the grid goes on.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

from senet.analysis.ablation.grid import AblationGrid, Run
from senet.train import get_recipe, train
from senet.utils.io import atomic_write_json

Runner = Callable[[dict[str, Any]], dict[str, Any]]
RunState = Literal["finished", "failed", "todo"]


def train_runner(recipe: str) -> Runner:
    """The default runner: ``senet.train.train(get_recipe(recipe, **overrides))``."""

    def run(overrides: dict[str, Any]) -> dict[str, Any]:
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


def claim_path(grid: AblationGrid, run: Run) -> Path:
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


def run_state(run_dir: Path) -> RunState:
    """``finished``, ``failed`` (recorded, not retried by default) or ``todo``."""
    if is_finished(run_dir):
        return "finished"
    return "failed" if failure(run_dir) is not None else "todo"


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
    counts = dict.fromkeys(
        ("trained", "finished_before", "taken_by_others", "interrupted", "failed"), 0
    )
    runs = grid.runs()
    for i, run in enumerate(runs, 1):
        run_dir = grid.run_dir(run)
        if is_finished(run_dir):
            counts["finished_before"] += 1
            continue
        if failure(run_dir) is not None and not retry_failed:
            counts["failed"] += 1
            continue
        claim = claim_path(grid, run)
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
                error = f"{type(err).__name__}: {err}"
                atomic_write_json(run_dir / "failed.json", {"error": error, "time": time.time()})
                log(f"{run.run_id} failed: {error} (recorded in {run_dir / 'failed.json'})")
                counts["failed"] += 1
                continue
        if not is_finished(run_dir):
            counts["interrupted"] += 1
            status = result.get("status", "unfinished")
            log(f"{run.run_id} stopped ({status}); re-run the grid to resume it")
            break
        with suppress(OSError):
            (run_dir / "failed.json").unlink()
        counts["trained"] += 1
    return counts
