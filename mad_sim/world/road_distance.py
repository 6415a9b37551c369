"""Distances from points to a road map: its segments (cached per map), the
signed distance to the nearest road edge, and the nearest lane.

Everything is in the world frame (metres), pure numpy, vectorised over points
and segments; the primitives (point-segment distance, crossings) are in
:mod:`mad_sim.world.geometry`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from mad_sim.data.scenario import MapKind, RoadMap
from mad_sim.errors import ShapeError
from mad_sim.world.geometry import point_segment_distance, segments_cross

__all__ = [
    "MapSegments",
    "feature_segments",
    "map_segments",
    "segments_in_box",
    "RoadDistance",
    "road_edge_distance_details",
    "signed_road_distance",
    "road_edge_distance",
]


# ----------------------------------------------------------------------------- map segments
@dataclass
class MapSegments:
    """The segments of a :class:`RoadMap`'s lanes and road edges, with bounding boxes.

    ``*_a`` / ``*_b`` [S, 2]: segment end points (m); ``*_lo`` / ``*_hi``
    [S, 2]: their axis-aligned bounding boxes; ``lane_feature`` [S]: index of
    the lane feature a lane segment belongs to; ``lane_s0`` [S]: arclength of
    the segment start along its lane.
    """

    edge_a: np.ndarray
    edge_b: np.ndarray
    lane_a: np.ndarray
    lane_b: np.ndarray
    lane_feature: np.ndarray
    lane_s0: np.ndarray

    @staticmethod
    def _bbox(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        return np.minimum(a, b), np.maximum(a, b)

    def __post_init__(self) -> None:
        self.edge_lo, self.edge_hi = self._bbox(self.edge_a, self.edge_b)
        self.lane_lo, self.lane_hi = self._bbox(self.lane_a, self.lane_b)


def feature_segments(roadmap: RoadMap, kind: MapKind) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(a [S, 2], b [S, 2], feature index [S], start arclength [S]) of all features of ``kind``.

    Every point but the last of a feature starts a segment; the start
    arclength is measured along the segment's own feature.
    """
    pts = roadmap.points[:, :2]
    fidx = roadmap.point_feature_index()
    if pts.shape[0] < 2:
        z = np.zeros((0, 2))
        return z, z, np.zeros(0, np.int64), np.zeros(0)
    same = fidx[1:] == fidx[:-1]
    step = np.where(same, np.hypot(*np.diff(pts, axis=0).T), 0.0)
    cum = np.concatenate([[0.0], np.cumsum(step)])  # running length, reset below per feature
    first_point = roadmap.offsets[:-1][fidx]
    along = cum - cum[first_point]
    idx = np.flatnonzero(same & (roadmap.kinds[fidx[:-1]] == int(kind)))
    return pts[idx], pts[idx + 1], fidx[idx].astype(np.int64), along[idx]


_CACHE: Dict[int, Tuple["weakref.ref[RoadMap]", MapSegments]] = {}


def map_segments(roadmap: RoadMap) -> MapSegments:
    """The (cached) :class:`MapSegments` of a road map; maps are never modified, so one build serves all steps."""
    hit = _CACHE.get(id(roadmap))
    if hit is not None and hit[0]() is roadmap:
        return hit[1]
    ea, eb, _, _ = feature_segments(roadmap, MapKind.ROAD_EDGE)
    la, lb, lf, ls = feature_segments(roadmap, MapKind.LANE)
    segs = MapSegments(edge_a=ea, edge_b=eb, lane_a=la, lane_b=lb, lane_feature=lf, lane_s0=ls)
    key = id(roadmap)

    def forget(_ref: "weakref.ref[RoadMap]", k: int = key) -> None:  # the map was collected: drop its entry
        _CACHE.pop(k, None)

    _CACHE[key] = (weakref.ref(roadmap, forget), segs)
    return segs


def segments_in_box(lo: np.ndarray, hi: np.ndarray, box_lo: np.ndarray, box_hi: np.ndarray) -> np.ndarray:
    """Indices of segments whose bounding box intersects the box ``[box_lo, box_hi]``."""
    return np.flatnonzero(((lo <= box_hi) & (hi >= box_lo)).all(-1))


