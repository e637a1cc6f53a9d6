"""MIDI peer baseline: each feature orders contrasting performances correctly, degenerate input is
finite, and the ridge recovers a label that is a linear function of a feature on held-out folds."""

from __future__ import annotations

import numpy as np
import pytest

from crescendai.core.midi import MidiError, Note, PedalEvent, Performance, write_midi
from crescendai.core.midi_features import (
    FEATURE_NAMES,
    midi_feature_matrix,
    performance_features,
)
from crescendai.core.ridge import ridge_cv_predict

F = {name: i for i, name in enumerate(FEATURE_NAMES)}


def line(n: int = 16, ioi: float = 0.25, dur: float = 0.2, vel: int | list[int] = 64,
         pitch0: int = 60, pedal: list[PedalEvent] | None = None) -> Performance:
    """A one-voice scale: ``n`` notes every ``ioi`` s, each ``dur`` s long."""
    vels = [vel] * n if isinstance(vel, int) else vel
    notes = [Note(i * ioi, i * ioi + dur, pitch0 + i % 12, vels[i]) for i in range(n)]
    return Performance(notes, pedal or [])


def chords(spread_sec: float, n_chords: int = 4, ioi: float = 1.0) -> Performance:
    """``n_chords`` four-note chords, each note ``spread_sec`` after the previous one (0 = block)."""
    notes = [Note(c * ioi + k * spread_sec, c * ioi + 0.8, 48 + 4 * k, 70)
             for c in range(n_chords) for k in range(4)]
    return Performance(notes)


def feat(perf: Performance, name: str) -> float:
    return float(performance_features(perf)[F[name]])


def test_louder_performance_has_higher_velocity_mean():
    assert feat(line(vel=100), "velocity_mean") == pytest.approx(100.0)
    assert feat(line(vel=100), "velocity_mean") > feat(line(vel=40), "velocity_mean")
    assert feat(line(vel=100), "velocity_std") == 0.0


def test_crescendo_has_positive_velocity_slope_and_range():
    vels = list(range(40, 120, 5))  # 16 notes, +5 every 0.25 s = +20 per second
    assert feat(line(vel=vels), "velocity_slope") == pytest.approx(20.0)
    assert feat(line(vel=vels[::-1]), "velocity_slope") == pytest.approx(-20.0)
    assert feat(line(vel=vels), "velocity_range") > 50


def test_legato_and_staccato_are_ordered_and_exact():
    staccato = feat(line(dur=0.08), "legato_ratio")  # (0.08 - 0.25) / 0.25
    legato = feat(line(dur=0.30), "legato_ratio")  # (0.30 - 0.25) / 0.25
    assert staccato == pytest.approx(-0.68) and legato == pytest.approx(0.2)
    assert feat(line(dur=0.08), "log_duration_mean") == pytest.approx(np.log(0.08))
    assert feat(line(dur=0.30), "polyphony") > 1.0 > feat(line(dur=0.08), "polyphony")


def test_timing_density_and_ioi():
    perf = line(n=16, ioi=0.25, dur=0.2)
    assert feat(perf, "ioi_mean") == pytest.approx(0.25)
    assert feat(perf, "ioi_cv") == pytest.approx(0.0, abs=1e-9)
    assert feat(perf, "note_density") == pytest.approx(16 / (15 * 0.25 + 0.2))
    uneven = Performance([Note(t, t + 0.1, 60, 64) for t in (0.0, 0.2, 0.6, 0.8, 1.2)])
    assert feat(uneven, "ioi_cv") == pytest.approx(np.std([0.2, 0.4] * 2) / 0.3)


def test_rolled_chord_has_larger_asynchrony_than_block_chord():
    block, rolled = chords(0.0), chords(0.030)
    assert feat(block, "chord_asynchrony_ms") == 0.0
    assert feat(rolled, "chord_asynchrony_ms") == pytest.approx(90.0)
    # a rolled chord is one onset cluster: the IOI is chord to chord, not note to note
    assert feat(rolled, "ioi_mean") == pytest.approx(1.0)


