"""Time-local MIR proxies, one value per contract window (pure functions).

Four proxies describe what happens inside each window (``start_sec`` … ``start_sec + WINDOW_SEC``):

=====================  ==============  ===========================================================
name                   unit / range    meaning
=====================  ==============  ===========================================================
onset_density          onsets / s      note onsets (chords merged within 30 ms) per second
tempo_stability        [0, 1]          strength of the dominant periodicity of the onset envelope: the
                                       highest normalised autocorrelation (tempogram) at lags of
                                       30–300 BPM; 1 = metronomic, 0 = no regular pulse
loudness_dynamics      dB >= 0         spread of loudness inside the window (95th − 5th percentile
                                       of frame loudness for audio; of note velocity in dB for MIDI)
pedal                  [0, 1]          MIDI: share of the window with the sustain pedal down; audio: mean
                                       sustain ratio (frame energy / its max over the previous 0.5 s),
                                       high when notes ring on
=====================  ==============  ===========================================================

:func:`midi_proxies` is used when an item has aligned MIDI (synthetic, PercePiano, ASAP renders),
:func:`audio_proxies` otherwise. Both share the onset-envelope → tempogram path so the tempo proxy is
on one scale. Non-finite values never come out: a window with no onsets has density 0 and stability 0.
"""

from __future__ import annotations

import numpy as np

from crescendai.core.audio import FRAME_SEC, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SEC
from crescendai.core.midi import onset_clusters

CHORD_SEC: float = 0.03
_MIN_BPM, _MAX_BPM = 30.0, 300.0


def tempo_stability(onset_env: np.ndarray, frame_sec: float = FRAME_SEC) -> float:
    """Peak normalised autocorrelation of an onset envelope at lags between 30 and 300 BPM.

    Args:
        onset_env: np.ndarray [shape=(T,)], non-negative onset strength per frame.
        frame_sec: seconds per frame, > 0.

    Returns:
        float in [0, 1]; 0 for a flat/empty envelope.
    """
    x = np.asarray(onset_env, dtype=np.float64)
    x = x - x.mean()
    T = x.size
    denom = float(np.dot(x, x))
    if T < 4 or denom <= 1e-12:
        return 0.0
    lo = max(1, int(np.floor(60.0 / _MAX_BPM / frame_sec)))
    hi = min(T - 1, int(np.ceil(60.0 / _MIN_BPM / frame_sec)))
    if hi <= lo:
        return 0.0
    ac = np.correlate(x, x, mode="full")[T - 1 :]  # lag 0..T-1
    # unbiased: scale each lag by T / (T - lag) so long lags are not penalised
    lags = np.arange(lo, hi + 1)
    r = ac[lags] / denom * T / (T - lags)
    return float(np.clip(r.max(), 0.0, 1.0))


def _window_slices(starts_sec: np.ndarray, n_frames_total: int) -> list[slice]:
    out = []
    for s in np.asarray(starts_sec, dtype=np.float64):
        f0 = int(round(s / FRAME_SEC))
        out.append(slice(min(f0, n_frames_total), min(f0 + WINDOW_FRAMES, n_frames_total)))
    return out


