"""``crescendai`` command line: ``analyze`` a recording, ``render`` a MIDI file.

Each subcommand lives in its own module; this file only builds the parser and turns expected user
mistakes (bad audio, missing model, wrong arguments) into one-line errors with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from crescendai.audio import AudioError
from crescendai.config import ConfigError


class UserError(Exception):
    """A mistake the user can fix; the message says what and how. Printed without a traceback."""


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def subcommand(register: Callable[[argparse._SubParsersAction], None]):
    """Decorator for functions that add one subparser (with ``set_defaults(func=...)``)."""
    _SUBCOMMANDS.append(register)
    return register


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    # import modules that register subcommands
    from crescendai import cli_commands  # noqa: F401

    parser = argparse.ArgumentParser(
        prog="crescendai",
        description="CrescendAI: an AI classical-piano tutor. Scores a recording on the 19 PercePiano "
        "dimensions and explains the scores bar by bar.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _SUBCOMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crescendai`` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, AudioError, ConfigError, FileNotFoundError) as err:
        print(f"crescendai {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
