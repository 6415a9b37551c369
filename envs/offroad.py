"""The ego's signed road-edge distance, one point per step, without re-scanning the crop.

:func:`mad_sim.world.road_distance.road_edge_distance` is exact but built for many
points at once: for a single point on a dense WOMD crop (about 1,200 edge and
1,900 lane segments within 55 m) its bounding-box prefilters cost more than
the answer.  :class:`RoadEdgeProbe` returns the SAME number for one point by
keeping a *window*: the segments whose bounding box meets the square
``[c - R, c + R]`` around the point ``c`` of the last full evaluation
(``R``: see :data:`WINDOW_SLACK_M`).

Why a window answer is exact.  A segment outside the window has its bounding
box outside that square, so its distance to a point ``p`` is at least
``R - |p - c|_inf``.  If the nearest road-edge segment (distance ``e``) and
the nearest lane segment (distance ``l``) found in the window are both closer
than that bound, no segment outside can be nearer (and none ties, so the
lowest-index tie rule picks the same segment).  The nearest lane point ``q``
then lies inside the square too, so every edge segment whose bounding box
meets the box of ``p -> q`` (the only ones the crossing-parity test counts)
is in the window.  Distances and crossings are computed by the same
element-wise functions as the full query, hence bit-identical.  Otherwise the
probe runs the full query on the crop and re-centres the window on ``p``.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from mad_sim.envs.local_map import LocalMap

from mad_sim.errors import ShapeError
from mad_sim.world.geometry import point_segment_distance, segments_cross
from mad_sim.world.road_distance import MapSegments, segments_in_box, signed_road_distance

WINDOW_SLACK_M = 6.0
"""The window's half side is ``R = max(e, l) + slack`` (m) with ``e`` / ``l`` the edge / lane distances
at the full evaluation: the point may then drift about ``slack`` metres before the window cannot prove
the answer any more (smaller windows are cheaper to scan, larger ones are re-built less often)."""

_RADIUS_M = 30.0  # the prefilter radius of road_edge_distance_details (its default)


class RoadEdgeProbe:
    """``signed(xy)``: :func:`~mad_sim.world.road_distance.road_edge_distance` of one point on a
    :class:`~mad_sim.envs.local_map.LocalMap`'s current crop (m, positive off the road)."""

    def __init__(self, local: LocalMap, lane_half_width: float = 1.8, slack: float = WINDOW_SLACK_M) -> None:
        self.local = local
        self.lane_half_width = float(lane_half_width)
        self.slack = float(slack)
        self._generation = -1
        self._center = np.zeros(2)
        self._half = 0.0
        self._win: Optional[MapSegments] = None
        self.full_queries = 0

    def signed(self, xy: np.ndarray) -> float:
        p = np.asarray(xy, np.float64).reshape(2)
        if not (math.isfinite(p[0]) and math.isfinite(p[1])):
            raise ShapeError("road_edge_distance got a non-finite point")
        segs = self.local.segments
        if self._generation != self.local.generation:
            self._generation, self._win = self.local.generation, None
        if segs.edge_a.shape[0] == 0 or segs.lane_a.shape[0] == 0:  # the edge-only / lane-only rules
            return float(signed_road_distance(p[None], segs, self.lane_half_width, _RADIUS_M).signed[0])
        if self._win is not None:
            hit = self._window_query(p)
            if hit is not None:
                return hit
        self.full_queries += 1
        full = signed_road_distance(p[None], segs, self.lane_half_width, _RADIUS_M)
        self._recentre(p, segs, max(float(full.edge_distance[0]), float(full.lane_distance[0])) + self.slack)
        return float(full.signed[0])

    def _recentre(self, p: np.ndarray, segs: MapSegments, half: float) -> None:
        self._half = half
        lo, hi = p - half, p + half
        e = segments_in_box(segs.edge_lo, segs.edge_hi, lo, hi)
        ln = segments_in_box(segs.lane_lo, segs.lane_hi, lo, hi)
        self._center = p.copy()
        self._win = MapSegments(
            edge_a=segs.edge_a[e],
            edge_b=segs.edge_b[e],
            lane_a=segs.lane_a[ln],
            lane_b=segs.lane_b[ln],
            lane_feature=segs.lane_feature[ln],
            lane_s0=segs.lane_s0[ln],
        )

    def _window_query(self, p: np.ndarray) -> Optional[float]:
        """The exact signed distance from the window, or None when the window cannot prove it."""
        w = self._win
        if w is None:  # callers query only a built window
            return None
        if w.edge_a.shape[0] == 0 or w.lane_a.shape[0] == 0:
            return None
        bound = self._half - max(abs(p[0] - self._center[0]), abs(p[1] - self._center[1]))
        pts = p[None]
        de, _ = point_segment_distance(pts, w.edge_a, w.edge_b)
        je = int(de[0].argmin())
        e = float(de[0, je])
        if not e < bound:
            return None
        dl, tl = point_segment_distance(pts, w.lane_a, w.lane_b)
        jl = int(dl[0].argmin())
        if not float(dl[0, jl]) < bound:
            return None
        q = w.lane_a[jl] + tl[0, jl] * (w.lane_b[jl] - w.lane_a[jl])
        qq = q[None]
        cand = segments_in_box(w.edge_lo, w.edge_hi, np.minimum(pts, qq).min(0), np.maximum(pts, qq).max(0))
        crosses = bool(cand.size) and bool(segments_cross(pts, qq, w.edge_a[cand], w.edge_b[cand]).sum(-1)[0] % 2 == 1)
        return e if crosses else -e
