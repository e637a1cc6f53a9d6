"""MIDI I/O: a ``.mid`` file ⇄ note events and sustain-pedal (CC64) events in seconds.

The one representation every corpus reader, the synthesiser and the tutor's score alignment share:

>>> perf = read_midi("take.mid")            # doctest: +SKIP
>>> perf.notes[0]                           # doctest: +SKIP
Note(onset_sec=0.51, offset_sec=0.98, pitch=60, velocity=72)
>>> write_midi("copy.mid", perf)            # doctest: +SKIP

Contract:

- times are absolute seconds from the start of the file, computed through the file's tempo map
  (every ``set_tempo`` on any track; type 0 and type 1 files; default 120 bpm);
- a note is a note-on (velocity > 0) closed by the next note-off (or note-on velocity 0) of the same
  pitch and channel; overlapping re-strikes of one pitch close the earlier note at the re-strike;
  notes still open at the end are closed at the last event time;
- pedal events are every ``control_change`` 64 (value 0–127; ≥ 64 means down);
- notes are sorted by (onset, pitch), pedal events by time.

:func:`write_midi` writes a type-0 file at 120 bpm with 960 ticks per beat (≈ 0.52 ms resolution),
so a round trip preserves times to within 1 ms.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crescendai.core.errors import CrescendAIError

TICKS_PER_BEAT: int = 960
DEFAULT_TEMPO: int = 500_000
"""µs per beat (120 bpm), MIDI's default and what :func:`write_midi` uses."""
PEDAL_CC: int = 64


