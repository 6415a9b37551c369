"""Training the adapters and the base model (evaluating and shipping them: :mod:`mad_sim.model.evaluation`).

* :mod:`.loop`: the training loop (accelerate), its config, logs; :mod:`.checkpoint`: resumable checkpoints.
* :mod:`.stages`: what each stage trains; :mod:`.denoiser_stage` (``base`` / ``motion``),
  :mod:`.appearance_stage` and :mod:`.appearance_train` (``appearance``).
* Data: :mod:`.clips` and :mod:`.datasets` (pose clips), :mod:`.appearance_clips` (RGB / pose pairs).

Imports the core of :mod:`mad_sim.model`, :mod:`mad_sim.model.appearance` and the score modules of
:mod:`mad_sim.model.evaluation` (the held-out scores a stage reports); only :mod:`mad_sim.model.evaluation`,
the CLI, scripts and tests import it.
"""
