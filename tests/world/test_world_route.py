"""The ego's logged route and progress along it."""

from __future__ import annotations

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.errors import SchemaError
from mad_sim.world.route import route_from_log


def test_sdc_route_on_real_log(womd_path, womd_still_path):
    s = load_scenario(womd_path)
    r = route_from_log(s)
    # the SDC ends 24.5 m from its start; its path (with the log's jitter) is 26.1 m long
    assert np.hypot(*(r.points[-1] - r.points[0])) == pytest.approx(24.48, abs=0.01)
    assert 24.5 < r.length < 27.0
    xy = s.tracks.xy[s.sdc_index]
    prog = r.progress(xy)
    assert prog[0] == pytest.approx(0.0, abs=1e-9)
    assert prog[-1] == pytest.approx(r.length, abs=0.05)
    assert np.all(np.diff(prog) > -0.05)  # progress grows along the log
    _, lat = r.project(xy)
    assert np.abs(lat).max() < 0.2  # the vertices dropped were within 0.2 m
    p, h = r.at(np.array([0.0, r.length / 2]))
    assert p.shape == (2, 2) and np.all(np.isfinite(h))
    # an ego standing still all 9 s: a route of one point, no progress
    still = load_scenario(womd_still_path)
    rs = route_from_log(still)
    assert rs.length < 0.5
    with pytest.raises(SchemaError):
        route_from_log(s, t0=s.num_steps, track=s.sdc_index)
