"""Procedural classical-style material: keys, metres, harmony, phrases and four textures.

A :class:`Piece` is a score in quarter-note time: notes (onset, duration, pitch, role), the
harmony-change positions, bar length and phrase length. Textures:

- ``scales``   — right-hand scale runs in 16ths (8ths in 6/8), left-hand roots and fifths;
- ``arpeggio`` — right-hand broken-chord arpeggios over two octaves, left-hand bass notes;
- ``melody``   — a stepwise melody (chord tones on strong beats, phrase-final long notes) over an
  Alberti bass (2/4, 4/4), a waltz bass (3/4) or broken 8ths (6/8);
- ``chorale``  — four-voice block chords, one per beat, with nearest-tone voice leading.

Harmony is a functional Markov chain (I → IV/V/vi/ii …) starting on the tonic, with a half cadence
(… V) at the end of odd phrases and an authentic cadence (V I) at the end of even/last phrases.
Major and (harmonic-)minor keys, metres 2/4, 3/4, 4/4, 6/8. Everything is a pure function of the RNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEY_NAMES: tuple[str, ...] = ("C", "Cs", "D", "Eb", "E", "F", "Fs", "G", "Ab", "A", "Bb", "B")
MODES: tuple[str, ...] = ("major", "minor")
METERS: dict[str, tuple[int, int]] = {"2/4": (2, 4), "3/4": (3, 4), "4/4": (4, 4), "6/8": (6, 8)}
TEXTURES: tuple[str, ...] = ("scales", "arpeggio", "melody", "chorale")
ROLES: tuple[str, ...] = ("melody", "accomp", "bass")

_SCALE = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
_NEXT = {  # functional harmony: degree → (next degrees, weights)
    0: ((3, 4, 5, 1, 0), (3, 3, 2, 2, 1)),
    1: ((4, 6), (4, 1)),
    2: ((5, 3), (1, 1)),
    3: ((4, 0, 1), (3, 2, 2)),
    4: ((0, 5), (4, 1)),
    5: ((1, 3, 4), (2, 2, 1)),
    6: ((0,), (1,)),
}


@dataclass(frozen=True)
class ScoreNote:
    """A note of the score: onset and duration in quarter notes, MIDI pitch, role (melody/accomp/bass)."""

    onset_q: float
    dur_q: float
    pitch: int
    role: str


@dataclass(frozen=True)
class Piece:
    """A procedurally composed piece.

    Attributes:
        work: work name (used in segment names), e.g. ``Synth_C_major_chorale_03``.
        key: tonic name from :data:`KEY_NAMES`; mode: "major" | "minor".
        texture: one of :data:`TEXTURES`; meter: one of :data:`METERS` ("3/4").
        n_bars: number of bars; phrase_bars: bars per phrase.
        tempo_bpm: the notated tempo, quarter notes per minute.
        notes: the score notes, sorted by onset.
        harmony_q: onsets (quarters) of every harmony change, starting at 0.
    """

    work: str
    key: str
    mode: str
    texture: str
    meter: str
    n_bars: int
    phrase_bars: int
    tempo_bpm: float
    notes: tuple[ScoreNote, ...]
    harmony_q: tuple[float, ...]

    @property
    def bar_q(self) -> float:
        """Bar length in quarter notes."""
        num, den = METERS[self.meter]
        return num * 4.0 / den

    @property
    def beat_q(self) -> float:
        """Beat length in quarter notes (1.5 in 6/8: the dotted quarter)."""
        return 1.5 if self.meter == "6/8" else 1.0

    @property
    def length_q(self) -> float:
        return self.n_bars * self.bar_q


def _pitch(key_pc: int, mode: str, idx: int, raise7: bool = False) -> int:
    """Absolute scale-degree index (7 per octave, 0 = tonic in octave -1) → MIDI pitch."""
    deg = idx % 7
    p = 12 * (idx // 7) + _SCALE[mode][deg] + key_pc
    if raise7 and mode == "minor" and deg == 6:
        p += 1
    return int(np.clip(p, 21, 108))


def _chord_idx(degree: int, lo: int, hi: int, key_pc: int, mode: str) -> list[int]:
    """Scale-degree indices of the triad on ``degree`` whose pitches lie in [lo, hi]."""
    out = []
    for idx in range(0, 80):
        if (idx - degree) % 7 in (0, 2, 4) and lo <= _pitch(key_pc, mode, idx) <= hi:
            out.append(idx)
    return out


def _progression(rng: np.random.Generator, n: int, cadence: str) -> list[int]:
    """``n`` chord degrees starting on I, ending with a half ("half") or authentic ("full") cadence."""
    chords = [0]
    while len(chords) < n:
        nxt, w = _NEXT[chords[-1]]
        w = np.asarray(w, dtype=float)
        chords.append(int(rng.choice(nxt, p=w / w.sum())))
    if n >= 2:
        if cadence == "full":
            chords[-2:] = [4, 0]
        else:
            chords[-1] = 4
    return chords[:n]


def _nearest(options: list[int], target: float) -> int:
    return min(options, key=lambda o: (abs(o - target), o))


def make_piece(
    rng: np.random.Generator,
    work: str,
    key: str,
    mode: str,
    texture: str,
    meter: str,
    n_bars: int,
    tempo_bpm: float,
) -> Piece:
    """Compose a piece.

    Args:
        rng: the random source (the piece is a pure function of its state and the arguments).
        work: its work name. key/mode/texture/meter: see :data:`KEY_NAMES`, :data:`MODES`, ...
        n_bars: bars (≥ 1). tempo_bpm: notated tempo in quarter notes per minute.
    """
    if texture not in TEXTURES or meter not in METERS or mode not in MODES or key not in KEY_NAMES:
        raise ValueError(f"unknown texture/meter/mode/key: {texture}, {meter}, {mode}, {key}")
    kpc = KEY_NAMES.index(key)
    num, den = METERS[meter]
    bar_q = num * 4.0 / den
    beat_q = 1.5 if meter == "6/8" else 1.0
    beats_per_bar = int(round(bar_q / beat_q))
    phrase_bars = 4 if n_bars >= 4 else n_bars
    # harmony slots
    per_bar = beats_per_bar if texture == "chorale" else (2 if meter == "4/4" and rng.random() < 0.5 else 1)
    slot_q = bar_q / per_bar
    harmony: list[int] = []
    n_phrases = int(np.ceil(n_bars / phrase_bars))
    for ph in range(n_phrases):
        bars = min(phrase_bars, n_bars - ph * phrase_bars)
        cad = "full" if (ph % 2 == 1 or ph == n_phrases - 1) else "half"
        harmony += _progression(rng, bars * per_bar, cad)
    harmony_q = [i * slot_q for i in range(len(harmony))]
    notes: list[ScoreNote] = []

    def chord_at(q: float) -> int:
        return harmony[min(int(q // slot_q), len(harmony) - 1)]

    def add(onset: float, dur: float, idx: int, role: str, chord: int) -> None:
        notes.append(ScoreNote(round(onset, 6), round(dur, 6), _pitch(kpc, mode, idx, chord in (4, 6)), role))

    def phrase_end(q: float) -> bool:
        bar = int(q // bar_q)
        return (bar + 1) % phrase_bars == 0 or bar == n_bars - 1

    if texture == "chorale":
        ranges = {"bass": (38, 55), "tenor": (48, 64), "alto": (55, 71), "soprano": (62, 79)}
        prev = {v: (lo + hi) / 2 for v, (lo, hi) in ranges.items()}
        for i, ch in enumerate(harmony):
            q = i * slot_q
            for voice, (lo, hi) in ranges.items():
                opts = _chord_idx(ch, lo, hi, kpc, mode)
                if voice == "bass":
                    opts = [o for o in opts if (o - ch) % 7 == 0] or opts
                idx = _nearest(opts, _idx_of(prev[voice], kpc, mode))
                prev[voice] = _pitch(kpc, mode, idx)
                role = {"soprano": "melody", "bass": "bass"}.get(voice, "accomp")
                add(q, slot_q, idx, role, ch)
    else:
        _right_hand(rng, texture, meter, bar_q, beat_q, n_bars, slot_q, harmony, kpc, mode, add, chord_at,
                    phrase_end)
        _left_hand(texture, meter, bar_q, n_bars, slot_q, harmony, kpc, mode, add)
    notes.sort(key=lambda n: (n.onset_q, n.pitch))
    return Piece(work, key, mode, texture, meter, n_bars, phrase_bars, float(tempo_bpm), tuple(notes),
                 tuple(harmony_q))


def _idx_of(pitch: float, kpc: int, mode: str) -> float:
    """Approximate scale-degree index of a pitch (for nearest-tone voice leading)."""
    return (pitch - kpc) / 12.0 * 7.0


def _right_hand(rng, texture, meter, bar_q, beat_q, n_bars, slot_q, harmony, kpc, mode, add, chord_at,
                phrase_end) -> None:
    if texture in ("scales", "arpeggio"):
        step = 0.5 if meter == "6/8" else 0.25
        idx = _nearest(_chord_idx(harmony[0], 60, 72, kpc, mode), _idx_of(66, kpc, mode))
        direction = 1
        q = 0.0
        while q < n_bars * bar_q - 1e-9:
            ch = chord_at(q)
            if phrase_end(q) and (q % bar_q) >= bar_q / 2:  # phrase-final long note
                opts = _chord_idx(ch, 60, 84, kpc, mode)
                idx = _nearest(opts, idx)
                dur = bar_q - q % bar_q
                add(q, dur, idx, "melody", ch)
                q += dur
                continue
            if texture == "scales":
                idx += direction
            else:
                opts = _chord_idx(ch, 55, 91, kpc, mode)
                ups = [o for o in opts if (o > idx if direction > 0 else o < idx)]
                idx = (min(ups) if direction > 0 else max(ups)) if ups else idx - direction
            p = _pitch(kpc, mode, idx)
            if p > 88 or (p > 76 and rng.random() < 0.08):
                direction = -1
            elif p < 60 or (p < 66 and rng.random() < 0.08):
                direction = 1
            add(q, step, idx, "melody", ch)
            q += step
        return
    # melody
    patterns = {
        "2/4": [(1, 1), (0.5, 0.5, 1), (1, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5)],
        "3/4": [(1, 1, 1), (2, 1), (1, 0.5, 0.5, 1), (1.5, 0.5, 1)],
        "4/4": [(1, 1, 1, 1), (2, 1, 1), (1, 0.5, 0.5, 2), (1.5, 0.5, 1, 1), (0.5, 0.5, 1, 1, 1)],
        "6/8": [(1.5, 1.5), (1, 0.5, 1.5), (0.5, 0.5, 0.5, 1.5), (1, 0.5, 1, 0.5)],
    }[meter]
    idx = _nearest(_chord_idx(harmony[0], 67, 79, kpc, mode), _idx_of(72, kpc, mode))
    for bar in range(n_bars):
        q0 = bar * bar_q
        last = (bar + 1) % 4 == 0 or bar == n_bars - 1
        rhythm = (bar_q,) if last else patterns[int(rng.integers(len(patterns)))]
        q = q0
        for d in rhythm:
            ch = harmony[min(int(q // slot_q), len(harmony) - 1)]
            strong = abs((q - q0) % beat_q) < 1e-6
            if strong or last:
                opts = _chord_idx(ch, 62, 86, kpc, mode)
                target = idx + rng.choice((-2, -1, 0, 1, 2))
                if last:
                    opts = [o for o in opts if (o - ch) % 7 == 0] or opts
                idx = _nearest(opts, target)
            else:
                idx += int(rng.choice((-1, 1)))
                if _pitch(kpc, mode, idx) > 86:
                    idx -= 2
                if _pitch(kpc, mode, idx) < 62:
                    idx += 2
            add(q, d, idx, "melody", ch)
            q += d


def _left_hand(texture, meter, bar_q, n_bars, slot_q, harmony, kpc, mode, add) -> None:
    for i, ch in enumerate(harmony):
        q0 = i * slot_q
        root = [o for o in _chord_idx(ch, 36, 52, kpc, mode) if (o - ch) % 7 == 0]
        root_idx = root[0] if root else _chord_idx(ch, 36, 55, kpc, mode)[0]
        tones = _chord_idx(ch, 48, 64, kpc, mode)[:3] or [root_idx + 7, root_idx + 9, root_idx + 11]
        low, mid, high = (tones + tones)[:3]
        if texture in ("scales", "arpeggio"):
            add(q0, slot_q, root_idx, "bass", ch)
            if texture == "scales" and slot_q >= 2:
                add(q0 + slot_q / 2, slot_q / 2, root_idx + 4, "accomp", ch)
            continue
        if meter == "3/4":
            add(q0, 1.0, root_idx, "bass", ch)
            for b in (1.0, 2.0):
                if b < slot_q:
                    for t in tones:
                        add(q0 + b, 1.0, t, "accomp", ch)
        elif meter == "6/8":
            for j, t in enumerate((root_idx, mid, high, mid, high, mid)):
                if j * 0.5 < slot_q:
                    add(q0 + j * 0.5, 0.5, t, "bass" if j == 0 else "accomp", ch)
        else:  # Alberti bass in 8ths
            seq = (low, high, mid, high)
            for j in range(int(round(slot_q / 0.5))):
                add(q0 + j * 0.5, 0.5, seq[j % 4], "bass" if j == 0 else "accomp", ch)
