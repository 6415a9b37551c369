"""Measuring trained models and shipping them: what is not training itself.

* Scores over arrays (import nothing from :mod:`mad_sim.model.training`, so the
  training stages report them on their held-out split too):
  :mod:`.vae_metrics` (pose-video PSNR, line recall / precision),
  :mod:`.appearance` (RGB PSNR / SSIM, forecast-like pose perturbations,
  the held-out appearance score, side-by-side images).
* Evaluations of a trained model on held-out data: :mod:`.motion` (the motion
  adapter's forecasts and ego sensitivity), :mod:`.object_control` (boxes
  followed), :mod:`.appearance_vehicles` (vehicles drawn where the skeletons
  are), :mod:`.parse` (parse-back accuracy of the pose parser on logged scenes).
* :mod:`.model_card`: ship trained weights into ``mad_sim/weights`` with their card.

Builds on the core of :mod:`mad_sim.model`, :mod:`~mad_sim.model.parse`,
:mod:`~mad_sim.model.appearance` and :mod:`~mad_sim.model.training` (for its
configs and clip caches); nothing in the model layer imports it except the
training stages, which use the score modules only (``tests/test_layering.py``).
Importing this package imports none of its modules.
"""
