"""The per-agent constant-velocity Kalman filter that fuses parsed frames with the motion prior."""

from __future__ import annotations

import numpy as np
import pytest

from mad_sim.errors import ConfigError, ShapeError
from mad_sim.model.agents.settings import LearnedAgentSettings
from mad_sim.model.agents.tracking import ConstantVelocityKalman, TrackingNoise

DT = 0.1


def _filter(n=3, noise=None):
    xy = np.zeros((n, 2))
    v = np.tile([10.0, 0.0], (n, 1))
    return ConstantVelocityKalman(xy, v, np.zeros(n), noise or TrackingNoise())


def test_without_measurements_it_is_constant_velocity():
    kf = _filter()
    for _ in range(16):
        kf.predict(DT)
    np.testing.assert_allclose(kf.xy, np.tile([16.0, 0.0], (3, 1)))
    np.testing.assert_allclose(kf.velocity, np.tile([10.0, 0.0], (3, 1)))
    assert (np.diff(np.linalg.eigvalsh(kf.P[0])) >= -1e-12).all() and np.linalg.eigvalsh(kf.P[0]).min() > 0


def test_consistent_measurements_pull_the_state_and_velocity():
    """An agent that truly brakes (a = -3 m/s^2) and is measured exactly ends nearer the truth than constant velocity."""
    kf = _filter(1, TrackingNoise(noise_m=0.2, noise_per_m=0.0, accel_sigma=2.0))
    x, v = 0.0, 10.0
    for _ in range(16):
        kf.predict(DT)
        v -= 3.0 * DT
        x += v * DT
        ok = kf.update(np.array([[x, 0.0]]), np.zeros(1), np.array([20.0]), np.array([True]))
        assert ok.all()
    assert abs(kf.xy[0, 0] - x) < 0.3 < abs(16.0 - x)
    assert kf.velocity[0, 0] < 8.5


def test_weak_measurements_move_the_state_little_and_outliers_are_gated():
    kf = _filter(2, TrackingNoise(noise_m=2.0, noise_per_m=0.0))
    kf.predict(DT)
    z = np.array([[1.0 + 1.0, 0.0], [1.0 + 50.0, 0.0]])  # 1 m and 50 m off the prediction (x = 1)
    ok = kf.update(z, np.zeros(2), np.array([20.0, 20.0]), np.array([True, True]))
    assert ok.tolist() == [True, False]
    assert 1.0 < kf.xy[0, 0] < 1.1  # a 2 m-sigma measurement against a 0.06 m prior barely moves it
    assert kf.xy[1, 0] == pytest.approx(1.0)


def test_masked_rows_and_heading_wrap():
    kf = ConstantVelocityKalman(np.zeros((2, 2)), np.zeros((2, 2)), np.array([np.pi - 0.05, 0.0]), TrackingNoise())
    kf.predict(DT)
    ok = kf.update(np.zeros((2, 2)), np.array([-np.pi + 0.05, 1.0]), np.array([5.0, 5.0]), np.array([True, False]))
    assert ok.tolist() == [True, False]
    assert abs(abs(kf.h[0]) - np.pi) < 0.05  # moved across +-pi, not through 0
    assert kf.h[1] == 0.0


def test_bad_inputs_are_errors():
    with pytest.raises(ShapeError):
        ConstantVelocityKalman(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros(2), TrackingNoise())
    with pytest.raises(ConfigError, match="accel_sigma"):
        TrackingNoise(accel_sigma=0.0)
    with pytest.raises(ConfigError, match="noise_per_m"):
        TrackingNoise(noise_per_m=-1.0)
    s = LearnedAgentSettings(tracking_noise={"noise_m": 0.5})  # type: ignore[arg-type]
    assert s.tracking_noise == TrackingNoise(noise_m=0.5)
    with pytest.raises(ConfigError, match="unknown key"):
        LearnedAgentSettings(tracking_noise={"noise": 0.5})  # type: ignore[arg-type]


def test_measured_agents_are_learned_agents_with_an_accepted_parse(womd_path, womd_still_path):
    """With the logged future as the forecast, most learned agents are measured; the env reports both masks."""
    import gymnasium as gym
    from closed_loop_helpers import FAST, LogOracleService

    import mad_sim  # noqa: F401
    from mad_sim.data import load_scenario
    from mad_sim.model.agents.learned import LearnedAgents
    from mad_sim.world.state import WorldState

    sc = load_scenario(womd_still_path)  # 18 agents in view at t = 10
    settings = LearnedAgentSettings(**{**FAST, "size": 128, "fallback": "log"})
    oracle = LogOracleService(sc, sc.sdc_index, settings.size)
    pol = LearnedAgents(settings, service=oracle, rng=np.random.default_rng(0))
    state = WorldState.from_scenario(sc)
    pol.reset(state)
    controlled = np.ones(state.num_agents, bool)
    controlled[state.ego_index] = False
    e, t = state.ego_index, state.timestep
    span = np.minimum(np.arange(t + 1, t + 10), sc.num_steps - 1)
    plan = np.concatenate([sc.tracks.xy[e, span], sc.tracks.heading[e, span, None]], 1)
    pol.intended_poses = lambda *_a, **_k: plan  # type: ignore[method-assign]
    oracle.t = t
    pol.advance(state, controlled, 1)
    assert pol.learned.any()
    assert not (pol.measured & ~pol.learned).any()
    assert pol.measured.sum() >= 0.5 * pol.learned.sum()
    assert pol.stats.accepted >= 1 and pol.imagined_frame(t + 1) is not None and pol.imagined_frame(t + 50) is None

    env = gym.make("MADDrive-v0", agents="mad", agent_options=dict(FAST), scenario=str(womd_path))
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample() * 0)
    assert set(info["measured_agents"]) <= set(info["learned_agents"])
    env.close()
