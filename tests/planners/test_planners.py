"""Planners on hand-made contexts and on the real logs."""

import numpy as np
import pytest
from mad_sim.planners import ConstantVelocityPlanner, ExpertPlanner, context_from_scenario, make_planner
from mad_sim.planners.idm import IDMParams, idm_profile

from mad_sim.data import load_scenario
from mad_sim.errors import ConfigError


def test_cv_modes_and_geometry(womd_path):
    ctx = context_from_scenario(load_scenario(womd_path), horizon=30)
    p = ConstantVelocityPlanner().plan(ctx, 6, 30)
    assert p.xy.shape == (6, 30, 2) and p.probabilities.sum() == pytest.approx(1.0)
    assert p.best == 0
    v = ctx.speed
    # mode 0 is plain constant velocity: straight along +x at the current speed
    assert p.xy[0, -1] == pytest.approx([v * 3.0, 0.0], abs=1e-9)
    assert np.abs(p.heading[0]).max() == 0.0
    # every mode is distinct
    flat = p.xy.reshape(6, -1)
    assert len({tuple(np.round(r, 6)) for r in flat}) == 6


def test_context_is_ego_frame(womd_path):
    sc = load_scenario(womd_path)
    ctx = context_from_scenario(sc, horizon=80)
    assert ctx.ego_xy[-1] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert ctx.ego_heading[-1] == pytest.approx(0.0, abs=1e-12)
    assert ctx.ego_xy.shape == (11, 2) and ctx.agents_xy.shape == (sc.num_tracks - 1, 11, 2)
    # the log's future as the expert sees it: 24.5 m of driving, mostly forward
    assert ctx.future_valid.sum() > 70
    assert ctx.future_xy[ctx.future_valid][-1, 0] > 15.0


def test_expert_reproduces_log(womd_path):
    ctx = context_from_scenario(load_scenario(womd_path), horizon=80)
    p = ExpertPlanner().plan(ctx, 6, 80)
    v = ctx.future_valid
    assert np.abs(p.xy[0][v] - ctx.future_xy[v]).max() == 0.0
    assert p.probabilities.tolist() == [1, 0, 0, 0, 0, 0]


def test_idm_profile_free_road_and_leader():
    p = IDMParams()
    free = idm_profile(0.0, np.array([10.0]), np.array([np.inf]), np.array([0.0]), 4.5, 300, 0.1, p)
    v_end = (free[0, -1] - free[0, -2]) / 0.1
    assert 9.0 < v_end <= 10.0  # approaches the desired speed from below
    # a stopped leader 30 m ahead: never driven into
    lead = idm_profile(10.0, np.array([15.0]), np.array([30.0]), np.array([0.0]), 4.5, 200, 0.1, p)
    assert lead[0, -1] < 30.0 and lead[0, -1] > 20.0
    stop = idm_profile(5.0, np.array([0.0]), np.array([np.inf]), np.array([0.0]), 4.5, 50, 0.1, p)
    assert np.all(np.diff(stop[0]) >= 0) and stop[0, -1] == pytest.approx(stop[0, -2])


def test_idm_follows_lanes(womd_path, scenarionet_path):
    for path in (womd_path, scenarionet_path):
        sc = load_scenario(path)
        ctx = context_from_scenario(sc, horizon=80)
        planner = make_planner("idm")
        assert planner.start_lanes(ctx.roadmap), "the ego starts on a lane"
        p = planner.plan(ctx, 6, 80)
        assert p.xy.shape == (6, 80, 2)
        best = np.linalg.norm(p.xy - ctx.future_xy[None], axis=-1)[:, ctx.future_valid].mean(-1).min()
        cv = ConstantVelocityPlanner().plan(ctx, 6, 80)
        cv_best = np.linalg.norm(cv.xy - ctx.future_xy[None], axis=-1)[:, ctx.future_valid].mean(-1).min()
        assert best < cv_best


def test_unknown_planner():
    with pytest.raises(ConfigError, match="unknown planner"):
        make_planner("nope")
