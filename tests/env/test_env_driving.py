"""Driving MADDrive-v0 on real logs: metrics, reward, agents seam, vector envs, wrappers."""

import gymnasium as gym
import numpy as np
import pytest
from mad_sim.envs import make_vec, register_agent_policy
from mad_sim.planners import make_planner
from mad_sim.planners.adapter import RecedingHorizonDriver

import mad_sim  # noqa: F401


def _drive(env, driver, max_steps=1000):
    obs, info = env.reset(seed=0)
    driver.reset()
    infos, rewards = [info], []
    for _ in range(max_steps):
        obs, r, term, trunc, info = env.step(driver.act(env))
        infos.append(info)
        rewards.append(r)
        if term or trunc:
            break
    return infos, rewards, term, trunc


@pytest.mark.parametrize("action", ["trajectory", "bicycle", "delta"])
def test_expert_driver_tracks_the_log(womd_path, action):
    env = gym.make("MADDrive-v0", scenario=str(womd_path), agents="log", action=action)
    infos, rewards, term, trunc = _drive(env, RecedingHorizonDriver(make_planner("expert"), k=1, horizon=20))
    # the log's end is the route's goal: the expert reaches it (within 1 m) in the last steps of the log
    assert term and infos[-1]["route_completed"] and sum(i["route_completed"] for i in infos) == 1
    assert 75 <= len(infos) <= 81
    div = np.array([np.nan if i["log_divergence"] is None else i["log_divergence"] for i in infos], float)
    assert np.nanmax(div) < 1.0, np.nanmax(div)
    # the logged ego drives 24.5 m overall; from t=10 on most of it is route progress
    assert infos[-1]["route_progress"] == pytest.approx(sum(i["progress"] for i in infos), abs=1e-6)
    assert infos[-1]["route_progress"] > 15.0
    assert not any(i["collision"] or i["offroad"] for i in infos)
    assert infos[-1]["route_progress"] <= infos[-1]["route_length"] + 1e-9
    overspeed = sum(i["overspeed"] for i in infos[1:])
    assert sum(rewards) == pytest.approx(0.1 * infos[-1]["route_progress"] + 10.0 - 0.05 * overspeed, rel=1e-6)


def test_collision_terminates(womd_path):
    """Driving full throttle straight ahead in a dense log ends in a collision or off the road."""
    env = gym.make("MADDrive-v0", scenario=str(womd_path), agents="log")
    env.reset(seed=0)
    for _ in range(80):
        obs, r, term, trunc, info = env.step(np.array([1.0, 0.0], np.float32))
        if term or trunc:
            break
    assert term and (info["collision"] or info["offroad"])
    assert r <= -5.0 + 0.1 * info["progress"] + 1e-9


class CountingReplay:
    """Log replay that returns ``num_steps`` steps per call and counts calls (a stand-in for the learned predictor)."""

    def __init__(self):
        self.calls = []

    def advance(self, state, controlled, num_steps):
        self.calls.append((state.timestep, num_steps))
        t = state.timestep
        return state.log.take(np.arange(t + 1, t + 1 + num_steps), axis=1)


def test_multi_step_agent_policy_is_consumed_over_k_steps(womd_path):
    policy = CountingReplay()
    register_agent_policy("counting", lambda config, rng: policy, overwrite=True)
    env = gym.make("MADDrive-v0", scenario=str(womd_path), agents="counting", agent_horizon=8)
    env.reset(seed=0)
    for _ in range(20):
        env.step(np.zeros(2, np.float32))
    assert policy.calls == [(10, 8), (18, 8), (26, 8)]
    assert env.unwrapped.agent_queries == 3
    env.unwrapped.requery_agents()
    env.step(np.zeros(2, np.float32))
    assert policy.calls[-1] == (30, 8)
    # the agents really follow the log
    s = env.unwrapped.state
    others = np.arange(s.num_agents) != s.ego_index
    v = s.log.valid[others, s.timestep]
    assert np.abs(s.sim.xy[others, s.timestep][v] - s.log.xy[others, s.timestep][v]).max() == 0.0


@pytest.mark.parametrize("agents", ["idm", "constant_velocity"])
def test_scripted_agents_move(womd_path, agents):
    env = gym.make(
        "MADDrive-v0", scenario=str(womd_path), agents=agents, terminate_on_collision=False, terminate_on_offroad=False
    )
    env.reset(seed=0)
    s = env.unwrapped.state
    for _ in range(10):
        env.step(np.zeros(2, np.float32))
    moved = s.sim.valid[:, 10] & s.sim.valid[:, 20]
    d = np.linalg.norm(s.sim.xy[moved, 20] - s.sim.xy[moved, 10], axis=-1)
    assert np.isfinite(s.sim.xy[moved, 20]).all() and d.max() > 1.0


def test_vector_envs():
    for asynchronous in (False, True):
        venv = make_vec(2, asynchronous=asynchronous, agents="constant_velocity", max_episode_steps=5)
        obs, info = venv.reset(seed=7)
        assert obs["ego"].shape == (2, 13) and obs["agents_mask"].dtype == np.int8
        for _ in range(7):  # crosses an episode end: autoreset
            obs, r, term, trunc, info = venv.step(venv.action_space.sample())
        assert r.shape == (2,) and np.isfinite(r).all()
        venv.close()


def test_wrappers(tmp_path):
    env = gym.wrappers.FlattenObservation(gym.make("MADDrive-v0", max_episode_steps=4))
    obs, _ = env.reset(seed=0)
    assert obs.ndim == 1 and obs.shape == env.observation_space.shape
    for mode in ("pose", "bev"):
        env = gym.make("MADDrive-v0", render_mode=mode, max_episode_steps=6)
        env = gym.wrappers.RecordVideo(env, str(tmp_path / mode), episode_trigger=lambda e: True, disable_logger=True)
        env.reset(seed=0)
        done = False
        while not done:
            *_, term, trunc, _ = env.step(env.action_space.sample())
            done = term or trunc
        env.close()
        assert list((tmp_path / mode).glob("*.mp4")), mode


class HookedReplay(CountingReplay):
    """Implements the optional hooks a learned predictor uses."""

    def __init__(self):
        super().__init__()
        self.seeds, self.observed, self.learned = [], [], None

    def seed(self, rng):
        self.seeds.append(rng)

    def reset(self, state):
        self.learned = np.zeros(state.num_agents, bool)

    def observe_ego_action(self, state, action, ego_step):
        self.observed.append((state.timestep, np.asarray(action).tolist(), ego_step.speed))
        self.learned[:3] = True


def test_policy_hooks(womd_path):
    policy = HookedReplay()
    register_agent_policy("hooked", lambda config, rng: policy, overwrite=True)
    env = gym.make("MADDrive-v0", scenario=str(womd_path), agents="hooked")
    env.reset(seed=5)
    assert policy.seeds == [env.unwrapped.np_random]
    _, _, _, _, info = env.step(np.array([0.5, 0.0], np.float32))
    assert policy.observed[0][0] == 10 and policy.observed[0][1] == [0.5, 0.0]
    assert policy.observed[0][2] == pytest.approx(info["speed"])
    assert info["learned_agents"] == [0, 1, 2]
    env.reset(seed=6)
    assert len(policy.seeds) == 2 and policy.seeds[1] is env.unwrapped.np_random
