"""Atomic writes: all or nothing."""

from __future__ import annotations

import os
import stat

import pytest

from crescendai.core.files import atomic_write, read_json, read_jsonl, write_json, write_jsonl


def test_atomic_write_replaces_only_on_success(tmp_path):
    p = tmp_path / "out.json"
    write_json(p, {"a": 1})
    with pytest.raises(RuntimeError), atomic_write(p) as f:
        f.write("half a fi")
        raise RuntimeError("interrupted")
    assert read_json(p) == {"a": 1}
    assert [q.name for q in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind


def test_file_mode_is_not_private(tmp_path):
    p = tmp_path / "report.txt"
    with atomic_write(p) as f:
        f.write("x")
    mode = stat.S_IMODE(os.stat(p).st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH


def test_jsonl_round_trip(tmp_path):
    rows = [{"i": i, "s": "x" * i} for i in range(3)]
    assert write_jsonl(tmp_path / "a" / "b.jsonl", rows) == 3
    assert read_jsonl(tmp_path / "a" / "b.jsonl") == rows
