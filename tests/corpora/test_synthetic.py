"""Synthetic corpus reader: PercePiano layout + meta.jsonl (labelled), flat folders (ssl, phone)."""

from __future__ import annotations

import json

import pytest

from crescendai.core.files import write_jsonl
from crescendai.core.labelfile import MEAN_FILE
from crescendai.data.corpora.common import CorpusError
from crescendai.data.corpora.synthetic import read_synthetic


def test_labelled_and_ssl(tmp_path, perf, tone):
    gen, audio = tmp_path / "generated", tmp_path / "audio"
    name = "Synth_C_major_chorale_03_4bars_5_2"
    perf(gen / "labelled/virtuoso/data/all_2rounds" / f"{name}.mid")
    (gen / "labelled/labels").mkdir(parents=True)
    (gen / "labelled/labels" / MEAN_FILE).write_text(json.dumps({name: [0.5] * 19 + [5.0]}))
    meta = {"name": name, "performer_id": "p5", "piece_id": "chorale_03", "segment_id": "2", "piano": 3,
            "bar_times": [0.0, 2.0], "beat_times": [0.0, 0.5], "local_hop_sec": 1.0,
            "local_labels": [[0.5] * 19], "controls": {"touch": 0.5}}
    write_jsonl(gen / "labelled/meta.jsonl", [meta])
    tone(audio / "synthetic" / f"{name}.flac")
    write_jsonl(audio / "synthetic/render.jsonl", [{"name": name, "piano": 3, "channel": "room"}])
    (r,) = read_synthetic("synthetic", gen, audio).records
    assert (r.performer_id, r.piece_id, r.segment_id, r.source) == ("p5", "chorale_03", "2", "synthetic")
    assert r.extra["piano"] == 3 and r.extra["local_labels"] == [[0.5] * 19] and "midi_offset_sec" not in r.extra

    perf(gen / "ssl/Synth_x_1.mid")
    write_jsonl(gen / "ssl/meta.jsonl", [{"name": "Synth_x_1", "performer_id": "p1", "piece_id": "x", "piano": 2}])
    with pytest.raises(CorpusError, match="render"):
        read_synthetic("synthetic_ssl", gen, audio)
    tone(audio / "synthetic_ssl/Synth_x_1.flac", seconds=4.0)
    (s,) = read_synthetic("synthetic_ssl", gen, audio).records
    assert s.extra["piano"] == 2 and s.labels is None and s.duration_sec == pytest.approx(4.0)


def test_missing_generated_folder(tmp_path):
    with pytest.raises(CorpusError, match="dvc repro generate"):
        read_synthetic("synthetic_phone", tmp_path / "g", tmp_path / "a")
