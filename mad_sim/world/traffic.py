"""Scripted traffic: policies that move the agents the ego does not control.

A :class:`TrafficPolicy` answers ``advance(state, controlled, num_steps)``
with the next ``num_steps`` states of ALL agents as a :class:`Trajectory`
``[N, num_steps]`` (world frame, step ``k`` = time ``state.timestep + 1 + k``);
entries of agents not in ``controlled`` are ignored by the caller.

* :class:`LogReplay`: the logged future (invalid past the end of the log).
* :class:`ConstantVelocity`: every agent keeps its current velocity and heading.
* :class:`IDM`: vehicles and cyclists follow their lane with the Intelligent
  Driver Model behind the nearest agent ahead; see the class docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Protocol, Tuple, runtime_checkable

import numpy as np

from mad_sim.data.frames import wrap_angle
from mad_sim.data.scenario import DT, ObjectType, RoadMap, Trajectory
from mad_sim.errors import ShapeError
from mad_sim.world.geometry import map_segments, polyline_arclength
from mad_sim.world.state import WorldState

__all__ = ["TrafficPolicy", "LogReplay", "ConstantVelocity", "IDM", "IDMParams", "MPH"]

MPH = 0.44704
"""m/s per mile per hour (WOMD lane speed limits are in mph)."""

_BEHIND_M = 10.0
"""Metres of lane kept behind an agent on its path (leaders are searched ahead only)."""


@runtime_checkable
class TrafficPolicy(Protocol):
    def advance(self, state: WorldState, controlled: np.ndarray, num_steps: int) -> Trajectory:
        """The next ``num_steps`` states of all agents, ``[N, num_steps]``."""
        ...


def _check(state: WorldState, controlled: np.ndarray, num_steps: int) -> np.ndarray:
    c = np.asarray(controlled, dtype=bool)
    if c.shape != (state.num_agents,):
        raise ShapeError(f"controlled must be [{state.num_agents}] bool, got shape {c.shape}")
    if int(num_steps) < 1:
        raise ShapeError(f"num_steps must be >= 1, got {num_steps}")
    return c


def _hold(state: WorldState, num_steps: int) -> Trajectory:
    """All agents' present state repeated ``num_steps`` times (velocity kept, positions not moved)."""
    now = state.at()
    rep = lambda a: np.repeat(a[:, None], num_steps, axis=1)  # noqa: E731
    return Trajectory(xyz=rep(now.xyz).astype(np.float64), heading=rep(now.heading).astype(np.float64),
                      velocity=rep(now.velocity).astype(np.float64), size=rep(now.size), valid=rep(now.valid))


class LogReplay:
    """Replays the log: step ``k`` is the logged state at ``timestep + 1 + k`` (invalid beyond the log)."""

    def advance(self, state: WorldState, controlled: np.ndarray, num_steps: int) -> Trajectory:
        _check(state, controlled, num_steps)
        t = state.timestep
        log = state.log
        if t + num_steps < log.num_steps:  # all inside the log: contiguous slices (copies), no gather
            k = slice(t + 1, t + 1 + num_steps)
            return Trajectory(xyz=log.xyz[:, k].copy(), heading=log.heading[:, k].copy(),
                              velocity=log.velocity[:, k].copy(), size=log.size[:, k].copy(),
                              valid=log.valid[:, k].copy())
        idx = np.arange(t + 1, t + 1 + num_steps)
        inside = idx < log.num_steps
        out = log.take(np.minimum(idx, log.num_steps - 1), axis=1)
        out.valid &= inside[None, :]
        return out


class ConstantVelocity:
    """Every valid agent keeps its present velocity (world frame) and heading: ``xy_k = xy + v (k+1) dt``."""

    def __init__(self, dt: float = DT) -> None:
        self.dt = dt

    def advance(self, state: WorldState, controlled: np.ndarray, num_steps: int) -> Trajectory:
        _check(state, controlled, num_steps)
        out = _hold(state, num_steps)
        k = (np.arange(num_steps) + 1.0) * self.dt
        out.xyz[..., :2] += state.at().velocity[:, None, :] * k[None, :, None]
        return out


