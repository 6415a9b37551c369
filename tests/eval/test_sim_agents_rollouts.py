"""Rollouts of the scripted policies, the brake probe and the streaming runner (small: few rollouts, short horizon)."""

from dataclasses import replace

import numpy as np
import pytest
from mad_sim.eval.sim_agents.probe import PROBE_KEYS, probe_aggregate, probe_row
from mad_sim.eval.sim_agents.rollouts import RolloutSettings, brake_profile, ego_mode_check, simulate
from mad_sim.eval.sim_agents.runner import BenchSettings, run_sim_agents
from mad_sim.eval.sim_agents.scoring import score_rollouts

from mad_sim.data import load_scenario
from mad_sim.errors import ConfigError

FAST = RolloutSettings(rollouts=2, horizon_s=3.0)


def test_brake_profile():
    s = brake_profile(10.0, 5.0, 30)
    assert s[0] == pytest.approx(10 * 0.1 - 2.5 * 0.01)
    assert s[19] == pytest.approx(10.0) and s[-1] == pytest.approx(10.0)  # stands after 2 s, 10 m on


def test_log_replay_reproduces_the_log(womd_path):
    scenario = load_scenario(womd_path)
    ro = simulate(scenario, "log", FAST)
    assert ro.info["deterministic"] and ro.xyz.shape[:3] == (2, int(scenario.tracks.valid[:, 10].sum()), 30)
    row = score_rollouts(scenario, ro)
    assert row["min_average_displacement_error"] == pytest.approx(0.0, abs=1e-6)


def test_deterministic_shortcut_matches_a_full_run(womd_path):
    from mad_sim.eval.sim_agents import rollouts as R

    scenario = load_scenario(womd_path)
    once = simulate(scenario, "idm", FAST)
    full = R.simulate_once(scenario, "idm", FAST, np.random.default_rng([0, 1]))
    xyz, _ = R._held(full, R.sim_agent_rows(scenario), scenario.current_index, FAST.horizon)
    np.testing.assert_allclose(once.xyz[1], xyz)


def _ego_path(scenario, ro):
    return ro.xy[:, list(ro.object_ids).index(int(scenario.track_ids[scenario.sdc_index]))]  # [R, T, 2]


def test_planner_egos(womd_path):
    """``ego=expert`` drives the log (the expert planner is the log); ``idm`` / ``cv`` drive their own plan,
    replanned from the simulated state, and the agents around them are simulated and scored as usual."""
    scenario = load_scenario(womd_path)
    t0, t = scenario.current_index, FAST.horizon
    log_xy = scenario.tracks.xy[scenario.sdc_index, t0 + 1 : t0 + 1 + t]
    paths = {}
    for ego in ("expert", "idm", "cv"):
        ro = simulate(scenario, "idm", replace(FAST, ego=ego_mode_check(ego)))
        assert ro.info["ego"] == ego and ro.info["deterministic"]
        paths[ego] = _ego_path(scenario, ro)[0]
        row = score_rollouts(scenario, ro)
        assert 0 < row["metametric"] <= 1
    np.testing.assert_allclose(paths["expert"], log_xy, atol=1e-6)
    for ego in ("idm", "cv"):
        err = np.hypot(*(paths[ego] - log_xy).T)
        assert err[-1] > 0.5  # its own plan, not the log
        assert np.all(np.hypot(*np.diff(paths[ego], axis=0).T) < 3.0)  # a drivable path: under 30 m/s per step
    with pytest.raises(ConfigError, match="--ego"):
        ego_mode_check("nope")


def test_unknown_policy(womd_path):
    with pytest.raises(ConfigError, match="unknown agent policy 'nope'"):
        simulate(load_scenario(womd_path), "nope", FAST)


def test_brake_probe_log_agents_do_not_react(womd_path):
    scenario = load_scenario(womd_path)
    normal = simulate(scenario, "log", FAST)
    braking = simulate(scenario, "log", replace(FAST, ego="brake"))
    e = list(normal.object_ids).index(int(scenario.track_ids[scenario.sdc_index]))
    moved_n = np.hypot(*(normal.xy[0, e, -1] - normal.xy[0, e, 0]))
    moved_b = np.hypot(*(braking.xy[0, e, -1] - braking.xy[0, e, 0]))
    assert moved_b < moved_n  # the ego brakes
    others = np.arange(normal.num_objects) != e
    np.testing.assert_allclose(normal.xyz[:, others], braking.xyz[:, others])  # log replay ignores it
    row = probe_row(scenario, normal, braking)
    assert row["followers"] == 0 and row["status"] == "no_followers"  # this log has no in-lane follower
    assert all(row[k] is None for k in PROBE_KEYS)  # reported as unmeasured, not as zero
    agg = probe_aggregate([row])
    assert agg["scenarios_without_followers"] == 1 and agg["scenarios_probed"] == 0 and agg["rear_end_rate"] is None


def test_brake_probe_on_a_follower_idm_reacts_log_does_not():
    """Waymax scene ece3cc63fd24035d: the ego drives 20 m/s with one vehicle behind it in its lane."""
    from tests.conftest import data_file

    scenario = load_scenario(data_file("corpus/waymax/waymax_scenario_ece3cc63fd24035d.pkl"))
    fast = replace(FAST, rollouts=1, horizon_s=8.0)
    rows = {}
    for name in ("log", "idm"):
        normal = simulate(scenario, name, fast)
        rows[name] = probe_row(scenario, normal, simulate(scenario, name, replace(fast, ego="brake")))
    log, idm = rows["log"], rows["idm"]
    assert log["status"] == idm["status"] == "ok" and log["followers"] == 1 and log["ego_speed"] > 15
    assert log["reaction_speed_drop"] == 0.0 and log["rear_end_rate"] == 1.0  # log replay drives into the ego
    assert idm["reaction_speed_drop"] > 2.0 and idm["rear_end_rate"] == 0.0  # IDM brakes behind it
    assert 0.0 < idm["min_gap_brake"] < idm["min_gap_log_ego"]


def test_runner_two_policies(womd_path, womd_still_path):
    res = run_sim_agents(
        [str(womd_path), str(womd_still_path)], ["log", "constant_velocity"], BenchSettings(FAST, probe="brake"), progress=False
    )
    assert set(res) == {"log", "constant_velocity"}
    for r in res.values():
        assert r["aggregate"]["num_scenarios"] == 2 and 0 < r["aggregate"]["metametric"] <= 1
        assert r["probe"]["aggregate"]["scenarios"] == 2 and len(r["probe"]["scenarios"]) == 2
    assert res["log"]["aggregate"]["metametric"] > res["constant_velocity"]["aggregate"]["metametric"]
