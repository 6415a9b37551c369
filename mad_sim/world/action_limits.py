"""Limits of the agent actions: clip, and report what was clipped.

:class:`BicycleLimits` bounds the bicycle action (acceleration m/s^2,
curvature 1/m; speed bounds m/s enforced through the acceleration) and
:class:`DeltaLimits` the delta action (``dx`` / ``dy`` m in the agent frame,
x forward, y left; ``dyaw`` rad, per step).  Both return the clipped action
with boolean masks of the changed entries (:class:`ClippedBicycle` /
:class:`ClippedDelta`); the environment surfaces these.  Non-finite actions
raise :class:`~mad_sim.errors.ActionError`: NaN is never clipped silently.
The models themselves are in :mod:`mad_sim.world.dynamics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from mad_sim.data.scenario import DT
from mad_sim.errors import ActionError, ShapeError

__all__ = ["BicycleLimits", "ClippedBicycle", "DeltaLimits", "ClippedDelta"]


def _check_finite(name: str, value: np.ndarray) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ActionError(f"action field {name!r} holds a non-finite value at index {tuple(int(i) for i in bad)}")
    return arr


@dataclass(frozen=True)
class ClippedBicycle:
    """A bicycle action after clipping, with masks of what was changed.

    Attributes:
      accel: [...] m/s^2, clipped.
      curvature: [...] 1/m, clipped.
      accel_clipped: [...] bool, True where ``accel`` was changed (by the
        acceleration bounds or by the speed bounds, see :class:`BicycleLimits`).
      curvature_clipped: [...] bool, True where ``curvature`` was changed.
    """

    accel: np.ndarray
    curvature: np.ndarray
    accel_clipped: np.ndarray
    curvature_clipped: np.ndarray

    @property
    def any_clipped(self) -> np.ndarray:
        return self.accel_clipped | self.curvature_clipped


@dataclass(frozen=True)
class BicycleLimits:
    """Physical limits of the bicycle action (defaults: a passenger car).

    Attributes:
      min_accel: m/s^2, strongest braking (negative).
      max_accel: m/s^2, strongest acceleration.
      max_curvature: 1/m, tightest turn either way (0.3 = radius 3.3 m).
      min_speed: m/s; 0 forbids reversing (braking stops the car), a negative
        value allows reversing down to that speed.
      max_speed: m/s.

    The speed bounds are enforced through the acceleration (``a`` is clipped to
    ``[(min_speed - v)/dt, (max_speed - v)/dt]``), so a clipped action is still
    an ordinary action and the forward model stays exactly invertible.
    """

    min_accel: float = -8.0
    max_accel: float = 6.0
    max_curvature: float = 0.3
    min_speed: float = 0.0
    max_speed: float = 40.0

    def clip(
        self, accel: np.ndarray, curvature: np.ndarray, speed: Optional[np.ndarray] = None, dt: float = DT
    ) -> ClippedBicycle:
        """Clip ``accel`` / ``curvature`` (arrays ``[...]``) given the current ``speed`` [...] m/s.

        Raises ActionError on a non-finite action.
        """
        a = _check_finite("accel", accel)
        k = _check_finite("curvature", curvature)
        lo = np.full(np.shape(a), self.min_accel)
        hi = np.full(np.shape(a), self.max_accel)
        if speed is not None:
            v = np.asarray(speed, dtype=np.float64)
            lo = np.maximum(lo, (self.min_speed - v) / dt)
            hi = np.minimum(hi, (self.max_speed - v) / dt)
            hi = np.maximum(hi, lo)  # a speed already outside the bounds: move back towards them
        a_c = np.clip(a, lo, hi)
        k_c = np.clip(k, -self.max_curvature, self.max_curvature)
        return ClippedBicycle(accel=a_c, curvature=k_c, accel_clipped=a_c != a, curvature_clipped=k_c != k)


@dataclass(frozen=True)
class ClippedDelta:
    """A delta action ``[..., 3]`` after clipping; ``clipped`` [..., 3] bool marks changed entries."""

    delta: np.ndarray
    clipped: np.ndarray

    @property
    def any_clipped(self) -> np.ndarray | np.bool_:
        """[...] bool: some entry of the action was clipped (a numpy bool for one ``[3]`` action)."""
        return self.clipped.any(-1)


@dataclass(frozen=True)
class DeltaLimits:
    """Per-step bounds of the delta action (agent frame, one step of ``dt``).

    Attributes:
      max_forward: m, largest forward move (4.0 = 40 m/s at 10 Hz).
      max_backward: m, largest backward move (positive number).
      max_lateral: m, largest sideways move either way.
      max_yaw: rad, largest turn either way.
    """

    max_forward: float = 4.0
    max_backward: float = 0.5
    max_lateral: float = 0.5
    max_yaw: float = 0.3

    def clip(self, delta: np.ndarray) -> ClippedDelta:
        d = _check_finite("delta", delta)
        if d.shape[-1:] != (3,):
            raise ShapeError(f"delta action must end in 3 (dx, dy, dyaw), got shape {d.shape}")
        lo = np.array([-self.max_backward, -self.max_lateral, -self.max_yaw])
        hi = np.array([self.max_forward, self.max_lateral, self.max_yaw])
        c = np.clip(d, lo, hi)
        return ClippedDelta(delta=c, clipped=c != d)
