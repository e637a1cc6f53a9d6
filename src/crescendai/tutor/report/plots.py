"""PNG plots of a report: a 19-dimension timeline heatmap with bar numbers, overall scores, and a
saliency map (time × frequency of what drove the worst dimensions). Drawn from the report dict.

Layout is fixed, not searched: each figure has a set size in inches and its axes are placed from
the measured extents of the few texts around them (the widest tick label, the title, the axis
labels), measured once by the figure's own Agg renderer, whose text metrics matplotlib caches for
the one draw that writes the PNG. So a plot is drawn once (``bbox_inches="tight"`` drew it twice:
once to measure every artist, once to write), and titles sit at the top of their axes without the
per-draw overlap search.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import numpy as np

_DPI = 110
_PAD = 0.1  # blank border around the content, inches (as savefig's tight padding)
_TICK = (3.5 + 3.5) / 72  # rc defaults: major tick length + tick-label pad, inches
_LABELPAD = 4.0 / 72  # rc default axes.labelpad, inches
_TITLEPAD = 6.0 / 72  # rc default axes.titlepad, inches
_CBAR_W, _CBAR_GAP = 0.243, 0.085  # colorbar width and gap to its axes, inches (colorbar defaults)


def _figure(figsize: tuple[float, float], n_axes: int = 1):
    """(figure, axes) drawn by the Agg canvas directly: no pyplot (its import and global figure
    registry are not needed to write PNGs), so nothing is left open. With ``n_axes`` > 1, that many
    axes sharing x (placed by the caller)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=_DPI)
    FigureCanvasAgg(fig)
    if n_axes == 1:
        return fig, fig.subplots()
    return fig, fig.subplots(n_axes, 1, sharex=True)


def _extent(fig, texts: Iterable[Any]) -> tuple[float, float]:
    """(widest, tallest) of the non-empty matplotlib ``texts`` in inches, as drawn (rotation
    included); (0, 0) for none."""
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text()]
    if not boxes:
        return 0.0, 0.0
    return max(b.width for b in boxes) / fig.dpi, max(b.height for b in boxes) / fig.dpi


def _place(ax, x0: float, y0: float, x1: float, y1: float) -> None:
    """Put ``ax`` at [x0, x1] × [y0, y1], inches from the figure's lower-left corner."""
    w, h = ax.get_figure().get_size_inches()
    ax.set_position((x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h))


def _below(fig, ax) -> float:
    """Inches the x tick labels and the x label take under ``ax``."""
    ticks_h = _extent(fig, ax.get_xticklabels())[1]
    label_h = _extent(fig, [ax.xaxis.label])[1]
    return ticks_h + _TICK + (_LABELPAD + label_h if label_h else 0.0)


def _above(fig, ax) -> float:
    """Inches the title takes over ``ax``."""
    return _extent(fig, [ax.title])[1] + _TITLEPAD


def _left_of(fig, ax) -> float:
    """Inches the y tick labels and the y label take left of ``ax``."""
    ticks_w = _extent(fig, ax.get_yticklabels())[0]
    label_w = _extent(fig, [ax.yaxis.label])[0]
    return ticks_w + _TICK + (_LABELPAD + label_w if label_w else 0.0)


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
    ax.set_title("What the model heard" + (f" (held-out: {acc})" if acc else ""), fontsize=8, y=1.0)
    ax.legend(fontsize=6, loc="upper right", ncol=3, framealpha=0.6)


