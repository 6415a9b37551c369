"""MADVectorEnv is the env's vector_entry_point; with scripted agents it steps exactly as a SyncVectorEnv."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from mad_sim.envs import MADVectorEnv, make_vec

import mad_sim  # noqa: F401


def test_make_vec_entry_point_matches_sync(womd_path):
    kw = dict(scenario=str(womd_path), agents="idm", terminate_on_collision=False, max_steps=6)
    ours = gym.make_vec("MADDrive-v0", num_envs=2, vectorization_mode="vector_entry_point", **kw)
    plain = gym.make_vec("MADDrive-v0", num_envs=2, vectorization_mode="sync", **kw)
    assert isinstance(ours, MADVectorEnv) and type(plain) is gym.vector.SyncVectorEnv
    assert isinstance(gym.make_vec("MADDrive-v0", num_envs=1, **kw), MADVectorEnv)  # the default mode too
    assert isinstance(make_vec(2, **kw), MADVectorEnv)
    a, _ = ours.reset(seed=3)
    b, _ = plain.reset(seed=3)
    actions = np.array([[0.3, 0.0], [-0.2, 0.1]], np.float32)
    for _ in range(8):  # past the 6-step truncation: both autoreset on the next step
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
        a, ra, ta, tra, _ = ours.step(actions)
        b, rb, tb, trb, _ = plain.step(actions)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(tra, trb)
    assert ours.forecast_batched(actions) == 0  # scripted agents: nothing to batch
    ours.close(), plain.close()
