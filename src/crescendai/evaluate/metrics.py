"""Metrics for the 19-D regression: per-dimension r / R² / MSE, within-passage ranking, bootstrap CIs.

Every metric function is pure: arrays in, numbers out. Shapes: ``y_true`` and ``y_pred`` are float
[N, D] (N segments, D = 19 dimensions, labels on PercePiano's [1/7, 1] scale); ``groups`` are
length-N arrays of hashable ids (performer or passage). Degenerate cases (constant column, fewer than
two rows) give ``nan`` for that dimension and are skipped by the ``nan``-aware summaries.

Confidence intervals are percentile bootstraps. Two resampling units are offered, because they answer
different questions: ``"segment"`` resamples rows (how stable is the figure over these segments?;
``scipy.stats.bootstrap``) and ``"performer"`` resamples whole performers with all their segments
(would it hold for other players? — the honest one when segments of a player are correlated). The
interval is the percentile interval of the resamples whose statistic is defined.
:func:`paired_bootstrap_gain` applies the *same* resample to two prediction sets of the same segments,
so the CI of the SSL-vs-scratch gain reflects the pairing.

Plot writers produce the small CSVs that ``dvc plots`` renders and matching matplotlib PNGs. The
stage drivers (:func:`evaluate_variant`, :func:`compare_variants`) read a ``predictions.csv``, return
the metrics and write the plot files.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crescendai.core import columns
from crescendai.core.dims import KEYS, N_DIMS
from crescendai.core.files import atomic_write
from crescendai.core.stats import (
    median_r,
    mse_per_dim,
    paired,
    pearson_per_dim,
    r2_per_dim,
)

# --------------------------------------------------------------------------------------------
# per-dimension metrics
# --------------------------------------------------------------------------------------------


def pairwise_accuracy_per_dim(
    y_true: np.ndarray, y_pred: np.ndarray, passages: Sequence[object], min_gap: float = 0.0
) -> np.ndarray:
    """Within-passage pairwise ranking accuracy per dimension → float [D] in [0, 1].

    For every pair of segments of the same passage (renditions of the same bars by different
    players, ``passage_id``) whose true labels differ by more than ``min_gap``, count whether the
    prediction orders them the same way (prediction ties count ½). Pairs across passages are never
    compared, so between-work and between-passage differences cannot inflate the figure. ``nan``
    where no pair qualifies.
    """
    yt, yp = paired(y_true, y_pred)
    passages = np.asarray(passages)
    correct = np.zeros(yt.shape[1])
    total = np.zeros(yt.shape[1])
    for p in np.unique(passages):
        idx = np.flatnonzero(passages == p)
        if len(idx) < 2:
            continue
        i, j = np.triu_indices(len(idx), k=1)
        dt = yt[idx[i]] - yt[idx[j]]  # [P, D]
        dp = yp[idx[i]] - yp[idx[j]]
        valid = np.abs(dt) > min_gap
        agree = np.where(dp == 0, 0.5, (np.sign(dt) == np.sign(dp)).astype(float))
        correct += (agree * valid).sum(0)
        total += valid.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / np.maximum(total, 1), np.nan)


# --------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------


def cluster_resamples(groups: Sequence[object], n_boot: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n_boot`` cluster-bootstrap resamples of row indices: whole groups (e.g. performers, one id
    per row) drawn with replacement, all rows of a drawn group kept."""
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in uniq]
    return [np.concatenate([members[k] for k in rng.integers(0, len(uniq), len(uniq))]) for _ in range(n_boot)]


