"""Render entry points: events or a MIDI file → finished audio (piano + channel + trim).

>>> from crescendai.synth.render import render_midi_file
>>> render_midi_file("in.mid", "out.wav", piano=3)   # doctest: +SKIP

Everything here is deterministic: the channel and its noise are drawn from ``seed`` and the item name.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crescendai.core.config import RenderParams
from crescendai.core.errors import CrescendAIError
from crescendai.core.midi import Performance, read_midi
from crescendai.synth.channels import Channel, apply_channel, sample_phone, sample_room
from crescendai.synth.mixer import render_performance
from crescendai.synth.pianos import piano_model


class RenderError(CrescendAIError):
    """A MIDI file has nothing to render, or the output suffix is not .wav/.flac; the message names the file."""


def item_rng(seed: int, name: str, purpose: str) -> np.random.Generator:
    """A generator that depends only on (seed, item name, purpose)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), zlib.crc32(purpose.encode())])


def choose_channel(seed: int, name: str, kind: str, s: RenderParams) -> Channel:
    """The channel of item ``name``: ``kind`` "room" (RT60 in the settings' range) or "phone"."""
    rng = item_rng(seed, name, "channel")
    if kind == "phone":
        return sample_phone(rng)
    return sample_room(rng, s.rt60_min, s.rt60_max, s.noise_db)


