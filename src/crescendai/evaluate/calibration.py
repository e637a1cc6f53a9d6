"""Isotonic calibration of the 19 scores, one monotone map per dimension, stored as JSON.

Fit on *validation* predictions (out-of-fold segment predictions), never on the set that reports the
effect. A fitted :class:`Calibrator` is a list of piecewise-linear monotone maps given by their knots
(``x`` thresholds → ``y`` values, exactly scikit-learn's ``IsotonicRegression.X_thresholds_`` /
``y_thresholds_``), so the JSON file is human-readable, loads without pickle and reproduces
``IsotonicRegression.predict`` (linear interpolation between knots, clipped outside them).

Usage by the tutor::

    cal = Calibrator.load("models/tutor/calibration.json")
    calibrated = cal.transform(scores)          # scores float [N, 19] → float [N, 19] in [1/7, 1]

Metrics: :func:`expected_calibration_error` bins the predictions of one dimension and averages
``|mean(pred) − mean(true)|`` over bins weighted by their counts (the regression analogue of ECE, in
label units); :func:`reliability_rows` gives the per-bin points of a calibration curve.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crescendai.core import columns
from crescendai.core.dims import KEYS, LABEL_MAX, LABEL_MIN, N_DIMS
from crescendai.core.files import read_json, write_json

FORMAT = "crescendai.isotonic.v1"
log = logging.getLogger(__name__)


@dataclass
class Calibrator:
    """Per-dimension monotone maps. ``knots[d] = (x, y)`` (increasing x, non-decreasing y), or
    ``None`` for identity (a dimension that had too few distinct validation values to fit).

    ``error`` float [D] (or None): how far a calibrated score is from the label on performers the
    model never saw — the root-mean-square error of cross-fitted calibrated out-of-fold predictions
    (:func:`cross_fitted_error`), label scale. ``r`` float [D] (or None): Pearson r of those
    out-of-fold predictions. The tutor reports both, so a score comes with the model's real error.
    """

    knots: list[tuple[np.ndarray, np.ndarray] | None] = field(default_factory=list)
    n_fit: int = 0
    error: np.ndarray | None = None
    r: np.ndarray | None = None

    @classmethod
    def fit(
        cls, y_pred: np.ndarray, y_true: np.ndarray, y_min: float = LABEL_MIN, y_max: float = LABEL_MAX
    ) -> Calibrator:
        """Fit one increasing ``IsotonicRegression`` per column of ``y_pred`` [N, D] → ``y_true`` [N, D].

        Output is bounded to ``[y_min, y_max]`` (the label range). A column with fewer than 2 distinct
        predictions or labels keeps the identity map.
        """
        from sklearn.isotonic import IsotonicRegression

        yp = np.asarray(y_pred, dtype=np.float64)
        yt = np.asarray(y_true, dtype=np.float64)
        if yp.shape != yt.shape or yp.ndim != 2:
            raise ValueError(f"y_pred {yp.shape} and y_true {yt.shape} must both be [N, D]")
        knots: list[tuple[np.ndarray, np.ndarray] | None] = []
        for d in range(yp.shape[1]):
            ok = np.isfinite(yp[:, d]) & np.isfinite(yt[:, d])
            x, y = yp[ok, d], yt[ok, d]
            if len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
                knots.append(None)
                continue
            iso = IsotonicRegression(y_min=y_min, y_max=y_max, increasing=True, out_of_bounds="clip")
            iso.fit(x, y)
            knots.append((np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float)))
        return cls(knots=knots, n_fit=int(len(yp)))

    @property
    def n_dims(self) -> int:
        return len(self.knots)

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Map raw scores float [N, D] (or [D]) through the per-dimension maps; same shape out."""
        s = np.asarray(scores, dtype=np.float64)
        one = s.ndim == 1
        s2 = s[None] if one else s
        if s2.ndim != 2 or s2.shape[1] != self.n_dims:
            raise ValueError(f"scores must be [N, {self.n_dims}], got {s.shape}")
        out = s2.copy()
        for d, k in enumerate(self.knots):
            if k is not None:
                out[:, d] = np.interp(s2[:, d], k[0], k[1])
        return out[0] if one else out

    def to_dict(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "n_fit": self.n_fit,
            "dims": [
                {"key": KEYS[d] if self.n_dims == N_DIMS else f"d{d}",
                 "x": None if k is None else [float(v) for v in k[0]],
                 "y": None if k is None else [float(v) for v in k[1]],
                 **({} if self.error is None else {"error": _finite(self.error, d)}),
                 **({} if self.r is None else {"r": _finite(self.r, d)})}
                for d, k in enumerate(self.knots)
            ],
        }

    @classmethod
    def from_dict(cls, obj: dict[str, object]) -> Calibrator:
        if obj.get("format") != FORMAT:
            raise ValueError(f"not a calibration file (format {obj.get('format')!r}, expected {FORMAT!r})")
        knots: list[tuple[np.ndarray, np.ndarray] | None] = []
        for dim in obj["dims"]:  # type: ignore[attr-defined]
            if dim["x"] is None:
                knots.append(None)
            else:
                knots.append((np.asarray(dim["x"], float), np.asarray(dim["y"], float)))
        dims = obj["dims"]  # type: ignore[index]

        def per_dim(key: str) -> np.ndarray | None:  # None when a dimension lacks the key
            if any(key not in dim for dim in dims):  # type: ignore[union-attr]
                return None
            return np.asarray([np.nan if dim[key] is None else dim[key] for dim in dims], float)  # type: ignore[index]

        return cls(knots=knots, n_fit=int(obj.get("n_fit", 0)),  # type: ignore[arg-type]
                   error=per_dim("error"), r=per_dim("r"))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomically write the JSON form."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibrator:
        """Read a file written by :meth:`save`; raise ``ValueError`` naming the file if it is not one."""
        try:
            return cls.from_dict(read_json(path))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: cannot load calibration ({err}); re-run `dvc repro calibrate`") from None

    @classmethod
    def identity(cls, n_dims: int = N_DIMS) -> Calibrator:
        return cls(knots=[None] * n_dims)


