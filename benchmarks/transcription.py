"""Benchmark: the two transcribers side by side on our renders of real performance MIDI, and the bar
grid from the notes beside the chroma-DTW grid.

For each item (ASAP performances, first ``--seconds`` of music; PercePiano segments), the performance
MIDI is rendered with the project's synthesiser (``crescendai.synth``: pianos rotated, room channel),
and its notes are the ground truth:

- **transcription**, per transcriber: onset precision / recall / F1 (``mir_eval.transcription``,
  ±50 ms, pitch ±50 cents, offsets ignored), velocity r (Pearson, MIDI velocity against the
  transcriber's, over onset-matched notes), and speed as × real time (audio seconds per wall second,
  the model already loaded; ``torch`` / onnxruntime on the threads given).
- **bar grid** (ASAP, whose performances carry downbeat annotations): the score's annotated
  downbeats mapped into the recording by the chroma-DTW warp of ``crescendai.tutor.bars`` and by the
  note-corrected warp of ``crescendai.tutor.note_check`` (Basic Pitch's notes), against the
  performance's annotated downbeats: median and 90th-percentile absolute error in seconds.
- **findings**: the note-level findings the check gives on these renders of human performances (a
  performer may truly rush a bar, ornament or miss a note, so these are not all false), per minute;
  and the **false alarms**: its findings on renders of the score itself, as written (the warp there
  is the known identity), per minute.

    uv run python benchmarks/transcription.py --asap ../shared/datasets/asap \\
        --percepiano ../shared/datasets/percepiano [--items 8] [--seconds 30] [--transkun-items 3]

Prints a table per item, then the pooled figures side by side, then ``name, value`` lines.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np


def asap_items(root: Path, n: int, seed: int) -> list[dict]:
    """``n`` ASAP performances, one per piece, drawn with ``seed`` (rows of metadata.csv)."""
    with open(root / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_piece: dict[str, dict] = {}
    for r in rows:
        by_piece.setdefault(r["folder"], r)
    pieces = sorted(by_piece)
    pick = np.random.default_rng(seed).choice(len(pieces), size=min(n, len(pieces)), replace=False)
    return [by_piece[pieces[i]] for i in sorted(pick)]


def read_downbeats(path: Path) -> np.ndarray:
    """Downbeat times (s) of an ASAP annotation file (tab-separated: time, time, label)."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2].startswith("db"):
            out.append(float(parts[0]))
    return np.asarray(out)


def render(perf, piano: int, name: str) -> np.ndarray:
    from crescendai.core.config import RenderParams
    from crescendai.synth.render import choose_channel, render_audio

    s = RenderParams()
    return render_audio(perf, piano, choose_channel(0, name, "room", s), 22050, 1, 0.5, s.trim_silence_db)


def notes_of(perf):
    from crescendai.tutor.transcribe import Notes

    return Notes.from_midi_rows([(n.onset_sec, n.offset_sec, n.pitch, n.velocity) for n in perf.notes])


def transcription_scores(ref, est) -> dict[str, float]:
    import mir_eval

    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref.intervals, ref.hz, est.intervals, est.hz, offset_ratio=None)
    pairs = mir_eval.transcription.match_notes(ref.intervals, ref.hz, est.intervals, est.hz,
                                               offset_ratio=None)
    vel = (np.array([ref.velocity[i] for i, _ in pairs]), np.array([est.velocity[j] for _, j in pairs]))
    return {"P": p, "R": r, "F1": f, "vel_ref": vel[0], "vel_est": vel[1]}


