"""Tempo and beats from an onset envelope: librosa 0.11's estimators, in NumPy.

:func:`tempo` is ``librosa.feature.tempo`` (autocorrelation tempogram over 8 s, log-normal prior
around ``start_bpm``, mean over time) and :func:`beat_track` is ``librosa.beat.beat_track`` with a
given tempo (Ellis 2007 dynamic programming: Gaussian-smoothed local score, log-interval
penalty with tightness 100, backtrack from the last strong peak, weak leading and trailing beats
trimmed). librosa runs these as numba kernels, one of which compiles at every import (seconds
on a cold start); here the dynamic programme is one NumPy step per frame (~0.1 s for 10 minutes).
``tests/test_frontend.py`` compares both with librosa on rendered and synthetic recordings.

All at the contract's frame rate (hop 512 at 22 050 Hz, :data:`FRAME_RATE` frames per second).
"""

from __future__ import annotations

import numpy as np

from crescendai.core.audio import HOP_LENGTH, SAMPLE_RATE

FRAME_RATE: float = SAMPLE_RATE / HOP_LENGTH
"""Onset-envelope frames per second (≈ 43.07)."""
AC_FRAMES: int = int(np.floor(8.0 * SAMPLE_RATE / HOP_LENGTH))
"""Autocorrelation window of the tempogram: 8 s = 344 frames (``librosa`` ``ac_size=8``)."""
TIGHTNESS: float = 100.0
"""How strongly the beat tracker keeps to the tempo (librosa's default)."""


def _next_fast_len(n: int) -> int:
    """Smallest 5-smooth integer >= ``n`` (``scipy.fft.next_fast_len(n, real=True)``)."""
    best = None
    p5 = 1
    while p5 < 2 * n:
        p35 = p5
        while p35 < 2 * n:
            m = p35
            while m < n:
                m *= 2
            best = m if best is None else min(best, m)
            p35 *= 3
        p5 *= 5
    return int(best or 1)


def tempogram(onset: np.ndarray, win_length: int = AC_FRAMES) -> np.ndarray:
    """float64 [win_length, T] autocorrelation tempogram of ``onset`` [T] (centred Hann-windowed
    frames, linear-ramp padding, each column max-normalised), as ``librosa.feature.tempogram``."""
    n = onset.shape[-1]
    half = win_length // 2
    padded = np.pad(onset, (half, half), mode="linear_ramp", end_values=(0, 0))
    frames = np.lib.stride_tricks.sliding_window_view(padded, win_length).T[:, :n]  # (win, T)
    x = frames * _hann(win_length)[:, None]  # (win, T) float64
    n_pad = _next_fast_len(2 * win_length - 1)
    spec = np.fft.rfft(x, n=n_pad, axis=0)
    ac = np.fft.irfft(spec.real**2 + spec.imag**2, n=n_pad, axis=0)[:win_length]  # (win, T)
    length = np.max(np.abs(ac).astype(float), axis=0, keepdims=True)
    length[length < np.finfo(ac.dtype).tiny] = 1.0
    return ac / length


def _hann(n: int) -> np.ndarray:
    from crescendai.tutor.frontend import hann_periodic

    return hann_periodic(n)


def tempo_frequencies(n_bins: int) -> np.ndarray:
    """[n_bins] beats per minute of each autocorrelation lag (lag 0: inf)."""
    bpm = np.zeros(n_bins)
    bpm[0] = np.inf
    bpm[1:] = 60.0 * SAMPLE_RATE / (HOP_LENGTH * np.arange(1.0, n_bins))
    return bpm


def tempo(onset: np.ndarray, start_bpm: float = 120.0, std_bpm: float = 1.0, max_tempo: float = 320.0
          ) -> float:
    """Global tempo (bpm) of an onset envelope [T], as ``librosa.feature.tempo(onset_envelope=…,
    start_bpm=…)``: the autocorrelation lag maximising ``log1p(1e6 · mean tempogram)`` plus a
    log-normal prior (``std_bpm`` octaves) around ``start_bpm``, tempos from ``max_tempo`` up excluded."""
    if start_bpm <= 0:
        raise ValueError(f"start_bpm must be > 0, got {start_bpm}")
    tg = np.mean(tempogram(onset), axis=-1, keepdims=True)  # (win, 1)
    bpms = tempo_frequencies(AC_FRAMES)
    with np.errstate(divide="ignore", invalid="ignore"):
        logprior = -0.5 * ((np.log2(bpms) - np.log2(start_bpm)) / std_bpm) ** 2
    logprior[: int(np.argmax(bpms < max_tempo))] = -np.inf
    best = int(np.argmax(np.log1p(1e6 * tg) + logprior[:, None], axis=0)[0])
    return float(bpms[best])


