"""Lane graph and per-agent lane paths for scripted traffic (world frame, metres).

:class:`LaneGraph` holds, per road map, every lane centre line *decimated*
to vertices at least ``min_spacing`` apart (WOMD lanes have a vertex every
~0.5 m; 1 m keeps the chord error under a centimetre on a 15 m-radius turn
and halves the work of every projection), its cumulative arclength, and the
exit lanes by index.  A lane the map gives no lane-graph entry for (Waymax
stores no lane graph at all: ``RoadMap.lanes`` is empty) gets *inferred*
exits: the lanes that start within ``JOIN_M`` of its end with a start
heading within ``JOIN_ANGLE`` of its end heading (WOMD lanes, and so
Waymax's, are split where they fork and join, the next lane starting on the
last vertex of the one before).

:class:`PathStore` keeps one *path* per agent: the lane it drives on followed
through exit lanes, as one polyline starting ``BEHIND_M`` behind the agent.
Where the lanes end (no exit: a dead end, the map's edge, a roadgraph cut at
its point cap) the path goes on straight along the last lane's end heading,
so it always reaches at least the distance asked for ahead of the agent
(the IDM asks for its look-ahead plus the distance it can travel in the
call: the leader and stop-line search never runs off the path's end).  An
agent already on that straight beyond its last lane gets a path that starts
``BEHIND_M`` behind it on the straight.  A path is built once and reused
across calls while it still covers the agent and the distance it needs
ahead; it is rebuilt when the agent changes lane, runs short of path ahead,
or has left more than ``trim`` metres behind.  All
paths live in padded arrays (row = agent index) so the per-step geometry is
vectorised over agents:

* ``points`` [N, K, 2], padded by repeating the last vertex;
* ``cum`` [N, K] arclength along the path (m), ``nseg`` [N] real segments;
* ``lanes`` [N, J] lane index of each lane on the path (-1 padding; all -1
  for a straight path, :meth:`PathStore.build_straight`, of an agent on no lane) and
  ``lane_s0`` [N, J] the path arclength of that lane's arclength 0 (negative
  for the first lane, whose start lies behind the path start), so a point at
  arclength ``u`` on the lane is at path arclength ``lane_s0 + u``; the
  straight beyond the last lane counts as that lane (``u`` past its length).

:class:`SegmentGrid` lists map segments by grid cell, so matching agents to
lanes tests each agent against the segments near it only.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from mad_sim.data.frames import wrap_angle
from mad_sim.data.scenario import MapKind, RoadMap

__all__ = ["LaneGraph", "PathStore", "SegmentGrid", "end_heading"]

BEHIND_M = 10.0
"""Metres of lane kept behind an agent when its path is built (leaders are searched ahead only)."""

JOIN_M = 0.5
"""m: a lane starting at most this far from a lane's end is an inferred exit of it (maps without a lane
graph; the next lane of a WOMD lane starts on its last vertex, the neighbouring lanes 3-4 m away)."""

JOIN_ANGLE = np.pi / 2
"""rad: ...and its start heading within this angle of that lane's end heading (no joining a lane that runs
back the other way)."""


def end_heading(pl: np.ndarray, last: bool) -> float:
    """Heading (rad) of a polyline's first or last non-degenerate segment."""
    d = np.diff(pl, axis=0)
    d = d[np.hypot(d[:, 0], d[:, 1]) > 1e-6]
    if d.size == 0:
        return 0.0
    v = d[-1] if last else d[0]
    return float(np.arctan2(v[1], v[0]))


def _decimate(pl: np.ndarray, min_spacing: float) -> np.ndarray:
    """Vertices of ``pl`` [K, 2] at least ``min_spacing`` apart (greedy from the first; last always kept)."""
    if len(pl) <= 2:
        return pl
    step = np.hypot(*np.diff(pl, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(step)])
    bucket = np.floor(cum / min_spacing)
    keep = np.concatenate([[True], bucket[1:] != bucket[:-1]])
    keep[-1] = True
    out = pl[keep]
    if len(out) > 2 and np.hypot(*(out[-1] - out[-2])) < 0.25 * min_spacing:  # no sliver at the end
        out = np.delete(out, -2, axis=0)
    return out


