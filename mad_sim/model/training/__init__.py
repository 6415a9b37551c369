"""Training, evaluating and shipping the adapters and the base model.

* :mod:`.loop`: the training loop (accelerate), its config, logs; :mod:`.checkpoint`: resumable checkpoints.
* :mod:`.stages`: what each stage trains; :mod:`.denoiser_stage` (``base`` / ``motion``),
  :mod:`.appearance_stage` and :mod:`.appearance_train` (``appearance``).
* Data: :mod:`.clips` and :mod:`.datasets` (pose clips), :mod:`.appearance_clips` (RGB / pose pairs).
* Scores: :mod:`.vae_metrics`, :mod:`.motion_eval`, :mod:`.object_control_eval`.
* :mod:`.model_card`: ship trained weights into ``mad_sim/weights`` with their card.

Top of :mod:`mad_sim.model`: imports its core and :mod:`mad_sim.model.appearance`; nothing imports it
but the CLI, scripts and tests.
"""
