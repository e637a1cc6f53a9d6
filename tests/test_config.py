"""params.yaml validation: every mistake names its key."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from crescendai.core.config import (
    ConfigError,
    Params,
    load_params,
    params_from_dict,
    params_to_dict,
    seed_everything,
)

REPO = Path(__file__).resolve().parents[1]


def _raw() -> dict:
    return params_to_dict(load_params(REPO / "params.yaml"))


def test_repo_params_load():
    p = load_params(REPO / "params.yaml")
    assert isinstance(p, Params)
    assert p.model.dim % p.model.heads == 0


def test_defaults_are_the_repo_params():
    """The dataclass defaults are the one statement of a default; params.yaml spells them out."""
    assert load_params(REPO / "params.yaml") == Params()


def test_scientific_notation_is_float(tmp_path):
    text = (REPO / "params.yaml").read_text().replace("lr: 0.0003", "lr: 3e-4", 1)
    assert "3e-4" in text
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path / "params.yaml").pretrain.lr == pytest.approx(3e-4)


def test_round_trip():
    raw = _raw()
    assert params_to_dict(params_from_dict(copy.deepcopy(raw))) == raw


def test_missing_key_is_named():
    raw = _raw()
    del raw["pretrain"]["lr"]
    with pytest.raises(ConfigError, match=r"missing parameter pretrain\.lr"):
        params_from_dict(raw)


def test_unknown_key_is_named():
    raw = _raw()
    raw["finetune"]["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) finetune\.learning_rate"):
        params_from_dict(raw)


@pytest.mark.parametrize(
    ("section", "key", "value", "pattern"),
    [
        ("split", "group_by", "team", r"split\.group_by: 'team' is not one of"),
        ("model", "dropout", 1.5, r"model\.dropout: 1\.5 is out of range"),
        ("pretrain", "epochs", 2.5, r"pretrain\.epochs: expected an integer"),
        ("preprocess", "hop_sec", "fast", r"preprocess\.hop_sec: expected a number"),
        ("render", "sample_rate", 16000, r"render\.sample_rate: 16000 is not one of"),
    ],
)
def test_bad_values_are_named(section, key, value, pattern):
    raw = _raw()
    raw[section][key] = value
    with pytest.raises(ConfigError, match=pattern):
        params_from_dict(raw)


def test_cross_field_rule():
    raw = _raw()
    raw["model"]["heads"] = 3
    raw["model"]["dim"] = 256
    with pytest.raises(ConfigError, match=r"model\.dim .* divisible by model\.heads"):
        params_from_dict(raw)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_not_yaml(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_seed_everything_drives_all_rngs():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()  # noqa: NPY002

    seed_everything(123)
    a = draw()
    seed_everything(123)
    assert draw() == a
    seed_everything(124)
    assert draw() != a