def timed_transcribe(y: np.ndarray, name: str) -> tuple[object, float]:
    from crescendai.tutor.transcribe import transcribe

    t = time.perf_counter()
    notes = transcribe(y, 22050, name)
    return notes, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--asap", type=Path, help="ASAP root (metadata.csv, performance MIDI, annotations)")
    ap.add_argument("--percepiano", type=Path, help="PercePiano root (virtuoso/data/all_2rounds/*.mid)")
    ap.add_argument("--items", type=int, default=8, help="items per corpus (default 8)")
    ap.add_argument("--seconds", type=float, default=30.0, help="music per ASAP item (default 30 s)")
    ap.add_argument("--transkun-items", type=int, default=3,
                    help="items per corpus also transcribed by transkun (slow on a CPU; 0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", action="store_true", help="print every note finding")
    args = ap.parse_args()
    if not args.asap and not args.percepiano:
        ap.error("give --asap and/or --percepiano (the corpora's roots)")

    import tempfile

    import soundfile as sf
    import torch

    from crescendai.core.midi import Note, Performance, read_midi
    from crescendai.synth.render import prepare_external
    from crescendai.tutor import bars as B
    from crescendai.tutor import note_check as nc
    from crescendai.tutor.frontend import read_recording
    from crescendai.tutor.transcribe import Notes, available, transcribe

    def features_of(y: np.ndarray):
        """The tutor's one pass over ``y`` (written to a temporary WAV, as a user's file would be)."""
        with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
            sf.write(tmp.name, y, 22050)
            return read_recording(tmp.name, chroma=True, keep_audio=True)

    torch.set_num_threads(2)
    names = ["basic-pitch"] + (["transkun"] if args.transkun_items > 0 and available("transkun") else [])
    for name in names:  # load each model once, outside the timings
        timed_transcribe(np.zeros(22050, np.float32), name)
    results: dict[str, list[dict]] = {n: [] for n in names}
    grid_err: dict[str, list[np.ndarray]] = {"chroma DTW": [], "notes": []}
    findings, minutes = 0, 0.0
    kinds: dict[str, int] = {}
    false_alarms, plain_minutes = 0, 0.0
    jobs: list[tuple[str, Path, dict]] = []
    if args.asap:
        jobs += [("asap", args.asap, r) for r in asap_items(args.asap, args.items, args.seed)]
    if args.percepiano:
        mids = sorted((args.percepiano / "virtuoso" / "data" / "all_2rounds").glob("*.mid"))
        pick = np.random.default_rng(args.seed).choice(len(mids), size=min(args.items, len(mids)), replace=False)
        jobs += [("percepiano", mids[i], {}) for i in sorted(pick)]
    print(f"{'item':<48} {'sec':>5} " + " ".join(f"{n + ' F1':>15} {'×RT':>6}" for n in names)
          + f" {'bar err DTW':>11} {'notes':>6}")
    count = {"asap": 0, "percepiano": 0}
    for k, (corpus, root, row) in enumerate(jobs):
        path = root / row["midi_performance"] if corpus == "asap" else root
        raw = read_midi(path)
        first = min(n.onset_sec for n in raw.notes)
        perf = prepare_external(raw, max_duration_sec=args.seconds if corpus == "asap" else 0.0)
        y = render(perf, k % 7, path.stem)
        dur = len(y) / 22050
        ref = notes_of(perf)
        cells = []
        for name in names:
            if name == "transkun" and count[corpus] >= args.transkun_items:
                cells.append(f"{'':>15} {'':>6}")
                continue
            est, sec = timed_transcribe(y, name)
            sc = transcription_scores(ref, est)
            sc["xrt"] = dur / sec
            results[name].append(sc)
            cells.append(f"{sc['F1']:>15.3f} {sc['xrt']:>6.1f}")
        count[corpus] += 1
        err_cells = f"{'':>11} {'':>6}"
        if corpus == "asap":
            shift = 0.2 - first
            perf_db = read_downbeats(root / row["performance_annotations"]) + shift
            score_db = read_downbeats(root / row["midi_score_annotations"])
            m = min(len(perf_db), len(score_db))
            keep = perf_db[:m] < dur - 0.5
            perf_db, score_db = perf_db[:m][keep], score_db[:m][keep]
            if len(score_db) >= 3:
                smidi = read_midi(root / row["midi_score"])
                end = score_db[-1] + (score_db[-1] - score_db[-2])
                snotes = np.array([[n.onset_sec, min(n.offset_sec, end), n.pitch, n.velocity]
                                   for n in smidi.notes if n.onset_sec < end], float)
                score = B.Score(notes=snotes, bar_sec=np.append(score_db, end), meter=B.Meter(),
                                end_sec=float(snotes[:, 1].max()))
                feats = features_of(y)
                try:
                    grid = B.align_to_score(feats, score, min_match=0.0)
                except B.ScoreError as err:
                    print(f"  {path.stem}: alignment failed ({err})")
                    continue
                est = transcribe(feats.audio, 22050, "basic-pitch")
                notes_of_score = Notes.from_midi_rows(snotes)
                chk = nc.check_notes(notes_of_score, score.bar_sec, 4.0, est, grid.warp, dur, "basic-pitch")
                e_dtw = np.abs(np.interp(score_db, grid.warp[:, 0], grid.warp[:, 1]) - perf_db)
                e_notes = np.abs(np.interp(score_db, chk.warp[:, 0], chk.warp[:, 1]) - perf_db)
                grid_err["chroma DTW"].append(e_dtw)
                grid_err["notes"].append(e_notes)
                findings += len(chk.findings)
                for f in chk.findings:
                    kinds[f.kind] = kinds.get(f.kind, 0) + 1
                    if args.verbose:
                        print(f"    {path.stem}: {f.text}")
                # the score itself, rendered as written: every finding there is a false alarm
                plain = prepare_external(Performance([Note(a, b, int(p), int(v)) for a, b, p, v in snotes]))
                lead = min(n.onset_sec for n in plain.notes) - snotes[:, 0].min()
                y2 = render(plain, k % 7, path.stem + "-score")
                feats2 = features_of(y2)
                chk2 = nc.check_notes(notes_of_score, score.bar_sec, 4.0,
                                      transcribe(feats2.audio, 22050, "basic-pitch"),
                                      np.stack([[0.0, 1e4], [lead, 1e4 + lead]], axis=1),
                                      len(y2) / 22050, "basic-pitch")
                false_alarms += len(chk2.findings)
                plain_minutes += len(y2) / 22050 / 60
                for f in chk2.findings:
                    if args.verbose:
                        print(f"    {path.stem} as written: {f.text}")
                minutes += dur / 60
                err_cells = f"{np.median(e_dtw):>11.3f} {np.median(e_notes):>6.3f}"
        print(f"{corpus + ':' + path.stem[:40]:<48} {dur:>5.1f} " + " ".join(cells) + " " + err_cells, flush=True)

    print("\npooled over items (mean of per-item onset scores; velocity r over all matched notes)")
    print(f"{'transcriber':<14} {'items':>5} {'onset P':>8} {'R':>6} {'F1':>6} {'vel r':>6} {'×RT':>6}")
    lines = []
    for name in names:
        rs = results[name]
        if not rs:
            continue
        P, R, F = (float(np.mean([r[k] for r in rs])) for k in ("P", "R", "F1"))
        vr = float(np.corrcoef(np.concatenate([r["vel_ref"] for r in rs]),
                               np.concatenate([r["vel_est"] for r in rs]))[0, 1])
        xrt = float(np.median([r["xrt"] for r in rs]))
        print(f"{name:<14} {len(rs):>5} {P:>8.3f} {R:>6.3f} {F:>6.3f} {vr:>6.2f} {xrt:>6.1f}")
        lines += [f"{name}_onset_f1, {F:.3f}", f"{name}_velocity_r, {vr:.3f}", f"{name}_x_real_time, {xrt:.2f}"]
    if grid_err["notes"]:
        print("\nbar grid on ASAP renders: |downbeat error| in seconds over "
              f"{sum(len(e) for e in grid_err['notes'])} downbeats")
        for name, errs in grid_err.items():
            e = np.concatenate(errs)
            print(f"  {name:<11} median {np.median(e):.3f}  p90 {np.percentile(e, 90):.3f}")
            lines += [f"bar_error_median_{name.replace(' ', '_')}, {np.median(e):.3f}"]
        print(f"note findings on the unedited renders: {findings} in {minutes:.1f} min "
              f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
        lines.append(f"note_findings_per_minute, {findings / max(minutes, 1e-9):.2f}")
        print(f"false alarms on renders of the scores as written: {false_alarms} in {plain_minutes:.1f} min")
        lines.append(f"note_false_alarms_per_minute, {false_alarms / max(plain_minutes, 1e-9):.2f}")
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
