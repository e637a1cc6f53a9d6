"""MAESTRO, ASAP, MusicNet, MAPS, CCMusic and PhonePilot readers on fixtures in their upstream layouts."""

from __future__ import annotations

import csv

import pytest

from crescendai.data.corpora.asap import read_annotations, read_asap
from crescendai.data.corpora.ccmusic import read_ccmusic
from crescendai.data.corpora.common import CorpusError
from crescendai.data.corpora.maestro import read_maestro
from crescendai.data.corpora.maps import read_maps
from crescendai.data.corpora.musicnet import read_musicnet
from crescendai.data.corpora.phonepilot import read_phonepilot


def _csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_maestro_train_split_only(tmp_path, tone):
    root = tmp_path / "maestro-v3.0.0"
    header = ["canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename", "duration"]
    _csv(root / "maestro-v3.0.0.csv", header, [
        ["Chopin", "Ballade 1", "train", "2018", "2018/a.midi", "2018/a.wav", "1.5"],
        ["Liszt", "Etude", "test", "2018", "2018/b.midi", "2018/b.wav", "1.5"],
    ])
    tone(root / "2018/a.wav", sr=44100, channels=2)
    (r,) = read_maestro(root).records
    assert r.sample_rate == 44100 and r.piece_id == "Chopin: Ballade 1" and r.license.startswith("CC BY-NC-SA")
    _csv(root / "maestro-v3.0.0.csv", header[:3], [])
    with pytest.raises(CorpusError, match="audio_filename"):
        read_maestro(root)


def test_asap_with_annotations(tmp_path, perf, tone):
    root = tmp_path / "asap"
    cols = ["composer", "title", "folder", "xml_score", "midi_score", "midi_performance", "performance_annotations",
            "midi_score_annotations", "maestro_midi_performance", "maestro_audio_performance", "start", "end",
            "audio_performance"]
    _csv(root / "metadata.csv", cols, [[
        "Bach", "Fugue_bwv_846", "Bach/Fugue/bwv_846", "Bach/Fugue/bwv_846/xml_score.musicxml",
        "Bach/Fugue/bwv_846/midi_score.mid", "Bach/Fugue/bwv_846/Shi05M.mid",
        "Bach/Fugue/bwv_846/Shi05M_annotations.txt", "Bach/Fugue/bwv_846/midi_score_annotations.txt",
        "{maestro}/2004/x.midi", "{maestro}/2004/x.wav", "10.0", "60.0", "Bach/Fugue/bwv_846/Shi05M.wav"]])
    perf(root / "Bach/Fugue/bwv_846/Shi05M.mid", start=1.0)
    (root / "Bach/Fugue/bwv_846/Shi05M_annotations.txt").write_text(
        "1.0\t1.0\tdb,4/4,0\n1.5\t1.5\tb\n2.0\t2.0\tb\n2.5\t2.5\tdb\n")
    audio = tmp_path / "audio/asap"
    tone(audio / "Bach__Fugue__bwv_846__Shi05M.flac", seconds=3.0)
    (r,) = read_asap(root, audio).records
    assert r.performer_id == "Shi05M" and r.extra["bar_times"] == pytest.approx([0.2, 1.7])
    assert r.extra["beat_times"][:2] == pytest.approx([0.2, 0.7]) and r.extra["time_signatures"] == ["4/4", ""]
    # a render cropped by render.max_duration_sec keeps only the annotations inside the audio
    tone(audio / "Bach__Fugue__bwv_846__Shi05M.flac", seconds=1.0)
    (r,) = read_asap(root, audio).records
    assert r.extra["bar_times"] == pytest.approx([0.2]) and r.extra["beat_times"] == pytest.approx([0.2, 0.7])
    # a seeded render subset (render.max_items_asap): unrendered rows are listed as excluded, not fatal
    (audio / "render.jsonl").write_text('{"name": "Other__piece", "midi_path": "Other/piece.mid"}\n')
    res = read_asap(root, audio)
    assert res.records == [] and "max_items_asap" in res.excluded[0]["reason"]
    bad = root / "bad.txt"
    bad.write_text("1.0 1.0 db\n")
    with pytest.raises(CorpusError, match="bad.txt:1"):
        read_annotations(bad)


def test_musicnet_solo_piano_only(tmp_path, tone):
    root = tmp_path / "musicnet"
    _csv(root / "musicnet_metadata.csv",
         ["id", "composer", "composition", "movement", "ensemble", "source", "transcriber", "catalog_name", "seconds"],
         [["1727", "Schubert", "Piano Sonata in A minor", "2. Andante", "Solo Piano", "Museopen", "x", "D845", "447"],
          ["1728", "Mozart", "Quartet", "1. Allegro", "String Quartet", "Museopen", "x", "K1", "300"]])
    tone(root / "train_data/1727.wav", sr=44100)
    (r,) = read_musicnet(root).records
    assert r.extra["musicnet_id"] == "1727" and r.license == "CC BY 4.0"
    (root / "train_data/1727.wav").unlink()
    with pytest.raises(CorpusError, match="1727"):
        read_musicnet(root)


def test_maps_mus_shares_performance(tmp_path, tone):
    root = tmp_path / "MAPS"
    for inst in ("ENSTDkCl", "AkPnBcht"):
        tone(root / inst / "MUS" / f"MAPS_MUS-alb_se3_{inst}.wav", sr=44100)
        tone(root / inst / "ISOL" / "NO" / f"MAPS_ISOL_NO_F_S0_M60_{inst}.wav", sr=44100)
    recs = read_maps(root).records
    mus = [r for r in recs if r.extra["subset"] == "MUS"]
    assert len(recs) == 4 and {r.performance_id for r in mus} == {"maps:MUS:alb_se3"}
    assert {r.extra["real_piano"] for r in mus} == {True, False}
    with pytest.raises(CorpusError, match="instrument"):
        read_maps(tmp_path)


def test_ccmusic_classes(tmp_path, tone):
    root = tmp_path / "pianos"
    tone(root / "Steinway" / "a.wav")
    tone(root / "Yamaha" / "b.wav")
    recs = read_ccmusic(root).records
    assert sorted(r.extra["piano"] for r in recs) == [5, 7] and "auxiliary" in recs[0].license
    (root / "Bosendorfer").mkdir()
    with pytest.raises(CorpusError, match="Bosendorfer"):
        read_ccmusic(root)


def test_phonepilot_is_ood(tmp_path, tone):
    root = tmp_path / "phone"
    tone(root / "alice" / "take1.wav")
    _csv(root / "metadata.csv", ["file", "performer_id", "piece_id", "device"], [["alice/take1.wav", "alice", "op9", "pixel"]])
    (r,) = read_phonepilot(root).records
    assert (r.split, r.performer_id, r.extra["device"]) == ("ood", "alice", "pixel")
    (root / "alice" / "broken.wav").write_bytes(b"RIFFxxxx")
    with pytest.raises(CorpusError, match="broken.wav"):
        read_phonepilot(root)
    assert len(read_phonepilot(root, exclude=["alice/broken.wav"]).records) == 1
