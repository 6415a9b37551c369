"""The seam between the env and whatever moves the other agents.

**The protocol.**  An agent policy is an :class:`AgentPolicy`:
``advance(state, controlled, num_steps) -> Trajectory [N, num_steps]`` (the
next ``num_steps`` states of all agents, world frame, as
:class:`mad_sim.world.traffic.TrafficPolicy`), plus the hooks the env calls:
``seed(rng)`` and ``reset(state)`` at every reset,
``observe_ego_action(state, action, ego_step)`` before the agents move, and a
``learned`` ``[N]`` bool mask (or None), reported as ``info["learned_agents"]``
(the track indices it holds True), and optionally a ``measured`` ``[N]`` mask,
reported as ``info["measured_agents"]``: the learned agents whose state this
step came from a model measurement rather than the policy's own prior.  Subclass :class:`BaseAgentPolicy` for
no-op hooks; a plain ``TrafficPolicy`` (``advance`` alone, e.g. the scripted
policies of :mod:`mad_sim.world.scripted`) is wrapped in :class:`ScriptedAgents`.

**The registry.**  Policies are made by name (:data:`AGENT_POLICIES`, a
:class:`mad_sim.registry.Registry`), so a new one registers itself::

    register_agent_policy("my_model", lambda config, rng: MyPolicy(...))
    register_agent_policy("my_model", make_my_policy, settings=MySettings)  # agent_options -> MySettings

A factory is called ``factory(env_config, env_rng)``, or
``factory(env_config, env_rng, settings)`` when it registered a settings
dataclass: the env's ``agent_options`` validated into it at ``gym.make``
(unknown keys and wrong types are a ConfigError there, as is an unknown
``agents=`` name).  Built in: ``log``, ``idm``, ``constant_velocity`` (no
settings) and ``mad``, the learned MAD predictor of
:mod:`mad_sim.model.agents.learned` (settings
:class:`~mad_sim.model.agents.settings.LearnedAgentSettings`; torch is imported
only when one is built).

:class:`AgentStream` asks the policy for ``config.agent_horizon`` steps at a
time and hands them out one env step at a time: a policy that returns k steps
is consumed over the next k env steps, then asked again (or earlier, after
:meth:`AgentStream.requery`).  Scripted policies use horizon 1 and react to
the ego every step; a video predictor generating several frames per call uses
a longer horizon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, runtime_checkable

import numpy as np
from mad_sim.envs.config import EnvConfig

from mad_sim.data.scenario import Trajectory
from mad_sim.errors import ShapeError
from mad_sim.model.agents.settings import LearnedAgentSettings
from mad_sim.registry import Registry
from mad_sim.world.state import WorldState

if TYPE_CHECKING:
    from mad_sim.world.traffic import TrafficPolicy


@runtime_checkable
class AgentPolicy(Protocol):
    """What the env drives the other agents with (see the module doc)."""

    @property
    def learned(self) -> Optional[np.ndarray]:
        """``[N]`` bool: agents a learned model drove in the step just served (None: no learned agents)."""
        ...

    def seed(self, rng: np.random.Generator) -> None:
        """The env's freshly seeded generator, at every reset."""
        ...

    def reset(self, state: WorldState) -> None:
        """A new episode starts from ``state``."""
        ...

    def observe_ego_action(self, state: WorldState, action: Any, ego_step: Any) -> None:
        """The ego action of the step about to be taken (accepted by the action adapter) and the ego's
        resulting :class:`~mad_sim.envs.actions.EgoStep`, before the agents move."""
        ...

    def advance(self, state: WorldState, controlled: np.ndarray, num_steps: int) -> Trajectory:
        """The next ``num_steps`` states of all agents ``[N, num_steps]`` (world frame)."""
        ...


class BaseAgentPolicy:
    """An :class:`AgentPolicy` with no-op hooks and no learned agents: subclasses write ``advance``."""

    learned: Optional[np.ndarray] = None

    def seed(self, rng: np.random.Generator) -> None:
        pass

    def reset(self, state: WorldState) -> None:
        pass

    def observe_ego_action(self, state: WorldState, action: Any, ego_step: Any) -> None:
        pass

    def advance(self, state: WorldState, controlled: np.ndarray, num_steps: int) -> Trajectory:
        raise NotImplementedError(f"{type(self).__name__}.advance")


@runtime_checkable
class _Resettable(Protocol):
    def reset(self, state: Optional[WorldState] = None) -> None: ...


class ScriptedAgents(BaseAgentPolicy):
    """A plain ``TrafficPolicy`` as an :class:`AgentPolicy` (its own ``reset(state)`` is called when it has one)."""

    def __init__(self, policy: TrafficPolicy) -> None:
        self.policy = policy

    def reset(self, state: WorldState) -> None:
        if isinstance(self.policy, _Resettable):
            self.policy.reset(state)

    def advance(self, state: WorldState, controlled: np.ndarray, num_steps: int) -> Trajectory:
        return self.policy.advance(state, controlled, num_steps)


