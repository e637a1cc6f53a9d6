"""The text summary printed by ``crescendai analyze`` (from the report dict, so text, JSON and HTML
always say the same thing)."""

from __future__ import annotations

import math
from typing import Any


def mmss(sec: float) -> str:
    return f"{int(sec // 60)}:{int(sec % 60):02d}"


def _gauge(rating: float, width: int = 13) -> str:
    """A 1–7 position marker: ``[·····●·······]``."""
    pos = int(round((min(7.0, max(1.0, rating)) - 1) / 6 * (width - 1)))
    return "[" + "·" * pos + "●" + "·" * (width - 1 - pos) + "]"


def percent(p: float) -> str:
    """A probability as a whole percentage, rounded down ("98%" for 0.987), so a line never reads
    more confident than it is."""
    return f"{int(p * 100 + 1e-9)}%"


def bars_phrase(rep: dict[str, Any]) -> str:
    """"42 bars from the score (3/4)" / "about 40 bars from beat tracking (approximate)" / …"""
    b = rep["bars"]
    n = len(b["items"])
    if b["source"] == "score":
        return f"{n} bars from the score ({b['meter']}, alignment match {b['match']:.2f})"
    if b["source"] == "beats":
        tempo = f", ~{b['tempo_bpm']:.0f} bpm" if b.get("tempo_bpm") else ""
        return f"about {n} bars from beat tracking ({b['meter']}{tempo}); bar numbers are approximate"
    return "no bars found (too few beats); feedback uses times"


def validation_phrase(overall: dict[str, Any]) -> str:
    """"r 0.12", or "r unknown" when it could not be measured. Rounded down, so that an r just under
    the reliability threshold (0.195 against 0.20) never reads as the threshold itself."""
    r = overall.get("validation_r")
    return "r unknown" if r is None else f"r {math.floor(r * 100) / 100:.2f}"


def known_error(rep: dict[str, Any]) -> bool:
    """Whether the report's uncertainties include the model's validation error."""
    return any(o.get("model_error") is not None for o in rep["overall"].values())


CAUSES: str = ("A different piano, room or microphone (a phone, say), or sounds other than piano, "
                "can do this.")
"""What can make a recording sound unlike the training recordings, in plain words."""


def domain_phrase(domain: dict[str, Any]) -> str:
    """The plain-words sentence of the domain check (the report's ``domain`` entry, less ``text``)."""
    if not domain["checked"]:
        return ("Recording check not available: this model came without a description of the recordings "
                "it learned from, so it cannot tell whether yours sounds like them.")
    p = domain["percentile"] or 0.0
    share = "all" if p >= 1.0 else percent(p)
    if domain["level"] == "far":
        return (f"This recording sounds unlike the recordings the model learned from (further out than {share} "
                f"of them): read the scores as rough (± widened ×{domain['widening']:.1f}); no advice is given. "
                f"{CAUSES}")
    if domain["level"] == "unusual":
        return (f"This recording sounds somewhat unlike the recordings the model learned from (further out than "
                f"{share} of them): the ± is widened ×{domain['widening']:.1f}; take scores and advice with care. "
                f"{CAUSES}")
    return "This recording sounds like the recordings the model learned from."


def withheld_phrase(domain: dict[str, Any]) -> str | None:
    """"No advice for bars 3–4: …" when passages alone are far out, else None."""
    if not domain.get("withheld"):
        return None
    return (f"No advice for {', '.join(domain['withheld'])}: there the recording sounds unlike the recordings "
            "the model learned from.")


NO_ADVICE: str = "No advice: the recording sounds too unlike the recordings the model learned from (see above)."


def trained_on_phrase(model: dict[str, Any]) -> str:
    """"trained on PercePiano" / "trained on the synthetic corpus" / "training corpus not recorded"."""
    names = {"synthetic": "the synthetic corpus", "percepiano": "PercePiano"}
    corpora = model.get("trained_on") or []
    if not corpora:
        return "training corpus not recorded"
    return "trained on " + " + ".join(names.get(c, c) for c in corpora)


NOTES_QUIET: str = ("No bar stands out: no missing, extra or wrong notes and no rushed or dragged bar "
                    "beyond the transcription's own errors.")


