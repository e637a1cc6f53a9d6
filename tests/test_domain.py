"""The tutor's domain check: the training description (evaluate.domain), the bundle's domain.npz and
what the analysis and its reports do with it (widen the ±, withhold advice, say so in plain words)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crescendai.cli import main
from crescendai.core import dims
from crescendai.evaluate import domain as D
from crescendai.tutor import analysis
from crescendai.tutor.bundle import Bundle, IdentityCalibration, ModelError, load_bundle
from crescendai.tutor.report import build_report, text_report, validate_report
from crescendai.tutor.scorer import ScoreBatch
from tutor_fixtures import (
    domain_renders,
    piece,
    render,
    save_tiny_bundle,
    write_audio,
    write_window_cache,
)

TIMING = dims.by_key("timing").index


# ------------------------------------------------------------------------------------------
# the description itself, on Gaussian data
# ------------------------------------------------------------------------------------------


def _gaussian(rng, n, shift=0.0):
    """Correlated 24-dim "embeddings" and 30 "features" of wildly different scales."""
    mix = np.random.default_rng(0).normal(size=(24, 24))
    emb = rng.normal(size=(n, 24)) @ mix * 0.3 + 2.0 + shift
    feats = rng.normal(size=(n, 30)) * np.logspace(-3, 3, 30) + 5.0
    return emb, feats


@pytest.fixture(scope="module")
def gauss():
    rng = np.random.default_rng(1)
    emb, feats = _gaussian(rng, 1600)
    return D.fit_domain(emb, feats, np.arange(1600) % 4), rng


def test_held_out_percentiles_are_uniform_in_distribution_and_one_when_shifted(gauss):
    dm, rng = gauss
    emb, feats = _gaussian(rng, 2000)
    p = D.window_percentiles(dm, emb, feats)
    assert p.shape == (2000,) and p.min() >= 0 and p.max() <= 1
    hist = np.histogram(p, bins=10, range=(0, 1))[0] / len(p)
    assert np.all(np.abs(hist - 0.1) < 0.035), hist  # ≈ uniform
    assert abs(np.mean(p >= 0.95) - 0.05) < 0.025 and np.mean(p >= 0.99) < 0.03
    v = D.recording_verdict(p, D.assess_windows(dm, emb, feats).ratio)
    assert v.level == D.IN_DOMAIN and v.widening == 1.0 and 0.35 < v.percentile < 0.65
    # features alone (a scorer without embeddings): still uniform
    p1 = D.window_percentiles(dm, None, feats)
    assert abs(np.mean(p1 >= 0.95) - 0.05) < 0.025
    # shifted embeddings, or shifted features: far out
    for e, f in ((emb[:200] + 1.0, feats[:200]), (emb[:200], feats[:200] * 3)):
        chk = D.assess_windows(dm, e, f)
        assert np.median(chk.percentile) >= 0.99
        v = D.recording_verdict(chk.percentile, chk.ratio)
        assert v.level == D.FAR and not v.advice and v.far_share > 0.9 and 1 < v.widening <= D.MAX_WIDENING


def test_verdict_levels_and_widening_formula():
    assert D.level_of(0.5) == D.IN_DOMAIN and D.level_of(0.95) == D.UNUSUAL and D.level_of(0.99) == D.FAR
    v = D.recording_verdict(np.array([0.96, 0.97, 0.5, np.nan]), np.array([1.5, 2.0, 0.5, 9.0]))
    assert v.level == D.UNUSUAL and v.n_windows == 3 and v.ratio == 1.5 and v.widening == 1.5
    assert D.widening(0.3) == 1.0 and D.widening(2.0) == 2.0 and D.widening(50.0) == D.MAX_WIDENING
    assert D.recording_verdict(np.array([1.0, 1.0])).widening == D.MAX_WIDENING  # no ratios: far = the cap
    with pytest.raises(ValueError, match="at least one"):
        D.recording_verdict(np.array([np.nan]))


def test_save_load_round_trip_and_errors(gauss, tmp_path):
    dm, rng = gauss
    dm.save(tmp_path / "domain.npz")
    back = D.DomainModel.load(tmp_path / "domain.npz")
    emb, feats = _gaussian(rng, 50)
    assert np.array_equal(D.window_percentiles(back, emb, feats), D.window_percentiles(dm, emb, feats))
    assert back.n_windows == 1600 and back.n_folds == 4 and back.embedding_dim == 24
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary left
    with pytest.raises(ValueError, match="expected rows of 24"):
        D.assess_windows(dm, emb[:, :10], feats)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz.*dvc repro calibrate"):
        D.DomainModel.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="2 folds"):
        D.fit_domain(emb, feats, np.zeros(50))


# ------------------------------------------------------------------------------------------
# the tutor, end to end, with a tiny model whose bundle describes additive-piano renders
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    from crescendai.model import load_model

    d = tmp_path_factory.mktemp("domain")
    bundle = save_tiny_bundle(d / "tutor")
    plain = save_tiny_bundle(d / "plain")  # no domain.npz
    cache = write_window_cache(d / "labelled", domain_renders(12), [0, 1, 2, 3] * 3)
    dm, _ = D.fit_from_feature_set(load_model(bundle).backbone, cache)
    dm.save(bundle / "domain.npz")
    y = render(piece(16, 3, 100, seed=5, timing_jitter=0.005))
    noise = np.random.default_rng(7).normal(0, 0.1, 22050 * 20).astype(np.float32)
    burst = y.copy()
    a, b = int(12 * 22050), int(19 * 22050)
    burst[a:b] = np.random.default_rng(8).normal(0, 0.05, b - a)
    return {"dir": d, "bundle": bundle, "plain": plain, "domain": dm,
            "take": write_audio(d / "take.wav", y), "noise": write_audio(d / "noise.wav", noise / 4),
            "burst": write_audio(d / "burst.wav", burst), "burst_sec": (12.0, 19.0)}


def _cli(args, capsys):
    rc = main(["analyze", *map(str, args)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


WARNING = "sounds unlike the recordings the model learned from"


def test_noise_is_far_out_gets_no_advice_and_every_report_says_so(fx, capsys):
    out_dir = fx["dir"] / "noise_report"
    text = _cli([fx["noise"], "--model", fx["bundle"], "--out", out_dir], capsys)
    rep = json.loads((out_dir / "report.json").read_text())
    validate_report(rep)
    dom = rep["domain"]
    assert dom["checked"] and dom["level"] == "far" and dom["percentile"] >= 0.99 and not dom["advice"]
    assert dom["widening"] > 1 and dom["far_share"] > 0.9
    assert rep["feedback"] == [] and rep["summary"] == {"strengths": [], "weaknesses": []}
    assert len(rep["windows"]["domain_percentile"]) == len(rep["windows"]["start_sec"])
    assert WARNING in dom["text"] and "no advice is given" in dom["text"]
    assert WARNING in text and "No advice:" in text and "Where to work" not in text and "try:" not in text
    html = (out_dir / "report.html").read_text()
    assert WARNING in html and "<h2>No advice</h2>" in html and "Where to work" not in html


def test_an_in_domain_render_gets_no_warning(fx, capsys):
    out_dir = fx["dir"] / "take_report"
    text = _cli([fx["take"], "--model", fx["bundle"], "--out", out_dir, "--meter", "3/4"], capsys)
    rep = json.loads((out_dir / "report.json").read_text())
    dom = rep["domain"]
    assert dom["level"] == "in domain" and dom["percentile"] < 0.95 and dom["advice"] and dom["widening"] == 1
    assert "unlike" not in text and "sounds like the recordings the model learned from" in text
    assert "Where to work:" in text and "unlike" not in (out_dir / "report.html").read_text()


def test_a_bundle_without_domain_npz_says_the_check_was_not_available(fx, capsys):
    out_dir = fx["dir"] / "plain_report"
    text = _cli([fx["noise"], "--model", fx["plain"], "--out", out_dir], capsys)
    rep = json.loads((out_dir / "report.json").read_text())
    assert rep["domain"]["checked"] is False and rep["domain"]["level"] is None and rep["domain"]["advice"]
    assert rep["windows"]["domain_percentile"] is None
    assert "Recording check not available" in text and WARNING not in text


def test_far_out_recording_widens_the_uncertainty(fx):
    """With a validation record (error e per dimension), the far recording's ± carries w · e,
    w > 1: the same model error the in-domain take carries unwidened."""

    class Validated(IdentityCalibration):
        error, r = np.full(19, 0.1), np.full(19, 0.5)

    b = load_bundle(fx["bundle"])
    bundle = Bundle(b.scorer, Validated(), b.path, domain=b.domain)
    far = analysis.analyze_file(fx["noise"], bundle)
    near = analysis.analyze_file(fx["take"], bundle, meter="3/4")
    w = far.domain.verdict.widening
    assert w > 1 and np.allclose(far.domain_widening, w) and np.allclose(near.domain_widening, 1.0)
    assert np.all(far.pooled.uncertainty >= w * 0.1 - 1e-6) and np.all(near.pooled.uncertainty < w * 0.1)
    # an explicit widening overrides the check's
    assert np.allclose(analysis.analyze_file(fx["noise"], bundle, domain_widening=1.0).domain_widening, 1.0)


class NoiseHatingScorer:
    """A stand-in model without embeddings (the check then uses the hand-crafted features alone):
    timing is judged unstable wherever the window sounds like noise (flat spectrum), stable elsewhere."""

    def score(self, db, *, mc_samples, pad_mask=None):
        base = np.full((db.shape[0], 19), 4 / 7, np.float32)
        for d in dims.DIMENSIONS:
            base[:, d.index] -= dims.problem_direction(d) / 7
        flat = db.reshape(db.shape[0], -1).mean(axis=1) > -35  # noise: every band near the peak
        base[:, TIMING] = np.where(flat, 6 / 7, 3 / 7)
        return ScoreBatch(base, np.full(base.shape, 0.01, np.float32))

    def saliency(self, db, weights, *, pad_mask=None):
        return np.full((db.shape[0], 16, 16), 1 / 256, np.float32)


def test_passages_far_out_on_their_own_get_no_advice(fx):
    """A noise burst inside an in-domain take: the recording stays in domain, the burst's bars are
    far out and get no line — without the check the same scorer puts a timing line exactly there."""
    lo, hi = fx["burst_sec"]

    def timing_lines(a):
        return [ln for ln in a.lines if TIMING in ln.dims]

    unchecked = analysis.analyze_file(fx["burst"], Bundle(NoiseHatingScorer(), IdentityCalibration(), "x"),
                                      meter="3/4", tempo_hint=100)
    hits = timing_lines(unchecked)
    assert hits and all(unchecked.units.start_sec[ln.first] < hi and unchecked.units.end_sec[ln.last] > lo
                        for ln in hits)
    checked = analysis.analyze_file(fx["burst"], Bundle(NoiseHatingScorer(), IdentityCalibration(), "x",
                                                        domain=fx["domain"]), meter="3/4", tempo_hint=100)
    assert checked.domain.verdict.level == D.IN_DOMAIN and checked.domain.advice
    far = checked.domain.far_units
    mid = (checked.units.start_sec + checked.units.end_sec) / 2
    assert far.any() and np.all((mid[far] > lo - 2) & (mid[far] < hi + 2))  # the burst, nothing else
    assert not [ln for ln in timing_lines(checked) if far[ln.first: ln.last + 1].any()]
    rep = build_report(checked)
    validate_report(rep)
    assert rep["domain"]["withheld"] and "No advice for" in text_report(rep)


def test_a_domain_file_of_another_model_is_refused(fx, tmp_path):
    import shutil

    folder = save_tiny_bundle(tmp_path / "b")
    other = D.DomainModel(dict(fx["domain"].blocks), fx["domain"].ref_combined, 10, 2)
    e = other.blocks["embedding"]
    other.blocks["embedding"] = D.Block(e.mean[:8], e.scale[:8], e.precision[:8, :8], e.ref_d2)
    other.save(folder / "domain.npz")
    with pytest.raises(ModelError, match="width 8.*32.*dvc repro calibrate"):
        load_bundle(folder)
    shutil.copyfile(fx["bundle"] / "domain.npz", folder / "domain.npz")
    assert load_bundle(folder).domain is not None


# ------------------------------------------------------------------------------------------
# the pipeline's bundle: the phone-channel set, an unseen piano and room, noise
# ------------------------------------------------------------------------------------------

REAL = Path("models/tutor")


def _real_bundle():
    if not (REAL / "domain.npz").is_file():
        pytest.skip("models/tutor/domain.npz not built (run `uv run dvc repro calibrate`)")
    return load_bundle(REAL)


def _chorale(tmp_path: Path, name: str, piano: int, channel) -> Path:
    """An 8-bar chorale of the synthesiser, played by a synthetic performer, through ``channel``."""
    from crescendai.synth.material import make_piece
    from crescendai.synth.performance import perform, sample_controls, sample_performer
    from crescendai.synth.render import render_audio, write_audio

    rng = np.random.default_rng(42)
    work = make_piece(rng, "Test_chorale", "G", "major", "chorale", "3/4", 8, 96.0)
    perf = perform(work, sample_controls(rng, sample_performer(rng, "900")), rng).performance
    y = render_audio(perf, piano, channel, 22050, noise_seed=3)
    path = tmp_path / f"{name}.wav"
    write_audio(path, y, 22050)
    return path


@pytest.mark.slow
def test_real_bundle_finds_unseen_rooms_phones_and_noise_further_out(tmp_path):
    """A chorale re-rendered through a hall far outside the training rooms (RT60 3 s, mic at 6 m;
    training: 0.2–1.2 s, 0.5–4 m), with a training piano and with an unseen one, and through a
    phone; and noise. (An unseen piano alone, in a training room, is not told apart: the
    synthesiser's extra pianos are drawn from the same ranges as the seven it trained on.)"""
    from crescendai.synth.channels import Channel, sample_phone, sample_room

    bundle = _real_bundle()
    rng = np.random.default_rng(0)
    room = sample_room(rng, 0.4, 0.8, -60.0)
    hall = Channel("room", 3.0, 6.0, -3.0, -40.0, 0.0, 0.0, 5)
    cases = {
        "in_domain": _chorale(tmp_path, "in", 2, room),  # a training piano, a room in the training range
        "unseen_room": _chorale(tmp_path, "hall", 2, hall),
        "unseen_piano_and_room": _chorale(tmp_path, "unseen", 11, hall),
        "phone": _chorale(tmp_path, "phone", 2, sample_phone(rng)),
        "noise": write_audio(tmp_path / "noise.wav",
                             np.random.default_rng(1).normal(0, 0.05, 22050 * 15).astype(np.float32)),
    }
    got = {k: analysis.analyze_file(p, bundle).domain.verdict for k, p in cases.items()}
    print({k: (v.level, round(v.percentile, 4), round(v.widening, 2)) for k, v in got.items()})
    assert got["in_domain"].level == D.IN_DOMAIN
    for k in ("unseen_room", "unseen_piano_and_room", "phone", "noise"):
        assert got[k].level != D.IN_DOMAIN and got[k].percentile > got["in_domain"].percentile, k
    assert got["noise"].level == D.FAR and got["noise"].widening > got["phone"].widening


@pytest.mark.slow
def test_real_bundle_finds_the_phone_channel_set_further_out_than_unseen_players():
    """The cached phone-channel set (data/features/ood) against the labelled test split (players the
    model never saw, through the training rooms): its windows lie further out."""
    bundle = _real_bundle()
    from crescendai.data.window_cache import load_feature_set
    from crescendai.evaluate.audio_features import window_features
    from crescendai.learn.batches import pad_mask_from_fraction

    sets = {"phone": Path("data/features/ood"), "test": Path("data/features/labelled")}
    if not all((p / "windows.npy").is_file() for p in sets.values()):
        pytest.skip("data/features not built (run `uv run dvc repro preprocess`)")
    med = {}
    for name, path in sets.items():
        fs = load_feature_set(path)
        rows = fs.test_rows() if name == "test" else np.arange(len(fs))
        x = fs.batch(rows)
        pad = fs.index["pad_fraction"].to_numpy()[rows]
        scored = bundle.scorer.score(x, mc_samples=1, pad_mask=pad_mask_from_fraction(pad))  # either runtime
        emb = scored.embedding
        med[name] = float(np.median(D.window_percentiles(bundle.domain, emb, window_features(x, pad))))
    print(med)
    assert med["test"] < D.UNUSUAL_PERCENTILE and med["phone"] > med["test"]
