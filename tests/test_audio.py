"""The preprocessing contract (DESIGN.md §2) and every bad-input error."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from crescendai.core import audio
from crescendai.core.audio import AudioError


def test_window_arithmetic():
    assert audio.WINDOW_SEC == pytest.approx(128 * 512 / 22050)
    assert audio.WINDOW_SEC == pytest.approx(2.972, abs=1e-3)
    assert audio.hop_frames(1.0) == 43  # 1 s ≈ 43.07 frames
    assert audio.n_frames(22050) == 44
    assert audio.n_windows(128, 43) == 1
    assert audio.n_windows(129, 43) == 2


def test_contract_shape_dtype_range(tone_fn):
    y = tone_fn(10.0)
    w = audio.windows_from_waveform(y, hop_sec=1.0)
    frames = audio.n_frames(y.size)
    assert len(w) == 1 + math.ceil((frames - 128) / 43)
    assert w.db.shape == (len(w), 128, 128)
    assert w.db.dtype == np.float32
    assert w.db.min() >= -80.0 and w.db.max() <= 0.0
    # ref=np.max per window: every non-padded window reaches exactly 0 dB
    assert np.allclose(w.db.max(axis=(1, 2)), 0.0)
    np.testing.assert_allclose(np.diff(w.start_sec), 43 * 512 / 22050)


def test_level_is_removed_per_window(tone_fn):
    y = tone_fn(4.0)
    a = audio.windows_from_waveform(y).db
    b = audio.windows_from_waveform(0.1 * y).db
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_tail_padding_is_masked_not_dropped(tone_fn):
    y = tone_fn(4.0)
    w = audio.windows_from_waveform(y, hop_sec=1.0)
    last = w.pad_mask[-1]
    assert last.any() and not w.pad_mask[0].any()
    assert np.all(w.db[-1][last] == -80.0)
    assert 0.0 < w.pad_fraction[-1] < 1.0
    # the tail of the recording is inside the last window
    assert w.start_sec[-1] + audio.WINDOW_SEC >= w.duration_sec


def test_short_input_gives_one_padded_window(tone_fn):
    w = audio.windows_from_waveform(tone_fn(1.0))
    assert len(w) == 1 and w.pad_fraction[0] > 0.5


def test_determinism(tone_fn):
    y = tone_fn(5.0)
    a = audio.windows_from_waveform(y).db
    b = audio.windows_from_waveform(y.copy()).db
    assert np.array_equal(a, b)


def test_resamples_and_downmixes_44k_stereo(wav_44k_stereo: Path):
    y = audio.load_audio(wav_44k_stereo)
    assert y.dtype == np.float32 and y.ndim == 1
    assert y.size == pytest.approx(6.5 * 22050, abs=2)
    # the 440 Hz tone survives resampling at the right frequency
    spec = np.abs(np.fft.rfft(y[:22050]))
    assert abs(np.argmax(spec) - 440) <= 1
    # downmix = mean of channels: amplitude 0.75 of the left channel
    left = sf.read(wav_44k_stereo)[0][:, 0]
    assert np.max(np.abs(y)) == pytest.approx(0.75 * np.max(np.abs(left)), rel=0.05)


@pytest.mark.parametrize("fmt", ["flac", "ogg"])
def test_reads_other_formats(tmp_path, tone_fn, fmt):
    p = tmp_path / f"x.{fmt}"
    sf.write(p, tone_fn(2.0), 22050)
    assert audio.load_audio(p).size == pytest.approx(2 * 22050, abs=600)


def test_streaming_equals_whole_file(tmp_path, tone_fn):
    p = tmp_path / "long.wav"
    sf.write(p, tone_fn(23.3, sr=44100), 44100)
    whole = audio.windows_from_file(p, hop_sec=1.0)
    parts = list(audio.stream_windows(p, hop_sec=1.0, chunk_windows=4))
    assert len(parts) > 1
    s = audio.concat_windows(parts)
    assert s.db.shape == whole.db.shape
    np.testing.assert_allclose(s.db, whole.db, atol=1e-3)
    assert np.array_equal(s.pad_mask, whole.pad_mask)
    np.testing.assert_allclose(s.start_sec, whole.start_sec)
    assert s.duration_sec == pytest.approx(whole.duration_sec)


def test_torch_batched_path_matches_reference(tone_fn):
    """Stated tolerance: mean |Δ| ≤ 0.05 dB and max |Δ| ≤ 1 dB against librosa."""
    ys = [tone_fn(7.0, freq=220.0), tone_fn(3.3, freq=880.0, seed=1), tone_fn(0.5, seed=2)]
    batched = audio.windows_from_waveforms_torch(ys, hop_sec=1.0)
    for y, b in zip(ys, batched, strict=True):
        ref = audio.windows_from_waveform(y, hop_sec=1.0)
        assert b.db.shape == ref.db.shape
        d = np.abs(b.db - ref.db)
        assert d.mean() <= 0.05 and d.max() <= 1.0
        assert np.array_equal(b.pad_mask, ref.pad_mask)


def test_silent_window_is_floor_not_zero(tone_fn):
    y = np.concatenate([tone_fn(3.0), np.zeros(22050 * 6, np.float32)])
    w = audio.windows_from_waveform(y, hop_sec=3.0)
    assert np.all(w.db[-1] == -80.0)


# ---- errors that name the file and the reason --------------------------------------------------


def test_missing_file(tmp_path):
    p = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="nope.wav.*not found"):
        audio.load_audio(p)


def test_corrupt_file(tmp_path):
    p = tmp_path / "corrupt.wav"
    p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioError, match="corrupt.wav.*cannot be read"):
        audio.load_audio(p)


def test_zero_length(tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros(0, np.float32), 22050)
    with pytest.raises(AudioError, match="empty.wav.*empty"):
        audio.load_audio(p)


def test_non_finite(tmp_path):
    p = tmp_path / "nan.wav"
    y = np.ones(22050, np.float32) * 0.1
    y[100] = np.nan
    sf.write(p, y, 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav.*NaN"):
        audio.load_audio(p)


def test_too_short(tmp_path, tone_fn):
    p = tmp_path / "short.wav"
    sf.write(p, tone_fn(0.5), 22050)
    with pytest.raises(AudioError, match=r"short.wav.*0\.50 s.*minimum 1\.00 s"):
        audio.load_audio(p, min_duration_sec=1.0)
    with pytest.raises(AudioError, match=r"short.wav.*0\.50 s.*minimum 1\.00 s"):
        list(audio.stream_windows(p, min_duration_sec=1.0))


def test_digital_silence(tmp_path):
    p = tmp_path / "silence.wav"
    sf.write(p, np.zeros(22050 * 2, np.float32), 22050)
    with pytest.raises(AudioError, match="silence.wav.*silence"):
        audio.load_audio(p)
    with pytest.raises(AudioError, match="silence.wav.*silence"):
        list(audio.stream_windows(p))


def test_not_mono_waveform():
    with pytest.raises(AudioError, match="mono"):
        audio.windows_from_waveform(np.zeros((2, 100), np.float32))
