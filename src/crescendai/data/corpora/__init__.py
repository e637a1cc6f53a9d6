"""Corpus readers → manifest records; the manifest schema and JSONL I/O; split assignment.

One module per corpus (``synthetic``, ``percepiano``, ``maestro``, ``asap``, ``musicnet``, ``maps``,
``ccmusic``, ``phonepilot``); :mod:`crescendai.data.corpora.registry` maps corpus names to readers.
"""
