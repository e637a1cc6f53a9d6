"""The preprocessing contract: audio file → mono 22 050 Hz → mel dB windows [128 time, 128 mel].

This module is the single source of truth for what the model sees, in training, evaluation and
inference (``../shared/DESIGN.md`` §2):

==========  ==================================================================================
input       mono float32 PCM at 22 050 Hz (resampled with soxr HQ and downmixed on load)
mel         n_fft 2048, hop 512, n_mels 128, Slaney mel scale and norm, power 2 (librosa defaults),
            centred frames with zero padding (librosa's ``pad_mode="constant"``)
dB          ``power_to_db(S, ref=np.max)`` per window, clipped to [-80, 0]; a window with no
            energy at all is -80 everywhere (not 0, which ``ref=np.max`` would give)
window      128 frames = 128 · 512 / 22 050 ≈ 2.972 s; layout [time, mel]; batches [B, 128, 128]
padding     a tail shorter than a window is padded with -80 dB and flagged in ``pad_mask``
==========  ==================================================================================

Frame ``t`` is centred on sample ``t · 512``; window ``i`` covers frames ``[i·h, i·h + 128)`` with
``h = round(hop_sec · 22050 / 512)`` frames, so it starts at ``i · h · 512 / 22050`` seconds.

The reference path is NumPy/librosa (:func:`mel_power`, :func:`windows_from_waveform`). The batched
torch path (:func:`windows_from_waveforms_torch`) computes the same thing for many recordings at once
on CPU or GPU; ``tests/test_audio.py`` holds it to the reference within 0.05 dB mean and 1 dB max.
Long files are streamed (:func:`stream_audio`, :func:`stream_windows`) so memory stays bounded; the
streamed windows equal the whole-file windows.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crescendai.core.errors import CrescendAIError

SAMPLE_RATE: int = 22050
"""Hz, every waveform the model sees."""
N_FFT: int = 2048
HOP_LENGTH: int = 512
N_MELS: int = 128
WINDOW_FRAMES: int = 128
DB_FLOOR: float = -80.0
"""dB, the floor of the clipped range [-80, 0]; also the padding value."""
WINDOW_SEC: float = WINDOW_FRAMES * HOP_LENGTH / SAMPLE_RATE
"""≈ 2.972 s, the span of one window."""
FRAME_SEC: float = HOP_LENGTH / SAMPLE_RATE
"""≈ 23.2 ms, the hop between frames."""
_AMIN: float = 1e-10


class AudioError(CrescendAIError):
    """A recording cannot be used. ``path`` names it, ``reason`` says why and what to do."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path or '<waveform>'}: {reason}")


@dataclass(frozen=True)
class Windows:
    """Contract windows of one recording.

    Attributes:
        db: float32 [N, 128, 128] = [window, time frame, mel band], values in [-80, 0] dB.
        pad_mask: bool [N, 128], True where a frame is padding past the end of the recording.
        start_sec: float64 [N], window start times in seconds.
        duration_sec: duration of the recording in seconds.
    """

    db: np.ndarray
    pad_mask: np.ndarray
    start_sec: np.ndarray
    duration_sec: float

    def __len__(self) -> int:
        return int(self.db.shape[0])

    @property
    def pad_fraction(self) -> np.ndarray:
        """float32 [N], share of padded frames per window in [0, 1)."""
        return self.pad_mask.mean(axis=1).astype(np.float32)


# ------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------


