"""``crescendai render in.mid out.wav --piano N``: render any MIDI file with the project's synthesiser."""

from __future__ import annotations

import argparse

from crescendai.cli import UserError, subcommand


@subcommand
def register(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from crescendai.midi import MidiError
    from crescendai.synth.render import render_midi_file

    if args.piano < 0:
        raise UserError(f"--piano must be >= 0, got {args.piano}")
    try:
        dur = render_midi_file(args.midi, args.out, piano=args.piano, sr=args.sample_rate,
                               channel=args.channel, seed=args.seed)
    except MidiError as err:
        raise UserError(str(err)) from None
    except ValueError as err:
        raise UserError(str(err)) from None
    print(f"wrote {args.out} ({dur:.1f} s, piano {args.piano}, {args.sample_rate} Hz)")
    return 0
