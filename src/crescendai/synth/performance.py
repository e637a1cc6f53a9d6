"""The performance model: performer tendencies + controls → an expressive performance in seconds.

:class:`Controls` are the knobs of one performance (all audible in the rendered audio):

==================  =========  ================================================================
control             range      effect
==================  =========  ================================================================
tempo_factor        0.75–1.3   multiplies the notated tempo
drift               ±0.2       relative tempo change from start to end (accelerando > 0)
rubato              0–0.35     phrase-arch tempo bending (slower at phrase starts/ends) and
                               phrase-final lengthening
jitter_ms           3–70       random onset deviation (std) per chord (unsteady timing)
asynchrony_ms       2–30       melody lead over the accompaniment + spread within chords
articulation        0.25–1.15  played duration / notated duration (staccato … overlapping legato)
velocity_level      30–105     mean MIDI velocity
velocity_range      3–50       amplitude of the crescendo/diminuendo swell over each half phrase
                               (velocity units; peak at 65 % of the swell)
velocity_variance   1–10       random per-note velocity deviation (std) + abrupt jumps
balance             -20–24     melody minus accompaniment velocity (accompaniment drowning the
                               melody … melody clearly projected)
pedal_amount        0–1        share of harmonies played with the sustain pedal down
pedal_sync          0–1        probability a pedal change follows a harmony change (clean)
touch               0–1        pressed (0) … struck (1) touch: rendered as impact noise and
                               brightness; hard touch also sharpens accents
==================  =========  ================================================================

A :class:`Performer` holds persistent tendencies (a mean per control); :func:`sample_controls` draws
one performance's controls around them, so performer identity is learnable and performer-level
cross-validation is meaningful.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from crescendai.core.midi import Note, PedalEvent, Performance
from crescendai.synth.material import Piece

RANGES: dict[str, tuple[float, float]] = {
    "tempo_factor": (0.75, 1.3),
    "drift": (-0.2, 0.2),
    "rubato": (0.0, 0.35),
    "jitter_ms": (3.0, 70.0),
    "asynchrony_ms": (2.0, 30.0),
    "articulation": (0.25, 1.15),
    "velocity_level": (30.0, 105.0),
    "velocity_range": (3.0, 50.0),
    "velocity_variance": (1.0, 10.0),
    "balance": (-20.0, 24.0),
    "pedal_amount": (0.0, 1.0),
    "pedal_sync": (0.0, 1.0),
    "touch": (0.0, 1.0),
}
"""Allowed range of every control."""
ROLE_BALANCE: dict[str, float] = {"melody": 0.5, "accomp": -0.5, "bass": -0.25}
"""Velocity offset of each role per unit of the ``balance`` control."""


@dataclass(frozen=True)
class Controls:
    """One performance's controls (see the module table for units and ranges)."""

    tempo_factor: float = 1.0
    drift: float = 0.0
    rubato: float = 0.1
    jitter_ms: float = 8.0
    asynchrony_ms: float = 10.0
    articulation: float = 0.85
    velocity_level: float = 64.0
    velocity_range: float = 15.0
    velocity_variance: float = 5.0
    balance: float = 10.0
    pedal_amount: float = 0.5
    pedal_sync: float = 0.8
    touch: float = 0.5

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 6) for k, v in asdict(self).items()}

    def replace(self, **kw: float) -> Controls:
        d = asdict(self)
        d.update(kw)
        return Controls(**d)


@dataclass(frozen=True)
class Performer:
    """Persistent tendencies: the mean of each control, and how much the performer varies."""

    performer_id: str
    means: Controls
    spread: float


def sample_performer(rng: np.random.Generator, performer_id: str) -> Performer:
    """Draw a performer: control means spread over the middle 85 % of each range."""
    means = {k: float(lo + (hi - lo) * rng.uniform(0.075, 0.925)) for k, (lo, hi) in RANGES.items()}
    return Performer(performer_id, Controls(**means), float(rng.uniform(0.08, 0.16)))


