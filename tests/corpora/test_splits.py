"""Manifest schema and split assignment: no performer in two folds, deterministic, roles."""

from __future__ import annotations

import dataclasses

import pytest

from crescendai.corpora.manifest import ManifestError, ManifestRecord, read_manifest, write_manifest
from crescendai.corpora.splits import SplitError, assign_splits


def _rec(i, performer, piece="p", split="train"):
    return ManifestRecord(path=f"a/{i}.flac", sha1="0" * 40, duration_sec=3.0, sample_rate=22050,
                          performer_id=performer, piece_id=piece, segment_id=str(i), split=split,
                          source="t", license="MIT", labels=[0.5] * 19)


def _records():
    return [_rec(i, f"pl{i % 9}", piece=f"w{i % 5}") for i in range(90)]


def test_performer_folds_and_test():
    out = assign_splits(_records(), "supervised", n_folds=4, test_fraction=0.2, seed=1)
    where: dict[str, set] = {}
    for r in out:
        where.setdefault(r.performer_id, set()).add((r.split, r.fold))
    assert all(len(v) == 1 for v in where.values())
    assert {f for r in out for f in [r.fold] if f is not None} == {0, 1, 2, 3}
    assert 0.2 <= sum(r.split == "test" for r in out) / len(out) < 0.45
    again = assign_splits(list(reversed(_records())), "supervised", n_folds=4, test_fraction=0.2, seed=1)
    assert {r.path: (r.split, r.fold) for r in out} == {r.path: (r.split, r.fold) for r in again}


def test_groups_sharing_a_performance_are_merged():
    recs = _records()
    recs = [dataclasses.replace(r, performance_id="shared") if r.performer_id in ("pl1", "pl2") else r
            for r in recs]
    out = assign_splits(recs, "supervised", n_folds=4, test_fraction=0.2, seed=3)
    assert len({(r.split, r.fold) for r in out if r.performer_id in ("pl1", "pl2")}) == 1


def test_piece_level_option_and_roles():
    out = assign_splits(_records(), "supervised", n_folds=3, test_fraction=0.2, group_by="piece", seed=0)
    assert all(len({(r.split, r.fold) for r in out if r.piece_id == w}) == 1 for w in {r.piece_id for r in out})
    assert {r.split for r in assign_splits(_records(), "ssl")} == {"ssl"}
    assert {r.fold for r in assign_splits(_records(), "ood")} == {None}
    with pytest.raises(SplitError, match="n_folds"):
        assign_splits(_records()[:3], "supervised", n_folds=4)


def test_schema_validates_on_write_and_read(tmp_path):
    recs = assign_splits(_records()[:10], "ssl")
    write_manifest(tmp_path / "m.jsonl", recs)
    assert read_manifest(tmp_path / "m.jsonl") == recs
    with pytest.raises(ManifestError, match="split"):
        dataclasses.replace(recs[0], split="validation")
    with pytest.raises(ManifestError, match="augmented"):
        dataclasses.replace(recs[0], split="test", augmented=True)
    with pytest.raises(ManifestError, match="label"):
        dataclasses.replace(recs[0], labels=[2.0] * 19)
    (tmp_path / "bad.jsonl").write_text('{"path": "x"}\n')
    with pytest.raises(ManifestError, match="bad.jsonl:1"):
        read_manifest(tmp_path / "bad.jsonl")
    with pytest.raises(ManifestError, match="duplicate path"):
        write_manifest(tmp_path / "d.jsonl", [recs[0], recs[0]])