def check_waveform(
    y: np.ndarray,
    sr: int = SAMPLE_RATE,
    *,
    min_duration_sec: float = 0.0,
    source: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Validate a mono waveform and return it as float32.

    Args:
        y: np.ndarray [shape=(n,)], samples, nominally in [-1, 1].
        sr: sample rate in Hz, > 0.
        min_duration_sec: shortest acceptable duration in seconds, >= 0.
        source: the file the samples came from, for error messages.

    Raises:
        AudioError: empty, non-finite, all-zero (digital silence) or shorter than
            ``min_duration_sec``.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise AudioError(source, f"expected a mono waveform of shape (n,), got shape {y.shape}")
    if y.size == 0:
        raise AudioError(source, "the recording is empty (zero samples); record again or pick another file")
    if not np.all(np.isfinite(y)):
        bad = int(np.count_nonzero(~np.isfinite(y)))
        raise AudioError(source, f"{bad} samples are NaN or infinite; the file is damaged, export it again")
    duration = y.size / sr
    if duration < min_duration_sec:
        raise AudioError(
            source,
            f"the recording lasts {duration:.2f} s, shorter than the minimum {min_duration_sec:.2f} s; "
            "record a longer passage",
        )
    if not np.any(y):
        raise AudioError(source, "the recording is digital silence (all samples are zero); check the microphone")
    return y.astype(np.float32, copy=False)


def _open(path: Path):  # -> soundfile.SoundFile
    import soundfile as sf

    if not path.exists():
        raise AudioError(path, "file not found; check the path")
    if not path.is_file():
        raise AudioError(path, "not a file")
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(
            path, f"cannot be read as audio ({err}); use WAV, FLAC, OGG or MP3, or re-export the file"
        ) from None


def stream_audio(
    path: str | os.PathLike[str], *, sr: int = SAMPLE_RATE, block_sec: float = 60.0
) -> Iterator[np.ndarray]:
    """Yield consecutive float32 mono blocks of the file resampled to ``sr``.

    Downmix is the mean of channels; resampling is soxr HQ run as a stream, so memory is bounded
    by ``block_sec`` whatever the file's length. Concatenating the blocks gives :func:`load_audio`.

    Raises:
        AudioError: missing or unreadable file, or a decoding error mid-file.
    """
    import soundfile as sf
    import soxr

    p = Path(path)
    with _open(p) as f:
        native = int(f.samplerate)
        blocksize = max(1, int(block_sec * native))
        stream = None if native == sr else soxr.ResampleStream(native, sr, 1, dtype="float32", quality="HQ")
        try:
            blocks = f.blocks(blocksize=blocksize, dtype="float32", always_2d=True)
            pending: np.ndarray | None = None
            for block in blocks:
                mono = block.mean(axis=1, dtype=np.float32)
                if pending is not None:
                    yield pending
                pending = mono if stream is None else stream.resample_chunk(mono, last=False)
            if stream is not None:
                tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)
                pending = tail if pending is None else np.concatenate([pending, tail])
            if pending is not None:
                yield pending
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(p, f"decoding failed part-way ({err}); the file is damaged, export it again") from None


def load_audio(
    path: str | os.PathLike[str], *, sr: int = SAMPLE_RATE, min_duration_sec: float = 0.0
) -> np.ndarray:
    """Load any file soundfile reads (wav, flac, ogg, mp3, …) as mono float32 at ``sr`` Hz.

    Returns:
        np.ndarray [shape=(n,), dtype=float32].

    Raises:
        AudioError: missing, unreadable or corrupt file; zero-length audio; non-finite samples;
            digital silence; shorter than ``min_duration_sec`` seconds.

    Example:
        >>> y = load_audio("performance.flac")  # doctest: +SKIP
        >>> y.dtype, y.ndim
        (dtype('float32'), 1)
    """
    blocks = list(stream_audio(path, sr=sr))
    y = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return check_waveform(y, sr, min_duration_sec=min_duration_sec, source=path)


# ------------------------------------------------------------------------------------------
# mel and windows (reference path)
# ------------------------------------------------------------------------------------------


def n_frames(n_samples: int) -> int:
    """Number of centred STFT frames for ``n_samples`` samples (librosa ``center=True``)."""
    return 1 + n_samples // HOP_LENGTH


def hop_frames(hop_sec: float) -> int:
    """Window hop in frames for a hop in seconds (at least one frame)."""
    if hop_sec <= 0:
        raise ValueError(f"hop_sec must be > 0, got {hop_sec}")
    return max(1, round(hop_sec * SAMPLE_RATE / HOP_LENGTH))


