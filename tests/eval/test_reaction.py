"""The braking-ego reaction figure (mad_sim.eval.reaction) on real Waymax scenes."""

from __future__ import annotations

import numpy as np
import pytest
from mad_sim.eval.reaction import (
    ReactionSettings,
    along_path,
    classify,
    ego_path,
    run_episode,
    run_reaction,
    score,
)

from mad_sim.data.frames import world_to_ego, wrap_angle
from mad_sim.data.scenario import DT
from mad_sim.errors import ConfigError
from tests.conftest import data_file

VAL_SCENE = "corpus/waymax/waymax_scenario_641ead285b0c7516.pkl"  # validation: 1 follower, 2 leaders, ego 6.5 m/s
IDM_SCENE = "corpus/waymax/waymax_scenario_1207b9e6eca7717b.pkl"  # a scene where IDM followers do brake


def _scene(relative: str):
    from mad_sim.data.sources import load_scenario

    return load_scenario(data_file(relative))


def test_along_path_arclength_and_side() -> None:
    path = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])  # east 10 m, then north 10 m
    s, lat = along_path(path, np.array([[4.0, 1.0], [9.0, 6.0], [-2.0, -0.5]]))
    np.testing.assert_allclose(s, [4.0, 16.0, 0.0])
    np.testing.assert_allclose(lat, [1.0, 1.0, -0.5], atol=1e-12)  # left of the path is positive


def test_settings_checked() -> None:
    with pytest.raises(ConfigError, match="brake_accel"):
        ReactionSettings(brake_accel=2.0)
    with pytest.raises(ConfigError, match="follow_steps"):
        ReactionSettings(follow_steps=50, episode_steps=48)
    with pytest.raises(ConfigError, match="curvature"):
        ReactionSettings(curvature="spline")


def test_classify_matches_the_criteria() -> None:
    sc = _scene(VAL_SCENE)
    st = ReactionSettings()
    fol, lead, v = classify(sc, sc.sdc_index, st)
    assert len(fol) >= 1 and len(lead) >= 1 and v > st.min_ego_speed
    t0, e, log = sc.current_index + st.follow_steps, sc.sdc_index, sc.tracks
    rel = world_to_ego(log.xy[:, t0], log.xy[e, t0], log.heading[e, t0])
    dh = np.degrees(np.abs(wrap_angle(log.heading[:, t0] - log.heading[e, t0])))
    inside = log.valid[:, t0] & (np.abs(rel[:, 1]) <= st.lateral_m) & (dh <= st.heading_deg) & (log.speed[:, t0] >= 1.0)
    assert np.all(rel[fol, 0] < 0) and np.all(rel[fol, 0] >= -st.range_m) and inside[fol].all()
    assert np.all(rel[lead, 0] > 0) and np.all(rel[lead, 0] <= st.range_m) and inside[lead].all()
    wider_f, wider_l, _ = classify(sc, e, ReactionSettings(lateral_m=3.0))
    assert set(fol) <= set(wider_f) and set(lead) <= set(wider_l)


def test_ego_follows_the_log_then_brakes_and_log_followers_do_not_react() -> None:
    sc = _scene(VAL_SCENE)
    st = ReactionSettings()
    fol, lead, _ = classify(sc, sc.sdc_index, st)
    ep = run_episode(sc, "log", st)
    ctl = run_episode(sc, "log", st, brake=False)
    e, t0, t1, log = ep.ego, ep.t0, ep.t1, sc.tracks
    assert t1 == sc.current_index + st.episode_steps
    # on the log up to the onset, then -6 m/s^2 until standing, never reversing, on the logged path
    np.testing.assert_allclose(ep.sim.xy[e, : t0 + 1], log.xy[e, : t0 + 1], atol=1e-6)
    v = ep.sim.speed[e, t0 : t1 + 1]
    accel = np.diff(v) / DT
    full = v[1:] > 1e-6  # steps that end still moving brake at brake_accel; the one that stops takes what is left
    assert full.sum() >= 5
    np.testing.assert_allclose(accel[full], st.brake_accel, atol=1e-6)
    assert np.all(accel >= st.brake_accel - 1e-6)
    assert v[-1] == pytest.approx(0.0, abs=1e-6) and np.all(np.diff(v) <= 1e-12) and v.min() >= -1e-9
    _, lat = along_path(ego_path(sc, e, 200.0), ep.sim.xy[e, t0 : t1 + 1])
    assert np.abs(lat).max() < 0.1
    rows = score(ep, fol, lead, ctl)
    s_brake, _ = along_path(ego_path(sc, e, 200.0), ep.sim.xy[e, [t0, t1]])
    s_log, _ = along_path(ego_path(sc, e, 200.0), ctl.sim.xy[e, [t0, t1]])
    lost = (s_log[1] - s_log[0]) - (s_brake[1] - s_brake[0])
    assert lost > 10.0  # the braking cost the ego distance, so a non-reacting follower closes in by that much
    for r in rows["followers"]:
        assert r["gap_change"] < 0
        assert r["reaction"] == pytest.approx(-lost, abs=1e-6)
    for r in rows["leaders"]:
        assert r["displacement_log"] == pytest.approx(0.0, abs=1e-9)


def test_idm_followers_brake_and_leaders_ignore_the_braking() -> None:
    sc = _scene(IDM_SCENE)
    res = run_reaction([sc], ["log", "idm"], ReactionSettings(control=True, reseed=True))
    assert res["scan"][0]["usable"]
    agg = res["aggregate"]
    assert agg["idm"]["followers"] == agg["log"]["followers"] >= 1
    assert agg["idm"]["reaction_vs_log"] > 2.0  # the IDM followers gave back metres of the ego's lost distance
    assert agg["idm"]["follower_speed_change"] < agg["log"]["follower_speed_change"]
    assert agg["log"]["reaction_vs_log"] == pytest.approx(0.0)
    assert agg["idm"]["follower_learned"] is None  # scripted: no model share reported
    for s in res["scenes"]["idm"]:
        for r in s["leaders"]:  # an IDM leader only looks ahead: same trajectory with or without the braking
            assert r["displacement_control"] == pytest.approx(0.0, abs=1e-9)
            assert r["displacement_reseed"] == pytest.approx(0.0, abs=1e-9)  # and IDM draws nothing from the seed


def test_mad_reports_who_drove_followers_and_leaders() -> None:
    torch = pytest.importorskip("torch")
    sc = _scene(VAL_SCENE)
    fast = dict(weights="random", size=64, history_frames=9, future_frames=9, chunk=8, threads=1, sampler_steps=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        st = ReactionSettings(follow_steps=2, episode_steps=6)
        res = run_reaction([sc], ["mad"], st, fast)
    finally:
        torch.set_num_threads(threads)
    agg = res["aggregate"]["mad"]
    fl, ll = agg["follower_learned"], agg["leader_learned"]
    steps = st.episode_steps - st.follow_steps
    assert fl["valid_steps"] == agg["followers"] * steps and ll["valid_steps"] == agg["leaders"] * steps
    # the camera looks forward: leaders ahead are the model's, followers behind are the fallback's
    assert ll["learned_steps"] > 0
    assert fl["learned_steps"] == 0 and fl["share"] == 0.0