class MidiError(CrescendAIError):
    """A MIDI file cannot be read or written; the message names the file and says why."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path or '<midi>'}: {reason}")


@dataclass(frozen=True)
class Note:
    """One played note. Times in seconds (``offset_sec > onset_sec``), MIDI pitch 0–127 (60 = C4),
    velocity 1–127."""

    onset_sec: float
    offset_sec: float
    pitch: int
    velocity: int

    @property
    def duration_sec(self) -> float:
        return self.offset_sec - self.onset_sec


@dataclass(frozen=True)
class PedalEvent:
    """A sustain-pedal (CC64) value change at ``time_sec``; value 0–127, ≥ 64 = pedal down."""

    time_sec: float
    value: int

    @property
    def down(self) -> bool:
        return self.value >= 64


@dataclass
class Performance:
    """A performance as note and pedal events (both sorted by time).

    Attributes:
        notes: played notes.
        pedal: sustain-pedal changes.
        source: where it was read from (informational), or None.
    """

    notes: list[Note] = field(default_factory=list)
    pedal: list[PedalEvent] = field(default_factory=list)
    source: str | None = None

    @property
    def end_sec(self) -> float:
        """Time of the last note-off or pedal event (0 for an empty performance)."""
        ends = [n.offset_sec for n in self.notes] + [p.time_sec for p in self.pedal]
        return max(ends, default=0.0)

    def pedal_down_at(self, t: float | np.ndarray) -> np.ndarray:
        """Boolean array: is the pedal down at time(s) ``t`` (seconds)?"""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if not self.pedal:
            return np.zeros(t.shape, dtype=bool)
        times = np.array([p.time_sec for p in self.pedal])
        down = np.array([p.down for p in self.pedal])
        idx = np.searchsorted(times, t, side="right") - 1
        return np.where(idx >= 0, down[np.clip(idx, 0, None)], False)

    def shifted(self, offset_sec: float) -> Performance:
        """A copy with every event moved by ``offset_sec`` (negative = earlier)."""
        return Performance(
            [Note(n.onset_sec + offset_sec, n.offset_sec + offset_sec, n.pitch, n.velocity)
             for n in self.notes],
            [PedalEvent(p.time_sec + offset_sec, p.value) for p in self.pedal],
            self.source,
        )


def onset_clusters(onsets: np.ndarray, gap_sec: float) -> np.ndarray:
    """Cluster index of each onset (chords, rolled chords): int [N], 0-based, non-decreasing.

    Args:
        onsets: float [N] onset times in seconds, sorted ascending.
        gap_sec: a new cluster starts where an onset follows the previous one by more than this.
    """
    onsets = np.asarray(onsets, dtype=np.float64)
    if onsets.size == 0:
        return np.zeros(0, dtype=int)
    return np.concatenate([[0], np.cumsum(np.diff(onsets) > gap_sec)]).astype(int)


def read_midi(path: str | os.PathLike[str]) -> Performance:
    """Read a ``.mid`` file into a :class:`Performance` (all tracks and channels merged).

    Raises:
        MidiError: the file is missing, not a Standard MIDI File, or corrupt (the message names it).
    """
    import mido

    p = Path(path)
    if not p.is_file():
        raise MidiError(p, "file not found")
    try:
        mid = mido.MidiFile(p, clip=True)
        messages = list(mid)  # merged tracks; msg.time = delta seconds through the tempo map
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as err:
        raise MidiError(p, f"not a readable Standard MIDI File ({type(err).__name__}: {err})") from None

    notes: list[Note] = []
    pedal: list[PedalEvent] = []
    open_notes: dict[tuple[int, int], tuple[float, int]] = {}
    t = 0.0
    for msg in messages:
        t += float(msg.time)
        if msg.type == "note_on" and msg.velocity > 0:
            key = (msg.channel, msg.note)
            if key in open_notes:
                on, vel = open_notes.pop(key)
                if t > on:
                    notes.append(Note(on, t, msg.note, vel))
            open_notes[key] = (t, msg.velocity)
        elif msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0):
            key = (msg.channel, msg.note)
            if key in open_notes:
                on, vel = open_notes.pop(key)
                notes.append(Note(on, max(t, on + 1e-3), msg.note, vel))
        elif msg.type == "control_change" and msg.control == PEDAL_CC:
            pedal.append(PedalEvent(t, int(msg.value)))
    for (_, pitch), (on, vel) in open_notes.items():
        notes.append(Note(on, max(t, on + 1e-3), pitch, vel))
    notes.sort(key=lambda n: (n.onset_sec, n.pitch, n.offset_sec))
    pedal.sort(key=lambda e: e.time_sec)
    return Performance(notes, pedal, str(p))


def _seconds_to_ticks(t: float) -> int:
    return int(round(t * TICKS_PER_BEAT * 1e6 / DEFAULT_TEMPO))


def write_midi(path: str | os.PathLike[str], performance: Performance) -> None:
    """Write ``performance`` as a type-0 MIDI file (120 bpm, 960 ticks/beat, channel 0), atomically.

    Negative times are clipped to 0; velocities are clipped to 1–127, pedal values to 0–127.

    Raises:
        MidiError: a note has a pitch outside 0–127.
    """
    import mido

    from crescendai.core.files import atomic_write

    events: list[tuple[int, int, mido.Message]] = []  # (tick, order, message); offs before ons
    for n in performance.notes:
        if not 0 <= n.pitch <= 127:
            raise MidiError(path, f"note pitch {n.pitch} outside 0–127")
        vel = int(np.clip(n.velocity, 1, 127))
        on = _seconds_to_ticks(max(n.onset_sec, 0.0))
        off = max(_seconds_to_ticks(max(n.offset_sec, 0.0)), on + 1)
        events.append((on, 2, mido.Message("note_on", note=int(n.pitch), velocity=vel)))
        events.append((off, 0, mido.Message("note_off", note=int(n.pitch), velocity=0)))
    for e in performance.pedal:
        tick = _seconds_to_ticks(max(e.time_sec, 0.0))
        value = int(np.clip(e.value, 0, 127))
        events.append((tick, 1, mido.Message("control_change", control=PEDAL_CC, value=value)))
    events.sort(key=lambda x: (x[0], x[1]))

    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=DEFAULT_TEMPO, time=0))
    last = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(track)
    with atomic_write(path, "wb") as f:
        mid.save(file=f)
