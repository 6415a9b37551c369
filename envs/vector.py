"""``make_vec``: n copies of ``MADDrive-v0`` in a Gymnasium vector env."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from mad_sim.envs.registration import ENV_ID, register_envs


def _factory(kwargs: dict) -> Any:
    def make() -> gym.Env:
        import mad_sim  # noqa: F401  (registers the env inside worker processes)

        return gym.make(ENV_ID, **kwargs)
    return make


def make_vec(n: int, asynchronous: bool = False, **kwargs: Any) -> gym.vector.VectorEnv:
    """``n`` envs built with ``gym.make("MADDrive-v0", **kwargs)``.

    ``asynchronous=True`` runs each in its own process (``AsyncVectorEnv``),
    else in this one (``SyncVectorEnv``).  Seed them with ``reset(seed=s)``:
    env ``i`` gets ``s + i``.
    """
    register_envs()
    fns = [_factory(dict(kwargs)) for _ in range(int(n))]
    if asynchronous:
        return gym.vector.AsyncVectorEnv(fns)
    return gym.vector.SyncVectorEnv(fns)
