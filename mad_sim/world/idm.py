"""Lane-following Intelligent Driver Model traffic with signals and stop signs, vectorised over agents.

The model (Treiber, Hennecke, Helbing 2000) for a driver at speed ``v``
behind an obstacle at bumper gap ``s`` closing at ``dv``::

    a = a_max (1 - (v / v0)^delta - (s* / s)^2),   s* = s0 + max(0, v T + v dv / (2 sqrt(a_max b)))

Per call of :meth:`IDM.advance` (world frame, metres, seconds):

1. **Lane.**  Every controlled vehicle / cyclist is put on the nearest lane
   within ``lane_match_distance`` and ``lane_match_angle`` of its pose (its
   previous lane while that still matches).  An agent this policy moved on
   the previous call and that still sits exactly where it was put is not
   searched again: it keeps its path and arclength.  Agents on no lane
   (parked, pedestrians) keep their velocity.
2. **Path.**  The lane followed through exit lanes (at a fork: drawn with
   ``rng`` if given, else the straightest; the choice is kept until
   :meth:`IDM.reset`), as a polyline starting ~10 m behind the agent
   (:class:`~mad_sim.world.lanes.PathStore`; lanes decimated to 1 m
   vertices).  Paths persist across calls and are rebuilt only when they run
   short, fall too far behind, or the agent changes lane.
3. **Leader.**  The nearest other valid agent ahead on the path within the
   corridor ``(w_self + w_other) / 2 + corridor_margin``: candidates are
   pruned by distance, by the path's bounding box and by a coarse copy of
   the path (every point of the path lies within ``sag`` of it, so the
   pruning never drops a true leader) before the exact projection.
4. **Controls.**  A stop line acts as a standing obstacle placed so that
   the driver stops with its front bumper ``stop_margin`` metres short of
   the line (IDM gap ``d + s0`` with ``d`` the distance left to that point).

   * Signals (:mod:`mad_sim.world.controls`, the log's state at the
     simulated step): in a stop state (STOP, ARROW_STOP, CAUTION,
     ARROW_CAUTION) the driver stops if the constant deceleration needed,
     ``v^2 / (2 d)`` with ``d`` the distance to the line, is at most
     ``signal_decel``; otherwise (too close, the dilemma zone) it goes on.
     Once it has decided to stop it stays stopped until the state changes.
   * Stop signs (and FLASHING_STOP): the driver stops at the line; once it
     has stood (speed below ``stop_speed``) within ``stop_reach`` metres of
     it, that stop sign is served and the driver proceeds.

   The acceleration is the minimum of the IDM terms for the leader and for
   the nearest active stop line, clipped at ``-max_decel``.
5. **Motion.**  ``v' = max(v + a dt, 0)``; travelled arclength
   ``(v + v') dt / 2`` (``v^2 / (2|a|)`` when stopping within the step);
   pose = the path point, heading its tangent, velocity ``v'`` along it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Set, Tuple

import numpy as np

from mad_sim.data.frames import wrap_angle
from mad_sim.data.scenario import DT, ObjectType, Scenario, Trajectory
from mad_sim.world.controls import SIGN_STATES, STOP_STATES, TrafficControls
from mad_sim.world.geometry import map_segments
from mad_sim.world.lanes import LaneGraph, PathStore
from mad_sim.world.state import WorldState

__all__ = ["IDM", "IDMParams", "idm_accel", "MPH"]

MPH = 0.44704
"""m/s per mile per hour (WOMD lane speed limits are in mph)."""


@dataclass(frozen=True)
class IDMParams:
    """Intelligent Driver Model parameters, lane matching and traffic-control behaviour.

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
      lookahead: m, leaders and stop lines farther ahead than this are ignored.
      traffic_controls: obey signals and stop signs.
      signal_decel: m/s^2, the hardest constant deceleration a driver accepts
        to stop for a signal (beyond it the driver goes through).
      stop_margin: m between the front bumper and the stop line when stopped.
      stop_speed: m/s, below this a driver at a stop sign counts as stopped...
      stop_reach: m, ...when its front is within this distance of the stop position.
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
    traffic_controls: bool = True
    signal_decel: float = 3.0
    stop_margin: float = 1.0
    stop_speed: float = 0.3
    stop_reach: float = 2.0


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