class LaneGraph:
    """Decimated lane polylines and exits of one :class:`RoadMap` (lanes by feature index).

    ``exits[m]``: the map's exit lanes of lane ``m``, or for a lane without a lane-graph entry in the map
    the inferred ones (module docstring; those lanes are listed in ``inferred``).
    """

    def __init__(self, roadmap: RoadMap, min_spacing: float = 1.0) -> None:
        self.roadmap = roadmap
        self.index_of: Dict[int, int] = {int(i): m for m, i in enumerate(roadmap.ids)}
        self.lane_indices = roadmap.select([MapKind.LANE])
        self.polylines: Dict[int, np.ndarray] = {}
        self.cum: Dict[int, np.ndarray] = {}
        self.exits: Dict[int, List[int]] = {}
        self._straightest: Dict[int, Optional[int]] = {}
        self.speed_limit = np.zeros(roadmap.num_features)  # mph, 0 = none
        for m in self.lane_indices:
            m = int(m)
            pl = _decimate(np.asarray(roadmap.polyline(m)[:, :2], np.float64), min_spacing)
            self.polylines[m] = pl
            self.cum[m] = (
                np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pl, axis=0).T))]) if len(pl) > 1 else np.zeros(len(pl))
            )
            info = roadmap.lanes.get(int(roadmap.ids[m]))
            self.exits[m] = [
                self.index_of[e]
                for e in (info.exit_lanes if info else [])
                if e in self.index_of and int(roadmap.kinds[self.index_of[e]]) == MapKind.LANE
            ]
            self.speed_limit[m] = info.speed_limit_mph if info else 0.0
        self.inferred = [int(m) for m in self.lane_indices if roadmap.lanes.get(int(roadmap.ids[m])) is None]
        self._infer_exits(self.inferred)

    def _infer_exits(self, lanes: List[int]) -> None:
        """Set ``exits`` of ``lanes`` (feature indices) to the lanes starting within ``JOIN_M`` of their end,
        start heading within ``JOIN_ANGLE`` of their end heading (the order of the map's features)."""
        all_lanes = [int(m) for m in self.lane_indices]
        if not lanes or not all_lanes:
            return
        start = np.array([self.polylines[m][0] for m in all_lanes])
        h_start = np.array([end_heading(self.polylines[m], last=False) for m in all_lanes])
        by_x = np.argsort(start[:, 0], kind="stable")
        xs = start[by_x, 0]
        for m in lanes:
            end = self.polylines[m][-1]
            lo = int(np.searchsorted(xs, end[0] - JOIN_M, side="left"))
            hi = int(np.searchsorted(xs, end[0] + JOIN_M, side="right"))
            near = np.sort(by_x[lo:hi])
            near = near[np.hypot(*(start[near] - end).T) <= JOIN_M]
            h_end = end_heading(self.polylines[m], last=True)
            near = near[np.abs(wrap_angle(h_start[near] - h_end)) <= JOIN_ANGLE]
            self.exits[m] = [all_lanes[k] for k in near if all_lanes[k] != m]

    def straightest_exit(self, lane: int) -> Optional[int]:
        """The exit whose start heading turns least from ``lane``'s end heading (None without exits); worked out
        once per lane."""
        if lane in self._straightest:
            return self._straightest[lane]
        exits = self.exits.get(lane, [])
        choice: Optional[int] = None
        if exits:
            h_end = end_heading(self.polylines[lane], last=True)
            turns = [abs(float(wrap_angle(end_heading(self.polylines[e], last=False) - h_end))) for e in exits]
            choice = exits[int(np.argmin(turns))]
        self._straightest[lane] = choice
        return choice

    def length(self, lane: int) -> float:
        return float(self.cum[lane][-1]) if len(self.cum[lane]) else 0.0


