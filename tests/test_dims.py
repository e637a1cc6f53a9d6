"""The 19-dimension table."""

from __future__ import annotations

import pytest

from crescendai.core import dims


def test_order_and_keys_follow_percepiano():
    assert dims.N_DIMS == 19
    assert dims.KEYS[0] == "timing" and dims.KEYS[18] == "interpretation"
    assert dims.KEYS[3:5] == ("pedal_amount", "pedal_clarity")
    assert len(set(dims.KEYS)) == 19


def test_problem_poles():
    assert dims.problem_direction(dims.by_key("timing")) == 1  # unstable is a problem
    assert dims.problem_direction(dims.by_key("pedal_clarity")) == 1  # blurred is a problem
    assert dims.problem_direction(dims.by_key("interpretation")) == -1  # unconvincing
    assert dims.problem_direction(dims.by_key("mood_valence")) == 0  # dark mood is not a fault


def test_subjective_dimensions_are_marked():
    subjective = {d.key for d in dims.DIMENSIONS if d.subjective}
    assert {"mood_valence", "mood_energy", "mood_imagination", "interpretation"} <= subjective
    assert "timing" not in subjective


def test_every_dimension_has_advice():
    assert all(len(d.advice) > 20 for d in dims.DIMENSIONS)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(KeyError, match="valid keys: timing"):
        dims.by_key("tempo")


def test_label_scale():
    assert dims.rating_to_label(7) == 1.0
    assert dims.rating_to_label(1) == pytest.approx(dims.LABEL_MIN)
    assert dims.label_to_rating(dims.rating_to_label(4.5)) == pytest.approx(4.5)
    with pytest.raises(ValueError, match=r"\[1, 7\]"):
        dims.rating_to_label(0)
