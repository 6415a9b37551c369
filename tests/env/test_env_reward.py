"""The route (goal, extension, speed limits), the named reward terms and the episode length of MADDrive-v0."""

import gymnasium as gym
import numpy as np
import pytest
from mad_sim.envs.reward import (
    REWARD_TERMS,
    LinearReward,
    RewardTerm,
    StepMetrics,
    collision_at_fault,
    ego_overlaps,
    register_reward_term,
    reward_weights,
    time_to_collision,
)
from mad_sim.envs.route import GOAL_LATERAL_M, GOAL_TOLERANCE_M, Route

import mad_sim  # noqa: F401
from mad_sim.data import load_scenario
from mad_sim.errors import ConfigError
from mad_sim.world.idm_law import MPH


def _metrics(**kw):
    base = dict(
        collision=False,
        offroad=False,
        progress=0.0,
        route_progress=0.0,
        route_lateral=0.0,
        route_heading_error=0.0,
        speed=0.0,
        accel=0.0,
        jerk=0.0,
        curvature=0.0,
        log_divergence=float("nan"),
    )
    base.update(kw)
    return StepMetrics(**base)


def test_still_ego_route_cannot_be_completed():
    r = Route(np.zeros((91, 2)), np.ones(91, bool), np.zeros(2), np.pi / 2)
    assert r.length == 0.0 and not r.completable and not r.completed(0.0, 0.0)
    s, lat, yaw = r.project(np.array([0.5, 2.0]))  # a 1 m stub along the heading, for the route features
    assert s == pytest.approx(2.0) and lat == pytest.approx(-0.5) and yaw == pytest.approx(np.pi / 2)
    assert np.all(r.speed_limit == 15.0)  # no map: the default
    jitter = np.random.default_rng(0).normal(0.0, 0.01, (91, 2))  # a parked car's logged jitter
    assert not Route(jitter, np.ones(91, bool), np.zeros(2), 0.0).completable
    short = Route(np.c_[np.linspace(0, 1.5, 16), np.zeros(16)], np.ones(16, bool), np.zeros(2), 0.0)
    assert short.length == pytest.approx(1.5) and not short.completable  # under MIN_ROUTE_M ahead


def test_goal_needs_arclength_and_lateral():
    r = Route(np.c_[np.linspace(0, 30, 31), np.zeros(31)], np.ones(31, bool), np.zeros(2), 0.0)
    assert r.completable and r.length == pytest.approx(30.0) and r.goal == pytest.approx(30.0)
    assert not r.completed(30.0 - GOAL_TOLERANCE_M - 0.01, 0.0) and r.completed(30.0 - GOAL_TOLERANCE_M, 0.0)
    assert r.completed(35.0, GOAL_LATERAL_M) and not r.completed(35.0, -GOAL_LATERAL_M - 0.1)
    assert r.project(np.array([40.0, 1.0]))[0] == pytest.approx(40.0)  # projection runs on past the end


def test_still_ego_log_is_not_completed_by_standing(womd_still_path):
    """The logged ego stands still all 9 s: nothing to complete, standing still earns nothing and loses nothing."""
    env = gym.make("MADDrive-v0", scenario=str(womd_still_path))
    _, info = env.reset(seed=0)
    assert info["route_length"] == 0.0 and not env.unwrapped.route.completable
    total, term, trunc = 0.0, False, False
    while not (term or trunc):
        _, r, term, trunc, info = env.step(np.zeros(2, np.float32))
        total += r
    assert trunc and not info["route_completed"] and abs(info["route_progress"]) < 0.01 and abs(total) < 0.01


def test_route_speed_limits_come_from_the_lanes(womd_path):
    sc = load_scenario(womd_path)
    i, t = sc.sdc_index, sc.current_index
    r = Route(sc.tracks.xy[i], sc.tracks.valid[i], sc.tracks.xy[i, t], float(sc.tracks.heading[i, t]), sc.roadmap, 9.0)
    limits = {round(info.speed_limit_mph, 3) for info in sc.roadmap.lanes.values() if info.speed_limit_mph > 0}
    assert limits  # this WOMD log's lanes carry limits
    assert {round(v / MPH, 3) for v in r.speed_limit} <= limits  # every segment matched a lane with a limit
    far = Route(sc.tracks.xy[i] + 1000.0, sc.tracks.valid[i], sc.tracks.xy[i, t] + 1000.0, 0.0, sc.roadmap, 9.0)
    assert np.all(far.speed_limit == max(9.0, far.logged_top_speed))  # no lane near: the default
    assert 2.0 < far.logged_top_speed < 9.0


def test_linear_reward_terms_and_weights():
    m = _metrics(collision=True, collision_at_fault=True, progress=2.0, jerk=-3.0, overspeed=1.5, ttc=1.5, route_completed=True)
    f = LinearReward({"jerk": -0.1, "ttc": -2.0})
    assert f.weights["progress"] == 0.1 and f.weights["jerk"] == -0.1
    expected = 0.1 * 2.0 + 10.0 - 10.0 - 0.1 * 3.0 - 0.05 * 1.5 - 2.0 * 0.5
    assert f(m) == pytest.approx(expected)
    terms = f.terms(m)
    assert set(terms) == set(REWARD_TERMS) and terms["ttc"] == pytest.approx(0.5)
    assert sum(f.weights[k] * v for k, v in terms.items()) == pytest.approx(expected)
    assert LinearReward({k: 0.0 for k in REWARD_TERMS})(m) == 0.0
    assert m.as_info()["log_divergence"] is None and m.as_info()["route_completed"] is True
    assert f(_metrics(collision=True)) == 0.0  # run into from behind: no penalty (the episode still ends)


