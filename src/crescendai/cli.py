"""The ``crescendai`` command line for people: ``analyze`` a recording, ``render`` a MIDI file.

A :class:`~crescendai.core.errors.CrescendAIError` (a file, parameter or argument the user can fix;
its message says how) is printed as one line with exit status 2. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from crescendai.core.errors import CrescendAIError


class UsageError(CrescendAIError):
    """A command-line argument is out of range or inconsistent; the message names the option."""


EXAMPLES = """examples:
  crescendai analyze take.wav
      text summary with approximate bars (beat tracking, 4/4); files in take_report/
  crescendai analyze take.flac --score piece.mid
      bars numbered as in the score (audio aligned to the score by DTW), and the notes checked
      against it bar by bar: missing, extra and wrong notes, rushed or dragged bars
  crescendai analyze take.flac --score piece.mid --transcriber transkun --device cuda
      the more accurate transcriber (onset F1 ~0.98 against ~0.7; about real time on 2 CPU cores)
  crescendai analyze take.mp3 --meter 3/4 --tempo-hint 90 --out reports/take --format html
      approximate 3/4 bars around 90 bpm; prints the path of the self-contained report.html
  crescendai analyze take.ogg --format json > report.json
      the versioned report.json on stdout

outputs in --out: report.json (schema crescendai.tutor.report v3), report.txt, report.html (plays the
recording beside it: keep the two where they are),
timeline.png (19 dimensions over time, bar numbers on the x axis), overall.png, saliency.png
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``crescendai`` parser with its subcommands."""
    from crescendai.tutor.transcribe import AUTO, TRANSCRIBERS

    parser = argparse.ArgumentParser(
        prog="crescendai",
        description="CrescendAI: an AI classical-piano tutor. Scores a recording on the 19 PercePiano "
        "dimensions and explains the scores bar by bar.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "analyze",
        help="score a recording on the 19 dimensions and give bar-level feedback",
        description="Score a piano recording on the 19 PercePiano dimensions (calibrated, with "
        "uncertainty), find the bars where a dimension needs work, and write a report.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("audio", help="the recording: wav, flac, ogg or mp3 (any sample rate, mono or stereo)")
    p.add_argument("--score", help="MIDI score of the piece (.mid); bars are then the score's")
    p.add_argument("--transcriber", default=AUTO, choices=(AUTO, *TRANSCRIBERS, "none"),
                   help="with --score: the transcriber whose notes are checked against the score "
                   "(basic-pitch: bundled ONNX model, ~60x real time on 2 cores, onset F1 ~0.7 on "
                   "renders of real performances; transkun: F1 ~0.98, about real time on 2 cores, "
                   "needs `uv sync --extra transkun`; auto (default): transkun with --device cuda "
                   "where installed, else basic-pitch; none: no note check)")
    p.add_argument("--meter", help="time signature such as 3/4 or 6/8 (default: the score's, else 4/4)")
    p.add_argument("--tempo-hint", type=float, metavar="BPM", help="approximate tempo to seed beat tracking")
    p.add_argument("--model", default="models/tutor", help="tutor bundle folder (default: models/tutor)")
    p.add_argument("--out", help="output folder (default: <audio name>_report next to the current directory)")
    p.add_argument("--format", choices=("text", "json", "html"), default="text",
                   help="what to print on stdout: the text summary (default), report.json, or the "
                   "path of report.html; every file is written to --out in any case")
    p.add_argument("--params", default="params.yaml",
                   help="parameters file for the `tutor` section (defaults used if it does not exist)")
    p.add_argument("--device", default="cpu", help="torch device for the model (cpu or cuda)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=analyze)

    p = sub.add_parser(
        "render",
        help="render a MIDI file to audio with the built-in piano synthesiser",
        description="Render a MIDI file (notes + sustain pedal CC64, tempo map honoured) to mono audio "
        "(.wav or .flac, PCM 16-bit) with one of the built-in piano models and a synthetic room "
        "(or phone) channel. Leading and trailing silence is trimmed.",
    )
    p.add_argument("midi", help="input .mid file")
    p.add_argument("out", help="output .wav or .flac file")
    p.add_argument("--piano", type=int, default=0, help="piano model index (0-6 built in; default 0)")
    p.add_argument("--sample-rate", type=int, default=22050, choices=(22050, 44100), help="Hz (default 22050)")
    p.add_argument("--channel", default="room", choices=("room", "phone"), help="recording channel")
    p.add_argument("--seed", type=int, default=0, help="seed of the room and noise (default 0)")
    p.set_defaults(func=render)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crescendai`` script; returns the exit status.

    Run as the program (``argv`` None: the console script or ``python -m crescendai.cli``), a
    command is one short-lived process, so two costs of the interpreter are skipped: the cyclic
    garbage collector is off (it found nothing worth its ~0.3 s of passes over torch's objects; an
    analysis leaves a few MB of cycles), and once the command is done and stdout / stderr are
    flushed the process ends with ``os._exit`` — the interpreter's teardown of torch took ~0.5 s
    and raised the peak memory by ~120 MB. A bug's traceback still ends the process the usual way.
    Called with an argument list (tests, other Python code), ``main`` only returns the status.
    """
    program = argv is None
    if program:
        gc.disable()
    args = build_parser().parse_args(argv)
    try:
        status = int(args.func(args) or 0)
    except CrescendAIError as err:
        print(f"crescendai {args.command}: error: {err}", file=sys.stderr)
        status = 2
    if program:
        _end_process(status)
    return status