def notes_quiet(notes: dict[str, Any]) -> bool:
    """Whether the note check was reliable and found nothing (then :data:`NOTES_QUIET` is said)."""
    return bool(notes["reliable"]) and not notes["lines"]


def heard_phrase(heard: dict[str, Any]) -> str:
    """One paragraph on the "what the model heard" curves and how far to trust them."""
    pedal = [p for p in heard["pedal"] if p is not None]
    share = f"pedal down about {percent(sum(p >= 0.5 for p in pedal) / len(pedal))} of the time; " if pedal else ""
    q = heard.get("quality") or {}
    acc = ", ".join(f"{k} {v:.2f}" for k, v in q.items())
    return ("What the model heard (timeline.png, top): " + share + "attack velocity and note starts by "
            "time. " + (f"Its hearing on recordings it did not train on: {acc}." if acc else ""))


def text_report(rep: dict[str, Any]) -> str:
    """Render the human summary: header, overall scores, strengths, bar-level feedback."""
    inp, model = rep["input"], rep["model"]
    out = [
        f"CrescendAI analysis of {inp['path']} ({mmss(inp['duration_sec'])})",
        f"  {bars_phrase(rep)}",
        f"  model: {model['path']} ({'calibrated' if model['calibrated'] else 'UNCALIBRATED'}), "
        f"{trained_on_phrase(model)}, {len(rep['windows']['start_sec'])} windows",
        "  ± = " + ("the model's typical error on players it was not trained on, with the spread of "
                    if known_error(rep) else "") + f"{model['mc_samples']} MC-dropout samples",
        f"  {rep['domain']['text']}",
        "",
        "Overall (rating 1–7: median, ± uncertainty; low pole … high pole)",
    ]
    for d in rep["dimensions"]:
        o = rep["overall"][d["key"]]
        unc = (o["uncertainty"] or 0) * 7
        note = "" if o.get("judged", True) else f"  [unreliable: {validation_phrase(o)}]"
        out.append(f"  {d['name']:<22} {o['rating']:4.1f} ±{unc:3.1f} {_gauge(o['rating'])} "
                   f"{d['low']} … {d['high']}{note}")
    if not all(o.get("judged", True) for o in rep["overall"].values()):
        out.append(f"  [unreliable]: on players it was not trained on, the model's ratings of these agree "
                   f"too little with the teachers' (r below {model.get('min_reliable_r', 0):.2f}); "
                   "it gives no advice on them.")
    s = rep["summary"]
    names = {d["key"]: d["name"] for d in rep["dimensions"]}
    if s["strengths"]:
        out += ["", "Strengths: " + ", ".join(names[k] for k in s["strengths"]) + "."]
    if s["weaknesses"]:
        out += ["Overall, work on: " + ", ".join(names[k] for k in s["weaknesses"]) + "."]
    if not rep["domain"]["advice"]:
        out += ["", NO_ADVICE]
    else:
        out += ["", "Where to work:"]
    if not rep["feedback"] and rep["domain"]["advice"]:
        out.append("  No passage stands out from the rest of the performance with enough confidence.")
    for f in rep["feedback"]:
        out.append(f"  • {f['text']}  (confidence {percent(f['confidence'])})")
        for a in dict.fromkeys(f["advice"]):
            out.append(f"      try: {a}")
    if withheld_phrase(rep["domain"]):
        out.append(f"  {withheld_phrase(rep['domain'])}")
    heard = rep.get("heard")
    if heard is not None:
        out += ["", heard_phrase(heard)]
    notes = rep.get("notes")
    if notes is not None:
        out += ["", "The notes (against the score):", f"  {notes['text']}"]
        if notes_quiet(notes):
            out.append(f"  {NOTES_QUIET}")
        out += [f"  • {line['text']}" for line in notes["lines"]]
    if rep["bars"]["approximate"] and rep["bars"]["source"] == "beats":
        out += ["", "Bars are approximate (no score given: beat tracking + metre). Pass --score "
                "score.mid for the score's bar numbers."]
    return "\n".join(out) + "\n"
