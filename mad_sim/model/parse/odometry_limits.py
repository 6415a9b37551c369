"""Physically plausible bounds on the ego's motion between two pose frames (lane odometry's guards).

A *frame step* ``s = pose_{k-1}^-1 (+) pose_k`` is the ego's SE(2) motion
between consecutive frames, ``(dx, dy, dyaw)`` in metres and radians in the
previous frame's vehicle axes (x forward, y left).  :class:`MotionLimits`
says which steps a car can make in ``dt`` seconds (speed, yaw rate bounded
by the turning circle, side slip off a circular arc's chord), how much the
predicted velocity may change per frame (acceleration), and how far one
registration may pull a frame's pose off its constant-velocity prediction.
Used by :func:`mad_sim.model.parse.odometry.track_ego_motion`.  Nothing here
imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mad_sim.data.scenario import DT


@dataclass(frozen=True)
class MotionLimits:
    """Physically plausible bounds on the ego's motion between two frames (see the module docstring).

    Attributes:
      max_speed_mps: forward speed bound, m/s (40 m/s = 144 km/h).
      max_reverse_mps: reverse speed bound, m/s.
      max_accel_mps2: bound on the change of the predicted velocity, m/s^2 (hard braking is ~8-9 m/s^2).
      max_yaw_rate: rad/s (1 rad/s: a sharp turn at walking pace, far beyond highway turns).
      max_curvature: 1/m, the tightest turn (1 / 4 m: a car's turning circle).
      yaw_slack: rad per frame allowed on top of the curvature bound (estimation noise, standing rotation).
      lateral_slack_m: sideways motion per frame allowed beyond the arc's chord, metres.
      max_correction_m, max_correction_deg: largest move of a frame's pose away from the
        constant-velocity prediction that one registration may make (larger ones are shortened).
      enabled: apply the limits at all.
    """

    max_speed_mps: float = 40.0
    max_reverse_mps: float = 5.0
    max_accel_mps2: float = 10.0
    max_yaw_rate: float = 1.0
    max_curvature: float = 0.25
    yaw_slack: float = 0.01
    lateral_slack_m: float = 0.15
    max_correction_m: float = 1.0
    max_correction_deg: float = 3.0
    enabled: bool = True

    def clamp(self, step: np.ndarray, dt: float = DT) -> np.ndarray:
        """A frame step ``[3]`` moved into the speed, yaw-rate and side-slip bounds (nearest feasible values)."""
        if not self.enabled:
            return np.asarray(step, np.float64).copy()
        dx, dy, dyaw = (float(x) for x in step)
        dx = min(max(dx, -self.max_reverse_mps * dt), self.max_speed_mps * dt)
        ymax = min(self.max_yaw_rate * dt, self.max_curvature * abs(dx) + self.yaw_slack)
        dyaw = min(max(dyaw, -ymax), ymax)
        chord = 0.5 * dx * dyaw
        dy = min(max(dy, chord - self.lateral_slack_m), chord + self.lateral_slack_m)
        return np.array([dx, dy, dyaw])

    def limit_change(self, delta: np.ndarray, dt: float = DT) -> np.ndarray:
        """A change of the frame step ``[3]`` within one frame's acceleration (forward) and yaw-rate change."""
        if not self.enabled:
            return np.asarray(delta, np.float64).copy()
        a = self.max_accel_mps2 * dt * dt
        y = self.max_yaw_rate * dt * dt / 0.5  # yaw rate may change by its bound in half a second
        return np.array([min(max(float(delta[0]), -a), a), min(max(float(delta[1]), -a), a), min(max(float(delta[2]), -y), y)])

    def limit_correction(self, corr: np.ndarray) -> np.ndarray:
        """A correction ``[3]`` of the predicted pose (in its frame) shortened to ``max_correction_m`` / ``_deg``."""
        out = np.asarray(corr, np.float64).copy()
        if not self.enabled:
            return out
        d = float(np.hypot(out[0], out[1]))
        if d > self.max_correction_m:
            out[:2] *= self.max_correction_m / d
        m = np.radians(self.max_correction_deg)
        out[2] = min(max(out[2], -m), m)
        return out

    def feasible(self, step: np.ndarray, dt: float = DT) -> np.ndarray:
        """[C] bool: which frame steps ``[C, 3]`` (previous frame's axes) are within the speed, yaw-rate
        and side-slip bounds."""
        step = np.asarray(step, np.float64)
        if not self.enabled:
            return np.ones(step.shape[0], bool)
        dx, dy, dyaw = step[:, 0], step[:, 1], step[:, 2]
        ok = (dx <= self.max_speed_mps * dt) & (dx >= -self.max_reverse_mps * dt)
        ok &= np.abs(dyaw) <= np.minimum(self.max_yaw_rate * dt, self.max_curvature * np.abs(dx) + self.yaw_slack)
        ok &= np.abs(dy - 0.5 * dx * dyaw) <= self.lateral_slack_m
        return ok


__all__ = ["MotionLimits"]
