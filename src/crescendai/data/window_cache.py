"""The preprocessing cache: every item → contract windows, memory-mapped, with an index table.

Layout of one set (``labelled``, ``ssl`` or ``ood``) under ``data/features/<set>/``:

- ``windows.npy``: float16 (or float32) [N, 128, 128] contract windows (``crescendai.core.audio``), in
  ``np.lib.format``; open with ``mmap_mode="r"`` (:func:`load_feature_set` does).
- ``index.csv``: one row per window, row ``i`` describes ``windows[i]``: ``item`` (manifest path),
  ``item_idx``, ``window``, ``start_sec``, ``pad_fraction``, ``split``, ``fold``, ``performer_id``,
  ``piece_id``, ``performance_id``, ``passage_id`` (:func:`crescendai.data.manifest.passage_id`),
  ``span_start``, ``span_end`` (the item's span in its performance, NaN when unknown), ``midi_path``
  (the symbolic source of rendered items, "" otherwise), ``source``, ``augmented``, ``y_0..y_18`` (segment labels, NaN when
  unlabelled), ``l_0..l_18`` (local labels at the window start, NaN when absent),
  ``p_onset_density, p_tempo_stability, p_loudness_dynamics, p_pedal`` (:mod:`crescendai.data.proxies`),
  ``m_note_density … m_register_balance`` (:data:`crescendai.core.columns.PLAYING`: the window's MIDI
  performance features, :func:`crescendai.data.teacher.window_playing`; NaN without MIDI or with
  fewer than two onsets), ``timbre_class`` (piano model index or -1).
- ``teacher.npy``: float16 [N, 8, 25] MIDI "performance teacher" targets, row ``i`` ↔ ``windows[i]``
  (:mod:`crescendai.data.teacher`: 8 time rows of 16 frames × the columns
  :data:`crescendai.data.teacher.TEACHER_FIELDS`: per register band onset / velocity / sounding, then
  pedal), from the item's ``midi_path`` shifted by ``midi_offset_sec``; all NaN for items without MIDI.
  Absent in caches built before it existed (:attr:`FeatureSet.teacher` is then None).
- ``meta.json``: hop, dtype, counts, ``teacher_fields``.

Building (:func:`build_feature_set`) is parallel over items (``multiprocessing``, ``workers``
processes), one STFT per file then slicing (the reference path of ``crescendai.core.audio``), and memory
bounded: the output is an ``open_memmap`` of known (upper-bound) size written item by item, each
worker holds one recording at a time, nothing holds a corpus.

Reading::

    fs = load_feature_set("data/features/labelled")
    tr, va = fs.cv_rows(0)                 # fold 0 is validation
    x = fs.batch(tr[:64])                  # float32 [64, 128, 128] dB
    y = fs.labels(tr[:64])                 # float32 [64, 19]
    z = fs.teacher_targets(tr[:64])        # float32 [64, 8, 25] (NaN: no MIDI / no onset)
    m = fs.playing(tr[:64])                # float32 [64, 17] (NaN: no MIDI / < 2 onsets)
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crescendai.core import columns
from crescendai.core.audio import (
    HOP_LENGTH,
    N_MELS,
    SAMPLE_RATE,
    WINDOW_FRAMES,
    AudioError,
    hop_frames,
    load_audio,
    mel_power,
    n_windows,
    windows_from_mel,
)
from crescendai.core.dims import N_DIMS
from crescendai.core.errors import CrescendAIError
from crescendai.core.files import atomic_write, write_json
from crescendai.core.midi_features import N_MIDI_FEATURES
from crescendai.data.manifest import ManifestRecord, passage_id, record_span
from crescendai.data.proxies import audio_proxies, midi_proxies
from crescendai.data.teacher import (
    N_TEACHER,
    TEACHER_FIELDS,
    TEACHER_ROWS,
    teacher_targets,
    window_playing,
)

log = logging.getLogger(__name__)

SETS: tuple[str, ...] = ("labelled", "ssl", "ood")


class FeatureError(CrescendAIError):
    """The cache cannot be built or read; the message names the file and what to do."""


# ------------------------------------------------------------------------------------------
# building
# ------------------------------------------------------------------------------------------


def max_windows(duration_sec: float, hop_sec: float) -> int:
    """Upper bound on the windows of a recording of ``duration_sec`` (resampling may shave a sample)."""
    n = int(np.ceil(duration_sec * SAMPLE_RATE)) + 2
    return n_windows(1 + n // HOP_LENGTH, hop_frames(hop_sec))


@dataclass(frozen=True)
class _Task:
    idx: int
    path: str
    hop_sec: float
    min_duration_sec: float
    midi_path: str | None
    midi_offset_sec: float
    dtype: str


def _item_windows(t: _Task) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                     np.ndarray]:
    """Worker: one recording → (idx, db [n,128,128] dtype, pad_fraction [n], start_sec [n], proxies [n,4],
    teacher [n,8,25] float32 and playing [n, N_MIDI_FEATURES] float32, both all NaN without MIDI)."""
    y = load_audio(t.path, min_duration_sec=t.min_duration_sec)
    S = mel_power(y)  # (T, 128), one STFT per file
    w = windows_from_mel(S, t.hop_sec, y.size / SAMPLE_RATE)
    prox = None
    teacher = np.full((w.start_sec.size, TEACHER_ROWS, N_TEACHER), np.nan, np.float32)
    playing = np.full((w.start_sec.size, N_MIDI_FEATURES), np.nan, np.float32)
    if t.midi_path and os.path.isfile(t.midi_path):
        from crescendai.core.midi import read_midi

        perf = read_midi(t.midi_path)
        onsets = np.array([n.onset_sec for n in perf.notes], dtype=np.float64) + t.midi_offset_sec
        velocities = np.array([n.velocity for n in perf.notes], dtype=np.float64)
        pedal_sec = np.array([p.time_sec for p in perf.pedal], dtype=np.float64) + t.midi_offset_sec
        pedal_down = np.array([p.down for p in perf.pedal], dtype=bool)
        prox = midi_proxies(onsets, velocities, pedal_sec, pedal_down, w.start_sec)
        teacher = teacher_targets(
            onsets,
            np.array([n.offset_sec for n in perf.notes], dtype=np.float64) + t.midi_offset_sec,
            np.array([n.pitch for n in perf.notes], dtype=np.int64),
            velocities, pedal_sec, pedal_down, w.start_sec,
        )
        playing = window_playing(perf, w.start_sec, t.midi_offset_sec)
    if prox is None:
        prox = audio_proxies(S, w.start_sec)
    return t.idx, w.db.astype(t.dtype), w.pad_fraction, w.start_sec, prox, teacher, playing


def warm_up() -> None:
    """Pay librosa's one-off first-call cost (lazy imports, filter banks; seconds) once in the parent,
    so forked workers inherit it instead of each paying it."""
    y = (0.01 * np.sin(np.arange(SAMPLE_RATE) * 0.3)).astype(np.float32)
    S = mel_power(y)
    audio_proxies(S, np.zeros(1))


def _safe(t: _Task):
    try:
        return _item_windows(t)
    except AudioError as err:
        return t.idx, FeatureError(f"{t.path}: {err.reason}; fix the file or add it to corpora.exclude")
    except Exception as err:  # noqa: BLE001 - re-raised in the parent with the file named
        return t.idx, FeatureError(f"{t.path}: {type(err).__name__}: {err}")


def _local_labels(rec: ManifestRecord, start_sec: np.ndarray) -> np.ndarray:
    out = np.full((start_sec.size, N_DIMS), np.nan, np.float32)
    ll = rec.extra.get("local_labels")
    hop = rec.extra.get("local_hop_sec")
    if not ll or not hop:
        return out
    arr = np.asarray(ll, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != N_DIMS:
        raise FeatureError(f"{rec.path}: extra.local_labels must be [n, {N_DIMS}], got {arr.shape}")
    i = np.rint(start_sec / float(hop)).astype(int)
    ok = (i >= 0) & (i < arr.shape[0])
    out[ok] = arr[i[ok]]
    return out


def _copy_rows(src: np.ndarray, n: int, path: Path, chunk: int = 1024) -> None:
    """Write ``src[:n]`` as the .npy file ``path`` (``numpy.lib.format.open_memmap``), chunk by chunk."""
    dst = np.lib.format.open_memmap(path, mode="w+", dtype=src.dtype, shape=(n, *src.shape[1:]))
    for i in range(0, n, chunk):
        dst[i : i + chunk] = src[i : min(i + chunk, n)]
    dst.flush()
    del dst


@dataclass
class BuildStats:
    n_items: int = 0
    n_windows: int = 0
    seconds: float = 0.0
    windows_per_sec: float = 0.0
    audio_sec: float = 0.0


def build_feature_set(
    records: Sequence[ManifestRecord],
    out_dir: str | os.PathLike[str],
    *,
    hop_sec: float = 1.0,
    workers: int = 2,
    dtype: str = "float16",
    min_duration_sec: float = 0.0,
    progress: bool = True,
) -> BuildStats:
    """Compute and cache the contract windows of ``records`` in ``out_dir`` (see module docstring).

    Args:
        records: manifest records (their ``path`` is read; labels, split, fold go to the index).
        out_dir: the set folder; ``windows.npy``, ``teacher.npy``, ``index.csv`` and ``meta.json`` are
            (re)written.
        hop_sec: window hop in seconds (``preprocess.hop_sec``).
        workers: processes (1 = in-process).
        dtype: "float16" or "float32".
        min_duration_sec: shorter recordings fail (name the file) unless excluded upstream.
        progress: show a tqdm bar.

    Raises:
        FeatureError: an item cannot be read (names the file); nothing is left half-written.
    """
    import time

    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dt = np.dtype(dtype)
    bounds = [max_windows(r.duration_sec, hop_sec) for r in records]
    offsets = np.concatenate([[0], np.cumsum(bounds)]).astype(int)
    total = int(offsets[-1])
    scratch, tmp = out / ".windows.bound.npy", out / ".windows.npy.tmp"  # room for the upper bound, then exact
    t_scratch, t_tmp = out / ".teacher.bound.npy", out / ".teacher.npy.tmp"
    mm = np.lib.format.open_memmap(scratch, mode="w+", dtype=dt, shape=(max(total, 0), WINDOW_FRAMES, N_MELS))
    tm = np.lib.format.open_memmap(t_scratch, mode="w+", dtype=np.float16,
                                   shape=(max(total, 0), TEACHER_ROWS, N_TEACHER))
    tasks = [
        _Task(i, r.path, hop_sec, min_duration_sec, r.extra.get("midi_path"),
              float(r.extra.get("midi_offset_sec", 0.0)), dtype)
        for i, r in enumerate(records)
    ]
    rows: list[pd.DataFrame] = []
    pos = 0
    t0 = time.perf_counter()
    stats = BuildStats(n_items=len(records))
    warm_up()
    pool = mp.get_context("fork").Pool(workers) if workers > 1 and len(tasks) > 1 else None
    try:
        results = pool.imap(_safe, tasks, chunksize=1) if pool else map(_safe, tasks)
        for res in tqdm(results, total=len(tasks), desc=f"preprocess {out.name}", disable=not progress):
            if isinstance(res[1], Exception):
                raise res[1]
            i, db, padf, start, prox, teacher, playing = res
            rec = records[i]
            n = db.shape[0]
            span = record_span(rec) or (np.nan, np.nan)
            if n > bounds[i]:  # pragma: no cover - the bound is generous
                raise FeatureError(f"{rec.path}: {n} windows exceed the bound {bounds[i]}")
            mm[pos : pos + n] = db
            tm[pos : pos + n] = teacher
            df = pd.DataFrame({
                "item": rec.path, "item_idx": i, "window": np.arange(n), "start_sec": start,
                "pad_fraction": padf, "split": rec.split,
                "fold": pd.array([rec.fold] * n, dtype="Int64"),
                "performer_id": rec.performer_id, "piece_id": rec.piece_id,
                "performance_id": rec.performance, "passage_id": passage_id(rec),
                "span_start": span[0], "span_end": span[1], "midi_path": str(rec.extra.get("midi_path", "")),
                "source": rec.source, "augmented": rec.augmented,
            })
            y = np.full((n, N_DIMS), np.nan, np.float32) if rec.labels is None else \
                np.tile(np.asarray(rec.labels, np.float32), (n, 1))
            df[list(columns.LABELS)] = y
            df[list(columns.LOCAL_LABELS)] = _local_labels(rec, start)
            df[list(columns.PROXIES)] = prox
            df[list(columns.PLAYING)] = playing
            piano = rec.extra.get("piano")
            df["timbre_class"] = int(piano) if isinstance(piano, int | float) and not isinstance(piano, bool) else -1
            rows.append(df)
            pos += n
            stats.audio_sec += rec.duration_sec
    except BaseException:
        del mm, tm
        scratch.unlink(missing_ok=True)
        t_scratch.unlink(missing_ok=True)
        raise
    finally:
        if pool:
            pool.close()
            pool.join()
    _copy_rows(mm, pos, tmp)
    _copy_rows(tm, pos, t_tmp)
    del mm, tm
    scratch.unlink()
    t_scratch.unlink()
    os.replace(tmp, out / "windows.npy")
    os.replace(t_tmp, out / "teacher.npy")
    index = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["item", "item_idx", "window", "start_sec", "pad_fraction", "split", "fold",
                 "performer_id", "piece_id", "performance_id", "passage_id", "span_start", "span_end",
                 "midi_path", "source", "augmented", *columns.LABELS, *columns.LOCAL_LABELS, *columns.PROXIES, *columns.PLAYING, "timbre_class"])
    with atomic_write(out / "index.csv") as f:
        index.to_csv(f, index=False, float_format="%.6g")
    stats.n_windows = pos
    stats.seconds = time.perf_counter() - t0
    stats.windows_per_sec = pos / stats.seconds if stats.seconds > 0 else 0.0
    write_json(out / "meta.json", {
        "hop_sec": hop_sec, "hop_frames": hop_frames(hop_sec), "dtype": dtype, "n_windows": pos,
        "n_items": len(records), "audio_sec": round(stats.audio_sec, 3),
        "teacher_fields": list(TEACHER_FIELDS),
    })
    log.info("%s: %d items → %d windows in %.1f s", out, len(records), pos, stats.seconds)
    return stats


# ------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------


SET_OF_ROLE: dict[str, str] = {"supervised": "labelled", "ssl": "ssl", "ood": "ood"}
"""Role of a corpus in ``params.data`` → the feature set it goes to."""


def build_feature_sets(by_corpus: dict[str, Sequence[ManifestRecord]], role_of: dict[str, str],
                       out_dir: str | os.PathLike[str], pp, pairs_path: str | os.PathLike[str]) -> None:
    """Check leakage against ``pairs_path`` (dedup's pairs), then cache every role's windows in
    ``<out_dir>/{labelled,ssl,ood}`` with the ``preprocess`` params ``pp``.

    Raises:
        LeakageError: a pair links items that must never meet (see ``crescendai.data.dedup``).
        FeatureError: an item cannot be read or is too short.
    """
    from crescendai.data.dedup import check_leakage, items_from_records, read_pairs

    check_leakage(items_from_records([r for recs in by_corpus.values() for r in recs]), read_pairs(pairs_path))
    for role, set_name in SET_OF_ROLE.items():
        recs = [r for c, rr in by_corpus.items() if role_of[c] == role for r in rr]
        stats = build_feature_set(recs, Path(out_dir) / set_name, hop_sec=pp.hop_sec, workers=pp.workers,
                                  dtype=pp.dtype, min_duration_sec=pp.min_duration_sec)
        log.info("%s: %s", set_name, stats)


@dataclass
class FeatureSet:
    """A cached set: memory-mapped windows plus the index table (row ``i`` ↔ ``windows[i]``).

    Attributes:
        path: the set folder.
        windows: np.memmap float16/32 [N, 128, 128] dB in [-80, 0] (read-only).
        index: DataFrame with the columns listed in the module docstring (N rows).
        meta: meta.json contents.
        teacher: np.memmap float16 [N, 8, 25] MIDI teacher targets (:mod:`crescendai.data.teacher`,
            NaN = no MIDI / no onset), or None for a cache built without ``teacher.npy``.
    """

    path: Path
    windows: np.ndarray
    index: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    teacher: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    def rows(self, split: str | Sequence[str] | None = None, fold: int | None = None,
             *, labelled: bool | None = None, include_augmented: bool = True) -> np.ndarray:
        """Row indices (int64) matching a split (or several), a fold, labelled-ness."""
        m = np.ones(len(self.index), bool)
        if split is not None:
            m &= self.index["split"].isin([split] if isinstance(split, str) else list(split)).to_numpy()
        if fold is not None:
            m &= (self.index["fold"] == fold).fillna(False).to_numpy(dtype=bool)
        if labelled is not None:
            m &= self.index["y_0"].notna().to_numpy() == labelled
        if not include_augmented:
            m &= ~self.index["augmented"].to_numpy(dtype=bool)
        return np.flatnonzero(m)

    @property
    def n_folds(self) -> int:
        f = self.index["fold"].dropna()
        return int(f.max()) + 1 if len(f) else 0

    def cv_rows(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(train_rows, val_rows) of CV round ``k``: val = fold ``k`` without augmented items,
        train = the other folds; the fixed test set is in neither."""
        if not 0 <= k < max(self.n_folds, 1):
            raise FeatureError(f"{self.path}: fold {k} out of range 0..{self.n_folds - 1}")
        tr = self.index["split"].eq("train").to_numpy()
        f = self.index["fold"].fillna(-1).to_numpy(dtype=int)
        aug = self.index["augmented"].to_numpy(dtype=bool)
        return np.flatnonzero(tr & (f != k)), np.flatnonzero(tr & (f == k) & ~aug)

    def test_rows(self) -> np.ndarray:
        return self.rows("test", include_augmented=False)

    def batch(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """float32 [B, 128, 128] windows for ``rows`` (sorted reads from the memmap)."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        out = np.empty((rows.size, WINDOW_FRAMES, N_MELS), np.float32)
        out[order] = self.windows[rows[order]]
        return out

    def teacher_targets(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """float32 [B, 8, 25] MIDI teacher targets for ``rows`` (columns
        :data:`crescendai.data.teacher.TEACHER_FIELDS`; all NaN for items without MIDI).

        Raises:
            FeatureError: the cache has no ``teacher.npy`` (built before it existed).
        """
        if self.teacher is None:
            raise FeatureError(f"{self.path}: no teacher.npy in this cache; rebuild with `dvc repro preprocess`")
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        out = np.empty((rows.size, TEACHER_ROWS, N_TEACHER), np.float32)
        out[order] = self.teacher[rows[order]]
        return out

    def playing(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """float32 [B, N_MIDI_FEATURES] statistics of the playing in each window
        (:data:`crescendai.core.columns.PLAYING`; NaN rows without MIDI or with fewer than two onsets).

        Raises:
            FeatureError: the index has no such columns (a cache built before they existed).
        """
        missing = [c for c in columns.PLAYING if c not in self.index.columns]
        if missing:
            raise FeatureError(f"{self.path}: index.csv has no {missing[0]} column; rebuild with `dvc repro preprocess`")
        return self.index[list(columns.PLAYING)].to_numpy(np.float32)[np.asarray(rows)]

    def labels(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """float32 [B, 19] segment labels (NaN rows for unlabelled items)."""
        return self.index[list(columns.LABELS)].to_numpy(np.float32)[np.asarray(rows)]

    def local_labels(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """float32 [B, 19] local labels at each window (NaN where absent)."""
        return self.index[list(columns.LOCAL_LABELS)].to_numpy(np.float32)[np.asarray(rows)]

    def proxies(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """float32 [B, 4] time-local proxies (:data:`crescendai.core.columns.PROXY_NAMES` order)."""
        return self.index[list(columns.PROXIES)].to_numpy(np.float32)[np.asarray(rows)]

    def groups(self, rows: np.ndarray | Sequence[int], by: str = "item_idx") -> np.ndarray:
        """The group of each row (``item_idx``, ``performer_id`` …) for per-segment pooling."""
        return self.index[by].to_numpy()[np.asarray(rows)]

    def check_leakage(self, pairs_path: str | os.PathLike[str] | None = "data/dedup/pairs.jsonl") -> None:
        """Run the dedup leakage rules on this set's items (raises ``LeakageError``)."""
        from crescendai.data.dedup import check_leakage, items_from_index, read_pairs

        pairs = read_pairs(pairs_path) if pairs_path and Path(pairs_path).is_file() else []
        check_leakage(items_from_index(self.index), pairs)


def load_feature_set(path: str | os.PathLike[str], *, check_leakage: bool = False,
                     pairs_path: str | os.PathLike[str] = "data/dedup/pairs.jsonl") -> FeatureSet:
    """Open ``<path>/windows.npy`` (memory-mapped, read-only), ``<path>/index.csv`` and, when present,
    ``<path>/teacher.npy`` (memory-mapped).

    Args:
        path: a set folder, e.g. ``data/features/labelled``.
        check_leakage: also run :func:`crescendai.data.dedup.check_leakage` against ``pairs_path``.

    Raises:
        FeatureError: files missing, or the index, the windows and the teacher targets disagree in length.
        crescendai.data.dedup.LeakageError: with ``check_leakage`` and a violated rule.
    """
    p = Path(path)
    w, ix = p / "windows.npy", p / "index.csv"
    for f in (w, ix):
        if not f.is_file():
            raise FeatureError(f"{f} not found; run `dvc repro preprocess`")
    windows = np.load(w, mmap_mode="r")
    index = pd.read_csv(ix, dtype={"performer_id": str, "piece_id": str, "item": str,
                                   "performance_id": str, "passage_id": str, "midi_path": str, "source": str, "split": str},
                        keep_default_na=False, na_values={c: [""] for c in [*columns.LABELS, *columns.LOCAL_LABELS, *columns.PLAYING, "fold"]})
    index["fold"] = index["fold"].astype("Int64")
    if len(index) != windows.shape[0]:
        raise FeatureError(f"{p}: index.csv has {len(index)} rows but windows.npy has {windows.shape[0]}; "
                           "rebuild with `dvc repro preprocess`")
    meta = json.loads((p / "meta.json").read_text()) if (p / "meta.json").is_file() else {}
    teacher = None
    if (p / "teacher.npy").is_file():
        teacher = np.load(p / "teacher.npy", mmap_mode="r")
        fields = meta.get("teacher_fields", list(TEACHER_FIELDS))
        if teacher.shape != (len(index), TEACHER_ROWS, N_TEACHER) or fields != list(TEACHER_FIELDS):
            raise FeatureError(f"{p}: teacher.npy has shape {teacher.shape} (fields {len(fields)}), expected "
                               f"({len(index)}, {TEACHER_ROWS}, {N_TEACHER}) with this version's "
                               "TEACHER_FIELDS; rebuild with `dvc repro preprocess`")
    fs = FeatureSet(p, windows, index, meta, teacher)
    if check_leakage:
        fs.check_leakage(pairs_path)
    return fs
