"""Manifest schema and split assignment: no performer in two folds, deterministic, roles."""

from __future__ import annotations

import dataclasses

import pytest

from crescendai.data.manifest import ManifestError, ManifestRecord, read_manifest, write_manifest
from crescendai.data.splits import SplitError, assign_splits


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


def _pp_records():
    """A PercePiano-like work: 6 takes × eight 8-bar segments, plus 16-bar segments over bars 8–24
    and 40–56 (upstream numbers them on their own), and Score/Score2 deadpan takes sharing an id."""
    recs = []
    for player in ["1", "2", "3", "4", "Score", "Score2"]:
        perf = "pp:W:Score" if player.startswith("Score") else f"pp:W:{player}"
        segs = [(f"8bars_{j}", [(j - 1) * 8, j * 8]) for j in range(1, 9)] + [("16bars_1", [8, 24]), ("16bars_2", [40, 56])]
        for seg, span in segs:
            recs.append(ManifestRecord(
                path=f"a/W_{seg}_{player}.flac", sha1="0" * 40, duration_sec=3.0, sample_rate=22050,
                performer_id=player, piece_id="W", segment_id=seg, split="train", source="pp", license="MIT",
                performance_id=perf, labels=[0.5] * 19, extra={"span_bars": span}))
    return recs


def test_passage_split_keeps_shared_bars_together_and_spreads_a_take():
    out = assign_splits(_pp_records(), "supervised", n_folds=3, test_fraction=0.2, group_by="passage", seed=0)
    where = {r.path: (r.split, r.fold) for r in out}
    for player in ["1", "2", "3", "4", "Score", "Score2"]:
        # the 16-bar segment over bars 8-24 shares audio with 8-bar segments 2 and 3 of the take
        assert where[f"a/W_16bars_1_{player}.flac"] == where[f"a/W_8bars_2_{player}.flac"] == where[f"a/W_8bars_3_{player}.flac"]
        assert where[f"a/W_16bars_2_{player}.flac"] == where[f"a/W_8bars_6_{player}.flac"] == where[f"a/W_8bars_7_{player}.flac"]
    for seg in ["8bars_1", "8bars_4", "8bars_8"]:  # every rendition of the same bars together
        assert len({where[f"a/W_{seg}_{p}.flac"] for p in ["1", "2", "3", "4", "Score", "Score2"]}) == 1
    assert len({where[f"a/W_{s}_1.flac"] for s in ["8bars_1", "8bars_4", "8bars_5", "8bars_8"]}) > 1  # a take spreads
    # without spans the take cannot be cut: every passage joins through the shared performance
    bare = [dataclasses.replace(r, extra={}) for r in _pp_records()]
    with pytest.raises(SplitError, match="passage"):
        assign_splits(bare, "supervised", n_folds=3, test_fraction=0.2, group_by="passage", seed=0)


def test_passage_split_keeps_repeated_music_together():
    def where(recs, seed):
        out = assign_splits(recs, "supervised", n_folds=3, test_fraction=0.2, group_by="passage", seed=seed)
        return {r.path: (r.split, r.fold) for r in out}

    plain = _pp_records()
    repeated = [dataclasses.replace(r, extra={**r.extra, "repeats_bars": [[0, 8]]}) if r.segment_id == "8bars_8"
                else r for r in plain]  # bars 56-64 repeat bars 0-8 (da capo)
    seeds = range(6)
    assert all(where(repeated, k)["a/W_8bars_8_1.flac"] == where(repeated, k)["a/W_8bars_1_3.flac"] for k in seeds)
    assert any(where(plain, k)["a/W_8bars_8_1.flac"] != where(plain, k)["a/W_8bars_1_3.flac"] for k in seeds)
