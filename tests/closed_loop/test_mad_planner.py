"""MADPlanner: K imagined futures -> ego trajectories by lane odometry; registered for the open-loop eval."""

from __future__ import annotations

import numpy as np
import pytest
from closed_loop_helpers import LogOracleService
from mad_sim.planners import make_planner
from mad_sim.planners.base import context_from_scenario
from mad_sim.planners.mad import MADPlanner, MADPlannerSettings, context_scenario

from mad_sim.data import load_scenario
from mad_sim.errors import ConfigError


def test_context_history_draws_the_scene(womd_path):
    sc = load_scenario(womd_path)
    ctx = context_from_scenario(sc)
    small = context_scenario(ctx)
    assert small.tracks.valid[0, -1] and small.num_tracks == sc.num_tracks
    planner = MADPlanner(MADPlannerSettings(weights="random", size=64, future_frames=9, sampler_steps=2, threads=1))
    hist = planner.history(ctx)
    assert hist.shape == (9, 64, 64, 3) and hist.dtype == np.uint8
    lanes = (hist[-1] == 255).all(-1).mean()
    assert 0.005 < lanes < 0.3  # white lane pixels on the ground, not a black or washed-out frame


def test_oracle_futures_give_the_logged_ego_trajectory(womd_path):
    """With the logged future frames as the model's output, the odometry read-out matches the log."""
    sc = load_scenario(womd_path)
    ctx = context_from_scenario(sc, horizon=16)
    oracle = LogOracleService(sc, sc.sdc_index, 128)
    oracle.t = sc.current_index
    planner = MADPlanner(MADPlannerSettings(size=128, future_frames=17, max_chunks=1), service=oracle)
    plan = planner.plan(ctx, 2, 16)
    assert plan.xy.shape == (2, 16, 2)
    ade = np.hypot(*(plan.xy[0] - ctx.future_xy).T).mean()
    travelled = np.hypot(*ctx.future_xy[-1])
    assert travelled > 3.0 and ade < 0.35 * travelled, (ade, travelled)
    np.testing.assert_allclose(plan.probabilities, 0.5)


def test_registered_for_eval(fast_mad):
    import mad_sim.planners.mad as pm

    assert "mad" in __import__("mad_sim.planners", fromlist=["PLANNERS"]).PLANNERS
    planner = make_planner("mad", **{k: fast_mad[k] for k in ("weights", "size", "future_frames", "sampler_steps")})
    assert isinstance(planner, pm.MADPlanner) and planner.settings.size == 64 and planner.settings.sampler_steps == 2
    with pytest.raises(ConfigError, match="sizee"):
        make_planner("mad", sizee=64)
