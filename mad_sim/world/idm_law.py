"""The Intelligent Driver Model's longitudinal law and the IDM policy's parameters.

The model (Treiber, Hennecke, Helbing 2000) for a driver at speed ``v`` (m/s)
behind an obstacle at bumper gap ``s`` (m) closing at ``dv`` (m/s)::

    a = a_max (1 - (v / v0)^delta - (s* / s)^2),   s* = s0 + max(0, v T + v dv / (2 sqrt(a_max b)))

Used by :class:`mad_sim.world.idm.IDM` for leaders
(:mod:`mad_sim.world.leaders`) and for stop lines, which act as standing
obstacles (:mod:`mad_sim.world.stop_lines`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["IDMParams", "idm_accel", "MPH"]

MPH = 0.44704
"""m/s per mile per hour (WOMD lane speed limits are in mph)."""


@dataclass(frozen=True)
class IDMParams:
    """Intelligent Driver Model parameters, lane matching and traffic-control behaviour.

    Attributes:
      desired_speed: m/s; None = the lane's speed limit (else ``default_speed``).
      default_speed: m/s on lanes without a speed limit.
      max_accel: m/s^2, ``a`` in the IDM.
      comfort_decel: m/s^2, ``b`` in the IDM (positive).
      max_decel: m/s^2, hardest braking applied (positive); the IDM may ask for more.
      time_headway: s, ``T``.
      min_gap: m, ``s0``, bumper-to-bumper gap kept when stopped.
      exponent: ``delta``.
      lane_match_distance: m, an agent is on a lane when its centre is within
        this distance of the lane centre line...
      lane_match_angle: rad, ...and its heading within this angle of the lane's.
      corridor_margin: m, an agent ahead is a leader when its centre is within
        ``(w_self + w_other) / 2 + corridor_margin`` of the path laterally.
      lookahead: m, leaders and stop lines farther ahead than this are ignored.
      traffic_controls: obey signals and stop signs.
      signal_decel: m/s^2, the hardest constant deceleration a driver accepts
        to stop for a signal (beyond it the driver goes through).
      stop_margin: m between the front bumper and the stop line when stopped.
      stop_speed: m/s, below this a driver at a stop sign counts as stopped...
      stop_reach: m, ...when its front is within this distance of the stop position.
      off_lane_min_speed: m/s; a vehicle or cyclist on no lane moving at least this fast
        drives straight along its heading, its speed then as the desired speed, braking
        for leaders on that line; slower ones (parked cars) keep their velocity.
        ``inf``: every agent on no lane keeps its velocity (no straight paths).
    """

    desired_speed: Optional[float] = None
    default_speed: float = 11.0
    max_accel: float = 1.5
    comfort_decel: float = 2.0
    max_decel: float = 8.0
    time_headway: float = 1.5
    min_gap: float = 2.0
    exponent: float = 4.0
    lane_match_distance: float = 2.0
    lane_match_angle: float = np.pi / 4
    corridor_margin: float = 0.4
    lookahead: float = 80.0
    traffic_controls: bool = True
    signal_decel: float = 3.0
    stop_margin: float = 1.0
    stop_speed: float = 0.3
    stop_reach: float = 2.0
    off_lane_min_speed: float = 1.0


def idm_accel(v: np.ndarray, v0: np.ndarray, gap: np.ndarray, dv: np.ndarray, p: IDMParams) -> np.ndarray:
    """IDM acceleration [...] m/s^2.

    ``a = a_max (1 - (v/v0)^delta - (s*/gap)^2)``, ``s* = s0 + max(0, v T + v dv / (2 sqrt(a_max b)))``,
    with ``v`` the speed, ``v0`` the desired speed, ``gap`` the bumper gap to the leader (inf: none)
    and ``dv = v - v_leader`` (approach rate).  Clipped below at ``-max_decel``.
    """
    s_star = p.min_gap + np.maximum(0.0, v * p.time_headway + v * dv / (2.0 * np.sqrt(p.max_accel * p.comfort_decel)))
    free = 1.0 - (np.maximum(v, 0.0) / np.maximum(v0, 0.1)) ** p.exponent
    inter = np.where(np.isfinite(gap), (s_star / np.maximum(gap, 0.01)) ** 2, 0.0)
    return np.maximum(p.max_accel * (free - inter), -p.max_decel)
