"""One recording → calibrated scores, honest uncertainty, bars and feedback (``crescendai analyze``).

==================  ==========================================================================
``frontend``        the one pass over a recording: decode once, one STFT, mel / level / onset (/ chroma)
``rhythm``          tempo and beats from the onset envelope (librosa's estimators, in NumPy)
``bundle``          loading the tutor bundle (model + calibration) the calibrate stage wrote
``scorer``          the Scorer protocol and the torch scorer (backbone once, MC dropout on the head)
``series``          per-window scores over time: calibration, pooling, judged dimensions, per bar
``saliency``        gradient × input explanations of the reported passages
``bars``            the bar grid: from a MIDI score (DTW) or from beat tracking and a metre
``feedback``        scores → plain-words feedback on spans of bars, with honest confidence
``analysis``        the whole analysis of one file
``report/``         report.json (versioned schema), text, PNG plots, self-contained HTML
==================  ==========================================================================
"""
