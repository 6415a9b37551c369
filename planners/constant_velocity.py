"""Constant-velocity planner with K variants by speed / yaw-rate perturbation.

Mode ``(s, w)`` drives at ``s * v0`` (``v0`` the current speed) with yaw rate
``w`` (rad/s) for the whole horizon.  Candidates form a grid of speed scales
``1 +- i * speed_step`` and yaw rates ``+- j * yaw_step``; the K kept are the
ones closest to plain constant velocity ``(1, 0)`` under the cost
``c = ((s - 1) / speed_step)^2 + (w / yaw_step)^2``, and probabilities are
``softmax(-c / 2)`` (a unit-variance Gaussian prior on the grid indices).
Mode 0 is always plain constant velocity.
"""

from __future__ import annotations

import numpy as np
from mad_sim.planners.base import Plan, PlanningContext, rollout_unicycle


class ConstantVelocityPlanner:
    name = "cv"

    def __init__(self, speed_step: float = 0.15, yaw_step: float = 0.08, min_speed: float = 0.0) -> None:
        self.speed_step = float(speed_step)
        self.yaw_step = float(yaw_step)
        self.min_speed = float(min_speed)

    def modes(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(speed_scale[K], yaw_rate[K], probability[K])``, most likely first."""
        r = int(np.ceil(np.sqrt(k))) + 1
        i, j = (g.ravel() for g in np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij"))
        cost = i.astype(float) ** 2 + j.astype(float) ** 2
        order = np.lexsort((j, i, cost))[:k]  # ties broken deterministically
        c = cost[order]
        p = np.exp(-(c - c.min()) / 2)
        return 1.0 + self.speed_step * i[order], self.yaw_step * j[order], p / p.sum()

    def plan(self, context: PlanningContext, k: int, horizon: int) -> Plan:
        scale, yaw_rate, prob = self.modes(k)
        v0 = max(context.speed, self.min_speed)
        xy, heading = rollout_unicycle(np.maximum(scale * v0, 0.0), yaw_rate, np.zeros(k), horizon, context.dt)
        return Plan(xy=xy, heading=heading, probabilities=prob)
