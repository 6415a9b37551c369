"""A crop of the map around the ego, refreshed as it drives (keeps per-step map queries small).

WOMD maps hold thousands of points; the per-step queries (nearest road-graph
points, distance to the road edge) only need the ones within tens of metres.
:class:`LocalMap` keeps the features having a point within ``radius`` of a
centre and the resampled road-graph points within the same radius, and
re-crops once the ego is more than ``refresh`` metres from that centre.
Queries within ``radius - refresh`` metres of the ego are therefore exact.

Everything that does not depend on the centre is computed once per road map
in a :class:`MapIndex` (per-feature bounding boxes, the lane / road-edge
segments of the whole map with their feature index, the resampled road-graph
points), so a re-crop only tests the points of features whose bounding box
reaches the crop circle and selects segments by feature instead of
rebuilding them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import numpy as np
from mad_sim.envs.observation import RoadgraphPoints

from mad_sim.data.scenario import MapKind, RoadMap
from mad_sim.world.road_distance import MapSegments, feature_segments


def crop_roadmap(roadmap: RoadMap, center: np.ndarray, radius: float) -> RoadMap:
    """The features of ``roadmap`` with at least one point within ``radius`` m of ``center`` (whole features kept)."""
    pts = roadmap.points
    if len(pts) == 0:
        return roadmap
    near = ((pts[:, :2] - center) ** 2).sum(-1) <= radius * radius
    owner = roadmap.point_feature_index()
    feat = np.bincount(owner, weights=near, minlength=roadmap.num_features) > 0
    return _take_features(roadmap, feat, owner)


def _take_features(roadmap: RoadMap, feat: np.ndarray, owner: np.ndarray) -> RoadMap:
    """The sub-map of the features where ``feat`` [M] is True (``owner`` [P]: feature of every point)."""
    counts = np.diff(roadmap.offsets)[feat]
    return RoadMap(
        ids=roadmap.ids[feat],
        kinds=roadmap.kinds[feat],
        subtypes=roadmap.subtypes[feat],
        offsets=np.r_[0, np.cumsum(counts)].astype(np.int64),
        points=roadmap.points[feat[owner]],
        lanes=roadmap.lanes,
        stop_sign_lanes=roadmap.stop_sign_lanes,
    )


INDEX_CACHE_SIZE = 128
"""Map indexes kept by :meth:`MapIndex.build` (least recently used dropped first)."""
_INDEX_CACHE: "OrderedDict[tuple, MapIndex]" = OrderedDict()


@dataclass
class MapIndex:
    """Per-road-map structures, built once and shared by every crop (world frame, metres).

    Attributes:
      roadmap: the full map.
      points: its :class:`RoadgraphPoints` (resampled at the env's spacing).
      owner: [P] feature index of every map point.
      feat_lo, feat_hi: [M, 2] per-feature axis-aligned bounding boxes
        (+inf / -inf for point-less features).
      edge_a, edge_b, edge_feature: [E, 2], [E, 2], [E] road-edge segments and their feature.
      lane_a, lane_b, lane_feature, lane_s0: [S, ...] lane segments, feature, start arclength.
    """

    roadmap: RoadMap
    points: RoadgraphPoints
    owner: np.ndarray
    feat_lo: np.ndarray
    feat_hi: np.ndarray
    edge_a: np.ndarray
    edge_b: np.ndarray
    edge_feature: np.ndarray
    lane_a: np.ndarray
    lane_b: np.ndarray
    lane_feature: np.ndarray
    lane_s0: np.ndarray

    @classmethod
    def build(cls, roadmap: RoadMap, spacing: float) -> "MapIndex":
        """The index of ``roadmap`` at ``spacing`` m, kept for the :data:`INDEX_CACHE_SIZE` maps used last
        (maps are never modified), so an env cycling over a set of scenes builds each map's index once."""
        key = (id(roadmap), float(spacing))
        hit = _INDEX_CACHE.get(key)
        if hit is not None and hit.roadmap is roadmap:
            _INDEX_CACHE.move_to_end(key)
            return hit
        index = _INDEX_CACHE[key] = cls._build(roadmap, spacing)
        while len(_INDEX_CACHE) > INDEX_CACHE_SIZE:
            _INDEX_CACHE.popitem(last=False)
        return index

    @classmethod
    def _build(cls, roadmap: RoadMap, spacing: float) -> "MapIndex":
        m = roadmap.num_features
        owner = roadmap.point_feature_index()
        lo = np.full((m, 2), np.inf)
        hi = np.full((m, 2), -np.inf)
        if len(roadmap.points):
            xy = roadmap.points[:, :2]
            np.minimum.at(lo, owner, xy)
            np.maximum.at(hi, owner, xy)
        ea, eb, ef, _ = feature_segments(roadmap, MapKind.ROAD_EDGE)
        la, lb, lf, ls = feature_segments(roadmap, MapKind.LANE)
        return cls(
            roadmap=roadmap,
            points=RoadgraphPoints.from_roadmap(roadmap, spacing),
            owner=owner,
            feat_lo=lo,
            feat_hi=hi,
            edge_a=ea,
            edge_b=eb,
            edge_feature=ef,
            lane_a=la,
            lane_b=lb,
            lane_feature=lf,
            lane_s0=ls,
        )

    def crop_features(self, center: np.ndarray, radius: float) -> np.ndarray:
        """[M] bool: features with a point within ``radius`` of ``center`` (same set as :func:`crop_roadmap`).

        Only features whose bounding box comes within ``radius`` can qualify;
        the exact point test runs on their points alone.
        """
        gap = np.maximum(np.maximum(self.feat_lo - center, center - self.feat_hi), 0.0)
        cand = (gap * gap).sum(-1) <= radius * radius
        feat = np.zeros(self.roadmap.num_features, bool)
        pts = cand[self.owner]
        if pts.any():
            idx = np.flatnonzero(pts)
            near = ((self.roadmap.points[idx, :2] - center) ** 2).sum(-1) <= radius * radius
            feat[self.owner[idx[near]]] = True
        return feat

    def segments(self, feat: np.ndarray) -> MapSegments:
        """The :class:`MapSegments` of the sub-map of features ``feat`` [M] bool, in the order
        :func:`~mad_sim.world.road_distance.map_segments` gives for that sub-map (``lane_feature``
        holds indices into the FULL map and ``lane_s0`` is the full map's arclength, equal up to
        rounding)."""
        e = feat[self.edge_feature]
        ln = feat[self.lane_feature]
        return MapSegments(
            edge_a=self.edge_a[e],
            edge_b=self.edge_b[e],
            lane_a=self.lane_a[ln],
            lane_b=self.lane_b[ln],
            lane_feature=self.lane_feature[ln],
            lane_s0=self.lane_s0[ln],
        )


class LocalMap:
    """Cropped map + road-graph points (+ their segments) around a moving centre.

    ``generation`` counts re-crops, so per-crop caches (see
    :class:`mad_sim.envs.offroad.RoadEdgeProbe`) know when to drop their state.
    """

    def __init__(
        self, roadmap: RoadMap, points: RoadgraphPoints, radius: float, refresh: float = 10.0, index: Optional[MapIndex] = None
    ) -> None:
        self.roadmap_full = roadmap
        self.points_full = points
        self.index = index
        self.radius = float(radius)
        self.refresh = float(refresh)
        self.center = np.full(2, np.inf)
        self.roadmap = roadmap
        self.points = points
        self.generation = 0
        self._segments: Optional[MapSegments] = None

    def update(self, xy: np.ndarray) -> None:
        d = xy - self.center
        if d[0] * d[0] + d[1] * d[1] <= self.refresh * self.refresh:
            return
        self.center = np.asarray(xy, np.float64).copy()
        r2 = self.radius * self.radius
        self._segments = None
        if self.index is None or not len(self.roadmap_full.points):
            self.roadmap = crop_roadmap(self.roadmap_full, self.center, self.radius)
        else:
            feat = self.index.crop_features(self.center, self.radius)
            self.roadmap = _take_features(self.roadmap_full, feat, self.index.owner)
            self._segments = self.index.segments(feat)
        p = self.points_full
        keep = ((p.xy - self.center) ** 2).sum(-1) <= r2
        self.points = RoadgraphPoints(p.xy[keep], p.direction[keep], p.kinds[keep])
        self.generation += 1

    @property
    def segments(self) -> MapSegments:
        """The lane / road-edge segments of the current crop (equal to ``map_segments(self.roadmap)``
        but for ``lane_feature`` / ``lane_s0``, see :meth:`MapIndex.segments`)."""
        if self._segments is None:
            from mad_sim.world.road_distance import map_segments

            self._segments = map_segments(self.roadmap)
        return self._segments
