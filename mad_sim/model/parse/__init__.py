"""Reading generated pose frames back into the world: agent states and the ego's motion.

Its modules use numpy and OpenCV, and importing them does not import torch (the
:mod:`mad_sim.model` package resolves its torch API lazily;
``tests/test_lazy_imports.py`` checks).  Lower level first:

* :mod:`.pixels`: a pose frame's colour classes, truncated distance maps, sub-pixel lookups.
* :mod:`.skeleton_fit`: render-and-compare scores of skeleton poses against a frame.
* :mod:`.cost_maps`, :mod:`.search`: padded cost maps and the fast grid search over poses.
* :mod:`.config`: :class:`~mad_sim.model.parse.config.ParseConfig`.
* :mod:`.parser`: :class:`~mad_sim.model.parse.parser.PoseParser` (tracking known agents), and
  :mod:`.results`: what it returns (``ParseResult``) and takes (``ego_pose_of``, ``background_mask``);
  :mod:`.detect`: entering agents (parse-back accuracy on logged scenes: :mod:`mad_sim.model.evaluation.parse`).
* :mod:`.odometry` (with :mod:`.odometry_ground`, :mod:`.odometry_limits`,
  :mod:`.odometry_validity`): the ego's motion from the static map's pixels (lane odometry).

Imports only :mod:`mad_sim.data`, :mod:`mad_sim.world`, :mod:`mad_sim.render` and itself.
"""
