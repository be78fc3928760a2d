"""Download registered weights once into a cache, check their hash, work offline afterwards.

The cache is ``$SENET_HOME/weights/<model>/<tag>/<file name>`` (``SENET_HOME`` defaults to
``~/.cache/senet``). A download streams into a temporary file beside its destination, hashing as
it goes; only a file whose sha256 matches the entry's is renamed into place, so an interrupted or
corrupted download never leaves anything in the cache. ``SENET_OFFLINE=1`` forbids the network
(only cached files load); ``SENET_DOWNLOAD_TIMEOUT`` sets the socket timeout (seconds, default 30).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import torch
from safetensors import safe_open
from tqdm import tqdm

from senet.utils.io import atomic_path
from senet.weights.registry import Mirror, WeightsEntry


class WeightsUnavailableError(RuntimeError):
    """The weights are neither cached nor downloadable (offline, server down, ...)."""


def senet_home() -> Path:
    """senet's cache root: ``$SENET_HOME``, else ``~/.cache/senet``."""
    return Path(os.environ.get("SENET_HOME") or Path.home() / ".cache" / "senet").expanduser()


def entry_dir(entry: WeightsEntry) -> Path:
    """Where ``entry``'s file is cached."""
    return senet_home() / "weights" / entry.model / entry.tag


def file_name(url: str) -> str:
    """The file name part of a URL (``.../se_resnet50-ce0d4300.pth`` → ``se_resnet50-ce0d4300.pth``)."""
    name = Path(urlparse(url).path).name
    return name or "weights.bin"


def cached_file(entry: WeightsEntry) -> Path | None:
    """The cached copy of ``entry`` (any of its mirrors' files), or None."""
    folder = entry_dir(entry)
    for copy in entry.copies:
        path = folder / file_name(copy.url)
        if path.is_file():
            return path
    return None


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def offline() -> bool:
    return os.environ.get("SENET_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def fetch(entry: WeightsEntry, progress: bool = True) -> Path:
    """The local path of ``entry``'s file: from the cache, else downloaded (hash-checked) into it.

    Copies are tried in order (``entry.copies``); a copy whose hash differs raises at once and
    nothing is cached. Without network and cache, ``WeightsUnavailableError`` says how to convert a
    copy downloaded elsewhere.
    """
    path = cached_file(entry)
    if path is not None:
        return path
    folder = entry_dir(entry)
    if offline():
        raise WeightsUnavailableError(_unavailable(entry, "SENET_OFFLINE is set", folder))
    failures = []
    for copy in entry.copies:
        try:
            return _download(entry, copy, folder / file_name(copy.url), progress)
        except (urllib.error.URLError, OSError, ValueError) as err:
            if isinstance(err, HashMismatchError):
                raise
            reason = getattr(err, "reason", None) or err
            failures.append(f"{copy.url}: {reason}")
    _remove_empty(folder)
    raise WeightsUnavailableError(_unavailable(entry, "; ".join(failures), folder))


class HashMismatchError(ValueError):
    """A downloaded file is not the registered one."""


def _download(entry: WeightsEntry, copy: Mirror, dest: Path, progress: bool) -> Path:
    timeout = float(os.environ.get("SENET_DOWNLOAD_TIMEOUT", "30"))
    request = urllib.request.Request(copy.url, headers={"User-Agent": "senet"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, atomic_path(dest) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            digest = hashlib.sha256()
            bar = _progress_bar(total, dest.name, progress)
            with open(tmp, "wb") as out:
                while block := response.read(1 << 20):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
            bar.close()
            actual = digest.hexdigest()
            if copy.sha256 is not None and not actual.startswith(copy.sha256):
                raise HashMismatchError(
                    f"{copy.url} has sha256 {actual}, but weights {entry.name} are registered with "
                    f"{copy.sha256}: the file on the server is not the registered one (nothing was "
                    "cached); if the server is yours, re-register the entry with the new hash"
                )
            if copy.sha256 is None:
                _check_format(tmp, dest.name, copy.url)
    except BaseException:
        _remove_empty(dest.parent)
        raise
    return dest


def _check_format(tmp: Path, name: str, url: str) -> None:
    """A file registered without a hash must at least be a readable weights file."""
    try:
        if name.endswith(".safetensors"):
            with safe_open(str(tmp), framework="pt") as f:
                f.metadata()
        else:
            torch.load(tmp, map_location="cpu", weights_only=True)
    except Exception as err:
        raise HashMismatchError(
            f"{url} is not a readable weights file ({type(err).__name__}); nothing was cached"
        ) from err


def _progress_bar(total: int | None, name: str, enabled: bool) -> tqdm:
    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"downloading {name}",
        disable=None if enabled else True,
        file=sys.stderr,
        leave=False,
    )


def _remove_empty(folder: Path) -> None:
    """Remove ``folder`` and its parents up to the cache root while they are empty."""
    root = senet_home()
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _unavailable(entry: WeightsEntry, reason: str, folder: Path) -> str:
    local = f"{entry.model}_{entry.tag}.safetensors"
    use = (
        "pass it as pretrained=FILE"
        if entry.source == "senet"
        else f"run `senet convert FILE {local} --model {entry.model} --from {entry.source}` and "
        f"use pretrained='{local}'"
    )
    return (
        f"cannot download weights {entry.name} from {entry.url} ({reason}) and no copy is cached "
        f"in {folder}; with a copy of that file downloaded elsewhere, put it in that folder or {use}"
    )


def clear_cache(entry: WeightsEntry) -> list[Path]:
    """Delete ``entry``'s cached files; returns what was removed."""
    folder = entry_dir(entry)
    removed = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    if folder.is_dir():
        shutil.rmtree(folder)
        _remove_empty(folder.parent)
    return removed
