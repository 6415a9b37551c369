"""IDM lane-following planner: K (lane path, desired speed) choices.

1. **Start lanes**: lane centre lines within ``start_radius`` metres of the ego
   whose nearby segment points within 45 degrees of the ego's heading (ego
   frame: +x), nearest first; their left/right neighbours join as lane changes.
2. **Paths**: from each start lane, follow ``exit_lanes`` depth-first until
   the path is long enough for the horizon (at most ``max_paths`` per start).
3. **Speed**: along each path the ego follows the Intelligent Driver Model
   (Treiber et al. 2000) behind the nearest agent on the path (within
   ``lane_half_width`` laterally, treated as moving at constant speed):
   ``a = a_max (1 - (v / v0)^4 - (s* / gap)^2)``,
   ``s* = s_min + v T + v (v - v_lead) / (2 sqrt(a_max b))``,
   for desired speeds ``v0``: the current speed (cost ``keep_speed_cost``) and
   ``f * speed_limit`` (the lane's limit, else ``default_speed``) for the
   factors ``speed_factors`` (factor 0: brake to a stop).
4. **Geometry**: position = the path point at the travelled arclength, plus
   the ego's initial lateral offset fading linearly to 0 over the first
   ``merge_distance`` metres travelled (a stopped ego keeps its offset).
5. **Probabilities**: ``softmax(-cost)``, cost = distance of the start lane
   (m) + ``lane_change_cost`` for a neighbour + ``branch_cost`` per branch
   taken + the speed factor's cost; the K cheapest are kept.  When no lane
   qualifies (off the map), the constant-velocity planner answers instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
from mad_sim.planners.base import Plan, PlanningContext
from mad_sim.planners.constant_velocity import ConstantVelocityPlanner

from mad_sim.data.scenario import MapKind, RoadMap
from mad_sim.world.geometry import interpolate_polyline, point_segment_distance, polyline_arclength, project_to_polyline

MPH = 0.44704


@dataclass
class IDMParams:
    a_max: float = 1.5  # m/s^2
    b_comfort: float = 2.0  # m/s^2
    time_headway: float = 1.5  # s
    s_min: float = 2.0  # m
    default_speed: float = 11.0  # m/s when a lane has no limit
    lane_half_width: float = 2.0  # m


def idm_profile(
    v0: float, v_des: np.ndarray, gap0: np.ndarray, v_lead: np.ndarray, ego_len: float, horizon: int, dt: float, p: IDMParams
) -> np.ndarray:
    """Arclength ``[M, F]`` travelled per step for M (desired speed, leader) variants.

    ``gap0`` [M] bumper gap to the leader (inf without one), ``v_lead`` [M] m/s.
    A desired speed below 0.1 m/s means "stop": the free-road term becomes a
    comfortable braking ``-b_comfort`` (speed never goes negative).
    """
    m = v_des.shape[0]
    v = np.full(m, max(v0, 0.0))
    s = np.zeros(m)
    gap = gap0.astype(np.float64).copy()
    out = np.empty((m, horizon))
    root = 2.0 * np.sqrt(p.a_max * p.b_comfort)
    for t in range(horizon):  # time loop; vectorised over variants
        s_star = p.s_min + np.maximum(0.0, v * p.time_headway + v * (v - v_lead) / root)
        inter = np.where(np.isfinite(gap), (s_star / np.maximum(gap, 0.1)) ** 2, 0.0)
        free = np.where(v_des >= 0.1, 1.0 - (v / np.maximum(v_des, 0.1)) ** 4, -p.b_comfort / p.a_max)  # v0 ~ 0: brake
        a = p.a_max * (free - inter)
        a = np.maximum(a, -8.0)
        v_new = np.maximum(0.0, v + a * dt)
        s = s + v_new * dt
        gap = gap + (v_lead - v_new) * dt
        v = v_new
        out[:, t] = s
    return out


class IDMPlanner:
    name = "idm"

    def __init__(
        self,
        params: IDMParams | None = None,
        start_radius: float = 3.5,
        max_start: int = 3,
        max_paths: int = 4,
        speed_factors: Tuple[float, ...] = (1.0, 0.6, 0.0),
        speed_costs: Tuple[float, ...] = (0.3, 0.6, 1.2),
        keep_speed_cost: float = 0.0,
        lane_change_cost: float = 1.5,
        branch_cost: float = 0.3,
        merge_distance: float = 15.0,
    ) -> None:
        self.p = params or IDMParams()
        self.start_radius = start_radius
        self.max_start = max_start
        self.max_paths = max_paths
        self.speed_factors = np.asarray(speed_factors, np.float64)
        self.speed_costs = np.asarray(speed_costs, np.float64)
        self.keep_speed_cost = float(keep_speed_cost)
        self.lane_change_cost = lane_change_cost
        self.branch_cost = branch_cost
        self.merge_distance = merge_distance
        self.fallback = ConstantVelocityPlanner()

    # --------------------------------------------------------------- lanes
    @staticmethod
    def _lane_segments(roadmap: RoadMap) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        pts = roadmap.points[:, :2]
        if len(pts) < 2:
            return np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, np.int64)
        owner = roadmap.point_feature_index()
        ok = (owner[:-1] == owner[1:]) & (roadmap.kinds[owner[:-1]] == MapKind.LANE)
        return pts[:-1][ok], pts[1:][ok], owner[:-1][ok]

    def start_lanes(self, roadmap: RoadMap) -> List[Tuple[int, float]]:
        """``[(feature index, distance m)]`` of lanes under the ego (ego frame origin), nearest first."""
        a, b, f = self._lane_segments(roadmap)
        if len(a) == 0:
            return []
        dist, _ = point_segment_distance(np.zeros((1, 2)), a, b)
        d = b - a
        cos = d[:, 0] / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
        ok = (dist[0] <= self.start_radius) & (cos > np.cos(np.pi / 4))
        best: Dict[int, float] = {}
        for seg in np.flatnonzero(ok)[np.argsort(dist[0][ok], kind="stable")]:
            best.setdefault(int(f[seg]), float(dist[0, seg]))
        return sorted(best.items(), key=lambda kv: kv[1])[: self.max_start]

    def paths(self, roadmap: RoadMap, start: int, length: float) -> List[Tuple[np.ndarray, int, float]]:
        """``[(polyline [P, 2], branches taken, speed limit m/s)]`` from lane ``start`` along exit lanes."""
        index = {int(i): m for m, i in enumerate(roadmap.ids)}
        out: List[Tuple[np.ndarray, int, float]] = []
        stack = [([start], 0)]
        while stack and len(out) < self.max_paths:
            chain, branches = stack.pop()
            poly = np.concatenate([roadmap.polyline(m)[:, :2] for m in chain])
            info = roadmap.lanes.get(int(roadmap.ids[chain[0]]))
            limit = info.speed_limit_mph * MPH if info is not None and info.speed_limit_mph > 0 else self.p.default_speed
            proj, _ = project_to_polyline(np.zeros((1, 2)), poly)
            tail = roadmap.lanes.get(int(roadmap.ids[chain[-1]]))
            exits = [index[e] for e in (tail.exit_lanes if tail is not None else []) if e in index and index[e] not in chain]
            if polyline_arclength(poly)[-1] - float(proj[0]) >= length or not exits or len(chain) > 12:
                out.append((poly, branches, limit))
                continue
            for j in reversed(range(len(exits))):  # LIFO: the first exit is explored first
                stack.append((chain + [exits[j]], branches + (1 if j > 0 else 0)))
        return out

    # ----------------------------------------------------------------- plan
    def plan(self, context: PlanningContext, k: int, horizon: int) -> Plan:
        rm = context.roadmap
        v0 = max(context.speed, 0.0)
        need = max(v0, self.p.default_speed) * 1.3 * horizon * context.dt + 10.0
        starts = self.start_lanes(rm)
        candidates: List[Tuple[float, np.ndarray, int, float]] = []  # (cost, polyline, _, limit)
        index = {int(i): m for m, i in enumerate(rm.ids)}
        seen = set()
        for m, dist in starts:
            entries = [(m, dist)]
            info = rm.lanes.get(int(rm.ids[m]))
            if info is not None:
                for nid in list(info.left_neighbors) + list(info.right_neighbors):
                    if nid in index:
                        entries.append((index[nid], dist + self.lane_change_cost))
            for lane, cost in entries:
                if lane in seen:
                    continue
                seen.add(lane)
                for poly, branches, limit in self.paths(rm, lane, need):
                    if len(poly) >= 2:
                        candidates.append((cost + self.branch_cost * branches, poly, branches, limit))
        if not candidates:
            return self.fallback.plan(context, k, horizon)
        rows = []
        for cost, poly, _, limit in candidates:
            rows.extend(self._variants(context, cost, poly, limit, horizon))
        rows.sort(key=lambda r: r[0])
        rows = rows[:k]
        if len(rows) < k:  # pad with constant-velocity variants, less likely than any lane mode
            cv = self.fallback.plan(context, k - len(rows), horizon)
            worst = rows[-1][0] + 1.0
            rows.extend((worst + i, cv.xy[i], cv.heading[i]) for i in range(k - len(rows)))
        row_cost = np.array([r[0] for r in rows])
        p = np.exp(-(row_cost - row_cost.min()))
        return Plan(xy=np.stack([r[1] for r in rows]), heading=np.stack([r[2] for r in rows]), probabilities=p / p.sum())

    def _variants(
        self, ctx: PlanningContext, cost: float, poly: np.ndarray, limit: float, horizon: int
    ) -> List[Tuple[float, np.ndarray, np.ndarray]]:
        s0_at, lat0_at = project_to_polyline(np.zeros((1, 2)), poly)
        s0, lat0 = float(s0_at[0]), float(lat0_at[0])
        gap, v_lead = np.inf, 0.0
        last = ctx.agents_valid[:, -1] if ctx.agents_valid.size else np.zeros(0, bool)
        if last.any():
            axy = ctx.agents_xy[last, -1]
            sa, la = project_to_polyline(axy, poly)
            ahead = (np.abs(la) <= self.p.lane_half_width) & (sa > s0 + 0.5)
            if ahead.any():
                j = np.flatnonzero(ahead)[np.argmin(sa[ahead])]
                lengths = ctx.agents_size[last, 0]
                gap = float(sa[j] - s0 - 0.5 * (ctx.ego_size[0] + lengths[j]))
                v_lead = float(np.hypot(*ctx.agents_velocity[last, -1][j]))
        v_des = np.r_[max(ctx.speed, 0.0), self.speed_factors * limit]
        costs = np.r_[self.keep_speed_cost, self.speed_costs]
        m = len(v_des)
        s = idm_profile(
            max(ctx.speed, 0.0), v_des, np.full(m, gap), np.full(m, v_lead), float(ctx.ego_size[0]), horizon, ctx.dt, self.p
        )
        xy, heading = interpolate_polyline(poly, s0 + s)
        fade = np.clip(1.0 - s / self.merge_distance, 0.0, 1.0)  # [M, F]
        normal = np.stack([-np.sin(heading), np.cos(heading)], -1)
        xy = xy + (lat0 * fade)[..., None] * normal
        return [(cost + float(costs[i]), xy[i], heading[i]) for i in range(m)]
