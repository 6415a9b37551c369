"""Ego action spaces and the adapters that turn an action into the next ego pose.

Every adapter maps ``(pose at t, action) -> pose at t + dt`` (world frame,
metres, radians, m/s) and reports the acceleration and curvature it applied,
which the reward's comfort terms use.

- ``bicycle``: ``Box[-1, 1]^2`` float32: ``a = action[0] * max_accel`` (m/s^2)
  and ``kappa = action[1] * max_curvature`` (1/m), integrated by
  :func:`mad_sim.world.dynamics.bicycle_step`.
- ``trajectory``: ``Box[-R, R]^(H x 2)`` float32: ``H`` waypoints in the ego
  frame, the intended positions at ``t + dt, ..., t + H dt``.  A tracking
  controller turns them into a bicycle control: pure pursuit on the waypoint
  ``lookahead`` steps ahead (``kappa = 2 y / (x^2 + y^2)``) and a speed loop
  towards the waypoints' mean speed over that lookahead
  (``a = (v* - v) / tau``), both clipped to the bicycle limits.
- ``delta``: ``Box[-1, 1]^3`` float32: ``(dx, dy, dyaw)`` in the ego frame,
  scaled by ``max_delta_xy`` (m) and ``max_delta_yaw`` (rad), applied by
  :func:`mad_sim.world.dynamics.delta_step`; the new speed is ``|d xy| / dt``.

Non-finite actions or actions of the wrong shape raise
:class:`~mad_sim.errors.ActionError`; finite actions outside the box are
clipped to it (Gymnasium's convention for agents that sample beyond bounds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from gymnasium import spaces
from mad_sim.envs.config import EnvConfig

from mad_sim.data.scenario import DT
from mad_sim.errors import ActionError

TRAJECTORY_RANGE_M = 60.0
"""Bound of each waypoint coordinate of a trajectory action (metres)."""


@dataclass
class EgoStep:
    """The ego's next state (world frame) and the control that produced it."""

    xy: np.ndarray  # [2] m
    heading: float  # rad
    speed: float  # m/s (signed along the heading)
    accel: float  # m/s^2
    curvature: float  # 1/m


class ActionAdapter(Protocol):
    space: spaces.Box

    def step(self, xy: np.ndarray, heading: float, speed: float, action: np.ndarray) -> EgoStep: ...


def check_action(action: object, space: spaces.Box, kind: str) -> np.ndarray:
    """The action as a float64 array of the space's shape, clipped to its box; ActionError otherwise."""
    try:
        a = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ActionError(f"{kind} action is not numeric: {action!r}") from exc
    if a.shape != space.shape:
        raise ActionError(f"{kind} action has shape {a.shape}, expected {space.shape}")
    if not np.isfinite(a).all():
        raise ActionError(f"{kind} action holds a non-finite value: {a.tolist()}")
    return np.clip(a, space.low, space.high)


def bicycle_step_scalar(
    x: float, y: float, heading: float, speed: float, accel: float, curvature: float, dt: float = DT
) -> tuple[tuple[float, float], float, float]:
    """:func:`mad_sim.world.dynamics.bicycle_step` for ONE agent on Python floats (same operations in
    the same order, so bit-identical results; a tenth of the cost of the array version on 0-d arrays).

    ``v' = v + a dt``, ``yaw' = wrap(yaw + kappa v' dt)``, ``xy' = xy + v' dt (cos yaw', sin yaw')``.
    Returns ``((x', y') m, yaw' rad, v' m/s)``.
    """
    from mad_sim.data.frames import wrap_angle

    v = speed + accel * dt
    step = v * dt
    yaw = float(wrap_angle(heading + curvature * step))
    return (x + step * math.cos(yaw), y + step * math.sin(yaw)), yaw, v


class BicycleAdapter:
    """Normalised (acceleration, curvature) integrated by the kinematic bicycle model."""

    def __init__(self, config: EnvConfig) -> None:
        self.max_accel = float(config.max_accel)
        self.max_curvature = float(config.max_curvature)
        self.space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def control(self, xy: np.ndarray, heading: float, speed: float, accel: float, curvature: float) -> EgoStep:
        a = min(max(float(accel), -self.max_accel), self.max_accel)
        k = min(max(float(curvature), -self.max_curvature), self.max_curvature)
        nxy, nh, nv = bicycle_step_scalar(float(xy[0]), float(xy[1]), float(heading), float(speed), a, k)
        return EgoStep(np.array(nxy, np.float64), nh, nv, a, k)

    def step(self, xy: np.ndarray, heading: float, speed: float, action: np.ndarray) -> EgoStep:
        a = check_action(action, self.space, "bicycle")
        return self.control(xy, heading, speed, a[0] * self.max_accel, a[1] * self.max_curvature)


class TrajectoryAdapter:
    """Ego-frame waypoints tracked by pure pursuit + a proportional speed loop."""

    def __init__(self, config: EnvConfig, lookahead: int = 5, tau: float = 0.5) -> None:
        self.horizon = int(config.trajectory_steps)
        self.lookahead = int(min(lookahead, self.horizon))
        self.tau = float(tau)
        self.bicycle = BicycleAdapter(config)
        self.space = spaces.Box(-TRAJECTORY_RANGE_M, TRAJECTORY_RANGE_M, shape=(self.horizon, 2), dtype=np.float32)

    def controls(self, waypoints: np.ndarray, speed: float) -> tuple[float, float]:
        """(accel m/s^2, curvature 1/m) that track ``waypoints[H, 2]`` (ego frame) from speed ``speed``."""
        pts = np.concatenate([np.zeros((1, 2)), waypoints[: self.lookahead]], 0)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=-1)
        target_speed = float(seg.sum() / (self.lookahead * DT))
        if waypoints[self.lookahead - 1, 0] < 0:  # waypoints behind: a reversing plan
            target_speed = -target_speed
        accel = (target_speed - speed) / self.tau
        x, y = waypoints[self.lookahead - 1]
        d2 = x * x + y * y
        curvature = 0.0 if d2 < 1e-6 else 2.0 * y / d2
        return float(accel), float(curvature)

    def step(self, xy: np.ndarray, heading: float, speed: float, action: np.ndarray) -> EgoStep:
        wp = check_action(action, self.space, "trajectory")
        accel, curvature = self.controls(wp, speed)
        return self.bicycle.control(xy, heading, speed, accel, curvature)


class DeltaAdapter:
    """Normalised per-step displacement (dx, dy, dyaw) in the ego frame."""

    def __init__(self, config: EnvConfig) -> None:
        self.scale = np.array([config.max_delta_xy, config.max_delta_xy, config.max_delta_yaw])
        self.space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)

    def step(self, xy: np.ndarray, heading: float, speed: float, action: np.ndarray) -> EgoStep:
        from mad_sim.world.dynamics import delta_step

        d = check_action(action, self.space, "delta") * self.scale
        nxy, nh = delta_step(np.asarray(xy, np.float64), np.float64(heading), d)
        nxy = np.asarray(nxy, np.float64).reshape(2)
        direction = 1.0 if d[0] >= 0 else -1.0
        nv = direction * float(np.hypot(d[0], d[1])) / DT
        dist = float(np.hypot(d[0], d[1]))
        curvature = float(d[2] / dist) if dist > 1e-6 else 0.0
        return EgoStep(nxy, float(nh), nv, (nv - speed) / DT, curvature)


def make_action_adapter(config: EnvConfig) -> ActionAdapter:
    return {"bicycle": BicycleAdapter, "trajectory": TrajectoryAdapter, "delta": DeltaAdapter}[config.action](config)