def sample_controls(rng: np.random.Generator, performer: Performer) -> Controls:
    """One performance's controls: the performer's means plus N(0, spread·range) per control."""
    out = {}
    for f in fields(Controls):
        lo, hi = RANGES[f.name]
        out[f.name] = float(np.clip(getattr(performer.means, f.name) + rng.normal(0, performer.spread * (hi - lo)),
                                    lo, hi))
    return Controls(**out)


@dataclass(frozen=True)
class Rendition:
    """A performed piece: the events plus what the label model and the manifest need.

    Attributes:
        performance: notes and pedal in seconds (starts at ``lead_in`` s).
        roles: per note (same order as ``performance.notes``): "melody" | "accomp" | "bass".
        nominal_dur_sec: per note, the notated duration under the performed tempo map.
        timing_dev_sec: per note, the chord's random onset deviation from the smooth tempo map
            (jitter; the deliberate melody lead / chord spread of ``asynchrony_ms`` is not included).
        bar_times, beat_times: seconds of every bar line / beat (first bar at ``lead_in``).
        harmony_times: seconds of every harmony change.
        pedal_held_changes: per harmony change, True when the pedal was held through it (blur).
        phrase_times: seconds of every phrase start.
        tempo_bpm: the mean performed tempo (quarters per minute).
        duration_sec: end of the last note-off (audio continues with release tails).
    """

    performance: Performance
    roles: tuple[str, ...]
    nominal_dur_sec: np.ndarray
    timing_dev_sec: np.ndarray
    bar_times: np.ndarray
    beat_times: np.ndarray
    harmony_times: np.ndarray
    pedal_held_changes: np.ndarray
    phrase_times: np.ndarray
    tempo_bpm: float
    duration_sec: float


def tempo_map(piece: Piece, c: Controls, lead_in: float = 0.2, grid_q: float = 1 / 24):
    """Return ``t(q)``: seconds at score position ``q`` (quarters), a smooth, monotone function.

    Local quarter-note duration = base · (1 + drift·x)⁻¹ · (1 + rubato·arch(phrase position)),
    plus phrase-final lengthening of ``rubato`` on the last beat of each phrase.
    """
    base = 60.0 / (piece.tempo_bpm * c.tempo_factor)
    qs = np.arange(0.0, piece.length_q + 4 + grid_q, grid_q)
    x = np.clip(qs / max(piece.length_q, 1e-9), 0, 1)
    phrase_q = piece.phrase_bars * piece.bar_q
    pos = (qs % phrase_q) / phrase_q
    arch = 4.0 * (pos - 0.5) ** 2 - 1.0 / 3.0  # zero-mean over a phrase; slow at the ends
    final = ((phrase_q - (qs % phrase_q)) <= piece.beat_q).astype(float)
    dq = base / (1.0 + c.drift * x) * (1.0 + c.rubato * arch + 0.8 * c.rubato * final)
    t = lead_in + np.concatenate([[0.0], np.cumsum(dq[:-1] * grid_q)])
    return lambda q: np.interp(q, qs, t)


