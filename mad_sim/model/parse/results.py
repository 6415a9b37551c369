"""What :class:`~mad_sim.model.parse.parser.PoseParser` exchanges with its callers besides the frame.

* :class:`ParseResult` (with :class:`EnteredAgents`): the parse of one frame,
  arrays over the prior's rows, in the prior's frame.
* :func:`ego_pose_of`: the ``[3, 4]`` world -> vehicle affine of a world state's
  ego (the camera's *vehicle frame*: x forward, y left, z up, origin on the
  ground below the ego's box centre, as in :class:`~mad_sim.render.pose.PoseRenderer`).
* :func:`background_mask`: the static scene's skeleton-coloured pixels
  (traffic-light poles), which are not entering agents; :func:`lights_at`: a
  logged scenario's lights at one step, in the form it takes.

Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from mad_sim.data.scenario import Scenario
from mad_sim.model.parse.pixels import PixelThresholds
from mad_sim.render.draw import AgentPoses
from mad_sim.render.pose import PoseRenderer, world_to_vehicle


@dataclass
class EnteredAgents:
    """Agents found in the frame that the prior did not hold (prior's frame, like :class:`ParseResult`).

    Attributes:
      xyz: [M, 3] box centres, metres (on the ground plane: ``z = ground + height / 2``).
      heading: [M] radians.
      size: [M, 3] (length, width, height) of the class template that fitted best.
      types: [M] int8 :class:`~mad_sim.data.scenario.ObjectType`.
      confidence: [M] inlier fraction of the fit.
      residual: [M] mean chamfer distance of the fit, pixels.
      pixels: [M] number of unexplained skeleton pixels the detection accounts for.
    """

    xyz: np.ndarray
    heading: np.ndarray
    size: np.ndarray
    types: np.ndarray
    confidence: np.ndarray
    residual: np.ndarray
    pixels: np.ndarray

    @classmethod
    def empty(cls) -> "EnteredAgents":
        return cls(
            np.zeros((0, 3)), np.zeros(0), np.zeros((0, 3)), np.zeros(0, np.int8), np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
        )

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


@dataclass
class ParseResult:
    """What a frame says about the known agents, arrays ``[N]`` over the prior's rows.

    Attributes:
      xyz, heading, velocity: fitted states where ``visible``, the constant-velocity
        prediction elsewhere (prior's frame; velocity ``(fit - prior) / dt`` where visible).
      predicted_xyz, predicted_heading: the constant-velocity predictions.
      in_view: the prediction is on screen, unoccluded enough to judge (``min_observed`` samples).
      visible: the fitted skeleton matches the frame (inlier fraction >= ``min_inlier_frac``).
      confidence: inlier fraction of the fit (0 where not fitted).
      residual: mean chamfer distance of the observed samples, pixels (NaN where not fitted).
      left: [L] indices of agents in view whose skeletons are no longer in the frame.
      entered: new agents (:class:`EnteredAgents`).
      explained: [H, W] bool, skeleton pixels accounted for by visible known agents and entered agents.
      coarse: [N] bool, the coarse search ran for the agent (False where the search was narrow or the
        prediction already explained the frame: see :class:`~mad_sim.model.parse.config.ParseConfig`).
    """

    xyz: np.ndarray
    heading: np.ndarray
    velocity: np.ndarray
    predicted_xyz: np.ndarray
    predicted_heading: np.ndarray
    in_view: np.ndarray
    visible: np.ndarray
    confidence: np.ndarray
    residual: np.ndarray
    left: np.ndarray
    entered: EnteredAgents
    explained: np.ndarray
    coarse: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


def ego_pose_of(state, t: Optional[int] = None) -> np.ndarray:
    """[3, 4] world -> camera-vehicle affine of a :class:`~mad_sim.world.state.WorldState`'s ego at step ``t``."""
    k = state.timestep if t is None else int(t)
    e = state.ego_index
    h = float(state.sim.size[e, k, 2])
    return world_to_vehicle(state.sim.xyz[e, k], float(state.sim.heading[e, k]), h if h > 0 else 0.0)


def background_mask(renderer: PoseRenderer, ego_pose: np.ndarray, roadmap=None, lights=None, grow: int = 1) -> np.ndarray:
    """[H, W] bool: saturated pixels the static scene draws at this ego pose (traffic-light poles), grown by ``grow``.

    Pass it as ``background`` to :meth:`~mad_sim.model.parse.parser.PoseParser.parse` so traffic-light
    poles (red / yellow / green) are not taken for entering agents.  The map's
    lines are white or grey (unsaturated), never skeleton-coloured, so they
    are not part of it.
    """
    img = renderer.render_view(
        np.asarray(ego_pose, np.float64), AgentPoses(np.zeros((0, 3)), [], np.zeros((0, 3)), []), roadmap, lights
    )
    th = PixelThresholds()
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    m = ((hsv[..., 1] >= th.sat_min) & (hsv[..., 2] >= th.val_min)).astype(np.uint8)
    k = 2 * grow + 1
    return cv2.dilate(m, np.ones((k, k), np.uint8)).astype(bool)


__all__ = ["EnteredAgents", "ParseResult", "background_mask", "ego_pose_of"]


def lights_at(scenario: Scenario, t: int):
    """``(stop points [L, 3], states [L])`` of the lights valid at step ``t``, or None (the parser's light mask input)."""
    lights = scenario.traffic_lights
    if lights is None or lights.valid.shape[0] <= t or not lights.valid[t].any():
        return None
    v = lights.valid[t]
    return lights.stop_points[t][v], lights.states[t][v]
