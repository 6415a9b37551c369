"""The expert planner: the logged future itself (the upper bound of any planner).

It returns the log as mode 0 with probability 1 and ``K - 1`` copies with
probability 0, so minADE/minFDE are 0 on every valid step and APD is 0.
Invalid log steps are filled by linear interpolation between valid ones
(held constant past the ends); the evaluator masks them anyway.
"""

from __future__ import annotations

import numpy as np
from mad_sim.planners.base import Plan, PlanningContext

from mad_sim.errors import ConfigError


def fill_invalid(xy: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``[F, 2]`` with invalid rows interpolated from valid ones (zeros, i.e. t0's position, if none)."""
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return np.zeros_like(xy)
    t = np.arange(len(xy))
    return np.stack([np.interp(t, idx, xy[idx, 0]), np.interp(t, idx, xy[idx, 1])], -1)


class ExpertPlanner:
    name = "expert"

    def plan(self, context: PlanningContext, k: int, horizon: int) -> Plan:
        if context.future_xy is None or context.future_valid is None:
            raise ConfigError("the expert planner needs the logged future (open-loop evaluation or log replay)")
        fut = context.future_xy[:horizon]
        valid = context.future_valid[:horizon]
        if len(fut) < horizon:
            fut = np.concatenate([fut, np.zeros((horizon - len(fut), 2))])
            valid = np.concatenate([valid, np.zeros(horizon - len(valid), bool)])
        xy = fill_invalid(fut, valid)
        prev = np.concatenate([np.zeros((1, 2)), xy[:-1]])
        d = xy - prev
        moving = np.linalg.norm(d, axis=-1) > 1e-3
        last = np.maximum.accumulate(np.where(moving, np.arange(horizon), -1))  # last step that moved
        j = np.maximum(last, 0)
        heading = np.where(last >= 0, np.arctan2(d[j, 1], d[j, 0]), 0.0)
        prob = np.zeros(k)
        prob[0] = 1.0
        return Plan(xy=np.repeat(xy[None], k, 0), heading=np.repeat(heading[None], k, 0), probabilities=prob)
