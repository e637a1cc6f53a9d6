"""The project's own piano synthesiser and the embedded synthetic corpus (numpy/scipy only).

Modules, one job each:

==================  ==========================================================================
``pianos``          the piano models (inharmonicity, decay, brightness, body colour)
``notes``           one cached note waveform per (model, pitch, velocity layer)
``mixer``           note + pedal events → dry piano audio (dampers, sustain, resonance, touch)
``channels``        rooms, mic distance, gain, noise, and the "phone" channel
``material``        procedural classical-style scores (scales, arpeggios, melody, chorale)
``performance``     performer tendencies and controls → an expressive performance
``labels``          controls + realised performance → 19 PercePiano-scale labels (segment, local)
``corpus``          the labelled / SSL / phone corpora as pure functions of a seed
``render``          the render entry points used by the stage and the CLI
``jobs``            render jobs per corpus (synthetic sets, PercePiano, ASAP) and the render stage
==================  ==========================================================================

Entry points: :func:`crescendai.synth.render.render_midi_file`,
:func:`crescendai.synth.mixer.render_performance`, :func:`crescendai.synth.corpus.generate_corpus`.
"""
