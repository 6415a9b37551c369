"""The IDM's fast paths against slow references on real scenes.

* The leader search (:class:`mad_sim.world.leaders.LeaderSearch`: pruning, chunked exact projection)
  against a brute-force search that projects every valid agent on every segment of every driver's path.
* The structures the IDM keeps from call to call (path geometry, stop lines and their flags, leader-search
  arrays, lanes and desired speeds, the last path points) against the same policy made to rebuild them on
  every call.

Both compare bit for bit, step by step as the env calls the policy (horizon 1).
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.data.procedural import generate_scenario
from mad_sim.world import leaders
from mad_sim.world.idm import IDM
from mad_sim.world.lanes import SegmentGrid
from mad_sim.world.state import WorldState


def _roll(policy: IDM, st: WorldState, steps: int, rebuild: bool = False) -> List[np.ndarray]:
    """Step ``st`` in place ``steps`` times, one call of one step each, the SDC held still, the others as
    ``policy`` moves them; returns every call's (xyz, heading, velocity, valid) flattened.  ``rebuild``:
    drop what the policy keeps between calls before each call (its flags written back first)."""
    ctrl = np.ones(st.num_agents, bool)
    ctrl[st.ego_index] = False
    rec = []
    for _ in range(min(steps, st.remaining_log_steps)):
        if rebuild:
            policy._flush_stops()
            policy._geo_key = policy._search_key = policy._lanes_now = policy._interp = None
        out = policy.advance(st, ctrl, 1)
        rec += [out.xyz.ravel(), out.heading.ravel(), out.velocity.ravel(), out.valid.ravel().astype(float)]
        t = st.timestep
        xyz = out.xyz[:, 0].copy()
        xyz[~ctrl] = st.sim.xyz[~ctrl, t]
        st.write_step(t + 1, xyz, out.heading[:, 0], out.velocity[:, 0], out.valid[:, 0] | ~ctrl)
        st.timestep = t + 1
    return rec


def _scenes(womd_path) -> list:
    return [load_scenario(womd_path), generate_scenario(np.random.default_rng(1), kind="intersection")]


@pytest.mark.parametrize("which", [0, 1], ids=["womd-257-tracks", "procedural-signals"])
def test_kept_structures_give_the_results_of_rebuilding_every_call(womd_path, which):
    sc = _scenes(womd_path)[which]
    kept = _roll(IDM(), WorldState.from_scenario(sc), 80)
    fresh = _roll(IDM(), WorldState.from_scenario(sc), 80, rebuild=True)
    assert len(kept) == len(fresh) > 0
    for a, b in zip(kept, fresh):
        np.testing.assert_array_equal(a, b)


def _brute_force(
    search: leaders.LeaderSearch, s, xy_d, cos_h, sin_h, pos, vel, p_lookahead: float
) -> Tuple[np.ndarray, np.ndarray]:
    """The leader definition of :mod:`mad_sim.world.leaders`, driver by driver, agent by agent, on every segment."""
    geo = search.geo
    d_n = search.drivers.size
    gap, v_lead = np.full(d_n, np.inf), np.zeros(d_n)
    P, cum = geo.P, geo.cum
    for d in range(d_n):
        n_seg = int(geo.nseg[d])
        a = P[d, :-1][:n_seg]
        ab = np.diff(P[d], axis=0)[:n_seg]
        l2 = np.maximum((ab**2).sum(-1), 1e-12)
        best = (np.inf, 0.0)
        for o_col, o in enumerate(search.others):
            if o == search.drivers[d]:
                continue
            dx, dy = pos[o, 0] - xy_d[d, 0], pos[o, 1] - xy_d[d, 1]
            if not (dx * dx + dy * dy < p_lookahead**2 and dx * cos_h[d] + dy * sin_h[d] > search._fwd_lim[d, o_col]):
                continue
            qx, qy = pos[o, 0] - a[:, 0], pos[o, 1] - a[:, 1]
            t = np.clip((qx * ab[:, 0] + qy * ab[:, 1]) / l2, 0.0, 1.0)
            ex, ey = qx - t * ab[:, 0], qy - t * ab[:, 1]
            d2 = ex * ex + ey * ey
            j = int(np.argmin(d2))
            ahead = cum[d, j] + t[j] * np.sqrt(l2[j]) - s[d]
            if not (ahead > 0 and np.sqrt(d2[j]) <= search._corridor[d, o_col] and ahead < p_lookahead):
                continue
            g = ahead - search.hl_d[d] - search.hl_o[o_col]
            if g < best[0]:
                h = np.arctan2(ab[j, 1], ab[j, 0])
                best = (g, vel[o, 0] * np.cos(h) + vel[o, 1] * np.sin(h))
        gap[d], v_lead[d] = best
    return gap, v_lead


def test_leader_search_matches_a_brute_force_search_on_a_real_log(womd_path, monkeypatch):
    calls = []
    find = leaders.LeaderSearch.find

    def spy(self, *args):
        out = find(self, *args)
        calls.append((self, args, out))
        return out

    monkeypatch.setattr(leaders.LeaderSearch, "find", spy)
    _roll(IDM(), WorldState.from_scenario(load_scenario(womd_path)), 50)
    assert len(calls) == 50
    led = 0
    for search, args, (gap, v_lead) in calls:
        ref_gap, ref_v = _brute_force(search, *args, p_lookahead=search.lookahead)
        np.testing.assert_array_equal(gap, ref_gap)
        np.testing.assert_allclose(v_lead, ref_v, rtol=0, atol=1e-12)
        led += int(np.isfinite(gap).sum())
    assert led > 50  # drivers do have leaders on this log: the comparison is not vacuous


def test_segment_grid_candidates_hold_every_segment_whose_grown_box_holds_the_point():
    rng = np.random.default_rng(0)
    a = rng.uniform(-300, 300, (2000, 2))
    b = a + rng.normal(0, 3, (2000, 2))
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pts = np.concatenate([rng.uniform(-320, 320, (300, 2)), a[:50], hi[50:60] + 2.0])  # some on the grown edges
    for grid in (SegmentGrid(lo, hi, 2.0), SegmentGrid(lo, hi, 2.0, max_cells=16)):  # fine, and forced coarse
        ai, seg = grid.candidates(pts)
        hit = np.zeros((len(pts), len(lo)), bool)
        hit[ai, seg] = True
        truth = ((lo[None] <= pts[:, None] + 2.0) & (hi[None] >= pts[:, None] - 2.0)).all(-1)
        assert not (truth & ~hit).any()
        order = np.lexsort((seg, ai))
        assert np.array_equal(order, np.arange(ai.size))  # by point, then segment
    ai, seg = SegmentGrid(lo[:0], hi[:0], 2.0).candidates(pts)
    assert ai.size == seg.size == 0
