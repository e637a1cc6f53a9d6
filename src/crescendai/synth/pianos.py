"""Piano models: the physical constants that make one piano sound unlike another.

Each :class:`PianoModel` fixes inharmonicity (stretch coefficient ``B`` rising log-linearly from
``b_low`` at A0 to ``b_high`` at C8), decay times, brightness (hammer-felt cutoff), string detuning
(beating), hammer noise and a body colour (resonant peaks of the soundboard/cabinet). The first seven
models are hand-voiced and distinct; more (``n > 7``) are drawn deterministically from their index.
The model index doubles as a timbre-class label. Colour differences (brightness ±10 %, tilt ±0.1,
body peaks ≤ ±3.5 dB) are kept smaller than the effect of touch and velocity on the hammer spectrum,
so performance cues dominate the piano's own colour, as with real instruments of one class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

A0: int = 21
C8: int = 108


@dataclass(frozen=True)
class PianoModel:
    """Constants of one piano.

    Attributes:
        name: human name.
        b_low, b_high: inharmonicity coefficient B at A0 and at C8 (f_k = k f0 sqrt(1 + B k²)).
        decay_scale: multiplies every decay time (>1 = longer sustain).
        fast_weight: share (0–1) of the fast component of the two-stage decay.
        brightness: multiplies the hammer-felt cutoff frequency (>1 = brighter).
        spectral_tilt: exponent of the 1/k^tilt partial amplitude roll-off.
        detune_cents: detuning between unison strings (beating).
        hammer_noise: level of the hammer/thump noise relative to the tone.
        body: (frequency Hz, gain dB, Q) resonances applied to the whole mix.
        sympathetic: level of sympathetic string resonance with the pedal down.
        damper_tau: seconds, e-folding time of the damper release at middle C.
    """

    name: str
    b_low: float
    b_high: float
    decay_scale: float
    fast_weight: float
    brightness: float
    spectral_tilt: float
    detune_cents: float
    hammer_noise: float
    body: tuple[tuple[float, float, float], ...]
    sympathetic: float
    damper_tau: float

    def inharmonicity(self, pitch: int) -> float:
        """B at MIDI ``pitch`` (log-linear between A0 and C8)."""
        x = (np.clip(pitch, A0, C8) - A0) / (C8 - A0)
        return float(np.exp(np.log(self.b_low) * (1 - x) + np.log(self.b_high) * x))


BUILTIN: tuple[PianoModel, ...] = (
    PianoModel("concert_grand", 1.5e-4, 1.2e-2, 1.25, 0.55, 1.00, 1.02, 0.8, 0.04,
               ((110.0, 2.0, 1.2), (480.0, 1.5, 1.5), (2800.0, 1.0, 2.0)), 0.05, 0.10),
    PianoModel("bright_grand", 2.0e-4, 1.6e-2, 1.05, 0.60, 1.10, 0.95, 1.0, 0.06,
               ((150.0, 0.5, 1.0), (1200.0, 1.5, 1.2), (4200.0, 2.5, 1.5)), 0.04, 0.08),
    PianoModel("warm_grand", 1.2e-4, 9.0e-3, 1.35, 0.45, 0.93, 1.10, 0.6, 0.03,
               ((90.0, 2.5, 1.0), (300.0, 2.0, 1.2), (3000.0, -2.0, 1.0)), 0.07, 0.12),
    PianoModel("upright", 5.0e-4, 2.5e-2, 0.75, 0.70, 1.03, 1.00, 1.6, 0.08,
               ((220.0, 2.5, 2.5), (700.0, 2.0, 3.0), (2000.0, 1.0, 2.0)), 0.03, 0.07),
    PianoModel("old_upright", 7.0e-4, 3.0e-2, 0.60, 0.75, 0.96, 1.06, 3.0, 0.10,
               ((180.0, 3.0, 3.0), (900.0, 2.5, 4.0), (2500.0, -2.5, 1.0)), 0.02, 0.06),
    PianoModel("baby_grand", 3.0e-4, 2.0e-2, 0.95, 0.60, 1.05, 1.02, 1.2, 0.05,
               ((200.0, -2.0, 1.0), (1000.0, 3.0, 2.0), (5000.0, 2.0, 1.5)), 0.045, 0.09),
    PianoModel("dark_hall_grand", 1.0e-4, 8.0e-3, 1.45, 0.40, 0.90, 1.15, 0.5, 0.02,
               ((60.0, 1.5, 0.7), (420.0, 3.5, 1.5), (1400.0, -3.0, 1.0)), 0.08, 0.13),
)
"""Seven hand-voiced models; their index is the timbre-class label."""

N_BUILTIN: int = len(BUILTIN)


def piano_model(index: int) -> PianoModel:
    """Model ``index`` (0..6 built in; larger indices are drawn deterministically from the index).

    Raises:
        ValueError: negative index.
    """
    if index < 0:
        raise ValueError(f"piano model index must be >= 0, got {index}")
    if index < N_BUILTIN:
        return BUILTIN[index]
    rng = np.random.default_rng(1_000_003 + index)
    body = tuple(
        (float(f), float(rng.uniform(-2.5, 3)), float(rng.uniform(0.8, 3.5)))
        for f in sorted(rng.uniform([70, 250, 1500], [250, 1200, 5000]))
    )
    return PianoModel(
        f"model_{index}", float(10 ** rng.uniform(-4.1, -3.2)), float(10 ** rng.uniform(-2.2, -1.5)),
        float(rng.uniform(0.6, 1.5)), float(rng.uniform(0.4, 0.75)), float(rng.uniform(0.9, 1.12)),
        float(rng.uniform(0.95, 1.15)), float(rng.uniform(0.4, 3.0)), float(rng.uniform(0.02, 0.1)),
        body, float(rng.uniform(0.02, 0.08)), float(rng.uniform(0.06, 0.13)),
    )


def brightness_score(model: PianoModel) -> float:
    """A 0–1 summary of how bright the model sounds (used by the label model's timbre dims)."""
    return float(np.clip((model.brightness - 0.9) / 0.2 * 0.7 + (1.15 - model.spectral_tilt) / 0.2 * 0.3,
                         0.0, 1.0))


def depth_score(model: PianoModel) -> float:
    """A 0–1 summary of how rich/deep the model sounds (long sustain, strong low body)."""
    low_body = sum(g for f, g, _ in model.body if f < 400) / 8.0
    return float(np.clip(0.6 * (model.decay_scale - 0.6) / 0.85 + 0.4 * np.clip(low_body, 0, 1), 0, 1))
