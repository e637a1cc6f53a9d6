"""The one base of every error that a user can fix.

A :class:`CrescendAIError` is a mistake in what the user gave us (a file, a parameter, a corpus
root, a model folder); its message names that file or key and says what to do. The CLI and the
stages print it as one line. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class CrescendAIError(Exception):
    """A user mistake; the message names the file or key and the fix."""


def run_stage(main: Callable[[], object], stage: str) -> int:
    """Run a stage's ``main``: a :class:`CrescendAIError` becomes one line on stderr and exit status
    1; any other exception propagates with its traceback."""
    try:
        main()
    except CrescendAIError as err:
        print(f"{stage} stage failed: {err}", file=sys.stderr)
        return 1
    return 0
