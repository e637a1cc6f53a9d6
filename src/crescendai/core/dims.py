"""The 19 perceptual dimensions of PercePiano: order, keys, poles and feedback wording.

This is the one table the rest of the package reads. Labels live on PercePiano's scale: the mean of
1–7 ratings divided by 7, so every label is in ``[1/7, 1]``; ``low`` is the pole rated 1 and
``high`` the pole rated 7.

``problem_pole`` says which end a teacher would call "needs work": ``"high"`` (e.g. unstable timing,
blurred pedal), ``"low"`` (e.g. unconvincing interpretation, disproportioned balance) or ``None``
for dimensions that are a matter of character rather than quality (dark mood is not a fault).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Pole = Literal["low", "high"]

LABEL_MIN: float = 1.0 / 7.0
"""Smallest possible label (every rater chose 1)."""
LABEL_MAX: float = 1.0
"""Largest possible label (every rater chose 7)."""


@dataclass(frozen=True)
class Dimension:
    """One PercePiano dimension.

    Attributes:
        index: position 0..18 in PercePiano order (the label vector order).
        key: snake_case identifier used in files and metrics.
        name: short human name used in feedback ("timing stability").
        group: PercePiano category (timing, articulation, pedal, timbre, dynamics, music making,
            mood, interpretation).
        low: wording of the pole rated 1.
        high: wording of the pole rated 7.
        problem_pole: the pole that "needs work", or None when neither pole is a fault.
        subjective: True for dimensions a teacher should word cautiously (mood, imagination,
            interpretation).
        advice: a concrete practice suggestion used when this dimension needs work.
    """

    index: int
    key: str
    name: str
    group: str
    low: str
    high: str
    problem_pole: Pole | None
    subjective: bool
    advice: str


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension(0, "timing", "timing stability", "timing", "stable", "unstable", "high", False,
              "practise the passage with a metronome at a slower tempo, then bring it back up"),
    Dimension(1, "articulation_length", "articulation length", "articulation", "short", "long",
              None, False, "decide where notes connect and where they breathe, and mark it in the score"),
    Dimension(2, "articulation_touch", "touch", "articulation", "soft / cushioned", "hard / solid",
              "high", False, "play from the key surface with a relaxed wrist to soften the attack"),
    Dimension(3, "pedal_amount", "pedal amount", "pedal", "sparse / dry", "saturated / wet", "high",
              False, "use less pedal: try half-pedal and lift it more often"),
    Dimension(4, "pedal_clarity", "pedal clarity", "pedal", "clean", "blurred", "high", False,
              "change the pedal exactly with each harmony change (legato pedalling)"),
    Dimension(5, "timbre_variety", "timbre variety", "timbre", "even", "colourful", "low", False,
              "experiment with different touches and voicings for the same phrase"),
    Dimension(6, "timbre_depth", "tone depth", "timbre", "shallow", "rich", "low", False,
              "play deeper into the key with arm weight for a fuller tone"),
    Dimension(7, "timbre_brightness", "brightness", "timbre", "bright", "dark", None, False,
              "listen to the colour you want and adjust how fast the key goes down"),
    Dimension(8, "timbre_loudness", "loudness", "timbre", "soft", "loud", None, False,
              "check the dynamic markings and scale your sound to them"),
    Dimension(9, "dynamic_sophistication", "dynamic control", "dynamics", "sophisticated / mellow",
              "raw / crude", "high", False,
              "shape each phrase with a planned crescendo and diminuendo instead of sudden jumps"),
    Dimension(10, "dynamic_range", "dynamic range", "dynamics", "little", "large", "low", False,
              "widen the contrast between your softest and loudest playing"),
    Dimension(11, "pace", "pace", "music making", "fast paced", "slow paced", None, False,
              "choose a tempo that lets the music breathe and keep it consistent"),
    Dimension(12, "spacing", "spacing", "music making", "flat", "spacious", "low", False,
              "give phrase endings and important notes a little more time"),
    Dimension(13, "balance", "balance", "music making", "disproportioned", "balanced", "low", False,
              "bring out the melody and keep the accompaniment softer; practise hands separately"),
    Dimension(14, "drama", "drama", "music making", "pure", "dramatic / expressive", None, True,
              "decide where the emotional high point is and build towards it"),
    Dimension(15, "mood_valence", "mood", "mood", "optimistic / pleasant", "dark", None, True,
              "think about the character you want and let it guide touch and tempo"),
    Dimension(16, "mood_energy", "energy", "mood", "low energy", "high energy", None, True,
              "decide where the music should drive forward and where it should rest"),
    Dimension(17, "mood_imagination", "imagination", "mood", "honest", "imaginative", None, True,
              "try the phrase in several characters and keep the one that speaks most"),
    Dimension(18, "interpretation", "interpretation", "interpretation",
              "unsatisfactory / doubtful", "convincing", "low", True,
              "listen to a recording of yourself and ask what story the passage tells"),
)

N_DIMS: int = len(DIMENSIONS)
KEYS: tuple[str, ...] = tuple(d.key for d in DIMENSIONS)
_BY_KEY: dict[str, Dimension] = {d.key: d for d in DIMENSIONS}


def by_key(key: str) -> Dimension:
    """Return the dimension called ``key``; raise ``KeyError`` naming the valid keys otherwise."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown dimension {key!r}; valid keys: {', '.join(KEYS)}") from None


def problem_direction(dim: Dimension) -> int:
    """+1 when a higher label is worse, -1 when a lower label is worse, 0 when neither pole is a fault."""
    return {"high": 1, "low": -1, None: 0}[dim.problem_pole]


def rating_to_label(rating: float) -> float:
    """Map a 1–7 rating (or a mean of ratings) to PercePiano's label scale ``rating / 7``."""
    if not 1.0 <= rating <= 7.0:
        raise ValueError(f"rating must be in [1, 7], got {rating}")
    return rating / 7.0


def label_to_rating(label: float) -> float:
    """Inverse of :func:`rating_to_label`: label in [1/7, 1] → rating in [1, 7]."""
    return label * 7.0


assert N_DIMS == 19 and [d.index for d in DIMENSIONS] == list(range(19))
