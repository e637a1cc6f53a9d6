"""Out-of-fold and test metrics, the feature peers on the same folds, and calibration
(stages eval, compare, calibrate).

==================  ==========================================================================
``metrics``         within-passage ranking, bootstrap CIs (segments, performers), the eval stages
``ridge``           the ridge peers (hand-crafted audio features, MIDI features) on the same folds
``audio_features``  30 hand-crafted features per window from the contract dB windows
``midi_features``   17 playing features per segment from its MIDI
``calibration``     isotonic maps per dimension, cross-fitted error, the tutor bundle
==================  ==========================================================================
"""