def _png(fig) -> bytes:
    """The figure as PNG bytes at its own size (the layout is already fixed; zlib level 1: the
    plots are flat colour and text, a few % larger than level 6 for a fraction of the time)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, pil_kwargs={"compress_level": 1})
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
    above it, when the report has one, what the model heard (pedal, attack velocity, note starts).
    9.3 × 5.65 in (4.7 in without the heard panel) at 110 dpi."""
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
    W, H = (9.3, 5.65) if heard else (9.3, 4.7)
    if heard:
        fig, (top, ax) = _figure((W, H), n_axes=2)
        _heard_panel(top, heard)
    else:
        fig, ax = _figure((W, H))
    m = ax.pcolormesh(edges, np.arange(20) - 0.5, z.T, cmap="RdBu_r", vmin=-2.5, vmax=2.5, shading="flat")
    ax.set_yticks(range(19))
    ax.set_yticklabels([f"{d['name']}{'' if d['problem_pole'] else ' *'}" for d in dims], fontsize=7)
    ax.invert_yaxis()
    _bar_ticks(ax, rep)
    for f in rep["feedback"]:
        ax.axvspan(f["start_sec"], f["end_sec"], ymin=0, ymax=0.02, color="k")
    cb = fig.colorbar(m, cax=fig.add_axes((0.9, 0.1, 0.02, 0.8)))  # one colorbar beside both panels
    cb.set_label("rating points from the middle (red = problem side; * = no problem side)", fontsize=7)
    ax.set_title("Calibrated scores over time", y=1.0)
    # layout: colorbar at the right edge, heatmap under the heard panel, both one x extent
    cbar_x1 = W - _PAD - (_extent(fig, cb.ax.get_yticklabels())[0] + _TICK + _LABELPAD
                          + _extent(fig, [cb.ax.yaxis.label])[0])
    x0, x1 = _PAD + _left_of(fig, ax), cbar_x1 - _CBAR_W - _CBAR_GAP
    y0 = _PAD + _below(fig, ax)
    y1 = H - _PAD - _above(fig, ax)
    if heard:
        top_y1 = y1 - _above(fig, top) + _above(fig, ax)
        top_y0 = top_y1 - 0.8
        _place(top, x0, top_y0, x1, top_y1)
        y1 = top_y0 - _above(fig, ax) - 0.17
    _place(ax, x0, y0, x1, y1)
    _place(cb.ax, cbar_x1 - _CBAR_W, y0, cbar_x1, top_y1 if heard else y1)
    return _png(fig)


def overall_png(rep: dict[str, Any]) -> bytes:
    """Horizontal bars of the whole-performance median rating (1–7) with the IQR. 8.85 × 5.45 in
    at 110 dpi."""
    dims = rep["dimensions"]
    ov = rep["overall"]
    med = np.array([ov[d["key"]]["median"] * 7 for d in dims])
    q25 = np.array([ov[d["key"]]["quantiles"]["q25"] * 7 for d in dims])
    q75 = np.array([ov[d["key"]]["quantiles"]["q75"] * 7 for d in dims])
    colours = []
    for d, m in zip(dims, med, strict=True):
        bad = (d["problem_pole"] == "high" and m > 4.5) or (d["problem_pole"] == "low" and m < 3.5)
        colours.append("#c0392b" if bad else "#2e86c1")
    W, H = 8.85, 5.45
    fig, ax = _figure((W, H))
    y = np.arange(19)
    ax.barh(y, med - 1, left=1, color=colours, alpha=0.8)
    ax.errorbar(med, y, xerr=[med - q25, q75 - med], fmt="none", ecolor="k", lw=0.8, capsize=2)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{d['name']}  ({d['low']} … {d['high']})" for d in dims], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(1, 7)
    ax.axvline(4, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("rating (1 = low pole, 7 = high pole); bar = median, whisker = IQR; red = needs work")
    ax.set_title("Whole performance", y=1.0)
    x0, x1 = _PAD + _left_of(fig, ax), W - _PAD - 0.1
    label_w = _extent(fig, [ax.xaxis.label])[0]  # centred under the axes: keep it inside the figure
    x1 = min(x1, 2 * (W - _PAD) - label_w - x0)
    _place(ax, x0, _PAD + _below(fig, ax), x1, H - _PAD - _above(fig, ax))
    return _png(fig)


def saliency_png(rep: dict[str, Any]) -> bytes:
    """Mel-band saliency over time: which frequency regions drove each window's worst dimensions.
    9.5 × 2.8 in at 110 dpi."""
    w = rep["windows"]
    sal = np.array([r if r is not None else [np.nan] * 16 for r in w["saliency_mel"]], float)  # (N, 16)
    start = np.array(w["start_sec"], float)
    dur = rep["input"]["duration_sec"]
    W, H = 9.5, 2.8
    fig, ax = _figure((W, H))
    x = np.append(start, min(dur, start[-1] + 1.0)) if len(start) else np.array([0.0, dur])
    if len(x) > 1 and np.all(np.diff(x) > 0):
        ax.pcolormesh(x, np.arange(17), sal.T, cmap="magma", shading="flat")
    ax.set_ylabel("mel band (low → high)")
    ax.set_yticks([0, 8, 16])
    ax.set_yticklabels(["0 Hz", "~1.4 kHz", "11 kHz"], fontsize=7)
    _bar_ticks(ax, rep)
    ax.set_title("Saliency (gradient × input) of the reported dimensions, in the reported passages", y=1.0)
    right = _extent(fig, ax.get_xticklabels())[0] / 2  # the last tick label may sit on the edge
    _place(ax, _PAD + _left_of(fig, ax), _PAD + _below(fig, ax), W - _PAD - right, H - _PAD - _above(fig, ax))
    return _png(fig)
