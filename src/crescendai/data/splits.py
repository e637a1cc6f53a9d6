"""Split assignment: performer-, piece- or passage-level K folds plus a fixed test set.

Supervised corpora: groups are shuffled with the seed; whole groups go to the test set until it holds
at least ``test_fraction`` of the items, the rest are dealt into ``n_folds`` folds balanced by item
count (largest group first into the smallest fold). ``split.group_by`` picks the groups:

- ``performer``: every item of a performer together (tests generalisation to unseen players);
- ``piece``: every item of a work together (unseen works; unbalanced when one work dominates);
- ``passage``: every rendition of the same bars of a work together — items of one work whose spans
  (``extra.span_bars`` / ``span_sec``, see :func:`crescendai.data.manifest.record_span`) overlap, so
  a 16-bar segment joins the 8-bar segments it contains, across players, and repeated music
  (``extra.repeats_bars``) joins its first occurrence (unseen passages; PercePiano's usual protocol).
  Items without a span group by piece + segment id.

Before dealing, groups holding items that may share audio
(:func:`crescendai.data.manifest.shared_audio_links`: one performance, overlapping or unknown spans)
are merged, so no audio sits in two folds.
Supervised non-test items get ``split="train"`` and ``fold=k``: fold ``k`` is the validation set of
CV round ``k``. SSL corpora are ``split="ssl"``, out-of-distribution corpora ``"ood"``, both fold None.
Deterministic from the seed and the set of records (input order does not matter).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np

from crescendai.core.errors import CrescendAIError
from crescendai.data.manifest import ManifestRecord, record_span, shared_audio_links

ROLES: tuple[str, ...] = ("supervised", "ssl", "ood")


class SplitError(CrescendAIError):
    """Splits cannot be assigned (e.g. fewer groups than folds); the message says what to change."""


GROUP_BY: tuple[str, ...] = ("performer", "piece", "passage")


def group_key(r: ManifestRecord, group_by: str) -> str:
    """The grouping key of a record before merging: its performer, piece, or piece + segment
    (passage), falling back to its performance when the id is unknown."""
    if group_by == "performer":
        return f"performer:{r.source}:{r.performer_id}" if r.performer_id else f"perf:{r.performance}"
    if group_by == "piece":
        return f"piece:{r.source}:{r.piece_id}" if r.piece_id else f"perf:{r.performance}"
    if group_by == "passage":
        return f"passage:{r.source}:{r.piece_id}:{r.segment_id}" if r.piece_id else f"perf:{r.performance}"
    raise SplitError(f"split.group_by must be one of {list(GROUP_BY)}, got {group_by!r}")


def group_links(records: list[ManifestRecord], group_by: str) -> list[tuple[int, int]]:
    """Index pairs whose groups must merge: items that may share audio and, for ``passage``, items of
    one work whose spans overlap (renditions of the same bars by any player)."""
    spans = [record_span(r) for r in records]
    links = [(i, j) for i, j, _ in shared_audio_links([r.performance for r in records], spans)]
    if group_by == "passage":  # the bars an item plays, and the earlier bars it repeats
        by_piece: dict[tuple[str, str], list[tuple[tuple[float, float], int]]] = defaultdict(list)
        for i, r in enumerate(records):
            if r.piece_id and spans[i] is not None:
                music = [spans[i], *(tuple(map(float, b)) for b in r.extra.get("repeats_bars", []))]
                by_piece[(r.source, r.piece_id)] += [(m, i) for m in music]
        for members in by_piece.values():
            members.sort()
            reach, last = -np.inf, -1
            for (start, end), i in members:  # sweep: an item joins the run whose furthest end it starts before
                if start < reach:
                    links.append((last, i))
                if end > reach:
                    reach, last = end, i
    return links


def assign_splits(
    records: list[ManifestRecord],
    role: str,
    *,
    n_folds: int = 4,
    test_fraction: float = 0.2,
    group_by: str = "performer",
    seed: int = 0,
) -> list[ManifestRecord]:
    """Return copies of ``records`` with ``split``/``fold`` set for ``role``.

    Args:
        records: one corpus's records (any split/fold; they are overwritten).
        role: "supervised", "ssl" or "ood".
        n_folds: K >= 2 (supervised only).
        test_fraction: share of items in the fixed test set, in [0, 0.9].
        group_by: "performer", "piece" or "passage".
        seed: the shuffling seed.

    Raises:
        SplitError: unknown role, or fewer groups than ``n_folds`` (+1 when a test set is asked for).
    """
    if role not in ROLES:
        raise SplitError(f"role {role!r} is not one of {list(ROLES)}")
    if role != "supervised":
        split = role
        return [dataclasses.replace(r, split=split, fold=None) for r in records]
    # groups merged along links: shared audio (e.g. PercePiano's Score/Score2 deadpan renditions of
    # one passage, a 16-bar segment and its 8-bar parts) never straddles folds
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    keys0 = [group_key(r, group_by) for r in records]
    for i, j in group_links(records, group_by):
        a, b = find(keys0[i]), find(keys0[j])
        if a != b:
            parent[a] = b
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[find(group_key(r, group_by))].append(i)
    keys = sorted(groups)
    need = n_folds + (1 if test_fraction > 0 else 0)
    if len(keys) < need:
        raise SplitError(
            f"{len(keys)} {group_by} group(s) cannot fill {n_folds} folds"
            f"{' and a test set' if test_fraction > 0 else ''}; lower split.n_folds or "
            f"split.test_fraction, or use another split.group_by ({', '.join(g for g in GROUP_BY if g != group_by)})"
        )
    rng = np.random.default_rng(seed)
    order = [keys[i] for i in rng.permutation(len(keys))]
    total = len(records)
    test: set[str] = set()
    n_test = 0
    for k in order:
        if n_test >= test_fraction * total or len(keys) - len(test) <= n_folds:
            break
        test.add(k)
        n_test += len(groups[k])
    rest = sorted((k for k in order if k not in test), key=lambda k: -len(groups[k]))  # stable: shuffled ties
    fold_size = [0] * n_folds
    fold_of: dict[str, int] = {}
    for k in rest:
        f = int(np.argmin(fold_size))
        fold_of[k] = f
        fold_size[f] += len(groups[k])
    out = list(records)
    for k, idx in groups.items():
        for i in idx:
            if k in test:
                out[i] = dataclasses.replace(records[i], split="test", fold=None)
            else:
                out[i] = dataclasses.replace(records[i], split="train", fold=fold_of[k])
    return out
