"""Recording channels: synthetic rooms, mic distance, gain, noise, and a "phone" channel.

A :class:`Channel` is drawn from an RNG (:func:`sample_room`, :func:`sample_phone`) and applied by
:func:`apply_channel`, a pure function of (audio, channel, sample rate). Rooms are exponentially
decaying noise impulse responses with an RT60 (time to fall 60 dB) and a few early reflections;
the mic distance sets the direct-to-reverberant ratio and a high-frequency roll-off (air, angle).
The phone channel band-limits (≈ 150 Hz – 3.5…7 kHz), compresses (fast RMS compressor, as phone
AGC does), adds a small room and a higher noise floor. Outputs are peak-normalised to ``gain_db``
dBFS, so absolute level carries no information (as in real recordings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import butter, fftconvolve, lfilter, sosfilt

from crescendai.synth.mixer import high_shelf_sos


@dataclass(frozen=True)
class Channel:
    """One recording chain.

    Attributes:
        kind: "room" or "phone".
        rt60: seconds, reverberation time of the room (0 = dry).
        mic_distance: metres; sets wet/dry ratio and high-frequency loss.
        gain_db: output peak level in dBFS (≤ 0).
        noise_db: noise floor relative to the output peak, in dB.
        lowpass_hz: band limit (phone) or 0 for none.
        compress: 0–1 compression amount (phone AGC), 0 = none.
        ir_seed: seed of the room impulse response.
    """

    kind: str
    rt60: float
    mic_distance: float
    gain_db: float
    noise_db: float
    lowpass_hz: float
    compress: float
    ir_seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def sample_room(rng: np.random.Generator, rt60_min: float, rt60_max: float, noise_db: float) -> Channel:
    """A room/mic channel with RT60 uniform in [rt60_min, rt60_max] and mic distance 0.5–4 m."""
    return Channel("room", float(rng.uniform(rt60_min, rt60_max)), float(rng.uniform(0.5, 4.0)),
                   float(rng.uniform(-12.0, -1.0)), float(noise_db + rng.uniform(-6.0, 6.0)), 0.0, 0.0,
                   int(rng.integers(2**31)))


def sample_phone(rng: np.random.Generator) -> Channel:
    """A phone/laptop channel: small room, band limit, compression, audible noise."""
    return Channel("phone", float(rng.uniform(0.2, 0.5)), float(rng.uniform(0.5, 2.0)),
                   float(rng.uniform(-6.0, -1.0)), float(rng.uniform(-45.0, -32.0)),
                   float(rng.uniform(3500.0, 7000.0)), float(rng.uniform(0.5, 0.9)), int(rng.integers(2**31)))


def room_ir(rt60: float, sr: int, seed: int) -> np.ndarray:
    """float32 [n]: a synthetic room impulse response (unit direct sound first), reverb energy 1.

    Late reverb is noise decaying at 60 dB per ``rt60`` seconds, darker as it decays; a handful of
    early reflections precede it.
    """
    rng = np.random.default_rng(seed)
    n = max(int(rt60 * 1.2 * sr), 16)
    t = np.arange(n, dtype=np.float32) / sr
    tail = rng.standard_normal(n).astype(np.float32) * np.exp(-6.91 * t / max(rt60, 1e-3))
    tail = sosfilt(butter(1, 5000.0 if sr > 10000 else 0.4 * sr, fs=sr, output="sos"), tail)
    onset = int(0.008 * sr)
    tail[:onset] = 0
    for _ in range(6):
        i = int(rng.uniform(0.003, 0.03) * sr)
        tail[i] += rng.uniform(-1.0, 1.0) * 3.0
    tail /= float(np.sqrt(np.sum(tail**2))) or 1.0
    return tail.astype(np.float32)


def _compress(x: np.ndarray, sr: int, amount: float) -> np.ndarray:
    """Feed-forward RMS compressor (10 ms attack / 150 ms release blend), ratio up to ≈ 1:6."""
    env = np.sqrt(lfilter([1 - np.exp(-1 / (0.03 * sr))], [1, -np.exp(-1 / (0.03 * sr))], x**2) + 1e-12)
    ref = np.percentile(env, 95) + 1e-9
    gain = (env / ref) ** (-amount * 0.83)
    return (x * np.minimum(gain, 30.0)).astype(np.float32)


def apply_channel(x: np.ndarray, ch: Channel, sr: int, noise_seed: int) -> np.ndarray:
    """Pass dry audio through ``ch``; return float32 audio peaking at ``ch.gain_db`` dBFS.

    Args:
        x: float32 [n] dry audio.
        ch: the channel.
        sr: sample rate in Hz.
        noise_seed: seed for the additive noise (keeps the result a pure function).
    """
    y = x.astype(np.float32)
    if ch.rt60 > 0:
        wet = fftconvolve(y, room_ir(ch.rt60, sr, ch.ir_seed))[: len(y)].astype(np.float32)
        direct = 1.0 / (1.0 + ch.mic_distance / 1.5)
        y = direct * y + (1 - direct) * 0.6 * wet * np.float32(np.sqrt(sr / 1000.0) / 4.0)
        y = sosfilt(high_shelf_sos(4000.0, -0.6 * ch.mic_distance, sr), y).astype(np.float32)
    if ch.kind == "phone":
        y = sosfilt(butter(2, 150.0, btype="high", fs=sr, output="sos"), y)
        y = sosfilt(butter(4, min(ch.lowpass_hz, 0.45 * sr), fs=sr, output="sos"), y).astype(np.float32)
        y = _compress(y, sr, ch.compress)
    peak = float(np.max(np.abs(y))) or 1.0
    y = y / peak
    rng = np.random.default_rng(noise_seed)
    noise = rng.standard_normal(len(y)).astype(np.float32)
    if ch.kind == "phone":
        noise = sosfilt(butter(1, 2000.0, fs=sr, output="sos"), noise).astype(np.float32) * 2.0
    y = y + np.float32(10 ** (ch.noise_db / 20.0)) * noise
    y = y / (float(np.max(np.abs(y))) or 1.0) * np.float32(10 ** (ch.gain_db / 20.0))
    return y.astype(np.float32)
