"""The run directory's lock: one trainer at a time in ``--out``.

``RunLock(out)`` holds ``out/train.lock`` while a process trains there: the file names the holder
(pid, host, start time) and the holder keeps an exclusive ``flock`` on it, which the kernel drops
when the process dies however it dies. A second trainer finds the flock taken and stops with one
line naming the holder; a lock file whose flock is free was left by a process that is gone (a
stale lock), so it is taken over with a message. Under DDP rank 0 holds the lock for the run.
On systems without ``fcntl`` the file is created exclusively and a dead pid on this host marks
it stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "train.lock"


class RunLockedError(RuntimeError):
    """Another live process trains in the run directory."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    since = holder.get("started")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since)) if since else ""
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}{when}"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text() or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class RunLock:
    """``with RunLock(out) as lock:`` — exclusive use of ``out`` (see the module docstring)."""

    def __init__(self, out: str | Path, note: Any = None) -> None:
        self.path = Path(out) / LOCK_NAME
        self.note = note or (lambda text: None)
        self._fd: int | None = None
        self._made_dir = False
        self.took_over: dict[str, Any] | None = None

    def acquire(self) -> RunLock:
        out = self.path.parent
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"--out {out} is a file; pass a directory for the run")
        self._made_dir = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(10):  # the file may be replaced between open and flock: retry
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not self._lock_fd(fd):
                os.close(fd)
                continue
            previous = _read(self.path)
            if previous and fcntl is None:
                self._refuse_if_live(previous, fd)
            if previous.get("pid") is not None:
                self.took_over = previous
                self.note(
                    f"note: took over the stale lock {self.path} of {_describe(previous)} "
                    "(that process is gone)"
                )
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
            os.fsync(fd)
            self._fd = fd
            return self
        raise RunLockedError(f"could not lock {self.path}: it kept changing; try again")

    def _lock_fd(self, fd: int) -> bool:
        """flock ``fd``; False when the path now names another file (retry), error when held."""
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(self.path)
                os.close(fd)
                raise RunLockedError(
                    f"{self.path.parent} is in use: {_describe(holder)} is training there "
                    f"({self.path}); wait for it to finish or stop it, or use another --out"
                ) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            same = False
        return same

    def _refuse_if_live(self, holder: dict[str, Any], fd: int) -> None:
        local = holder.get("host") == socket.gethostname()
        if not local or _pid_alive(int(holder.get("pid", -1))):
            os.close(fd)
            raise RunLockedError(
                f"{self.path.parent} is in use: {_describe(holder)} is training there "
                f"({self.path}); if that process is gone, delete the file"
            )

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        if self._made_dir:  # a run that failed before writing anything leaves no empty directory
            with contextlib.suppress(OSError):  # not empty: the run wrote something
                self.path.parent.rmdir()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