def perform(piece: Piece, c: Controls, rng: np.random.Generator, lead_in: float = 0.2) -> Rendition:
    """Play ``piece`` with controls ``c``; a pure function of (piece, c, rng state)."""
    t_of = tempo_map(piece, c, lead_in)
    phrase_q = piece.phrase_bars * piece.bar_q
    onsets_q = np.array([n.onset_q for n in piece.notes])
    groups = {q: rng.normal(0.0, c.jitter_ms / 1000.0) for q in np.unique(onsets_q)}
    notes: list[Note] = []
    roles: list[str] = []
    nominal, devs = [], []
    # crude players jump: a piecewise-constant random offset per half bar, scaled by variance
    jump_len = piece.bar_q / 2
    swell_q = phrase_q / 2 if piece.phrase_bars % 2 == 0 else phrase_q
    jumps = rng.normal(0.0, 0.6 * c.velocity_variance, int(piece.length_q / jump_len) + 2)
    for sn in piece.notes:
        t0 = float(t_of(sn.onset_q))
        t1 = float(t_of(sn.onset_q + sn.dur_q))
        dev = groups[sn.onset_q]
        if sn.role == "melody":
            dev -= c.asynchrony_ms / 1000.0 * 0.6
        else:
            dev += abs(rng.normal(0, c.asynchrony_ms / 1000.0 * 0.5))
        onset = t0 + dev
        dur = max(0.04, (t1 - t0) * c.articulation)
        pos = (sn.onset_q % swell_q) / swell_q  # a swell per half phrase: 0 → 1 at 65 % → 0
        arch = np.sin(0.5 * np.pi * pos / 0.65) if pos < 0.65 else np.cos(0.5 * np.pi * (pos - 0.65) / 0.35)
        vel = c.velocity_level + c.velocity_range * (arch - 0.5)
        vel += ROLE_BALANCE[sn.role] * c.balance
        if abs(sn.onset_q % piece.bar_q) < 1e-6:
            vel += 2.0 + 6.0 * c.touch  # downbeat accent; harder touch accents harder
        vel += rng.normal(0, c.velocity_variance) + jumps[int(sn.onset_q / jump_len)]
        notes.append(Note(onset, onset + dur, sn.pitch, int(np.clip(round(vel), 1, 127))))
        roles.append(sn.role)
        nominal.append(t1 - t0)
        devs.append(groups[sn.onset_q])
    order = sorted(range(len(notes)), key=lambda i: (notes[i].onset_sec, notes[i].pitch))
    notes = [notes[i] for i in order]
    roles = [roles[i] for i in order]
    nominal_a = np.array([nominal[i] for i in order])
    devs_a = np.array([devs[i] for i in order])
    pedal, held = _pedal(piece, c, rng, t_of)
    bar_q = piece.bar_q
    bars = t_of(np.arange(piece.n_bars) * bar_q)
    beats = t_of(np.arange(0, piece.length_q - 1e-9, piece.beat_q))
    harm = t_of(np.asarray(piece.harmony_q))
    phrases = t_of(np.arange(0, piece.length_q - 1e-9, phrase_q))
    perf = Performance(notes, pedal)
    end = max(n.offset_sec for n in notes)
    mean_bpm = 60.0 * piece.length_q / (float(t_of(piece.length_q)) - lead_in)
    return Rendition(perf, tuple(roles), nominal_a, devs_a, np.asarray(bars), np.asarray(beats),
                     np.asarray(harm), held, np.asarray(phrases), mean_bpm, float(end))


def _pedal(piece: Piece, c: Controls, rng: np.random.Generator, t_of) -> tuple[list[PedalEvent], np.ndarray]:
    """Pedal events: each harmony span is pedalled with probability ``pedal_amount``; between two
    pedalled spans the pedal is changed (up just after the new harmony, down 0.1 s later) with
    probability ``pedal_sync``, else held through (blurring the two harmonies)."""
    hq = list(piece.harmony_q) + [piece.length_q]
    on = rng.random(len(hq) - 1) < c.pedal_amount
    events: list[PedalEvent] = []
    held = np.zeros(len(hq) - 1, dtype=bool)  # per harmony change (index i = change into span i)
    down = False
    for i in range(len(hq) - 1):
        t = float(t_of(hq[i]))
        if on[i]:
            if down:
                if rng.random() < c.pedal_sync:
                    events += [PedalEvent(t + 0.02, 0), PedalEvent(t + 0.11, 127)]
                else:
                    held[i] = i > 0
            else:
                events.append(PedalEvent(t + 0.06, 127))
                down = True
        elif down:
            events.append(PedalEvent(t + 0.02, 0))
            down = False
    if down:
        events.append(PedalEvent(float(t_of(hq[-1])) + 0.3, 0))
    return events, held
