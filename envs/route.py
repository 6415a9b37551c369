"""The ego's route: its logged path with a goal at the end and the speed limits along it (world frame, metres).

The route is the polyline of the ego's valid logged positions (repeated
points dropped); :meth:`Route.project` extends its end segments linearly, so
arclength keeps growing past the end, but progress is credited only up to
the **goal**, the end of the logged path (driving past the end of the log
earns nothing).  Reaching the goal is *route completion*: the ego's
arclength within :data:`GOAL_TOLERANCE_M` of it and its lateral offset at
most :data:`GOAL_LATERAL_M` (so a straight line that only projects past the
end of a curved route does not count).

A route with less than :data:`MIN_ROUTE_M` ahead of the starting position
(the logged ego stood still, or did its moving before the present step)
cannot be completed: there is nothing to drive, and any policy's best is to
stay put without colliding.  When the ego's logged positions all lie within
1 m of each other the route is a 1 m stub along the initial heading, for the
observation's route features.

Each route segment carries a **speed limit** (m/s): that of the nearest lane
whose centre line passes within :data:`LANE_MATCH_M` of the segment's start
with a direction within :data:`LANE_MATCH_RAD` of the segment's, if that lane
has a limit (WOMD lanes carry ``speed_limit_mph``); else ``default_limit`` or,
if higher, the logged ego's top speed (the log shows that speed was driven
there: the logged ego is never penalised for speeding on lanes without a limit).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from mad_sim.data.frames import wrap_angle
from mad_sim.data.scenario import DT, RoadMap
from mad_sim.world.idm_law import MPH

MIN_ROUTE_M = 2.0
"""Metres of logged route ahead of the start below which the route cannot be completed."""
GOAL_TOLERANCE_M = 1.0
"""The route counts as completed once the ego's arclength is within this distance of the goal..."""
GOAL_LATERAL_M = 4.0
"""...and the ego is at most this far (m) from the route laterally."""
LANE_MATCH_M = 3.0
"""A lane gives a route segment its speed limit when its centre line is within this distance (m)..."""
LANE_MATCH_RAD = np.pi / 4
"""...and its direction within this angle (rad) of the segment's."""


class Route:
    """The ego's logged path as a polyline with arclength, a goal and per-segment speed limits.

    :meth:`project` follows :func:`mad_sim.world.geometry.project_to_polyline`'s
    conventions (closest segment; the end segments extended, so arclength can be
    negative or exceed the length; lateral offset positive to the left) on
    segment arrays precomputed once per episode, since it runs every step.

    Attributes:
      points: [R, 2] vertices; arclength: [R] m at each vertex.
      goal: m, arclength of the goal (the route's end).
      start: m, arclength of the starting position.
      completable: False when less than :data:`MIN_ROUTE_M` lies ahead of the start.
      log_s: [T] m, the logged ego's arclength at each step (held over invalid steps).
      speed_limit: [R-1] m/s per segment.
      logged_top_speed: m/s, the fastest the logged ego drove between two valid steps.
    """

    def __init__(
        self,
        xy: np.ndarray,
        valid: np.ndarray,
        start_xy: np.ndarray,
        start_heading: float,
        roadmap: RoadMap | None = None,
        default_limit: float = 15.0,
    ) -> None:
        ok = np.asarray(valid, bool)
        xy_all = np.asarray(xy, np.float64)[:, :2]
        both = ok[1:] & ok[:-1]  # the logged top speed, from consecutive valid positions
        top = float(np.hypot(*np.diff(xy_all, axis=0)[both].T).max() / DT) if both.any() else 0.0
        pts = xy_all[ok]
        if len(pts) > 1:  # drop repeated points so every segment has a direction
            keep = np.r_[True, np.linalg.norm(np.diff(pts, axis=0), axis=-1) > 1e-3]
            pts = pts[keep]
        start_xy = np.asarray(start_xy, np.float64)[:2]
        if len(pts) < 2 or float(np.linalg.norm(pts - pts[0], axis=-1).max()) < 1.0:
            # no logged path (an ego that stood still, up to jitter): a 1 m stub, its goal at the start
            self._set(np.stack([start_xy, start_xy + _unit(start_heading)]))
            self.start = 0.0
            self.goal = 0.0
        else:
            self._set(pts)
            self.start = self.project(start_xy)[0]
            self.goal = float(self.arclength[-1])
        self.completable = self.goal - self.start >= MIN_ROUTE_M
        # arclength of the logged ego at each step (its last valid place after the end, its first before the start)
        steps = np.flatnonzero(ok)
        self.log_s = np.zeros(len(ok))
        if steps.size:
            self.log_s[steps] = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy_all[steps], axis=0).T))])
            self.log_s = np.maximum.accumulate(self.log_s)
        if self.goal == 0.0:  # the still stub
            self.log_s = np.zeros(len(ok))
        self.logged_top_speed = top
        self.speed_limit = _segment_limits(self.points, roadmap, max(float(default_limit), top))

    def _set(self, pts: np.ndarray) -> None:
        from mad_sim.world.geometry import polyline_arclength

        self.points = pts
        self.arclength = polyline_arclength(pts)
        self._a = pts[:-1]
        ab = np.diff(pts, axis=0)
        self._len = np.hypot(ab[:, 0], ab[:, 1])
        self._unit = ab / np.maximum(self._len, 1e-12)[:, None]
        self._yaw = np.arctan2(ab[:, 1], ab[:, 0])
        self._lo = np.zeros(len(ab))
        self._lo[0] = -np.inf
        self._hi = self._len.copy()
        self._hi[-1] = np.inf

    @property
    def length(self) -> float:
        """Metres from the starting position to the goal (0 or more)."""
        return max(self.goal - self.start, 0.0)

    def completed(self, s: float, lateral: float) -> bool:
        """Whether arclength ``s`` (m) at lateral offset ``lateral`` (m) reaches the goal (see the module docstring)."""
        return bool(self.completable and s >= self.goal - GOAL_TOLERANCE_M and abs(lateral) <= GOAL_LATERAL_M)

    def project(self, xy: np.ndarray) -> Tuple[float, float, float]:
        """``(arclength m, lateral offset m (left +), route heading rad)`` of a world point."""
        return self.project_segment(xy)[:3]

    def project_segment(self, xy: np.ndarray) -> Tuple[float, float, float, int]:
        """:meth:`project` plus the index of the segment the point projects on."""
        ap = np.asarray(xy, np.float64)[:2] - self._a  # [S, 2]
        along = ap[:, 0] * self._unit[:, 0] + ap[:, 1] * self._unit[:, 1]
        cross = self._unit[:, 0] * ap[:, 1] - self._unit[:, 1] * ap[:, 0]
        t = np.minimum(np.maximum(along, 0.0), self._len)
        dist2 = (along - t) ** 2 + cross**2
        seg = int(np.argmin(dist2))
        a = min(max(float(along[seg]), self._lo[seg]), self._hi[seg])
        off = ap[seg] - a * self._unit[seg]
        lateral = float(np.copysign(np.hypot(off[0], off[1]), cross[seg])) if cross[seg] != 0 else 0.0
        return float(self.arclength[seg] + a), lateral, float(self._yaw[seg]), seg


