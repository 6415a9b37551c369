"""Bounded observation spaces (check_env quiet) and the flat observation mode."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mad_sim.envs.config import EnvConfig
from mad_sim.envs.observation import AGENT_FEATURES, EGO_FEATURES, ROADGRAPH_FEATURES, feature_bounds, flat_layout

import mad_sim  # noqa: F401
from mad_sim.errors import ConfigError


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(obs_mode="flat", action="delta", agents="idm"), dict(pose_observation=True, render_mode="bev", bev_size=64)],
)
def test_check_env_is_quiet(womd_path, kwargs):
    env = gym.make("MADDrive-v0", scenario=str(womd_path), **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []
    for space in (
        env.observation_space.values() if isinstance(env.observation_space, gym.spaces.Dict) else [env.observation_space]
    ):
        if isinstance(space, gym.spaces.Box):
            assert np.isfinite(space.low).all() and np.isfinite(space.high).all()


def test_extreme_driving_stays_inside_the_bounds(womd_path):
    """Delta actions at their limits imply accelerations far beyond a car's: clipped, never outside the Box."""
    env = gym.make(
        "MADDrive-v0", scenario=str(womd_path), action="delta", terminate_on_offroad=False, terminate_on_collision=False
    )
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    peak = 0.0
    for _ in range(40):
        obs, _, term, trunc, _ = env.step(rng.choice([-1.0, 1.0], 3))
        assert env.observation_space.contains(obs)
        peak = max(peak, abs(float(obs["ego"][1])))
        if term or trunc:
            break
    assert peak == pytest.approx(50.0)  # the acceleration bound was hit and held


def test_flat_layout_matches_the_dict(womd_path):
    kw = dict(scenario=str(womd_path), agents="log", num_agents=5, num_roadgraph_points=7)
    d_env, f_env = gym.make("MADDrive-v0", **kw), gym.make("MADDrive-v0", obs_mode="flat", **kw)
    d_obs, _ = d_env.reset(seed=3)
    f_obs, _ = f_env.reset(seed=3)
    for _ in range(3):
        a = np.array([0.3, -0.1], np.float32)
        d_obs, *_ = d_env.step(a)
        f_obs, *_ = f_env.step(a)
    assert f_obs.dtype == np.float32 and f_obs.shape == (13 + 12 * 5 + 12 * 7,) == f_env.observation_space.shape
    assert f_env.observation_space.contains(f_obs) and np.abs(f_obs).max() <= 1.0
    cfg = EnvConfig(num_agents=5, num_roadgraph_points=7)
    lay, scales = flat_layout(cfg), feature_bounds(cfg).scales
    np.testing.assert_allclose(f_obs[lay["ego"]] * scales["ego"], d_obs["ego"], rtol=1e-5, atol=1e-5)
    agents = f_obs[lay["agents"]].reshape(5, len(AGENT_FEATURES) + 1)
    np.testing.assert_allclose(agents[:, :-1] * scales["agents"], d_obs["agents"], rtol=1e-5, atol=1e-4)
    assert (agents[:, -1] == d_obs["agents_mask"]).all()
    road = f_obs[lay["roadgraph"]].reshape(7, len(ROADGRAPH_FEATURES) + 1)
    np.testing.assert_allclose(road[:, :-1] * scales["roadgraph"], d_obs["roadgraph"], rtol=1e-5, atol=1e-4)
    assert (road[:, -1] == d_obs["roadgraph_mask"]).all()
    assert len(EGO_FEATURES) == 13


def test_flat_mode_refuses_images():
    with pytest.raises(ConfigError, match="flat"):
        gym.make("MADDrive-v0", obs_mode="flat", pose_observation=True)
    with pytest.raises(ConfigError, match="obs_mode"):
        gym.make("MADDrive-v0", obs_mode="vector")


def test_route_features_pace_the_ego(womd_path):
    """speed_limit, route_remaining and log_ahead: what the ego needs to keep the log's pace."""
    env = gym.make("MADDrive-v0", scenario=str(womd_path))
    obs, info = env.reset(seed=0)
    ego = dict(zip(EGO_FEATURES, obs["ego"]))
    assert ego["speed_limit"] == pytest.approx(info["speed_limit"]) and 0 < ego["speed_limit"] < 20
    assert ego["route_remaining"] == pytest.approx(info["route_length"], abs=1e-3)
    assert abs(ego["log_ahead"]) < 0.05  # the ego starts where the log has it
    for _ in range(15):
        obs, _, _, _, info = env.step(np.array([-1.0, 0.0], np.float32))  # brake: the log drives on
    ego = dict(zip(EGO_FEATURES, obs["ego"]))
    assert ego["log_ahead"] > 1.0
    assert ego["route_remaining"] == pytest.approx(info["route_length"] - info["route_progress"], abs=1e-3)
