"""PNG plots of a report: a 19-dimension timeline heatmap with bar numbers, overall scores, and a
saliency map (time × frequency of what drove the worst dimensions). Drawn from the report dict."""

from __future__ import annotations

import io
from typing import Any

import numpy as np


def _figure(figsize: tuple[float, float], height_ratios: list[float] | None = None):
    """(figure, axes) drawn by the Agg canvas directly: no pyplot (its import and global figure
    registry are not needed to write PNGs), so nothing is left open. With ``height_ratios``, one
    axes per ratio, stacked, sharing x."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    if height_ratios is None:
        return fig, fig.subplots()
    return fig, fig.subplots(len(height_ratios), 1, sharex=True, height_ratios=height_ratios)


def _heard_panel(ax, heard: dict[str, Any]) -> None:
    """What the model heard: pedal (grey area), attack velocity / 127 and note starts / 8 (lines)."""
    t = np.array(heard["start_sec"], float) + heard["row_sec"] / 2
    f = lambda k: np.array([np.nan if v is None else v for v in heard[k]], float)  # noqa: E731
    ax.fill_between(t, 0, np.nan_to_num(f("pedal")), color="0.8", step="mid", label="pedal down (P)")
    ax.plot(t, f("velocity") / 127, color="#d35400", lw=0.9, label="attack velocity / 127")
    ax.plot(t, f("onsets") / 8, color="#2471a3", lw=0.7, label="registers struck / 8")
    ax.set_ylim(0, 1)
    ax.set_yticks([0, 0.5, 1])
    ax.tick_params(labelsize=7)
    q = heard.get("quality") or {}
    acc = ", ".join(f"{k} {v:.2f}" for k, v in q.items())
    ax.set_title("What the model heard" + (f" (held-out: {acc})" if acc else ""), fontsize=8)
    ax.legend(fontsize=6, loc="upper right", ncol=3, framealpha=0.6)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _bar_ticks(ax, rep: dict[str, Any], max_ticks: int = 24) -> None:
    items = rep["bars"]["items"]
    if rep["bars"]["units"] != "bar" or not items:
        ax.set_xlabel("time (s)")
        return
    step = max(1, int(np.ceil(len(items) / max_ticks)))
    sel = items[::step]
    ax.set_xticks([it["start_sec"] for it in sel])
    ax.set_xticklabels([str(it["number"]) for it in sel], fontsize=7)
    ax.set_xlabel("bar" + (" (approximate)" if rep["bars"]["approximate"] else ""))
    # one collection for every bar line (an axvline per bar took 0.3 s for 250 bars)
    ax.vlines([it["start_sec"] for it in items], 0, 1, transform=ax.get_xaxis_transform(),
              colors="white", lw=0.3, alpha=0.5)


def timeline_png(rep: dict[str, Any]) -> bytes:
    """Heatmap [19 dims × time] of calibrated ratings, problem side in red; x ticks = bar numbers;
    above it, when the report has one, what the model heard (pedal, attack velocity, note starts)."""
    w = rep["windows"]
    scores = np.array(w["scores"], float)  # (N, 19)
    start = np.array(w["start_sec"], float)
    dims = rep["dimensions"]
    # orient every row so that "problem side" is high (red); neutral dims keep their scale
    sign = np.array([1 if d["problem_pole"] != "low" else -1 for d in dims], float)
    z = (scores - 4 / 7) * sign[None, :] * 7  # rating points from the middle, problem side > 0
    z[~np.array(w["valid"], bool)] = np.nan
    dur = rep["input"]["duration_sec"]
    centres = np.minimum(start + w["window_sec"] / 2, dur)
    edges = np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [dur]]) if len(centres) > 1 else np.array([0.0, dur])
    heard = rep.get("heard")
    if heard:
        fig, (top, ax) = _figure((11, 6.3), height_ratios=[1.1, 5])
        _heard_panel(top, heard)
    else:
        fig, ax = _figure((11, 5))
    m = ax.pcolormesh(edges, np.arange(20) - 0.5, z.T, cmap="RdBu_r", vmin=-2.5, vmax=2.5, shading="flat")
    ax.set_yticks(range(19))
    ax.set_yticklabels([f"{d['name']}{'' if d['problem_pole'] else ' *'}" for d in dims], fontsize=7)
    ax.invert_yaxis()
    _bar_ticks(ax, rep)
    for f in rep["feedback"]:
        ax.axvspan(f["start_sec"], f["end_sec"], ymin=0, ymax=0.02, color="k")
    cb = fig.colorbar(m, ax=[top, ax] if heard else ax, pad=0.01)  # both panels keep one x extent
    cb.set_label("rating points from the middle (red = problem side; * = no problem side)", fontsize=7)
    ax.set_title("Calibrated scores over time")
    return _png(fig)


def overall_png(rep: dict[str, Any]) -> bytes:
    """Horizontal bars of the whole-performance median rating (1–7) with the IQR."""
    dims = rep["dimensions"]
    ov = rep["overall"]
    med = np.array([ov[d["key"]]["median"] * 7 for d in dims])
    q25 = np.array([ov[d["key"]]["quantiles"]["q25"] * 7 for d in dims])
    q75 = np.array([ov[d["key"]]["quantiles"]["q75"] * 7 for d in dims])
    colours = []
    for d, m in zip(dims, med, strict=True):
        bad = (d["problem_pole"] == "high" and m > 4.5) or (d["problem_pole"] == "low" and m < 3.5)
        colours.append("#c0392b" if bad else "#2e86c1")
    fig, ax = _figure((7, 6))
    y = np.arange(19)
    ax.barh(y, med - 1, left=1, color=colours, alpha=0.8)
    ax.errorbar(med, y, xerr=[med - q25, q75 - med], fmt="none", ecolor="k", lw=0.8, capsize=2)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{d['name']}  ({d['low']} … {d['high']})" for d in dims], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(1, 7)
    ax.axvline(4, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("rating (1 = low pole, 7 = high pole); bar = median, whisker = IQR; red = needs work")
    ax.set_title("Whole performance")
    return _png(fig)


def saliency_png(rep: dict[str, Any]) -> bytes:
    """Mel-band saliency over time: which frequency regions drove each window's worst dimensions."""
    w = rep["windows"]
    sal = np.array([r if r is not None else [np.nan] * 16 for r in w["saliency_mel"]], float)  # (N, 16)
    start = np.array(w["start_sec"], float)
    dur = rep["input"]["duration_sec"]
    fig, ax = _figure((11, 2.6))
    x = np.append(start, min(dur, start[-1] + 1.0)) if len(start) else np.array([0.0, dur])
    if len(x) > 1 and np.all(np.diff(x) > 0):
        ax.pcolormesh(x, np.arange(17), sal.T, cmap="magma", shading="flat")
    ax.set_ylabel("mel band (low → high)")
    ax.set_yticks([0, 8, 16])
    ax.set_yticklabels(["0 Hz", "~1.4 kHz", "11 kHz"], fontsize=7)
    _bar_ticks(ax, rep)
    ax.set_title("Saliency (gradient × input) of the reported dimensions, in the reported passages")
    return _png(fig)
