"""A parsed forecast chunk: the agent states the learned agents read out of generated pose frames.

Each generated frame ``j`` (step ``t + 1 + j``) is parsed by render-and-compare
(:class:`~mad_sim.model.parse.parser.PoseParser`) with the camera at the ego's
assumed pose ``plan[j]``:

- with ``tracking`` (default) each parse is a measurement fused into a
  constant-velocity Kalman filter per agent (:mod:`mad_sim.model.agents.tracking`);
  the filter's prediction is the parser's prior (``dt = 0``) and its state the
  agent's;
- without, the prior is anchored at the known present state moved by the
  velocity estimated so far, ``v_j = ((x_j - x_0) + v_0 dt) / ((j + 2) dt)``,
  and the parse is the agent's state.

An agent stays in the chunk while the parser keeps it in view; a ``learned``
entry whose ``measured`` is False was carried by the prior (no fit, or a fit
rejected by the gate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from mad_sim.data.scenario import DT
from mad_sim.model.agents.settings import LearnedAgentSettings
from mad_sim.model.agents.tracking import ConstantVelocityKalman
from mad_sim.world.state import AgentStates, WorldState


@dataclass
class Chunk:
    """A parsed prediction: agent states for steps ``start .. start + len - 1`` (world frame)."""

    start: int
    t_pred: int
    xyz: np.ndarray  # [N, C, 3]
    heading: np.ndarray  # [N, C]
    velocity: np.ndarray  # [N, C, 2]
    learned: np.ndarray  # [N, C] bool
    ego_plan: np.ndarray  # [C, 3] (x, y, yaw) assumed for the ego
    measured: Optional[np.ndarray] = None  # [N, C] bool: learned and fused with an accepted parse
    frames: Optional[np.ndarray] = None  # [F, H, W, 3] uint8: the generated pose frames of steps start ..

    @property
    def length(self) -> int:
        return int(self.learned.shape[1])


@dataclass
class LearnedStats:
    """Counters of one episode: forecasts run, early ones among them, forecasts skipped because no
    agent was in view, per-frame fits found / lost, fits accepted into the agents' states / rejected
    by the tracking gate, entering agents detected."""

    predictions: int = 0
    early: int = 0
    skipped: int = 0
    fitted: int = 0
    lost: int = 0
    accepted: int = 0
    gated: int = 0
    entered: int = 0


def parse_chunk(
    parser: Any,
    state: WorldState,
    sel: np.ndarray,
    frames: np.ndarray,
    plan: np.ndarray,
    settings: LearnedAgentSettings,
    stats: LearnedStats,
) -> Chunk:
    """Agent states of steps ``t + 1 .. t + chunk`` read out of generated frames (module doc).

    Args:
      parser: a :class:`~mad_sim.model.parse.parser.PoseParser` on the agents' camera.
      state: the world at ``t`` (the agents' known present).
      sel: ``[M]`` track indices to parse (valid, in view at ``t``).
      frames: uint8 ``[>= chunk, H, W, 3]`` generated pose frames of steps ``t + 1 ..``.
      plan: ``[>= chunk, 3]`` world ``(x, y, yaw)`` of the ego (the camera path assumed).
      settings: ``chunk``, ``tracking`` and ``tracking_noise`` are read.
      stats: counters updated in place (fits found / lost, accepted / gated, entering agents).
    """
    from mad_sim.render.pose import world_to_vehicle

    s = settings
    t, e, n = state.timestep, state.ego_index, state.num_agents
    c = s.chunk
    now = state.at(t)
    xyz = np.zeros((n, c, 3))
    heading = np.zeros((n, c))
    velocity = np.zeros((n, c, 2))
    learned = np.zeros((n, c), bool)
    measured = np.zeros((n, c), bool)
    prior = AgentStates(
        now.xyz[sel].copy(),
        now.heading[sel].copy(),
        now.velocity[sel].copy(),
        now.size[sel].copy(),
        np.ones(sel.size, bool),
        now.types[sel],
    )
    ego_z, ego_h = float(state.sim.xyz[e, t, 2]), float(state.sim.size[e, t, 2])
    alive = np.ones(sel.size, bool)
    x0, v0, p0 = prior.xyz[:, :2].copy(), prior.velocity.copy(), prior.xyz.copy()
    kf = ConstantVelocityKalman(x0, v0, prior.heading, s.tracking_noise) if s.tracking else None
    for j in range(c):
        if not alive.any():
            break
        pose = world_to_vehicle(np.array([plan[j, 0], plan[j, 1], ego_z]), float(plan[j, 2]), max(ego_h, 0.0))
        if kf is not None:
            # The filter's prediction is the parser's prior (dt = 0: already the prediction for this frame).
            kf.predict(DT)
            pred = AgentStates(
                np.concatenate([kf.xy, p0[:, 2:]], 1), kf.h.copy(), kf.velocity.copy(), prior.size, alive.copy(), prior.types
            )
            res = parser.parse(frames[j], pred, pose, dt=0.0)
        else:
            # Anchored prior: the known present state moved by the velocity estimated so far, so a
            # per-frame fitting error does not become the next frame's starting point (no random walk).
            res = parser.parse(frames[j], prior, pose, dt=(j + 1) * DT)
        alive &= res.in_view
        seen = res.visible & alive
        stats.fitted += int(seen.sum())
        stats.lost += int((~res.visible & alive).sum())
        stats.entered += len(res.entered)
        rows = sel[alive]
        if kf is not None:
            ranges = np.hypot(*(kf.xy - plan[j, :2]).T)
            ok = kf.update(res.xyz[:, :2], res.heading, ranges, seen)
            stats.accepted += int(ok.sum())
            stats.gated += int((seen & ~ok).sum())
            xyz[rows, j, :2], xyz[rows, j, 2] = kf.xy[alive], p0[alive, 2]
            heading[rows, j] = kf.h[alive]
            velocity[rows, j] = kf.velocity[alive]
            measured[sel[ok & alive], j] = True
        else:
            # Velocity over the chunk so far with the known present velocity as one step of prior:
            # v_j = ((x_j - x_0) + v_0 dt) / ((j + 2) dt).  A frame-to-frame difference of two fits
            # would turn a 0.1 m pixel-level error into 1 m/s and drive the next frame's search off.
            vel = (res.xyz[:, :2] - x0 + v0 * DT) / ((j + 2) * DT)
            xyz[rows, j] = res.xyz[alive]
            heading[rows, j] = res.heading[alive]
            velocity[rows, j] = vel[alive]
            measured[sel[seen], j] = True
            stats.accepted += int(seen.sum())
            prior = AgentStates(p0, res.heading, vel, prior.size, alive.copy(), prior.types)
        learned[rows, j] = True
    return Chunk(
        start=t + 1,
        t_pred=t,
        xyz=xyz,
        heading=heading,
        velocity=velocity,
        learned=learned,
        ego_plan=plan[:c].copy(),
        measured=measured,
    )


__all__ = ["Chunk", "LearnedStats", "parse_chunk"]
