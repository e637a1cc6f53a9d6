"""The tutor's domain check: how far a recording lies from the windows its model learned from.

The calibrate stage describes the training distribution (:func:`fit_domain`, stored in the tutor
bundle as ``domain.npz``); the tutor measures every window of a recording against it
(:func:`assess_windows`) and sums the recording up (:func:`recording_verdict`).

**Blocks.** Two descriptions of a contract window, each checked on its own:

- ``embedding``: the shipped model's backbone embedding, float [W, D] (D = the model's ``dim``);
- ``features``: the 30 hand-crafted features of
  :func:`crescendai.evaluate.audio_features.window_features`, float [W, 30].

**Distance.** Per block, columns are standardised with the training windows' mean and standard
deviation (so the shrinkage target of Ledoit–Wolf, a multiple of the identity, suits columns of
very different units), then a Ledoit–Wolf covariance (``sklearn.covariance.LedoitWolf``) is fitted;
a window ``x`` lies at squared Mahalanobis distance

    d²_b(x) = zᵀ P_b z,    z = (x − mean_b) / scale_b,    P_b = the Ledoit–Wolf precision

(≈ the block's dimension for a typical training window; ≥ 0).

**Reference** (what "far" means). The distances of *held-out* training windows, cross-fitted over
the performer folds: for each fold k the blocks are fitted on the other folds and the distances of
fold k's windows are measured — windows of players the description never saw, as a new
recording's are. Stored as :data:`N_QUANTILES` quantiles (0 %, 1 %, …, 100 %) per block
(``ref_d2``). With ``F_b`` the block's reference CDF (linear between quantiles, 0 below the
nearest and 1 beyond the furthest held-out window), a window's percentile is

    p(x) = F_comb(max_b F_b(d²_b(x)))    in [0, 1]

where ``F_comb`` is the CDF of the same maximum over the held-out windows (``ref_combined``), so
``p`` is uniform on held-out training windows: ``p = 0.99`` means further out than 99 % of them.
Without an embedding (a scorer that gives none) ``p`` is the features block's ``F_b`` alone.

**Verdict** of a recording (:func:`recording_verdict`): ``percentile`` = the median ``p`` over its
valid windows; ``far`` when it is ≥ :data:`FAR_PERCENTILE` (0.99), ``unusual`` when ≥
:data:`UNUSUAL_PERCENTILE` (0.95), else ``in domain``. Widening of the model error::

    ρ(x) = max_b √(d²_b(x) / q95_b)        (distance relative to the reference's 95th percentile)
    w    = clip(median ρ, 1, MAX_WIDENING)

so a recording as close as 95 % of held-out windows keeps the model's error (w = 1), one twice as
far as that doubles it, and :data:`MAX_WIDENING` caps it (further out, no advice is given anyway).
The linear growth is a heuristic — a smooth model's error grows with the distance it extrapolates —
not a measurement: no labelled recording off the training distribution exists to fit it on.

Usage::

    dm = fit_domain(emb, feats, folds)                 # calibrate stage, non-test windows
    dm.save("models/tutor/domain.npz")
    chk = assess_windows(DomainModel.load(...), emb_new, feats_new)
    v = recording_verdict(chk.percentile, chk.ratio)   # v.level, v.percentile, v.widening
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT: str = "crescendai.domain.v1"
BLOCKS: tuple[str, ...] = ("embedding", "features")
"""The blocks in order; :func:`assess_windows` takes their values in this order."""
N_QUANTILES: int = 101
"""Reference quantiles stored per block: 0 %, 1 %, …, 100 %."""
LEVELS: np.ndarray = np.linspace(0.0, 1.0, N_QUANTILES)
UNUSUAL_PERCENTILE: float = 0.95
"""A recording whose median window percentile is at least this sounds unusual."""
FAR_PERCENTILE: float = 0.99
"""A recording (or a window) at least this far out gets no advice."""
IN_DOMAIN, UNUSUAL, FAR = "in domain", "unusual", "far"
MAX_WIDENING: float = 3.0
"""The largest widening factor of the model error."""


@dataclass
class Block:
    """One block's description: ``mean``, ``scale`` float [F] (column standardisation),
    ``precision`` float [F, F] (Ledoit–Wolf, standardised units) and ``ref_d2`` float
    [:data:`N_QUANTILES`] (held-out squared distances at 0 %, 1 %, …, 100 %)."""

    mean: np.ndarray
    scale: np.ndarray
    precision: np.ndarray
    ref_d2: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def d2(self, x: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances float [W] of rows ``x`` [W, F]."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected rows of {self.dim} values, got shape {x.shape}")
        z = (x - self.mean) / self.scale  # (W, F)
        return np.einsum("wi,ij,wj->w", z, self.precision, z)

    def cdf(self, d2: np.ndarray) -> np.ndarray:
        """``F_b``: share of held-out windows closer than ``d2`` (linear between quantiles)."""
        return _cdf(d2, self.ref_d2)

    @property
    def q95(self) -> float:
        """The reference's 95th-percentile squared distance."""
        return float(np.interp(0.95, LEVELS, self.ref_d2))