@pytest.mark.parametrize("bad", [{"speeding": 1.0}, {"progress": "a lot"}, {"progress": float("nan")}, {"jerk": True}])
def test_bad_weights_fail_at_make(bad):
    with pytest.raises(ConfigError, match="reward_weights"):
        gym.make("MADDrive-v0", reward_weights=bad)


def test_a_registered_term_reads_a_metric():
    with pytest.raises(ConfigError, match="not a metric"):
        register_reward_term("nope", RewardTerm("no_such_field", lambda m: 0.0, "m", 1.0))
    register_reward_term("lateral", RewardTerm("route_lateral", lambda m: abs(m.route_lateral), "m", 0.0))
    try:
        assert reward_weights({"lateral": -1.0})["lateral"] == -1.0
        assert LinearReward({"lateral": -1.0, "progress": 0.0})(_metrics(route_lateral=-2.0)) == pytest.approx(-2.0)
    finally:
        REWARD_TERMS.pop("lateral")


def test_collision_fault():
    xy = np.array([[0.0, 0.0], [3.0, 0.5], [-3.5, 0.0]])
    heading = np.zeros(3)
    assert collision_at_fault(xy, heading, np.array([1]), 0, 5.0)  # drove into the agent ahead
    assert not collision_at_fault(xy, heading, np.array([2]), 0, 5.0)  # rear-ended
    assert not collision_at_fault(xy, heading, np.array([1]), 0, 0.0)  # standing still
    assert not collision_at_fault(xy, heading, np.array([], int), 0, 5.0)
    size = np.tile([4.5, 2.0], (3, 1))
    assert set(ego_overlaps(xy, heading, size, np.ones(3, bool), 0).tolist()) == {1, 2}


def test_time_to_collision():
    xy = np.array([[0.0, 0.0], [20.0, 0.5], [10.0, 5.0], [-8.0, 0.0]])
    heading = np.zeros(4)
    velocity = np.array([[10.0, 0.0], [5.0, 0.0], [0.0, 0.0], [30.0, 0.0]])
    size = np.tile([4.0, 2.0], (4, 1))
    valid = np.ones(4, bool)
    # ahead in the corridor: agent 1, gap 20 - 4 = 16 m, closing at 5 m/s; agent 2 is beside, agent 3 behind
    assert time_to_collision(xy, heading, velocity, size, valid, 0, 10.0) == pytest.approx(16.0 / 5.0)
    assert time_to_collision(xy, heading, velocity, size, valid, 0, 4.0) == np.inf  # opening
    valid[1] = False
    assert time_to_collision(xy, heading, velocity, size, valid, 0, 10.0) == np.inf


def test_progress_stops_at_the_goal_and_completion_terminates(womd_path):
    """Full speed along the logged path: progress is credited up to the goal, then the episode ends as a success."""
    env = gym.make(
        "MADDrive-v0", scenario=str(womd_path), agents="log", action="delta", max_delta_xy=1.0, reward_weights={"overspeed": 0.0}
    )
    u = env.unwrapped
    _, info = env.reset(seed=0)
    assert info["route_length"] == pytest.approx(u.route.length) and info["route_length"] > 20.0
    infos, rewards = [], []
    for _ in range(200):
        s_now, lat, yaw = u.route.project(u.state.ego().xy[0])
        # steer onto the route 1 m ahead: a delta action in the ego frame
        target = u.route.points[min(np.searchsorted(u.route.arclength, s_now + 1.0), len(u.route.points) - 1)]
        d = target - u.state.ego().xy[0]
        h = float(u.state.ego().heading[0])
        dx, dy = np.cos(h) * d[0] + np.sin(h) * d[1], -np.sin(h) * d[0] + np.cos(h) * d[1]
        dyaw = np.arctan2(dy, dx) * 0.5
        _, r, term, trunc, info = env.step(np.clip([dx, dy, dyaw / 0.3], -1, 1))
        infos.append(info)
        rewards.append(r)
        if term or trunc:
            break
    assert term and info["route_completed"] and not info["collision"] and not info["offroad"]
    assert info["route_progress"] <= info["route_length"] + 1e-9
    assert info["route_progress"] >= info["route_length"] - GOAL_TOLERANCE_M
    assert sum(rewards) == pytest.approx(0.1 * info["route_progress"] + 10.0, rel=1e-6)
    assert info["reward_terms"]["route_completion"] == 1.0


def test_spec_max_episode_steps_follows_the_scenario(womd_path, womd_still_path):
    env = gym.make("MADDrive-v0", scenario=str(womd_path))
    env.reset(seed=0)
    sc = env.unwrapped.scenario
    assert env.spec.max_episode_steps == sc.num_steps - 1 - sc.current_index == 80
    env = gym.make("MADDrive-v0", scenario=str(womd_path), max_steps=30)
    env.reset(seed=0)
    assert env.spec.max_episode_steps == 30
    env = gym.make("MADDrive-v0", scenario=str(womd_path), max_episode_steps=12)  # the user's TimeLimit wins
    env.reset(seed=0)
    assert env.spec.max_episode_steps == 12
    env = gym.make("MADDrive-v0")  # procedural scenes: their own length
    env.reset(seed=0)
    st = env.unwrapped.state
    assert env.spec.max_episode_steps == st.remaining_log_steps