def _finite(v: np.ndarray, d: int) -> float | None:
    """``v[d]`` rounded for JSON; None (NaN when read back) when it is not finite."""
    return round(float(v[d]), 6) if np.isfinite(v[d]) else None


def _bin_edges(lo: float, hi: float, n_bins: int) -> np.ndarray:
    return np.linspace(lo, hi, n_bins + 1)


def expected_calibration_error(
    y_pred: np.ndarray, y_true: np.ndarray, n_bins: int = 10,
    lo: float = LABEL_MIN, hi: float = LABEL_MAX,
) -> np.ndarray:
    """Per-dimension ECE → float [D]: Σ_b (n_b/N)·|mean pred_b − mean true_b| over ``n_bins``
    equal-width bins of the prediction on ``[lo, hi]`` (predictions outside are put in the end bins)."""
    yp = np.asarray(y_pred, dtype=np.float64)
    yt = np.asarray(y_true, dtype=np.float64)
    edges = _bin_edges(lo, hi, n_bins)
    out = np.zeros(yp.shape[1])
    for d in range(yp.shape[1]):
        b = np.clip(np.digitize(yp[:, d], edges[1:-1]), 0, n_bins - 1)
        err = 0.0
        for k in np.unique(b):
            m = b == k
            err += m.mean() * abs(yp[m, d].mean() - yt[m, d].mean())
        out[d] = err
    return out


def reliability_rows(
    y_pred: np.ndarray, y_true: np.ndarray, n_bins: int = 10, stage: str = "raw",
    lo: float = LABEL_MIN, hi: float = LABEL_MAX,
) -> list[dict[str, object]]:
    """Calibration-curve points ``stage, dim, key, bin, n, mean_pred, mean_true`` (non-empty bins)."""
    yp = np.asarray(y_pred, dtype=np.float64)
    yt = np.asarray(y_true, dtype=np.float64)
    edges = _bin_edges(lo, hi, n_bins)
    rows: list[dict[str, object]] = []
    for d in range(yp.shape[1]):
        b = np.clip(np.digitize(yp[:, d], edges[1:-1]), 0, n_bins - 1)
        for k in np.unique(b):
            m = b == k
            rows.append({
                "stage": stage, "dim": d, "key": KEYS[d] if yp.shape[1] == N_DIMS else f"d{d}",
                "bin": int(k), "n": int(m.sum()),
                "mean_pred": float(yp[m, d].mean()), "mean_true": float(yt[m, d].mean()),
            })
    return rows


