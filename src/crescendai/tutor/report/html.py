"""A self-contained ``report.html``: text, feedback and the plots inlined as base64 PNG, no network.

With ``audio_src`` the page also plays the recording (an ``<audio>`` element reading it from beside
the report, never copied in): every feedback line, note finding and bar of the bar strip plays its
span when clicked (or focused and Enter/Space), by a few lines of inline JavaScript.
"""

from __future__ import annotations

import base64
import html as _html
import urllib.parse
from pathlib import PurePath
from typing import Any

from crescendai.tutor.report.text import (
    NO_ADVICE,
    NOTES_QUIET,
    bars_phrase,
    heard_phrase,
    mmss,
    notes_quiet,
    percent,
    trained_on_phrase,
    validation_phrase,
    withheld_phrase,
)

_CSS = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222;line-height:1.45}
h1{font-size:1.4em}table{border-collapse:collapse;font-size:.9em}td,th{padding:2px 8px;border-bottom:1px solid #ddd}
li{margin-bottom:.6em}.adv{color:#555;font-size:.92em}.note{background:#fff6d6;padding:.5em 1em;border-radius:4px}
img{max-width:100%}audio{width:100%}.cap{margin-top:0;color:#555;font-size:.85em}
.play{cursor:pointer;border-radius:4px}.play:hover,.play:focus{background:#eef5ff;outline:1px solid #9bc}
.bars{display:flex;gap:1px;margin:.3em 0}.bar{flex-basis:0;min-width:0;padding:.4em 0;border:0;
background:#dde3ea;font-size:.7em;overflow:hidden;white-space:nowrap;cursor:pointer}
.bar:hover,.bar:focus{background:#9bc}.bar.flagged{background:#e8a598}.bar:disabled{cursor:default}
.legend{font-size:.85em;color:#555}.kind{font-size:.8em;color:#fff;background:#777;border-radius:3px;padding:0 .3em}"""

# Seek to data-start, play, pause at data-end (checked on timeupdate); a later click replaces the stop.
_JS = """<script>(()=>{const a=document.getElementById("recording");let stop=null;
a.addEventListener("timeupdate",()=>{if(stop!==null&&a.currentTime>=stop){a.pause();stop=null;}});
const play=el=>{stop=+el.dataset.end;a.currentTime=+el.dataset.start;const p=a.play();if(p)p.catch(()=>{});};
document.querySelectorAll("[data-start]").forEach(el=>{el.addEventListener("click",()=>play(el));
if(el.tagName!=="BUTTON")el.addEventListener("keydown",ev=>{
if(ev.key==="Enter"||ev.key===" "){ev.preventDefault();play(el);}});});})();</script>"""

BAR_LABELS: int = 32
"""At most about this many labelled buttons in the bar strip (12 when the units are m:ss times)."""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _span_attrs(item: dict[str, Any], playable: bool) -> str:
    """Attributes making an element play ``item``'s start_sec–end_sec; '' when there is no player."""
    if not playable:
        return ""
    s, t = float(item["start_sec"]), float(item["end_sec"])
    return (f' class="play" tabindex="0" role="button" data-start="{s:.3f}" data-end="{t:.3f}"'
            f' title="play {mmss(s)}–{mmss(t)}"')


def _label_step(n: int, most: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, … that labels at most ``most`` of ``n`` bars."""
    step, k = 1, 0
    while n / step > most:
        k += 1
        step = (1, 2, 5)[k % 3] * 10 ** (k // 3)
    return step


def bar_strip(rep: dict[str, Any], playable: bool) -> str:
    """One ``<button class="bar">`` per ``rep["bars"]["items"]`` entry, widths ∝ duration; bars whose
    midpoint lies in a feedback line's span get the class ``flagged``. '' when there are no bars."""
    items = rep["bars"]["items"]
    if not items:
        return ""
    timed = rep["bars"]["units"] == "time"
    step = _label_step(len(items), 12 if timed else BAR_LABELS)
    spans = [(f["start_sec"], f["end_sec"]) for f in rep["feedback"]]
    out = ["<div class='bars'>"]
    any_flagged = False
    for i, it in enumerate(items):
        s, t = float(it["start_sec"]), float(it["end_sec"])
        n = int(it["number"])
        name = mmss(s) if timed else str(n)
        title = f"{mmss(s)}–{mmss(t)}" if timed else f"bar {n}, {mmss(s)}–{mmss(t)}"
        flagged = any(a <= (s + t) / 2 <= b for a, b in spans)
        any_flagged |= flagged
        label = name if i == 0 or (i if timed else n) % step == 0 else ""
        out.append(f'<button class="bar{" flagged" if flagged else ""}" data-start="{s:.3f}" '
                   f'data-end="{t:.3f}" title="{title}" aria-label="{title}" style="flex-grow:{t - s:.3f}"'
                   f'{"" if playable else " disabled"}>{label}</button>')
    out.append("</div>")
    what = "segment" if timed else "bar"
    legend = f"Each button is one {what}, as wide as it lasts"
    if playable:
        legend += f"; click one to hear that {what}"
    if any_flagged:
        legend += "; red ones lie in a passage of the feedback above"
    out.append(f"<p class='legend'>{legend}.</p>")
    return "\n".join(out)


def notes_section(rep: dict[str, Any], playable: bool) -> str:
    """The note-level findings (``rep["notes"]``: transcriber, lines, text), or '' when absent."""
    notes = rep.get("notes")
    if not notes:
        return ""
    e = _html.escape
    parts = ["<h2>The notes (against the score)</h2>", f"<p>{e(notes.get('text', ''))}</p>"]
    if notes_quiet(notes):
        parts.append(f"<p>{e(NOTES_QUIET)}</p>")
    if notes.get("lines"):
        parts.append("<ul>")
        for ln in notes["lines"]:
            parts.append(f"<li{_span_attrs(ln, playable)}><span class='kind'>{e(ln['kind'])}</span> "
                         f"{e(ln['text'])}</li>")
        parts.append("</ul>")
    return "\n".join(parts)


def html_report(rep: dict[str, Any], images: dict[str, bytes], audio_src: str | None = None) -> str:
    """The report page; ``images`` maps plot name (timeline, overall, saliency) → PNG bytes.

    ``audio_src`` is the recording's URL (URL-quoted, normally relative to the page): with it the page
    has one ``<audio id="recording">`` and the feedback lines, note findings and bar buttons play their
    spans; without it (None) there is no player, no script, and nothing is clickable.
    """
    e = _html.escape
    inp = rep["input"]
    playable = audio_src is not None
    name = PurePath(inp["path"]).name  # the recording's own file name; the full path stays in report.json
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>CrescendAI — {e(name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>CrescendAI analysis: {e(name)}</h1>",
        f"<p>{inp['duration_sec']:.0f} s · {e(bars_phrase(rep))} · model {e(rep['model']['path'])}"
        f"{'' if rep['model']['calibrated'] else ' (uncalibrated)'}, {e(trained_on_phrase(rep['model']))}</p>",
    ]
    if playable:
        parts.append(f'<audio id="recording" controls preload="metadata" src="{e(audio_src)}"></audio>'
                     f"<p class='cap'>The player reads the recording beside this report "
                     f"(<code>{e(urllib.parse.unquote(audio_src))}</code>): keep the two folders together. "
                     "Click a feedback line or a bar to hear it.</p>")
    dom = rep["domain"]
    cls = "" if dom["level"] == "in domain" else " class='note'"  # unusual, far or unchecked: a note
    parts.append(f"<p{cls}>{e(dom['text'])}</p>")
    if rep["bars"]["approximate"] and rep["bars"]["source"] == "beats":
        parts.append("<p class='note'>No score was given: bar numbers come from beat tracking and are "
                     "approximate.</p>")
    if dom["advice"]:
        parts.append("<h2>Where to work</h2><ul>")
    else:
        parts.append(f"<h2>No advice</h2><p>{e(NO_ADVICE)}</p><ul>")
    if not rep["feedback"] and dom["advice"]:
        parts.append("<li>No passage stands out from the rest of the performance with enough confidence.</li>")
    for f in rep["feedback"]:
        adv = "<br>".join(f"try: {e(a)}" for a in dict.fromkeys(f["advice"]))
        parts.append(f"<li{_span_attrs(f, playable)}><b>{e(f['text'])}</b> <small>(confidence "
                     f"{percent(f['confidence'])}; model listened mostly to the {e(f['saliency_region'])})"
                     f"</small><div class='adv'>{adv}</div></li>")
    if withheld_phrase(dom):
        parts.append(f"<li>{e(withheld_phrase(dom))}</li>")
    parts.append("</ul>")
    parts.append(notes_section(rep, playable))
    strip = bar_strip(rep, playable)
    if strip or "timeline" in images:
        parts.append("<h2>Timeline</h2>")
    parts.append(strip)
    if "timeline" in images:
        if rep.get("heard"):
            parts.append(f"<p>{e(heard_phrase(rep['heard']))}</p>")
        parts.append(_img(images["timeline"], "19-dimension timeline"))
    parts.append("<h2>Whole performance</h2><table><tr><th>dimension</th><th>rating (1–7)</th>"
                 "<th>IQR</th><th>± uncertainty</th><th>low … high</th></tr>")
    for d in rep["dimensions"]:
        o = rep["overall"][d["key"]]
        q = o["quantiles"]
        parts.append(f"<tr><td>{e(d['name'])}</td><td>{o['rating']:.1f}</td><td>{q['q25'] * 7:.1f}–"
                     f"{q['q75'] * 7:.1f}</td><td>{(o['uncertainty'] or 0) * 7:.1f}</td>"
                     f"<td>{e(d['low'])} … {e(d['high'])}"
                     + ("" if o.get("judged", True) else
                        f" <small>(unreliable on unseen players: {validation_phrase(o)}; no advice given)</small>")
                     + "</td></tr>")
    parts.append("</table>")
    if "overall" in images:
        parts.append(_img(images["overall"], "overall scores"))
    if "saliency" in images:
        parts += ["<h2>What the model listened to</h2>", _img(images["saliency"], "saliency")]
    if playable:
        parts.append(_JS)
    parts.append(f"<p><small>report schema {e(rep['schema'])} v{rep['schema_version']}, "
                 f"created {e(rep['created'])}</small></p></body></html>")
    return "\n".join(p for p in parts if p)