def test_pedal_held_half_the_time_round_trips_through_a_file(tmp_path):
    perf = line(n=16, ioi=0.25, dur=0.25, pedal=[PedalEvent(1.0, 127), PedalEvent(3.0, 0)])  # span 4 s
    assert feat(perf, "pedal_fraction") == pytest.approx(0.5)
    assert feat(perf, "pedal_changes_per_sec") == pytest.approx(2 / 4.0)
    write_midi(tmp_path / "p.mid", perf)
    x = midi_feature_matrix([tmp_path / "p.mid"])
    assert x.shape == (1, len(FEATURE_NAMES))
    np.testing.assert_allclose(x[0], performance_features(perf), rtol=0.02, atol=0.02)
    # CC64 values that stay on one side of 64 are not changes; down before the first note counts
    jitter = [PedalEvent(-0.5, 100), PedalEvent(2.0, 90), PedalEvent(2.5, 120)]
    held = line(n=16, ioi=0.25, dur=0.25, pedal=jitter)
    assert feat(held, "pedal_fraction") == pytest.approx(1.0)
    assert feat(held, "pedal_changes_per_sec") == 0.0
    assert feat(line(), "pedal_fraction") == 0.0


def test_louder_upper_register_gives_positive_balance():
    notes = [Note(c * 0.5, c * 0.5 + 0.4, p, v) for c in range(4) for p, v in ((48, 50), (72, 90))]
    assert feat(Performance(notes), "register_balance") == pytest.approx(40.0)
    assert feat(line(n=1), "register_balance") == 0.0


def test_one_note_gives_finite_documented_defaults():
    x = performance_features(Performance([Note(0.5, 1.0, 60, 80)]))
    assert x.shape == (len(FEATURE_NAMES),) and x.dtype == np.float64 and np.isfinite(x).all()
    for name in ("velocity_std", "velocity_slope", "legato_ratio", "ioi_mean", "ioi_cv",
                 "chord_asynchrony_ms", "pitch_range", "pedal_fraction", "register_balance"):
        assert x[F[name]] == 0.0, name
    assert x[F["note_density"]] == pytest.approx(2.0) and x[F["polyphony"]] == pytest.approx(1.0)


def test_empty_performance_raises_naming_the_problem():
    with pytest.raises(ValueError, match="take.mid: no notes"):
        performance_features(Performance([], [PedalEvent(0.0, 127)], source="take.mid"))


def test_feature_matrix_lets_unreadable_files_name_themselves(tmp_path):
    with pytest.raises(MidiError, match="missing.mid"):
        midi_feature_matrix([tmp_path / "missing.mid"])
    assert midi_feature_matrix([]).shape == (0, len(FEATURE_NAMES))


def test_ridge_baseline_recovers_linear_label_on_held_out_folds(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    paths, vel_means, densities = [], [], []
    for i in range(n):
        ioi = rng.uniform(0.1, 0.5)
        vels = np.clip(rng.normal(rng.uniform(30, 110), 8, 12), 1, 127).astype(int).tolist()
        perf = line(n=12, ioi=ioi, dur=ioi * rng.uniform(0.3, 1.2), vel=vels,
                    pitch0=int(rng.integers(40, 70)))
        paths.append(tmp_path / f"{i}.mid")
        write_midi(paths[-1], perf)
        vel_means.append(np.mean(vels))
        densities.append(12 / (11 * ioi + perf.notes[-1].duration_sec))
    labels = np.stack([0.2 + 0.005 * np.array(vel_means), 0.1 + 0.05 * np.array(densities)], 1)
    labels += rng.normal(0, 0.005, labels.shape)  # [40, 2]
    folds = np.arange(n) % 4
    is_test = np.arange(n) >= 32

    oof, test = ridge_cv_predict(midi_feature_matrix(paths), labels, folds, is_test)  # as the evaluation does

    assert oof.shape == test.shape == labels.shape
    assert np.isfinite(oof[~is_test]).all() and np.isnan(oof[is_test]).all()
    assert np.isfinite(test[is_test]).all() and np.isnan(test[~is_test]).all()
    for d in range(2):
        assert np.corrcoef(oof[~is_test, d], labels[~is_test, d])[0, 1] > 0.9
