"""SSL and supervised losses: values, gradients, the same-recording guard, backward for every objective."""

from __future__ import annotations

import pytest
import torch

from crescendai.core.config import ConfigError, ModelParams, PretrainParams
from crescendai.core.midi_features import N_MIDI_FEATURES
from crescendai.learn import objectives as obj
from crescendai.learn.ssl import OBJECTIVES, SSLModel, partner_index
from crescendai.model import Backbone

TINY = ModelParams(dim=32, depth=1, heads=2, dropout=0.0, drop_path=0.0)


def test_infonce_two_crops_of_one_recording_are_never_negatives():
    # items 0,1 = recording 7; items 2,3 = recording 9; item 4 = recording 7 again (a third crop)
    rec = torch.tensor([7, 7, 9, 9, 7])
    logits = torch.randn(5, 5, requires_grad=True)
    obj.infonce_from_logits(logits, rec).backward()
    g = logits.grad
    same = obj.same_recording(rec) & ~torch.eye(5, dtype=torch.bool)
    other = ~obj.same_recording(rec)
    assert (g[same] < 0).all()   # same recording: only ever pulled together (a positive)
    assert (g[other] > 0).all()  # other recordings: pushed apart (negatives)
    assert (g.diagonal() == 0).all()  # self-similarity plays no part


def test_infonce_value_matches_hand_computation():
    rec = torch.tensor([0, 0, 1, 1])
    logits = torch.randn(4, 4)
    loss = obj.infonce_from_logits(logits, rec)
    terms = []
    for i, p, negs in [(0, 1, [2, 3]), (1, 0, [2, 3]), (2, 3, [0, 1]), (3, 2, [0, 1])]:
        den = torch.logsumexp(torch.stack([logits[i, p], *[logits[i, n] for n in negs]]), 0)
        terms.append(den - logits[i, p])
    assert torch.allclose(loss, torch.stack(terms).mean(), atol=1e-6)


def test_repulsive_guard():
    rec = torch.tensor([0, 0, 1])
    z = torch.randn(3, 4, requires_grad=True)
    sim_same_before = torch.cosine_similarity(z[0], z[1], dim=0)
    loss = obj.repulsive(z, rec)
    loss.backward()
    with torch.no_grad():
        z2 = z - 0.01 * z.grad
    assert torch.cosine_similarity(z2[0], z2[1], dim=0) > sim_same_before  # pulled together


def test_byol_and_ema():
    p, z = torch.randn(4, 8), torch.randn(4, 8)
    assert obj.byol(z, z) < 1e-5
    assert 0 <= obj.byol(p, z) <= 4
    assert obj.ema_momentum(0, 100, 0.99) == pytest.approx(0.99)
    assert obj.ema_momentum(100, 100, 0.99) == pytest.approx(1.0)
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    w = a.weight.clone()
    obj.ema_update(a, b, 0.9)
    assert torch.allclose(a.weight, 0.9 * w + 0.1 * b.weight)


def test_masked_softmax_is_over_candidates_of_the_same_window():
    target = torch.randn(2, 5, 16)
    perfect = obj.masked_patch(target * 10, target, temperature=0.01)
    shuffled = obj.masked_patch(target[:, torch.tensor([1, 2, 3, 4, 0])], target, temperature=0.01)
    assert perfect < 0.01 < shuffled
    # cross-window swap: window 0 predicting window 1's patches does not count as correct
    assert obj.masked_patch(target.flip(0), target, temperature=0.01) > 0.1


def test_partner_index():
    rec = torch.tensor([3, 3, 5, 5, 8, 3])
    assert partner_index(rec).tolist() == [1, 5, 3, 2, 4, 0]


