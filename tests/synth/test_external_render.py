"""PercePiano and ASAP render paths on tiny fixtures in the exact upstream layouts (never the real data)."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import soundfile as sf

from crescendai.core.config import ConfigError, Params
from crescendai.core.labelfile import MEAN_FILE, write_labels
from crescendai.core.midi import Note, PedalEvent, Performance, write_midi
from crescendai.synth.jobs import (
    asap_jobs,
    build_jobs,
    percepiano_jobs,
    render_corpora,
    require_root,
    select_items,
)
from crescendai.synth.render import prepare_external

ROOT = Path(__file__).resolve().parents[2]
ASAP_COLUMNS = ["composer", "title", "folder", "xml_score", "midi_score", "midi_performance",
                "performance_annotations", "midi_score_annotations", "maestro_midi_performance",
                "maestro_audio_performance", "start", "end", "audio_performance"]


def _phrase(start: float, n: int = 4, tail_note_sec: float = 0.0, pedal_tail_sec: float = 0.0) -> Performance:
    """A few notes from ``start``; optionally a final note held ``tail_note_sec`` and pedal events
    trailing ``pedal_tail_sec`` after the last onset (PercePiano's silent tails)."""
    notes = [Note(start + 0.25 * i, start + 0.25 * i + 0.2, 60 + 2 * i, 70) for i in range(n)]
    last = notes[-1].onset_sec
    if tail_note_sec:
        notes[-1] = Note(last, last + tail_note_sec, notes[-1].pitch, 70)
    pedal = [PedalEvent(start, 127), PedalEvent(last + 0.1, 0)]
    if pedal_tail_sec:
        pedal += [PedalEvent(last + pedal_tail_sec * k / 4, 10 + k) for k in range(1, 5)]
    return Performance(notes, pedal)


@pytest.fixture
def percepiano_root(tmp_path: Path) -> Path:
    root = tmp_path / "PercePiano"
    mids = root / "virtuoso" / "data" / "all_2rounds"
    mids.mkdir(parents=True)
    names = ["Schubert_D960_mv3_8bars_3_15", "Schubert_D960_mv3_8bars_Score_15"]
    write_midi(mids / f"{names[0]}.mid", _phrase(1.5, tail_note_sec=14.0, pedal_tail_sec=20.0))
    write_midi(mids / f"{names[1]}.mid", _phrase(0.0))
    write_labels(root / "labels" / MEAN_FILE, {n: [0.5] * 19 for n in names}, {n: i for i, n in enumerate(names)})
    return root


@pytest.fixture
def asap_root(tmp_path: Path) -> Path:
    root = tmp_path / "asap-dataset"
    perfs = ["Bach/Fugue/bwv_846/Shi05M.mid", "Bach/Fugue/bwv_846/Denisova06M.mid",
             "Chopin/Etudes_op_10/1/Kim01.mid"]
    rows = []
    for i, rel in enumerate(perfs):
        folder = str(Path(rel).parent)
        (root / folder).mkdir(parents=True, exist_ok=True)
        write_midi(root / rel, _phrase(2.0, n=12 + 4 * i))  # 3.0–5.0 s of music
        rows.append({"composer": rel.split("/")[0], "title": folder.split("/", 1)[1].replace("/", "_"),
                     "folder": folder, "xml_score": f"{folder}/xml_score.musicxml",
                     "midi_score": f"{folder}/midi_score.mid", "midi_performance": rel,
                     "performance_annotations": rel[:-4] + "_annotations.txt",
                     "midi_score_annotations": f"{folder}/midi_score_annotations.txt",
                     "maestro_midi_performance": "", "maestro_audio_performance": "", "start": "", "end": "",
                     "audio_performance": ""})
    rows.append(dict(rows[0]))  # ASAP lists a performance once per score row; render it once
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=ASAP_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return root


def _params(tmp_path: Path, **kw) -> Params:
    corpora = dataclasses.replace(Params().corpora, **{k: v for k, v in kw.items() if k in ("percepiano", "asap")})
    render = dataclasses.replace(Params().render, workers=1,
                                 **{k: v for k, v in kw.items() if k not in ("percepiano", "asap")})
    return dataclasses.replace(Params(seed=7), corpora=corpora, render=render)


@pytest.mark.parametrize("key", ["percepiano", "asap"])
def test_missing_root_names_the_params_key(tmp_path, key):
    with pytest.raises(ConfigError, match=f"corpora.{key}"):
        require_root(key, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=f"corpora.{key}"):
        build_jobs(_params(tmp_path, **{key: str(tmp_path / "nowhere")}), synthetic=False)
    assert require_root(key, None) is None


def test_empty_roots_are_explained(tmp_path):
    (tmp_path / "pp").mkdir()
    with pytest.raises(ConfigError, match="corpora.percepiano.*all_2rounds"):
        percepiano_jobs(tmp_path / "pp", tmp_path / "out", 0, 7)
    with pytest.raises(ConfigError, match="corpora.asap.*metadata.csv"):
        asap_jobs(tmp_path / "pp", tmp_path / "out", 0, 7)


def test_silent_tails_are_cut_and_long_takes_cropped():
    p = prepare_external(_phrase(1.5, tail_note_sec=14.0, pedal_tail_sec=20.0))
    assert min(n.onset_sec for n in p.notes) == pytest.approx(0.2)
    assert p.end_sec <= 0.2 + 0.75 + 3.0 + 1e-6  # last onset + MAX_TAIL_SEC
    assert not p.pedal_down_at(p.end_sec + 0.01)[0]
    long = prepare_external(_phrase(0.0, n=40), max_duration_sec=2.0)
    assert max(n.onset_sec for n in long.notes) < 2.2 and len(long.notes) == 8


def test_percepiano_render_end_to_end(tmp_path, percepiano_root):
    params = _params(tmp_path, percepiano=str(percepiano_root))
    out = tmp_path / "audio"
    jobs = build_jobs(params, out=out, synthetic=False)
    assert list(jobs) == ["percepiano"] and len(jobs["percepiano"]) == 2
    recs = render_corpora(params, jobs, out=out)["percepiano"]
    by = {r["name"]: r for r in recs}
    assert set(by) == {"Schubert_D960_mv3_8bars_3_15", "Schubert_D960_mv3_8bars_Score_15"}
    tailed = by["Schubert_D960_mv3_8bars_3_15"]
    y, sr = sf.read(tailed["path"])
    # 0.2 s lead + 0.75 s of onsets + ≤ 3 s held tail + release; the 14 s chord and 20 s of pedal are gone
    assert sr == 22050 and 1.0 < len(y) / sr <= 5.0 and tailed["duration_sec"] == pytest.approx(len(y) / sr, abs=1e-3)
    assert 0 <= tailed["piano"] < 7 and tailed["channel"] == "room"
    assert (out / "percepiano" / "render.jsonl").read_text().count("\n") == 2


def test_asap_render_subset_and_crop(tmp_path, asap_root):
    out = tmp_path / "audio"
    all_jobs = build_jobs(_params(tmp_path, asap=str(asap_root)), out=out, synthetic=False)["asap"]
    assert [j.name for j in all_jobs] == ["Bach__Fugue__bwv_846__Denisova06M", "Bach__Fugue__bwv_846__Shi05M",
                                          "Chopin__Etudes_op_10__1__Kim01"]  # one per distinct performance
    assert Path(all_jobs[0].midi_path) == asap_root / "Bach/Fugue/bwv_846/Denisova06M.mid"
    params = _params(tmp_path, asap=str(asap_root), max_items_asap=2, max_duration_sec=1.5)
    jobs = build_jobs(params, out=out, synthetic=False)["asap"]
    again = build_jobs(params, out=out, synthetic=False)["asap"]
    assert len(jobs) == 2 and [j.name for j in jobs] == [j.name for j in again]
    assert {j.name for j in jobs} == set(select_items([j.name for j in all_jobs], 7, 2))
    recs = render_corpora(params, {"asap": jobs}, out=out)["asap"]
    for r in recs:
        y, sr = sf.read(r["path"])
        assert len(y) / sr < 0.2 + 1.5 + 0.2 + 1.5 + 0.6  # crop + last note + release + kept tail


def test_select_items_is_seeded_and_stable():
    names = [f"n{i}" for i in range(20)]
    a = select_items(names, 1, 5)
    assert len(a) == 5 and a == select_items(names, 1, 5) and a != select_items(names, 2, 5)
    assert a == [n for n in names if n in set(a)]  # input order kept
    assert select_items(names, 1, 0) == names
