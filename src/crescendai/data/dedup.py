"""Duplicate / overlap search over fingerprints, and the leakage rules every split must obey.

Search (:func:`find_pairs`) is two-step:

1. **Candidates by landmark voting (LSH).** Every item's 24-bit binary-chroma landmark keys
   (:func:`crescendai.data.fingerprint.hash_keys`) go into one table; two items sharing a key vote for the
   frame offset between them. Buckets larger than ``max_bucket`` (ubiquitous codes) are skipped. A pair
   whose best offset (±1 frame) collects ``min_votes`` votes and ``min_vote_ratio`` of the shorter
   item's keys is a candidate. Cost ~ the number of frames, not the number of pairs.
2. **Verification at that offset** (±2 frames): ``chroma`` = mean cosine of chroma frames over the
   overlap, ``onset`` = Pearson correlation of the onset envelopes (timing: high only for the *same
   performance*), ``timbre`` = Pearson correlation of the log-mel frames (high only for the *same
   signal*). ``score = (chroma + onset) / 2``; a pair is kept when ``score >= match_threshold``, the
   overlap lasts at least ``min(min_overlap_sec, 0.9 · shorter duration)``, and it is the same signal
   (timbre >= 0.97 and chroma >= 0.95) or has one performance's timing (onset >= 0.92) — on PercePiano
   renders, different players of one passage reach score 0.87 and onset 0.90, so score alone is not
   enough.

Kinds: ``exact`` (same bytes, or the same signal over both whole items), ``contained`` (the same
signal, the shorter item inside the longer at ``offset_sec``), ``rerender`` (the same performance with
another piano or channel: timing matches, timbre does not), ``overlap`` (two items share a stretch but
neither contains the other; also two segments of one performance whose ``span_sec`` overlap).
``offset_sec`` is where ``b`` starts inside ``a`` (negative: ``a`` starts inside ``b``).

Leakage (:func:`find_leakage` / :func:`check_leakage`): items are linked by any pair, equal sha1, or
possibly shared audio (one performance id with overlapping or unknown spans,
:func:`crescendai.data.manifest.shared_audio_links`); a linked group must not span two supervised folds, train and test, an
SSL item and a supervised item (every supervised fold is validation once), or hold an augmented item
next to a validation/test item. Dataloaders call :func:`check_leakage` through
``crescendai.data.window_cache.FeatureSet.check_leakage``.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from crescendai.core.errors import CrescendAIError
from crescendai.core.files import read_jsonl, write_jsonl
from crescendai.data.fingerprint import FP_FRAME_SEC, Fingerprint, fingerprint_file, hash_keys
from crescendai.data.manifest import record_span, shared_audio_links

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("exact", "contained", "rerender", "overlap")
SAME_SIGNAL_TIMBRE: float = 0.9
"""Log-mel correlation above which two aligned stretches are the same signal (not a re-render)."""
STRICT_SAME_SIGNAL: tuple[float, float] = (0.97, 0.95)
"""(timbre, chroma) at or above which a match is accepted as the same signal whatever its onset
correlation (a cut that is not frame-aligned lowers the onset correlation, not the spectra)."""
RERENDER_MIN_ONSET: float = 0.92
"""Otherwise the onset envelopes must correlate at least this much: on PercePiano, different players of
one passage reach 0.90 at most, renders of one performance 0.97."""


@dataclass(frozen=True)
class Pair:
    """A duplicate/overlap between items ``a`` and ``b`` (manifest paths)."""

    a: str
    b: str
    kind: str
    offset_sec: float
    score: float
    overlap_sec: float = 0.0
    chroma: float = 0.0
    onset: float = 0.0
    timbre: float = 0.0

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def write_pairs(path: str | os.PathLike[str], pairs: Iterable[Pair]) -> int:
    return write_jsonl(path, (p.to_dict() for p in pairs))


def read_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    return [Pair(**r) for r in read_jsonl(path)]


# ------------------------------------------------------------------------------------------
# candidates
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    a: int
    b: int
    offset: int
    """frames: frame ``t`` of ``b`` aligns with frame ``t + offset`` of ``a``."""
    votes: int
    ratio: float


def candidates(
    fps: Sequence[Fingerprint], *, max_bucket: int = 256, min_votes: int = 8, min_vote_ratio: float = 0.03
) -> list[Candidate]:
    """Landmark voting over all items (see module docstring); pairs ``a < b``."""
    keys, items, frames = [], [], []
    n_keys = np.zeros(len(fps), np.int64)
    for i, fp in enumerate(fps):
        k, f = hash_keys(fp.codes)
        keys.append(k)
        frames.append(f)
        items.append(np.full(k.size, i, np.int64))
        n_keys[i] = k.size
    if not keys:
        return []
    K, It, F = np.concatenate(keys), np.concatenate(items), np.concatenate(frames)
    order = np.argsort(K, kind="stable")
    K, It, F = K[order], It[order], F[order]
    bounds = np.flatnonzero(np.diff(K)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [K.size]])
    sizes = ends - starts
    max_t = max((fp.n_frames for fp in fps), default=1) + 1
    width = 2 * max_t + 1
    votes: list[np.ndarray] = []
    tri_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for s, e, n in zip(starts, ends, sizes, strict=True):
        if n < 2 or n > max_bucket:
            continue
        ii, ff = It[s:e], F[s:e]
        if ii[0] == ii[-1] and np.all(ii == ii[0]):
            continue
        if n not in tri_cache:
            tri_cache[n] = np.triu_indices(n, 1)
        j, k = tri_cache[n]
        a, b, fa, fb = ii[j], ii[k], ff[j], ff[k]
        m = a != b
        a, b, fa, fb = a[m], b[m], fa[m], fb[m]
        swap = a > b
        a, b = np.where(swap, b, a), np.where(swap, a, b)
        fa, fb = np.where(swap, fb, fa), np.where(swap, fa, fb)
        votes.append((a * len(fps) + b) * width + (fa - fb + max_t))
    if not votes:
        return []
    codes, counts = np.unique(np.concatenate(votes), return_counts=True)
    pair_id, off = codes // width, codes % width - max_t
    # smooth ±1 frame: add neighbours' counts (same pair)
    smooth = counts.copy()
    for d in (-1, 1):
        idx = np.searchsorted(codes, codes + d)
        idx_c = np.clip(idx, 0, codes.size - 1)
        hit = (idx < codes.size) & (codes[idx_c] == codes + d)
        smooth[hit] += counts[idx_c[hit]]
    out: list[Candidate] = []
    # best offset per pair
    order = np.lexsort((-smooth, pair_id))
    first = np.concatenate([[True], np.diff(pair_id[order]) != 0])
    for o in order[first]:
        pid = int(pair_id[o])
        a, b = divmod(pid, len(fps))
        v = int(smooth[o])
        ratio = v / max(1, min(n_keys[a], n_keys[b]))
        if v >= min_votes and ratio >= min_vote_ratio:
            out.append(Candidate(a, b, int(off[o]), v, float(ratio)))
    return out


# ------------------------------------------------------------------------------------------
# verification
# ------------------------------------------------------------------------------------------


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float64).ravel()
    y = y.astype(np.float64).ravel()
    x = x - x.mean()
    y = y - y.mean()
    d = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / d) if d > 1e-12 else 0.0


def align_scores(fa: Fingerprint, fb: Fingerprint, offset: int, search: int = 2) -> dict[str, float]:
    """Compare ``b`` placed at frame ``offset`` of ``a`` (refined within ±``search`` frames).

    Returns:
        dict with ``offset`` (frames), ``overlap_sec``, ``chroma``, ``onset``, ``timbre`` (each in
        [-1, 1]) and ``score = (chroma + onset) / 2``.
    """
    best: dict[str, float] | None = None
    for o in range(offset - search, offset + search + 1):
        t0, t1 = max(0, -o), min(fb.n_frames, fa.n_frames - o)
        if t1 - t0 < 4:
            continue
        sa, sb = slice(t0 + o, t1 + o), slice(t0, t1)
        onset = _corr(fa.onset[sa], fb.onset[sb])
        act = (fa.codes[sa] > 0) & (fb.codes[sb] > 0)
        chroma = float((fa.chroma[sa][act].astype(np.float32) * fb.chroma[sb][act]).sum(axis=1).mean()) \
            if act.any() else 0.0
        r = {"offset": float(o), "overlap_sec": (t1 - t0) * FP_FRAME_SEC, "chroma": chroma, "onset": onset,
             "score": 0.5 * (chroma + onset)}
        if best is None or r["score"] > best["score"]:
            best = r
    if best is None:
        return {"offset": float(offset), "overlap_sec": 0.0, "chroma": 0.0, "onset": 0.0, "timbre": 0.0,
                "score": 0.0}
    o = int(best["offset"])
    t0, t1 = max(0, -o), min(fb.n_frames, fa.n_frames - o)
    best["timbre"] = _corr(fa.mel[t0 + o : t1 + o], fb.mel[t0:t1])
    return best


def is_same_performance(s: dict[str, float]) -> bool:
    """The same signal (:data:`STRICT_SAME_SIGNAL`) or timing that only one performance has
    (:data:`RERENDER_MIN_ONSET`); different performers of one passage fail both."""
    same_signal = s["timbre"] >= STRICT_SAME_SIGNAL[0] and s["chroma"] >= STRICT_SAME_SIGNAL[1]
    return same_signal or s["onset"] >= RERENDER_MIN_ONSET


def classify(s: dict[str, float], dur_a: float, dur_b: float, exact_bytes: bool = False) -> str:
    """Kind of a verified match from its scores and the two durations (see module docstring)."""
    if exact_bytes:
        return "exact"
    shorter = min(dur_a, dur_b)
    covers = s["overlap_sec"] >= 0.9 * shorter - 2 * FP_FRAME_SEC
    same_signal = s["timbre"] >= SAME_SIGNAL_TIMBRE
    if covers and abs(dur_a - dur_b) <= 0.5 and abs(s["offset"]) * FP_FRAME_SEC <= 0.25:
        return "exact" if same_signal else "rerender"
    if covers:
        return "contained" if same_signal else "rerender"
    return "overlap"


def find_pairs(
    paths: Sequence[str],
    fps: Sequence[Fingerprint],
    sha1s: Sequence[str] | None = None,
    *,
    match_threshold: float = 0.8,
    min_overlap_sec: float = 5.0,
    max_bucket: int = 256,
    min_votes: int = 8,
) -> list[Pair]:
    """All duplicate/overlap pairs among items (``paths[i]`` ↔ ``fps[i]``).

    Args:
        paths: item ids (manifest paths).
        fps: their fingerprints.
        sha1s: their file hashes (equal hashes are ``exact`` without audio comparison).
        match_threshold: minimum ``score`` in [0, 1].
        min_overlap_sec: minimum overlap, lowered to 90 % of the shorter item when that is shorter.
    """
    pairs: dict[tuple[int, int], Pair] = {}
    if sha1s is not None:
        by_hash: dict[str, list[int]] = defaultdict(list)
        for i, h in enumerate(sha1s):
            by_hash[h].append(i)
        for idx in by_hash.values():
            for j in range(len(idx)):
                for k in range(j + 1, len(idx)):
                    a, b = idx[j], idx[k]
                    pairs[(a, b)] = Pair(paths[a], paths[b], "exact", 0.0, 1.0, fps[a].duration_sec,
                                         1.0, 1.0, 1.0)
    for c in candidates(fps, max_bucket=max_bucket, min_votes=min_votes):
        if (c.a, c.b) in pairs:
            continue
        fa, fb = fps[c.a], fps[c.b]
        s = align_scores(fa, fb, c.offset)
        need = min(min_overlap_sec, 0.9 * min(fa.duration_sec, fb.duration_sec))
        if s["score"] < match_threshold or s["overlap_sec"] < need or not is_same_performance(s):
            continue
        kind = classify(s, fa.duration_sec, fb.duration_sec)
        pairs[(c.a, c.b)] = Pair(paths[c.a], paths[c.b], kind, s["offset"] * FP_FRAME_SEC, s["score"],
                                 s["overlap_sec"], s["chroma"], s["onset"], s["timbre"])
    return [pairs[k] for k in sorted(pairs)]


def span_overlap_pairs(items: Sequence[tuple[str, str, Sequence[float] | None]]) -> list[Pair]:
    """Metadata overlaps: items (path, performance_id, span [start, end] or None) of one
    performance whose known spans intersect → ``overlap`` pairs (score 1; offset and overlap in the
    span's unit: seconds for ``span_sec``, bars for ``span_bars``)."""
    spans = [tuple(map(float, sp)) if sp is not None and len(sp) == 2 else None for _, _, sp in items]
    out = []
    for i, j, ov in shared_audio_links([perf for _, perf, _ in items], spans):
        if spans[i] is None or spans[j] is None:
            continue
        a, b = (i, j) if spans[i] <= spans[j] else (j, i)
        out.append(Pair(items[a][0], items[b][0], "overlap", spans[b][0] - spans[a][0], 1.0, float(ov)))
    return out


# ------------------------------------------------------------------------------------------
# leakage
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """What the leakage rules need to know about an item."""

    path: str
    split: str
    fold: int | None = None
    performance: str = ""
    augmented: bool = False
    sha1: str = ""
    span: tuple[float, float] | None = None

    @property
    def role(self) -> str:
        if self.split in ("ssl", "ood"):
            return self.split
        if self.split == "train" and self.fold is not None:
            return f"fold {self.fold}"
        return self.split


class FingerprintError(CrescendAIError):
    """Manifest items whose audio cannot be read; the message names every such file."""


class LeakageError(CrescendAIError):
    """A leakage rule is broken; ``violations`` lists each offending group with its linking pairs."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        lines = [f"{len(violations)} leakage violation(s):"]
        for v in violations[:50]:
            lines.append(f"- {v.rule}: " + "; ".join(v.links[:10]) + (" …" if len(v.links) > 10 else ""))
        if len(violations) > 50:
            lines.append(f"… and {len(violations) - 50} more (see data/dedup/report.md)")
        lines.append("Fix the splits (same performance → same fold), drop the duplicate, or exclude it "
                     "with corpora.exclude.")
        super().__init__("\n".join(lines))


@dataclass
class Violation:
    rule: str
    items: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


def items_from_records(records: Iterable) -> list[Item]:
    """Manifest records → :class:`Item` s."""
    return [Item(r.path, r.split, r.fold, r.performance, r.augmented, r.sha1, record_span(r)) for r in records]


def items_from_index(index) -> list[Item]:
    """A features ``index.csv`` DataFrame → one :class:`Item` per item."""
    first = index.drop_duplicates("item")
    out = []
    for row in first.itertuples(index=False):
        fold = row.fold
        fold = None if fold is None or (isinstance(fold, float) and np.isnan(fold)) or str(fold) == "<NA>" else int(fold)
        start, end = float(getattr(row, "span_start", np.nan)), float(getattr(row, "span_end", np.nan))
        span = None if np.isnan(start) or np.isnan(end) else (start, end)
        out.append(Item(str(row.item), str(row.split), fold, str(getattr(row, "performance_id", "")),
                        bool(getattr(row, "augmented", False)), span=span))
    return out


def find_leakage(items: Sequence[Item], pairs: Sequence[Pair]) -> list[Violation]:
    """Every broken rule (empty when clean). Pairs naming unknown items are ignored."""
    idx = {it.path: i for i, it in enumerate(items)}
    parent = list(range(len(items)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(x: int, y: int) -> None:
        parent[find(x)] = find(y)

    links: list[tuple[int, int, str]] = []
    for p in pairs:
        if p.a in idx and p.b in idx:
            union(idx[p.a], idx[p.b])
            links.append((idx[p.a], idx[p.b], f"{p.a} ~ {p.b} ({p.kind}, offset {p.offset_sec:.2f} s)"))
    for i, j, _ in shared_audio_links([it.performance for it in items], [it.span for it in items]):
        if items[i].role != items[j].role:
            links.append((i, j, f"{items[i].path} ~ {items[j].path} (same performance {items[i].performance}, "
                                f"overlapping or unknown spans)"))
        union(i, j)
    first: dict[str, int] = {}
    for i, it in enumerate(items):
        if not it.sha1:
            continue
        if it.sha1 in first:
            j = first[it.sha1]
            if items[i].role != items[j].role:
                links.append((j, i, f"{items[j].path} ~ {it.path} (same sha1 {it.sha1})"))
            union(i, j)
        else:
            first[it.sha1] = i
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(items)):
        groups[find(i)].append(i)
    out: list[Violation] = []
    for it in items:
        if it.augmented and it.split in ("val", "test"):
            out.append(Violation("augmented item in validation/test", [it.path], [f"{it.path} ({it.split})"]))
    for members in groups.values():
        if len(members) < 2:
            continue
        roles = {items[i].role for i in members}
        sup = {r for r in roles if r not in ("ssl", "ood")}
        rules = []
        if len(sup) > 1:
            rules.append(f"one performance/duplicate group spans {sorted(sup)}")
        if "ssl" in roles and sup:
            rules.append(f"an SSL item duplicates supervised items ({sorted(sup)})")
        aug = [i for i in members if items[i].augmented]
        if aug and any(not items[i].augmented and items[i].role != items[aug[0]].role for i in members):
            rules.append("an augmented item is linked to an item in another fold or test")
        if not rules:
            continue
        mset = set(members)
        lk = [text for x, y, text in links if x in mset and y in mset and items[x].role != items[y].role]
        out.append(Violation("; ".join(rules), [items[i].path for i in members], lk or
                             [f"{items[i].path} ({items[i].role})" for i in members]))
    return out


def check_leakage(items: Sequence[Item], pairs: Sequence[Pair]) -> None:
    """Raise :class:`LeakageError` listing the offending pairs when any rule is broken."""
    v = find_leakage(items, pairs)
    if v:
        raise LeakageError(v)


def precision_recall(found: Iterable[tuple[str, str]], truth: Iterable[tuple[str, str]]) -> dict[str, float]:
    """Pair-level precision and recall (unordered pairs)."""
    f = {tuple(sorted(p)) for p in found}
    t = {tuple(sorted(p)) for p in truth}
    tp = len(f & t)
    return {"tp": tp, "fp": len(f - t), "fn": len(t - f),
            "precision": tp / len(f) if f else 1.0, "recall": tp / len(t) if t else 1.0}


@dataclass
class DedupResult:
    """What the dedup stage writes: the pairs, the leakage violations, the report and the metrics
    (counts only: no wall-clock figure, so an unchanged input gives byte-identical outputs)."""

    pairs: list[Pair]
    violations: list[Violation]
    report: str
    metrics: dict[str, int]


def _fingerprint_or_error(path: str) -> Fingerprint | Exception:
    try:
        return fingerprint_file(path)
    except Exception as err:  # noqa: BLE001 - reported with the file named
        return RuntimeError(f"{path}: {err}")


def dedup_records(records: Sequence, match_threshold: float, min_overlap_sec: float,
                  workers: int = 1) -> DedupResult:
    """Fingerprint every manifest record (``workers`` processes), find duplicate / overlapping pairs
    and the leakage rules they break.

    Raises:
        FingerprintError: some items could not be read (every such file is named).
    """
    import multiprocessing as mp

    from tqdm import tqdm

    from crescendai.data.fingerprint import fingerprint

    paths = [r.path for r in records]
    t0 = time.perf_counter()
    fingerprint(np.sin(np.arange(22050, dtype=np.float32) * 0.3))  # warm librosa once; forked workers inherit
    with mp.get_context("fork").Pool(workers) as pool:
        fps = list(tqdm(pool.imap(_fingerprint_or_error, paths, chunksize=4), total=len(paths), desc="fingerprint"))
    bad = [f for f in fps if isinstance(f, Exception)]
    if bad:
        raise FingerprintError("unreadable items:\n" + "\n".join(map(str, bad)))
    log.info("fingerprinted %d items in %.1f s", len(paths), time.perf_counter() - t0)
    pairs = find_pairs(paths, fps, [r.sha1 for r in records], match_threshold=match_threshold,
                       min_overlap_sec=min_overlap_sec)
    pairs += span_overlap_pairs([(r.path, r.performance, record_span(r)) for r in records])
    log.info("dedup of %d items took %.1f s", len(paths), time.perf_counter() - t0)
    violations = find_leakage(items_from_records(records), pairs)
    kinds = Counter(p.kind for p in pairs)
    split_of = {r.path: (r.split if r.fold is None else f"fold {r.fold}") for r in records}
    lines = ["# Dedup report", "", f"{len(records)} items, {len(pairs)} pairs "
             f"({', '.join(f'{k}: {v}' for k, v in sorted(kinds.items())) or 'none'})", "",
             f"Leakage violations: {len(violations)}", ""]
    for v in violations:
        lines += [f"- **{v.rule}**"] + [f"  - {x}" for x in v.links]
    lines += ["", "| a | b | kind | offset s | score | a split | b split |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {p.a} | {p.b} | {p.kind} | {p.offset_sec:.2f} | {p.score:.3f} | {split_of.get(p.a)} | "
              f"{split_of.get(p.b)} |" for p in pairs]
    metrics = {"items": len(records), "pairs": len(pairs),
               **{f"pairs_{k}": kinds.get(k, 0) for k in ("exact", "contained", "rerender", "overlap")},
               "violations": len(violations)}
    return DedupResult(pairs, violations, "\n".join(lines) + "\n", metrics)
