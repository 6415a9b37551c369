"""Scripted traffic: policies that move the agents the ego does not control.

A :class:`TrafficPolicy` answers ``advance(state, controlled, num_steps)``
with the next ``num_steps`` states of ALL agents as a :class:`Trajectory`
``[N, num_steps]`` (world frame, step ``k`` = time ``state.timestep + 1 + k``);
entries of agents not in ``controlled`` are ignored by the caller.

* :class:`LogReplay`: the logged future (invalid past the end of the log).
* :class:`ConstantVelocity`: every agent keeps its current velocity and heading.
* :class:`~mad_sim.world.idm.IDM` (in :mod:`mad_sim.world.idm`, built on this
  module): vehicles and cyclists follow their lane with the Intelligent
  Driver Model behind the nearest agent ahead, stopping for red signals and
  at stop signs.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from mad_sim.data.scenario import DT, Trajectory
from mad_sim.errors import ShapeError
from mad_sim.world.state import WorldState

__all__ = ["TrafficPolicy", "LogReplay", "ConstantVelocity", "check_policy_call"]


@runtime_checkable
class TrafficPolicy(Protocol):
    def advance(self, state: WorldState, controlled: np.ndarray, num_steps: int) -> Trajectory:
        """The next ``num_steps`` states of all agents, ``[N, num_steps]``."""
        ...


def check_policy_call(state: WorldState, controlled: np.ndarray, num_steps: int) -> np.ndarray:
    """Validate the arguments of :meth:`TrafficPolicy.advance`; returns ``controlled`` as [N] bool (ShapeError otherwise)."""
    c = np.asarray(controlled, dtype=bool)
    if c.shape != (state.num_agents,):
        raise ShapeError(f"controlled must be [{state.num_agents}] bool, got shape {c.shape}")
    if int(num_steps) < 1:
        raise ShapeError(f"num_steps must be >= 1, got {num_steps}")
    return c


def _hold(state: WorldState, num_steps: int) -> Trajectory:
    """All agents' present state repeated ``num_steps`` times (velocity kept, positions not moved)."""
    now = state.at()

    def rep(a: np.ndarray, dtype: type) -> np.ndarray:  # one copy (np.repeat costs ~3 us even for one step)
        return a[:, None].astype(dtype) if num_steps == 1 else np.repeat(a[:, None], num_steps, axis=1).astype(dtype, copy=False)

    return Trajectory(
        xyz=rep(now.xyz, np.float64),
        heading=rep(now.heading, np.float64),
        velocity=rep(now.velocity, np.float64),
        size=rep(now.size, now.size.dtype.type),
        valid=rep(now.valid, np.bool_),
    )


class LogReplay:
    """Replays the log: step ``k`` is the logged state at ``timestep + 1 + k`` (invalid beyond the log)."""

    def advance(self, state: WorldState, controlled: np.ndarray, num_steps: int) -> Trajectory:
        check_policy_call(state, controlled, num_steps)
        t = state.timestep
        log = state.log
        if t + num_steps < log.num_steps:  # all inside the log: contiguous slices (copies), no gather
            k = slice(t + 1, t + 1 + num_steps)
            return Trajectory(
                xyz=log.xyz[:, k].copy(),
                heading=log.heading[:, k].copy(),
                velocity=log.velocity[:, k].copy(),
                size=log.size[:, k].copy(),
                valid=log.valid[:, k].copy(),
            )
        idx = np.arange(t + 1, t + 1 + num_steps)
        inside = idx < log.num_steps
        out = log.take(np.minimum(idx, log.num_steps - 1), axis=1)
        out.valid &= inside[None, :]
        return out


class ConstantVelocity:
    """Every valid agent keeps its present velocity (world frame) and heading: ``xy_k = xy + v (k+1) dt``."""

    def __init__(self, dt: float = DT) -> None:
        self.dt = dt

    def advance(self, state: WorldState, controlled: np.ndarray, num_steps: int) -> Trajectory:
        check_policy_call(state, controlled, num_steps)
        out = _hold(state, num_steps)
        k = (np.arange(num_steps) + 1.0) * self.dt
        out.xyz[..., :2] += state.at().velocity[:, None, :] * k[None, :, None]
        return out