def n_windows(frames: int, hop: int) -> int:
    """Windows needed to cover ``frames`` frames with hop ``hop``; the last may be padded."""
    if frames <= WINDOW_FRAMES:
        return 1
    return 1 + math.ceil((frames - WINDOW_FRAMES) / hop)


def mel_power(y: np.ndarray) -> np.ndarray:
    """Mel power spectrogram of a 22 050 Hz waveform.

    Args:
        y: np.ndarray [shape=(n,)], float32 mono at :data:`SAMPLE_RATE`.

    Returns:
        np.ndarray [shape=(n_frames(n), 128), dtype=float32], power (not dB), time first.
    """
    import librosa

    S = librosa.feature.melspectrogram(
        y=np.asarray(y, dtype=np.float32), sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH,
        n_mels=N_MELS, center=True, pad_mode="constant",
    )  # (128, T)
    return np.ascontiguousarray(S.T, dtype=np.float32)  # (T, 128)


def power_to_window_db(S: np.ndarray) -> np.ndarray:
    """Per-window dB: ``10 log10(S / max S)`` clipped to [-80, 0]; all -80 when ``max S`` is ~0.

    Args:
        S: np.ndarray [shape=(..., frames, mels)], mel power of one or more windows.

    Returns:
        float32 array of the same shape in [-80, 0].
    """
    S = np.asarray(S, dtype=np.float32)
    ref = S.max(axis=(-2, -1), keepdims=True)
    db = 10.0 * np.log10(np.maximum(S, _AMIN)) - 10.0 * np.log10(np.maximum(ref, _AMIN))
    db = np.where(ref > _AMIN, db, DB_FLOOR)
    return np.clip(db, DB_FLOOR, 0.0).astype(np.float32)


def windows_from_mel(S: np.ndarray, hop_sec: float, duration_sec: float, first_frame: int = 0) -> Windows:
    """Cut a mel power spectrogram [T, 128] into contract windows (see module docstring).

    ``first_frame`` is the index of ``S[0]`` in the whole recording (used when streaming).
    """
    T = S.shape[0]
    h = hop_frames(hop_sec)
    N = n_windows(T, h)
    padded = np.zeros((max(T, (N - 1) * h + WINDOW_FRAMES), N_MELS), np.float32)
    padded[:T] = S
    idx = np.arange(N)[:, None] * h + np.arange(WINDOW_FRAMES)[None, :]  # (N, 128)
    pad_mask = idx >= T
    db = power_to_window_db(np.where(pad_mask[..., None], 0.0, padded[idx]))
    db[pad_mask] = DB_FLOOR
    start = (first_frame + np.arange(N) * h) * FRAME_SEC
    return Windows(db=db, pad_mask=pad_mask, start_sec=start.astype(np.float64), duration_sec=duration_sec)


def windows_from_waveform(y: np.ndarray, hop_sec: float = 1.0) -> Windows:
    """The contract, reference path: 22 050 Hz mono waveform → :class:`Windows`.

    Args:
        y: np.ndarray [shape=(n,)], float32 mono at 22 050 Hz (see :func:`load_audio`).
        hop_sec: hop between window starts in seconds, > 0 (rounded to whole frames).

    Returns:
        Windows with ``db`` [N, 128, 128] in [-80, 0].

    Example:
        >>> w = windows_from_waveform(np.random.randn(22050 * 5).astype("float32") * 0.1)
        >>> w.db.shape
        (3, 128, 128)
    """
    y = check_waveform(y)
    return windows_from_mel(mel_power(y), hop_sec, y.size / SAMPLE_RATE)


def windows_from_file(
    path: str | os.PathLike[str], hop_sec: float = 1.0, *, min_duration_sec: float = 0.0
) -> Windows:
    """:func:`load_audio` then :func:`windows_from_waveform`."""
    return windows_from_waveform(load_audio(path, min_duration_sec=min_duration_sec), hop_sec)


