"""MIDI teacher targets: rows and bands in the right place, values as specified, cached aligned with the windows."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from crescendai.core import columns
from crescendai.core.audio import FRAME_SEC
from crescendai.core.files import sha1_file
from crescendai.core.midi import Note, PedalEvent, Performance, read_midi, write_midi
from crescendai.core.midi_features import FEATURE_NAMES, performance_features
from crescendai.data.manifest import ManifestRecord
from crescendai.data.teacher import (
    N_BANDS,
    N_TEACHER,
    ROW_FRAMES,
    TEACHER_FIELDS,
    TEACHER_ROWS,
    field_index,
    pitch_band,
    teacher_targets,
    window_playing,
)
from crescendai.data.window_cache import FeatureError, build_feature_set, load_feature_set

ONSET = slice(0, 3 * N_BANDS, 3)
VELOCITY = slice(1, 3 * N_BANDS, 3)
SOUNDING = slice(2, 3 * N_BANDS, 3)
PEDAL = N_TEACHER - 1


def _row_time(start: float, row: float) -> float:
    """Audio time at fractional position ``row`` (0 = the row 0 start boundary) of a window."""
    return start + (ROW_FRAMES * row - 0.5) * FRAME_SEC


def _targets(notes: list[Note], pedal: list[PedalEvent] | None = None, starts=(0.0,)) -> np.ndarray:
    pedal = pedal or []
    return teacher_targets(
        np.array([n.onset_sec for n in notes]), np.array([n.offset_sec for n in notes]),
        np.array([n.pitch for n in notes]), np.array([n.velocity for n in notes]),
        np.array([p.time_sec for p in pedal]), np.array([p.down for p in pedal], dtype=bool),
        np.asarray(starts, dtype=np.float64),
    )


def test_fields_and_bands():
    assert len(TEACHER_FIELDS) == N_TEACHER == 3 * N_BANDS + 1 == 25
    assert TEACHER_FIELDS[:3] == ("onset_b0", "velocity_b0", "sounding_b0")
    assert TEACHER_FIELDS[3 * 5 + 1] == "velocity_b5" and TEACHER_FIELDS[-1] == "pedal"
    assert field_index("sounding_b7") == 23 and TEACHER_ROWS * ROW_FRAMES == 128
    np.testing.assert_array_equal(pitch_band(np.array([0, 21, 31, 32, 60, 98, 99, 108, 127])),
                                  [0, 0, 0, 1, 3, 7, 7, 7, 7])


def test_onset_lands_in_row_and_band():
    start = 2.5
    # pitch 60 → band 3; onset 3 frames into row 5 of the window at 2.5 s; pitch 100 → band 7, row 0.
    notes = [Note(_row_time(start, 5) + 3 * FRAME_SEC, _row_time(start, 5.5), 60, 80),
             Note(start, start + 0.05, 100, 127)]
    out = _targets(notes, starts=[0.0, start])
    assert out.shape == (2, TEACHER_ROWS, N_TEACHER) and out.dtype == np.float32
    on = out[1, :, ONSET]
    assert on[5, 3] == 1.0 and on[0, 7] == 1.0 and on.sum() == 2.0
    # window 0 covers [-0.5 F, 127.5 F) ≈ [-0.012, 2.96) s: the 2.5 s onset is its frame 108 → row 6
    assert out[0, 6, 3 * 7] == 1.0 and out[0, :, ONSET].sum() == 1.0
    assert out[0, 6, 3 * 7 + 1] == 1.0 and out[1, 5, 3 * 3 + 1] == pytest.approx(80 / 127)


def test_onset_row_boundaries_are_half_open():
    b = _row_time(0.0, 2)  # boundary between rows 1 and 2
    out = _targets([Note(b, b + 0.1, 60, 64), Note(np.nextafter(b, -1), b + 0.1, 21, 64)])
    assert out[0, 2, 3 * 3] == 1.0 and out[0, 1, 3 * 3] == 0.0  # on the boundary → the later row
    assert out[0, 1, 0] == 1.0 and out[0, 2, 0] == 0.0  # just before → the earlier row


def test_onsets_across_overlapping_windows():
    starts = np.array([0.0, 43 * FRAME_SEC])  # hop 1 s: windows overlap by 85 frames
    t = 50.2 * FRAME_SEC  # frame 50 of window 0, frame 7 of window 1
    out = _targets([Note(t, t + 0.1, 64, 90)], starts=starts)
    assert out[0, 50 // ROW_FRAMES, 3 * 3] == 1.0 and out[1, 7 // ROW_FRAMES, 3 * 3] == 1.0
    assert out[:, :, ONSET].sum() == 2.0


def test_velocity_is_mean_and_nan_without_onset():
    t = _row_time(0.0, 3.2)
    out = _targets([Note(t, t + 0.1, 60, 64), Note(t + 0.05, t + 0.2, 62, 100), Note(t, t + 0.1, 30, 20)])
    assert out[0, 3, 3 * 3 + 1] == pytest.approx((64 + 100) / 2 / 127)
    assert out[0, 3, 1] == pytest.approx(20 / 127)
    v = out[0, :, VELOCITY].copy()
    v[3, [0, 3]] = np.nan
    assert np.isnan(v).all()  # every other row-band has no onset
    assert np.isfinite(out[0, :, ONSET]).all() and np.isfinite(out[0, :, SOUNDING]).all()


def test_sounding_fraction_spans_rows_and_ignores_pedal():
    on, off = _row_time(0.0, 1.5), _row_time(0.0, 3.75)
    notes = [Note(on, off, 72, 60),  # band 4
             Note(_row_time(0.0, 1.6), _row_time(0.0, 2.2), 75, 60)]  # overlaps: the union, not the sum
    out = _targets(notes, [PedalEvent(0.0, 127)])
    np.testing.assert_allclose(out[0, :, 3 * 4 + 2], [0, 0.5, 1, 0.75, 0, 0, 0, 0], atol=1e-5)
    assert out[0, :, SOUNDING].sum() == pytest.approx(2.25, abs=1e-4)  # no other band sounds
    assert out[0, 1, 3 * 4] == 1.0 and out[0, 2, 3 * 4] == 0.0  # only the onset row has an onset


def test_pedal_fraction():
    s = 10.0
    pedal = [PedalEvent(_row_time(s, 0.25), 100), PedalEvent(_row_time(s, 1.0), 127),  # repeated down
             PedalEvent(_row_time(s, 2.5), 10), PedalEvent(_row_time(s, 6.5), 64)]  # up, then down to the end
    out = _targets([], pedal, starts=[0.0, s])
    np.testing.assert_allclose(out[1, :, PEDAL], [0.75, 1, 0.5, 0, 0, 0, 0.5, 1], atol=1e-5)
    assert (out[0, :, PEDAL] == 0).all()  # before the first event the pedal is up
    assert np.isnan(out[:, :, VELOCITY]).all() and (out[:, :, ONSET] == 0).all()


def _grid_reference(notes: list[Note], pedal: list[PedalEvent], start: float, step: float = 1e-4) -> np.ndarray:
    """Slow reference on a fine time grid, written from the spec."""
    ref = np.zeros((TEACHER_ROWS, N_TEACHER))
    perf = Performance(notes, pedal)
    for r in range(TEACHER_ROWS):
        a, b = _row_time(start, r), _row_time(start, r + 1)
        g = np.arange(a + step / 2, b, step)
        for band in range(N_BANDS):
            ns = [n for n in notes if pitch_band(np.array([n.pitch]))[0] == band]
            hits = [n.velocity / 127 for n in ns if a <= n.onset_sec < b]
            ref[r, 3 * band] = float(bool(hits))
            ref[r, 3 * band + 1] = np.mean(hits) if hits else np.nan
            held = np.zeros(g.size, bool)
            for n in ns:
                held |= (g >= n.onset_sec) & (g < n.offset_sec)
            ref[r, 3 * band + 2] = held.mean()
        ref[r, PEDAL] = perf.pedal_down_at(g).mean()
    return ref


def test_matches_grid_reference_on_random_performance():
    rng = np.random.default_rng(3)
    on = np.sort(rng.uniform(0, 8, 120))
    dur, pitch, vel = rng.exponential(0.4, on.size), rng.integers(21, 109, on.size), rng.integers(1, 128, on.size)
    notes = [Note(o, o + d, int(p), int(v)) for o, d, p, v in zip(on, dur, pitch, vel, strict=True)]
    pt, pv = np.sort(rng.uniform(0, 8, 14)), rng.choice([0, 127], 14)
    pedal = [PedalEvent(t, int(v)) for t, v in zip(pt, pv, strict=True)]
    starts = np.array([0.0, 1.5, 4.0])
    out = _targets(notes, pedal, starts)
    for i, s in enumerate(starts):
        ref = _grid_reference(notes, pedal, s)
        np.testing.assert_array_equal(np.isnan(out[i]), np.isnan(ref))
        np.testing.assert_allclose(out[i], ref, atol=1e-3, equal_nan=True)


def test_empty_inputs():
    assert _targets([], starts=np.zeros(0)).shape == (0, TEACHER_ROWS, N_TEACHER)
    out = _targets([], starts=[0.0, 1.0])
    assert (out[:, :, ONSET] == 0).all() and (out[:, :, SOUNDING] == 0).all() and (out[:, :, PEDAL] == 0).all()
    assert np.isnan(out[:, :, VELOCITY]).all()


def test_fast_for_many_windows_and_notes():
    import time

    rng = np.random.default_rng(0)
    n = 5000
    on = rng.uniform(0, 10_000, n)
    t0 = time.perf_counter()
    out = teacher_targets(on, on + rng.exponential(0.5, n), rng.integers(21, 109, n), rng.integers(1, 128, n),
                          np.sort(rng.uniform(0, 10_000, 2000)), rng.random(2000) < 0.5,
                          np.arange(10_000) * 43 * FRAME_SEC)
    assert time.perf_counter() - t0 < 5.0  # milliseconds in practice; generous for a shared runner
    assert out.shape == (10_000, TEACHER_ROWS, N_TEACHER) and out[:, :, ONSET].sum() > 0


# ------------------------------------------------------------------------------------------
# window statistics of the playing
# ------------------------------------------------------------------------------------------


def test_window_playing_reads_the_notes_with_onsets_in_the_window():
    # a loud, spread chord in [0, 1) s, soft even notes after 4 s; the render offset shifts the audio axis
    notes = [Note(0.50, 0.9, 60, 30), Note(0.53, 0.9, 64, 90), Note(0.56, 0.9, 67, 110),
             *(Note(4.0 + 0.25 * i, 4.2 + 0.25 * i, 72, 50) for i in range(8))]
    perf = Performance(notes, [PedalEvent(0.4, 127), PedalEvent(1.0, 0)])
    offset = 0.3
    starts = np.array([0.0, 1.0, 2.0, 4.3, 6.5])  # audio seconds
    m = window_playing(perf, starts, offset)
    assert m.shape == (5, len(FEATURE_NAMES)) and m.dtype == np.float32
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    # window 0 = MIDI [-0.3, 2.67): the chord only (the next onset is at 4.0 s)
    np.testing.assert_allclose(m[0], performance_features(Performance(notes[:3], perf.pedal)), rtol=1e-5)
    assert m[0, col["chord_asynchrony_ms"]] == pytest.approx(60.0, rel=1e-4)
    assert m[0, col["velocity_range"]] > 50
    # window 1 = MIDI [0.7, 3.67): no onset → NaN; window 2 = [1.7, 4.67): three soft notes, even, no pedal
    assert np.isnan(m[1]).all()
    assert m[2, col["velocity_range"]] == 0.0 and m[2, col["pedal_fraction"]] == 0.0
    assert m[2, col["ioi_cv"]] == pytest.approx(0.0, abs=1e-6)
    # window 3 = MIDI [4.0, 6.97): all eight even notes, the first exactly on the start (half-open)
    np.testing.assert_allclose(m[3], performance_features(Performance(notes[3:], perf.pedal)), rtol=1e-5)
    # window 4 = MIDI [6.2, 9.17): the last onset is at 5.75 s → NaN
    assert np.isnan(m[4]).all()


def test_window_playing_of_an_empty_performance_is_nan():
    assert np.isnan(window_playing(Performance(), np.arange(3.0))).all()


# ------------------------------------------------------------------------------------------
# the window cache
# ------------------------------------------------------------------------------------------


def _rec(path, split="train", extra=None):
    info = sf.info(str(path))
    return ManifestRecord(
        path=str(path), sha1=sha1_file(path), duration_sec=info.frames / info.samplerate,
        sample_rate=info.samplerate, performer_id="1", piece_id="p", segment_id="0",
        split=split, fold=0 if split == "train" else None, source="t", license="MIT",
        labels=None, extra=extra or {},
    )


MIDI_OFFSET = 0.25


@pytest.fixture
def items(tmp_path, tone_fn):
    a = tmp_path / "a.flac"
    sf.write(a, tone_fn(5.3, freq=330.0), 22050, subtype="PCM_16")
    b = tmp_path / "b.wav"
    sf.write(b, tone_fn(4.0), 22050)
    midi = tmp_path / "a.mid"
    write_midi(midi, Performance([Note(0.1 + 0.5 * i, 0.4 + 0.5 * i, 30 + 8 * i, 40 + 8 * i) for i in range(10)],
                                 [PedalEvent(0.0, 127), PedalEvent(2.0, 0)]))
    return [
        _rec(b, split="test"),  # no MIDI first: its all-NaN rows come before the MIDI item's
        _rec(a, extra={"midi_path": str(midi), "midi_offset_sec": MIDI_OFFSET}),
    ]


def test_cache_stores_aligned_teacher(tmp_path, items):
    build_feature_set(items, tmp_path / "set", hop_sec=1.0, workers=2, progress=False)
    fs = load_feature_set(tmp_path / "set")
    assert fs.teacher is not None and isinstance(fs.teacher, np.memmap)
    assert fs.teacher.shape == (len(fs.windows), TEACHER_ROWS, N_TEACHER) == (len(fs.index), 8, 25)
    assert np.load(tmp_path / "set" / "teacher.npy").shape[0] == np.load(tmp_path / "set" / "windows.npy").shape[0]
    assert fs.meta["teacher_fields"] == list(TEACHER_FIELDS)
    assert not list((tmp_path / "set").glob(".*"))  # no scratch files left

    no_midi = np.flatnonzero(fs.index["item_idx"].to_numpy() == 0)
    with_midi = np.flatnonzero(fs.index["item_idx"].to_numpy() == 1)
    assert no_midi.size and with_midi.size
    assert np.isnan(fs.teacher_targets(no_midi)).all()

    # rows in shuffled order come back in that order, equal to the targets from the MIDI + offset
    rows = with_midi[::-1]
    got = fs.teacher_targets(rows)
    assert got.dtype == np.float32 and got.shape == (rows.size, 8, 25)
    perf = read_midi(items[1].extra["midi_path"]).shifted(MIDI_OFFSET)
    start = fs.index["start_sec"].to_numpy()[rows]
    ref = _targets(perf.notes, perf.pedal, starts=start)
    np.testing.assert_allclose(got, ref, atol=2e-3, equal_nan=True)

    # the note at MIDI 1.1 s (pitch 46 → band 2) sounds at audio 1.35 s: find it by hand in window 1
    w1 = with_midi[1]
    s1 = fs.index["start_sec"].iloc[w1]
    row = int(np.floor((1.1 + MIDI_OFFSET - s1) / FRAME_SEC + 0.5)) // ROW_FRAMES
    tt = fs.teacher_targets([w1])[0]
    assert tt[row, 3 * 2] == 1.0 and tt[row, 3 * 2 + 1] == pytest.approx(56 / 127, abs=1e-3)
    assert tt[:, ONSET].sum() == len([i for i in range(10) if s1 - 0.5 * FRAME_SEC
                                      <= 0.1 + 0.5 * i + MIDI_OFFSET < s1 + 127.5 * FRAME_SEC])
    # pedal down over MIDI 0–2 s = audio 0.25–2.25 s
    assert fs.index["start_sec"].iloc[with_midi[0]] == 0.0
    p = fs.teacher_targets(with_midi[:1])[0, :, PEDAL]
    assert p[0] == pytest.approx((_row_time(0.0, 1) - MIDI_OFFSET) / (ROW_FRAMES * FRAME_SEC), abs=2e-3)
    row6 = (2.0 + MIDI_OFFSET - _row_time(0.0, 6)) / (ROW_FRAMES * FRAME_SEC)  # row 6 ≈ [2.218, 2.589) s
    assert 0.05 < row6 < 0.15
    np.testing.assert_allclose(p[1:], [1, 1, 1, 1, 1, row6, 0], atol=2e-3)

    # the statistics of the playing: index columns, NaN without MIDI, equal to window_playing
    assert set(columns.PLAYING) <= set(fs.index.columns)
    assert np.isnan(fs.playing(no_midi)).all()
    np.testing.assert_allclose(fs.playing(rows), window_playing(read_midi(items[1].extra["midi_path"]), start,
                                                                MIDI_OFFSET), rtol=1e-5, equal_nan=True)
    assert np.isfinite(fs.playing(with_midi[:1])).all()


def test_old_cache_without_teacher(tmp_path, items):
    build_feature_set(items[:1], tmp_path / "set", hop_sec=1.0, workers=1, progress=False)
    (tmp_path / "set" / "teacher.npy").unlink()
    fs = load_feature_set(tmp_path / "set")
    assert fs.teacher is None
    with pytest.raises(FeatureError, match="teacher.npy"):
        fs.teacher_targets([0])
    fs.index = fs.index.drop(columns=list(columns.PLAYING))
    with pytest.raises(FeatureError, match="m_note_density.*dvc repro preprocess"):
        fs.playing([0])
