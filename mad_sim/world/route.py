"""The ego's route: its logged path as a polyline, and progress along it.

The route of track ``i`` is the polyline through its valid logged centres
(world frame, metres) from ``t0`` (default: the first valid step) to the end
of the log, with vertices closer than ``min_spacing`` to the previous kept one
dropped (a parked stretch would otherwise give zero-length segments whose
direction is noise).  Progress of a point is its arclength on the route
(:func:`~mad_sim.world.geometry.project_to_polyline`, extended linearly before
the start and past the end).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from mad_sim.data.scenario import Scenario
from mad_sim.errors import SchemaError
from mad_sim.world.geometry import interpolate_polyline, polyline_arclength, project_to_polyline

__all__ = ["Route", "route_from_log"]


@dataclass
class Route:
    """A route polyline.

    Attributes:
      points: [K, 2] m, world frame.
      arclength: [K] m, cumulative, starting at 0.
    """

    points: np.ndarray
    arclength: np.ndarray

    @property
    def length(self) -> float:
        return float(self.arclength[-1])

    def progress(self, xy: np.ndarray) -> np.ndarray:
        """Arclength [...] (m) of points ``xy`` [..., 2] along the route."""
        return project_to_polyline(xy, self.points)[0]

    def project(self, xy: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(arclength [...], signed lateral offset [...], positive left) of points ``xy`` [..., 2]."""
        return project_to_polyline(xy, self.points)

    def at(self, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(point [..., 2], heading [...]) at arclength ``s`` [...] m."""
        return interpolate_polyline(self.points, s)


def route_from_log(scenario: Scenario, track: Optional[int] = None, t0: Optional[int] = None,
                   min_spacing: float = 0.2) -> Route:
    """The logged path of ``track`` (default: the SDC) from step ``t0`` as a :class:`Route`.

    Raises SchemaError when the track has no valid step from ``t0`` on.
    """
    i = scenario.sdc_index if track is None else int(track)
    valid = scenario.tracks.valid[i].copy()
    if t0 is not None:
        valid[:int(t0)] = False
    xy = scenario.tracks.xy[i][valid].astype(np.float64)
    if xy.shape[0] == 0:
        raise SchemaError(f"track {i} has no valid step from {t0 or 0} on", path=scenario.source or scenario.scenario_id,
                          field="tracks.valid")
    keep = [0]
    for k in range(1, xy.shape[0]):  # one pass over <= 91 points, not a hot path
        if np.hypot(*(xy[k] - xy[keep[-1]])) >= min_spacing:
            keep.append(k)
    pts = xy[keep]
    return Route(points=pts, arclength=polyline_arclength(pts))
