"""What the model heard: the teacher row head saved, loaded, run in the scorer's one pass, and its
rows put on one timeline of the recording."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crescendai.core.audio import FRAME_SEC
from crescendai.data.teacher import N_TEACHER, PEDAL_COL, TEACHER_FIELDS, TEACHER_ROWS, field_index
from crescendai.model import RowTeacherHead, load_teacher_head, save_teacher_head
from crescendai.model.bundle import ModelFileError
from crescendai.tutor.heard import ROW_SEC, heard_timeline


def test_from_tokens_reads_one_time_row_of_register_tokens():
    torch.manual_seed(0)
    head = RowTeacherHead(dim=4, n_freq=8, n_fields=N_TEACHER)
    tokens = torch.randn(2, 1 + 8 * 8, 4)
    out = head.from_tokens(tokens)
    assert out.shape == (2, 8, N_TEACHER)
    row3 = tokens[:, 1 + 8 * 3: 1 + 8 * 4].reshape(2, 32)  # patches 8·3 + f, f = 0..7
    torch.testing.assert_close(out[:, 3], head(row3))


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(1)
    head = RowTeacherHead(dim=4, n_freq=8, n_fields=N_TEACHER)
    entry = save_teacher_head(head, tmp_path, list(TEACHER_FIELDS), {"teacher_onset_f1": 0.7})
    assert entry["dim"] == 4 and entry["n_freq"] == 8 and entry["quality"] == {"teacher_onset_f1": 0.7}
    back = load_teacher_head(tmp_path, entry)
    x = torch.randn(3, 1 + 64, 4)
    torch.testing.assert_close(back.from_tokens(x), head.from_tokens(x))
    (tmp_path / entry["weights"]).unlink()
    with pytest.raises(ModelFileError, match="teacher_head.pt: cannot load the teacher head.*dvc repro"):
        load_teacher_head(tmp_path, entry)


def test_the_scorer_runs_the_row_head_in_the_same_pass():
    from crescendai.tutor.bundle import split_model
    from crescendai.tutor.scorer import TorchScorer
    from tutor_fixtures import tiny_model

    backbone, head, _ = split_model(tiny_model())
    nt, nf = backbone.cfg.grid
    plain = TorchScorer(backbone, head)
    with_head = TorchScorer(backbone, head, teacher_head=RowTeacherHead(backbone.dim, nf, N_TEACHER))
    db = np.random.default_rng(0).uniform(-80, 0, (5, 128, 128)).astype(np.float32)
    a, b = plain.score(db, mc_samples=1), with_head.score(db, mc_samples=1)
    assert a.heard is None and b.heard.shape == (5, nt, N_TEACHER)
    assert np.all((b.heard >= 0) & (b.heard <= 1))
    np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)  # pool(tokens) == forward
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-5)


def test_rows_of_overlapping_windows_land_on_one_grid():
    heard = np.zeros((3, TEACHER_ROWS, N_TEACHER))
    on3, vel3 = field_index("onset_b3"), field_index("velocity_b3")
    heard[0, 2, on3], heard[0, 2, vel3] = 1.0, 0.5  # window 0, row 2: a note in band 3, velocity 63.5
    heard[:, :, PEDAL_COL] = [[1.0] * TEACHER_ROWS, [0.0] * TEACHER_ROWS, [0.5] * TEACHER_ROWS]
    start = np.array([0.0, 1.0, 2.0])
    h = heard_timeline(start, heard, np.array([True, True, False]), duration_sec=6.0,
                       quality={"teacher_onset_f1": 0.7, "teacher_cells": 9})
    assert len(h.start_sec) == int(np.ceil(6.0 / ROW_SEC)) and h.quality == {"onset F1": 0.7}
    cell = int((2 * 16 + 7.5) * FRAME_SEC / ROW_SEC)
    assert h.onsets[cell] == pytest.approx(1.0) and h.velocity[cell] == pytest.approx(63.5)
    assert np.isnan(h.velocity[cell + 1])  # nothing struck: no velocity
    covered = ~np.isnan(h.pedal)
    assert h.pedal[0] == 1.0 and set(np.round(h.pedal[covered], 3)) <= {0.0, 0.5, 1.0}
    assert np.isnan(h.pedal[-1])  # after the last valid window (the third is not valid)