@dataclass
class WindowCheck:
    """Per-window result of :func:`assess_windows`: ``percentile`` float [W] in [0, 1] (``p``),
    ``ratio`` float [W] >= 0 (``ρ``, distance over the reference's 95th-percentile distance) and
    ``d2`` float [W, B] (per block; NaN for a block not given)."""

    percentile: np.ndarray
    ratio: np.ndarray
    d2: np.ndarray


@dataclass(frozen=True)
class Verdict:
    """The domain verdict of one recording (module docstring).

    Attributes:
        level: :data:`IN_DOMAIN`, :data:`UNUSUAL` or :data:`FAR`.
        percentile: median window percentile, [0, 1].
        ratio: median window distance over the reference's 95th-percentile distance, >= 0.
        widening: factor on the model error, in [1, :data:`MAX_WIDENING`].
        far_share: share of the windows at or beyond :data:`FAR_PERCENTILE`, [0, 1].
        n_windows: windows it is based on.
    """

    level: str
    percentile: float
    ratio: float
    widening: float
    far_share: float
    n_windows: int

    @property
    def advice(self) -> bool:
        """Whether advice may be given (not far out)."""
        return self.level != FAR


@dataclass
class DomainModel:
    """The training distribution as the tutor checks it: ``blocks`` (name → :class:`Block`, in
    :data:`BLOCKS` order; ``embedding`` may be absent), ``ref_combined`` float [:data:`N_QUANTILES`]
    (reference quantiles of ``max_b F_b``), ``n_windows`` fitted on and ``n_folds`` cross-fitted."""

    blocks: dict[str, Block]
    ref_combined: np.ndarray
    n_windows: int
    n_folds: int

    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomically write ``.npz`` arrays (no pickle)."""
        from crescendai.core.files import atomic_write

        arrays: dict[str, np.ndarray] = {
            "format": np.array(FORMAT), "blocks": np.array(list(self.blocks)),
            "ref_combined": self.ref_combined, "n_windows": np.array(self.n_windows),
            "n_folds": np.array(self.n_folds),
        }
        for name, b in self.blocks.items():
            arrays.update({f"{name}.mean": b.mean, f"{name}.scale": b.scale,
                           f"{name}.precision": b.precision, f"{name}.ref_d2": b.ref_d2})
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DomainModel:
        """Read a file written by :meth:`save`.

        Raises:
            ValueError: not a domain file, or inconsistent (names the file and the fix).
        """
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                if str(z["format"]) != FORMAT:
                    raise ValueError(f"format {str(z['format'])!r}, expected {FORMAT!r}")
                blocks = {}
                for name in (str(n) for n in z["blocks"]):
                    b = Block(*(np.asarray(z[f"{name}.{k}"], np.float64)
                                for k in ("mean", "scale", "precision", "ref_d2")))
                    if b.scale.shape != b.mean.shape or b.precision.shape != (b.dim, b.dim) \
                            or b.ref_d2.shape != (N_QUANTILES,):
                        raise ValueError(f"block {name}: inconsistent shapes")
                    blocks[name] = b
                dm = cls(blocks, np.asarray(z["ref_combined"], np.float64), int(z["n_windows"]),
                         int(z["n_folds"]))
        except (OSError, KeyError, ValueError, EOFError) as err:
            raise ValueError(f"{path}: cannot load the domain description ({err}); re-run "
                             "`dvc repro calibrate`") from None
        if "features" not in dm.blocks or dm.ref_combined.shape != (N_QUANTILES,):
            raise ValueError(f"{path}: no features block; re-run `dvc repro calibrate`")
        return dm

    @property
    def embedding_dim(self) -> int | None:
        """D of the embedding block (None without one)."""
        b = self.blocks.get("embedding")
        return None if b is None else b.dim


def _cdf(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Empirical CDF from quantiles ``q`` [N_QUANTILES] at ``x``: 0 below ``q[0]``, 1 beyond ``q[-1]``."""
    return np.interp(np.asarray(x, np.float64), q, LEVELS, left=0.0, right=1.0)


