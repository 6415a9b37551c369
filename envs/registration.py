"""Registers ``MADDrive-v0`` with Gymnasium (idempotent; run by ``import mad_sim``)."""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "MADDrive-v0"
ENTRY_POINT = "mad_sim.envs.drive:MADDriveEnv"
VECTOR_ENTRY_POINT = "mad_sim.envs.vector:MADVectorEnv"
"""``gymnasium.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", ...)`` builds this."""


def register_envs() -> None:
    """Register ``MADDrive-v0`` (also reachable as ``mad_sim:MADDrive-v0``) unless it already is."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT, disable_env_checker=False)
