"""CrescendAI: score a piano performance on the 19 PercePiano dimensions and explain it in bars."""

__version__ = "0.1.0"
