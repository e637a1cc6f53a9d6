"""The ground floor: what every other floor agrees on. Imports nothing else of the package.

==================  ==========================================================================
``audio``           the preprocessing contract: decode, resample, mel dB windows, streaming
``dims``            the 19 PercePiano dimensions: keys, names, poles, groups, advice
``columns``         column names of the tables passed between floors (labels, proxies, predictions)
``config``          ``params.yaml`` → one validated frozen dataclass per section; ``seed_everything``
``errors``          ``CrescendAIError``, the base of every user mistake; ``run_stage``
``files``           atomic writes, JSON / JSONL, file hashes
``midi``            MIDI performances (notes, sustain pedal) read and written with mido
``labelfile``       PercePiano's label-file format
``pooling``         robust pooling of window scores (median, trimmed mean)
``stats``           per-dimension Pearson r, R², MSE, median r (scipy / scikit-learn)
==================  ==========================================================================
"""