def audio_proxies(mel_power: np.ndarray, starts_sec: np.ndarray) -> np.ndarray:
    """Proxies from the mel power spectrogram of a whole recording.

    Args:
        mel_power: np.ndarray [shape=(T, 128)], mel power (time first), as :func:`crescendai.core.audio.mel_power`.
        starts_sec: np.ndarray [shape=(N,)], window start times in seconds.

    Returns:
        float32 [N, 4] in :data:`crescendai.core.columns.PROXY_NAMES` order.
    """
    import librosa

    S = np.asarray(mel_power, dtype=np.float32)
    T = S.shape[0]
    db = librosa.power_to_db(S.T, ref=max(float(S.max()), 1e-10), top_db=80.0)  # (128, T)
    env = librosa.onset.onset_strength(S=db, sr=SAMPLE_RATE, hop_length=512)  # (T,)
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=SAMPLE_RATE, hop_length=512, units="frames")
    energy = S.sum(axis=1)  # (T,)
    loud = 10.0 * np.log10(np.maximum(energy, 1e-10))
    # sustain ratio: energy relative to its running max over the previous 0.5 s
    k = max(1, int(round(0.5 / FRAME_SEC)))
    from scipy.ndimage import maximum_filter1d

    run_max = maximum_filter1d(energy, size=k, origin=(k - 1) // 2)
    sustain = np.where(run_max > 1e-10, energy / np.maximum(run_max, 1e-10), 0.0)
    audible = loud > loud.max() - 60.0
    out = np.zeros((len(starts_sec), 4), np.float32)
    for i, sl in enumerate(_window_slices(starts_sec, T)):
        if sl.stop <= sl.start:
            continue
        span = (sl.stop - sl.start) * FRAME_SEC
        n_on = int(np.count_nonzero((onsets >= sl.start) & (onsets < sl.stop)))
        out[i, 0] = n_on / max(span, FRAME_SEC)
        out[i, 1] = tempo_stability(env[sl]) if n_on >= 2 else 0.0
        a = audible[sl]
        if a.sum() >= 2:
            lv = loud[sl][a]
            out[i, 2] = float(np.percentile(lv, 95) - np.percentile(lv, 5))
            out[i, 3] = float(np.mean(sustain[sl][a]))
    return out


def midi_proxies(
    onsets_sec: np.ndarray,
    velocities: np.ndarray,
    pedal_times_sec: np.ndarray,
    pedal_down: np.ndarray,
    starts_sec: np.ndarray,
    *,
    window_sec: float = WINDOW_SEC,
) -> np.ndarray:
    """Proxies from aligned note and pedal events.

    Args:
        onsets_sec: np.ndarray [shape=(n,)], note onsets in seconds on the audio's time axis.
        velocities: np.ndarray [shape=(n,)], MIDI velocities 1–127.
        pedal_times_sec: np.ndarray [shape=(m,)], sorted sustain-pedal change times (seconds).
        pedal_down: np.ndarray [shape=(m,)], bool, pedal state after each change.
        starts_sec: np.ndarray [shape=(N,)], window starts in seconds.
        window_sec: window span in seconds.

    Returns:
        float32 [N, 4] in :data:`crescendai.core.columns.PROXY_NAMES` order.
    """
    on = np.asarray(onsets_sec, dtype=np.float64)
    vel = np.asarray(velocities, dtype=np.float64)
    order = np.argsort(on, kind="stable")
    on, vel = on[order], vel[order]
    cluster = onset_clusters(on, CHORD_SEC)  # chords count as one event
    events = on[np.r_[True, np.diff(cluster) > 0]] if on.size else on
    ptimes = np.asarray(pedal_times_sec, dtype=np.float64)
    pdown = np.asarray(pedal_down, dtype=bool)
    vel_db = 40.0 * np.log10(np.clip(vel, 1, 127) / 127.0)
    n_fr = int(round(window_sec / FRAME_SEC))
    out = np.zeros((len(starts_sec), 4), np.float32)
    for i, s in enumerate(np.asarray(starts_sec, dtype=np.float64)):
        e = s + window_sec
        ev = events[(events >= s) & (events < e)]
        out[i, 0] = ev.size / window_sec
        if ev.size >= 2:
            env = np.zeros(n_fr)
            np.add.at(env, np.clip(((ev - s) / FRAME_SEC).astype(int), 0, n_fr - 1), 1.0)
            # smear each onset over ~2 frames like an audio onset envelope
            env = np.convolve(env, [0.5, 1.0, 0.5], mode="same")
            out[i, 1] = tempo_stability(env)
        m = (on >= s) & (on < e)
        if m.sum() >= 2:
            out[i, 2] = float(np.percentile(vel_db[m], 95) - np.percentile(vel_db[m], 5))
        if ptimes.size:
            grid = s + (np.arange(n_fr) + 0.5) * FRAME_SEC
            idx = np.searchsorted(ptimes, grid, side="right") - 1
            down = np.where(idx >= 0, pdown[np.clip(idx, 0, None)], False)
            out[i, 3] = float(down.mean())
    return out
