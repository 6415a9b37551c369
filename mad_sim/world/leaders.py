"""Leader search along the IDM drivers' paths (world frame, metres).

For every driver ``d`` on its path (a polyline from
:class:`~mad_sim.world.lanes.PathStore`, 1 m vertices) at path arclength
``s_d``, the leader is the nearest other valid agent ahead on the path within
the corridor ``(w_self + w_other) / 2 + corridor_margin`` of it laterally and
within ``lookahead`` metres ahead.  Its gap is bumper to bumper along the path,
``s_other - s_d - (l_self + l_other) / 2``, and its speed is its velocity
projected on the path tangent at its projection.

Candidates are pruned before the exact projection on the path: by the union
of all paths' bounding boxes, by distance (``lookahead``), by being not behind
the driver, by the path's bounding box grown by the driver's widest corridor,
and by a coarse copy of the path (every
``_COARSE_STRIDE``-th vertex): every point of the path lies within ``sag`` of
the coarse copy, so ``dist(coarse) - sag > corridor`` proves the agent is
outside the corridor and the pruning never drops a true leader.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from mad_sim.world.idm_law import IDMParams

__all__ = ["PathGeometry", "find_leaders"]

_COARSE_STRIDE = 8
"""Path vertices per coarse segment in the leader pre-filter (about 8 m with 1 m vertices)."""


class PathGeometry:
    """Per-call segment arrays of the drivers' paths and their coarse copies.

    Built from ``P`` [D, K, 2] (path vertices, world frame, m), ``cum`` [D, K]
    (arclength at each vertex, m) and ``nseg`` [D] (real segments per path;
    the rest is padding).  Attributes: ``ab`` / ``l2`` [D, K-1] segment vectors
    and squared lengths, ``real_seg`` [D, K-1], ``lo`` / ``hi`` [D, 2] bounding
    boxes, ``ca`` / ``cb`` [D, C, 2] coarse segments, ``sag`` [D] m (farthest
    vertex from its coarse chord, plus 1e-6).
    """

    def __init__(self, P: np.ndarray, cum: np.ndarray, nseg: np.ndarray) -> None:
        self.P, self.cum = P, cum
        k = P.shape[1]
        self.ab = np.diff(P, axis=1)
        self.l2 = np.maximum((self.ab**2).sum(-1), 1e-12)
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
        l2 = np.maximum((ab**2).sum(-1), 1e-12)
        t = np.clip(((P - a) * ab).sum(-1) / l2, 0.0, 1.0)
        self.sag = np.sqrt(((P - a - t[..., None] * ab) ** 2).sum(-1).max(1)) + 1e-6
        # component arrays for the per-pair projections (x and y apart: no trailing axis of 2 to reduce over)
        cab = self.cb - self.ca
        self._cax, self._cay = self.ca[..., 0], self.ca[..., 1]
        self._cabx, self._caby = cab[..., 0], cab[..., 1]
        self._cl2 = np.maximum(self._cabx**2 + self._caby**2, 1e-12)
        self._ax, self._ay = P[:, :-1, 0], P[:, :-1, 1]
        self._abx, self._aby = self.ab[..., 0], self.ab[..., 1]
        self._pad = np.where(self.real_seg, 0.0, np.inf)  # added to squared distances: padding never wins

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


def _coarse_distance(geo: PathGeometry, di: np.ndarray, q: np.ndarray) -> np.ndarray:
    """[P] distance from points ``q`` [P, 2] to the nearest coarse segment of path ``di`` [P]."""
    ax, ay, abx, aby = geo._cax[di], geo._cay[di], geo._cabx[di], geo._caby[di]
    qx, qy = q[:, 0:1] - ax, q[:, 1:2] - ay
    t = np.clip((qx * abx + qy * aby) / geo._cl2[di], 0.0, 1.0)
    ex, ey = qx - t * abx, qy - t * aby
    return np.sqrt((ex * ex + ey * ey).min(1))


def find_leaders(
    geo: PathGeometry,
    s: np.ndarray,
    h_d: np.ndarray,
    drivers: np.ndarray,
    pos: np.ndarray,
    vel: np.ndarray,
    valid: np.ndarray,
    half_l: np.ndarray,
    half_w: np.ndarray,
    p: IDMParams,
) -> Tuple[np.ndarray, np.ndarray]:
    """Gap [D] (m, inf without leader) and leader speed along the path [D] (m/s, 0 without) for every driver.

    Args:
      geo: the drivers' paths.  s: [D] m, path arclength of each driver's centre.
      h_d: [D] rad, path tangent heading at ``s``.  drivers: [D] agent indices.
      pos: [N, 2] m, all agents' centres now (world frame).  vel: [N, 2] m/s.
      valid: [N] bool.  half_l / half_w: [N] m, half length / half width.
      p: ``corridor_margin`` and ``lookahead`` are used.
    """
    d_n = drivers.size
    gap = np.full(d_n, np.inf)
    v_lead = np.zeros(d_n)
    # agents that can be a leader of some driver: valid and inside the union of the paths' boxes grown by
    # the widest corridor (a superset of the per-driver box test below, so nothing is lost)
    hw_d = half_w[drivers]
    grow = float(hw_d.max()) + float(half_w.max()) + p.corridor_margin
    lo_all, hi_all = geo.lo.min(0) - grow, geo.hi.max(0) + grow
    others = np.flatnonzero(
        valid & (pos[:, 0] >= lo_all[0]) & (pos[:, 0] <= hi_all[0]) & (pos[:, 1] >= lo_all[1]) & (pos[:, 1] <= hi_all[1])
    )
    if others.size == 0:
        return gap, v_lead
    po = pos[others]
    me = pos[drivers]
    hl_d = half_l[drivers]
    dx = po[None, :, 0] - me[:, None, 0]
    dy = po[None, :, 1] - me[:, None, 1]
    fwd = dx * np.cos(h_d)[:, None] + dy * np.sin(h_d)[:, None]
    # each driver's path box grown by its widest corridor (pruning only: the exact corridor test comes later)
    g_d = (hw_d + (float(half_w[others].max()) + p.corridor_margin))[:, None]
    lo, hi = geo.lo[:, :, None] - g_d[:, None], geo.hi[:, :, None] + g_d[:, None]  # [D, 2, 1]
    cand = (
        (dx * dx + dy * dy < p.lookahead**2)
        & (fwd > -half_l[others][None, :] - hl_d[:, None])
        & (po.T[None] >= lo).all(1)
        & (po.T[None] <= hi).all(1)
        & (others[None, :] != drivers[:, None])
    )
    di, oc = np.nonzero(cand)
    if di.size == 0:
        return gap, v_lead
    oj = others[oc]
    corridor = hw_d[di] + half_w[oj] + p.corridor_margin
    # coarse pre-filter: the path lies within sag of its coarse copy
    dc = _coarse_distance(geo, di, pos[oj])
    keep = dc - geo.sag[di] <= corridor
    di, oj, corridor = di[keep], oj[keep], corridor[keep]
    if di.size == 0:
        return gap, v_lead
    q = pos[oj]
    abx, aby, l2 = geo._abx[di], geo._aby[di], geo.l2[di]
    qx, qy = q[:, 0:1] - geo._ax[di], q[:, 1:2] - geo._ay[di]
    t = np.clip((qx * abx + qy * aby) / l2, 0.0, 1.0)
    ex, ey = qx - t * abx, qy - t * aby
    d2 = ex * ex + ey * ey + geo._pad[di]
    j = d2.argmin(1)
    r = np.arange(di.size)
    s_o = geo.cum[di, j] + t[r, j] * np.sqrt(l2[r, j])
    lat = np.sqrt(d2[r, j])
    ahead = s_o - s[di]
    ok = (ahead > 0) & (lat <= corridor) & (ahead < p.lookahead)
    g = np.where(ok, ahead - hl_d[di] - half_l[oj], np.inf)
    seg_h = np.arctan2(aby[r, j], abx[r, j])
    along = vel[oj, 0] * np.cos(seg_h) + vel[oj, 1] * np.sin(seg_h)
    order = np.lexsort((g, di))  # per driver, nearest first
    first = np.ones(order.size, bool)
    first[1:] = di[order][1:] != di[order][:-1]
    pick = order[first]
    gap[di[pick]] = g[pick]
    v_lead[di[pick]] = np.where(np.isfinite(g[pick]), along[pick], 0.0)
    return gap, v_lead
