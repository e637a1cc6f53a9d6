"""Label model directions, corpus determinism, PercePiano-format output, render determinism, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crescendai.core.config import GenerateParams
from crescendai.core.dims import KEYS, LABEL_MAX, LABEL_MIN
from crescendai.core.labelfile import MEAN_FILE, parse_name, read_labels, split_entry
from crescendai.synth.corpus import generate_corpus, write_corpus
from crescendai.synth.labels import local_labels, segment_labels
from crescendai.synth.material import make_piece
from crescendai.synth.performance import Controls, perform
from crescendai.synth.pianos import piano_model

TINY = GenerateParams(n_performers=2, n_pieces=2, bars_per_segment=2, n_ssl_pieces=1, ssl_duration_sec=6.0,
                      n_ssl_performers=1, n_phone=1)


def _labels(c: Controls, mode: str = "major") -> np.ndarray:
    piece = make_piece(np.random.default_rng(3), "W", "C", mode, "melody", "4/4", 8, 100.0)
    r = perform(piece, c, np.random.default_rng(4))
    return segment_labels(r, c, piece, piano_model(0))


# (control, low value, high value, dimension key, expected sign of the label change)
CASES = [
    ("jitter_ms", 3.0, 35.0, "timing", +1),
    ("articulation", 0.4, 1.1, "articulation_length", +1),
    ("touch", 0.1, 0.9, "articulation_touch", +1),
    ("pedal_amount", 0.1, 0.9, "pedal_amount", +1),
    ("touch", 0.1, 0.9, "timbre_brightness", -1),  # harder touch = brighter = lower (dark pole high)
    ("velocity_level", 40.0, 100.0, "timbre_loudness", +1),
    ("velocity_range", 5.0, 35.0, "dynamic_range", +1),
    ("velocity_variance", 1.0, 15.0, "dynamic_sophistication", +1),
    ("tempo_factor", 0.8, 1.25, "pace", -1),
    ("rubato", 0.0, 0.3, "spacing", +1),
    ("rubato", 0.0, 0.3, "drama", +1),
    ("velocity_level", 40.0, 100.0, "mood_energy", +1),
    ("jitter_ms", 3.0, 35.0, "interpretation", -1),
]


@pytest.mark.parametrize("control,lo,hi,key,sign", CASES)
def test_labels_move_in_documented_direction(control, lo, hi, key, sign):
    base = Controls(pedal_amount=0.6, pedal_sync=0.5)
    j = KEYS.index(key)
    d = _labels(base.replace(**{control: hi}))[j] - _labels(base.replace(**{control: lo}))[j]
    assert sign * d > 0.03


def test_pedal_sync_and_balance_and_mode():
    c = Controls(pedal_amount=1.0)
    blur = KEYS.index("pedal_clarity")
    assert _labels(c.replace(pedal_sync=0.0))[blur] > _labels(c.replace(pedal_sync=1.0))[blur] + 0.05
    bal = KEYS.index("balance")
    assert _labels(c.replace(balance=10.0))[bal] > _labels(c.replace(balance=-10.0))[bal] + 0.05
    val = KEYS.index("mood_valence")
    assert _labels(c, "minor")[val] > _labels(c, "major")[val] + 0.05


def test_local_labels_shape_and_range():
    piece = make_piece(np.random.default_rng(1), "W", "D", "minor", "chorale", "3/4", 4, 90.0)
    c = Controls()
    r = perform(piece, c, np.random.default_rng(2))
    loc = local_labels(r, c, piece, piano_model(1), 1.0, r.duration_sec + 1.5)
    assert loc.shape == (int(np.ceil(r.duration_sec + 1.5)), 19)
    assert (loc >= LABEL_MIN).all() and (loc <= LABEL_MAX).all()


def test_corpus_is_a_pure_function_of_the_seed():
    a = generate_corpus(5, TINY, "labelled")
    b = generate_corpus(5, TINY, "labelled")
    c = generate_corpus(6, TINY, "labelled")
    assert [x.meta for x in a] == [x.meta for x in b]
    assert [x.meta for x in a] != [x.meta for x in c]
    assert len({x.meta["performer_id"] for x in a}) == 2 and len(a) == 4
    ssl = generate_corpus(5, TINY, "ssl")
    assert not {x.meta["piece_id"] for x in ssl} & {x.meta["piece_id"] for x in a}
    assert not {x.meta["performer_id"] for x in ssl} & {x.meta["performer_id"] for x in a}


def test_percepiano_layout_round_trips(tmp_path):
    items = generate_corpus(5, TINY, "labelled")
    write_corpus(tmp_path, items)
    labels = read_labels(tmp_path / "labels" / MEAN_FILE)
    assert set(labels) == {x.name for x in items}
    for it in items:
        dims, idx = split_entry(labels[it.name])
        assert dims == pytest.approx(list(it.labels)) and idx == it.meta["pianist_index"]
        assert parse_name(it.name).player == it.meta["performer_id"]
        assert (tmp_path / "virtuoso" / "data" / "all_2rounds" / f"{it.name}.mid").is_file()
    assert (tmp_path / "meta.jsonl").read_text().count("\n") == len(items)


def test_render_is_deterministic_and_worker_independent(tmp_path):
    from crescendai.core.config import RenderParams
    from crescendai.synth.render import RenderJob, render_jobs

    items = generate_corpus(5, TINY, "phone") + generate_corpus(5, TINY, "labelled")[:1]
    write_corpus(tmp_path / "gen", items[:1])
    write_corpus(tmp_path / "gen2", items[1:])
    mids = [tmp_path / "gen" / f"{items[0].name}.mid",
            tmp_path / "gen2" / "virtuoso" / "data" / "all_2rounds" / f"{items[1].name}.mid"]
    s = RenderParams()
    out = []
    for run, workers in (("a", 1), ("b", 2)):
        jobs = [RenderJob(str(m), str(tmp_path / run / f"{it.name}.flac"), it.name, it.meta["piano"],
                          it.meta["channel"], it.meta["controls"]["touch"], False)
                for m, it in zip(mids, items, strict=True)]
        recs = render_jobs(jobs, 11, s, workers)
        out.append([Path(r["path"]).read_bytes() for r in recs])
        assert recs[0]["channel"] == "phone"
    assert out[0] == out[1]


def test_render_cli(tmp_path):
    import soundfile as sf

    from crescendai.cli import main
    from crescendai.core.midi import Note, PedalEvent, Performance, write_midi

    mid = tmp_path / "in.mid"
    write_midi(mid, Performance([Note(1.0, 1.5, 60, 80), Note(1.5, 2.0, 64, 70)], [PedalEvent(1.0, 127),
                                                                                    PedalEvent(2.2, 0)]))
    out = tmp_path / "out.wav"
    assert main(["render", str(mid), str(out), "--piano", "3"]) == 0
    y, sr = sf.read(out)
    assert sr == 22050 and y.ndim == 1 and 1.0 < len(y) / sr < 4.0  # leading silence trimmed
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi")
    assert main(["render", str(bad), str(out)]) == 2