def fit_block(x: np.ndarray) -> Block:
    """Standardise the columns of ``x`` float [W, F] and fit a Ledoit–Wolf precision (``ref_d2``
    left empty: zeros). Columns with (near) zero spread keep scale 1."""
    from sklearn.covariance import LedoitWolf

    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"need [W >= 3, F] rows to describe a distribution, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("rows contain NaN or inf")
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    scale = np.where(sd > 1e-9 * np.maximum(1.0, np.abs(mean)), sd, 1.0)
    z = (x - mean) / scale
    lw = LedoitWolf(assume_centered=True).fit(z)
    return Block(mean, scale, np.asarray(lw.precision_, np.float64), np.zeros(N_QUANTILES))


def fit_domain(emb: np.ndarray | None, feats: np.ndarray, folds: np.ndarray) -> DomainModel:
    """Describe the training windows (module docstring).

    Args:
        emb: float [W, D] backbone embeddings of the training windows, or None (features only).
        feats: float [W, 30] their hand-crafted features (any F).
        folds: int [W] each window's CV fold (performer folds; at least 2 distinct). The reference
            distances of fold k come from blocks fitted on the other folds.

    Returns:
        :class:`DomainModel` fitted on all W windows, with the cross-fitted reference.

    Raises:
        ValueError: shapes disagree, fewer than 2 folds, or a fold's complement has < 3 windows.
    """
    data = {"features": np.asarray(feats, np.float64)}
    if emb is not None:
        data = {"embedding": np.asarray(emb, np.float64), **data}
    folds = np.asarray(folds)
    n = len(folds)
    if any(v.shape[0] != n for v in data.values()):
        raise ValueError(f"emb, feats and folds must have the same rows: "
                         f"{ {k: v.shape for k, v in data.items()} }, folds {folds.shape}")
    ks = np.unique(folds)
    if len(ks) < 2:
        raise ValueError("fit_domain needs windows from at least 2 folds to cross-fit the reference")
    held = {name: np.empty(n) for name in data}
    for k in ks:
        m = folds == k
        for name, x in data.items():
            held[name][m] = fit_block(x[~m]).d2(x[m])
    blocks = {name: fit_block(x) for name, x in data.items()}
    for name, b in blocks.items():
        b.ref_d2 = np.quantile(held[name], LEVELS)
    comb = np.max([_cdf(held[name], blocks[name].ref_d2) for name in blocks], axis=0)  # (W,)
    return DomainModel(blocks, np.quantile(comb, LEVELS), n_windows=n, n_folds=len(ks))


