"""The preprocess cache: windows equal the contract, index rows match, memmap reader, errors name files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from crescendai.core.audio import windows_from_file
from crescendai.core.files import sha1_file
from crescendai.core.midi import Note, PedalEvent, Performance, write_midi
from crescendai.data.manifest import ManifestRecord
from crescendai.data.window_cache import (
    FeatureError,
    build_feature_set,
    load_feature_set,
    max_windows,
)


def _rec(path, split="train", fold=0, performer="1", labels=None, extra=None, source="t"):
    info = sf.info(str(path))
    return ManifestRecord(
        path=str(path), sha1=sha1_file(path), duration_sec=info.frames / info.samplerate,
        sample_rate=info.samplerate, performer_id=performer, piece_id="p", segment_id="0",
        split=split, fold=fold if split == "train" else None, source=source, license="MIT",
        labels=labels, extra=extra or {},
    )


@pytest.fixture
def items(tmp_path, tone_fn):
    a = tmp_path / "a.flac"
    sf.write(a, tone_fn(5.3, freq=330.0), 22050, subtype="PCM_16")
    b = tmp_path / "b.wav"
    sf.write(b, np.stack([tone_fn(4.0, sr=44100)] * 2, axis=1), 44100)
    midi = tmp_path / "a.mid"
    write_midi(midi, Performance([Note(0.1 + 0.5 * i, 0.4 + 0.5 * i, 60 + i, 40 + 8 * i) for i in range(10)],
                                 [PedalEvent(0.0, 127), PedalEvent(2.0, 0)]))
    labels = [0.5] * 19
    local = [[0.3 + 0.01 * i] * 19 for i in range(6)]
    return [
        _rec(a, labels=labels, extra={"midi_path": str(midi), "piano": 3, "local_labels": local,
                                      "local_hop_sec": 1.0}),
        _rec(b, split="test", performer="2"),
    ]


def test_build_and_read(tmp_path, items):
    stats = build_feature_set(items, tmp_path / "set", hop_sec=1.0, workers=2, progress=False)
    fs = load_feature_set(tmp_path / "set")
    assert fs.windows.dtype == np.float16 and isinstance(fs.windows, np.memmap)
    assert len(fs) == len(fs.index) == stats.n_windows
    ref_a = windows_from_file(items[0].path, 1.0)
    ref_b = windows_from_file(items[1].path, 1.0)
    assert len(fs) == len(ref_a) + len(ref_b)
    np.testing.assert_allclose(fs.batch(np.arange(len(ref_a))), ref_a.db, atol=0.05)
    np.testing.assert_allclose(fs.batch(np.arange(len(ref_a), len(fs))), ref_b.db, atol=0.05)
    assert fs.index["pad_fraction"].iloc[-1] > 0
    assert fs.rows("test").size == len(ref_b)
    tr, va = fs.cv_rows(0)
    assert tr.size == 0 and va.size == len(ref_a)
    assert np.allclose(fs.labels(va), 0.5) and np.isnan(fs.labels(fs.test_rows())).all()
    assert fs.local_labels([1])[0, 0] == pytest.approx(0.31)
    p = fs.proxies(va)
    assert p.shape == (len(ref_a), 4) and np.isfinite(p).all()
    assert p[0, 3] == pytest.approx(2.0 / 2.972, abs=0.02) and p[-1, 3] == 0.0  # pedal down for 0–2 s
    assert (fs.index["timbre_class"].to_numpy() == [3] * len(ref_a) + [-1] * len(ref_b)).all()
    assert fs.index["fold"].iloc[-1] is pd_na()


def pd_na():
    import pandas as pd

    return pd.NA


def test_bound_is_upper(tone_fn):
    for d in (0.5, 2.97, 3.0, 10.01, 61.3):
        n = int(d * 22050)
        y = tone_fn(d)[:n]
        from crescendai.core.audio import windows_from_waveform

        assert len(windows_from_waveform(y, 1.0)) <= max_windows(d, 1.0)


def test_corrupt_item_names_file(tmp_path, items):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    rec = items[1]
    import dataclasses

    rec = dataclasses.replace(rec, path=str(bad))
    with pytest.raises(FeatureError, match="bad.wav"):
        build_feature_set([items[0], rec], tmp_path / "set", workers=1, progress=False)
    assert not (tmp_path / "set" / "windows.npy").exists()


def test_missing_set_says_what_to_run(tmp_path):
    with pytest.raises(FeatureError, match="dvc repro preprocess"):
        load_feature_set(tmp_path / "nothing")