@dataclass(frozen=True)
class IDMParams:
    """Intelligent Driver Model parameters (Treiber, Hennecke, Helbing 2000) and lane matching.

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
      lookahead: m, leaders farther ahead than this are ignored.
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


class IDM:
    """Lane-following Intelligent Driver Model traffic, vectorised over agents.

    1. **Lane**: each controlled vehicle / cyclist is put on the lane whose
       centre line is nearest among those within ``lane_match_distance`` and
       ``lane_match_angle`` of its pose (it keeps the lane it had on the
       previous call while that one still matches).  Its *path* is that lane
       followed through ``exit_lanes`` for ``num_steps`` of driving plus the
       lookahead; at a fork the exit is drawn with ``rng`` if one was given,
       else the straightest continuation is taken, and the choice is kept
       until :meth:`reset`.  Agents on no lane (parked, pedestrians) keep
       their velocity (:class:`ConstantVelocity`).
    2. **Leader**: every other valid agent is projected on the path; the
       nearest one ahead within the corridor (see :class:`IDMParams`) is the
       leader, with ``dv = v - v_leader cos(heading difference)``.  Agents
       not controlled (the ego included) move at constant velocity within
       the horizon; controlled ones at their own simulated positions.
    3. **Motion**: ``v' = max(v + a dt, 0)``, travelled arclength
       ``(v + v') dt / 2`` (or ``v^2 / (2|a|)`` when the car stops within the
       step); pose = the path point at the new arclength, heading its
       tangent, velocity ``v'`` along it.  The agent is placed on the lane
       centre from the first step.
    """

    def __init__(self, params: Optional[IDMParams] = None, rng: Optional[np.random.Generator] = None,
                 dt: float = DT) -> None:
        self.params = params or IDMParams()
        self.rng = rng
        self.dt = dt
        self._lane: Dict[int, int] = {}
        self._exit: Dict[Tuple[int, int], int] = {}
        self._no_lane: Dict[int, Tuple[float, float]] = {}
        self._roadmap_id: Optional[int] = None

    def reset(self, state: Optional[WorldState] = None) -> None:
        """Forget lane assignments and fork choices."""
        self._lane.clear()
        self._exit.clear()
        self._no_lane.clear()
        self._roadmap_id = None

    # --- lane graph ---------------------------------------------------------------
    def _graph(self, roadmap: RoadMap) -> None:
        if self._roadmap_id == id(roadmap):
            return
        self.reset()
        self._roadmap_id = id(roadmap)
        self._index_of = {int(i): m for m, i in enumerate(roadmap.ids)}

    def _next_lane(self, agent: int, lane: int, roadmap: RoadMap) -> Optional[int]:
        key = (agent, lane)
        if key in self._exit:
            return self._exit[key]
        info = roadmap.lanes.get(int(roadmap.ids[lane]))
        exits = [self._index_of[e] for e in (info.exit_lanes if info else []) if e in self._index_of]
        if not exits:
            choice = None
        elif self.rng is not None:
            choice = exits[int(self.rng.integers(len(exits)))]
        else:
            end = roadmap.polyline(lane)[:, :2]
            h_end = _end_heading(end, last=True)
            turns = [abs(wrap_angle(_end_heading(roadmap.polyline(e)[:, :2], last=False) - h_end)) for e in exits]
            choice = exits[int(np.argmin(turns))]
        self._exit[key] = choice
        return choice

    def _path(self, agent: int, lane: int, s_on_lane: float, length: float,
              roadmap: RoadMap) -> Tuple[np.ndarray, float]:
        """([K, 2] polyline, arclength of its first point on ``lane``): ``lane`` from a vertex about
        ``_BEHIND_M`` behind ``s_on_lane``, then exits until ``s_on_lane + length`` is covered."""
        first = roadmap.polyline(lane)[:, :2]
        cum0 = polyline_arclength(first)
        start = max(int(np.searchsorted(cum0, s_on_lane - _BEHIND_M, side="right")) - 1, 0)
        parts = [first[start:]]
        total = cum0[-1]
        cur, seen = lane, {lane}
        while total < s_on_lane + length:
            nxt = self._next_lane(agent, cur, roadmap)
            if nxt is None or nxt in seen:
                break
            pl = roadmap.polyline(nxt)[:, :2]
            parts.append(pl)
            total += float(np.hypot(*(pl[0] - parts[-2][-1]))) + polyline_arclength(pl)[-1]
            cur = nxt
            seen.add(nxt)
        return np.concatenate(parts), float(cum0[start])

    # --- lane matching ------------------------------------------------------------
    def _match_lanes(self, xy: np.ndarray, heading: np.ndarray, agents: np.ndarray,
                     roadmap: RoadMap) -> Tuple[np.ndarray, np.ndarray]:
        """(lane index [A] (-1: none), arclength on it [A]) for agents at ``xy`` [A, 2]."""
        p = self.params
        segs = map_segments(roadmap)
        lane = np.full(len(agents), -1, np.int64)
        s_on = np.zeros(len(agents))
        # agents found on no lane before and not moved since (parked cars) are not searched again
        known = np.array([self._no_lane.get(int(i), (np.inf, np.inf)) for i in agents]).reshape(-1, 2)
        fresh = np.hypot(*(xy - known).T) > 0.5
        if segs.lane_a.shape[0] == 0 or not fresh.any():
            return lane, s_on
        full_lane, full_s = lane, s_on
        agents, xy, heading = agents[fresh], xy[fresh], heading[fresh]
        lane, s_on = full_lane[fresh], full_s[fresh]
        a, b = segs.lane_a, segs.lane_b
        ab = b - a
        l2 = np.maximum((ab ** 2).sum(-1), 1e-12)
        ap = xy[:, None, :] - a[None]
        t = np.clip(np.einsum("ask,sk->as", ap, ab) / l2, 0.0, 1.0)
        d = np.hypot(*(ap - t[..., None] * ab[None]).transpose(2, 0, 1))  # [A, S]
        seg_h = np.arctan2(ab[:, 1], ab[:, 0])
        aligned = np.abs(wrap_angle(heading[:, None] - seg_h[None])) <= p.lane_match_angle
        ok = aligned & (d <= p.lane_match_distance)
        cost = np.where(ok, d, np.inf)
        # keep the previous lane while it still matches (no flicker between overlapping lanes)
        prev = np.array([self._lane.get(int(i), -1) for i in agents])
        on_prev = segs.lane_feature[None, :] == prev[:, None]
        prev_cost = np.where(on_prev, cost, np.inf)
        use_prev = np.isfinite(prev_cost.min(1))
        cost = np.where(use_prev[:, None], prev_cost, cost)
        j = cost.argmin(1)
        rows = np.arange(len(agents))
        found = np.isfinite(cost[rows, j])
        lane[found] = segs.lane_feature[j[found]]
        seg_len = np.sqrt(l2)
        s_on[found] = segs.lane_s0[j[found]] + t[rows, j][found] * seg_len[j[found]]
        for i, pos in zip(agents[~found], xy[~found]):
            self._no_lane[int(i)] = (float(pos[0]), float(pos[1]))
        for i in agents[found]:
            self._no_lane.pop(int(i), None)
        full_lane[fresh], full_s[fresh] = lane, s_on
        return full_lane, full_s

    # --- main ---------------------------------------------------------------------
    def advance(self, state: WorldState, controlled: np.ndarray, num_steps: int) -> Trajectory:
        c = _check(state, controlled, num_steps)
        p, dt = self.params, self.dt
        roadmap = state.roadmap
        self._graph(roadmap)
        out = ConstantVelocity(dt).advance(state, c, num_steps)
        now = state.at()
        types = state.scenario.object_types
        drivers = np.flatnonzero(c & now.valid & np.isin(types, [ObjectType.VEHICLE, ObjectType.CYCLIST]))
        if drivers.size == 0:
            return out
        lane, s_on = self._match_lanes(now.xy[drivers], now.heading[drivers], drivers, roadmap)
        self._lane = {int(i): int(m) for i, m in zip(drivers, lane) if m >= 0}
        on = lane >= 0
        drivers, lane, s_on = drivers[on], lane[on], s_on[on]
        if drivers.size == 0:
            return out
        v = np.maximum(now.velocity[drivers, 0] * np.cos(now.heading[drivers])
                       + now.velocity[drivers, 1] * np.sin(now.heading[drivers]), 0.0)
        if p.desired_speed is not None:
            v0 = np.full(drivers.size, float(p.desired_speed))
        else:
            limits = np.array([roadmap.lanes[int(roadmap.ids[m])].speed_limit_mph if int(roadmap.ids[m]) in roadmap.lanes
                               else 0.0 for m in lane]) * MPH
            v0 = np.where(limits > 0, limits, p.default_speed)
        horizon = float(np.max(np.maximum(v, v0))) * num_steps * dt + p.lookahead
        built = [self._path(int(i), int(m), float(s), horizon, roadmap) for i, m, s in zip(drivers, lane, s_on)]
        P, cum, nseg = _pad_paths([b[0] for b in built])
        s = s_on - np.array([b[1] for b in built])

        # the others: controlled drivers from their paths, everyone else at constant velocity
        n = state.num_agents
        valid_all = now.valid.copy()
        half_w = 0.5 * now.size[:, 1].astype(np.float64)
        half_l = 0.5 * now.size[:, 0].astype(np.float64)
        others_xy0 = now.xy.astype(np.float64)
        others_v = now.velocity.astype(np.float64)
        is_driver = np.zeros(n, bool)
        is_driver[drivers] = True
        for k in range(num_steps):
            xy_d, h_d = _interp_paths(P, cum, nseg, s)
            pos = others_xy0 + others_v * (k * dt)
            pos[drivers] = xy_d
            vel = others_v.copy()
            vel[drivers] = v[:, None] * np.stack([np.cos(h_d), np.sin(h_d)], -1)
            gap, v_lead_along = self._leaders(P, cum, nseg, s, h_d, drivers, pos, vel, valid_all, half_l, half_w)
            a = idm_accel(v, v0, gap, v - v_lead_along, p)
            v_new = v + a * dt
            stops = v_new < 0
            ds = np.where(stops, v ** 2 / (2 * np.maximum(-a, 1e-9)), 0.5 * (v + np.maximum(v_new, 0)) * dt)
            v = np.maximum(v_new, 0.0)
            s = s + ds
            xy_k, h_k = _interp_paths(P, cum, nseg, s)
            out.xyz[drivers, k, :2] = xy_k
            out.heading[drivers, k] = h_k
            out.velocity[drivers, k] = v[:, None] * np.stack([np.cos(h_k), np.sin(h_k)], -1)
        return out

    def _leaders(self, P, cum, nseg, s, h_d, drivers, pos, vel, valid, half_l, half_w):
        """Gap [D] (m, inf without leader) and leader speed along the path [D] for every driver."""
        p = self.params
        d_n = drivers.size
        gap = np.full(d_n, np.inf)
        v_lead = np.zeros(d_n)
        me = pos[drivers]
        # candidate pairs: other valid agents within the lookahead (+ path slack) of the driver
        dist = np.hypot(pos[None, :, 0] - me[:, None, 0], pos[None, :, 1] - me[:, None, 1])
        fwd = ((pos[None, :, 0] - me[:, None, 0]) * np.cos(h_d)[:, None]
               + (pos[None, :, 1] - me[:, None, 1]) * np.sin(h_d)[:, None])
        cand = (dist < p.lookahead) & valid[None, :] & (fwd > -half_l[None, :] - half_l[drivers][:, None])
        cand[np.arange(d_n), drivers] = False
        di, oj = np.nonzero(cand)
        if di.size == 0:
            return gap, v_lead
        a = P[di, :-1]
        b = P[di, 1:]
        ab = b - a
        l2 = np.maximum((ab ** 2).sum(-1), 1e-12)
        ap = pos[oj][:, None, :] - a
        t = np.clip(np.einsum("pkc,pkc->pk", ap, ab) / l2, 0.0, 1.0)
        d = np.hypot(*(ap - t[..., None] * ab).transpose(2, 0, 1))
        d = np.where(np.arange(P.shape[1] - 1)[None, :] < nseg[di][:, None], d, np.inf)
        j = d.argmin(1)
        r = np.arange(di.size)
        s_o = cum[di, j] + t[r, j] * np.sqrt(l2[r, j])
        lat = d[r, j]
        ahead = s_o - s[di]
        corridor = half_w[drivers][di] + half_w[oj] + p.corridor_margin
        ok = (ahead > 0) & (lat <= corridor) & (ahead < p.lookahead)
        g = np.where(ok, ahead - half_l[drivers][di] - half_l[oj], np.inf)
        seg_h = np.arctan2(ab[r, j, 1], ab[r, j, 0])
        along = vel[oj, 0] * np.cos(seg_h) + vel[oj, 1] * np.sin(seg_h)
        order = np.lexsort((g, di))  # per driver, nearest first
        first = np.ones(order.size, bool)
        first[1:] = di[order][1:] != di[order][:-1]
        pick = order[first]
        gap[di[pick]] = g[pick]
        v_lead[di[pick]] = np.where(np.isfinite(g[pick]), along[pick], 0.0)
        return gap, v_lead


def _end_heading(pl: np.ndarray, last: bool) -> float:
    """Heading (rad) of a polyline's first or last non-degenerate segment."""
    d = np.diff(pl, axis=0)
    d = d[np.hypot(d[:, 0], d[:, 1]) > 1e-6]
    if d.size == 0:
        return 0.0
    v = d[-1] if last else d[0]
    return float(np.arctan2(v[1], v[0]))


