"""Self-supervised batches from the preprocess cache: windows, recording-aware batches, a held-out split.

    ds = WindowDataset("data/features/ssl")                    # rows of the cache, recording ids
    tr, va = split_groups(ds.groups, 0.1, seed)                # whole recordings held out
    sampler = RecordingBatchSampler(ds.groups[tr], 64, crops=2, seed=seed)
    for pos in sampler.epoch_batches(epoch): b = ds.batch(tr[pos], device)
"""

from __future__ import annotations

import os

import numpy as np
import torch

from crescendai.core import columns


def pad_mask_from_fraction(pad_fraction: np.ndarray, n_frames: int = 128) -> np.ndarray:
    """(B,) share of padded frames → (B, n_frames) bool, True on the trailing padded frames."""
    valid = np.round(n_frames * (1.0 - np.asarray(pad_fraction, np.float64))).astype(int)
    return np.arange(n_frames)[None, :] >= valid[:, None]


PLAYING_CLIP: float = 5.0
"""Standardised statistics of the playing are clipped to ±this (a window with two onsets can have an
extreme IOI variability)."""


def standardise_playing(m: np.ndarray, clip: float = PLAYING_CLIP) -> np.ndarray:
    """float [N, F] statistics of the playing → float32 z-scores per column (scikit-learn's
    ``StandardScaler`` fitted on the finite values; NaN stays NaN), clipped to ``±clip``."""
    from sklearn.preprocessing import StandardScaler

    m = np.asarray(m, np.float64)
    fit = np.isfinite(m).any(axis=0)
    out = np.full(m.shape, np.nan, np.float32)
    if fit.any():
        out[:, fit] = np.clip(StandardScaler().fit_transform(m[:, fit]), -clip, clip)
    return out


class WindowDataset:
    """The windows of one preprocess set (``data/features/<set>``) with the recording of each.

    ``groups`` (N,) numbers the recording (``item``) of every window; :meth:`batch` reads many rows at
    once (sorted memmap reads). ``playing`` (N, F) holds the standardised statistics of the playing
    (:func:`standardise_playing` over the whole set: they describe the SSL audio's MIDI, no label), or
    None for a cache without them.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from crescendai.data.window_cache import load_feature_set

        self.fs = load_feature_set(path)
        items = self.fs.index["item"].astype(str).to_numpy()
        self.groups = np.unique(items, return_inverse=True)[1].astype(np.int64)  # (N,)
        self.pad_fraction = self.fs.index["pad_fraction"].to_numpy(np.float64)
        has_playing = set(columns.PLAYING) <= set(self.fs.index.columns)
        self.playing = standardise_playing(self.fs.playing(np.arange(len(items)))) if has_playing else None

    def __len__(self) -> int:
        return len(self.groups)

    def batch(self, rows: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Rows (B,) → ``x`` (B, 128, 128) float32 dB, ``pad_mask`` (B, 128) bool, ``group`` (B,) int64
        and, when the set has them, ``teacher`` (B, 8, 25) float32 MIDI targets (``crescendai.data.teacher``)
        and ``playing`` (B, F) float32 standardised statistics of the playing (NaN: undefined)."""
        r = np.asarray(rows, np.int64)
        out = {
            "x": torch.from_numpy(self.fs.batch(r)).to(device),
            "pad_mask": torch.from_numpy(pad_mask_from_fraction(self.pad_fraction[r])).to(device),
            "group": torch.from_numpy(self.groups[r]).to(device),
        }
        if self.fs.teacher is not None:
            out["teacher"] = torch.from_numpy(self.fs.teacher_targets(r)).to(device)
        if self.playing is not None:
            out["playing"] = torch.from_numpy(self.playing[r]).to(device)
        return out


class RecordingBatchSampler:
    """Batches with ``crops`` windows from each of ``batch_size // crops`` *distinct* recordings.

    A recording never appears more than ``crops`` times in a batch, and its crops sit next to each
    other (``[r0c0, r0c1, r1c0, r1c1, …]``), so the other items of a batch are always other
    recordings — the guard against false negatives in contrastive losses. Recordings are drawn
    without replacement within a batch, with probability ∝ their window count; crops of one
    recording are distinct windows when it has enough. An epoch has ``len(groups) // batch_size``
    batches (at least 1). Fully determined by ``(seed, epoch)``.

    Args:
        groups: (N,) recording id of each dataset position.
        batch_size: windows per batch (a multiple of ``crops``).
        crops: windows per recording per batch (2 = two crops as positives; 1 = one per recording).
    """

    def __init__(self, groups: np.ndarray, batch_size: int, crops: int = 2, seed: int = 0) -> None:
        if crops < 1 or batch_size % crops:
            raise ValueError(f"batch_size ({batch_size}) must be a positive multiple of crops ({crops})")
        self.groups = np.asarray(groups)
        self.ids, inv = np.unique(self.groups, return_inverse=True)
        self.members = [np.flatnonzero(inv == k) for k in range(len(self.ids))]
        sizes = np.array([len(m) for m in self.members], np.float64)
        self.p = sizes / sizes.sum()
        self.batch_size, self.crops, self.seed = batch_size, crops, seed
        self.n_rec = min(batch_size // crops, len(self.ids))

    def __len__(self) -> int:
        return max(1, len(self.groups) // self.batch_size)

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The positions (into ``groups``) of every batch of ``epoch``."""
        rng = np.random.default_rng([self.seed, epoch])
        out = []
        for _ in range(len(self)):
            recs = rng.choice(len(self.ids), size=self.n_rec, replace=False, p=self.p)
            rows = []
            for k in recs:
                m = self.members[k]
                rows.append(rng.choice(m, size=self.crops, replace=len(m) < self.crops))
            out.append(np.concatenate(rows))
        return out


def split_groups(groups: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of (train, val) with whole recordings held out: when ``val_fraction`` > 0, at least
    2 val recordings (contrastive validation needs negatives) if there are ≥ 4 recordings, else 1."""
    ids = np.unique(groups)
    n_val = 0 if val_fraction <= 0 else max(2 if len(ids) >= 4 else 1, round(val_fraction * len(ids)))
    n_val = min(n_val, len(ids) - 1)
    val_ids = np.random.default_rng(seed).permutation(ids)[:n_val]
    is_val = np.isin(groups, val_ids)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
