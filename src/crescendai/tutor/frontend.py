"""One pass over a recording: decode once, one STFT, and every frame feature the analysis needs.

:func:`read_recording` streams the file (``crescendai.core.audio.stream_audio``: decoded, downmixed
and resampled to 22 050 Hz once, 2.5-s blocks) and computes one centred STFT (``n_fft`` 2048, hop
512, periodic Hann, zero padding at both ends) block by block. Everything downstream reads the
resulting :class:`FrameFeatures`:

==================  ==================================================================  ============
``mel``             [T, 128] mel power: the model's windows and the saliency windows     T × 512 B
                    are cut from it (``crescendai.core.audio.windows_from_mel``)
``level_db``        [T] frame power in dB: pauses (``series.mark_quiet``), DTW silence   T × 4 B
``onset``           [T] onset envelope: beat tracking (:mod:`~crescendai.tutor.rhythm`)  T × 4 B
``chroma``          [12, T], only with a score: DTW alignment (``tutor.bars``)            T × 48 B
==================  ==================================================================  ============

So a 10-minute file is decoded and resampled once, transformed once, and held as ~13 MB of mel
frames (60 minutes: ~80 MB), never as samples.

Speed (10 minutes: ~0.4 s on two cores, 0.6 s before): a background thread decodes the next
blocks while the current one is transformed (:func:`_read_ahead`; soundfile and soxr release the
GIL), the STFT writes into buffers reused from block to block (:class:`_StftWorkspace`), and the
mel product multiplies only the bins where the filters are nonzero (:func:`mel_from_power`, 7 % of
the dense product; equal to it up to float32 summation order).

The arithmetic is librosa's, written in NumPy so that the tutor does not import librosa (whose
numba kernels compile at import, several seconds on a cold start): :func:`stft_power` equals
``np.abs(librosa.stft(y, center=False)) ** 2``, :func:`mel_filterbank` equals
``librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128)`` (Slaney scale and norm) and the onset
envelope equals ``librosa.onset.onset_strength`` (lag 1, no max filter, mean over bands) of the
log-mel; ``tests/test_frontend.py`` holds each to librosa. Chroma (score alignment only) still uses
``librosa.feature.chroma_stft``, imported when a score is given.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from crescendai.core.audio import (
    HOP_LENGTH,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
    WINDOW_FRAMES,
    Windows,
    _check_stream_summary,
    check_waveform,
    hop_frames,
    n_windows,
    stream_audio,
    windows_from_mel,
)

AMIN: float = 1e-10
"""Power floor of the dB conversions (−100 dB), as ``librosa.power_to_db(amin=1e-10)``."""


@dataclass(frozen=True)
class FrameFeatures:
    """Per-frame features of one recording at hop 512 (frame t centred on sample 512·t).

    Attributes:
        level_db: [T] frame power in dB (relative; for silence detection).
        onset: [T] onset strength (spectral flux of log-mel, >= 0).
        chroma: [12, T] chroma (each frame max-normalised) or None.
        duration_sec: recording duration.
        mel: [T, 128] float32 mel power (time first), the source of the model's windows; None
            when the features were built by hand (tests).
        audio: float32 [n] the decoded mono samples at 22 050 Hz, kept only when asked
            (``read_recording(..., keep_audio=True)``: the transcriber reads them), else None.
    """

    level_db: np.ndarray
    onset: np.ndarray
    chroma: np.ndarray | None
    duration_sec: float
    mel: np.ndarray | None = None
    audio: np.ndarray | None = None


# ------------------------------------------------------------------------------------------
# librosa's arithmetic in NumPy
# ------------------------------------------------------------------------------------------


def hann_periodic(n: int) -> np.ndarray:
    """float64 [n] periodic Hann window, bit for bit ``scipy.signal.get_window("hann", n)``."""
    fac = np.linspace(-np.pi, np.pi, n + 1, dtype=np.float64)
    w = np.zeros(n + 1, dtype=np.float64)
    for k, a in enumerate((0.5, 0.5)):
        w += a * np.cos(k * fac)
    return w[:-1]


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as ``librosa.hz_to_mel``."""
    f = np.asanyarray(hz, dtype=float)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mels = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, mels)


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`, as ``librosa.mel_to_hz``."""
    m = np.asanyarray(mels, dtype=float)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_frequencies(n_mels: int = N_MELS + 2, fmin: float = 0.0, fmax: float = SAMPLE_RATE / 2) -> np.ndarray:
    """[n_mels] frequencies (Hz) evenly spaced on the Slaney mel scale, as ``librosa.mel_frequencies``."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels))


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """float32 [128, 1025] Slaney-normalised triangular filters for 22 050 Hz, ``n_fft`` 2048:
    ``librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128)``. Read-only (cached)."""
    fftfreqs = np.fft.rfftfreq(n=N_FFT, d=1.0 / SAMPLE_RATE)
    mel_f = mel_frequencies(N_MELS + 2)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((N_MELS, 1 + N_FFT // 2), dtype=np.float32)
    for i in range(N_MELS):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2: N_MELS + 2] - mel_f[:N_MELS]))[:, np.newaxis]
    weights.setflags(write=False)
    return weights


def stft_power(y: np.ndarray) -> np.ndarray:
    """float32 [1025, n] power spectrum of every whole frame of ``y`` (no centring; frame k covers
    ``y[512·k : 512·k + 2048]``): ``np.abs(librosa.stft(y, n_fft=2048, hop_length=512,
    center=False)) ** 2``. ``y`` must hold at least 2048 samples."""
    return _StftWorkspace().power(y).T  # (1025, n), Fortran order like librosa's


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return hann_periodic(N_FFT)


class _StftWorkspace:
    """The buffers of :func:`stft_power`'s arithmetic, kept from one block to the next.

    A pass over a long file transforms a few hundred blocks; allocating the windowed frames
    (float64), both spectra (complex128, complex64) and the power (float32), several MB each, anew
    for every block costs more in page faults than the FFT itself. The values are those of
    :func:`stft_power` bit for bit (same dtypes, same operations, only written into reused arrays).
    """

    def __init__(self) -> None:
        self._capacity = 0

    def _reserve(self, n: int) -> None:
        if n > self._capacity:
            self._capacity = n
            self._frames = np.empty((n, N_FFT), np.float64)
            self._spec = np.empty((n, N_FFT // 2 + 1), np.complex128)
            self._spec32 = np.empty((n, N_FFT // 2 + 1), np.complex64)
            self._power = np.empty((n, N_FFT // 2 + 1), np.float32)

    def power(self, y: np.ndarray) -> np.ndarray:
        """float32 [n, 1025] power of every whole frame of ``y`` (frame k = ``y[512·k : 512·k +
        2048]``, periodic Hann, ``n`` ≥ 1): the transpose of :func:`stft_power`. The result is a
        view of the workspace, overwritten by the next call."""
        frames = sliding_window_view(np.asarray(y, np.float32), N_FFT)[::HOP_LENGTH]  # (n, 2048) view
        n = frames.shape[0]
        self._reserve(n)
        windowed = np.multiply(frames, _window(), out=self._frames[:n])  # float64, as float32 · float64
        spec = np.fft.rfft(windowed, axis=-1, out=self._spec[:n])
        spec32 = self._spec32[:n]
        np.copyto(spec32, spec, casting="same_kind")  # = spec.astype(complex64)
        power = np.abs(spec32, out=self._power[:n])
        return np.square(power, out=power)


def power_to_db(S: np.ndarray) -> np.ndarray:
    """``10 log10(max(S, 1e-10))`` (dB re 1, floor −100 dB), as ``librosa.power_to_db(S,
    amin=1e-10, top_db=None)``; same dtype as ``S``."""
    return 10.0 * np.log10(np.maximum(AMIN, S))


def onset_flux(mel_db: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
    """float32 [n] onset strength of log-mel frames ``mel_db`` [128, n] following the frame
    ``prev`` [128, 1] (None: the first frame follows itself, onset 0): the mean over bands of the
    positive increase, as ``librosa.onset.onset_strength(S=…, lag=1, max_size=1,
    aggregate=np.mean, center=False)``."""
    S = np.hstack([mel_db[:, :1] if prev is None else prev, mel_db])
    flux = np.maximum(0.0, S[:, 1:] - S[:, :-1])  # (128, n), C order: bands summed in order
    return flux.mean(axis=0).astype(np.float32)


@lru_cache(maxsize=1)
def _mel_groups() -> tuple[tuple[int, int, int, int], ...]:
    """(first band, end band, first bin, end bin) of the mel filters in groups of 8 bands: every
    nonzero weight of a group's filters lies in its bins (7 % of the filterbank's [128, 1025])."""
    nonzero = mel_filterbank() != 0
    groups = []
    for b0 in range(0, N_MELS, 8):
        cols = np.flatnonzero(nonzero[b0: b0 + 8].any(axis=0))
        lo, hi = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 1)
        groups.append((b0, min(b0 + 8, N_MELS), lo, hi))
    return tuple(groups)


def mel_from_power(S: np.ndarray) -> np.ndarray:
    """float32 [128, n] mel power of power spectra ``S`` float32 [1025, n]: ``mel_filterbank() @ S``,
    multiplied only over the bins where each group of filters is nonzero (the products and sums of
    the full product less its zero terms, so equal to it up to float32 summation order)."""
    fb = mel_filterbank()
    mel = np.empty((N_MELS, S.shape[1]), np.float32)
    for b0, b1, lo, hi in _mel_groups():
        mel[b0:b1] = fb[b0:b1, lo:hi] @ S[lo:hi]
    return mel


# ------------------------------------------------------------------------------------------
# the one pass
# ------------------------------------------------------------------------------------------


def read_recording(
    path: str | os.PathLike[str], *, chroma: bool = False, min_duration_sec: float = 0.0,
    block_sec: float = 2.5, keep_audio: bool = False,
) -> FrameFeatures:
    """Decode ``path`` once and compute its :class:`FrameFeatures` (``mel`` included) in one pass.

    Equal to the centred STFT of the whole file (librosa ``center=True``, zero padding),
    computed block by block (``block_sec`` blocks, ``n_fft − hop`` samples carried over), so memory
    is the mel frames plus one block whatever the file's length.

    Args:
        path: any file soundfile reads; any rate and channel count.
        chroma: also compute chroma (``librosa.feature.chroma_stft``, A440, per-frame max-normalised).
        min_duration_sec: shortest acceptable recording.
        block_sec: decoding block, seconds.
        keep_audio: also keep the decoded samples (``FrameFeatures.audio``; 5.3 MB a minute) for
            the transcriber, so that the notes come from the same single decode.

    Raises:
        AudioError: missing, unreadable or corrupt file, non-finite samples, digital silence, or
            shorter than ``min_duration_sec`` (the messages of ``crescendai.core.audio``).
    """
    chroma_fn = None
    if chroma:
        import librosa

        def chroma_fn(S: np.ndarray) -> np.ndarray:
            c = librosa.feature.chroma_stft(S=S, sr=SAMPLE_RATE, n_fft=N_FFT, tuning=0.0)
            return c.astype(np.float32)

    workspace = _StftWorkspace()
    levels: list[np.ndarray] = []
    onsets: list[np.ndarray] = []
    chromas: list[np.ndarray] = []
    # the mel frames go straight into one array sized from the file's header (no copy at the end)
    mel_buf = [np.empty((max(_expected_frames(path), 1024), N_MELS), np.float32)]
    n_mel = [0]
    prev: list[np.ndarray | None] = [None]  # [128, 1]: log-mel of the frame before the block
    buf = np.zeros(N_FFT // 2, np.float32)  # centring: the signal starts N_FFT / 2 into frame 0
    total = 0
    nonzero = False
    kept: list[np.ndarray] = []

    def consume(buf: np.ndarray) -> np.ndarray:
        """Features of every whole frame in ``buf``; returns the samples the next frame needs."""
        n = 0 if buf.size < N_FFT else 1 + (buf.size - N_FFT) // HOP_LENGTH
        if n == 0:
            return buf
        S = workspace.power(buf[: (n - 1) * HOP_LENGTH + N_FFT]).T  # (1025, n), reused buffer
        levels.append(power_to_db(S.sum(axis=0)))
        mel = mel_from_power(S)  # (128, n)
        mel_db = power_to_db(mel)
        onsets.append(onset_flux(mel_db, prev[0]))
        prev[0] = mel_db[:, -1:]
        if n_mel[0] + n > len(mel_buf[0]):  # the header underestimated: grow by half
            grown = np.empty((max(len(mel_buf[0]) * 3 // 2, n_mel[0] + n), N_MELS), np.float32)
            grown[: n_mel[0]] = mel_buf[0][: n_mel[0]]
            mel_buf[0] = grown
        mel_buf[0][n_mel[0]: n_mel[0] + n] = mel.T  # (n, 128)
        n_mel[0] += n
        if chroma_fn is not None:
            chromas.append(chroma_fn(S))
        return buf[n * HOP_LENGTH:]

    # the next blocks decode while this one is transformed; closing stops the decoder on any exit
    with contextlib.closing(_read_ahead(stream_audio(path, block_sec=block_sec))) as blocks:
        for block in blocks:
            if not np.all(np.isfinite(block)):
                check_waveform(block, source=path)  # raises, naming the file
            nonzero = nonzero or bool(np.any(block))
            total += block.size
            if keep_audio:
                kept.append(block)
            buf = consume(np.concatenate([buf, block]))
    _check_stream_summary(total, nonzero, min_duration_sec, path)
    consume(np.concatenate([buf, np.zeros(N_FFT // 2, np.float32)]))
    T = 1 + total // HOP_LENGTH
    return FrameFeatures(
        level_db=np.concatenate(levels)[:T],
        onset=np.concatenate(onsets)[:T],
        chroma=np.concatenate(chromas, axis=1)[:, :T] if chromas else None,
        duration_sec=total / SAMPLE_RATE,
        mel=mel_buf[0][: min(T, n_mel[0])],
        audio=np.concatenate(kept) if keep_audio else None,
    )


def _read_ahead(blocks: Iterator[np.ndarray], depth: int = 4) -> Iterator[np.ndarray]:
    """The items of ``blocks`` in order, produced by a background thread up to ``depth`` ahead.

    Decoding and resampling (soundfile, soxr) release the GIL, so on two cores the next blocks are
    decoded while this thread transforms the current one. An exception raised by ``blocks`` is
    raised here, after the items before it. However the caller stops (exhausted, an exception, or
    closing this generator early), the producer is stopped and joined, and ``blocks`` closed (so the
    file is closed), before this generator finishes.
    """
    items: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)  # (is_last, item or error)
    stop = threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                items.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for block in blocks:
                if not put((False, block)):
                    return
            put((True, None))
        except BaseException as err:  # handed to the consumer, raised there
            put((True, err))
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="crescendai-decode", daemon=True)
    worker.start()
    try:
        while True:
            last, item = items.get()
            if last:
                if isinstance(item, BaseException):
                    raise item
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


def _expected_frames(path: str | os.PathLike[str]) -> int:
    """Frames of the centred STFT of ``path`` at 22 050 Hz by its header (0 when unreadable: the
    pass itself reports why)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:  # unreadable: the pass itself raises the AudioError that names the file
        return 0
    return 2 + int(np.ceil(info.frames * SAMPLE_RATE / max(1, info.samplerate))) // HOP_LENGTH


# ------------------------------------------------------------------------------------------
# the model's windows, cut from the mel frames
# ------------------------------------------------------------------------------------------


def _need_mel(feats: FrameFeatures) -> np.ndarray:
    if feats.mel is None:
        raise ValueError("these FrameFeatures carry no mel frames; build them with read_recording")
    return feats.mel


def iter_windows(feats: FrameFeatures, hop_sec: float, chunk_windows: int = 64) -> Iterator[Windows]:
    """The contract windows of the recording in batches of ``chunk_windows``, cut from
    ``feats.mel``: equal to ``crescendai.core.audio.stream_windows`` of the file (absolute
    ``start_sec``; every batch's ``duration_sec`` is the recording's)."""
    mel = _need_mel(feats)
    T, h = mel.shape[0], hop_frames(hop_sec)
    N = n_windows(T, h)
    for i0 in range(0, N, chunk_windows):
        n = min(chunk_windows, N - i0)
        lo = i0 * h
        hi = min(T, lo + (n - 1) * h + WINDOW_FRAMES)
        w = windows_from_mel(mel[lo:hi], hop_sec, feats.duration_sec, lo)
        yield Windows(w.db[:n], w.pad_mask[:n], w.start_sec[:n], w.duration_sec)


def window_at(feats: FrameFeatures, index: int, hop_sec: float) -> Windows:
    """Window ``index`` alone (a :class:`~crescendai.core.audio.Windows` of length 1), exactly as
    :func:`iter_windows` cuts it."""
    mel = _need_mel(feats)
    lo = index * hop_frames(hop_sec)
    w = windows_from_mel(mel[lo: lo + WINDOW_FRAMES], hop_sec, feats.duration_sec, lo)
    return Windows(w.db[:1], w.pad_mask[:1], w.start_sec[:1], w.duration_sec)
