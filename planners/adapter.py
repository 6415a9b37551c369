"""Drive ``MADDrive-v0`` with any planner, receding horizon.

Every ``replan_every`` steps the driver builds a :class:`PlanningContext`
from the env's *simulated* state (the logged future is attached too, which
only the expert planner reads), asks the planner for K trajectories over
``horizon`` steps and keeps the most probable one, stored in the world frame.
Each step the part of it still ahead is expressed in the current ego frame
and turned into the env's action kind:

- ``trajectory``: the next ``trajectory_steps`` waypoints (the last one
  repeated past the plan's end);
- ``bicycle``: the trajectory tracker's (pure pursuit + speed loop)
  acceleration and curvature, divided by the env's limits and clipped to [-1, 1];
- ``delta``: the displacement and heading change to the next waypoint, scaled
  by the env's delta limits and clipped to [-1, 1].
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from mad_sim.envs.actions import TrajectoryAdapter
from mad_sim.planners.base import Plan, Planner, build_context

from mad_sim.data.frames import ego_to_world, heading_ego_to_world, world_to_ego, wrap_angle


class RecedingHorizonDriver:
    """``act(env) -> action`` for the env's action kind, from a planner's best trajectory."""

    def __init__(self, planner: Planner, k: int = 6, horizon: int = 30, replan_every: int = 1, history: int = 11) -> None:
        self.planner = planner
        self.k = int(k)
        self.horizon = int(horizon)
        self.replan_every = max(1, int(replan_every))
        self.history = int(history)
        self.last_plan: Optional[Plan] = None
        self._world_xy: Optional[np.ndarray] = None
        self._world_heading: Optional[np.ndarray] = None
        self._t_plan = -1

    def reset(self) -> None:
        self._world_xy = None
        self._t_plan = -1

    def _replan(self, env: Any) -> None:
        s = env.state
        ctx = build_context(
            s.sim,
            s.scenario.object_types,
            s.roadmap,
            s.timestep,
            s.ego_index,
            self.history,
            log=s.log,
            horizon=self.horizon,
            source=s.scenario.source or s.scenario.scenario_id,
        )
        plan = self.planner.plan(ctx, self.k, self.horizon)
        b = plan.best
        self.last_plan = plan
        self._world_xy = ego_to_world(plan.xy[b], ctx.origin_xy, ctx.origin_yaw)
        self._world_heading = heading_ego_to_world(plan.heading[b], ctx.origin_yaw)
        self._t_plan = s.timestep

    def _planned_xy(self) -> np.ndarray:
        """World ``[F, 2]`` positions of the current plan (set by :meth:`_replan`)."""
        assert self._world_xy is not None
        return self._world_xy

    def waypoints(self, env: Any, n: int) -> np.ndarray:
        """The next ``n`` planned positions ``[n, 2]`` in the current ego frame (replanning when due)."""
        s = env.state
        if self._world_xy is None or s.timestep - self._t_plan >= self.replan_every or s.timestep < self._t_plan:
            self._replan(env)
        ahead = self._planned_xy()[s.timestep - self._t_plan :]
        if len(ahead) == 0:
            self._replan(env)
            ahead = self._planned_xy()
        idx = np.minimum(np.arange(n), len(ahead) - 1)
        e = s.ego()
        return world_to_ego(ahead[idx], e.xy[0], float(e.heading[0]))

    def act(self, env: Any) -> np.ndarray:
        base = env.unwrapped
        cfg = base.config
        if cfg.action == "trajectory":
            return self.waypoints(base, cfg.trajectory_steps).astype(np.float32)
        if cfg.action == "bicycle":
            tracker = TrajectoryAdapter(cfg)
            wp = self.waypoints(base, tracker.horizon)
            accel, curvature = tracker.controls(wp, base.ego_speed)
            return np.clip([accel / cfg.max_accel, curvature / cfg.max_curvature], -1, 1).astype(np.float32)
        wp = self.waypoints(base, 1)[0]
        s = base.state
        world_heading = self._world_heading
        assert world_heading is not None  # waypoints() planned
        i = min(s.timestep + 1 - self._t_plan, len(world_heading)) - 1
        dyaw = float(wrap_angle(world_heading[max(i, 0)] - s.sim.heading[s.ego_index, s.timestep]))
        d = np.array([wp[0] / cfg.max_delta_xy, wp[1] / cfg.max_delta_xy, dyaw / cfg.max_delta_yaw])
        return np.clip(d, -1, 1).astype(np.float32)
