"""Atomic writes: the old file survives a failed write; a new file gets ordinary permissions."""

import os

import pytest

from senet.utils.io import atomic_write, atomic_write_json, atomic_write_text


def test_failed_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "ckpt.bin"
    atomic_write_text(target, "good")

    def crash(path):
        path.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.bin"]


def test_written_file_has_umask_permissions_and_content(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "sub" / "m.json", {"a": (1, 2)})
    finally:
        os.umask(old)
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ]\n}\n'
    assert (path.stat().st_mode & 0o777) == 0o644
