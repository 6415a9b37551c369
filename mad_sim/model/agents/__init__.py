"""The motion model in the closed loop: learned agents and the shared predictor service.

* :mod:`.predictor_service`: one :class:`~mad_sim.model.motion.MotionPredictor` shared by
  many consumers (learned agents, the MAD planner), one diffusion call per batch.
* :mod:`.learned`: ``agents="mad"`` of ``MADDrive-v0`` (forecast, then parse back);
  :mod:`.settings`: their validated settings; :mod:`.ego_intent`: the ego's intended motion.

Imports the core of :mod:`mad_sim.model` and :mod:`mad_sim.model.parse`.
"""
