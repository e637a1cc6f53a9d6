"""A self-contained ``report.html``: text, feedback and the plots inlined as base64 PNG, no network."""

from __future__ import annotations

import base64
import html as _html
from pathlib import PurePath
from typing import Any

from crescendai.tutor.report.text import (
    NO_ADVICE,
    bars_phrase,
    percent,
    trained_on_phrase,
    validation_phrase,
    withheld_phrase,
)

_CSS = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222;line-height:1.45}
h1{font-size:1.4em}table{border-collapse:collapse;font-size:.9em}td,th{padding:2px 8px;border-bottom:1px solid #ddd}
li{margin-bottom:.6em}.adv{color:#555;font-size:.92em}.note{background:#fff6d6;padding:.5em 1em;border-radius:4px}
img{max-width:100%}"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def html_report(rep: dict[str, Any], images: dict[str, bytes]) -> str:
    """The report page; ``images`` maps plot name (timeline, overall, saliency) → PNG bytes."""
    e = _html.escape
    inp = rep["input"]
    name = PurePath(inp["path"]).name  # the recording's own file name; the full path stays in report.json
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>CrescendAI — {e(name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>CrescendAI analysis: {e(name)}</h1>",
        f"<p>{inp['duration_sec']:.0f} s · {e(bars_phrase(rep))} · model {e(rep['model']['path'])}"
        f"{'' if rep['model']['calibrated'] else ' (uncalibrated)'}, {e(trained_on_phrase(rep['model']))}</p>",
    ]
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
        parts.append(f"<li><b>{e(f['text'])}</b> <small>(confidence {percent(f['confidence'])}; model "
                     f"listened mostly to the {e(f['saliency_region'])})</small><div class='adv'>{adv}</div></li>")
    if withheld_phrase(dom):
        parts.append(f"<li>{e(withheld_phrase(dom))}</li>")
    parts.append("</ul>")
    if "timeline" in images:
        parts += ["<h2>Timeline</h2>", _img(images["timeline"], "19-dimension timeline")]
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
    parts.append(f"<p><small>report schema {e(rep['schema'])} v{rep['schema_version']}, "
                 f"created {e(rep['created'])}</small></p></body></html>")
    return "\n".join(parts)
