"""Kinematic features of trajectories, as WOSAC defines them.

All arrays ``[..., T]`` along time at ``dt`` seconds per step; positions in
metres (any frame), headings in radians.

- linear speed ``v[t] = ||p[t+1] - p[t-1]|| / (2 dt)`` (3-D positions, central
  difference), NaN at the first and last step;
- linear acceleration ``a[t] = (v[t+1] - v[t-1]) / (2 dt)`` (signed change of
  the speed magnitude), NaN at the first two and last two steps;
- angular speed ``w[t] = wrap(2 * (h[t+1] - h[t-1]) / 2) / 2 / dt``: the
  central difference of the heading is doubled before wrapping into
  ``[-pi, pi)`` and halved after, so the two-step change is taken as the acute
  one (at most pi/2 per step);
- angular acceleration: the same operation applied to the per-step heading
  change, divided by ``dt^2``.

Validity: a speed at ``t`` is valid when steps ``t-1`` and ``t+1`` are;
an acceleration when the speeds at ``t-1`` and ``t+1`` are (``t-2 .. t+2``).
WOSAC applies this to the 80-step *future* validity, so the first and last
future step never score a speed (and the first two / last two never an
acceleration).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np


def central_diff(x: np.ndarray, pad: float = np.nan) -> np.ndarray:
    """``(x[t+1] - x[t-1]) / 2`` along the last axis, ``pad`` at both ends (same shape as ``x``)."""
    x = np.asarray(x, np.float64)
    out = np.full(x.shape, pad, np.float64)
    if x.shape[-1] >= 3:
        out[..., 1:-1] = (x[..., 2:] - x[..., :-2]) / 2.0
    return out


def central_and(valid: np.ndarray) -> np.ndarray:
    """``valid[t-1] & valid[t+1]`` along the last axis, False at both ends."""
    v = np.asarray(valid, bool)
    out = np.zeros(v.shape, bool)
    if v.shape[-1] >= 3:
        out[..., 1:-1] = v[..., 2:] & v[..., :-2]
    return out


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Angles into ``[-pi, pi)``."""
    return (np.asarray(a, np.float64) + np.pi) % (2 * np.pi) - np.pi


def kinematic_features(
    xyz: np.ndarray, heading: np.ndarray, dt: float = 0.1
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(linear_speed, linear_accel, angular_speed, angular_accel)``, each ``[..., T]``.

    ``xyz [..., T, 3]`` metres, ``heading [..., T]`` radians; see the module docstring.
    """
    d = central_diff(np.moveaxis(np.asarray(xyz, np.float64), -1, 0))  # [3, ..., T]
    speed = np.sqrt((d**2).sum(0)) / dt
    accel = central_diff(speed) / dt
    dh = wrap_angle(central_diff(heading) * 2.0) / 2.0
    d2h = wrap_angle(central_diff(dh) * 2.0) / 2.0
    return speed, accel, dh / dt, d2h / dt**2


def kinematic_validity(valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(speed_valid, accel_valid)`` from a step validity ``[..., T]`` (see the module docstring)."""
    sv = central_and(valid)
    return sv, central_and(sv)