def cross_fitted_error(y_pred: np.ndarray, y_true: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Per-dimension RMS error float [D] of calibrated predictions, each fold calibrated by maps
    fitted on the other folds (so the calibration never sees the rows it is scored on).

    ``y_pred``, ``y_true`` [N, D] out-of-fold predictions and labels; ``folds`` [N] their CV fold
    (at least 2 distinct). Rows with a missing value are skipped per dimension.
    """
    yp = np.asarray(y_pred, dtype=np.float64)
    yt = np.asarray(y_true, dtype=np.float64)
    folds = np.asarray(folds)
    if len(np.unique(folds)) < 2:
        raise ValueError("cross_fitted_error needs out-of-fold predictions from at least 2 folds")
    yc = np.full_like(yp, np.nan)
    for k in np.unique(folds):
        m = folds == k
        yc[m] = Calibrator.fit(yp[~m], yt[~m]).transform(yp[m])
    sq = (yc - yt) ** 2
    return np.sqrt(np.nanmean(sq, axis=0))


def calibration_report(
    cal: Calibrator, y_pred: np.ndarray, y_true: np.ndarray, n_bins: int = 10
) -> dict[str, object]:
    """Before/after metrics on one set: mean MSE and mean ECE over dimensions, plus per-dim values."""
    yp = np.asarray(y_pred, dtype=np.float64)
    yt = np.asarray(y_true, dtype=np.float64)
    yc = cal.transform(yp)
    mse_b = ((yp - yt) ** 2).mean(0)
    mse_a = ((yc - yt) ** 2).mean(0)
    ece_b = expected_calibration_error(yp, yt, n_bins)
    ece_a = expected_calibration_error(yc, yt, n_bins)
    keys = KEYS if yp.shape[1] == N_DIMS else tuple(f"d{i}" for i in range(yp.shape[1]))
    return {
        "n": int(len(yp)),
        "mse_before": round(float(mse_b.mean()), 6),
        "mse_after": round(float(mse_a.mean()), 6),
        "ece_before": round(float(ece_b.mean()), 6),
        "ece_after": round(float(ece_a.mean()), 6),
        "per_dim": {
            k: {"mse_before": round(float(mse_b[d]), 6), "mse_after": round(float(mse_a[d]), 6),
                "ece_before": round(float(ece_b[d]), 6), "ece_after": round(float(ece_a[d]), 6)}
            for d, k in enumerate(keys)
        },
    }


def fit_from_predictions(
    predictions_path: str | os.PathLike[str], n_bins: int = 10
) -> tuple[Calibrator, dict[str, object], list[dict[str, object]]]:
    """Fit on the out-of-fold (validation) segment predictions of a finetune ``predictions.csv``;
    report before/after on the test segments (held out from the fit) and, in-sample, on the fit set.

    Isotonic maps are monotone, so fitting on median-pooled segment scores and applying the map to
    window scores before median pooling (as the tutor does) gives the same segment score (exactly for
    an odd window count, up to interpolation between the two middle windows otherwise).

    The calibrator also stores each dimension's :func:`cross_fitted_error` (by CV fold) and
    out-of-fold Pearson r, so the tutor can state the model's real error.

    Returns:
        (calibrator, metrics {"fit": report, "test": report, "cross_fitted_rmse": mean over dims},
        reliability rows for the test set — or the fit set when there is no test set — before and
        after).
    """
    from crescendai.core.stats import pearson_per_dim
    from crescendai.evaluate.metrics import read_predictions, segment_rows

    df = read_predictions(predictions_path)
    oof, test = segment_rows(df, "oof"), segment_rows(df, "test")
    if len(oof) < 2:
        raise ValueError(f"{predictions_path}: fewer than 2 out-of-fold segments to fit calibration on")
    yp_oof, yt_oof = oof[list(columns.PREDICTIONS)].to_numpy(float), oof[list(columns.LABELS)].to_numpy(float)
    cal = Calibrator.fit(yp_oof, yt_oof)
    cal.error = cross_fitted_error(yp_oof, yt_oof, oof["fold"].to_numpy())
    cal.r = pearson_per_dim(yt_oof, yp_oof)
    metrics: dict[str, object] = {"fit_set": "oof", "n_bins": n_bins,
                                  "fit": calibration_report(cal, yp_oof, yt_oof, n_bins),
                                  "cross_fitted_rmse": round(float(np.nanmean(cal.error)), 6)}
    ev = test if len(test) >= 2 else oof
    yp, yt = ev[list(columns.PREDICTIONS)].to_numpy(float), ev[list(columns.LABELS)].to_numpy(float)
    metrics["test"] = calibration_report(cal, yp, yt, n_bins)
    metrics["test"]["set"] = "test" if ev is test else "oof (no test set)"
    rows = reliability_rows(yp, yt, n_bins, "raw") + reliability_rows(cal.transform(yp), yt, n_bins, "calibrated")
    metrics["fit"].pop("per_dim", None)  # type: ignore[union-attr]  # per-dim details: test set only
    return cal, metrics, rows


def plot_reliability(path: str | os.PathLike[str], rows: list[dict[str, object]]) -> None:
    """PNG: calibration curves (mean true vs mean predicted per bin), one panel per dimension."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crescendai.evaluate.metrics import _save_fig

    fig, axes = plt.subplots(4, 5, figsize=(14, 11))
    for d, ax in enumerate(axes.flat):
        if d >= N_DIMS:
            ax.axis("off")
            continue
        for stage, style in (("raw", "o-"), ("calibrated", "s-")):
            pts = [r for r in rows if r["dim"] == d and r["stage"] == stage]
            ax.plot([r["mean_pred"] for r in pts], [r["mean_true"] for r in pts], style, ms=3, label=stage)
        ax.plot([LABEL_MIN, LABEL_MAX], [LABEL_MIN, LABEL_MAX], "k--", lw=0.5)
        ax.set_title(KEYS[d], fontsize=8)
        ax.tick_params(labelsize=6)
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    _save_fig(fig, path)


def training_corpora(features: str | os.PathLike[str]) -> list[str]:
    """The corpora (manifest ``source`` names, sorted) of the labelled non-test windows of a window
    cache: what the tutor's model learned its 19 scores from."""
    from crescendai.data.window_cache import load_feature_set

    ix = load_feature_set(features).index
    keep = ix["split"].ne("test") & ix["y_0"].notna()
    return sorted(ix.loc[keep, "source"].astype(str).unique())


LINEAR_HEAD_FILE = "linear_head.npz"
"""A non-fused variant's linear head in the bundle (the :data:`~crescendai.evaluate.fusion.HEAD_FILE` format)."""


def remove_runtime(out: Path) -> None:
    """Remove the ONNX runtime's files from the bundle folder ``out`` (a bundle without them is
    scored with torch); returns None, the ``config.json`` entry of no runtime."""
    from crescendai.model.export import SALIENCY_FILE, SCORING_FILE

    for name in (SCORING_FILE, SALIENCY_FILE, LINEAR_HEAD_FILE):
        (out / name).unlink(missing_ok=True)


def export_runtime(model, config: dict, src: Path, out: Path) -> dict[str, object] | None:
    """The bundle's torch-free runtime: ``model``'s backbone (with the variant's row head, ``src``'s
    ``config["teacher_head"]``) as ONNX graphs (:func:`crescendai.model.export.export_graphs`) in
    ``out``, and its linear head: the fused head (``config["fusion_head"]``, already in ``out``) or
    the regression head written as ``linear_head.npz`` (a fused head with no window features).

    Returns the ``config.json`` entry ``onnx`` (the graphs' entry + ``head``, the head's entry,
    ``dropout``, the MC-dropout probability, and ``n_params``), or None, with the runtime's files
    removed, when the head is not linear or the export failed (logged: the tutor then loads torch).
    """
    from crescendai.evaluate.fusion import FusedHead, save_fused_head
    from crescendai.model import load_teacher_head
    from crescendai.model.export import ExportError, export_graphs, linear_head

    head = config.get("fusion_head")
    linear = None if head else linear_head(model)
    if not head and linear is None:
        log.warning("the %s head is not linear: the tutor will run the model with torch", src)
        return remove_runtime(out)
    teacher = config.get("teacher_head")
    start = time.perf_counter()
    try:
        graphs = export_graphs(model.backbone, out, load_teacher_head(src, teacher) if teacher else None)
    except ExportError as err:
        log.warning("%s: the tutor will run the model with torch", err)
        return remove_runtime(out)
    log.info("ONNX runtime exported and checked in %.1f s", time.perf_counter() - start)
    if head:
        (out / LINEAR_HEAD_FILE).unlink(missing_ok=True)
    else:
        head = save_fused_head(FusedHead(*linear, int(model.backbone.dim), features=()), out, LINEAR_HEAD_FILE)
    return {**graphs, "head": head, "dropout": float(model.heads_cfg.dropout or 0.1),  # as the torch tutor's fallback
            "n_params": int(sum(p.numel() for p in model.parameters()))}


def calibrate_tutor(
    models_dir: str | os.PathLike[str] = "models",
    tutor_dir: str | os.PathLike[str] = "models/tutor",
    plots_dir: str | os.PathLike[str] = "plots",
    variant: str = "auto",
    n_bins: int = 10,
    features: str | os.PathLike[str] | None = "data/features/labelled",
    check_sets: dict[str, str | os.PathLike[str]] | None = None,
    onnx: bool = True,
) -> dict[str, object]:
    """The calibrate stage: pick the tutor's variant, calibrate it, assemble the tutor bundle.

    ``variant`` ``auto`` takes, of the variants of :data:`~crescendai.core.config.VARIANTS` present
    (``<models_dir>/finetune_<variant>/predictions.csv``,
    :func:`~crescendai.evaluate.variants.variant_dir`), the one with the highest CV median r (:func:`best_variant`; the test set is never looked at). Fits by
    :func:`fit_from_predictions`, then writes ``<tutor_dir>/``: ``model.pt`` and, where the variant
    has them, its row head ``teacher_head.pt`` and its fused head ``fusion_head.npz``, copied from the
    variant; its ``config.json`` plus ``calibration, source, variant`` (and, with ``features``,
    ``domain`` and ``trained_on``: :func:`training_corpora`); ``calibration.json``, ``domain.npz``;
    and ``<plots_dir>/calibration.csv`` / ``.png``; with ``onnx``, the torch-free runtime of
    :func:`export_runtime` (``config.json``'s ``onnx``: None when the head is not linear, or without
    ``onnx``, whose stale files are removed).

    ``domain.npz`` describes the training windows for the tutor's domain check
    (:func:`crescendai.evaluate.domain.fit_from_feature_set`): the non-test labelled windows of the
    window cache ``features``, embedded by the variant's backbone. ``features`` None writes none
    (and removes a stale one): the tutor then says the check is not available. ``check_sets``
    (name → cache folder, e.g. the phone set) are only measured against it.

    Returns:
        The metrics: ``variant``, ``cv_median_r`` (per variant, with ``auto``), then those of
        :func:`fit_from_predictions`, then ``domain`` (with ``features``): the description's size and
        reference distances and, per held-out set, its median window percentile and the shares
        flagged unusual / far.
    """
    from crescendai.core.config import VARIANTS
    from crescendai.core.files import copy_atomic
    from crescendai.evaluate.fusion import HEAD_FILE as FUSED_HEAD_FILE
    from crescendai.evaluate.metrics import best_variant, write_csv
    from crescendai.evaluate.variants import variant_dir
    from crescendai.model import TEACHER_HEAD_FILE, load_model

    cv: dict[str, float] = {}
    if variant == "auto":
        present = {v: variant_dir(models_dir, v) / "predictions.csv" for v in VARIANTS}
        present = {v: f for v, f in present.items() if f.is_file()}
        if not present:
            raise FileNotFoundError(f"{models_dir}: no finetune_<variant>/predictions.csv for any of "
                                    f"{', '.join(VARIANTS)}; run `uv run dvc repro` first")
        variant, cv = best_variant(present)
    src = variant_dir(models_dir, variant)
    cal, fitted, rows = fit_from_predictions(src / "predictions.csv", n_bins)
    metrics = {"variant": variant, **({"cv_median_r": {k: round(x, 6) for k, x in cv.items()}} if cv else {}),
               **fitted}

    out = Path(tutor_dir)
    config = read_json(src / "config.json")
    config.update({"calibration": "calibration.json", "source": str(src), "variant": variant})
    copy_atomic(src / "model.pt", out / "model.pt")
    for key, default in (("teacher_head", TEACHER_HEAD_FILE), ("fusion_head", FUSED_HEAD_FILE)):
        if config.get(key):  # the variant's extra head ships beside the model
            copy_atomic(src / config[key]["weights"], out / config[key]["weights"])
        else:
            (out / default).unlink(missing_ok=True)
    model = load_model(src) if onnx or features is not None else None
    config["onnx"] = export_runtime(model, config, src, out) if onnx else remove_runtime(out)
    metrics["tutor_runtime"] = "onnxruntime" if config["onnx"] else "torch"
    if features is not None:
        from crescendai.evaluate.domain import fit_from_feature_set

        domain, metrics["domain"] = fit_from_feature_set(model.backbone, features, check_sets)
        domain.save(out / "domain.npz")
        config["domain"] = "domain.npz"
        config["trained_on"] = training_corpora(features)
    else:
        (out / "domain.npz").unlink(missing_ok=True)
    write_json(out / "config.json", config)
    cal.save(out / "calibration.json")
    write_csv(Path(plots_dir) / "calibration.csv", rows)
    plot_reliability(Path(plots_dir) / "calibration.png", rows)
    return metrics