def bootstrap_distribution(
    stat: Callable[[np.ndarray], float],
    n: int,
    n_boot: int,
    seed: int,
    groups: Sequence[object] | None = None,
) -> np.ndarray:
    """``stat(idx)`` over ``n_boot`` resamples ``idx`` of the row indices 0..n-1 → float [n_boot].

    With ``groups`` None, rows are drawn with replacement by ``scipy.stats.bootstrap``; with
    ``groups`` (length n), whole groups are drawn (:func:`cluster_resamples`).
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        from scipy.stats import DegenerateDataWarning, bootstrap

        if n < 2:  # scipy needs two rows; one row has no defined statistic anyway
            return np.full(n_boot, np.nan)
        with warnings.catch_warnings():  # scipy's own interval (unused) warns on nan resamples
            warnings.simplefilter("ignore", DegenerateDataWarning)
            res = bootstrap((np.arange(n),), stat, n_resamples=n_boot, vectorized=False,
                            method="percentile", rng=rng)
        return np.asarray(res.bootstrap_distribution, dtype=np.float64)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries, expected {n}")
    return np.array([stat(idx) for idx in cluster_resamples(groups, n_boot, rng)])


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval at level ``ci``."""

    value: float
    lo: float
    hi: float
    ci: float
    n_boot: int
    unit: str