def _teacher(b: int, seed: int = 0) -> torch.Tensor:
    """Random targets (B, 8, 25) in the teacher layout: velocity NaN where there is no onset."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(b, 8, 25, generator=g)
    onset = (t[..., 0:24:3] > 0.5).float()
    t[..., 0:24:3] = onset
    t[..., 1:24:3] = torch.where(onset > 0, t[..., 1:24:3], torch.nan)
    return t


@pytest.mark.parametrize("objective", [*OBJECTIVES, "performance+masked"])
def test_batch_model_loss_backward(objective):
    torch.manual_seed(0)
    ssl = SSLModel(Backbone(TINY), PretrainParams(objective=objective, proj_dim=16)).train()
    x = -80 * torch.rand(6, 128, 128)
    rec = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = ssl(x, rec, teacher=_teacher(6))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in ssl.backbone.parameters() if p.grad is not None]
    assert grads
    if objective != "none":
        assert any(g.abs().sum() > 0 for g in grads)
    if objective == "byol":  # the target follows the online network by EMA
        with torch.no_grad():
            for p in ssl.backbone.parameters():
                p.add_(1.0)
        t0 = ssl.target_backbone.patch_embed.weight.clone()
        ssl.after_step(1, 10)
        assert not torch.equal(t0, ssl.target_backbone.patch_embed.weight)


def test_unknown_objective_names_the_key_and_the_table():
    with pytest.raises(ConfigError, match=r"pretrain\.objective: 'simclr'.*infonce.*none"):
        SSLModel(Backbone(TINY), PretrainParams(objective="simclr"))


def test_teacher_loss_rewards_the_targets_and_ignores_undefined_cells():
    t = _teacher(4)
    logit = torch.logit(torch.nan_to_num(t, 0.5).clamp(1e-4, 1 - 1e-4))
    perfect = obj.teacher_loss(logit, t)
    assert perfect < obj.teacher_loss(logit.flip(0), t)
    pred = torch.zeros(4, 8, 25, requires_grad=True)
    no_midi = t.clone()
    no_midi[:2] = torch.nan  # two windows without MIDI
    valid = torch.ones(4, 8, dtype=torch.bool)
    valid[2, 4:] = False  # padded rows
    obj.teacher_loss(pred, no_midi, valid).backward()
    assert (pred.grad[:2] == 0).all() and (pred.grad[2, 4:] == 0).all() and pred.grad[3].abs().sum() > 0
    vel_cells = torch.isnan(t[..., 1:24:3])  # no onset → velocity undefined → no gradient there
    assert (pred.grad[3][..., 1:24:3][vel_cells[3]] == 0).all()


def test_teacher_stats_are_window_means():
    t = _teacher(3)
    s = obj.teacher_stats(t)
    assert s.shape == (3, 4)
    torch.testing.assert_close(s[:, 0], t[..., 0:24:3].mean(dim=(1, 2)))
    torch.testing.assert_close(s[:, 3], t[..., 24].mean(dim=1))
    assert torch.isnan(obj.teacher_stats(torch.full((1, 8, 25), torch.nan))).all()


def test_playing_loss_ignores_undefined_statistics():
    target = torch.tensor([[0.5, torch.nan], [torch.nan, torch.nan]])
    pred = torch.zeros(2, 2, requires_grad=True)
    loss = obj.playing_loss(pred, target)
    assert loss.item() == pytest.approx(0.25)
    loss.backward()
    assert pred.grad[0, 0] != 0 and (pred.grad.flatten()[1:] == 0).all()
    assert obj.playing_loss(pred, torch.full((2, 2), torch.nan)).item() == 0.0


def test_performance_objective_learns_the_statistics_of_the_playing():
    """With ``playing_weight`` > 0 the stats head's last F outputs are trained on the statistics of the
    playing, only when given; with 0 (the default) they are not built and the statistics are ignored."""
    torch.manual_seed(0)
    x, rec, t = -80 * torch.rand(4, 128, 128), torch.tensor([0, 0, 1, 1]), _teacher(4)
    F = N_MIDI_FEATURES
    off = SSLModel(Backbone(TINY), PretrainParams(objective="performance"))
    assert off.stats_head.out_features == obj.N_WINDOW_MEANS
    assert off(x, rec, teacher=t, playing=torch.randn(4, F)) == off(x, rec, teacher=t)
    ssl = SSLModel(Backbone(TINY), PretrainParams(objective="performance", playing_weight=2.0)).eval()
    assert ssl.stats_head.out_features == obj.N_WINDOW_MEANS + F
    ssl(x, rec, teacher=t).backward()
    assert (ssl.stats_head.weight.grad[obj.N_WINDOW_MEANS:] == 0).all()
    ssl.zero_grad()
    playing = torch.randn(4, F)
    playing[0] = torch.nan  # a window without MIDI
    with_playing, without = ssl(x, rec, teacher=t, playing=playing), ssl(x, rec, teacher=t)
    stats = ssl.stats_head(ssl.backbone.pool(ssl.backbone.tokens(x, None), None))[:, obj.N_WINDOW_MEANS:]
    torch.testing.assert_close(with_playing - without, 2.0 * obj.playing_loss(stats, playing))
    with_playing.backward()
    assert ssl.stats_head.weight.grad[obj.N_WINDOW_MEANS:].abs().sum() > 0


def test_performance_objective_needs_teacher_targets_and_the_teacher_rows():
    ssl = SSLModel(Backbone(TINY), PretrainParams(objective="performance"))
    with pytest.raises(ConfigError, match="teacher.npy"):
        ssl(-80 * torch.rand(2, 128, 128), torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="model.patch"):
        SSLModel(Backbone(ModelParams(patch=32, dim=32, depth=1, heads=2)), PretrainParams(objective="performance"))


@pytest.mark.parametrize("name", ["performance+performance", "none+masked", "masked+simclr"])
def test_bad_mixtures_name_the_key(name):
    with pytest.raises(ConfigError, match="pretrain.objective"):
        SSLModel(Backbone(TINY), PretrainParams(objective=name))


def test_only_the_objectives_modules_are_built():
    built = {name: {k for k, _ in SSLModel(Backbone(TINY), PretrainParams(objective=name)).named_children()}
             for name in OBJECTIVES}
    assert built["none"] == {"backbone"} and built["infonce"] == built["repulsive"] == {"backbone", "projector"}
    assert built["masked"] == {"backbone", "disc_head", "recon_head"}
    assert built["byol"] == {"backbone", "projector", "predictor", "target_backbone", "target_projector"}
    assert built["performance"] == {"backbone", "teacher_head", "stats_head"}
    mixed = {k for k, _ in SSLModel(Backbone(TINY), PretrainParams(objective="performance+masked")).named_children()}
    assert mixed == built["performance"] | built["masked"]


def test_regression_and_pearson():
    y = torch.rand(16, 19)
    assert obj.regression_loss(y, y, mse=1, mae=1, corr=1) < 1e-5
    assert obj.pearson_loss(2 * y + 1, y) < 1e-4
    assert obj.pearson_loss(-y, y) == pytest.approx(2.0, abs=1e-4)
    p = torch.rand(16, 19, requires_grad=True)
    mask = torch.ones(16, dtype=torch.bool)
    mask[:4] = False
    obj.regression_loss(p, y, mse=1, mae=0.5, corr=0.5, mask=mask).backward()
    assert (p.grad[:4] == 0).all() and p.grad[4:].abs().sum() > 0


def test_corn_loss_and_levels():
    y = torch.tensor([[1 / 7, 1.0, 4 / 7]])
    lv = obj.labels_to_levels(y)
    assert lv.tolist() == [[0, 6, 3]]
    good = torch.where(torch.arange(6)[None, None] < lv[..., None], 20.0, -20.0)  # (1, 3, 6)
    assert obj.corn_loss(good, lv) < 1e-3
    assert obj.corn_loss(-good, lv) > 5


def test_smoothness_and_proxy_consistency():
    flat = torch.ones(2, 8, 19)
    assert obj.smoothness_loss(flat) == 0
    seq = torch.randn(2, 8, 19)
    m = torch.ones(2, 8, dtype=torch.bool)
    m[:, 4:] = False
    assert obj.smoothness_loss(seq, m) == pytest.approx(((seq[:, 1:4] - seq[:, :3]) ** 2).mean().item(), rel=1e-5)
    proxies = torch.randn(32, 4)
    pred = torch.zeros(32, 19)
    for d, p, s in obj.DEFAULT_PROXY_PAIRS:
        pred[:, d] = s * proxies[:, p]
    assert obj.proxy_consistency_loss(pred, proxies) < 1e-4
    assert obj.proxy_consistency_loss(-pred, proxies) > 0.99