def stream_windows(
    path: str | os.PathLike[str],
    hop_sec: float = 1.0,
    *,
    chunk_windows: int = 64,
    min_duration_sec: float = 0.0,
) -> Iterator[Windows]:
    """Yield the windows of a long file in batches of about ``chunk_windows``, with bounded memory.

    The concatenation of the yielded ``Windows`` equals :func:`windows_from_file` (each batch's
    ``start_sec`` is absolute; ``duration_sec`` of every batch is the running duration so far and is
    final in the last batch).

    Raises:
        AudioError: as :func:`load_audio`.
    """
    import librosa

    h = hop_frames(hop_sec)
    half = N_FFT // 2
    # signal buffer holds padded samples from absolute padded index `buf_start`
    buf = np.zeros(half, np.float32)  # the leading centre padding
    buf_start = 0
    next_frame = 0  # next frame index to compute
    mel = np.zeros((0, N_MELS), np.float32)  # frames [mel_start, next_frame)
    mel_start = 0
    next_window = 0
    total = 0
    seen_nonzero = False
    min_frames_for_batch = (chunk_windows - 1) * h + WINDOW_FRAMES

    def frames_ready(upto_padded: int) -> int:
        # frame t needs padded samples [t*512, t*512 + 2048)
        return max(0, (upto_padded - N_FFT) // HOP_LENGTH + 1)

    def emit(final: bool) -> Windows | None:
        nonlocal mel, mel_start, next_window
        avail_end = next_frame  # exclusive
        if final:
            n_total_frames = n_frames(total)
            N = n_windows(n_total_frames, h) - next_window
        else:
            N = max(0, (avail_end - WINDOW_FRAMES - next_window * h) // h + 1)
            if N < chunk_windows:
                return None
        if N <= 0:
            return None
        lo = next_window * h
        hi = min(avail_end, lo + (N - 1) * h + WINDOW_FRAMES)
        w = windows_from_mel(mel[lo - mel_start : hi - mel_start], hop_sec, total / SAMPLE_RATE, lo)
        w = Windows(w.db[:N], w.pad_mask[:N], w.start_sec[:N], w.duration_sec)
        next_window += N
        keep_from = next_window * h
        mel = mel[keep_from - mel_start :]
        mel_start = keep_from
        return w

    def compute(buf: np.ndarray, buf_start: int, upto: int) -> np.ndarray:
        nonlocal next_frame
        if upto <= next_frame:
            return np.zeros((0, N_MELS), np.float32)
        s = next_frame * HOP_LENGTH - buf_start
        e = (upto - 1) * HOP_LENGTH + N_FFT - buf_start
        S = librosa.feature.melspectrogram(
            y=buf[s:e], sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS, center=False
        ).T
        next_frame = upto
        return S.astype(np.float32)

    for block in stream_audio(path, block_sec=max(10.0, min_frames_for_batch * FRAME_SEC)):
        if not np.all(np.isfinite(block)):
            check_waveform(block, source=path)
        seen_nonzero = seen_nonzero or bool(np.any(block))
        total += block.size
        buf = np.concatenate([buf, block])
        upto = frames_ready(buf_start + buf.size)
        mel = np.concatenate([mel, compute(buf, buf_start, upto)])
        drop = next_frame * HOP_LENGTH - buf_start
        buf, buf_start = buf[drop:], buf_start + drop
        while (w := emit(False)) is not None:
            yield w
    _check_stream_summary(total, seen_nonzero, min_duration_sec, path)
    buf = np.concatenate([buf, np.zeros(half + N_FFT, np.float32)])
    mel = np.concatenate([mel, compute(buf, buf_start, n_frames(total))])
    w = emit(True)
    if w is not None:
        yield w


def _check_stream_summary(
    n_samples: int, any_nonzero: bool, min_duration_sec: float, path: str | os.PathLike[str]
) -> None:
    """The whole-file checks of :func:`check_waveform` from a streamed file's running summary."""
    if n_samples == 0:
        raise AudioError(path, "the recording is empty (zero samples); record again or pick another file")
    duration = n_samples / SAMPLE_RATE
    if duration < min_duration_sec:
        raise AudioError(
            path,
            f"the recording lasts {duration:.2f} s, shorter than the minimum {min_duration_sec:.2f} s; "
            "record a longer passage",
        )
    if not any_nonzero:
        raise AudioError(path, "the recording is digital silence (all samples are zero); check the microphone")


def concat_windows(parts: list[Windows]) -> Windows:
    """Concatenate windows of consecutive batches of one recording."""
    return Windows(
        db=np.concatenate([p.db for p in parts]),
        pad_mask=np.concatenate([p.pad_mask for p in parts]),
        start_sec=np.concatenate([p.start_sec for p in parts]),
        duration_sec=parts[-1].duration_sec,
    )


# ------------------------------------------------------------------------------------------
# batched torch path
# ------------------------------------------------------------------------------------------


_MEL_CACHE: dict[str, object] = {}


def _torch_mel(device: str):
    import torchaudio

    key = str(device)
    if key not in _MEL_CACHE:
        _MEL_CACHE[key] = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS,
            f_min=0.0, f_max=SAMPLE_RATE / 2, power=2.0, center=True, pad_mode="constant",
            norm="slaney", mel_scale="slaney",
        ).to(device)
    return _MEL_CACHE[key]


def windows_from_waveforms_torch(
    waveforms: list[np.ndarray], hop_sec: float = 1.0, *, device: str = "cpu"
) -> list[Windows]:
    """Batched torch (torchaudio) path of :func:`windows_from_waveform` for many recordings.

    Recordings are zero-padded to the longest, transformed in one batch on ``device`` (CPU or
    CUDA), then cut per recording. Equal to the reference within 0.05 dB mean absolute error.

    Args:
        waveforms: list of float32 mono 22 050 Hz arrays [n_i].
        hop_sec: window hop in seconds.
        device: torch device string.

    Returns:
        One :class:`Windows` per input, in order.
    """
    import torch

    ys = [check_waveform(y) for y in waveforms]
    longest = max(y.size for y in ys)
    batch = torch.zeros(len(ys), longest)
    for i, y in enumerate(ys):
        batch[i, : y.size] = torch.from_numpy(y)
    with torch.no_grad():
        S = _torch_mel(device)(batch.to(device)).transpose(1, 2)  # (B, T, 128)
        h = hop_frames(hop_sec)
        out: list[Windows] = []
        for i, y in enumerate(ys):
            T = n_frames(y.size)
            N = n_windows(T, h)
            Si = S[i, :T]
            need = (N - 1) * h + WINDOW_FRAMES
            if need > T:
                Si = torch.cat([Si, Si.new_zeros(need - T, N_MELS)])
            win = Si.unfold(0, WINDOW_FRAMES, h).transpose(1, 2)[:N]  # (N, 128, 128)
            idx = torch.arange(N, device=win.device)[:, None] * h + torch.arange(WINDOW_FRAMES, device=win.device)
            pad = idx >= T  # (N, 128)
            ref = win.amax(dim=(1, 2), keepdim=True)
            db = 10 * torch.log10(win.clamp_min(_AMIN)) - 10 * torch.log10(ref.clamp_min(_AMIN))
            db = torch.where(ref > _AMIN, db, torch.full_like(db, DB_FLOOR)).clamp(DB_FLOOR, 0.0)
            db = db.masked_fill(pad[..., None], DB_FLOOR)
            out.append(
                Windows(
                    db=db.float().cpu().numpy(),
                    pad_mask=pad.cpu().numpy(),
                    start_sec=np.arange(N) * h * FRAME_SEC,
                    duration_sec=y.size / SAMPLE_RATE,
                )
            )
    return out