class SegmentGrid:
    """Segments by square grid cell, for the segments whose box grown by ``grow`` metres contains a point.

    Built once per map from the segments' boxes ``lo`` / ``hi`` [S, 2] (world frame, m): every segment is
    listed in every cell (side ``cell`` m, more where the map would need over ``max_cells`` cells) that its
    grown box overlaps, so the segments of a point's cell hold all whose grown box contains the point (a
    superset: callers apply their exact box test).
    """

    def __init__(self, lo: np.ndarray, hi: np.ndarray, grow: float, cell: float = 8.0, max_cells: int = 1 << 20) -> None:
        self.cell = float(cell)
        n = lo.shape[0]
        if n == 0:
            self.origin, self.nx, self.ny = np.zeros(2), 0, 0
            self.ptr, self.seg = np.zeros(1, np.int64), np.zeros(0, np.int64)
            return
        self.origin = lo.min(0) - grow
        extent = np.maximum(hi.max(0) + grow - self.origin, 1.0)
        self.cell = max(self.cell, float(np.sqrt(extent[0] * extent[1] / max_cells)))  # a vast map: coarser cells
        c0 = np.floor((lo - grow - self.origin) / self.cell).astype(np.int64)
        c1 = np.floor((hi + grow - self.origin) / self.cell).astype(np.int64)
        self.nx, self.ny = int(c1[:, 0].max()) + 1, int(c1[:, 1].max()) + 1
        span = c1 - c0 + 1  # [S, 2] cells covered along x and y
        cnt = span[:, 0] * span[:, 1]
        sid = np.repeat(np.arange(n), cnt)
        k = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        cx = c0[sid, 0] + k % span[sid, 0]
        cy = c0[sid, 1] + k // span[sid, 0]
        cid = cx * self.ny + cy
        order = np.lexsort((sid, cid))  # by cell, then segment
        self.seg = sid[order]
        self.ptr = np.searchsorted(cid[order], np.arange(self.nx * self.ny + 1))

    def candidates(self, xy: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(point index [P], segment index [P]): for every point of ``xy`` [A, 2] the segments of its cell,
        by point, then segment."""
        if self.seg.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        c = np.floor((xy - self.origin) / self.cell).astype(np.int64)
        inside = (c[:, 0] >= 0) & (c[:, 0] < self.nx) & (c[:, 1] >= 0) & (c[:, 1] < self.ny)
        cid = np.where(inside, c[:, 0] * self.ny + c[:, 1], 0)
        start = self.ptr[cid]
        cnt = np.where(inside, self.ptr[cid + 1] - start, 0)
        ai = np.repeat(np.arange(len(xy)), cnt)
        k = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        return ai, self.seg[np.repeat(start, cnt) + k]


class PathStore:
    """Padded per-agent lane paths (see the module docstring), rebuilt only when needed.

    Args:
      graph: the lane graph.
      num_agents: rows.
      next_lane: ``(agent, lane) -> exit lane index or None`` (the fork policy).
      trim: m; a path whose start is more than ``trim`` + ``BEHIND_M`` behind its agent is rebuilt.
      extra: m built beyond what is asked, so a path serves several calls before it runs short.
    """

    def __init__(
        self,
        graph: LaneGraph,
        num_agents: int,
        next_lane: Callable[[int, int], Optional[int]],
        trim: float = 60.0,
        extra: float = 40.0,
    ) -> None:
        self.graph = graph
        self.extra = float(extra)
        self.next_lane = next_lane
        self.trim = float(trim)
        n = int(num_agents)
        self.points = np.zeros((n, 2, 2))
        self.cum = np.zeros((n, 2))
        self.nseg = np.ones(n, np.int64)
        self.lanes = np.full((n, 1), -1, np.int64)
        self.lane_s0 = np.zeros((n, 1))
        self.length = np.zeros(n)
        self.has = np.zeros(n, bool)
        self.version = np.zeros(n, np.int64)
        self.builds = 0

    # --- building --------------------------------------------------------------------------------
    def _grow(self, k: int, j: int) -> None:
        n, k0 = self.cum.shape
        if k > k0:
            k_new = max(k, int(k0 * 1.5) + 1)
            pad = k_new - k0
            self.points = np.concatenate([self.points, np.repeat(self.points[:, -1:], pad, 1)], 1)
            self.cum = np.concatenate([self.cum, np.repeat(self.cum[:, -1:], pad, 1)], 1)
        j0 = self.lanes.shape[1]
        if j > j0:
            self.lanes = np.concatenate([self.lanes, np.full((n, j - j0), -1, np.int64)], 1)
            self.lane_s0 = np.concatenate([self.lane_s0, np.zeros((n, j - j0))], 1)

    def build(self, agent: int, lane: int, s_on_lane: float, ahead: float) -> float:
        """(Re)build ``agent``'s path on ``lane`` from about ``BEHIND_M`` behind ``s_on_lane`` (m, arclength
        on the lane; past the lane's length: on the straight beyond its end) until ``s_on_lane + ahead`` plus
        ``extra`` is covered: through exit lanes (``next_lane``) while there are any, then straight on along
        the last lane's end heading.  Returns the agent's path arclength (m)."""
        g = self.graph
        pl0, cum0 = g.polylines[lane], g.cum[lane]
        length0 = float(cum0[-1])
        cur, seen = lane, {lane}
        follow = True
        if s_on_lane - BEHIND_M > length0:  # already on the straight beyond the lane's end
            s_from = s_on_lane - BEHIND_M
            h = end_heading(pl0, last=True)
            parts = [(pl0[-1] + (s_from - length0) * np.array([np.cos(h), np.sin(h)]))[None]]
            offs = [-s_from]
            total, need, s_agent = 0.0, BEHIND_M + ahead, BEHIND_M
            follow = False  # the lane's exits (if any) were passed by already
        else:
            start = max(int(np.searchsorted(cum0, s_on_lane - BEHIND_M, side="right")) - 1, 0)
            parts = [pl0[start:]]
            offs = [-float(cum0[start])]
            total = length0 - float(cum0[start])
            need = s_on_lane - float(cum0[start]) + ahead
            s_agent = s_on_lane - float(cum0[start])
        seq = [lane]
        while follow and total < need + self.extra:
            nxt = self.next_lane(agent, cur)
            if nxt is None or nxt in seen:
                break
            pl = g.polylines[nxt]
            gap = float(np.hypot(*(pl[0] - parts[-1][-1])))
            if gap < 1e-6:  # shared vertex: do not repeat it
                offs.append(total)
                parts.append(pl[1:])
            else:
                offs.append(total + gap)
                parts.append(pl)
            total += gap + g.length(nxt)
            seq.append(nxt)
            seen.add(nxt)
            cur = nxt
        if total < need + self.extra:  # the lanes end: straight on along the last one's end heading
            h = end_heading(g.polylines[cur], last=True)
            tail = parts[-1][-1] + (need + self.extra - total) * np.array([np.cos(h), np.sin(h)])
            parts.append(tail[None])
        pts = np.concatenate(parts)
        step = np.hypot(*np.diff(pts, axis=0).T)
        cum = np.concatenate([[0.0], np.cumsum(step)])
        self._grow(len(pts), len(seq))
        k = len(pts)
        self.points[agent, :k] = pts
        self.points[agent, k:] = pts[-1]
        self.cum[agent, :k] = cum
        self.cum[agent, k:] = cum[-1]
        self.nseg[agent] = max(k - 1, 1)
        self.lanes[agent] = -1
        self.lanes[agent, : len(seq)] = seq
        self.lane_s0[agent] = 0.0
        self.lane_s0[agent, : len(seq)] = offs
        self.length[agent] = cum[-1]
        self.has[agent] = True
        self.version[agent] += 1
        self.builds += 1
        return s_agent

    def build_straight(self, agent: int, xy: np.ndarray, heading: float, ahead: float) -> float:
        """(Re)build ``agent``'s path as a straight line along ``heading`` (rad) through ``xy`` [2] (m), from
        ``BEHIND_M`` behind it to ``ahead`` + ``extra`` metres ahead, for an agent on no lane.  The path holds
        no lane (``lanes`` all -1, so :meth:`lane_at` answers -1).  Returns the
        agent's path arclength (``BEHIND_M``)."""
        d = np.array([np.cos(heading), np.sin(heading)])
        length = BEHIND_M + max(float(ahead), 0.0) + self.extra
        pts = np.asarray(xy, np.float64)[:2] + np.array([-BEHIND_M, length - BEHIND_M])[:, None] * d
        self._grow(2, 1)
        self.points[agent] = pts[1]
        self.points[agent, 0] = pts[0]
        self.cum[agent] = length
        self.cum[agent, 0] = 0.0
        self.nseg[agent] = 1
        self.lanes[agent] = -1
        self.lane_s0[agent] = 0.0
        self.length[agent] = length
        self.has[agent] = True
        self.version[agent] += 1
        self.builds += 1
        return BEHIND_M

    def is_straight(self, agents: np.ndarray) -> np.ndarray:
        """[A] bool: the agents' paths are straight lines on no lane (:meth:`build_straight`)."""
        return self.has[agents] & (self.lanes[agents, 0] < 0)

    def lane_at(self, agents: np.ndarray, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(lane index [A], arclength on that lane [A]) of agents at path arclength ``s`` [A]."""
        starts = self.lane_s0[agents]
        valid = self.lanes[agents] >= 0
        j = np.where(valid & (starts <= s[:, None] + 1e-9), np.arange(starts.shape[1])[None], 0).max(1)
        rows = np.arange(len(agents))
        return self.lanes[agents][rows, j], s - starts[rows, j]

    def invalidate(self, agents: np.ndarray) -> None:
        self.has[agents] = False


def interp_paths(P: np.ndarray, cum: np.ndarray, nseg: np.ndarray, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Points [D, 2] and tangent headings [D] at arclength ``s`` [D] on padded paths (linear beyond the ends).

    ``P`` [D, K, 2], ``cum`` [D, K], ``nseg`` [D]: the segment used is the last real (non-zero-length)
    one starting at or before ``s`` (the first real one before the path start).
    """
    d, k = cum.shape
    rows = np.arange(d)
    seg_len = np.diff(cum, axis=1)
    real = (seg_len > 1e-9) & (np.arange(k - 1)[None, :] < nseg[:, None])
    j = np.where(real & (cum[:, :-1] <= s[:, None]), np.arange(k - 1)[None, :], -1).max(1)
    first_real = np.where(real.any(1), real.argmax(1), 0)
    j = np.where(j < 0, first_real, j)
    a, b = P[rows, j], P[rows, j + 1]
    length = np.maximum(seg_len[rows, j], 1e-9)
    frac = (s - cum[rows, j]) / length
    xy = a + frac[:, None] * (b - a)
    return xy, np.arctan2(b[:, 1] - a[:, 1], b[:, 0] - a[:, 0])
