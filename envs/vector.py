"""Vector envs of ``MADDrive-v0``: :class:`MADVectorEnv` (learned agents batched) and :func:`make_vec`.

:class:`MADVectorEnv` is the env's ``vector_entry_point``, so::

    gymnasium.make_vec("MADDrive-v0", num_envs=4, vectorization_mode="vector_entry_point", agents="mad",
                       agent_options={"chunk": 8})

gives n envs whose learned agents share ONE batched diffusion call per chunk
(``vectorization_mode`` left out picks it too; ``"sync"`` / ``"async"`` give
Gymnasium's plain vector envs, one call per env).  Envs whose agents are not
learned step exactly as in a ``SyncVectorEnv``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import iterate
from mad_sim.envs.registration import ENV_ID, register_envs

from mad_sim.world.state import WorldState


@runtime_checkable
class BatchedForecaster(Protocol):
    """An agent policy whose forecasts a vector env can batch (:class:`~mad_sim.model.agents.learned.LearnedAgents`).

    ``prepare(state, action, ego_step)`` returns the forecast request this step needs (or None) and is
    idempotent within a step; ``accept(frames)`` hands in the request's result; ``service.forecast(requests)``
    runs many requests in one call.
    """

    service: Any

    def prepare(self, state: WorldState, action: Any = None, ego_step: Any = None) -> Any: ...

    def accept(self, frames: np.ndarray) -> None: ...


def _env_fn(kwargs: Dict[str, Any]) -> Callable[[], gym.Env]:
    def make() -> gym.Env:
        import mad_sim  # noqa: F401  (registers the env inside worker processes)

        return gym.make(ENV_ID, **kwargs)

    return make


class MADVectorEnv(gym.vector.SyncVectorEnv):
    """``num_envs`` copies of ``gym.make("MADDrive-v0", **kwargs)`` stepped in this process, their learned
    agents' forecasts batched.

    Before the envs step, each env whose policy is a :class:`BatchedForecaster` is asked for the forecast
    this step needs, given the env's action and the ego step it produces
    (:meth:`MADDriveEnv.ego_step <mad_sim.envs.drive.MADDriveEnv.ego_step>`); the requests of all envs go to
    their shared predictor service together (one call per service) and each policy receives its frames.  The
    envs then step as usual, their forecast already there.  Envs about to be autoreset (Gymnasium's
    ``next_step`` default) or ended are not asked.

    Args:
      num_envs: envs to make.
      autoreset_mode: Gymnasium's ``next_step`` (default), ``same_step`` or ``disabled``.
      **kwargs: ``gym.make`` keywords of every env (``agents``, ``agent_options``, ``max_episode_steps``, ...).
    """

    def __init__(self, num_envs: int = 1, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP, **kwargs: Any) -> None:
        register_envs()
        super().__init__([_env_fn(dict(kwargs)) for _ in range(int(num_envs))], autoreset_mode=autoreset_mode)
        self._ended = np.zeros(self.num_envs, bool)  # episodes that ended in the last step (not yet reset)

    def reset(
        self, *, seed: Optional[int | List[int | None]] = None, options: Optional[Dict[str, Any]] = None
    ) -> Tuple[Any, Dict[str, Any]]:
        out = super().reset(seed=seed, options=options)
        mask = (options or {}).get("reset_mask")
        self._ended = np.zeros(self.num_envs, bool) if mask is None else self._ended & ~np.asarray(mask, bool)
        return out

    def step(self, actions: Any) -> Tuple[Any, Any, Any, Any, Dict[str, Any]]:
        self.forecast_batched(actions)
        obs, rewards, terminations, truncations, infos = super().step(actions)
        ended = np.logical_or(terminations, truncations)
        self._ended = ended if self.autoreset_mode != AutoresetMode.SAME_STEP else np.zeros(self.num_envs, bool)
        return obs, rewards, terminations, truncations, infos

    def forecast_batched(self, actions: Any) -> int:
        """Run this step's forecasts of every env, batched per service (see the class doc); requests run."""
        from mad_sim.envs.drive import MADDriveEnv

        pending: List[Tuple[BatchedForecaster, Any]] = []
        for i, (env, action) in enumerate(zip(self.envs, iterate(self.action_space, actions))):
            base = env.unwrapped
            if self._ended[i] or not isinstance(base, MADDriveEnv) or base.state is None or not base.running:
                continue
            policy = base.agent_policy
            if not isinstance(policy, BatchedForecaster):
                continue
            request = policy.prepare(base.state, action, base.ego_step(action))
            if request is not None:
                pending.append((policy, request))
        groups: Dict[int, List[Tuple[BatchedForecaster, Any]]] = {}
        for policy, request in pending:
            groups.setdefault(id(policy.service), []).append((policy, request))
        for group in groups.values():
            frames: Sequence[np.ndarray] = group[0][0].service.forecast([r for _, r in group])
            for (policy, _), f in zip(group, frames):
                policy.accept(f)
        return len(pending)


def make_vec(n: int, asynchronous: bool = False, **kwargs: Any) -> gym.vector.VectorEnv:
    """``n`` envs built with ``gym.make("MADDrive-v0", **kwargs)``.

    ``asynchronous=True`` runs each in its own process (``AsyncVectorEnv``, no batching across envs), else
    in this one (:class:`MADVectorEnv`: learned agents batched).  Seed them with ``reset(seed=s)``: env
    ``i`` gets ``s + i``.
    """
    register_envs()
    if asynchronous:
        return gym.vector.AsyncVectorEnv([_env_fn(dict(kwargs)) for _ in range(int(n))])
    return MADVectorEnv(int(n), **kwargs)