def _local_score(onset: np.ndarray, frames_per_beat: float) -> np.ndarray:
    """The onset envelope (std-normalised) smoothed by a Gaussian of ± one beat (σ = beat / 32)."""
    x = onset / (onset.std(ddof=1, axis=-1, keepdims=True) + np.finfo(onset.dtype).tiny)
    fpb = np.float32(frames_per_beat)
    window = np.exp(-0.5 * (np.arange(-fpb, fpb + 1) * 32.0 / fpb) ** 2)
    x = x.astype(np.float64)
    x[0] = 0.0  # librosa's loop never reads the first frame
    return np.convolve(x, window, mode="same").astype(onset.dtype)


def beat_track(onset: np.ndarray, bpm: float, tightness: float = TIGHTNESS, trim: bool = True
               ) -> np.ndarray:
    """Beat frames (int, increasing) of an onset envelope [T] at tempo ``bpm``, as
    ``librosa.beat.beat_track(onset_envelope=onset, bpm=bpm, units="frames")[1]``.

    Raises:
        ValueError: ``bpm`` or ``tightness`` not positive.
    """
    onset = np.asarray(onset)
    if bpm <= 0 or tightness <= 0:
        raise ValueError(f"bpm ({bpm}) and tightness ({tightness}) must be > 0")
    if onset.size == 0 or not onset.any():
        return np.zeros(0, int)
    fpb = float(np.round(FRAME_RATE * 60.0 / bpm))
    local = _local_score(onset, fpb)
    backlink, cumscore = _dp(local, fpb, tightness)
    tail = _last_beat(cumscore)
    beats = np.zeros(onset.shape, bool)
    n = tail
    while n >= 0:
        beats[n] = True
        n = backlink[n]
    return np.flatnonzero(_trim_beats(local, beats, trim))


def _dp(local: np.ndarray, fpb: float, tightness: float) -> tuple[np.ndarray, np.ndarray]:
    """(backlink [T] int, cumulative score [T]) of the beat dynamic programme: each frame's best
    predecessor between 2 beats and half a beat back, penalised by ``tightness · log(gap / beat)²``."""
    T = local.shape[0]
    f32 = np.float32(fpb)
    lo = int(np.round(f32 / 2))  # nearest predecessor offset
    hi = int(2 * f32)  # farthest
    gaps = np.arange(lo, hi + 1)  # offsets, nearest first (ties: the nearest wins, as librosa)
    penalty = np.float64(np.float32(tightness)) * (np.log(gaps) - np.float64(np.log(f32))) ** 2
    thresh = 0.01 * float(local.max())
    backlink = np.full(T, -1, np.int64)
    cumscore = np.zeros(T, local.dtype)
    cum64 = np.zeros(T)  # cumscore as float64, for the vectorised search
    first = True
    for i in range(T):
        s_i = local[i]
        best_loc, best = -1, -np.inf
        if i >= lo:
            k = min(i, hi) - lo + 1  # candidates at offsets gaps[:k] (frames i - gaps >= 0)
            cand = cum64[i - gaps[:k]] - penalty[:k]
            j = int(np.argmax(cand))
            best_loc, best = i - int(gaps[j]), float(cand[j])
        cumscore[i] = s_i + best if best_loc >= 0 else s_i
        cum64[i] = cumscore[i]
        if first and s_i < thresh:
            backlink[i] = -1
        else:
            backlink[i] = best_loc
            first = False
    return backlink, cumscore


def _last_beat(cumscore: np.ndarray) -> int:
    """The last local maximum of the cumulative score at or above half the median local maximum."""
    x = cumscore
    peak = np.zeros(x.shape, bool)
    if x.size > 2:
        peak[1:-1] = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])
    if x.size > 1:
        peak[-1] = x[-1] > x[-2]
    median = np.ma.median(np.ma.masked_array(data=x, mask=~peak), axis=-1)
    threshold = x.dtype.type(0.5 * np.ma.getdata(median))
    ok = np.flatnonzero(peak & (x >= threshold))
    return int(ok[-1]) if ok.size else x.size - 1


def _trim_beats(local: np.ndarray, beats: np.ndarray, trim: bool) -> np.ndarray:
    """Drop leading and trailing beats whose local score is at most half the RMS of the smoothed
    beat envelope (any with a zero local score when ``trim`` is False)."""
    out = beats.copy()
    w = np.hanning(5)
    smooth = np.convolve(local[beats], w)[len(w) // 2: len(local) + len(w) // 2]
    threshold = 0.5 * ((smooth**2).mean() ** 0.5) if trim and smooth.size else 0.0
    n = 0
    while n < local.size and local[n] <= threshold:
        out[n] = False
        n += 1
    n = local.size - 1
    while n >= 0 and local[n] <= threshold:
        out[n] = False
        n -= 1
    return out


def normalize_max(x: np.ndarray) -> np.ndarray:
    """``x`` divided by its largest magnitude (unchanged when that is ~0), as
    ``librosa.util.normalize(x)``."""
    length = float(np.max(np.abs(x).astype(float))) if x.size else 0.0
    if length < np.finfo(np.asarray(x).dtype).tiny:
        length = 1.0
    return (x / np.float64(length)).astype(np.asarray(x).dtype)
