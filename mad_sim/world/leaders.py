"""Leader search along the IDM drivers' paths (world frame, metres).

For every driver ``d`` on its path (a polyline from
:class:`~mad_sim.world.lanes.PathStore`, 1 m vertices) at path arclength
``s_d``, the leader is the nearest other valid agent ahead on the path within
the corridor ``(w_self + w_other) / 2 + corridor_margin`` of it laterally and
within ``lookahead`` metres ahead.  Only agents within ``lookahead`` of the
driver's centre and not more than ``(l_self + l_other) / 2`` behind it along its
heading are considered.  The gap is bumper to bumper along the path,
``s_other - s_d - (l_self + l_other) / 2``, and the leader's speed is its
velocity projected on the path tangent at its projection.

Candidates are pruned before the exact projection on the path: by the path's
bounding box grown by the driver's widest corridor, and by a coarse copy of
the path (every ``_COARSE_STRIDE``-th vertex, a "chunk" of the path per coarse
segment): the path's part in a chunk and the coarse segment lie within the
chunk's ``sag`` of each other, so an agent at distance ``dc`` from the coarse
segment is within ``[dc - sag, dc + sag]`` of that part of the path.  The exact
projection is made only on the chunks with ``dc - sag`` at most the corridor
(a leader's nearest path point is within its corridor) and at most the
smallest ``dc + sag`` (the nearest path point is in such a chunk), so the
nearest segment found, and thus the leader, are those of a projection on the
whole path.

Cost model: with tens of drivers and agents the arrays are small and every
numpy call costs about a microsecond whatever its size, so the search is laid
out to make few calls.  Everything that holds for a whole
:meth:`~mad_sim.world.idm.IDM.advance` call (which agents are valid, their
sizes, the corridors, the grown boxes) is computed once in
:class:`LeaderSearch`; the per-pair path arrays are gathered with one fancy
index from arrays stacked per path (:class:`PathGeometry`).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from mad_sim.world.idm_law import IDMParams

__all__ = ["PathGeometry", "LeaderSearch"]

_COARSE_STRIDE = 16
"""Path vertices per coarse segment in the leader pre-filter (about 16 m with 1 m vertices; 8 and 32 measured
slower and about as fast on the 257-track log)."""


class PathGeometry:
    """Segment arrays of the drivers' paths and their coarse copies, kept while the paths are unchanged.

    Built from ``P`` [D, K, 2] (path vertices, world frame, m), ``cum`` [D, K]
    (arclength at each vertex, m) and ``nseg`` [D] (real segments per path;
    the rest is padding), kept as ``P``, ``cum``, ``nseg``.  Attributes: ``lo`` / ``hi`` [D, 2] bounding boxes,
    ``sag`` [D] m (farthest vertex from its coarse chord, plus 1e-6);
    ``coarse`` [6, D, C] per coarse segment ("chunk"): start x, start y, vector x,
    vector y, squared length (at least 1e-12), the chunk's sag (m, its farthest
    vertex from the coarse segment, plus 1e-6); ``fine`` [6, D * C, S] the fine
    segments of chunk ``c`` of path ``d`` in row ``d * C + c`` (S =
    ``_COARSE_STRIDE`` slots): start x, start y, vector x, vector y, squared
    length (at least 1e-12), and 0 for real segments / inf for the padding and
    the empty slots (added to squared distances: they never win);
    ``chunk_seg`` [C * S]: the path segment index of each slot.
    """

    def __init__(self, P: np.ndarray, cum: np.ndarray, nseg: np.ndarray) -> None:
        self.P, self.cum, self.nseg = P, cum, nseg
        k = P.shape[1]
        ab = np.diff(P, axis=1)
        l2 = np.maximum((ab**2).sum(-1), 1e-12)
        real_seg = np.arange(k - 1)[None, :] < nseg[:, None]
        seg_len = np.diff(cum, axis=1)
        real = (seg_len > 1e-9) & real_seg  # non-degenerate segments
        starts = np.where(real, cum[:, :-1], np.inf)
        self._starts_rev = np.ascontiguousarray(starts[:, ::-1])  # last segment first: argmax finds the last start <= s
        self._last = k - 2
        self._seg_len = np.maximum(seg_len, 1e-9)
        self._first = np.where(real.any(1), real.argmax(1), 0)
        self._rows = np.arange(P.shape[0])
        self._ab = ab
        self.lo, self.hi = P.min(1), P.max(1)
        # coarse copy: every _COARSE_STRIDE-th vertex (and the last); sag = farthest vertex from its chord
        idx = np.unique(np.r_[np.arange(0, k, _COARSE_STRIDE), k - 1])
        C = P[:, idx]
        ca, cb = C[:, :-1], C[:, 1:]
        seg_of = np.minimum(np.searchsorted(idx, np.arange(k), side="right") - 1, len(idx) - 2)
        a, b = ca[:, seg_of], cb[:, seg_of]  # [D, K, 2] the chord over each vertex
        cab_v = b - a
        cl2_v = np.maximum((cab_v**2).sum(-1), 1e-12)
        t = np.clip(((P - a) * cab_v).sum(-1) / cl2_v, 0.0, 1.0)
        dev = np.sqrt(((P - a - t[..., None] * cab_v) ** 2).sum(-1))  # [D, K] each vertex from its chord
        sag_c = np.maximum.reduceat(dev, idx[:-1], axis=1) + 1e-6  # [D, C] per chunk
        self.sag = sag_c.max(1)
        cab = cb - ca
        cl2 = np.maximum(cab[..., 0] ** 2 + cab[..., 1] ** 2, 1e-12)
        self.coarse = np.stack([ca[..., 0], ca[..., 1], cab[..., 0], cab[..., 1], cl2, sag_c])
        # the fine segments by coarse segment ("chunk" c holds segments idx[c] .. idx[c+1]-1), padded to
        # _COARSE_STRIDE per chunk with segments that never win (inf added to their squared distance)
        d, n_c = P.shape[0], len(idx) - 1
        fine = np.zeros((d, n_c * _COARSE_STRIDE, 6))
        fine[..., 4] = 1.0
        fine[..., 5] = np.inf
        seg = np.arange(k - 1)
        chunk = np.minimum(np.searchsorted(idx, seg, side="right") - 1, n_c - 1)
        slot = chunk * _COARSE_STRIDE + (seg - idx[chunk])
        fine[:, slot] = np.stack([P[:, :-1, 0], P[:, :-1, 1], ab[..., 0], ab[..., 1], l2, np.where(real_seg, 0.0, np.inf)], -1)
        self.fine = np.ascontiguousarray(fine.reshape(d * n_c, _COARSE_STRIDE, 6).transpose(2, 0, 1))  # [6, D * C, S]
        self.chunk_seg = np.full(n_c * _COARSE_STRIDE, k - 2, np.int64)  # chunk slot -> segment index
        self.chunk_seg[slot] = seg
        self.num_chunks = n_c

    def interp(self, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Points [D, 2] and tangent headings [D] at path arclength ``s`` [D]
        (same rule as :func:`mad_sim.world.lanes.interp_paths`, on the cached segment arrays)."""
        rows = self._rows
        before = self._starts_rev <= s[:, None]
        jr = before.argmax(1)
        j = np.where(before[rows, jr], self._last - jr, self._first)
        a = self.P[rows, j]
        ab = self._ab[rows, j]
        frac = (s - self.cum[rows, j]) / self._seg_len[rows, j]
        return a + frac[:, None] * ab, np.arctan2(ab[:, 1], ab[:, 0])