def as_agent_policy(policy: Any) -> AgentPolicy:
    """``policy`` itself when it is an :class:`AgentPolicy`, else wrapped in :class:`ScriptedAgents`."""
    if isinstance(policy, AgentPolicy):
        return policy
    if not callable(getattr(policy, "advance", None)):
        raise ShapeError(f"agent policy {type(policy).__name__} has no advance(state, controlled, num_steps)")
    return ScriptedAgents(policy)


AgentPolicyFactory = Callable[..., Any]
"""``factory(config, rng)`` or ``factory(config, rng, settings)`` -> an AgentPolicy or a TrafficPolicy."""

AGENT_POLICIES: Registry[Any] = Registry("agent policy")
"""The policies ``agents=`` names."""


def register_agent_policy(
    name: str, factory: AgentPolicyFactory, *, settings: Optional[type] = None, overwrite: bool = False
) -> None:
    """Make ``agents=name`` build its policy with ``factory`` (see the module doc)."""
    AGENT_POLICIES.register(name, factory, settings=settings, overwrite=overwrite)


def agent_policy_names() -> list[str]:
    return AGENT_POLICIES.names()


def agent_settings(config: EnvConfig) -> Any:
    """``config.agent_options`` validated into the settings of ``config.agents`` (None for a policy without
    settings); ConfigError for an unknown policy name, unknown options or bad values."""
    AGENT_POLICIES.entry(config.agents, "key 'agents': ")
    return AGENT_POLICIES.settings(config.agents, config.agent_options, source=f"agent_options of agents={config.agents!r}")


def make_agent_policy(name: str, config: EnvConfig, rng: np.random.Generator, settings: Any = None) -> AgentPolicy:
    """Build the policy registered as ``name`` (``settings``: its validated settings, default from
    ``config.agent_options``); ConfigError names the known ones for an unknown name."""
    entry = AGENT_POLICIES.entry(name, "key 'agents': ")
    if entry.settings is None:
        return as_agent_policy(entry.factory(config, rng))
    if settings is None:
        settings = AGENT_POLICIES.settings(name, config.agent_options, source=f"agent_options of agents={name!r}")
    return as_agent_policy(entry.factory(config, rng, settings))


def _scripted(name: str) -> AgentPolicyFactory:
    def factory(config: EnvConfig, rng: np.random.Generator) -> TrafficPolicy:
        from mad_sim.world.scripted import make_scripted_policy

        return make_scripted_policy(name)

    factory.__name__ = f"make_{name}"
    return factory


def _mad(config: EnvConfig, rng: np.random.Generator, settings: LearnedAgentSettings) -> Any:
    from mad_sim.model.agents.learned import make_mad_policy  # torch is imported only when agents="mad"

    return make_mad_policy(config, rng, settings)


for _name in ("log", "idm", "constant_velocity"):
    register_agent_policy(_name, _scripted(_name))
register_agent_policy("mad", _mad, settings=LearnedAgentSettings)


class AgentStream:
    """Buffers a policy's multi-step output and serves it one step at a time."""

    def __init__(self, policy: AgentPolicy, horizon: int) -> None:
        self.policy = policy
        self.horizon = int(horizon)
        self._buffer: Optional[Trajectory] = None
        self._start = 0  # absolute step of the buffer's column 0
        self.queries = 0

    def reset(self, state: WorldState, rng: Optional[np.random.Generator] = None) -> None:
        """New episode: drop the buffer; hand the policy the env's freshly seeded generator and the initial state."""
        self._buffer = None
        self.queries = 0
        if rng is not None:
            self.policy.seed(rng)
        self.policy.reset(state)

    def observe(self, state: WorldState, action: object, ego_step: object) -> None:
        """The policy's ``observe_ego_action(state, action, ego_step)``, before the agents move."""
        self.policy.observe_ego_action(state, action, ego_step)

    @property
    def learned_mask(self) -> Optional[np.ndarray]:
        """The policy's ``learned`` ``[N]`` mask (agents driven by a learned model this step), if it has one."""
        m = self.policy.learned
        return None if m is None else np.asarray(m, bool).copy()

    @property
    def measured_mask(self) -> Optional[np.ndarray]:
        """The policy's ``measured`` ``[N]`` mask (learned agents whose state fused a model measurement this
        step), if it has one."""
        m = getattr(self.policy, "measured", None)
        return None if m is None else np.asarray(m, bool).copy()

    def requery(self) -> None:
        """Drop what is buffered: the next step asks the policy again."""
        self._buffer = None

    def next_step(self, state: WorldState, controlled: np.ndarray) -> Trajectory:
        """The agents' states at ``state.timestep + 1`` as a ``[N, 1]`` Trajectory."""
        t_next = state.timestep + 1
        col = t_next - self._start
        if self._buffer is None or not 0 <= col < self._buffer.num_steps:
            steps = max(1, min(self.horizon, state.remaining_log_steps))
            out = self.policy.advance(state, controlled, steps)
            if out.valid.shape[0] != state.num_agents or out.valid.shape[1] < 1:
                raise ShapeError(
                    f"agent policy {type(self.policy).__name__} returned {out.valid.shape}, "
                    f"expected [{state.num_agents}, {steps}]"
                )
            self._buffer, self._start, col = out, t_next, 0
            self.queries += 1
        if self._buffer.num_steps == 1:
            return self._buffer
        return self._buffer.take(np.array([col]), axis=1)
