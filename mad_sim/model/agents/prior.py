"""The constant-velocity prior of a forecast: the future every agent would have at constant velocity.

A forecast may start from a prior instead of pure noise (SDEdit, see
:func:`~mad_sim.model.sampling.denoise`): the pose video of the next ``F``
steps in which

* every valid agent keeps its present velocity and heading,
  ``x_{t+k} = x_t + k dt v_t`` (world frame, metres; ``dt`` = 0.1 s; z held);
* the ego follows its intended poses ``plan`` (``[F, 3]`` world ``(x, y, yaw)``),
  so the camera moves as it will in the forecast;
* the map and the traffic lights are the log's (both are known in closed loop).

The model then corrects the prior (agents that brake, turn, or react to the
ego) instead of drawing the whole scene from noise.  Nothing here imports
torch.
"""

from __future__ import annotations

import numpy as np

from mad_sim.data.scenario import DT, Trajectory
from mad_sim.errors import ShapeError
from mad_sim.render.pose import PoseRenderer
from mad_sim.world.state import WorldState


def constant_velocity_future(state: WorldState, plan: np.ndarray) -> Trajectory:
    """The simulated past up to ``t`` followed by ``F`` constant-velocity steps: arrays ``[N, t + 1 + F, ...]``.

    Args:
      state: the world state at ``t = state.timestep`` (its ``sim`` trajectory up to ``t`` is kept).
      plan: ``[F, 3]`` world ``(x, y, yaw)`` of the ego at ``t + 1 .. t + F``.
    """
    plan = np.asarray(plan, np.float64)
    if plan.ndim != 2 or plan.shape[1] != 3 or not np.isfinite(plan).all():
        raise ShapeError(f"plan must be finite [F, 3] (x, y, yaw), got {plan.shape}")
    t, e, s = state.timestep, state.ego_index, state.sim
    f = plan.shape[0]
    k = np.arange(1, f + 1, dtype=np.float64)
    xyz_t, v_t = s.xyz[:, t], s.velocity[:, t]
    xyz = np.repeat(xyz_t[:, None], f, 1)
    xyz[:, :, :2] += k[None, :, None] * DT * v_t[:, None]
    heading = np.repeat(s.heading[:, t, None], f, 1)
    velocity = np.repeat(v_t[:, None], f, 1)
    valid = np.repeat(s.valid[:, t, None], f, 1)
    xyz[e, :, :2], heading[e] = plan[:, :2], plan[:, 2]
    prev = np.concatenate([s.xy[e, t][None], plan[:-1, :2]], 0)
    velocity[e] = (plan[:, :2] - prev) / DT
    valid[e] = True
    size = np.repeat(s.size[:, t, None], f, 1)
    keep = slice(0, t + 1)
    return Trajectory(
        xyz=np.concatenate([s.xyz[:, keep], xyz], 1),
        heading=np.concatenate([s.heading[:, keep], heading], 1),
        velocity=np.concatenate([s.velocity[:, keep], velocity], 1),
        size=np.concatenate([s.size[:, keep], size], 1).astype(s.size.dtype),
        valid=np.concatenate([s.valid[:, keep], valid], 1),
    )


def logged_future(state: WorldState, plan: np.ndarray) -> Trajectory:
    """The simulated past up to ``t`` followed by every agent's *logged* states at ``t + 1 .. t + F`` (the last
    logged step held past the log's end) and the ego on ``plan``: arrays ``[N, t + 1 + F, ...]`` (what a
    perfect motion model would forecast, for oracles and parse-back ceilings)."""
    plan = np.asarray(plan, np.float64)
    t, e, s, log = state.timestep, state.ego_index, state.sim, state.scenario.tracks
    f = plan.shape[0]
    steps = np.minimum(np.arange(t + 1, t + 1 + f), log.num_steps - 1)
    xyz, heading = log.xyz[:, steps].copy(), log.heading[:, steps].copy()
    velocity, valid, size = log.velocity[:, steps].copy(), log.valid[:, steps].copy(), log.size[:, steps].copy()
    xyz[e, :, :2], xyz[e, :, 2], heading[e], valid[e], size[e] = plan[:, :2], s.xyz[e, t, 2], plan[:, 2], True, s.size[e, t]
    keep = slice(0, t + 1)
    return Trajectory(
        xyz=np.concatenate([s.xyz[:, keep], xyz], 1),
        heading=np.concatenate([s.heading[:, keep], heading], 1),
        velocity=np.concatenate([s.velocity[:, keep], velocity], 1),
        size=np.concatenate([s.size[:, keep], size], 1).astype(s.size.dtype),
        valid=np.concatenate([s.valid[:, keep], valid], 1),
    )


def render_future(renderer: PoseRenderer, state: WorldState, traj: Trajectory, frames: int) -> np.ndarray:
    """uint8 ``[F, H, W, 3]``: steps ``t + 1 .. t + F`` of ``traj`` (from :func:`constant_velocity_future` or
    :func:`logged_future`) seen from the ego's camera (the renderer's camera)."""
    sc, t = state.scenario, state.timestep
    return renderer.render_trajectory(
        traj,
        sc.object_types,
        sc.roadmap,
        sc.traffic_lights,
        state.ego_index,
        np.arange(t + 1, t + 1 + frames),
        sc.source or sc.scenario_id,
    )


def render_prior(renderer: PoseRenderer, state: WorldState, plan: np.ndarray) -> np.ndarray:
    """uint8 ``[F, H, W, 3]``: the pose frames of steps ``t + 1 .. t + F`` of :func:`constant_velocity_future`,
    seen from the ego's camera (the renderer's camera) along ``plan``."""
    return render_future(renderer, state, constant_velocity_future(state, plan), int(np.asarray(plan).shape[0]))


__all__ = ["constant_velocity_future", "logged_future", "render_future", "render_prior"]
