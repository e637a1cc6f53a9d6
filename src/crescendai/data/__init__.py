"""Corpora → manifests → deduplicated, leakage-checked window cache (stages manifest, dedup, preprocess).

==================  ==========================================================================
``corpora/``        one reader per corpus and the name → reader table (``registry``)
``manifest``        the manifest record schema and JSONL I/O
``splits``          performer / piece / passage folds and the fixed test set
``fingerprint``     chroma-landmark audio fingerprints
``dedup``           duplicate and overlap pairs, the leakage rules, the dedup stage's recipe
``proxies``         time-local proxies (onset density, tempo stability, loudness dynamics, pedal)
``window_cache``    every item → contract windows (memmap) + index table; ``load_feature_set``
``similarity``      the domain probe: how far the OOD (phone) set lies from the SSL set
==================  ==========================================================================
"""