class LeaderSearch:
    """The leader search of one :meth:`~mad_sim.world.idm.IDM.advance` call (see the module docstring).

    Args:
      geo: the drivers' paths.  drivers: [D] agent indices.  valid: [N] bool, agents that can lead.
      half_l / half_w: [N] m, half length / half width of every agent.
      p: ``corridor_margin`` and ``lookahead`` are used.
    """

    def __init__(
        self, geo: PathGeometry, drivers: np.ndarray, valid: np.ndarray, half_l: np.ndarray, half_w: np.ndarray, p: IDMParams
    ) -> None:
        self.geo, self.drivers = geo, drivers
        self.lookahead = float(p.lookahead)
        self._l2 = p.lookahead**2
        self.others = others = np.flatnonzero(valid)
        self.hl_d = hl_d = half_l[drivers]
        self.hl_o = hl_o = half_l[others]
        hw_d, hw_o = half_w[drivers], half_w[others]
        self._fwd_lim = -hl_o[None, :] - hl_d[:, None]  # [D, O] an agent farther behind along the heading is no leader
        self._not_self = others[None, :] != drivers[:, None]
        self._corridor = hw_d[:, None] + hw_o[None, :] + p.corridor_margin  # [D, O] m
        # each path's box grown by its driver's widest corridor (pruning only: the exact corridor test comes later)
        g_d = hw_d + ((float(hw_o.max()) if hw_o.size else 0.0) + p.corridor_margin)
        self._lo_x, self._lo_y = (geo.lo[:, 0] - g_d)[:, None], (geo.lo[:, 1] - g_d)[:, None]
        self._hi_x, self._hi_y = (geo.hi[:, 0] + g_d)[:, None], (geo.hi[:, 1] + g_d)[:, None]

    def find(
        self, s: np.ndarray, xy_d: np.ndarray, cos_h: np.ndarray, sin_h: np.ndarray, pos: np.ndarray, vel: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Gap [D] (m, inf without leader) and leader speed along the path [D] (m/s, 0 without) for every driver.

        ``s`` [D] m: path arclength of each driver's centre, ``xy_d`` [D, 2] m its position (the path point
        at ``s``), ``cos_h`` / ``sin_h`` [D] of the path tangent heading there; ``pos`` / ``vel`` [N, 2]:
        all agents' centres (m) and velocities (m/s) now, world frame.
        """
        d_n = self.drivers.size
        gap = np.full(d_n, np.inf)
        v_lead = np.zeros(d_n)
        if self.others.size == 0:
            return gap, v_lead
        po = pos[self.others]
        px, py = po[:, 0], po[:, 1]
        dx = px[None, :] - xy_d[:, 0:1]
        dy = py[None, :] - xy_d[:, 1:2]
        cand = (
            (dx * dx + dy * dy < self._l2)
            & (dx * cos_h[:, None] + dy * sin_h[:, None] > self._fwd_lim)
            & (px >= self._lo_x)
            & (px <= self._hi_x)
            & (py >= self._lo_y)
            & (py <= self._hi_y)
            & self._not_self
        )
        di, oc = np.nonzero(cand)
        if di.size == 0:
            return gap, v_lead
        geo = self.geo
        corridor = self._corridor[di, oc]
        q = po[oc]
        qx, qy = q[:, 0:1], q[:, 1:2]
        # distance dc to each coarse segment; the path's part in that chunk lies within [dc - sag, dc + sag] of
        # the agent (sag: the chunk's), so its nearest fine segment is in a chunk with dc - sag <= min(dc + sag),
        # and a leader's (at most its corridor away) in one with dc - sag <= corridor: only those chunks are
        # projected on exactly
        c = np.take(geo.coarse, di, 1)
        ex, ey = qx - c[0], qy - c[1]
        t = np.clip((ex * c[2] + ey * c[3]) / c[4], 0.0, 1.0)
        ex -= t * c[2]
        ey -= t * c[3]
        dc = np.sqrt(ex * ex + ey * ey)
        lower, upper = dc - c[5], dc + c[5]
        near = upper[np.arange(di.size), upper.argmin(1)]
        pr, ch = np.nonzero((lower <= near[:, None]) & (lower <= corridor[:, None]))
        if pr.size == 0:
            return gap, v_lead
        # exact projection on the fine segments of those chunks (rows: pair, chunk in order)
        f = np.take(geo.fine, di[pr] * geo.num_chunks + ch, 1)
        abx, aby, l2 = f[2], f[3], f[4]
        qx, qy = qx[pr] - f[0], qy[pr] - f[1]
        t = np.clip((qx * abx + qy * aby) / l2, 0.0, 1.0)
        ex, ey = qx - t * abx, qy - t * aby
        d2 = ex * ex + ey * ey + f[5]
        jj = d2.argmin(1)
        rows = np.arange(pr.size)
        d2j = d2[rows, jj]
        # per pair the first nearest segment over its chunks (the rule of argmin over the whole path)
        order = np.lexsort((d2j, pr))
        first = np.ones(order.size, bool)
        first[1:] = pr[order][1:] != pr[order][:-1]
        best = order[first]
        pb = pr[best]
        di, oc, corridor = di[pb], oc[pb], corridor[pb]
        j = geo.chunk_seg[ch[best] * _COARSE_STRIDE + jj[best]]
        t_b, l2_b = t[best, jj[best]], l2[best, jj[best]]
        s_o = geo.cum[di, j] + t_b * np.sqrt(l2_b)
        ahead = s_o - s[di]
        ok = np.flatnonzero((ahead > 0) & (np.sqrt(d2j[best]) <= corridor) & (ahead < self.lookahead))
        if ok.size == 0:
            return gap, v_lead
        di, oc, best, jb = di[ok], oc[ok], best[ok], jj[best[ok]]
        g = ahead[ok] - self.hl_d[di] - self.hl_o[oc]
        order = np.lexsort((g, di))  # per driver, nearest first (stable: the first pair among equals)
        first = np.ones(order.size, bool)
        first[1:] = di[order][1:] != di[order][:-1]
        pick = order[first]
        seg_h = np.arctan2(aby[best[pick], jb[pick]], abx[best[pick], jb[pick]])
        oj = self.others[oc[pick]]
        gap[di[pick]] = g[pick]
        v_lead[di[pick]] = vel[oj, 0] * np.cos(seg_h) + vel[oj, 1] * np.sin(seg_h)
        return gap, v_lead