def assess_windows(model: DomainModel, emb: np.ndarray | None, feats: np.ndarray) -> WindowCheck:
    """Percentile ``p`` and distance ratio ``ρ`` of each window (module docstring).

    Args:
        model: the training description.
        emb: float [W, D] embeddings by the same model, or None (the features block alone).
        feats: float [W, 30] hand-crafted features.

    Raises:
        ValueError: a block's width differs from the model's (e.g. a domain file of another model).
    """
    given = {"embedding": emb, "features": feats}
    names = [n for n in BLOCKS if n in model.blocks and given[n] is not None]
    n = np.asarray(feats).shape[0]
    d2 = np.full((n, len(BLOCKS)), np.nan)
    cdfs, ratios = [], []
    for name in names:
        b = model.blocks[name]
        d = b.d2(given[name])
        d2[:, BLOCKS.index(name)] = d
        cdfs.append(b.cdf(d))
        ratios.append(np.sqrt(np.maximum(d, 0.0) / max(b.q95, 1e-12)))
    if not names:
        raise ValueError("assess_windows needs the features block")
    # every block given: calibrate their maximum; one block alone: its own CDF is uniform already
    pct = _cdf(np.max(cdfs, axis=0), model.ref_combined) if len(names) == len(model.blocks) > 1 else cdfs[0]
    return WindowCheck(percentile=pct, ratio=np.max(ratios, axis=0), d2=d2)


def window_percentiles(model: DomainModel, emb: np.ndarray | None, feats: np.ndarray) -> np.ndarray:
    """float [W] in [0, 1]: each window's percentile ``p`` against the held-out training windows."""
    return assess_windows(model, emb, feats).percentile


def widening(ratio: float) -> float:
    """``clip(ratio, 1, MAX_WIDENING)``: the factor on the model error of a recording whose median
    window lies ``ratio`` times the reference's 95th-percentile distance out."""
    return float(np.clip(ratio, 1.0, MAX_WIDENING)) if np.isfinite(ratio) else MAX_WIDENING


def level_of(percentile: float) -> str:
    """:data:`FAR`, :data:`UNUSUAL` or :data:`IN_DOMAIN` for a median window percentile."""
    if percentile >= FAR_PERCENTILE:
        return FAR
    return UNUSUAL if percentile >= UNUSUAL_PERCENTILE else IN_DOMAIN


def recording_verdict(percentiles: np.ndarray, ratios: np.ndarray | None = None) -> Verdict:
    """Sum a recording's windows up (module docstring).

    Args:
        percentiles: float [W] window percentiles (the recording's valid windows), NaN ignored.
        ratios: float [W] window distance ratios ``ρ``; None: widening 1 unless far (then
            :data:`MAX_WIDENING`).

    Raises:
        ValueError: no finite percentile.
    """
    p = np.asarray(percentiles, np.float64)
    ok = np.isfinite(p)
    if not ok.any():
        raise ValueError("recording_verdict needs at least one window percentile")
    med = float(np.median(p[ok]))
    level = level_of(med)
    if ratios is None:
        rho = MAX_WIDENING if level == FAR else 1.0
    else:
        r = np.asarray(ratios, np.float64)[ok]
        rho = float(np.median(r)) if r.size else 1.0
    return Verdict(level=level, percentile=med, ratio=rho, widening=widening(rho),
                   far_share=float(np.mean(p[ok] >= FAR_PERCENTILE)), n_windows=int(ok.sum()))


# ------------------------------------------------------------------------------------------
# the calibrate stage's side: embed the cached windows, fit, and check held-out sets
# ------------------------------------------------------------------------------------------


def embed_windows(backbone, windows: np.ndarray, pad_fraction: np.ndarray, batch_size: int = 64
                  ) -> np.ndarray:
    """Eval-mode backbone embeddings float32 [W, D] of dB windows ``windows`` [W, 128, 128]
    (float16 memmaps fine) with their ``pad_fraction`` [W]; as the tutor's scorer computes them
    (pad mask only for a batch with padded frames)."""
    import torch

    from crescendai.learn.batches import pad_mask_from_fraction

    backbone.eval()
    out = []
    with torch.inference_mode():
        for lo in range(0, len(windows), batch_size):
            x = torch.as_tensor(np.asarray(windows[lo: lo + batch_size], np.float32))
            pf = np.asarray(pad_fraction[lo: lo + batch_size], np.float64)
            mask = torch.as_tensor(pad_mask_from_fraction(pf)) if (pf > 0).any() else None
            out.append((backbone(x) if mask is None else backbone(x, mask)).float().numpy())
    dim = int(getattr(backbone, "dim", 0))
    return np.concatenate(out) if out else np.zeros((0, dim), np.float32)


