"""Dedup: planted duplicates are found with the right kind and offset; unrelated items and another
performer's take of the same piece are not; the leakage rules fail listing the offending pairs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from crescendai.core.files import sha1_file
from crescendai.data.dedup import (
    Item,
    LeakageError,
    Pair,
    check_leakage,
    find_leakage,
    find_pairs,
    precision_recall,
    read_pairs,
    span_overlap_pairs,
    write_pairs,
)
from crescendai.data.fingerprint import fingerprint_file

sys.path.insert(0, str(Path(__file__).parent))


@pytest.mark.slow
def test_planted_set_precision_recall(tmp_path, capsys):
    import dedup_planted

    paths, truth, info = dedup_planted.build(tmp_path, seed=0, long_sec=180.0)
    names = [p.name for p in paths]
    fps = [fingerprint_file(p) for p in paths]
    pairs = find_pairs(names, fps, [sha1_file(p) for p in paths], match_threshold=0.8, min_overlap_sec=5.0)
    pr = precision_recall([(p.a, p.b) for p in pairs], truth)
    with capsys.disabled():
        print(f"\nplanted dedup: {pr}")
    assert pr["precision"] == 1.0 and pr["recall"] == 1.0
    kinds = {tuple(sorted((p.a, p.b))): p for p in pairs}
    for key, kind in info["kinds"].items():
        assert kinds[key].kind == kind, (key, kinds[key])
    ex = kinds[("excerpt.flac", "long.flac")]
    assert abs(ex.offset_sec - info["excerpt_offset_sec"]) < 0.1
    assert ("perf.flac", "perf_other_performer.flac") not in kinds


def _items():
    return [
        Item("a", "train", 0, "perf_a"), Item("b", "train", 1, "perf_b"), Item("c", "test", None, "perf_c"),
        Item("s", "ssl", None, "perf_s"), Item("o", "ood", None, "perf_o"),
    ]


def test_clean_split_passes():
    check_leakage(_items(), [Pair("a", "a2", "exact", 0.0, 1.0)])


@pytest.mark.parametrize("pair,rule", [
    (Pair("s", "c", "contained", 12.0, 0.95), "SSL"),
    (Pair("a", "c", "rerender", 0.0, 0.9), "spans"),
    (Pair("a", "b", "overlap", 3.0, 1.0), "spans"),
])
def test_leaks_fail_listing_pairs(pair, rule):
    with pytest.raises(LeakageError, match=rule) as err:
        check_leakage(_items(), [pair])
    assert f"{pair.a} ~ {pair.b}" in str(err.value)


def test_same_performance_in_two_folds_fails_without_pairs():
    items = [Item("x1", "train", 0, "perfX"), Item("x2", "train", 1, "perfX")]
    v = find_leakage(items, [])
    assert len(v) == 1 and "same performance perfX" in v[0].links[0]


def test_overlapping_segments_of_one_performance():
    pairs = span_overlap_pairs([("s1", "P", [0.0, 8.0]), ("s2", "P", [4.0, 12.0]), ("s3", "P", [12.0, 16.0])])
    assert [(p.a, p.b, p.kind) for p in pairs] == [("s1", "s2", "overlap")]
    items = [Item("s1", "train", 0), Item("s2", "test"), Item("s3", "train", 1)]
    with pytest.raises(LeakageError, match="s1 ~ s2"):
        check_leakage(items, pairs)


def test_augmented_item_rules():
    items = [Item("a", "train", 0, "p"), Item("a_aug", "train", 1, "p", augmented=True)]
    assert any("augmented" in v.rule for v in find_leakage(items, []))
    assert find_leakage([Item("a", "train", 0, "p"), Item("a_aug", "train", 0, "p", augmented=True)], []) == []


def test_pairs_round_trip(tmp_path):
    p = [Pair("a", "b", "contained", 1.25, 0.91, 20.0, 0.99, 0.9, 0.98)]
    write_pairs(tmp_path / "pairs.jsonl", p)
    assert read_pairs(tmp_path / "pairs.jsonl")[0].offset_sec == 1.25


def test_segments_of_one_performance_with_disjoint_spans_may_sit_in_two_folds():
    """A passage split puts other bars of the same take in other folds: different audio, no leak."""
    items = [Item("b1-8", "train", 0, "take", span=(0.0, 8.0)), Item("b9-16", "train", 1, "take", span=(8.0, 16.0))]
    assert find_leakage(items, []) == []
    items.append(Item("b1-16", "test", None, "take", span=(0.0, 16.0)))  # holds both: must join them
    assert len(find_leakage(items, [])) == 1
    unknown = [Item("b1-8", "train", 0, "take", span=(0.0, 8.0)), Item("?", "train", 1, "take")]
    assert len(find_leakage(unknown, [])) == 1  # an unknown span may overlap anything