def _percentile_interval(stats: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval of the finite bootstrap statistics (a degenerate resample gives ``nan``)."""
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    a = (1.0 - ci) / 2.0
    lo, hi = np.quantile(stats, [a, 1.0 - a])
    return float(lo), float(hi)


def bootstrap_median_r(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    groups: Sequence[object] | None = None,
    unit: str = "segment",
) -> Interval:
    """Median-over-dimensions Pearson r with a bootstrap CI (segments, or clusters via ``groups``)."""
    yt, yp = paired(y_true, y_pred)

    def stat(idx: np.ndarray) -> float:
        return median_r(yt[idx], yp[idx])

    lo, hi = _percentile_interval(bootstrap_distribution(stat, len(yt), n_boot, seed, groups), ci)
    return Interval(stat(np.arange(len(yt))), lo, hi, ci, n_boot, unit)


def paired_bootstrap_gain(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    groups: Sequence[object] | None = None,
    unit: str = "segment",
) -> tuple[Interval, float]:
    """Gain ``median_r(a) − median_r(b)`` on the same segments, with a paired bootstrap CI.

    Returns ``(interval, p_le_0)``: ``p_le_0`` is the fraction of resamples where the gain is ≤ 0
    (a one-sided bootstrap p-value for "a beats b").
    """
    yt, pa = paired(y_true, pred_a)
    _, pb = paired(y_true, pred_b)

    def gain(idx: np.ndarray) -> float:
        return median_r(yt[idx], pa[idx]) - median_r(yt[idx], pb[idx])

    stats = bootstrap_distribution(gain, len(yt), n_boot, seed, groups)
    lo, hi = _percentile_interval(stats, ci)
    finite = stats[np.isfinite(stats)]
    p = float((finite <= 0).mean()) if finite.size else float("nan")
    return Interval(gain(np.arange(len(yt))), lo, hi, ci, n_boot, unit), p


# --------------------------------------------------------------------------------------------
# tables and summaries
# --------------------------------------------------------------------------------------------


def per_dim_table(
    y_true: np.ndarray, y_pred: np.ndarray, passages: Sequence[object] | None = None
) -> list[dict[str, float | str | int]]:
    """One row per dimension: ``dim, key, r, r2, mse`` (+ ``pairwise_acc`` when passages given)."""
    r = pearson_per_dim(y_true, y_pred)
    r2 = r2_per_dim(y_true, y_pred)
    mse = mse_per_dim(y_true, y_pred)
    acc = pairwise_accuracy_per_dim(y_true, y_pred, passages) if passages is not None else None
    keys = KEYS if len(r) == N_DIMS else tuple(f"d{i}" for i in range(len(r)))
    rows: list[dict[str, float | str | int]] = []
    for d, key in enumerate(keys):
        row: dict[str, float | str | int] = {
            "dim": d, "key": key, "r": float(r[d]), "r2": float(r2[d]), "mse": float(mse[d])
        }
        if acc is not None:
            row["pairwise_acc"] = float(acc[d])
        rows.append(row)
    return rows


def best_worst(values: np.ndarray, k: int = 3, keys: Sequence[str] = KEYS) -> dict[str, list[str]]:
    """The ``k`` highest and lowest dimensions by ``values`` (``nan`` ignored), by key."""
    v = np.asarray(values, dtype=np.float64)
    order = [i for i in np.argsort(-np.nan_to_num(v, nan=-np.inf)) if np.isfinite(v[i])]
    return {"best": [keys[i] for i in order[:k]], "worst": [keys[i] for i in order[::-1][:k]]}


def _r(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def summarize(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    performers: Sequence[object],
    passages: Sequence[object],
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, object]:
    """All headline metrics for one prediction set of N segments (JSON-ready; nan → null).

    Keys: ``n_segments, n_performers, median_r, median_r_ci_segment, median_r_ci_performer,
    mean_r, mean_r2, mean_mse, mean_pairwise_acc, best_dims, worst_dims, per_dim`` (a dict key →
    {r, r2, mse, pairwise_acc}).
    """
    yt, yp = paired(y_true, y_pred)
    rows = per_dim_table(yt, yp, passages)
    r = np.array([row["r"] for row in rows], dtype=float)
    r2 = np.array([row["r2"] for row in rows], dtype=float)
    mse = np.array([row["mse"] for row in rows], dtype=float)
    acc = np.array([row["pairwise_acc"] for row in rows], dtype=float)
    seg = bootstrap_median_r(yt, yp, n_boot, ci, seed, None, "segment")
    perf = bootstrap_median_r(yt, yp, n_boot, ci, seed + 1, performers, "performer")
    bw = best_worst(r)
    return {
        "n_segments": int(len(yt)),
        "n_performers": int(len(np.unique(np.asarray(performers)))),
        "median_r": _r(seg.value),
        "median_r_ci_segment": [_r(seg.lo), _r(seg.hi)],
        "median_r_ci_performer": [_r(perf.lo), _r(perf.hi)],
        "mean_r": _r(np.nanmean(r)) if np.isfinite(r).any() else None,
        "mean_r2": _r(np.nanmean(r2)) if np.isfinite(r2).any() else None,
        "mean_mse": _r(float(np.mean(mse))),
        "mean_pairwise_acc": _r(np.nanmean(acc)) if np.isfinite(acc).any() else None,
        "best_dims": bw["best"],
        "worst_dims": bw["worst"],
        "per_dim": {
            str(row["key"]): {k: _r(float(row[k])) for k in ("r", "r2", "mse", "pairwise_acc")}
            for row in rows
        },
    }


# --------------------------------------------------------------------------------------------
# plot data
# --------------------------------------------------------------------------------------------


def write_csv(path: str | os.PathLike[str], rows: Sequence[dict[str, object]]) -> None:
    """Atomically write ``rows`` (dicts with the same keys) as CSV; floats rounded to 6 digits."""
    if not rows:
        raise ValueError(f"{path}: no rows to write")
    fields = list(rows[0].keys())
    with atomic_write(path) as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})


def scatter_rows(
    y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str], dims: Sequence[int] | None = None
) -> list[dict[str, object]]:
    """Long-format predicted-vs-true rows ``item, dim, key, true, pred`` for a scatter plot."""
    yt, yp = paired(y_true, y_pred)
    dims = range(yt.shape[1]) if dims is None else dims
    return [
        {"item": names[i], "dim": d, "key": KEYS[d], "true": float(yt[i, d]), "pred": float(yp[i, d])}
        for d in dims
        for i in range(len(yt))
    ]


def plot_per_dim_bars(path: str | os.PathLike[str], series: dict[str, Sequence[float]]) -> None:
    """PNG: grouped bars of per-dimension r, one series per model (e.g. ssl / scratch / ridge)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(next(iter(series.values())))
    x = np.arange(n)
    w = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(12, 4))
    for k, (name, vals) in enumerate(series.items()):
        ax.bar(x + k * w - 0.4 + w / 2, np.nan_to_num(np.asarray(vals, float)), w, label=name)
    ax.set_xticks(x, KEYS[:n], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("Pearson r")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend()
    fig.tight_layout()
    _save_fig(fig, path)


def plot_scatter(
    path: str | os.PathLike[str], y_true: np.ndarray, y_pred: np.ndarray, title: str = ""
) -> None:
    """PNG: a 4×5 grid of predicted-vs-true scatters, one per dimension."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yt, yp = paired(y_true, y_pred)
    r = pearson_per_dim(yt, yp)
    fig, axes = plt.subplots(4, 5, figsize=(14, 11))
    for d, ax in enumerate(axes.flat):
        if d >= yt.shape[1]:
            ax.axis("off")
            continue
        ax.scatter(yt[:, d], yp[:, d], s=6, alpha=0.6)
        lo = float(min(yt[:, d].min(), yp[:, d].min()))
        hi = float(max(yt[:, d].max(), yp[:, d].max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.5)
        ax.set_title(f"{KEYS[d]} r={r[d]:.2f}", fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle(title)
    fig.tight_layout()
    _save_fig(fig, path)


def _save_fig(fig: object, path: str | os.PathLike[str]) -> None:
    import matplotlib.pyplot as plt

    p = Path(path)
    with atomic_write(p, "wb") as f:
        fig.savefig(f, format="png", dpi=90)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# stage-level drivers (read the predictions table, compute, write plot files)
# --------------------------------------------------------------------------------------------


def read_predictions(path: str | os.PathLike[str]):
    """The ``predictions.csv`` a finetune stage writes (columns: ``level`` segment|window, ``set``
    oof|test, ``fold``, ``item``, ``window``, ``start_sec``, ``performer_id``, ``piece_id``, ``y_*``,
    ``passage_id``, ``pred_*``, ``local_*`` and, when the corpus has them, ``l_*``)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: missing; run the finetune stage (`dvc repro`) first")
    df = pd.read_csv(p, dtype={"item": str, "performer_id": str, "piece_id": str, "passage_id": str})
    required = ("level", "set", "item", "performer_id", "passage_id", *columns.LABELS, *columns.PREDICTIONS)
    missing = [c for c in required if c not in df]
    if missing:
        raise ValueError(f"{p}: missing columns {missing}; re-run the finetune stage")
    return df


def segment_rows(df, set_name: str):
    """Segment-level rows of one set (``oof`` or ``test``), sorted by item."""
    s = df[(df["level"] == "segment") & (df["set"] == set_name)]
    return s.sort_values("item").reset_index(drop=True)


def _labels(seg) -> np.ndarray:
    return seg[list(columns.LABELS)].to_numpy(float)


def _scores(seg) -> np.ndarray:
    return seg[list(columns.PREDICTIONS)].to_numpy(float)


def _summ(seg, y_pred: np.ndarray, n_boot: int, ci: float, seed: int) -> dict[str, object]:
    """:func:`summarize` of one prediction set on the segments ``seg``."""
    return summarize(_labels(seg), y_pred, seg["performer_id"].to_numpy(), seg["passage_id"].to_numpy(),
                     n_boot, ci, seed)


def _window_block(df) -> dict[str, object]:
    w = df[(df["level"] == "window") & (df["set"] == "oof")]
    out: dict[str, object] = {"n_windows": int(len(w))}
    if len(w):
        out["median_r_window_vs_segment_label"] = _r(median_r(_labels(w), _scores(w)))
        if set(columns.LOCAL_LABELS) <= set(w.columns):
            lab = w[list(columns.LOCAL_LABELS)].to_numpy(float)
            ok = np.isfinite(lab).all(1)
            if ok.sum() > 2:
                local = w[list(columns.LOCAL_PREDICTIONS)].to_numpy(float)
                out["median_r_local_head_vs_local_label"] = _r(median_r(lab[ok], local[ok]))
                out["median_r_scores_vs_local_label"] = _r(median_r(lab[ok], _scores(w)[ok]))
    return out


def evaluate_variant(
    predictions_path: str | os.PathLike[str],
    features_dir: str | os.PathLike[str] | None,
    variant: str,
    plots_dir: str | os.PathLike[str] = "plots",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    ridge: bool = True,
) -> dict[str, object]:
    """Metrics of one variant: ``cv`` (out-of-fold segments), ``test``, ``windows`` and, with
    ``ridge``, the ridge peers on the same segments and folds (``<peer>_cv`` / ``<peer>_test`` for
    each peer of :data:`crescendai.evaluate.ridge.PEERS` that the data allows).
    Writes ``<plots_dir>/eval_<variant>_per_dim.csv``, ``_scatter.csv`` and ``_scatter.png``."""
    from crescendai.evaluate.ridge import PEERS, ridge_baselines

    df = read_predictions(predictions_path)
    oof, test = segment_rows(df, "oof"), segment_rows(df, "test")
    has_test = len(test) >= 3
    out: dict[str, object] = {"variant": variant, "cv": _summ(oof, _scores(oof), n_boot, ci, seed)}
    if has_test:
        out["test"] = _summ(test, _scores(test), n_boot, ci, seed)
    out["windows"] = _window_block(df)
    peers = ridge_baselines(features_dir, list(oof["item"]), list(test["item"])) \
        if ridge and features_dir is not None else {}
    for name, (p_oof, p_test) in peers.items():
        out[f"{name}_cv"] = _summ(oof, p_oof, n_boot, ci, seed)
        if has_test:
            out[f"{name}_test"] = _summ(test, p_test, n_boot, ci, seed)
    yt, yp = _labels(oof), _scores(oof)
    rows = per_dim_table(yt, yp, oof["passage_id"].to_numpy())
    r = {"test": pearson_per_dim(_labels(test), _scores(test)) if has_test else None,
         **{name: pearson_per_dim(yt, p_oof) for name, (p_oof, _) in peers.items()}}
    for d, row in enumerate(rows):
        for name in ("test", *PEERS):
            row[f"r_{name}"] = float(r[name][d]) if r.get(name) is not None else float("nan")
    plots = Path(plots_dir)
    write_csv(plots / f"eval_{variant}_per_dim.csv", rows)
    write_csv(plots / f"eval_{variant}_scatter.csv", scatter_rows(yt, yp, list(oof["item"])))
    plot_scatter(plots / f"eval_{variant}_scatter.png", yt, yp, f"{variant}: out-of-fold segments")
    return out


def best_variant(predictions: dict[str, str | os.PathLike[str]]) -> tuple[str, dict[str, float]]:
    """The variant whose out-of-fold (validation) segment predictions have the highest median r.

    Args:
        predictions: variant name → its ``predictions.csv``.

    Returns:
        (name, {name: CV median r}); ties go to the first name given. The test set is never looked at.
    """
    scores: dict[str, float] = {}
    for name, path in predictions.items():
        oof = segment_rows(read_predictions(path), "oof")
        r = median_r(_labels(oof), _scores(oof))
        scores[name] = float(r) if np.isfinite(r) else -np.inf
    best = max(scores, key=lambda k: scores[k])
    return best, scores


def _gain_block(sa, sb, n_boot: int, ci: float, seed: int, bar: float
                ) -> tuple[dict[str, object], tuple[np.ndarray, np.ndarray]]:
    """SSL (``sa``) vs scratch (``sb``) on the same segments (rows aligned) → (metrics block,
    (per-dimension r of ssl, of scratch))."""
    yt, pa, pb = _labels(sa), _scores(sa), _scores(sb)
    seg, p_seg = paired_bootstrap_gain(yt, pa, pb, n_boot, ci, seed, None, "segment")
    perf, p_perf = paired_bootstrap_gain(yt, pa, pb, n_boot, ci, seed + 1,
                                         sa["performer_id"].to_numpy(), "performer")
    ra, rb = pearson_per_dim(yt, pa), pearson_per_dim(yt, pb)
    return {
        "n_segments": int(len(yt)),
        "median_r_ssl": _r(median_r(yt, pa)), "median_r_scratch": _r(median_r(yt, pb)),
        "gain": _r(seg.value), "ci_segment": [_r(seg.lo), _r(seg.hi)],
        "ci_performer": [_r(perf.lo), _r(perf.hi)],
        "p_gain_le_0_segment": _r(p_seg), "p_gain_le_0_performer": _r(p_perf),
        "meets_bar": bool(np.isfinite(seg.value) and seg.value >= bar),
        "dims_improved": int(np.nansum(ra > rb)),
        "delta_r": {k: _r(ra[d] - rb[d]) for d, k in enumerate(KEYS)},
    }, (ra, rb)


def compare_variants(
    ssl_predictions: str | os.PathLike[str],
    scratch_predictions: str | os.PathLike[str],
    eval_paths: dict[str, str | os.PathLike[str]] | None = None,
    plots_dir: str | os.PathLike[str] = "plots",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    bar: float = 0.05,
) -> dict[str, object]:
    """SSL vs scratch on the same segments: median-r gain with paired bootstrap CIs (segments and
    performers), one-sided p, per-dimension r deltas; also each variant vs the ridge peers
    (:data:`crescendai.evaluate.ridge.PEERS`, those present) when the eval metrics (``eval_paths``: variant → its metrics file) hold
    them, and every other variant in ``eval_paths`` (e.g. ``fusion``) beside them: its CV median r and
    its margin over each peer. Writes ``<plots_dir>/per_dim_r.csv`` and ``per_dim_r.png``."""
    from crescendai.core.files import read_json
    from crescendai.evaluate.ridge import PEERS

    a, b = read_predictions(ssl_predictions), read_predictions(scratch_predictions)
    out: dict[str, object] = {"bar": bar}
    for set_name, key in (("oof", "cv"), ("test", "test")):
        sa, sb = segment_rows(a, set_name), segment_rows(b, set_name)
        shared = sa[["item"]].merge(sb[["item"]], on="item")["item"]
        if len(shared) >= 3:
            sa, sb = sa.set_index("item").loc[shared], sb.set_index("item").loc[shared]
            out[key], per_dim_r = _gain_block(sa, sb, n_boot, ci, seed, bar)
            if key == "cv":
                r_ssl, r_scratch = per_dim_r
    if "cv" not in out:
        raise ValueError(f"{ssl_predictions} and {scratch_predictions} share fewer than 3 out-of-fold segments")
    def per_dim_r(block: dict) -> np.ndarray:
        return np.array([np.nan if block["per_dim"][k]["r"] is None else block["per_dim"][k]["r"] for k in KEYS])

    peers = {peer: np.full(N_DIMS, np.nan) for peer in PEERS}
    ev = {k: read_json(p) for k, p in (eval_paths or {}).items() if Path(p).is_file()}
    others = {v: per_dim_r(m["cv"]) for v, m in ev.items() if v not in ("ssl", "scratch")}
    for v, m in ev.items():
        if v in others:
            out[f"median_r_{v}_cv"] = m["cv"]["median_r"]
    for peer in peers:
        rc = ev.get("ssl", {}).get(f"{peer}_cv")
        if rc is None:
            continue
        peers[peer] = per_dim_r(rc)
        out[f"median_r_{peer}_cv"] = rc["median_r"]
        for v, m in ev.items():
            if m["cv"]["median_r"] is not None and rc["median_r"] is not None:
                out[f"{v}_minus_{peer}_cv"] = _r(m["cv"]["median_r"] - rc["median_r"])
    rows = [{"dim": d, "key": k, "ssl": float(r_ssl[d]), "scratch": float(r_scratch[d]),
             **{v: float(r[d]) for v, r in others.items()},
             **{peer: float(r[d]) for peer, r in peers.items()}} for d, k in enumerate(KEYS)]
    write_csv(Path(plots_dir) / "per_dim_r.csv", rows)
    bars = {"ssl": r_ssl, "scratch": r_scratch, **others,
            **{label: peers[peer] for peer, label in PEERS.items() if np.isfinite(peers[peer]).any()}}
    plot_per_dim_bars(Path(plots_dir) / "per_dim_r.png", bars)
    return out