def _pad_paths(paths: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack polylines into [D, K, 2] (padded by repeating the last point), arclength [D, K], segment counts [D]."""
    k = max(len(pl) for pl in paths)
    P = np.stack([np.concatenate([pl, np.repeat(pl[-1:], k - len(pl), 0)]) for pl in paths])
    step = np.hypot(*np.diff(P, axis=1).transpose(2, 0, 1))
    cum = np.concatenate([np.zeros((len(paths), 1)), np.cumsum(step, 1)], 1)
    nseg = np.array([max(len(pl) - 1, 1) for pl in paths])
    return P, cum, nseg


def _interp_paths(P: np.ndarray, cum: np.ndarray, nseg: np.ndarray, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Points [D, 2] and tangent headings [D] at arclength ``s`` [D] on padded paths (linear beyond the ends)."""
    d = P.shape[0]
    rows = np.arange(d)
    # segment index: the last non-degenerate segment starting at or before s
    seg_len = np.diff(cum, axis=1)
    real = (seg_len > 1e-9) & (np.arange(P.shape[1] - 1)[None, :] < nseg[:, None])
    starts = np.where(real, cum[:, :-1], np.inf)
    j = np.where(real & (starts <= s[:, None]), np.arange(P.shape[1] - 1)[None, :], -1).max(1)
    first_real = np.where(real.any(1), real.argmax(1), 0)
    j = np.where(j < 0, first_real, j)
    a, b = P[rows, j], P[rows, j + 1]
    length = np.maximum(seg_len[rows, j], 1e-9)
    frac = (s - cum[rows, j]) / length
    xy = a + frac[:, None] * (b - a)
    return xy, np.arctan2(b[:, 1] - a[:, 1], b[:, 0] - a[:, 0])
