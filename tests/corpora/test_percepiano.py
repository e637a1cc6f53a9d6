"""PercePiano reader on a fixture in the repository's layout (MIDI + label JSON + rendered audio)."""

from __future__ import annotations

import json

import pytest

from crescendai.core.labelfile import MEAN_FILE, STD_FILE
from crescendai.data.corpora.common import CorpusError
from crescendai.data.corpora.percepiano import read_percepiano

NAMES = ["Schubert_D960_mv3_8bars_3_15", "Schubert_D960_mv3_8bars_Score_15", "Beethoven_WoO80_thema_8bars_11_1"]


@pytest.fixture
def pp(tmp_path, perf, tone):
    root = tmp_path / "percepiano"
    mids = root / "virtuoso/data/all_2rounds"
    for n in NAMES:
        perf(mids / f"{n}.mid", start=1.0)
    perf(mids / " Schubert_D935_no.3_4bars_2_1.mid")  # upstream's leading-space name
    perf(mids / "Schubert_D935_no.3_4bars_2_9.mid")  # no label entry
    labels = {n: [0.5] * 19 + [float(i)] for i, n in enumerate(NAMES)}
    labels["Schubert_D935_no.3_4bars_2_1"] = [4 / 7] * 19 + [3.0]
    (root / "labels").mkdir(parents=True)
    (root / "labels" / MEAN_FILE).write_text(json.dumps(labels))
    (root / "labels" / STD_FILE).write_text(json.dumps({n: [0.1] * 19 for n in labels}))
    audio = tmp_path / "audio/percepiano"
    for n in [*NAMES, " Schubert_D935_no.3_4bars_2_1", "Schubert_D935_no.3_4bars_2_9"]:
        tone(audio / f"{n}.flac")
    return root, audio


def test_reads_records(pp):
    root, audio = pp
    res = read_percepiano(root, audio)
    by = {r.label_ref: r for r in res.records}
    assert len(res.records) == 4 and set(by) == {*NAMES, "Schubert_D935_no.3_4bars_2_1"}
    r = by["Schubert_D960_mv3_8bars_3_15"]
    assert (r.performer_id, r.piece_id, r.segment_id, r.license) == ("3", "Schubert_D960_mv3", "8bars_15", "MIT")
    assert r.labels == [0.5] * 19 and r.extra["pianist_index"] == 0 and r.extra["label_std"] == [0.1] * 19
    assert r.extra["midi_offset_sec"] == pytest.approx(-0.8)  # render moves the first note to 0.2 s
    assert by["Schubert_D960_mv3_8bars_Score_15"].extra["deadpan"]
    assert "deadpan" in by["Schubert_D960_mv3_8bars_Score_15"].notes
    assert [e["item"].endswith("2_9.mid") for e in res.excluded] == [True]
    assert r.duration_sec == pytest.approx(1.5)


def test_exclusion_is_explicit(pp):
    root, audio = pp
    res = read_percepiano(root, audio, exclude=["Beethoven_WoO80_thema_8bars_11_1"])
    assert len(res.records) == 3 and any("corpora.exclude" in e["reason"] for e in res.excluded)


def test_corrupt_audio_names_the_file(pp):
    root, audio = pp
    (audio / f"{NAMES[0]}.flac").write_bytes(b"not audio")
    with pytest.raises(CorpusError, match=f"{NAMES[0]}.flac"):
        read_percepiano(root, audio)
    assert len(read_percepiano(root, audio, exclude=[f"{NAMES[0]}.flac"]).records) == 3


def test_corrupt_midi_fails_naming_it_unless_excluded(pp):
    """Every kept MIDI is read once; an excluded (or unlabelled) one is never read."""
    root, audio = pp
    bad = root / "virtuoso/data/all_2rounds" / f"{NAMES[2]}.mid"
    bad.write_bytes(b"not midi")
    with pytest.raises(CorpusError, match=NAMES[2]):
        read_percepiano(root, audio)
    assert len(read_percepiano(root, audio, exclude=[NAMES[2]]).records) == 3
    (root / "virtuoso/data/all_2rounds/Schubert_D935_no.3_4bars_2_9.mid").write_bytes(b"not midi")  # no label
    assert len(read_percepiano(root, audio, exclude=[NAMES[2]]).records) == 3


def test_missing_root_and_audio(tmp_path, pp):
    root, audio = pp
    with pytest.raises(CorpusError, match="virtuoso/data/all_2rounds"):
        read_percepiano(tmp_path / "nowhere", audio)
    with pytest.raises(CorpusError, match="render"):
        read_percepiano(root, tmp_path / "no_audio")
    (audio / f"{NAMES[1]}.flac").unlink()
    with pytest.raises(CorpusError, match=NAMES[1]):
        read_percepiano(root, audio)


def test_align_segment_spans_finds_the_bars_of_longer_segments():
    from crescendai.core.labelfile import parse_name
    from crescendai.data.corpora.percepiano import align_segment_spans

    rng = __import__("numpy").random.default_rng(0)
    eight = {j: [int(p) for p in rng.integers(40, 90, 30)] for j in range(1, 7)}
    segs = {}
    for player in ("3", "5"):
        for j, pitches in eight.items():
            segs[f"W_8bars_{player}_{j}"] = pitches
    segs["W_16bars_3_2"] = eight[3] + eight[4]  # upstream: 16bars_2 = 8bars_3 + 8bars_4 (not 8bars_3..4 by formula here)
    segs["W_16bars_5_2"] = eight[3][:-2] + eight[4]  # another take, slightly different ending
    segs["W_16bars_5_9"] = [1, 2, 3] * 10  # no match anywhere
    spans = align_segment_spans({n: (parse_name(n), p) for n, p in segs.items()})
    assert spans["W_8bars_3_1"] == (0, 8) and spans["W_8bars_5_6"] == (40, 48)
    assert spans["W_16bars_3_2"] == spans["W_16bars_5_2"] == (16, 32)
    assert "W_16bars_5_9" not in spans


def test_find_repeats_links_repeated_music_to_its_first_occurrence():
    from crescendai.core.labelfile import parse_name
    from crescendai.data.corpora.percepiano import find_repeats

    rng = __import__("numpy").random.default_rng(1)
    music = {j: [int(p) for p in rng.integers(40, 90, 20)] for j in (1, 2, 3)}
    score = {1: music[1], 2: music[2], 3: music[3], 4: music[1], 5: music[2][:-3],  # da capo
             6: music[3][:-2] + [30, 31, 32]}  # same opening, another ending
    segs = {f"W_8bars_Score_{j}": (parse_name(f"W_8bars_Score_{j}"), p) for j, p in score.items()}
    segs["W_8bars_7_1"] = (parse_name("W_8bars_7_1"), music[1])  # a player's take: no repeats inside it
    segs["W_8bars_7_6"] = (parse_name("W_8bars_7_6"), [p + 1 for p in music[3]])
    assert find_repeats(segs) == {("W", 4): 1, ("W", 5): 2, ("W", 6): 3}