def _nearest(
    points: np.ndarray, a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, radius: float
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest segment of every point: (distance [K], segment index [K], t [K]); inf / -1 without segments.

    Spatial prefilter: only segments whose bounding box meets the points'
    bounding box grown by ``radius`` are tested; points whose nearest hit is
    farther than ``radius`` (a closer segment could have been filtered out)
    are re-tested against all segments.
    """
    k = points.shape[0]
    dist = np.full(k, np.inf)
    seg = np.full(k, -1, np.int64)
    t = np.zeros(k)
    if a.shape[0] == 0 or k == 0:
        return dist, seg, t
    cand = segments_in_box(lo, hi, points.min(0) - radius, points.max(0) + radius)
    todo = np.arange(k)
    if cand.size:
        d, tt = point_segment_distance(points, a[cand], b[cand])
        j = d.argmin(-1)
        dist, seg, t = d[np.arange(k), j], cand[j], tt[np.arange(k), j]
        todo = np.flatnonzero(dist > radius)
    if todo.size:
        d, tt = point_segment_distance(points[todo], a, b)
        j = d.argmin(-1)
        dist[todo], seg[todo], t[todo] = d[np.arange(todo.size), j], j, tt[np.arange(todo.size), j]
    return dist, seg, t


@dataclass
class RoadDistance:
    """Details of :func:`road_edge_distance_details` for points ``[K]``.

    Attributes:
      signed: [K] m, positive off the road, negative on it.
      edge_distance: [K] m to the nearest road-edge segment (inf without edges).
      lane_distance: [K] m to the nearest lane centre line (inf without lanes).
      crosses_edge: [K] bool, the straight path to the nearest lane centre point crosses road edges an odd number of times.
    """

    signed: np.ndarray
    edge_distance: np.ndarray
    lane_distance: np.ndarray
    crosses_edge: np.ndarray


def road_edge_distance_details(
    points: np.ndarray, roadmap: RoadMap, lane_half_width: float = 1.8, radius: float = 30.0
) -> RoadDistance:
    """Signed distance of points ``[K, 2]`` (world frame) to the road edge, with its parts.

    Method (drivable area = the region around the lanes bounded by road edges):

    1. ``e`` = distance to the nearest road-edge segment, ``q`` = the nearest
       point on any lane centre line (its distance ``l``).
    2. A point is *off the road* iff the straight path from it to ``q``
       crosses road-edge segments an odd number of times: lanes lie on the
       road, so a point that reaches its nearest lane without crossing an edge
       (or crossing out and back in) is on the road's side of every edge.  This needs no convention on how edges are
       oriented and handles medians and islands (the nearest lane is beyond
       the median's edge).
    3. Signed distance = ``+e`` off the road, ``-e`` on it.  Without road
       edges in the map it is ``l - lane_half_width`` (the lanes' corridors
       are the drivable area); without lanes, the WOMD edge orientation is
       used: the road lies to the left of a road edge's direction, so a point
       to its right is off the road.

    Limits: the method cannot see a missing edge.  A point past the end of
    the mapped road (no edge between it and the lane ends) counts as on the
    road, at the distance of the nearest edge end, as if the road continued.

    Cost: points are sorted by a 40 m grid cell and processed 16 at a time;
    each chunk builds a few ``[16, S']`` arrays where ``S'`` counts the
    segments within ``radius`` (m) of the chunk's bounding box (see
    :func:`_nearest`).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(pts).all():
        raise ShapeError("road_edge_distance got a non-finite point")
    segs = map_segments(roadmap)
    out = RoadDistance(
        signed=np.zeros(len(pts)),
        edge_distance=np.zeros(len(pts)),
        lane_distance=np.zeros(len(pts)),
        crosses_edge=np.zeros(len(pts), bool),
    )
    # spatial chunks: points sorted by a coarse grid cell, so each chunk's bounding box (the prefilter) is small
    cell = np.floor(pts / _CHUNK_CELL_M).astype(np.int64)
    order = np.lexsort((cell[:, 1], cell[:, 0]))
    for start in range(0, len(pts), _CHUNK_POINTS):
        idx = order[start : start + _CHUNK_POINTS]
        part = signed_road_distance(pts[idx], segs, lane_half_width, radius)
        out.signed[idx], out.edge_distance[idx] = part.signed, part.edge_distance
        out.lane_distance[idx], out.crosses_edge[idx] = part.lane_distance, part.crosses_edge
    return out


_CHUNK_POINTS = 16
_CHUNK_CELL_M = 40.0


def signed_road_distance(pts: np.ndarray, segs: MapSegments, lane_half_width: float, radius: float) -> RoadDistance:
    """Signed road-edge distance of points ``[K, 2]`` (world frame, metres) against prepared segments.

    The building block of :func:`road_edge_distance` (which chunks the points and
    prepares ``segs``); exposed so callers that keep their own segment windows
    (the env's offroad probe) get bit-identical answers.  Positive = off the road.
    """
    e_dist, e_seg, _ = _nearest(pts, segs.edge_a, segs.edge_b, segs.edge_lo, segs.edge_hi, radius)
    l_dist, l_seg, l_t = _nearest(pts, segs.lane_a, segs.lane_b, segs.lane_lo, segs.lane_hi, radius)
    k = pts.shape[0]
    crosses = np.zeros(k, bool)
    if segs.edge_a.shape[0] == 0:
        signed = l_dist - lane_half_width
    elif segs.lane_a.shape[0] == 0:
        a, b = segs.edge_a[e_seg], segs.edge_b[e_seg]
        cross = (b[:, 0] - a[:, 0]) * (pts[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (pts[:, 0] - a[:, 0])
        signed = np.where(cross < 0, e_dist, -e_dist)
    else:
        q = segs.lane_a[l_seg] + l_t[:, None] * (segs.lane_b[l_seg] - segs.lane_a[l_seg])
        lo = np.minimum(pts, q).min(0)
        hi = np.maximum(pts, q).max(0)
        cand = segments_in_box(segs.edge_lo, segs.edge_hi, lo, hi)
        if cand.size:
            crosses = segments_cross(pts, q, segs.edge_a[cand], segs.edge_b[cand]).sum(-1) % 2 == 1
        signed = np.where(crosses, e_dist, -e_dist)
    return RoadDistance(signed=signed, edge_distance=e_dist, lane_distance=l_dist, crosses_edge=crosses)


def road_edge_distance(points: np.ndarray, roadmap: RoadMap, lane_half_width: float = 1.8) -> np.ndarray:
    """Signed distance ``[K]`` (m) of points ``[K, 2]`` to the road edge: positive = off the road.

    See :func:`road_edge_distance_details` for the method.
    """
    return road_edge_distance_details(points, roadmap, lane_half_width).signed
