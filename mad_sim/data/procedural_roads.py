"""Road layouts for the procedural generator: lanes, lane graph, road lines, edges.

A layout is built in a local world frame (metres, x east, y north, z = 0) from
*reference paths*: polylines sampled every ``STEP`` metres whose lanes are
lateral offsets ``d`` (left positive) of the path,

    p_lane(s) = c(s) + d * n(s),   n(s) = (-sin psi(s), cos psi(s)),

so lanes, lines and edges of one road stay parallel on curves.  Three kinds:

* ``straight``: one road along +x, 1-2 lanes per direction;
* ``curve``: a straight lead-in, a circular arc (radius 40-120 m, turning
  50-110 degrees left or right) and a straight lead-out;
* ``intersection``: four two-way arms meeting in a square box, with connector
  lanes (``interpolating``) for straight and right turns, and crosswalks.

Routes (lists of lane indices from entry to exit) are what vehicles drive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from mad_sim.data.scenario import MapKind, RoadEdgeType, RoadLineType

LANE_WIDTH = 3.7
STEP = 1.0


@dataclass
class Lane:
    """One lane centre line ``xy`` [K, 2] (direction of travel = point order)."""

    xy: np.ndarray
    speed_limit_mph: float
    interpolating: bool = False
    entry: List[int] = field(default_factory=list)
    exit: List[int] = field(default_factory=list)
    left: List[int] = field(default_factory=list)
    right: List[int] = field(default_factory=list)
    green: bool = True  # False: a red signal at its end (intersection incoming lanes)
    signal: bool = False  # whether a traffic signal controls its end


@dataclass
class Layout:
    """A generated road network (indices into ``lanes`` are lane numbers)."""

    kind: str
    lanes: List[Lane]
    lines: List[Tuple[np.ndarray, int]]  # (xy [K, 2], RoadLineType)
    edges: List[Tuple[np.ndarray, int]]  # (xy [K, 2], RoadEdgeType)
    polygons: List[Tuple[np.ndarray, MapKind]]  # crosswalks etc. (xy [4, 2], kind)
    routes: List[List[int]]  # lane sequences a vehicle can drive
    sidewalks: List[np.ndarray]  # pedestrian paths xy [K, 2]


def arclength(xy: np.ndarray) -> np.ndarray:
    """[K] cumulative distance along a polyline [K, 2]."""
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])


def headings(xy: np.ndarray) -> np.ndarray:
    """[K] tangent direction of a polyline (forward differences, last repeated)."""
    d = np.diff(xy, axis=0)
    h = np.arctan2(d[:, 1], d[:, 0])
    return np.concatenate([h, h[-1:]])


def offset(xy: np.ndarray, d: float) -> np.ndarray:
    """The polyline shifted ``d`` metres to its left (negative: right)."""
    h = headings(xy)
    return xy + d * np.stack([-np.sin(h), np.cos(h)], -1)


def path_from_segments(start: Tuple[float, float, float], segments: List[Tuple[float, float]]) -> np.ndarray:
    """Sample a path of ``(length, curvature)`` segments from ``(x, y, heading)``, every STEP metres."""
    x, y, h = start
    pts = [(x, y)]
    for length, kappa in segments:
        n = max(1, int(round(length / STEP)))
        ds = length / n
        for _ in range(n):
            if abs(kappa) < 1e-9:
                x, y = x + ds * np.cos(h), y + ds * np.sin(h)
            else:
                h1 = h + kappa * ds
                x, y = x + (np.sin(h1) - np.sin(h)) / kappa, y - (np.cos(h1) - np.cos(h)) / kappa
                h = h1
            pts.append((x, y))
    return np.asarray(pts)


def _two_way_road(
    center: np.ndarray, n_per_dir: int, speed_mph: float, lanes: List[Lane], lines: list, edges: list
) -> Tuple[List[int], List[int]]:
    """Add the lanes, lines and edges of a two-way road around ``center``; return (forward, backward) lane ids, left to right."""
    fwd, bwd = [], []
    for k in range(n_per_dir):  # k = 0 is the lane next to the centre line
        fwd.append(len(lanes))
        lanes.append(Lane(offset(center, -(k + 0.5) * LANE_WIDTH), speed_mph))
    for k in range(n_per_dir):
        bwd.append(len(lanes))
        lanes.append(Lane(offset(center, (k + 0.5) * LANE_WIDTH)[::-1].copy(), speed_mph))
    for group in (fwd, bwd):  # neighbours: towards the centre line is "left"
        for a, b in zip(group[:-1], group[1:]):
            lanes[b].left.append(a)
            lanes[a].right.append(b)
    lines.append((center.copy(), int(RoadLineType.SOLID_DOUBLE_YELLOW)))
    for k in range(1, n_per_dir):
        lines.append((offset(center, -k * LANE_WIDTH), int(RoadLineType.BROKEN_SINGLE_WHITE)))
        lines.append((offset(center, k * LANE_WIDTH), int(RoadLineType.BROKEN_SINGLE_WHITE)))
    half = n_per_dir * LANE_WIDTH
    edges.append((offset(center, -half), int(RoadEdgeType.BOUNDARY)))
    edges.append((offset(center, half), int(RoadEdgeType.BOUNDARY)))
    return fwd, [bwd[k] for k in range(n_per_dir)]


def _corridor(kind: str, center: np.ndarray, rng: np.random.Generator) -> Layout:
    n = int(rng.integers(1, 3))
    speed = float(rng.choice([25.0, 30.0, 35.0]))
    lanes: List[Lane] = []
    lines: list = []
    edges: list = []
    fwd, bwd = _two_way_road(center, n, speed, lanes, lines, edges)
    half = n * LANE_WIDTH
    sidewalks = [offset(center, -(half + 2.0)), offset(center, half + 2.0)[::-1].copy()]
    return Layout(kind, lanes, lines, edges, [], [[i] for i in fwd + bwd], sidewalks)


def straight_layout(rng: np.random.Generator, length: float = 300.0) -> Layout:
    return _corridor("straight", path_from_segments((-length / 2, 0.0, 0.0), [(length, 0.0)]), rng)


def curve_layout(rng: np.random.Generator) -> Layout:
    radius = float(rng.uniform(40.0, 120.0))
    angle = np.deg2rad(rng.uniform(50.0, 110.0)) * rng.choice([-1.0, 1.0])
    center = path_from_segments((-100.0, 0.0, 0.0), [(100.0, 0.0), (abs(angle) * radius, np.sign(angle) / radius), (100.0, 0.0)])
    return _corridor("curve", center, rng)


def _bezier(p0: np.ndarray, h0: float, p1: np.ndarray, h1: float) -> np.ndarray:
    """Cubic Bezier from ``p0`` leaving along ``h0`` to ``p1`` arriving along ``h1``, about STEP-spaced."""
    dist = float(np.hypot(*(p1 - p0)))
    c0 = p0 + 0.4 * dist * np.array([np.cos(h0), np.sin(h0)])
    c1 = p1 - 0.4 * dist * np.array([np.cos(h1), np.sin(h1)])
    t = np.linspace(0.0, 1.0, max(3, int(dist * 1.3 / STEP)))[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * c0 + 3 * (1 - t) * t**2 * c1 + t**3 * p1


def intersection_layout(rng: np.random.Generator, arm_length: float = 150.0) -> Layout:
    """Four one-lane-per-direction arms (E, N, W, S) around a box of half-size ``h``.

    Signals: the N-S arms are green for the whole log, the E-W arms red, so
    green routes (straight and right turns from N and S) never cross.
    """
    speed = float(rng.choice([25.0, 30.0]))
    h = LANE_WIDTH + 4.0
    lanes: List[Lane] = []
    lines: list = []
    edges: list = []
    polygons: list = []
    sidewalks: List[np.ndarray] = []
    incoming: Dict[int, int] = {}
    outgoing: Dict[int, int] = {}
    for arm in range(4):  # arm a points along angle a * 90 degrees from the centre
        ang = arm * np.pi / 2
        u = np.array([np.cos(ang), np.sin(ang)])
        # centre line of the arm from its far end towards the box (heading ang + pi)
        start = u * (h + arm_length)
        center = path_from_segments((start[0], start[1], ang + np.pi), [(arm_length, 0.0)])
        fwd, bwd = _two_way_road(center, 1, speed, lanes, lines, edges)
        incoming[arm], outgoing[arm] = fwd[0], bwd[0]
        lanes[fwd[0]].signal = True
        lanes[fwd[0]].green = arm in (1, 3)
        # crosswalk across the arm mouth, 1.5 - 5.5 m outside the box
        v = np.array([-u[1], u[0]])
        a, b = h + 1.5, h + 5.5
        w = LANE_WIDTH + 0.5
        polygons.append((np.array([u * a - v * w, u * b - v * w, u * b + v * w, u * a + v * w]), MapKind.CROSSWALK))
        sidewalks.append(offset(center, -(LANE_WIDTH + 2.0)))
    # curb corners between neighbouring arms (quarter circles joining the edges)
    for arm in range(4):
        ang = arm * np.pi / 2
        corner = np.array([np.cos(ang) - np.sin(ang), np.sin(ang) + np.cos(ang)]) * h
        t = np.linspace(0, np.pi / 2, 9)
        r = h - LANE_WIDTH
        arc = corner[None] + r * np.stack([np.cos(ang + np.pi + t), np.sin(ang + np.pi + t)], -1)
        edges.append((arc, int(RoadEdgeType.BOUNDARY)))
    routes: List[List[int]] = []
    for arm in range(4):
        into = incoming[arm]
        for target in ((arm + 2) % 4, (arm + 1) % 4):  # straight, right turn (arm + 1: the next arm counter-clockwise)
            out = outgoing[target]
            p0, p1 = lanes[into].xy[-1], lanes[out].xy[0]
            conn = _bezier(p0, headings(lanes[into].xy)[-1], p1, headings(lanes[out].xy)[0])
            c = len(lanes)
            lanes.append(Lane(conn, speed, interpolating=True, entry=[into], exit=[out]))
            lanes[into].exit.append(c)
            lanes[out].entry.append(c)
            routes.append([into, c, out])
    return Layout("intersection", lanes, lines, edges, polygons, routes, sidewalks)


LAYOUTS = {"straight": straight_layout, "curve": curve_layout, "intersection": intersection_layout}
