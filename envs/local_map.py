"""A crop of the map around the ego, refreshed as it drives (keeps per-step map queries small).

WOMD maps hold thousands of points; the per-step queries (nearest road-graph
points, distance to the road edge) only need the ones within tens of metres.
:class:`LocalMap` keeps the features having a point within ``radius`` of a
centre and the resampled road-graph points within the same radius, and
re-crops once the ego is more than ``refresh`` metres from that centre.
Queries within ``radius - refresh`` metres of the ego are therefore exact.
"""

from __future__ import annotations

import numpy as np

from mad_sim.data.scenario import RoadMap
from mad_sim.envs.observation import RoadgraphPoints


def crop_roadmap(roadmap: RoadMap, center: np.ndarray, radius: float) -> RoadMap:
    """The features of ``roadmap`` with at least one point within ``radius`` m of ``center`` (whole features kept)."""
    pts = roadmap.points
    if len(pts) == 0:
        return roadmap
    near = ((pts[:, :2] - center) ** 2).sum(-1) <= radius * radius
    owner = roadmap.point_feature_index()
    feat = np.bincount(owner, weights=near, minlength=roadmap.num_features) > 0
    counts = np.diff(roadmap.offsets)[feat]
    return RoadMap(ids=roadmap.ids[feat], kinds=roadmap.kinds[feat], subtypes=roadmap.subtypes[feat],
                   offsets=np.r_[0, np.cumsum(counts)].astype(np.int64), points=pts[feat[owner]],
                   lanes=roadmap.lanes, stop_sign_lanes=roadmap.stop_sign_lanes)


class LocalMap:
    """Cropped map + road-graph points around a moving centre."""

    def __init__(self, roadmap: RoadMap, points: RoadgraphPoints, radius: float, refresh: float = 10.0) -> None:
        self.roadmap_full = roadmap
        self.points_full = points
        self.radius = float(radius)
        self.refresh = float(refresh)
        self.center = np.full(2, np.inf)
        self.roadmap = roadmap
        self.points = points

    def update(self, xy: np.ndarray) -> None:
        if ((xy - self.center) ** 2).sum() <= self.refresh * self.refresh:
            return
        self.center = np.asarray(xy, np.float64).copy()
        self.roadmap = crop_roadmap(self.roadmap_full, self.center, self.radius)
        p = self.points_full
        keep = ((p.xy - self.center) ** 2).sum(-1) <= self.radius * self.radius
        self.points = RoadgraphPoints(p.xy[keep], p.direction[keep], p.kinds[keep])
