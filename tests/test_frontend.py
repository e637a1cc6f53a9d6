"""The tutor's one pass over a recording, held to librosa: STFT, mel, onset, level, chroma, the
model's windows, tempo and beats; and the cold start that avoids librosa, numba and torch's compiler."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from crescendai.core import audio
from crescendai.core.audio import AudioError, concat_windows, stream_windows
from crescendai.tutor import frontend, rhythm
from tutor_fixtures import piece, render, save_tiny_bundle, write_audio

librosa = pytest.importorskip("librosa")


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    d = tmp_path_factory.mktemp("front")
    y = render(piece(12, 3, 90, seed=1, timing_jitter=0.01))
    rng = np.random.default_rng(0)
    stereo = np.stack([y, 0.5 * y + rng.normal(0, 0.01, y.size).astype(np.float32)], axis=1)
    return {"dir": d, "y": y, "mono": write_audio(d / "perf.wav", y),
            "stereo44": write_audio(d / "perf44.flac", np.repeat(stereo, 2, axis=0), sr=44100)}


def test_window_filterbank_and_mel_scale_equal_librosa():
    import scipy.signal

    assert np.array_equal(frontend.hann_periodic(2048), scipy.signal.get_window("hann", 2048))
    assert np.array_equal(frontend.mel_filterbank(), librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128))
    assert np.array_equal(frontend.mel_frequencies(130), librosa.mel_frequencies(n_mels=130, fmax=11025))
    hz = np.array([0.0, 440.0, 999.0, 1000.0, 5000.0])
    np.testing.assert_allclose(frontend.mel_to_hz(frontend.hz_to_mel(hz)), hz, atol=1e-9)


def test_stft_power_equals_librosa():
    y = np.random.default_rng(1).normal(0, 0.1, 22050 * 3).astype(np.float32)
    ref = np.abs(librosa.stft(y, n_fft=2048, hop_length=512, center=False)) ** 2
    assert np.array_equal(frontend.stft_power(y), ref)


@pytest.mark.parametrize("name", ["mono", "stereo44"])
def test_one_pass_equals_librosa_per_feature(fx, name):
    """Level, onset and chroma as librosa computes them on the centred STFT of the whole file;
    the windows as ``stream_windows`` cuts them (mel products may differ in the last bit)."""
    path = fx[name]
    f = frontend.read_recording(path, chroma=True)
    y = audio.load_audio(path)
    S = np.abs(librosa.stft(y, n_fft=2048, hop_length=512, center=True, pad_mode="constant")) ** 2
    T = 1 + y.size // 512
    assert f.mel.shape == (T, 128) and f.level_db.shape == f.onset.shape == (T,)
    assert f.duration_sec == pytest.approx(y.size / 22050)
    np.testing.assert_allclose(f.level_db, librosa.power_to_db(S.sum(axis=0), amin=1e-10, top_db=None),
                               atol=1e-3)
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=S, sr=22050, n_mels=128), amin=1e-10,
                                 top_db=None)
    onset = librosa.onset.onset_strength(S=mel_db, lag=1, max_size=1, aggregate=np.mean, center=False)
    np.testing.assert_allclose(f.onset, onset, atol=1e-3)
    chroma = librosa.feature.chroma_stft(S=S, sr=22050, n_fft=2048, tuning=0.0)
    np.testing.assert_allclose(f.chroma, chroma, atol=1e-4)
    ref = concat_windows(list(stream_windows(path, 1.0, chunk_windows=4)))
    got = concat_windows(list(frontend.iter_windows(f, 1.0, chunk_windows=5)))
    assert np.array_equal(got.pad_mask, ref.pad_mask) and np.array_equal(got.start_sec, ref.start_sec)
    np.testing.assert_allclose(got.db, ref.db, atol=1e-3)
    assert got.duration_sec == ref.duration_sec
    for i in (0, len(got) // 2, len(got) - 1):  # saliency cuts the very windows that were scored
        w = frontend.window_at(f, i, 1.0)
        assert np.array_equal(w.db[0], got.db[i]) and np.array_equal(w.pad_mask[0], got.pad_mask[i])


def test_mel_from_power_equals_the_full_filterbank_product():
    S = frontend.stft_power(np.random.default_rng(2).normal(0, 0.1, 22050 * 2).astype(np.float32))
    full = frontend.mel_filterbank() @ S
    np.testing.assert_allclose(frontend.mel_from_power(S), full, rtol=1e-5, atol=0)


def test_block_size_does_not_change_the_features(fx):
    """Blocks of any size (reused STFT buffers that grow, the decode running ahead) give the same
    frames as one block."""
    ref = frontend.read_recording(fx["stereo44"], block_sec=60.0)
    for block_sec in (0.3, 1.1):
        got = frontend.read_recording(fx["stereo44"], block_sec=block_sec)
        assert got.mel.shape == ref.mel.shape and got.duration_sec == ref.duration_sec
        np.testing.assert_allclose(got.mel, ref.mel, rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(got.level_db, ref.level_db, atol=1e-4)
        np.testing.assert_allclose(got.onset, ref.onset, atol=1e-4)


def test_read_ahead_keeps_order_raises_in_place_and_closes_its_source():
    closed = []

    def source(fail_at: int | None):
        try:
            for i in range(10):
                if i == fail_at:
                    raise ValueError("broken block")
                yield np.full(3, i, np.float32)
        finally:
            closed.append(fail_at)

    assert [int(b[0]) for b in frontend._read_ahead(source(None), depth=2)] == list(range(10))
    got = []
    with pytest.raises(ValueError, match="broken block"):
        for b in frontend._read_ahead(source(4), depth=2):
            got.append(int(b[0]))
    assert got == [0, 1, 2, 3]
    early = frontend._read_ahead(source(-1), depth=2)
    assert int(next(early)[0]) == 0
    early.close()  # the consumer stops: the producer is joined and the source closed
    assert closed == [None, 4, -1]


def test_bad_recordings_are_audio_errors_naming_the_file(fx):
    d = fx["dir"]
    silent = write_audio(d / "silent.wav", np.zeros(22050 * 4, np.float32))
    with pytest.raises(AudioError, match="silent.wav: .*digital silence"):
        frontend.read_recording(silent)
    short = write_audio(d / "short.wav", fx["y"][:22050])
    with pytest.raises(AudioError, match="short.wav: .*shorter than the minimum 3.00 s"):
        frontend.read_recording(short, min_duration_sec=3.0)
    (d / "junk.wav").write_bytes(b"RIFF....WAVEfmt junk" * 8)
    with pytest.raises(AudioError, match="junk.wav: cannot be read as audio"):
        frontend.read_recording(d / "junk.wav")


def test_tempo_and_beats_equal_librosa(fx):
    f = frontend.read_recording(fx["stereo44"])
    onset = np.concatenate([f.onset, f.onset[:900]])  # long enough for a few tempogram frames
    for start in (120.0, 90.0):
        t = rhythm.tempo(onset, start)
        assert t == float(librosa.feature.tempo(onset_envelope=onset, sr=22050, hop_length=512,
                                                 start_bpm=start)[0])
        _, beats = librosa.beat.beat_track(onset_envelope=onset, sr=22050, hop_length=512, bpm=t,
                                           units="frames")
        assert np.array_equal(rhythm.beat_track(onset, t), beats)
    assert np.array_equal(rhythm.normalize_max(onset), librosa.util.normalize(onset))
    assert rhythm.beat_track(np.zeros(100, np.float32), 100.0).size == 0
    assert rhythm._next_fast_len(687) == 720  # scipy.fft.next_fast_len(687, real=True)


def test_analysis_decodes_the_recording_once(fx, monkeypatch):
    from crescendai.tutor import analysis
    from crescendai.tutor.bundle import Bundle, IdentityCalibration, split_model
    from crescendai.tutor.scorer import TorchScorer
    from tutor_fixtures import tiny_model

    calls = []
    real = frontend.stream_audio
    monkeypatch.setattr(frontend, "stream_audio", lambda *a, **k: calls.append(a) or real(*a, **k))
    monkeypatch.setattr(audio, "stream_audio", lambda *a, **k: pytest.fail("second decode"))
    backbone, head, _ = split_model(tiny_model())
    a = analysis.analyze_file(fx["mono"], Bundle(TorchScorer(backbone, head), IdentityCalibration(), "tiny"))
    assert len(calls) == 1 and a.series.saliency_done.any()


@pytest.mark.slow
def test_cold_start_imports_neither_librosa_nor_torch_compiler(fx, tmp_path):
    """``crescendai analyze`` without a score: no librosa / numba (compiles at import), no torch
    compiler stack (``use_deterministic_algorithms``), no pyplot."""
    bundle = save_tiny_bundle(tmp_path / "tutor")
    code = textwrap.dedent(f"""
        import sys
        from crescendai.cli import main
        rc = main(["analyze", {str(fx['mono'])!r}, "--model", {str(bundle)!r}, "--out",
                   {str(tmp_path / 'out')!r}, "--params", "none.yaml"])
        bad = [m for m in ("librosa", "numba", "torch._dynamo", "torch._inductor", "matplotlib.pyplot")
               if m in sys.modules]
        print("RC", rc, "BAD", bad)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert "RC 0 BAD []" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
