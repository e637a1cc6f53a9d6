"""PercePiano label files and segment names."""

from __future__ import annotations

import json

import pytest

from crescendai.core.labelfile import (
    LabelFileError,
    format_name,
    parse_name,
    read_labels,
    split_entry,
    write_labels,
)


def test_parse_name_examples():
    s = parse_name("Schubert_D960_mv3_8bars_3_15")
    assert (s.work, s.bars, s.player, s.segment) == ("Schubert_D960_mv3", 8, "3", 15)
    assert not s.is_deadpan
    assert parse_name("virtuoso/x/Beethoven_WoO80_var1_8bars_Score2_3.mid").is_deadpan
    assert str(s) == "Schubert_D960_mv3_8bars_3_15"
    assert format_name("Synth_C_major_chorale_03", 4, 5, 2) == "Synth_C_major_chorale_03_4bars_5_2"
    with pytest.raises(LabelFileError, match="not a PercePiano segment name"):
        parse_name("hello_world")


def test_write_read_round_trip(tmp_path):
    vals = {"W_4bars_1_0": [0.5] * 19, "W_4bars_2_1": [i / 19 * 0.8 + 0.15 for i in range(19)]}
    path = tmp_path / "labels.json"
    write_labels(path, vals, {"W_4bars_1_0": 0, "W_4bars_2_1": 1})
    raw = json.loads(path.read_text())
    assert all(len(v) == 20 for v in raw.values())
    back = read_labels(path)
    for name, v in vals.items():
        dims, idx = split_entry(back[name])
        assert dims == pytest.approx(v)
    assert split_entry(back["W_4bars_2_1"])[1] == 1


def test_bad_label_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"a": [1, 2]}))
    with pytest.raises(LabelFileError, match="bad.json"):
        read_labels(path)
