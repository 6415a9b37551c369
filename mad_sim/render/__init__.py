"""render layer of mad-sim: the videos MAD reads and writes.

Above ``data`` and ``world``, below ``model``; numpy / OpenCV, no torch.

* :mod:`.camera` -- pinhole camera (vehicle <-> OpenCV camera <-> pixels), frustum clipping,
  ground back-projection, Waymo calibrations.
* :mod:`.clip` -- Liang-Barsky segment clipping from signed plane distances.
* :mod:`.skeleton` -- car keypoint wireframe, OpenPose-18 pedestrians, cyclists.
* :mod:`.draw` / :mod:`.splat` -- the pure, painter-ordered agent rasteriser (+ id masks).
* :mod:`.map_layer` -- lanes, road lines / edges, crosswalks, traffic lights.
* :mod:`.pose` -- :class:`PoseRenderer`, pose frames of a WorldState or a Scenario.
* :mod:`.bev` -- top-down debug view.
* :mod:`.ego_motion` -- sphere-and-dust ego-motion video.
* :mod:`.video` -- mp4 / gif files and side-by-side panels.

Nothing here imports torch.
"""

from mad_sim.render.bev import render_bev  # noqa: F401
from mad_sim.render.camera import Camera  # noqa: F401
from mad_sim.render.ego_motion import EgoMotionRenderer  # noqa: F401
from mad_sim.render.pose import PoseRenderer  # noqa: F401
from mad_sim.render.video import side_by_side, write_video  # noqa: F401

__all__ = ["Camera", "PoseRenderer", "render_bev", "EgoMotionRenderer", "side_by_side", "write_video"]
