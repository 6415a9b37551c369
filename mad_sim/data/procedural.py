"""Seeded procedural scenarios: the default scene and a source of training data.

``generate_scenario(rng, kind)`` builds a road layout
(:mod:`mad_sim.data.procedural_roads`), places vehicles on lanes (no two boxes
overlap) and pedestrians on sidewalks, then *drives* them for ``num_steps``
steps at 10 Hz to produce a WOMD-like log (``current_index`` 10 by default,
the SDC valid for all 9.0 s):

* every vehicle follows a route (a lane sequence) with the intelligent driver
  model (IDM) along the route's arclength ``s``:

      a = a_max [1 - (v / v0)^4 - (s* / gap)^2],  s* = s0 + v T + v dv / (2 sqrt(a_max b))

  where the leader is the nearest vehicle ahead on the same entry lane, or a
  vehicle ahead within 30 m in the world frame (merges), or the stop line of
  a red signal; ``v0`` is the vehicle's desired speed capped by the lane
  speed limit and by ``sqrt(a_lat / |curvature|)`` ahead (it brakes before
  curves);
* pedestrians stand or walk along the sidewalks at 0.8-1.6 m/s.

Speeds stay in [0, 15] m/s.  Vehicles that run past the end of their route
leave the map (``valid`` False from then on), as tracks do in WOMD.
Everything random comes from the passed ``numpy.random.Generator``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from mad_sim.data.procedural_roads import LAYOUTS, Layout, arclength, headings
from mad_sim.data.scenario import (
    DT,
    LaneInfo,
    LaneType,
    MapKind,
    ObjectType,
    RoadMap,
    Scenario,
    SignalState,
    TrafficLights,
    Trajectory,
)
from mad_sim.errors import ConfigError

log = logging.getLogger(__name__)

KINDS = tuple(LAYOUTS)
MPH = 0.44704
MAX_SPEED = 15.0  # m/s
A_MAX, B_COMF, S0, HEADWAY = 1.5, 2.0, 2.0, 1.2
A_LAT = 2.5  # m/s^2, lateral acceleration that sets curve speeds
STOP_BEFORE_END = 7.0  # m: stop line of a red signal, before the crosswalk


@dataclass
class _Route:
    """A drivable path: polyline, arclength, heading, advisory speed, red stop line (or inf)."""

    lanes: List[int]
    xy: np.ndarray
    s: np.ndarray
    heading: np.ndarray
    v_adv: np.ndarray
    stop_s: float

    @property
    def length(self) -> float:
        return float(self.s[-1])


def _route(layout: Layout, lanes: List[int]) -> _Route:
    parts = [layout.lanes[lanes[0]].xy] + [layout.lanes[i].xy[1:] for i in lanes[1:]]
    xy = np.concatenate(parts)
    keep = np.concatenate([[True], np.hypot(*np.diff(xy, axis=0).T) > 1e-6])
    xy = xy[keep]
    s = arclength(xy)
    heading = np.unwrap(headings(xy))
    kappa = np.abs(np.gradient(heading, s, edge_order=1)) if len(s) > 2 else np.zeros(len(s))
    limit = np.concatenate(
        [np.full(len(layout.lanes[i].xy) - (1 if k else 0), layout.lanes[i].speed_limit_mph * MPH) for k, i in enumerate(lanes)]
    )[keep]
    v_lim = np.minimum(np.minimum(limit, MAX_SPEED), np.sqrt(A_LAT / np.maximum(kappa, 1e-6)))
    # advisory speed: the highest speed from which every later limit is reachable braking at B_COMF
    v_adv = v_lim.copy()
    for k in range(len(s) - 2, -1, -1):
        v_adv[k] = min(v_adv[k], np.sqrt(v_adv[k + 1] ** 2 + 2 * B_COMF * (s[k + 1] - s[k])))
    first = layout.lanes[lanes[0]]
    stop_s = float(arclength(first.xy)[-1] - STOP_BEFORE_END) if first.signal and not first.green else np.inf
    return _Route(lanes, xy, s, heading, v_adv, stop_s)


def _place_vehicles(rng: np.random.Generator, routes: List[_Route], count: int, horizon_s: float):
    """Route index, s, length, width, height, desired speed, speed per vehicle; gaps keep boxes apart."""
    groups: dict = {}
    for r, route in enumerate(routes):
        groups.setdefault(route.lanes[0], []).append(r)
    order = list(groups)
    rng.shuffle(order)
    out = []
    quota = np.bincount(rng.integers(0, len(order), count), minlength=len(order))
    for g, first_lane in enumerate(order):
        members = groups[first_lane]
        route0 = routes[members[0]]
        first_len = float(arclength(routes[members[0]].xy[: len(route0.xy)])[-1])
        lane_len = min(first_len, route0.stop_s if np.isfinite(route0.stop_s) else first_len)
        s = float(rng.uniform(3.0, 20.0))
        for _ in range(int(quota[g])):
            length = float(rng.uniform(4.2, 5.3))
            s_center = s + length / 2
            hi = min(lane_len, horizon_s) - length / 2 - 1.0
            if s_center > hi:
                break
            r = int(members[rng.integers(len(members))])
            route = routes[r]
            v_des = float(rng.uniform(6.0, MAX_SPEED))
            v_adv = float(np.interp(s_center, route.s, route.v_adv))
            v = float(rng.uniform(0.6, 1.0)) * min(v_des, v_adv)
            if np.isfinite(route.stop_s):
                v = min(v, np.sqrt(2 * B_COMF * max(0.0, route.stop_s - s_center - length / 2 - S0)))
            out.append((r, s_center, length, float(rng.uniform(1.8, 2.1)), float(rng.uniform(1.45, 1.9)), v_des, v))
            s = s_center + length / 2 + float(rng.uniform(8.0, 30.0))
    # the rear vehicle of each group came first; speeds must let followers keep the IDM gap
    return out


def _drive(routes: List[_Route], placed, num_steps: int):
    """Simulate IDM along routes; returns s [N, T], v [N, T] and whether each vehicle is still on its route."""
    n = len(placed)
    r = np.array([p[0] for p in placed], int)
    s = np.array([p[1] for p in placed])
    length = np.array([p[2] for p in placed])
    v_des = np.array([p[5] for p in placed])
    v = np.array([p[6] for p in placed])
    first = np.array([routes[i].lanes[0] for i in r])
    stop = np.array([routes[i].stop_s for i in r])
    route_len = np.array([routes[i].length for i in r])
    S, V = np.zeros((n, num_steps)), np.zeros((n, num_steps))
    same = first[:, None] == first[None, :]
    for t in range(num_steps):
        S[:, t], V[:, t] = s, v
        xy, hd = _poses(routes, r, s)
        # leader gaps: same entry lane (arclength) or a box ahead in the world frame (merges)
        ds = s[None, :] - s[:, None]
        gap_lane = np.where(same & (ds > 0), ds - (length[:, None] + length[None, :]) / 2, np.inf)
        d = xy[None, :, :] - xy[:, None, :]
        fwd = d[..., 0] * np.cos(hd)[:, None] + d[..., 1] * np.sin(hd)[:, None]
        lat = -d[..., 0] * np.sin(hd)[:, None] + d[..., 1] * np.cos(hd)[:, None]
        aligned = np.cos(hd[None, :] - hd[:, None]) > 0.5
        world = (~same) & aligned & (fwd > 0) & (fwd < 30.0) & (np.abs(lat) < 2.2)
        gap_world = np.where(world, fwd - (length[:, None] + length[None, :]) / 2, np.inf)
        gap = np.minimum(gap_lane, gap_world)
        np.fill_diagonal(gap, np.inf)
        lead = np.argmin(gap, axis=1)
        g = gap[np.arange(n), lead]
        dv = np.where(np.isfinite(g), v - v[lead], 0.0)
        g_stop = np.where(s + length / 2 < stop, stop - s - length / 2, np.inf)
        use_stop = g_stop < g
        g = np.where(use_stop, g_stop, g)
        dv = np.where(use_stop, v, dv)
        v0 = np.maximum(np.minimum(v_des, [np.interp(si, routes[ri].s, routes[ri].v_adv) for ri, si in zip(r, s)]), 0.5)
        s_star = S0 + v * HEADWAY + v * dv / (2 * np.sqrt(A_MAX * B_COMF))
        acc = A_MAX * (1 - (v / v0) ** 4 - np.where(np.isfinite(g), (np.maximum(s_star, 0) / np.maximum(g, 0.1)) ** 2, 0.0))
        acc = np.clip(acc, -8.0, A_MAX)
        v_next = np.clip(v + acc * DT, 0.0, MAX_SPEED)
        s = s + 0.5 * (v + v_next) * DT
        v = v_next
    return r, S, V, S <= route_len[:, None]


def _poses(routes: List[_Route], r: np.ndarray, s: np.ndarray):
    xy = np.zeros((len(r), 2))
    hd = np.zeros(len(r))
    for i, (ri, si) in enumerate(zip(r, s)):
        route = routes[ri]
        xy[i, 0] = np.interp(si, route.s, route.xy[:, 0])
        xy[i, 1] = np.interp(si, route.s, route.xy[:, 1])
        hd[i] = np.interp(si, route.s, route.heading)
    return xy, hd


def _roadmap(layout: Layout) -> RoadMap:
    ids: List[int] = []
    kinds: List[int] = []
    subtypes: List[int] = []
    chunks: List[np.ndarray] = []
    lanes = {}
    for k, lane in enumerate(layout.lanes):
        fid = k + 1
        ids.append(fid)
        kinds.append(MapKind.LANE)
        subtypes.append(LaneType.SURFACE_STREET)
        chunks.append(lane.xy)
        lanes[fid] = LaneInfo(
            speed_limit_mph=lane.speed_limit_mph,
            interpolating=lane.interpolating,
            entry_lanes=[i + 1 for i in lane.entry],
            exit_lanes=[i + 1 for i in lane.exit],
            left_neighbors=[i + 1 for i in lane.left],
            right_neighbors=[i + 1 for i in lane.right],
        )
    for xy, sub in layout.lines:
        ids.append(len(ids) + 1)
        kinds.append(MapKind.ROAD_LINE)
        subtypes.append(sub)
        chunks.append(xy)
    for xy, sub in layout.edges:
        ids.append(len(ids) + 1)
        kinds.append(MapKind.ROAD_EDGE)
        subtypes.append(sub)
        chunks.append(xy)
    for xy, kind in layout.polygons:
        ids.append(len(ids) + 1)
        kinds.append(kind)
        subtypes.append(0)
        chunks.append(xy)
    pts = np.concatenate(chunks)
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    return RoadMap(
        ids=np.asarray(ids, np.int64),
        kinds=np.asarray(kinds, np.int8),
        subtypes=np.asarray(subtypes, np.int8),
        offsets=offsets,
        points=np.concatenate([pts, np.zeros((len(pts), 1))], 1),
        lanes=lanes,
    )


def _pedestrians(rng: np.random.Generator, layout: Layout, count: int, num_steps: int) -> Trajectory:
    tr = Trajectory.zeros(count, num_steps)
    t = np.arange(num_steps) * DT
    for i in range(count):
        walk = layout.sidewalks[int(rng.integers(len(layout.sidewalks)))]
        s_walk = arclength(walk)
        speed = 0.0 if rng.random() < 0.3 else float(rng.uniform(0.8, 1.6))
        direction = float(rng.choice([-1.0, 1.0]))
        s = rng.uniform(0.2, 0.8) * s_walk[-1] + direction * speed * t
        side = float(rng.uniform(-0.8, 0.8))
        base = np.stack([np.interp(s, s_walk, walk[:, 0]), np.interp(s, s_walk, walk[:, 1])], -1)
        h = np.interp(s, s_walk, np.unwrap(headings(walk)))
        heading = h + (0.0 if direction > 0 else np.pi)
        tr.xyz[i, :, :2] = base + side * np.stack([-np.sin(h), np.cos(h)], -1)
        tr.xyz[i, :, 2] = 0.9
        tr.heading[i] = np.angle(np.exp(1j * heading))
        tr.velocity[i] = speed * np.stack([np.cos(heading), np.sin(heading)], -1)
        tr.size[i] = (rng.uniform(0.45, 0.7), rng.uniform(0.45, 0.7), rng.uniform(1.55, 1.9))
        tr.valid[i] = (s >= 0) & (s <= s_walk[-1])
    return tr


def generate_scenario(
    rng: np.random.Generator,
    kind: Optional[str] = None,
    num_vehicles: Optional[int] = None,
    num_pedestrians: Optional[int] = None,
    num_steps: int = 91,
    current_index: int = 10,
    scenario_id: Optional[str] = None,
) -> Scenario:
    """A plausible random :class:`Scenario` (world frame around the origin, metres).

    Args:
      rng: the only source of randomness; the same generator state gives the same scenario.
      kind: ``"straight"``, ``"curve"``, ``"intersection"``, or None (drawn from ``rng``).
      num_vehicles: vehicles to place (default 6-15; fewer if the lanes are full). One is the SDC.
      num_pedestrians: default 1-5.
      num_steps, current_index: log length and present step (10 Hz).
    """
    if kind is None:
        kind = str(rng.choice(KINDS))
    if kind not in LAYOUTS:
        raise ConfigError(f"unknown procedural scenario kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not 0 <= current_index < num_steps:
        raise ConfigError(f"current_index {current_index} outside [0, {num_steps})")
    n_veh = int(rng.integers(6, 16)) if num_vehicles is None else int(num_vehicles)
    n_ped = int(rng.integers(1, 6)) if num_pedestrians is None else int(num_pedestrians)
    if n_veh < 1 or n_ped < 0:
        raise ConfigError(f"need at least 1 vehicle (the SDC) and >= 0 pedestrians, got {n_veh}, {n_ped}")
    layout = LAYOUTS[kind](rng)
    routes = [_route(layout, lanes) for lanes in layout.routes]
    horizon_s = MAX_SPEED * (num_steps - 1) * DT
    for _attempt in range(20):
        placed = _place_vehicles(rng, routes, n_veh, min(r.length for r in routes) - horizon_s / 3)
        if not placed:
            continue
        r, S, V, on_route = _drive(routes, placed, num_steps)
        moving = on_route.all(1) & (V.max(1) > 2.0)
        candidates = np.flatnonzero(moving) if moving.any() else np.flatnonzero(on_route.all(1))
        if len(candidates):
            break
    else:  # pragma: no cover - layouts are long enough for this never to happen
        raise ConfigError(f"could not place a valid SDC on a {kind} layout")
    n = len(placed)
    veh = Trajectory.zeros(n, num_steps)
    for t in range(num_steps):
        xy, hd = _poses(routes, r, S[:, t])
        veh.xyz[:, t, :2] = xy
        veh.heading[:, t] = np.angle(np.exp(1j * hd))
        veh.velocity[:, t] = V[:, t, None] * np.stack([np.cos(hd), np.sin(hd)], -1)
    veh.xyz[..., 2] = np.array([p[4] for p in placed])[:, None] / 2
    veh.size[:] = np.array([[p[2], p[3], p[4]] for p in placed], np.float32)[:, None, :]
    veh.valid[:] = on_route
    ped = _pedestrians(rng, layout, n_ped, num_steps)
    tracks = Trajectory(
        **{f: np.concatenate([getattr(veh, f), getattr(ped, f)]) for f in ("xyz", "heading", "velocity", "size", "valid")}
    )
    sdc = int(rng.choice(candidates))
    others = [i for i in np.flatnonzero(moving) if i != sdc]
    ttp = sorted(int(i) for i in rng.permutation(others)[:4]) if others else []
    scenario = Scenario(
        scenario_id=scenario_id or f"procedural-{kind}-{int(rng.integers(1 << 32)):08x}",
        timestamps=np.arange(num_steps) * DT,
        current_index=current_index,
        sdc_index=sdc,
        track_ids=np.arange(1000, 1000 + n + n_ped, dtype=np.int64),
        object_types=np.array([ObjectType.VEHICLE] * n + [ObjectType.PEDESTRIAN] * n_ped, np.int8),
        tracks=tracks,
        roadmap=_roadmap(layout),
        traffic_lights=_signals(layout, num_steps),
        tracks_to_predict=np.asarray(ttp, np.int64),
        tracks_to_predict_difficulty=np.ones(len(ttp), np.int8),
        source=f"procedural:{kind}",
    )
    scenario.validate()
    return scenario


def _signals(layout: Layout, num_steps: int) -> TrafficLights:
    signal = [k for k, lane in enumerate(layout.lanes) if lane.signal]
    if not signal:
        return TrafficLights.empty(num_steps)
    L = len(signal)
    stops = []
    for k in signal:
        xy = layout.lanes[k].xy
        s = arclength(xy)
        at = s[-1] - STOP_BEFORE_END
        stops.append([np.interp(at, s, xy[:, 0]), np.interp(at, s, xy[:, 1]), 0.0])
    states = [SignalState.GO if layout.lanes[k].green else SignalState.STOP for k in signal]
    return TrafficLights(
        lane_ids=np.tile(np.asarray(signal, np.int64) + 1, (num_steps, 1)),
        states=np.tile(np.asarray(states, np.int8), (num_steps, 1)),
        stop_points=np.tile(np.asarray(stops)[None], (num_steps, 1, 1)),
        valid=np.ones((num_steps, L), bool),
    )
