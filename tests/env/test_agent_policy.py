"""The agent-policy protocol: hooks called without probing, plain TrafficPolicies wrapped, a public agent_policy."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from mad_sim.envs import AgentPolicy, BaseAgentPolicy, ScriptedAgents, register_agent_policy

import mad_sim  # noqa: F401
from mad_sim.errors import EnvStateError


class Recording(BaseAgentPolicy):
    """Replays the log and records every hook call; marks agent 1 as learned."""

    def __init__(self) -> None:
        self.calls: list = []
        self.learned = None

    def seed(self, rng):
        self.calls.append("seed")

    def reset(self, state):
        self.calls.append("reset")
        self.learned = np.zeros(state.num_agents, bool)

    def observe_ego_action(self, state, action, ego_step):
        self.calls.append(("observe", state.timestep, ego_step.xy.tolist()))

    def advance(self, state, controlled, num_steps):
        self.calls.append(("advance", state.timestep))
        self.learned[1] = True
        t = state.timestep
        return state.log.take(np.arange(t + 1, t + 1 + num_steps), axis=1)


def test_hooks_are_called_and_learned_is_reported(womd_path):
    policy = Recording()
    register_agent_policy("recording", lambda config, rng: policy, overwrite=True)
    env = gym.make("MADDrive-v0", scenario=str(womd_path), agents="recording")
    base = env.unwrapped
    assert base.agent_policy is policy and isinstance(policy, AgentPolicy)
    env.reset(seed=0)
    assert policy.calls == ["seed", "reset"] and base.running
    action = np.array([0.5, 0.1], np.float32)
    preview = base.ego_step(action)
    t = base.state.timestep
    _, _, _, _, info = env.step(action)
    assert policy.calls[-2:] == [("observe", t, preview.xy.tolist()), ("advance", t)]
    e = base.state.ego_index
    np.testing.assert_allclose(base.state.sim.xy[e, t + 1], preview.xy)  # the step moved the ego by ego_step()
    assert base.ego_speed == pytest.approx(preview.speed)
    assert info["learned_agents"] == [1] and base.agent_queries == 1
    env.close()


def test_plain_traffic_policies_are_wrapped(womd_path):
    from mad_sim.world.idm import IDM

    env = gym.make("MADDrive-v0", scenario=str(womd_path), agents="idm")
    policy = env.unwrapped.agent_policy
    assert isinstance(policy, ScriptedAgents) and isinstance(policy.policy, IDM)
    assert policy.learned is None
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(2, np.float32))
    assert "learned_agents" not in info
    env.close()


def test_ego_step_before_reset_is_an_error():
    env = gym.make("MADDrive-v0")
    with pytest.raises(EnvStateError, match="before reset"):
        env.unwrapped.ego_step(np.zeros(2, np.float32))
    with pytest.raises(EnvStateError, match="before reset"):
        _ = env.unwrapped.ego_speed
    assert not env.unwrapped.running
    env.close()
