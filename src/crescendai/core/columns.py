"""Column names of the tables that flow between floors (window index, predictions, features).

One list per idea, one meaning per name:

==========================  ==============  ==========================================================
list                        example         meaning
==========================  ==============  ==========================================================
:data:`LABELS`              ``y_3``         segment label of dimension 3 (PercePiano scale [1/7, 1])
:data:`LOCAL_LABELS`        ``l_3``         time-local label of dimension 3 (one per window)
:data:`PROXIES`             ``p_pedal``     time-local proxy (:data:`PROXY_NAMES`, see ``data.proxies``)
:data:`PLAYING`             ``m_ioi_cv``    the window's MIDI performance feature (``core.midi_features``,
                                            ``data.teacher.window_playing``), NaN without MIDI
:data:`PREDICTIONS`         ``pred_3``      the model's score of dimension 3 (window or segment)
:data:`LOCAL_PREDICTIONS`   ``local_3``     the local (time) head's score of dimension 3
==========================  ==============  ==========================================================
"""

from __future__ import annotations

from crescendai.core.dims import N_DIMS
from crescendai.core.midi_features import FEATURE_NAMES

PROXY_NAMES: tuple[str, ...] = ("onset_density", "tempo_stability", "loudness_dynamics", "pedal")
"""Time-local proxies, in the order of every ``[N, 4]`` proxy array."""

LABELS: tuple[str, ...] = tuple(f"y_{d}" for d in range(N_DIMS))
LOCAL_LABELS: tuple[str, ...] = tuple(f"l_{d}" for d in range(N_DIMS))
PROXIES: tuple[str, ...] = tuple(f"p_{n}" for n in PROXY_NAMES)
PLAYING: tuple[str, ...] = tuple(f"m_{n}" for n in FEATURE_NAMES)
PREDICTIONS: tuple[str, ...] = tuple(f"pred_{d}" for d in range(N_DIMS))
LOCAL_PREDICTIONS: tuple[str, ...] = tuple(f"local_{d}" for d in range(N_DIMS))