def trim_silence(y: np.ndarray, sr: int, threshold_db: float, keep_sec: float = 0.25) -> np.ndarray:
    """Cut the silent tail: everything after the last 20 ms frame within ``threshold_db`` of the
    loudest frame, plus ``keep_sec``. Never returns less than one frame."""
    hop = max(1, int(0.02 * sr))
    n = len(y) // hop
    if n < 2:
        return y
    rms = np.sqrt(np.mean(y[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-20)
    db = 20 * np.log10(rms / rms.max())
    loud = np.flatnonzero(db > threshold_db)
    end = (int(loud[-1]) + 1) * hop + int(keep_sec * sr) if len(loud) else hop
    return y[: min(len(y), max(end, hop))]


def render_audio(
    perf: Performance,
    piano: int,
    channel: Channel,
    sr: int,
    noise_seed: int,
    touch: float = 0.5,
    trim_silence_db: float | None = -60.0,
) -> np.ndarray:
    """Piano (+ silent-tail trim of the dry sound, ``trim_silence_db`` re. its loudest 20 ms frame, then
    0.5 s kept) + channel. Returns float32 [n] in [-1, 1]."""
    dry = render_performance(perf, piano_model(piano), sr=sr, touch=touch)
    if trim_silence_db is not None:  # on the dry signal: the channel's noise floor would hide the tail
        dry = trim_silence(dry, sr, trim_silence_db, keep_sec=0.5)
    return apply_channel(dry, channel, sr, noise_seed)


def trim_performance_start(perf: Performance, lead_sec: float = 0.2) -> Performance:
    """Shift so the first note starts at ``lead_sec`` (real MIDI files often begin with silence);
    earlier pedal events are clamped to 0."""
    if not perf.notes:
        return perf
    first = min(n.onset_sec for n in perf.notes)
    shifted = perf.shifted(lead_sec - first)
    from crescendai.core.midi import PedalEvent

    shifted.pedal = [PedalEvent(max(0.0, e.time_sec), e.value) for e in shifted.pedal]
    return shifted


MAX_TAIL_SEC: float = 3.0
"""Sound kept after the last note onset of external MIDI (held notes and pedal are cut there)."""


def crop_performance(perf: Performance, end_sec: float) -> Performance:
    """Keep what sounds before ``end_sec``: notes with onsets before it (offsets clipped to it) and
    pedal events before it; a pedal still down at ``end_sec`` is lifted there."""
    from crescendai.core.midi import Note, PedalEvent

    notes = [Note(n.onset_sec, min(n.offset_sec, end_sec), n.pitch, n.velocity)
             for n in perf.notes if n.onset_sec < end_sec]
    notes = [n for n in notes if n.offset_sec > n.onset_sec]
    pedal = [e for e in perf.pedal if e.time_sec < end_sec]
    if pedal and pedal[-1].down:
        pedal.append(PedalEvent(end_sec, 0))
    return Performance(notes, pedal, perf.source)


def prepare_external(perf: Performance, max_duration_sec: float = 0.0, max_tail_sec: float = MAX_TAIL_SEC,
                     lead_sec: float = 0.2) -> Performance:
    """Normalise external MIDI for rendering: first note at ``lead_sec``, onsets limited to the first
    ``max_duration_sec`` seconds of music (0 = no limit), nothing held beyond ``max_tail_sec`` after
    the last kept onset (silent tails: held final chords, trailing pedal events).

    Raises:
        ValueError: no notes.
    """
    if not perf.notes:
        raise RenderError(f"{perf.source or '<midi>'}: no notes to render")
    p = trim_performance_start(perf, lead_sec)
    if max_duration_sec > 0:
        p = crop_performance(p, lead_sec + max_duration_sec)
    end = max(n.onset_sec for n in p.notes) + max_tail_sec
    return crop_performance(p, end) if p.end_sec > end else p


def write_audio(path: str | os.PathLike[str], y: np.ndarray, sr: int) -> None:
    """Atomically write mono PCM_16 audio; the format follows the suffix (.flac or .wav)."""
    import soundfile as sf

    from crescendai.core.files import atomic_write

    p = Path(path)
    fmt = {".flac": "FLAC", ".wav": "WAV"}.get(p.suffix.lower())
    if fmt is None:
        raise RenderError(f"{p}: unsupported audio suffix (use .wav or .flac)")
    with atomic_write(p, "wb") as f:
        sf.write(f, np.clip(y, -1.0, 1.0), sr, subtype="PCM_16", format=fmt)


def render_midi_file(
    midi_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    piano: int = 0,
    sr: int = 22050,
    channel: str = "room",
    seed: int = 0,
    settings: RenderParams | None = None,
) -> float:
    """Render any MIDI file (CC64 honoured; leading and trailing silence trimmed) to ``out_path``.

    Returns the duration in seconds. Raises :class:`crescendai.core.midi.MidiError` on unreadable MIDI and
    ``ValueError`` on an empty file or a bad suffix.
    """
    s = settings or dataclasses.replace(RenderParams(), sample_rate=sr)
    perf = read_midi(midi_path)
    if not perf.notes:
        raise RenderError(f"{midi_path}: no notes to render")
    perf = prepare_external(perf)
    name = Path(midi_path).stem
    ch = choose_channel(seed, name, channel, s)
    y = render_audio(perf, piano, ch, sr, zlib.crc32(f"{seed}:{name}:noise".encode()), 0.5, s.trim_silence_db)
    write_audio(out_path, y, sr)
    return len(y) / sr


@dataclass(frozen=True)
class RenderJob:
    """One file to render: MIDI in, audio out, the item name (seeds its channel), piano, channel kind
    ("room" | "phone"), touch, whether it is external MIDI (``trim_start``: first note to 0.2 s,
    silent tail cut, :func:`prepare_external`) and, for external MIDI, the crop length in seconds
    (``max_duration_sec``, 0 = whole)."""

    midi_path: str
    out_path: str
    name: str
    piano: int
    channel: str
    touch: float
    trim_start: bool
    max_duration_sec: float = 0.0


def _run_job(args: tuple[RenderJob, int, RenderParams]) -> dict:
    job, seed, s = args
    perf = read_midi(job.midi_path)
    if not perf.notes:
        raise RenderError(f"{job.midi_path}: no notes to render")
    if job.trim_start:
        perf = prepare_external(perf, job.max_duration_sec)
    ch = choose_channel(seed, job.name, job.channel, s)
    noise_seed = zlib.crc32(f"{seed}:{job.name}:noise".encode())
    y = render_audio(perf, job.piano % max(s.n_pianos, 1) if job.trim_start else job.piano, ch, s.sample_rate,
                     noise_seed, job.touch, s.trim_silence_db)
    write_audio(job.out_path, y, s.sample_rate)
    return {"name": job.name, "midi_path": job.midi_path, "path": job.out_path, "piano": job.piano,
            "channel": ch.kind, "channel_params": ch.to_dict(), "sample_rate": s.sample_rate,
            "duration_sec": round(len(y) / s.sample_rate, 4)}


def render_jobs(jobs: list[RenderJob], seed: int, s: RenderParams, workers: int = 1,
                desc: str = "render") -> list[dict]:
    """Render ``jobs`` (in parallel when ``workers > 1``); return ``render.jsonl`` records in job order.

    Jobs are grouped by piano so each worker's note cache is reused; results do not depend on the
    number of workers.
    """
    from tqdm import tqdm

    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].piano, i))
    args = [(jobs[i], seed, s) for i in order]
    results: list[dict] = [{}] * len(jobs)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        with ctx.Pool(workers) as pool:
            it = pool.imap(_run_job, args, chunksize=max(1, len(args) // (workers * 8)))
            for i, rec in zip(order, tqdm(it, total=len(args), desc=desc, unit="file"), strict=True):
                results[i] = rec
    else:
        for i, a in zip(order, tqdm(args, desc=desc, unit="file"), strict=True):
            results[i] = _run_job(a)
    return results
