"""Imports the modules that register ``crescendai`` subcommands (see ``cli.subcommand``).

Add one import per subcommand module; keep the subcommand's parser and handler in its own module.
"""

from __future__ import annotations

from crescendai import analyze_cli  # noqa: F401  (crescendai analyze)
from crescendai.synth import cli as _synth_cli  # noqa: F401  (crescendai render)
