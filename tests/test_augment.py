"""Augmentations: contract preserved, deterministic per generator, conservative, no pitch/time change."""

from __future__ import annotations

import torch

from crescendai.learn.augment import AugmentConfig, augment, reverb


def windows(b: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    db = -80 * torch.rand(b, 128, 128, generator=g) ** 0.3
    db[:, :, 0] = 0.0  # a peak
    return db


def test_contract_and_determinism():
    x = windows()
    a = augment(x, torch.Generator().manual_seed(0))
    b = augment(x, torch.Generator().manual_seed(0))
    c = augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -80 and a.max() <= 0
    assert torch.allclose(a.amax(dim=(1, 2)), torch.zeros(4))  # per-window ref=max re-applied


def test_padding_stays_floor():
    x = windows(2)
    pad = torch.zeros(2, 128, dtype=torch.bool)
    pad[:, 100:] = True
    x[:, 100:] = -80
    y = augment(x, torch.Generator().manual_seed(0), pad_mask=pad)
    assert (y[:, 100:] == -80).all()


def test_conservative_without_masks_keeps_spectral_shape():
    # An onset in one band stays in that band and starts at the same frame: no pitch or time shift.
    x = torch.full((1, 128, 128), -80.0)
    x[0, 40:60, 30] = 0.0
    cfg = AugmentConfig(n_time_masks=0, n_freq_masks=0)
    y = augment(x, torch.Generator().manual_seed(3), cfg)
    assert y[0].amax(dim=0).argmax() == 30
    assert (y[0, :40, 30] < -40).all() and (y[0, 40:60, 30] > -3).all()


def test_reverb_tail_decays_after_offset():
    p = torch.zeros(1, 128, 4)
    p[0, 10] = 1.0
    out = reverb(p, torch.tensor([0.5]), torch.tensor([1.0]), hf_damping=0.5)
    tail = out[0, 11:40, 0]
    assert (tail[1:] < tail[:-1]).all() and out[0, :10].sum() == 0
    assert out[0, 20, 3] < out[0, 20, 0]  # high bands decay faster
