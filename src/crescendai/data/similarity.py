"""Similarity probe: how close are the SSL corpora to the phone-channel (out-of-distribution) set?

Per recording (:func:`describe`, pure):

==================  =========  =======================================================================
feature             unit       definition
==================  =========  =======================================================================
rms_db              dBFS       RMS over the recording (mean frame power, 2048/512 frames) in dB
centroid_hz         Hz         mean spectral centroid over audible frames
rolloff_hz          Hz         mean 85 % spectral roll-off over audible frames
loudness_range_db   dB         95th − 5th percentile of audible frame RMS
rt60_proxy_sec      s          60 / the fastest decay of the RMS envelope (5th percentile of its dB/s
                               slope over 0.25 s spans, loud frames): damped notes, where the room's
                               tail shows; reverberant rooms decay slower; clipped to [0, 10]
onset_density       1/s        librosa onsets per second
==================  =========  =======================================================================

:func:`probe` summarises groups of recordings (mean, std, median per feature) and, for every SSL
group, the standardised mean difference to the OOD group per feature (|Δmean| / pooled std) and its
average, ``gap`` (0 = indistinguishable on these features, > 1 = clearly different).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from crescendai.core.audio import SAMPLE_RATE, load_audio

log = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = ("rms_db", "centroid_hz", "rolloff_hz", "loudness_range_db", "rt60_proxy_sec",
                             "onset_density")


def describe(y: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float]:
    """The six probe features of one mono waveform (see module docstring).

    Args:
        y: np.ndarray [shape=(n,)], float32 mono, n >= 2048.
        sr: sample rate in Hz.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    hop = 512
    S = np.abs(librosa.stft(y, n_fft=2048, hop_length=hop))
    rms = librosa.feature.rms(y=y, frame_length=2048, hop_length=hop)[0][: S.shape[1]]
    rms_db = 20 * np.log10(np.maximum(rms, 1e-6))
    audible = rms_db > rms_db.max() - 50.0
    cent = librosa.feature.spectral_centroid(S=S, sr=sr)[0]
    roll = librosa.feature.spectral_rolloff(S=S, sr=sr, roll_percent=0.85)[0]
    onsets = librosa.onset.onset_detect(y=y, sr=sr, hop_length=hop, units="time")
    # RT60 proxy: the fastest sustained decays of the RMS envelope (0.25 s spans)
    fr = sr / hop
    k = max(2, int(0.25 * fr))
    slopes = (rms_db[k:] - rms_db[:-k]) / (k / fr)  # dB/s
    loud = rms_db[:-k] > rms_db.max() - 40.0
    falling = slopes[loud & (slopes < -1.0)]
    rt60 = float(np.clip(-60.0 / np.percentile(falling, 5), 0.0, 10.0)) if falling.size >= 5 else 10.0
    a = audible if audible.any() else np.ones_like(audible)
    return {
        "rms_db": float(10 * np.log10(max(float(np.mean(rms**2)), 1e-12))),
        "centroid_hz": float(cent[a].mean()),
        "rolloff_hz": float(roll[a].mean()),
        "loudness_range_db": float(np.percentile(rms_db[a], 95) - np.percentile(rms_db[a], 5)),
        "rt60_proxy_sec": rt60,
        "onset_density": float(len(onsets) / (y.size / sr)),
    }


def describe_file(path: str | os.PathLike[str], max_sec: float = 60.0) -> dict[str, float]:
    """:func:`describe` of the first ``max_sec`` seconds of a file."""
    y = load_audio(path)
    return describe(y[: int(max_sec * SAMPLE_RATE)])


def _summary(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for f in FEATURES:
        v = np.array([r[f] for r in rows], dtype=np.float64)
        out[f] = {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v))}
    return out


def probe(
    groups: Mapping[str, Sequence[str | os.PathLike[str]]],
    ood: Sequence[str],
    *,
    max_items: int = 40,
    max_sec: float = 60.0,
    seed: int = 0,
) -> tuple[dict, dict[str, list[dict[str, float]]]]:
    """Compare each non-OOD group with the pooled OOD groups.

    Args:
        groups: group name → audio paths (SSL corpora and OOD corpora).
        ood: names of the OOD groups in ``groups``.
        max_items: at most this many recordings per group (a seeded sample).
        max_sec: seconds read per recording.

    Returns:
        (metrics dict for metrics/similarity.json, per-group feature rows for plotting).
    """
    rng = np.random.default_rng(seed)
    rows: dict[str, list[dict[str, float]]] = {}
    for name, paths in groups.items():
        paths = list(paths)
        if len(paths) > max_items:
            paths = [paths[i] for i in sorted(rng.choice(len(paths), max_items, replace=False))]
        rows[name] = [describe_file(p, max_sec) for p in paths]
    metrics: dict = {"features": list(FEATURES), "groups": {}, "vs_ood": {}}
    for name, r in rows.items():
        if r:
            metrics["groups"][name] = {"n": len(r), **_summary(r)}
    ood_rows = [x for g in ood for x in rows.get(g, [])]
    if ood_rows:
        for name, r in rows.items():
            if name in ood or not r:
                continue
            smd = {}
            for f in FEATURES:
                a = np.array([x[f] for x in r])
                b = np.array([x[f] for x in ood_rows])
                pooled = np.sqrt(0.5 * (a.var() + b.var())) + 1e-9
                smd[f] = float(abs(a.mean() - b.mean()) / pooled)
            metrics["vs_ood"][name] = {"smd": smd, "gap": float(np.mean(list(smd.values())))}
    return metrics, rows


def plot(rows: Mapping[str, list[dict[str, float]]], path: str | os.PathLike[str]) -> None:
    """Box plots of every feature per group → PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crescendai.core.files import atomic_write

    names = [n for n, r in rows.items() if r]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, f in zip(axes.ravel(), FEATURES, strict=True):
        ax.boxplot([[x[f] for x in rows[n]] for n in names], tick_labels=names)
        ax.set_title(f)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.suptitle("SSL corpora vs the phone-channel set")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=90)
    plt.close(fig)