_COARSE_STRIDE = 8
"""Path vertices per coarse segment in the leader pre-filter (about 8 m with 1 m vertices)."""


class IDM:
    """Lane-following IDM traffic obeying signals and stop signs; see the module docstring.

    ``_lane`` maps every agent driven along a lane on the last call to its lane
    (map feature index); ``path_builds`` counts path (re)builds.
    """

    def __init__(self, params: Optional[IDMParams] = None, rng: Optional[np.random.Generator] = None,
                 dt: float = DT) -> None:
        self.params = params or IDMParams()
        self.rng = rng
        self.dt = dt
        self._scenario: Optional[Scenario] = None
        self.reset()

    def reset(self, state: Optional[WorldState] = None) -> None:
        """Forget lanes, paths, fork choices and served stop signs (a new episode)."""
        self._lane: Dict[int, int] = {}
        self._exit: Dict[Tuple[int, int], Optional[int]] = {}
        self._no_lane: Dict[int, Tuple[float, float]] = {}
        self._served: Dict[int, Set[int]] = {}  # agent -> lanes whose stop sign it has served
        self._committed: Dict[int, Set[int]] = {}  # agent -> lanes whose signal it is stopping for
        self._track: Optional[dict] = None
        self._geo_key: Optional[tuple] = None
        self._store: Optional[PathStore] = None
        if self._scenario is not None:
            self._store = PathStore(self._graph, self._scenario.num_tracks, self._next_lane)

    # --- per-scenario structures ------------------------------------------------------------
    def _bind(self, scenario: Scenario) -> None:
        if self._scenario is scenario:
            return
        self._scenario = scenario
        self._graph = LaneGraph(scenario.roadmap)
        self._controls = TrafficControls.build(scenario, self._graph)
        self.reset()

    @property
    def path_builds(self) -> int:
        return 0 if self._store is None else self._store.builds

    def _next_lane(self, agent: int, lane: int) -> Optional[int]:
        key = (agent, lane)
        if key not in self._exit:
            exits = self._graph.exits.get(lane, [])
            if not exits:
                choice = None
            elif self.rng is not None:
                choice = exits[int(self.rng.integers(len(exits)))]
            else:
                choice = self._graph.straightest_exit(lane)
            self._exit[key] = choice
        return self._exit[key]

    # --- lane matching ----------------------------------------------------------------------
    def _match_lanes(self, xy: np.ndarray, heading: np.ndarray, agents: np.ndarray,
                     roadmap) -> Tuple[np.ndarray, np.ndarray]:
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
        # only segments whose box comes within the match distance of the agents' box
        lo, hi = xy.min(0) - p.lane_match_distance, xy.max(0) + p.lane_match_distance
        near = np.flatnonzero(((segs.lane_lo <= hi) & (segs.lane_hi >= lo)).all(-1))
        if near.size == 0:
            self._remember_off_lane(agents, xy, np.zeros(len(agents), bool))
            return full_lane, full_s
        a, b = segs.lane_a[near], segs.lane_b[near]
        feature, s0 = segs.lane_feature[near], segs.lane_s0[near]
        ab = b - a
        l2 = np.maximum((ab ** 2).sum(-1), 1e-12)
        ap = xy[:, None, :] - a[None]
        t = np.clip(np.einsum("ask,sk->as", ap, ab) / l2, 0.0, 1.0)
        d = np.hypot(*(ap - t[..., None] * ab[None]).transpose(2, 0, 1))  # [A, S]
        seg_h = np.arctan2(ab[:, 1], ab[:, 0])
        aligned = np.abs(wrap_angle(heading[:, None] - seg_h[None])) <= p.lane_match_angle
        cost = np.where(aligned & (d <= p.lane_match_distance), d, np.inf)
        # keep the previous lane while it still matches (no flicker between overlapping lanes)
        prev = np.array([self._lane.get(int(i), -1) for i in agents])
        prev_cost = np.where(feature[None, :] == prev[:, None], cost, np.inf)
        use_prev = np.isfinite(prev_cost.min(1))
        cost = np.where(use_prev[:, None], prev_cost, cost)
        j = cost.argmin(1)
        rows = np.arange(len(agents))
        found = np.isfinite(cost[rows, j])
        lane[found] = feature[j[found]]
        s_on[found] = s0[j[found]] + t[rows, j][found] * np.sqrt(l2)[j[found]]
        self._remember_off_lane(agents, xy, found)
        full_lane[fresh], full_s[fresh] = lane, s_on
        return full_lane, full_s

    def _remember_off_lane(self, agents: np.ndarray, xy: np.ndarray, found: np.ndarray) -> None:
        for i, pos in zip(agents[~found], xy[~found]):
            self._no_lane[int(i)] = (float(pos[0]), float(pos[1]))
        for i in agents[found]:
            self._no_lane.pop(int(i), None)

    # --- localisation: tracked agents keep their path, the others are matched ---------------------
    def _localise(self, state: WorldState, drivers: np.ndarray, need: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(drivers on a path [D], their path arclength [D]); paths built / rebuilt as needed."""
        store = self._store
        now = state.at()
        s_path = np.full(drivers.size, np.nan)
        tr = self._track
        if tr is not None:
            k = state.timestep - tr["t0"]
            if 0 <= k < tr["xy"].shape[1]:
                pos = np.full(state.num_agents, -1, np.int64)
                pos[tr["agents"]] = np.arange(tr["agents"].size)
                r = pos[drivers]
                ok = r >= 0
                rr = np.where(ok, r, 0)
                same = ok & (tr["xy"][rr, k] == now.xy[drivers]).all(-1) & (tr["version"][rr] == store.version[drivers])
                s_path[same] = tr["s"][rr[same], k]
        fresh = np.isnan(s_path)
        if fresh.any():
            idx = drivers[fresh]
            lane, u = self._match_lanes(now.xy[idx], now.heading[idx], idx, state.roadmap)
            got = lane >= 0
            built = np.full(idx.size, np.nan)
            for n, (i, m, uu) in enumerate(zip(idx[got], lane[got], u[got])):
                built[np.flatnonzero(got)[n]] = store.build(int(i), int(m), float(uu), float(need[fresh][got][n]))
            s_path[fresh] = built
        on = ~np.isnan(s_path)
        drivers, s_path, need = drivers[on], s_path[on], need[on]
        # tracked paths that run short ahead or trail too far behind are rebuilt from the current lane
        short = ((s_path + need > store.length[drivers]) & store.open_end[drivers]) | (s_path > store.trim + 10.0)
        if short.any():
            lanes, u = store.lane_at(drivers[short], s_path[short])
            for n, (i, m, uu) in enumerate(zip(drivers[short], lanes, u)):
                s_path[np.flatnonzero(short)[n]] = store.build(int(i), int(m), float(uu), float(need[short][n]))
        return drivers, s_path

    # --- main -------------------------------------------------------------------------------------
    def advance(self, state: WorldState, controlled: np.ndarray, num_steps: int) -> Trajectory:
        from mad_sim.world.traffic import ConstantVelocity, check_policy_call

        c = check_policy_call(state, controlled, num_steps)
        p, dt = self.params, self.dt
        self._bind(state.scenario)
        out = ConstantVelocity(dt).advance(state, c, num_steps)
        now = state.at()
        types = state.scenario.object_types
        drivers = np.flatnonzero(c & now.valid & np.isin(types, [ObjectType.VEHICLE, ObjectType.CYCLIST]))
        if drivers.size == 0:
            self._lane, self._track = {}, None
            return out
        g = self._graph
        v_all = np.maximum(now.velocity[drivers, 0] * np.cos(now.heading[drivers])
                           + now.velocity[drivers, 1] * np.sin(now.heading[drivers]), 0.0)
        v_cap = max(float(v_all.max()), p.desired_speed or 0.0, float(g.speed_limit.max()) * MPH, p.default_speed)
        need = np.full(drivers.size, v_cap * num_steps * dt + p.lookahead)
        drivers_on, s = self._localise(state, drivers, need)
        keep = np.isin(drivers, drivers_on)
        v = v_all[keep]
        drivers = drivers_on
        store = self._store
        lane_now, _ = store.lane_at(drivers, s)
        self._lane = dict(zip(drivers.tolist(), lane_now.tolist()))
        if drivers.size == 0:
            self._track = None
            return out
        if p.desired_speed is not None:
            v0 = np.full(drivers.size, float(p.desired_speed))
        else:
            limits = g.speed_limit[lane_now] * MPH
            v0 = np.where(limits > 0, limits, p.default_speed)

        key = (drivers.tobytes(), store.version[drivers].tobytes(), store.points.shape)
        if self._geo_key != key:  # the same paths as on the last call: reuse their segment arrays
            self._geo = _PathGeometry(store.points[drivers], store.cum[drivers], store.nseg[drivers])
            self._geo_key = key
        geo = self._geo
        stops = _Stops(self, drivers, store) if p.traffic_controls else None

        valid_all = now.valid
        half_w = 0.5 * now.size[:, 1].astype(np.float64)
        half_l = 0.5 * now.size[:, 0].astype(np.float64)
        others_xy0 = now.xy.astype(np.float64)
        others_v = now.velocity.astype(np.float64)
        s_hist = np.zeros((drivers.size, num_steps))
        for k in range(num_steps):
            xy_d, h_d = geo.interp(s)
            pos = others_xy0 + others_v * (k * dt)
            pos[drivers] = xy_d
            vel = others_v.copy()
            vel[drivers] = v[:, None] * np.stack([np.cos(h_d), np.sin(h_d)], -1)
            gap, v_lead_along = self._leaders(geo, s, h_d, drivers, pos, vel, valid_all, half_l, half_w)
            a = idm_accel(v, v0, gap, v - v_lead_along, p)
            if stops is not None:
                a = np.minimum(a, stops.accel(state.timestep + k, s + half_l[drivers], v, v0))
            v_new = v + a * dt
            stopping = v_new < 0
            ds = np.where(stopping, v ** 2 / (2 * np.maximum(-a, 1e-9)), 0.5 * (v + np.maximum(v_new, 0)) * dt)
            v = np.maximum(v_new, 0.0)
            s = s + ds
            if stops is not None:
                stops.after_move(s + half_l[drivers], v)
            xy_k, h_k = geo.interp(s)
            out.xyz[drivers, k, :2] = xy_k
            out.heading[drivers, k] = h_k
            out.velocity[drivers, k] = v[:, None] * np.stack([np.cos(h_k), np.sin(h_k)], -1)
            s_hist[:, k] = s
        if stops is not None:
            stops.commit()
        self._track = {"t0": state.timestep + 1, "agents": drivers, "xy": out.xyz[drivers, :, :2].copy(),
                       "s": s_hist, "version": store.version[drivers].copy()}
        return out

    def _leaders(self, geo: "_PathGeometry", s, h_d, drivers, pos, vel, valid, half_l, half_w):
        """Gap [D] (m, inf without leader) and leader speed along the path [D] for every driver."""
        p = self.params
        d_n = drivers.size
        gap = np.full(d_n, np.inf)
        v_lead = np.zeros(d_n)
        me = pos[drivers]
        dx = pos[None, :, 0] - me[:, None, 0]
        dy = pos[None, :, 1] - me[:, None, 1]
        fwd = dx * np.cos(h_d)[:, None] + dy * np.sin(h_d)[:, None]
        corridor_max = half_w[drivers][:, None] + half_w[None, :] + p.corridor_margin  # [D, N]
        cand = ((dx * dx + dy * dy < p.lookahead ** 2) & valid[None, :]
                & (fwd > -half_l[None, :] - half_l[drivers][:, None])
                & (pos[None, :, 0] >= geo.lo[:, None, 0] - corridor_max) & (pos[None, :, 0] <= geo.hi[:, None, 0] + corridor_max)
                & (pos[None, :, 1] >= geo.lo[:, None, 1] - corridor_max) & (pos[None, :, 1] <= geo.hi[:, None, 1] + corridor_max))
        cand[np.arange(d_n), drivers] = False
        di, oj = np.nonzero(cand)
        if di.size == 0:
            return gap, v_lead
        corridor = half_w[drivers][di] + half_w[oj] + p.corridor_margin
        # coarse pre-filter: the path lies within sag of its coarse copy
        dc = _min_segment_distance(pos[oj], geo.ca[di], geo.cb[di])
        keep = dc - geo.sag[di] <= corridor
        di, oj, corridor = di[keep], oj[keep], corridor[keep]
        if di.size == 0:
            return gap, v_lead
        a = geo.P[di, :-1]
        ab = geo.ab[di]
        l2 = geo.l2[di]
        ap = pos[oj][:, None, :] - a
        t = np.clip(np.einsum("pkc,pkc->pk", ap, ab) / l2, 0.0, 1.0)
        d = np.hypot(*(ap - t[..., None] * ab).transpose(2, 0, 1))
        d = np.where(geo.real_seg[di], d, np.inf)
        j = d.argmin(1)
        r = np.arange(di.size)
        s_o = geo.cum[di, j] + t[r, j] * np.sqrt(l2[r, j])
        lat = d[r, j]
        ahead = s_o - s[di]
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


def _min_segment_distance(q: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[P] distance from points ``q`` [P, 2] to the nearest of their segments ``a -> b`` [P, S, 2]."""
    ab = b - a
    l2 = np.maximum((ab ** 2).sum(-1), 1e-12)
    aq = q[:, None, :] - a
    t = np.clip(np.einsum("psc,psc->ps", aq, ab) / l2, 0.0, 1.0)
    e = aq - t[..., None] * ab
    return np.sqrt((e ** 2).sum(-1).min(1))


class _PathGeometry:
    """Per-call segment arrays of the drivers' paths [D, K, 2] and their coarse copies."""

    def __init__(self, P: np.ndarray, cum: np.ndarray, nseg: np.ndarray) -> None:
        self.P, self.cum = P, cum
        k = P.shape[1]
        self.ab = np.diff(P, axis=1)
        self.l2 = np.maximum((self.ab ** 2).sum(-1), 1e-12)
        self.real_seg = np.arange(k - 1)[None, :] < nseg[:, None]
        seg_len = np.diff(cum, axis=1)
        real = (seg_len > 1e-9) & self.real_seg  # non-degenerate segments
        self._starts = np.where(real, cum[:, :-1], np.inf)
        self._seg_len = np.maximum(seg_len, 1e-9)
        self._first = np.where(real.any(1), real.argmax(1), 0)
        self._cols = np.arange(k - 1)[None, :]
        self._rows = np.arange(P.shape[0])
        self.lo, self.hi = P.min(1), P.max(1)
        # coarse copy: every _COARSE_STRIDE-th vertex (and the last); sag = farthest vertex from its chord
        idx = np.unique(np.r_[np.arange(0, k, _COARSE_STRIDE), k - 1])
        C = P[:, idx]
        self.ca, self.cb = C[:, :-1], C[:, 1:]
        seg_of = np.minimum(np.searchsorted(idx, np.arange(k), side="right") - 1, len(idx) - 2)
        a, b = self.ca[:, seg_of], self.cb[:, seg_of]  # [D, K, 2] the chord over each vertex
        ab = b - a
        l2 = np.maximum((ab ** 2).sum(-1), 1e-12)
        t = np.clip(((P - a) * ab).sum(-1) / l2, 0.0, 1.0)
        self.sag = np.sqrt(((P - a - t[..., None] * ab) ** 2).sum(-1).max(1)) + 1e-6


    def interp(self, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Points [D, 2] and tangent headings [D] at path arclength ``s`` [D]
        (same rule as :func:`mad_sim.world.lanes.interp_paths`, on the cached segment arrays)."""
        j = np.where(self._starts <= s[:, None], self._cols, -1).max(1)
        j = np.where(j < 0, self._first, j)
        rows = self._rows
        a = self.P[rows, j]
        ab = self.ab[rows, j]
        frac = (s - self.cum[rows, j]) / self._seg_len[rows, j]
        return a + frac[:, None] * ab, np.arctan2(ab[:, 1], ab[:, 0])


class _Stops:
    """Stop lines on the drivers' paths for one :meth:`IDM.advance` call (signals and stop signs).

    Per driver and lane slot on its path (``[D, J]``): the stop line's path arclength, whether it
    is a signal (its state column) or a stop sign, and the served / committed flags kept by the
    policy across calls.
    """

    def __init__(self, idm: IDM, drivers: np.ndarray, store: PathStore) -> None:
        self.idm, self.p = idm, idm.params
        ctl = idm._controls
        lanes = store.lanes[drivers]
        has = lanes >= 0
        ln = np.where(has, lanes, 0)
        self.drivers, self.lanes = drivers, lanes
        self.col = np.where(has, ctl.signal_col[ln], -1)
        self.sig_s = store.lane_s0[drivers] + ctl.signal_u[ln]
        self.sign_s = np.where(has, store.lane_s0[drivers] + ctl.sign_u[ln], np.nan)
        self.any = bool((self.col >= 0).any() or np.isfinite(self.sign_s).any())
        self.served = self._flags(idm._served)
        self.committed = self._flags(idm._committed)
        self._sign_active = np.zeros(lanes.shape, bool)

    def _flags(self, table: Dict[int, Set[int]]) -> np.ndarray:
        """[D, J] bool: lane slot (d, j) is in ``table[driver d]``."""
        out = np.zeros(self.lanes.shape, bool)
        if self.any and table:
            for r in np.flatnonzero(np.isin(self.drivers, list(table))):
                out[r] = np.isin(self.lanes[r], list(table[int(self.drivers[r])]))
        return out

    def accel(self, t: int, front: np.ndarray, v: np.ndarray, v0: np.ndarray) -> np.ndarray:
        """[D] IDM acceleration towards the nearest active stop line (inf where none)."""
        out = np.full(front.shape, np.inf)
        if not self.any:
            return out
        p = self.p
        states = self.idm._controls.state_at(t)
        st = np.where(self.col >= 0, states[np.maximum(self.col, 0)] if states.size else 0, -1)
        dist_sig = self.sig_s - p.stop_margin - front[:, None]
        red = (self.col >= 0) & np.isin(st, STOP_STATES) & (self.sig_s > front[:, None])
        comfy = v[:, None] ** 2 <= 2.0 * p.signal_decel * np.maximum(dist_sig, 0.0)
        stop_sig = red & (self.committed | comfy) & (dist_sig < p.lookahead)
        self.committed = stop_sig | (self.committed & red)
        flashing = (self.col >= 0) & np.isin(st, SIGN_STATES)
        sign_line = np.where(np.isfinite(self.sign_s), self.sign_s, np.where(flashing, self.sig_s, np.nan))
        dist_sign = sign_line - p.stop_margin - front[:, None]
        self._sign_active = (np.isfinite(sign_line) & ~self.served & (sign_line > front[:, None] - 0.5)
                             & (dist_sign < p.lookahead))
        d = np.where(stop_sig, dist_sig, np.inf)
        d = np.minimum(d, np.where(self._sign_active, dist_sign, np.inf)).min(1)
        self._sign_line = sign_line
        has = np.isfinite(d)
        if has.any():
            out[has] = idm_accel(v[has], v0[has], np.maximum(d[has], 0.0) + p.min_gap, v[has], p)
        return out

    def after_move(self, front: np.ndarray, v: np.ndarray) -> None:
        """Mark stop signs served where the driver now stands at the line."""
        if not self.any or not self._sign_active.any():
            return
        p = self.p
        remaining = self._sign_line - p.stop_margin - front[:, None]
        standing = (v[:, None] < p.stop_speed) & (remaining <= p.stop_reach)
        self.served |= self._sign_active & standing

    def commit(self) -> None:
        """Store served / committed flags in the policy (keys: agent, lane)."""
        if not self.any:
            return
        idm = self.idm
        for i, m in zip(self.drivers[np.nonzero(self.served)[0]].tolist(), self.lanes[self.served].tolist()):
            idm._served.setdefault(i, set()).add(m)
        idm._committed = {}
        for i, m in zip(self.drivers[np.nonzero(self.committed)[0]].tolist(), self.lanes[self.committed].tolist()):
            idm._committed.setdefault(i, set()).add(m)
