"""The ego's intended motion over the next forecast, as the learned agents assume it.

``trajectory`` actions give the waypoints themselves (ego frame at ``t``,
extended at constant velocity past their end, yaw along the path);
``bicycle`` / ``delta`` actions are held constant: the applied acceleration
(m/s^2) and curvature (1/m) integrated by the bicycle model.  Without an
action the ego's last acceleration and curvature (from its simulated
history, :func:`~mad_sim.world.dynamics.bicycle_inverse`) are held.  A
braking ego is held only until it stops.  Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mad_sim.data.frames import ego_to_world, wrap_angle
from mad_sim.data.scenario import DT
from mad_sim.world.state import WorldState


def intended_poses(
    state: WorldState, future_frames: int, action_kind: str, adapter: Any = None, action: Any = None, next_step: Any = None
) -> np.ndarray:
    """``[F, 3]`` world ``(x, y, yaw)`` (metres, radians) the ego intends at steps ``t + 1 .. t + F``.

    Args:
      state: the world at ``t = state.timestep``.
      future_frames: ``F``.
      action_kind: the env's action kind (``trajectory`` actions are waypoints, others bicycle controls).
      adapter: the env's action adapter (turns a bicycle / delta action into the next ego step), optional.
      action: the action of the step being taken, or None.
      next_step: the adapter's step for ``action`` when the caller has it already (has ``accel``, ``curvature``).
    """
    from mad_sim.world.dynamics import bicycle_inverse, bicycle_rollout

    f = future_frames
    t, e = state.timestep, state.ego_index
    xy, yaw = state.sim.xy[e, t].astype(np.float64), float(state.sim.heading[e, t])
    speed = float(np.dot(state.sim.velocity[e, t], [np.cos(yaw), np.sin(yaw)]))
    if action is not None and action_kind == "trajectory":
        wp = np.asarray(action, np.float64).reshape(-1, 2)
        pts = np.concatenate([np.zeros((1, 2)), wp])
        if len(wp) < f:
            d = pts[-1] - pts[-2]
            pts = np.concatenate([pts, pts[-1] + d * np.arange(1, f - len(wp) + 1)[:, None]])
        pts = pts[: f + 1]
        seg = np.diff(pts, axis=0)
        moving = np.hypot(seg[:, 0], seg[:, 1]) > 1e-3
        yaws = np.where(moving, np.arctan2(seg[:, 1], seg[:, 0]), np.nan)
        yaws = _fill_forward(yaws, 0.0)
        return np.concatenate([ego_to_world(pts[1:], xy, yaw), wrap_angle(yaws + yaw)[:, None]], 1)
    if next_step is None and action is not None and adapter is not None:
        next_step = adapter.step(xy, yaw, speed, action)
    if next_step is not None:
        accel, curv = float(next_step.accel), float(next_step.curvature)
    else:
        accel, curv = 0.0, 0.0
        lo = max(0, t - 3)
        v = state.sim.valid[e, lo : t + 1]
        if t - lo >= 2 and v.all():
            hv = state.sim.velocity[e, lo : t + 1]
            hh = state.sim.heading[e, lo : t + 1]
            sp = np.sum(hv * np.stack([np.cos(hh), np.sin(hh)], -1), -1)
            a, k = bicycle_inverse(state.sim.xy[e, lo : t + 1], hh, sp)
            accel, curv = float(a[-1]), float(k[-1])
    if speed + accel * f * DT < 0:  # hold the brake until the ego stops, not beyond
        accel = -speed / (f * DT) if speed > 0 else 0.0
    pxy, ph, _ = bicycle_rollout(xy, np.float64(yaw), np.float64(speed), np.full(f, accel), np.full(f, curv))
    return np.concatenate([pxy[1:], ph[1:, None]], 1)


def _fill_forward(a: np.ndarray, first: float) -> np.ndarray:
    """NaNs replaced by the last finite value before them (``first`` before any)."""
    out = a.copy()
    last = first
    for i in range(len(out)):
        if np.isfinite(out[i]):
            last = out[i]
        else:
            out[i] = last
    return out


__all__ = ["intended_poses"]
