"""The seam between the env and whatever moves the other agents.

A policy implements :class:`mad_sim.world.traffic.TrafficPolicy`:
``advance(state, controlled, num_steps) -> Trajectory [N, num_steps]`` (the
next ``num_steps`` states of all agents, world frame).  Policies are made by
name from a small registry, so the learned predictor registers itself later::

    register_agent_policy("my_model", lambda config, rng: MyPolicy(...))

(``mad``, the learned MAD predictor of :mod:`mad_sim.model.agents.learned`,
is built in and imported only when used.)  Optional policy hooks the env
calls: ``seed(rng)`` and ``reset(state)`` at every reset,
``observe_ego_action(state, action, ego_step)`` before the agents move, and a
``learned`` ``[N]`` bool attribute, reported as ``info["learned_agents"]`` (the
track indices it holds True).

:class:`AgentStream` asks the policy for ``config.agent_horizon`` steps at a
time and hands them out one env step at a time: a policy that returns k steps
is consumed over the next k env steps, then asked again (or earlier, after
:meth:`AgentStream.requery`).  Scripted policies use horizon 1 and react to
the ego every step; a video predictor generating several frames per call uses
a longer horizon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, Optional

import numpy as np

from mad_sim.data.scenario import Trajectory
from mad_sim.envs.config import EnvConfig
from mad_sim.errors import ConfigError, ShapeError
from mad_sim.world.state import WorldState

if TYPE_CHECKING:
    from mad_sim.world.traffic import TrafficPolicy

AgentPolicyFactory = Callable[[EnvConfig, np.random.Generator], "TrafficPolicy"]
"""``factory(config, rng) -> TrafficPolicy``; ``rng`` is the env's generator."""

_REGISTRY: Dict[str, AgentPolicyFactory] = {}


def register_agent_policy(name: str, factory: AgentPolicyFactory, *, overwrite: bool = False) -> None:
    """Make ``agents=name`` build its policy with ``factory(config, rng)``."""
    if name in _REGISTRY and not overwrite and _REGISTRY[name] is not factory:
        raise ConfigError(f"agent policy {name!r} is already registered")
    _REGISTRY[name] = factory


def agent_policy_names() -> list[str]:
    _register_builtin()
    return sorted(_REGISTRY)


def make_agent_policy(name: str, config: EnvConfig, rng: np.random.Generator) -> TrafficPolicy:
    """Build the policy registered as ``name``; ConfigError names the known ones otherwise."""
    _register_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"key 'agents': unknown agent policy {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name](config, rng)


def _builtin(name: str) -> AgentPolicyFactory:
    def factory(config: EnvConfig, rng: np.random.Generator) -> TrafficPolicy:
        from mad_sim.world.scripted import make_scripted_policy

        return make_scripted_policy(name)
    factory.__name__ = f"make_{name}"
    return factory


def _mad(config: EnvConfig, rng: np.random.Generator) -> TrafficPolicy:
    from mad_sim.model.agents.learned import make_mad_policy  # torch is imported only when agents="mad"

    return make_mad_policy(config, rng)


_BUILTIN = {"log": _builtin("log"), "idm": _builtin("idm"), "constant_velocity": _builtin("constant_velocity"),
            "mad": _mad}


def _register_builtin() -> None:
    for name, factory in _BUILTIN.items():
        _REGISTRY.setdefault(name, factory)


class AgentStream:
    """Buffers a policy's multi-step output and serves it one step at a time."""

    def __init__(self, policy: TrafficPolicy, horizon: int) -> None:
        self.policy = policy
        self.horizon = int(horizon)
        self._buffer: Optional[Trajectory] = None
        self._start = 0  # absolute step of the buffer's column 0
        self.queries = 0

    def reset(self, state: WorldState, rng: Optional[np.random.Generator] = None) -> None:
        """New episode: drop the buffer; hand the policy the env's freshly seeded generator
        (optional hook ``seed(rng)``) and the initial state (optional hook ``reset(state)``)."""
        self._buffer = None
        self.queries = 0
        seed = getattr(self.policy, "seed", None)
        if rng is not None and callable(seed):
            seed(rng)
        reset = getattr(self.policy, "reset", None)
        if callable(reset):
            reset(state)

    def observe(self, state: WorldState, action: object, ego_step: object) -> None:
        """Optional hook ``observe_ego_action(state, action, ego_step)``: the ego action of the step
        about to be taken (already accepted by the action adapter) and the ego's resulting
        :class:`~mad_sim.envs.actions.EgoStep`, before the agents move."""
        hook = getattr(self.policy, "observe_ego_action", None)
        if callable(hook):
            hook(state, action, ego_step)

    @property
    def learned_mask(self) -> Optional[np.ndarray]:
        """The policy's ``learned`` ``[N]`` mask (agents driven by a learned model this step), if it has one."""
        m = getattr(self.policy, "learned", None)
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
                raise ShapeError(f"agent policy {type(self.policy).__name__} returned {out.valid.shape}, "
                                 f"expected [{state.num_agents}, {steps}]")
            self._buffer, self._start, col = out, t_next, 0
            self.queries += 1
        if self._buffer.num_steps == 1:
            return self._buffer
        return self._buffer.take(np.array([col]), axis=1)
