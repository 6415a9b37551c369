"""Per-step driving metrics and the configurable reward of ``MADDrive-v0``.

Metrics (all in ``info`` every step, whatever the weights):

- ``collision``: the ego's box overlaps a valid agent's box (oriented-box test,
  :func:`mad_sim.world.geometry.overlap_matrix`).
- ``offroad``: the ego's centre is more than ``offroad_margin`` metres beyond
  the nearest road edge (:func:`mad_sim.world.road_distance.road_edge_distance`,
  positive = off the road; without road edges the lanes' corridors bound the
  road); never set on maps with neither road edges nor lanes.
- ``progress``: metres gained this step along the *route*, the ego's logged
  path (its valid log positions as a polyline); ``route_progress`` is the
  total since reset.  A log whose ego barely moves (< 1 m) gets a 1 m route
  along its initial heading.
- ``jerk``: ``(a_t - a_{t-1}) / dt`` in m/s^3; ``accel``, ``curvature``,
  ``speed`` as applied.
- ``log_divergence``: metres between the ego and its logged position at the
  same step (NaN where the log is invalid, counted as 0 in the reward; in
  ``info`` it is then ``None``, so equal episodes give equal infos).

Reward = ``progress_weight * progress - collision_weight * collision
- offroad_weight * offroad - jerk_weight * |jerk| - divergence_weight * log_divergence``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np

from mad_sim.data.scenario import MapKind, RoadMap
from mad_sim.envs.config import EnvConfig

MIN_ROUTE_LENGTH_M = 1.0


@dataclass
class StepMetrics:
    collision: bool
    offroad: bool
    progress: float
    route_progress: float
    route_lateral: float
    route_heading_error: float
    speed: float
    accel: float
    jerk: float
    curvature: float
    log_divergence: float

    def as_info(self) -> Dict[str, object]:
        d: Dict[str, object] = dict(self.__dict__)
        d["collision"], d["offroad"] = bool(self.collision), bool(self.offroad)
        if not np.isfinite(self.log_divergence):
            d["log_divergence"] = None
        return d


def reward(m: StepMetrics, config: EnvConfig) -> float:
    div = 0.0 if not np.isfinite(m.log_divergence) else m.log_divergence
    return float(config.progress_weight * m.progress - config.collision_weight * float(m.collision)
                 - config.offroad_weight * float(m.offroad) - config.jerk_weight * abs(m.jerk)
                 - config.divergence_weight * div)


class Route:
    """The ego's logged path as a polyline with arclength (world frame, metres).

    :meth:`project` follows :func:`mad_sim.world.geometry.project_to_polyline`'s
    conventions (closest segment; the end segments extended, so arclength can be
    negative or exceed the length; lateral offset positive to the left) on
    segment arrays precomputed once per episode, since it runs every step.
    """

    def __init__(self, xy: np.ndarray, valid: np.ndarray, start_xy: np.ndarray, start_heading: float) -> None:
        from mad_sim.world.geometry import polyline_arclength

        pts = np.asarray(xy, np.float64)[np.asarray(valid, bool)]
        if len(pts) > 1:  # drop repeated points so every segment has a direction
            keep = np.r_[True, np.linalg.norm(np.diff(pts, axis=0), axis=-1) > 1e-3]
            pts = pts[keep]
        if len(pts) < 2 or polyline_arclength(pts)[-1] < MIN_ROUTE_LENGTH_M:
            d = np.array([np.cos(start_heading), np.sin(start_heading)])
            pts = np.stack([start_xy, start_xy + MIN_ROUTE_LENGTH_M * d])
        self.points = pts
        self.arclength = polyline_arclength(pts)
        self._a = pts[:-1]
        ab = np.diff(pts, axis=0)
        self._len = np.hypot(ab[:, 0], ab[:, 1])
        self._unit = ab / self._len[:, None]
        self._yaw = np.arctan2(ab[:, 1], ab[:, 0])
        self._lo = np.zeros(len(ab))
        self._lo[0] = -np.inf
        self._hi = self._len.copy()
        self._hi[-1] = np.inf

    def project(self, xy: np.ndarray) -> tuple[float, float, float]:
        """``(arclength m, lateral offset m (left +), route heading rad)`` of a world point."""
        ap = np.asarray(xy, np.float64) - self._a  # [S, 2]
        along = ap[:, 0] * self._unit[:, 0] + ap[:, 1] * self._unit[:, 1]
        cross = self._unit[:, 0] * ap[:, 1] - self._unit[:, 1] * ap[:, 0]
        t = np.minimum(np.maximum(along, 0.0), self._len)
        dist2 = (along - t) ** 2 + cross ** 2
        seg = int(np.argmin(dist2))
        a = min(max(float(along[seg]), self._lo[seg]), self._hi[seg])
        off = ap[seg] - a * self._unit[seg]
        lateral = float(np.copysign(np.hypot(off[0], off[1]), cross[seg])) if cross[seg] != 0 else 0.0
        return float(self.arclength[seg] + a), lateral, float(self._yaw[seg])


def has_road_edges(roadmap: RoadMap) -> bool:
    """Whether offroad can be judged: the map has road edges or lanes (their corridors then bound the road)."""
    return bool(np.any((roadmap.kinds == MapKind.ROAD_EDGE) | (roadmap.kinds == MapKind.LANE)))


def ego_collides(xy: np.ndarray, heading: np.ndarray, size: np.ndarray, valid: np.ndarray, ego: int) -> bool:
    """Whether agent ``ego``'s box overlaps any other valid box (``xy[N,2]``, ``size[N,>=2]`` length, width).

    Only agents within the sum of the two half-diagonals are passed to the exact test.
    """
    from mad_sim.world.geometry import overlap_matrix

    half_diag = 0.5 * np.hypot(size[:, 0], size[:, 1])
    near = valid & (((xy - xy[ego]) ** 2).sum(-1) <= (half_diag + half_diag[ego]) ** 2)
    near[ego] = False
    idx = np.flatnonzero(near)
    if idx.size == 0:
        return False
    sel = np.r_[ego, idx]
    m = overlap_matrix(xy[sel], heading[sel], size[sel, 0].astype(np.float64), size[sel, 1].astype(np.float64),
                       np.ones(sel.size, bool))
    return bool(np.asarray(m)[0, 1:].any())
