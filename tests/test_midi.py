"""MIDI round trip, tempo maps, pedal, corrupt files."""

from __future__ import annotations

import mido
import pytest

from crescendai.core.midi import MidiError, Note, PedalEvent, Performance, read_midi, write_midi


def test_round_trip(tmp_path):
    perf = Performance(
        [Note(0.0, 0.5, 60, 80), Note(0.25, 1.0, 64, 40), Note(1.2, 1.3, 67, 127)],
        [PedalEvent(0.1, 127), PedalEvent(0.9, 0)],
    )
    path = tmp_path / "a.mid"
    write_midi(path, perf)
    back = read_midi(path)
    assert [(n.pitch, n.velocity) for n in back.notes] == [(60, 80), (64, 40), (67, 127)]
    for a, b in zip(perf.notes, back.notes, strict=True):
        assert abs(a.onset_sec - b.onset_sec) < 1e-3 and abs(a.offset_sec - b.offset_sec) < 1e-3
    assert [(round(p.time_sec, 3), p.value) for p in back.pedal] == [(0.1, 127), (0.9, 0)]
    assert back.pedal_down_at([0.0, 0.5, 1.0]).tolist() == [False, True, False]


def test_tempo_map_is_honoured(tmp_path):
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    tempo_track = mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=500_000, time=0),
        mido.MetaMessage("set_tempo", tempo=1_000_000, time=480),  # after 1 beat (0.5 s): 60 bpm
    ])
    notes = mido.MidiTrack([
        mido.Message("note_on", note=60, velocity=70, time=0),
        mido.Message("note_off", note=60, velocity=0, time=480),   # 0.5 s
        mido.Message("note_on", note=62, velocity=70, time=480),   # 1.5 s (second beat at 60 bpm)
        mido.Message("note_on", note=62, velocity=0, time=480),    # 2.5 s
    ])
    mid.tracks += [tempo_track, notes]
    path = tmp_path / "t.mid"
    mid.save(path)
    perf = read_midi(path)
    assert [n.pitch for n in perf.notes] == [60, 62]
    assert perf.notes[1].onset_sec == pytest.approx(1.5, abs=1e-6)
    assert perf.notes[1].offset_sec == pytest.approx(2.5, abs=1e-6)


def test_corrupt_file_names_it(tmp_path):
    path = tmp_path / "bad.mid"
    path.write_bytes(b"MThd\x00\x00garbage")
    with pytest.raises(MidiError, match="bad.mid"):
        read_midi(path)
    with pytest.raises(MidiError, match="missing.mid"):
        read_midi(tmp_path / "missing.mid")
