"""Appearance: pose video -> camera RGB, and camera RGB -> pose video.

* :mod:`.synthesizer`: :class:`~mad_sim.model.appearance.synthesizer.AppearanceSynthesizer`
  (the ``appearance`` LoRA) and the env's :class:`~mad_sim.model.appearance.synthesizer.RGBChunkCache`.
* :mod:`.vehicle_masks`: the vehicle boxes of paired clips (masks, pose frames without the vehicles).
* :mod:`.pose_extract`: pose videos from camera video (the paired data's pose side).

Imports the core of :mod:`mad_sim.model` only.
"""
