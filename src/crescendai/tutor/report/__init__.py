"""Reports of one analysis: ``report.json`` (versioned schema), text summary, PNG plots, HTML.

>>> rep = build_report(analysis)                      # doctest: +SKIP
>>> write_report(rep, "out/", formats={"json", "html"})  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from crescendai.tutor.report.schema import (
    SCHEMA_VERSION,
    SchemaError,
    build_report,
    validate_report,
)
from crescendai.tutor.report.text import text_report

__all__ = ["SCHEMA_VERSION", "SchemaError", "build_report", "text_report", "validate_report",
           "write_report"]

PLOTS = ("timeline", "overall", "saliency")


def write_report(rep: dict[str, Any], out_dir: str | os.PathLike[str], *, html: bool = True,
                 plots: bool = True) -> dict[str, Path]:
    """Write ``report.json``, ``report.txt``, the PNG plots and (optionally) ``report.html`` atomically.

    ``report.html`` plays the recording from its path relative to ``out_dir`` (the audio is not copied):
    the page's player works as long as the report folder and the recording keep their relative places.

    Returns:
        name → path of every file written.
    """
    import urllib.parse

    from crescendai.core.files import atomic_write, write_json
    from crescendai.tutor.report import plots as P
    from crescendai.tutor.report.html import html_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    images: dict[str, bytes] = {}
    if plots:
        for name in PLOTS:
            images[name] = getattr(P, f"{name}_png")(rep)
            with atomic_write(out / f"{name}.png", "wb") as f:
                f.write(images[name])
            written[name] = out / f"{name}.png"
        rep["plots"] = {name: f"{name}.png" for name in PLOTS}
    validate_report(rep)
    write_json(out / "report.json", rep)
    written["json"] = out / "report.json"
    with atomic_write(out / "report.txt") as f:
        f.write(text_report(rep))
    written["text"] = out / "report.txt"
    if html:
        try:  # the recording as seen from the page: relative, posix separators, URL-quoted
            audio_src = urllib.parse.quote(os.path.relpath(rep["input"]["path"], out).replace(os.sep, "/"))
        except ValueError:  # no relative path (another Windows drive): an absolute file:// URI
            audio_src = Path(rep["input"]["path"]).resolve().as_uri()
        with atomic_write(out / "report.html") as f:
            f.write(html_report(rep, images, audio_src=audio_src))
        written["html"] = out / "report.html"
    return written