def _end_process(status: int) -> None:
    """Flush what the command wrote and end the process at once (see :func:`main`)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`): nothing to deliver
            stream.flush()
    os._exit(status)


def _params(path: str):
    from crescendai.core.config import Params, load_params

    if Path(path).is_file():
        return load_params(path)
    return Params()


def analyze(args: argparse.Namespace) -> int:
    """``crescendai analyze``: a recording → scores, plots and bar-level feedback.

    Start-up is kept short: no global seeding and no deterministic-kernel request (the analysis is
    deterministic on CPU, and its only randomness, MC dropout, has its own generator seeded with
    ``params.seed``); librosa is imported only with ``--score``; tqdm only for a progress bar.
    Thread settings for cores shared with other work, unless set in the environment: idle OpenMP
    threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``; spinning made the model several
    times slower under contention), and NumPy's BLAS runs on one thread (``OPENBLAS_NUM_THREADS=1``;
    its only sizeable product, the mel filterbank, took 30× longer split over two busy cores).
    """
    # read when torch / NumPy load their thread pools, so before anything imports them
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import soundfile as sf

    from crescendai.core.audio import AudioError
    from crescendai.tutor import analysis
    from crescendai.tutor import bundle as bundle_mod
    from crescendai.tutor.report import build_report, text_report, write_report

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    params = _params(args.params)
    audio = Path(args.audio)
    if not audio.is_file():
        raise AudioError(audio, "file not found; check the path")
    if args.tempo_hint is not None and not 20 <= args.tempo_hint <= 400:
        raise UsageError(f"--tempo-hint {args.tempo_hint}: expected beats per minute in [20, 400]")
    if args.score:
        # check the score before the (slow) model load so a wrong path fails at once
        from crescendai.tutor.bars import parse_meter, read_score

        read_score(args.score, parse_meter(args.meter) if args.meter else None)
        if args.transcriber != "none":
            from crescendai.tutor.transcribe import require, resolve

            args.transcriber = require(resolve(args.transcriber, args.device))  # before the model load
    bundle = bundle_mod.load_bundle(args.model, device=args.device, seed=params.seed)
    try:
        total = float(sf.info(str(audio)).duration)
    except Exception:  # unreadable: analyze_file raises the AudioError that names the file
        total = 0.0
    bar = None
    if not args.no_progress and total >= 60:
        from tqdm import tqdm

        bar = tqdm(total=round(total), unit="s", desc=f"analysing {audio.name}", file=sys.stderr,
                   leave=False)

    def progress(sec: float) -> None:
        if bar is not None:
            bar.update(max(0, round(sec) - bar.n))

    try:
        result = analysis.analyze_file(audio, bundle, score_path=args.score, meter=args.meter,
                                       tempo_hint=args.tempo_hint, params=params.tutor,
                                       progress=progress, device=args.device,
                                       transcriber=None if args.transcriber == "none" else args.transcriber)
    finally:
        if bar is not None:
            bar.close()
    out = Path(args.out) if args.out else Path(f"{audio.stem}_report")
    rep = build_report(result, version=_version())
    written = write_report(rep, out)
    if args.format == "json":
        sys.stdout.write(json.dumps(rep, indent=2) + "\n")
    elif args.format == "html":
        print(written["html"])
    else:
        sys.stdout.write(text_report(rep))
        print(f"\nreport: {written['html']}  (json: {written['json']})")
    return 0



def render(args: argparse.Namespace) -> int:
    """``crescendai render in.mid out.wav``: any MIDI file through the project's synthesiser."""
    from crescendai.synth.render import render_midi_file

    if args.piano < 0:
        raise UsageError(f"--piano must be >= 0, got {args.piano}")
    dur = render_midi_file(args.midi, args.out, piano=args.piano, sr=args.sample_rate,
                           channel=args.channel, seed=args.seed)
    print(f"wrote {args.out} ({dur:.1f} s, piano {args.piano}, {args.sample_rate} Hz)")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crescendai")
    except PackageNotFoundError:  # pragma: no cover
        return "0+unknown"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
