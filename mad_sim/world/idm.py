"""Lane-following Intelligent Driver Model traffic with signals and stop signs, vectorised over agents.

The model (Treiber, Hennecke, Helbing 2000; :mod:`mad_sim.world.idm_law`) for a
driver at speed ``v`` behind an obstacle at bumper gap ``s`` closing at ``dv``::

    a = a_max (1 - (v / v0)^delta - (s* / s)^2),   s* = s0 + max(0, v T + v dv / (2 sqrt(a_max b)))

Per call of :meth:`IDM.advance` (world frame, metres, seconds):

1. **Lane.**  Every controlled vehicle / cyclist is put on the nearest lane
   within ``lane_match_distance`` and ``lane_match_angle`` of its pose (its
   previous lane while that still matches; lanes within ``LANE_TIE_M`` of
   the nearest, overlapping just after a fork, are told apart by which comes
   nearest, ``FORK_LOOK_M`` on, to where the agent's present turning (its
   yaw rate over the last ``TURN_STEPS`` steps / speed) takes it).  An
   agent this policy moved on the previous call and that still sits exactly
   where it was put is not searched again: it keeps its path and arclength.
   **No lane** (the map's lanes do not reach the agent: a Waymax roadgraph
   cut at its point cap, a car in a parking lot): a vehicle / cyclist moving
   at least ``off_lane_min_speed`` gets a straight path along its heading
   (:meth:`~mad_sim.world.lanes.PathStore.build_straight`) with its speed at
   that moment as its desired speed, so it still brakes for leaders on that
   line (stop lines, which belong to lanes, do not apply); when that path
   runs short a lane is looked for again.  Slower ones (parked cars) and
   pedestrians keep their velocity.
2. **Path.**  The lane followed through exit lanes (at a fork: drawn with
   ``rng`` if given, else the straightest; the choice is kept until
   :meth:`IDM.reset`), as a polyline starting ~10 m behind the agent
   (:class:`~mad_sim.world.lanes.PathStore`; lanes decimated to 1 m
   vertices).  A map without a lane graph (Waymax) gets exits inferred from
   lanes that start where a lane ends
   (:class:`~mad_sim.world.lanes.LaneGraph`); where the lanes end all the
   same, the path goes on straight along the last lane's end heading.  Every
   path reaches at least ``lookahead`` (80 m by default) plus the distance
   the driver can cover in the call (``v_cap * num_steps * dt``) ahead of
   it, so the leader and stop-line search always sees ``lookahead`` metres
   ahead.  Paths persist across calls and are rebuilt only when they run
   short of that, fall too far behind, or the agent changes lane.
3. **Leader.**  The nearest other valid agent ahead on the path within the
   corridor ``(w_self + w_other) / 2 + corridor_margin``: candidates are
   pruned by distance, by the path's bounding box and by a coarse copy of
   the path (every point of the path lies within ``sag`` of it, so the
   pruning never drops a true leader) before the exact projection
   (:mod:`mad_sim.world.leaders`).
4. **Controls** (:mod:`mad_sim.world.stop_lines`).  A stop line acts as a
   standing obstacle placed so that the driver stops with its front bumper
   ``stop_margin`` metres short of the line (IDM gap ``d + s0`` with ``d``
   the distance left to that point).

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

from typing import Callable, Dict, Optional, Set, Tuple

import numpy as np

from mad_sim.data.frames import wrap_angle
from mad_sim.data.scenario import DT, ObjectType, Scenario, Trajectory
from mad_sim.world.controls import TrafficControls
from mad_sim.world.idm_law import MPH, IDMParams, idm_accel
from mad_sim.world.lanes import LaneGraph, PathStore, SegmentGrid, end_heading, interp_paths
from mad_sim.world.leaders import LeaderSearch, PathGeometry
from mad_sim.world.road_distance import map_segments
from mad_sim.world.state import WorldState
from mad_sim.world.stop_lines import StopLines
from mad_sim.world.traffic import ConstantVelocity, check_policy_call

__all__ = ["IDM", "IDMParams", "idm_accel", "MPH"]

Turning = Callable[[np.ndarray], np.ndarray]
"""Rows [R] of the agents asked about -> the curvature [R] (1/m, left positive) they drive at now."""

LANE_TIE_M = 0.25
"""m: lanes matching an agent within this of its nearest lane are a near tie (overlapping lanes just after a
fork, where the agent's pose does not tell them apart), broken by :meth:`IDM._break_ties`."""

FORK_LOOK_M = 15.0
"""m: how far ahead along each tied lane the way on is judged (:meth:`IDM._break_ties`)."""

TURN_STEPS = 5
"""Steps (0.5 s) of an agent's simulated history its turning (yaw rate over speed, 1/m) is measured over."""

MAX_CURVATURE = 0.2
"""1/m: the measured turning is clipped to this (a 5 m radius)."""


class IDM:
    """Lane-following IDM traffic obeying signals and stop signs; see the module docstring.

    ``_lane`` maps every agent driven along a lane on the last call to its lane
    (map feature index); ``path_builds`` counts path (re)builds.

    Called every step (the env's horizon 1) with tens of drivers, the cost is
    the number of numpy calls, not their size, so what only changes with the
    drivers' paths is kept from call to call while the same drivers drive the
    same paths (the same path versions): their segment arrays
    (:class:`~mad_sim.world.leaders.PathGeometry`), their stop lines with the
    served / committed flags (:class:`~mad_sim.world.stop_lines.StopLines`,
    written back to the per-agent tables when the paths change), the leader
    search's per-agent arrays while the valid agents and their sizes are
    unchanged, the lane and desired speed of every driver until it reaches the
    next lane of its path, and the path points of the last step.  The results
    are those of building everything anew on every call, bit for bit.
    """

    def __init__(self, params: Optional[IDMParams] = None, rng: Optional[np.random.Generator] = None, dt: float = DT) -> None:
        self.params = params or IDMParams()
        self.rng = rng
        self.dt = dt
        self._scenario: Optional[Scenario] = None
        self.reset()

    def reset(self, state: Optional[WorldState] = None) -> None:
        """Forget lanes, paths, fork choices and served stop signs (a new episode)."""
        n = 0 if self._scenario is None else self._scenario.num_tracks
        self._lane_of = np.full(n, -1, np.int64)  # lane each agent drove along on the last call (-1: none)
        self._exit: Dict[Tuple[int, int], Optional[int]] = {}
        self._no_lane = np.full((n, 2), np.inf)  # where each agent was last found on no lane (inf: never)
        self._cruise = np.full(n, np.nan)  # m/s, desired speed of an agent on a straight (no-lane) path; nan: none
        self._served: Dict[int, Set[int]] = {}  # agent -> lanes whose stop sign it has served
        self._committed: Dict[int, Set[int]] = {}  # agent -> lanes whose signal it is stopping for
        self._track: Optional[dict] = None
        self._geo_key: Optional[tuple] = None
        self._stops: Optional[StopLines] = None  # flags not yet written back to the tables above
        self._search: Optional[LeaderSearch] = None
        self._search_key: Optional[tuple] = None
        self._lanes_now: Optional[tuple] = None
        self._interp: Optional[tuple] = None
        self._store: Optional[PathStore] = None
        if self._scenario is not None:
            self._store = PathStore(self._graph, self._scenario.num_tracks, self._next_lane)

    @property
    def _lane(self) -> Dict[int, int]:
        """Agent -> lane (map feature index) of every agent driven along a lane on the last call."""
        on = np.flatnonzero(self._lane_of >= 0)
        return dict(zip(on.tolist(), self._lane_of[on].tolist()))

    def _flush_stops(self) -> None:
        """Write the served / committed flags of the kept stop lines back to the tables and drop them."""
        if self._stops is not None:
            self._committed = self._stops.commit(self._served, self._committed)
            self._stops = None

    # --- per-scenario structures ------------------------------------------------------------
    def _bind(self, scenario: Scenario) -> None:
        if self._scenario is scenario:
            return
        self._scenario = scenario
        self._graph = LaneGraph(scenario.roadmap)
        self._controls = TrafficControls.build(scenario, self._graph)
        self._top_limit = float(self._graph.speed_limit.max(initial=0.0)) * MPH
        self._drivable = np.isin(scenario.object_types, [ObjectType.VEHICLE, ObjectType.CYCLIST])
        segs = map_segments(scenario.roadmap)
        self._lane_grid = SegmentGrid(segs.lane_lo, segs.lane_hi, self.params.lane_match_distance)
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
    def _match_lanes(
        self, xy: np.ndarray, heading: np.ndarray, agents: np.ndarray, roadmap, turning: Optional[Turning] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """(lane index [A] (-1: none), arclength on it [A]) for agents at ``xy`` [A, 2], ``heading`` [A] rad.
        ``turning``: rows [R] of these agents -> the curvature [R] (1/m) they drive at, asked for the agents at
        a near tie only (None: 0)."""
        p = self.params
        segs = map_segments(roadmap)
        lane = np.full(len(agents), -1, np.int64)
        s_on = np.zeros(len(agents))
        # agents found on no lane before and not moved since (parked cars) are not searched again
        known = self._no_lane[agents]
        fresh = np.hypot(*(xy - known).T) > 0.5
        if segs.lane_a.shape[0] == 0 or not fresh.any():
            return lane, s_on
        full_lane, full_s = lane, s_on
        rows_in = np.flatnonzero(fresh)  # row of each searched agent among those asked for

        def kappa(r: np.ndarray) -> np.ndarray:
            return np.zeros(r.size) if turning is None else np.asarray(turning(rows_in[r]), np.float64)

        agents, xy, heading = agents[fresh], xy[fresh], heading[fresh]
        lane, s_on = full_lane[fresh], full_s[fresh]
        # (agent, segment) pairs whose segment box comes within the match distance of the agent (the grid's
        # candidates, by agent then segment, put to the exact box test)
        md = p.lane_match_distance
        ai, seg = self._lane_grid.candidates(xy)
        if ai.size:
            box = ((segs.lane_lo[seg] <= xy[ai] + md) & (segs.lane_hi[seg] >= xy[ai] - md)).all(-1)
            ai, seg = ai[box], seg[box]
        found = np.zeros(len(agents), bool)
        if ai.size:
            a = segs.lane_a[seg]
            ab = segs.lane_b[seg] - a
            l2 = np.maximum((ab**2).sum(-1), 1e-12)
            ap = xy[ai] - a
            t = np.clip(np.einsum("pk,pk->p", ap, ab) / l2, 0.0, 1.0)
            d = np.hypot(*(ap - t[:, None] * ab).T)
            seg_h = np.arctan2(ab[:, 1], ab[:, 0])
            aligned = np.abs(wrap_angle(heading[ai] - seg_h)) <= p.lane_match_angle
            cost = np.where(aligned & (d <= md), d, np.inf)
            feature = segs.lane_feature[seg]
            # keep the previous lane while it still matches (no flicker between overlapping lanes)
            prev = self._lane_of[agents]
            is_prev = feature == prev[ai]
            use_prev = np.bincount(ai[is_prev & np.isfinite(cost)], minlength=len(agents)) > 0
            cost = np.where(use_prev[ai] & ~is_prev, np.inf, cost)
            order = np.lexsort((seg, cost, ai))  # per agent: cheapest, then the first segment (argmin's tie rule)
            first = np.r_[True, ai[order][1:] != ai[order][:-1]]
            best = order[first]
            ok = np.isfinite(cost[best])
            rows, best = ai[best][ok], best[ok]
            u_all = segs.lane_s0[seg] + t * np.sqrt(l2)
            n_seg = segs.lane_feature.size
            lf = segs.lane_feature
            at_end = ((t >= 1.0) & ((seg + 1 >= n_seg) | (lf[np.minimum(seg + 1, n_seg - 1)] != feature))) | (
                (t <= 0.0) & ((seg == 0) | (lf[np.maximum(seg - 1, 0)] != feature))
            )
            best = self._break_ties(rows, best, ai, cost, feature, u_all, at_end, xy, heading, kappa, use_prev)
            found[rows] = True
            lane[rows] = feature[best]
            s_on[rows] = u_all[best]
        self._remember_off_lane(agents, xy, found)
        full_lane[fresh], full_s[fresh] = lane, s_on
        return full_lane, full_s

    def _break_ties(
        self,
        rows: np.ndarray,
        best: np.ndarray,
        ai: np.ndarray,
        cost: np.ndarray,
        feature: np.ndarray,
        u: np.ndarray,
        at_end: np.ndarray,
        xy: np.ndarray,
        heading: np.ndarray,
        turning: Turning,
        use_prev: np.ndarray,
    ) -> np.ndarray:
        """The matched pair [R] of agents ``rows`` [R] (``best`` [R]: their cheapest pair) once near ties are
        broken: where other lanes match within ``LANE_TIE_M`` of the cheapest (lanes that overlap just after a
        fork), the lane whose point ``FORK_LOOK_M`` on from the agent's projection (straight on past the lane's
        end) lies nearest to where an arc of that length at the agent's curvature takes it is taken (a
        straight-driving agent takes the straightest lane).  Only lanes the agent projects inside of take part,
        and only when its cheapest does too: at the joint of a lane and the next one (the agent projecting on
        the end of one, the start of the other) nothing changes.  An agent keeping its previous lane is left
        alone.  Pairs: ``ai`` / ``cost`` / ``feature`` / ``u`` / ``at_end`` [P] (agent, cost m, lane, arclength m
        on it, projected on an end of the lane); ``xy`` [A, 2] m, ``heading`` [A] rad, ``turning``: agents [R]
        -> their curvature [R] (1/m), ``use_prev`` [A] bool."""
        if rows.size == 0:
            return best
        best_cost = np.full(xy.shape[0], np.inf)
        best_cost[rows] = cost[best]
        best_lane = np.full(xy.shape[0], -1, np.int64)
        best_lane[rows] = feature[best]
        inside = np.zeros(xy.shape[0], bool)
        inside[rows] = ~at_end[best]
        tied = (cost <= best_cost[ai] + LANE_TIE_M) & (feature != best_lane[ai]) & ~use_prev[ai] & ~at_end & inside[ai]
        if not tied.any():
            return best
        best = best.copy()
        g = self._graph
        todo = np.flatnonzero(np.isin(rows, ai[tied]))
        curvature = np.zeros(xy.shape[0])
        curvature[rows[todo]] = turning(rows[todo])
        for r in todo:
            a = rows[r]
            pairs = np.flatnonzero((ai == a) & (tied | (np.arange(ai.size) == best[r])))
            pairs = pairs[np.lexsort((cost[pairs], feature[pairs]))]  # per lane its cheapest pair first
            pairs = pairs[np.r_[True, feature[pairs][1:] != feature[pairs][:-1]]]
            h, k = float(heading[a]), float(curvature[a])
            if abs(k) * FORK_LOOK_M < 1e-6:
                goal = xy[a] + FORK_LOOK_M * np.array([np.cos(h), np.sin(h)])
            else:
                h1 = h + k * FORK_LOOK_M
                goal = xy[a] + np.array([np.sin(h1) - np.sin(h), np.cos(h) - np.cos(h1)]) / k
            miss = []
            for q in pairs:
                m = int(feature[q])
                pl, cum = g.polylines[m], g.cum[m]
                s = float(u[q]) + FORK_LOOK_M
                pt = np.array([np.interp(s, cum, pl[:, 0]), np.interp(s, cum, pl[:, 1])])
                if s > cum[-1]:
                    he = end_heading(pl, last=True)
                    pt = pt + (s - float(cum[-1])) * np.array([np.cos(he), np.sin(he)])
                miss.append(float(np.hypot(*(pt - goal))))
            miss_a = np.asarray(miss)
            pick = np.flatnonzero(miss_a <= miss_a.min() + 1e-9)  # among equals: the cheapest (then the map's order)
            best[r] = pairs[pick[np.lexsort((feature[pairs][pick], cost[pairs][pick]))[0]]]
        return best

    def _remember_off_lane(self, agents: np.ndarray, xy: np.ndarray, found: np.ndarray) -> None:
        self._no_lane[agents[~found]] = xy[~found]
        self._no_lane[agents[found]] = np.inf

    @staticmethod
    def _turning(state: WorldState, agents: np.ndarray, speed: np.ndarray) -> np.ndarray:
        """Curvature [A] (1/m, left positive) ``agents`` drive at now: their simulated heading change over the
        last ``TURN_STEPS`` steps (fewer at the start of the record; 0 where a step is invalid) over the distance
        ``speed`` [A] (m/s, at least 1) covers in that time, clipped to ``MAX_CURVATURE``."""
        t = state.timestep
        k = min(TURN_STEPS, t)
        if k == 0:
            return np.zeros(agents.size)
        sim = state.sim
        ok = sim.valid[agents, t] & sim.valid[agents, t - k]
        dh = wrap_angle(sim.heading[agents, t].astype(np.float64) - sim.heading[agents, t - k])
        kappa = np.where(ok, dh / (np.maximum(speed, 1.0) * k * DT), 0.0)
        return np.clip(kappa, -MAX_CURVATURE, MAX_CURVATURE)

    # --- localisation: tracked agents keep their path, the others are matched ---------------------
    def _place(
        self,
        agents: np.ndarray,
        xy: np.ndarray,
        heading: np.ndarray,
        speed: np.ndarray,
        need: np.ndarray,
        roadmap,
        turning: Optional[Turning] = None,
    ) -> np.ndarray:
        """Path arclength [A] (m) of ``agents`` [A] put on a new path from their pose ``xy`` [A, 2], ``heading``
        [A] (rad): a lane path where a lane matches, else a straight path for those moving at least
        ``off_lane_min_speed`` (``speed`` [A], m/s, becomes their desired speed); nan for the rest.
        ``need`` [A]: metres of path wanted ahead; ``turning``: rows [R] of ``agents`` -> their curvature [R]
        (1/m) now (None: 0)."""
        store = self._store
        assert store is not None  # _bind() built it
        lane, u = self._match_lanes(xy, heading, agents, roadmap, turning)
        out = np.full(agents.size, np.nan)
        got = lane >= 0
        off = ~got & (speed >= self.params.off_lane_min_speed)
        if not (got.any() or off.any()):  # all still parked / on no lane: nothing to build
            return out
        for n in np.flatnonzero(got):
            out[n] = store.build(int(agents[n]), int(lane[n]), float(u[n]), float(need[n]))
        self._cruise[agents[got]] = np.nan
        for n in np.flatnonzero(off):
            out[n] = store.build_straight(int(agents[n]), xy[n], float(heading[n]), float(need[n]))
        self._cruise[agents[off]] = speed[off]
        return out

    def _localise(
        self, state: WorldState, drivers: np.ndarray, need: np.ndarray, speed: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(drivers on a path [D], their path arclength [D], which of ``drivers`` they are [len(drivers)] bool);
        paths built / rebuilt as needed.  ``need`` [len(drivers)]: metres of path wanted ahead; ``speed``
        [len(drivers)]: m/s along the heading now."""
        store = self._store
        assert store is not None  # _bind() built it
        now = state.at()
        s_path = np.full(drivers.size, np.nan)
        tr = self._track
        if tr is not None:
            k = state.timestep - tr["t0"]
            if 0 <= k < tr["xy"].shape[1]:
                r = tr["row"][drivers]
                ok = r >= 0
                rr = np.where(ok, r, 0)
                same = ok & (tr["xy"][rr, k] == now.xy[drivers]).all(-1) & (tr["version"][rr] == store.version[drivers])
                s_path[same] = tr["s"][rr[same], k]
        fresh = np.isnan(s_path)
        if fresh.any():
            idx = drivers[fresh]
            v_f = speed[fresh]

            def turning(r: np.ndarray) -> np.ndarray:
                return self._turning(state, idx[r], v_f[r])

            s_path[fresh] = self._place(idx, now.xy[idx], now.heading[idx], v_f, need[fresh], state.roadmap, turning)
        on = ~np.isnan(s_path)
        drivers, s_path, need = drivers[on], s_path[on], need[on]
        keep = on
        # tracked paths that run short ahead or trail too far behind are rebuilt from the current lane
        short = (s_path + need > store.length[drivers]) | (s_path > store.trim + 10.0)
        if short.any():
            rows = np.flatnonzero(short)
            straight = store.is_straight(drivers[rows])
            lanes, u = store.lane_at(drivers[rows], s_path[rows])
            for r, m, uu in zip(rows[~straight], lanes[~straight], u[~straight]):
                s_path[r] = store.build(int(drivers[r]), int(m), float(uu), float(need[r]))
            if straight.any():  # off the lanes: look for a lane again from where the agent is, else go on straight
                r = rows[straight]
                idx = drivers[r]
                xy, h = interp_paths(store.points[idx], store.cum[idx], store.nseg[idx], s_path[r])
                s_path[r] = self._place(idx, xy, h, self._cruise[idx], need[r], state.roadmap)
        return drivers, s_path, keep

    # --- main -------------------------------------------------------------------------------------
    def advance(self, state: WorldState, controlled: np.ndarray, num_steps: int) -> Trajectory:
        c = check_policy_call(state, controlled, num_steps)
        p, dt = self.params, self.dt
        self._bind(state.scenario)
        out = ConstantVelocity(dt).advance(state, c, num_steps)
        now = state.at()
        drivers = np.flatnonzero(c & now.valid & self._drivable)
        if drivers.size == 0:
            self._lane_of[:] = -1
            self._track = None
            return out
        v_all = np.maximum(
            now.velocity[drivers, 0] * np.cos(now.heading[drivers]) + now.velocity[drivers, 1] * np.sin(now.heading[drivers]), 0.0
        )
        v_cap = max(float(v_all.max()), p.desired_speed or 0.0, self._top_limit, p.default_speed)
        need = np.full(drivers.size, v_cap * num_steps * dt + p.lookahead)
        drivers_on, s, keep = self._localise(state, drivers, need, v_all)
        v = v_all[keep]
        drivers = drivers_on
        store = self._store
        assert store is not None  # _bind() built it
        if drivers.size == 0:
            self._lane_of[:] = -1
            self._track = None
            return out
        # the drivers' paths: their geometry and stop lines are kept while the same paths are driven
        key = (drivers.tobytes(), store.version[drivers].tobytes(), store.points.shape, store.lanes.shape)
        if self._geo_key != key:
            self._flush_stops()
            self._geo = PathGeometry(store.points[drivers], store.cum[drivers], store.nseg[drivers])
            self._geo_key = key
            self._lanes_now = self._interp = None
            self._row = np.full(state.num_agents, -1, np.int64)
            self._row[drivers] = np.arange(drivers.size)
        geo = self._geo
        lane_now, v0 = self._lane_speeds(drivers, s)
        on_lane = lane_now >= 0  # the others drive a straight path (on no lane)
        if self._stops is None and p.traffic_controls and on_lane.any():
            self._stops = StopLines(p, self._controls, drivers, store, self._served, self._committed)
        stops = self._stops

        valid_all = now.valid
        size = now.size
        skey = (key, valid_all.tobytes(), size.tobytes())
        if self._search_key != skey:
            half_l = 0.5 * size[:, 0].astype(np.float64)
            half_w = 0.5 * size[:, 1].astype(np.float64)
            self._search = LeaderSearch(geo, drivers, valid_all, half_l, half_w, p)
            self._search_key = skey
        search = self._search
        assert search is not None
        hl_d = search.hl_d
        others_xy0 = now.xy.astype(np.float64)
        others_v = now.velocity.astype(np.float64)
        s_hist = np.zeros((drivers.size, num_steps))
        # the path points at s: those of the last call's final step when the drivers have not moved since
        ic = self._interp
        if ic is not None and np.array_equal(ic[0], s):
            xy_d, cs_d = ic[1], ic[2]
        else:
            xy_d, cs_d = self._at(geo, s)
        front = s + hl_d
        for k in range(num_steps):
            pos = others_xy0 + others_v * (k * dt)
            pos[drivers] = xy_d
            vel = others_v.copy()
            vel[drivers] = v[:, None] * cs_d[:, :2]
            gap, v_lead_along = search.find(s, xy_d, cs_d[:, 0], cs_d[:, 1], pos, vel)
            a = idm_accel(v, v0, gap, v - v_lead_along, p)
            if stops is not None:
                a = np.minimum(a, stops.accel(state.timestep + k, front, v, v0))
            v_new = v + a * dt
            stopping = v_new < 0
            ds = np.where(stopping, v**2 / (2 * np.maximum(-a, 1e-9)), 0.5 * (v + np.maximum(v_new, 0)) * dt)
            v = np.maximum(v_new, 0.0)
            s = s + ds
            front = s + hl_d
            if stops is not None:
                stops.after_move(front, v)
            xy_d, cs_d = self._at(geo, s)
            out.xyz[drivers, k, :2] = xy_d
            out.heading[drivers, k] = cs_d[:, 2]
            out.velocity[drivers, k] = v[:, None] * cs_d[:, :2]
            s_hist[:, k] = s
        self._interp = (s, xy_d, cs_d)
        self._track = {
            "t0": state.timestep + 1,
            "row": self._row,
            "xy": out.xyz[drivers, :, :2].copy(),
            "s": s_hist,
            "version": store.version[drivers].copy(),
        }
        return out

    @staticmethod
    def _at(geo: PathGeometry, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Points [D, 2] at path arclength ``s`` [D] and [D, 3] cos, sin and the tangent heading there."""
        xy, h = geo.interp(s)
        return xy, np.stack([np.cos(h), np.sin(h), h], -1)

    def _lane_speeds(self, drivers: np.ndarray, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(lane [D] (-1: a straight path on no lane), desired speed [D] m/s) of the drivers at path arclength
        ``s`` [D].  Kept from call to call on the same paths until a driver reaches the next lane of its path."""
        lc = self._lanes_now
        if lc is not None and ((s >= lc[0]) & (s + 1e-9 < lc[1])).all():
            return lc[2], lc[3]
        store = self._store
        assert store is not None  # _bind() built it
        p = self.params
        lane_now, _ = store.lane_at(drivers, s)
        on_lane = lane_now >= 0
        self._lane_of[:] = -1
        self._lane_of[drivers[on_lane]] = lane_now[on_lane]
        if p.desired_speed is not None:
            v0 = np.full(drivers.size, float(p.desired_speed))
        else:
            limits = np.zeros(drivers.size)
            limits[on_lane] = self._graph.speed_limit[lane_now[on_lane]] * MPH
            v0 = np.where(limits > 0, limits, p.default_speed)
        v0 = np.where(on_lane, v0, self._cruise[drivers])
        starts = store.lane_s0[drivers]
        later = (store.lanes[drivers] >= 0) & (starts > s[:, None] + 1e-9)  # lanes of the path still ahead
        nxt = np.where(later, starts, np.inf).min(1)
        self._lanes_now = (s.copy(), nxt, lane_now, v0)
        return lane_now, v0
