"""Audio fingerprints for duplicate search: binary chroma codes (hashed), onset and mel envelopes.

A :class:`Fingerprint` holds, per frame of ``FP_HOP / 22 050`` ≈ 46 ms:

- ``chroma`` float16 [T, 12], L2-normalised per frame (pitch content; barely changes with the piano
  model or the room);
- ``onset`` float16 [T], spectral flux of the log spectrum (note timing; differs between two
  performances of one piece, equal for two renders of one performance);
- ``mel`` float16 [T, 24], log mel bands (timbre; equal only for the same signal);
- ``codes`` uint16 [T]: 12-bit binary chroma (bit ``c`` set when ``chroma[c] >= 0.5 · max``), 0 on
  silent frames.

:func:`hash_keys` turns codes into 24-bit landmark keys ``code[t] << 12 | code[t + d]`` for a few lags
``d``; equal keys in two items vote for the offset between them (see :mod:`crescendai.data.dedup`). Keys
are locality-sensitive in the sense that matter here: a re-render with another piano or channel keeps
most binary chroma codes, a different performance keeps the codes but not their timing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from crescendai.core.audio import SAMPLE_RATE, load_audio

FP_NFFT: int = 4096
FP_HOP: int = 1024
FP_FRAME_SEC: float = FP_HOP / SAMPLE_RATE
FP_MELS: int = 24
KEY_LAGS: tuple[int, ...] = (3, 6, 12)
"""Frame lags combined into landmark keys (≈ 0.14, 0.28, 0.56 s)."""
SILENCE_DB: float = -50.0
"""Frames quieter than this (relative to the item's loudest frame) get code 0 (never hashed)."""


@dataclass(frozen=True)
class Fingerprint:
    """Frame-level fingerprint of one recording (see module docstring). ``duration_sec`` in seconds."""

    chroma: np.ndarray
    onset: np.ndarray
    mel: np.ndarray
    codes: np.ndarray
    duration_sec: float

    @property
    def n_frames(self) -> int:
        return int(self.codes.shape[0])


def fingerprint(y: np.ndarray, sr: int = SAMPLE_RATE) -> Fingerprint:
    """Fingerprint a mono waveform.

    Args:
        y: np.ndarray [shape=(n,)], float32 mono at ``sr`` (22 050 Hz expected).
        sr: sample rate in Hz.

    Returns:
        :class:`Fingerprint` with ``1 + n // 1024`` frames.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    P = np.abs(librosa.stft(y, n_fft=FP_NFFT, hop_length=FP_HOP, center=True)) ** 2  # (F, T)
    chroma = librosa.feature.chroma_stft(S=P, sr=sr, n_fft=FP_NFFT, hop_length=FP_HOP, norm=None)  # (12, T)
    mel = librosa.feature.melspectrogram(S=P, sr=sr, n_mels=FP_MELS, fmax=8000.0)  # (24, T)
    mel_db = librosa.power_to_db(mel, ref=max(float(mel.max()), 1e-10), top_db=80.0)
    logp = np.log1p(1e4 * P / max(float(P.max()), 1e-10))
    flux = np.maximum(0.0, np.diff(logp, axis=1, prepend=logp[:, :1])).sum(axis=0)  # (T,)
    flux = flux / (flux.max() + 1e-9)
    energy_db = 10 * np.log10(mel.sum(axis=0) + 1e-12)
    active = energy_db > energy_db.max() - (-SILENCE_DB)
    cmax = chroma.max(axis=0, keepdims=True)
    bits = (chroma >= 0.5 * cmax) & active[None, :] & (cmax > 0)
    codes = (bits.astype(np.uint16) * (1 << np.arange(12, dtype=np.uint16))[:, None]).sum(axis=0).astype(np.uint16)
    cn = chroma / (np.linalg.norm(chroma, axis=0, keepdims=True) + 1e-9)
    return Fingerprint(
        chroma=cn.T.astype(np.float16), onset=flux.astype(np.float16), mel=mel_db.T.astype(np.float16),
        codes=codes, duration_sec=y.size / sr,
    )


def fingerprint_file(path: str | os.PathLike[str]) -> Fingerprint:
    """:func:`crescendai.core.audio.load_audio` then :func:`fingerprint` (raises ``AudioError`` naming the file)."""
    return fingerprint(load_audio(path))


def hash_keys(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmark keys of a code sequence.

    Args:
        codes: uint16 [T] binary chroma codes (0 = silent).

    Returns:
        (keys int64 [K], frames int64 [K]): key = lag index << 24 | code[t] << 12 | code[t + lag];
        frames where either code is 0, or the two codes are equal, are skipped (sustained chords carry
        no timing information).
    """
    c = codes.astype(np.int64)
    keys, frames = [], []
    for li, lag in enumerate(KEY_LAGS):
        if c.size <= lag:
            continue
        a, b = c[:-lag], c[lag:]
        ok = (a > 0) & (b > 0) & (a != b)
        t = np.flatnonzero(ok)
        keys.append((li << 24) | (a[t] << 12) | b[t])
        frames.append(t)
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(keys), np.concatenate(frames)