def _unit(heading: float) -> np.ndarray:
    return np.array([np.cos(heading), np.sin(heading)])


def _segment_limits(points: np.ndarray, roadmap: RoadMap | None, default: float) -> np.ndarray:
    """[R-1] m/s: the speed limit of the lane nearest each segment's start (see the module docstring)."""
    n = len(points) - 1
    out = np.full(n, default)
    if roadmap is None or not roadmap.lanes:
        return out
    from mad_sim.world.road_distance import map_segments

    segs = map_segments(roadmap)
    if segs.lane_a.shape[0] == 0:
        return out
    per_feature = np.array([roadmap.lanes[int(i)].speed_limit_mph if int(i) in roadmap.lanes else 0.0 for i in roadmap.ids])
    mph = per_feature[segs.lane_feature]
    has = mph > 0
    if not has.any():
        return out
    a, b, limit = segs.lane_a[has], segs.lane_b[has], mph[has] * MPH
    q = points[:-1]
    lo, hi = q.min(0) - LANE_MATCH_M, q.max(0) + LANE_MATCH_M
    near = np.flatnonzero(((np.minimum(a, b) <= hi) & (np.maximum(a, b) >= lo)).all(-1))
    if near.size == 0:
        return out
    a, b, limit = a[near], b[near], limit[near]
    ab = b - a
    l2 = np.maximum((ab**2).sum(-1), 1e-12)
    aq = q[:, None, :] - a[None]
    t = np.clip(np.einsum("qsk,sk->qs", aq, ab) / l2, 0.0, 1.0)
    d = np.hypot(*(aq - t[..., None] * ab[None]).transpose(2, 0, 1))  # [R-1, S]
    seg_yaw = np.arctan2(*np.diff(points, axis=0)[:, ::-1].T)
    lane_yaw = np.arctan2(ab[:, 1], ab[:, 0])
    ok = (d <= LANE_MATCH_M) & (np.abs(wrap_angle(seg_yaw[:, None] - lane_yaw[None])) <= LANE_MATCH_RAD)
    cost = np.where(ok, d, np.inf)
    j = cost.argmin(1)
    found = np.isfinite(cost[np.arange(n), j])
    out[found] = limit[j[found]]
    return out