def _set_inputs(backbone, fs, rows: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings [R, D], features [R, 30]) of rows ``rows`` of feature set ``fs``."""
    from crescendai.evaluate.audio_features import window_features

    rows = np.sort(np.asarray(rows, np.int64))
    pad = fs.index["pad_fraction"].to_numpy(np.float64)[rows]
    emb, feats = [], []
    for lo in range(0, len(rows), 256):  # bounded memory: 256 windows read at a time
        x = fs.batch(rows[lo: lo + 256])
        emb.append(embed_windows(backbone, x, pad[lo: lo + 256], batch_size))
        feats.append(window_features(x, pad[lo: lo + 256]))
    if not emb:
        return np.zeros((0, int(getattr(backbone, "dim", 0))), np.float32), np.zeros((0, 30), np.float32)
    return np.concatenate(emb), np.concatenate(feats)


def check_summary(model: DomainModel, emb: np.ndarray, feats: np.ndarray) -> dict[str, float | int]:
    """``n_windows``, median window percentile and the shares at or beyond
    :data:`UNUSUAL_PERCENTILE` / :data:`FAR_PERCENTILE` of a set of windows (``n_windows`` alone
    for an empty set)."""
    if len(feats) == 0:
        return {"n_windows": 0}
    p = window_percentiles(model, emb, feats)
    return {"n_windows": int(len(p)), "median_percentile": round(float(np.median(p)), 4),
            "share_unusual": round(float(np.mean(p >= UNUSUAL_PERCENTILE)), 4),
            "share_far": round(float(np.mean(p >= FAR_PERCENTILE)), 4)}


def fit_from_feature_set(
    backbone,
    features: str | os.PathLike[str],
    check_sets: dict[str, str | os.PathLike[str]] | None = None,
    batch_size: int = 64,
) -> tuple[DomainModel, dict[str, object]]:
    """The calibrate stage's domain description: fit on the non-test labelled windows of the
    window cache ``features`` (folds from its index), then measure held-out sets.

    Args:
        backbone: the shipped model's backbone (eval mode is set here).
        features: a window cache folder (``data/features/labelled``).
        check_sets: name → another cache folder whose windows are only measured (e.g. the phone
            set, ``data/features/ood``); missing folders are skipped.
        batch_size: windows per backbone call.

    Returns:
        (model, metrics): ``n_windows``, ``n_folds``, per block ``ref_d2_q95`` / ``ref_d2_q99`` and
        ``dim``, and per measured set (``test``: the cache's test windows, plus ``check_sets``)
        :func:`check_summary`.

    Raises:
        FeatureError: the cache is missing. ValueError: fewer than 2 folds of labelled windows.
    """
    from crescendai.data.window_cache import load_feature_set

    fs = load_feature_set(features)
    ix = fs.index
    train = np.flatnonzero(ix["split"].ne("test").to_numpy() & ix["y_0"].notna().to_numpy()
                           & ix["fold"].notna().to_numpy())
    emb, feats = _set_inputs(backbone, fs, train, batch_size)
    dm = fit_domain(emb, feats, ix["fold"].to_numpy()[train].astype(int))
    metrics: dict[str, object] = {
        "n_windows": dm.n_windows, "n_folds": dm.n_folds,
        "blocks": {name: {"dim": b.dim, "ref_d2_q95": round(b.q95, 4),
                          "ref_d2_q99": round(float(np.interp(0.99, LEVELS, b.ref_d2)), 4)}
                   for name, b in dm.blocks.items()},
        "thresholds": {"unusual": UNUSUAL_PERCENTILE, "far": FAR_PERCENTILE},
    }
    checks: dict[str, object] = {}
    test = fs.test_rows()
    if len(test):
        checks["test"] = check_summary(dm, *_set_inputs(backbone, fs, test, batch_size))
    for name, path in (check_sets or {}).items():
        if Path(path, "windows.npy").is_file():
            other = load_feature_set(path)
            checks[name] = check_summary(dm, *_set_inputs(backbone, other, np.arange(len(other)), batch_size))
    metrics["checks"] = checks
    return dm, metrics
