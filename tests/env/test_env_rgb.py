"""Camera frames in ``MADDrive-v0``: rgb_array / rgb observation through the chunk cache (random tiny model)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mad_sim.envs.rgb import EgoMotion, forecast_state

import mad_sim  # noqa: F401  (registers MADDrive-v0)
from mad_sim.errors import ConfigError, PresetError, ShapeError
from mad_sim.world.dynamics import bicycle_step
from mad_sim.world.state import WorldState

RGB = dict(appearance_weights="random", rgb_steps=2, rgb_chunk_frames=9, pose_width=64, pose_height=64)
"""Random tiny model at 64 px, 9-frame chunks: the plumbing, cheaply (the random model renders what it is built for)."""


def test_pose_and_state_use_never_import_the_appearance_model():
    code = textwrap.dedent("""
        import sys, numpy as np, gymnasium as gym, mad_sim
        for kw in (dict(render_mode="pose"), dict(render_mode="bev", pose_observation=True), dict()):
            env = gym.make("MADDrive-v0", **kw)
            env.reset(seed=0, options={"prompt": "rainy night"})  # a prompt alone loads nothing
            for _ in range(3):
                env.step(np.zeros(2, np.float32))
            env.render() if kw.get("render_mode") else None
            assert env.unwrapped.rgb_camera is None
            env.close()
        print(sorted(m for m in sys.modules if m == "torch" or m.startswith("mad_sim.model")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # The learned-agent settings dataclass (torch-free, registered with the "mad" policy) and the tracking
    # noise dataclass it holds (numpy only) are all of the model layer a pose / state env may import.
    want = "['mad_sim.model', 'mad_sim.model.agents', 'mad_sim.model.agents.settings', 'mad_sim.model.agents.tracking']"
    assert out.stdout.strip() == want


def test_check_env_rgb_array_with_rgb_observation(womd_path):
    env = gym.make("MADDrive-v0", scenario=str(womd_path), render_mode="rgb_array", rgb_observation=True, **RGB)
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    assert obs["rgb"].shape == (64, 64, 3) and obs["rgb"].dtype == np.uint8
    assert env.observation_space["rgb"].contains(obs["rgb"])
    env.close()


def test_one_synthesis_per_chunk_and_render_equals_observation(womd_path):
    env = gym.make("MADDrive-v0", scenario=str(womd_path), render_mode="rgb_array", rgb_observation=True, **RGB)
    obs, _ = env.reset(seed=1)
    cam = env.unwrapped.rgb_camera
    frames = [obs["rgb"]]
    for _ in range(16):  # constant action: the ego goes exactly where the forecast says
        obs, *_ = env.step(np.zeros(2, np.float32))
        assert np.array_equal(env.render(), obs["rgb"])  # asking twice costs nothing
        frames.append(obs["rgb"])
    # steps 0..8 from chunk 0, 8..16 from chunk 1: 17 frames asked twice each, two syntheses
    assert cam.stats.syntheses == 2 and cam.resyncs == 0
    assert cam.stats.hits == 17 + 16 - 2  # 17 observations + 16 renders, two of them misses
    assert cam.weights == "random"
    # same seed, same frames; another prompt, other frames (the text reaches the model)
    obs, _ = env.reset(seed=1)
    assert np.array_equal(obs["rgb"], frames[0])
    obs2, _ = env.reset(seed=1, options={"prompt": "rainy night"})
    assert not np.array_equal(obs2["rgb"], frames[0])
    env.close()


def test_resync_when_the_ego_leaves_the_forecast(womd_path):
    env = gym.make(
        "MADDrive-v0",
        scenario=str(womd_path),
        render_mode="rgb_array",
        terminate_on_offroad=False,
        terminate_on_collision=False,
        **{**RGB, "rgb_chunk_frames": 17},
    )
    env.reset(seed=0)
    env.render()
    cam = env.unwrapped.rgb_camera
    for _ in range(16):  # full braking and steering: the first chunk's forecast (coasting) goes stale quickly
        env.step(np.array([-1.0, 0.5], np.float32))
        env.render()
    assert cam.resyncs == 1 and cam.stats.syntheses == 2  # one restart, then the held action is the forecast itself
    syntheses = cam.stats.syntheses
    env.step(np.array([1.0, -1.0], np.float32))  # a new action: the heading leaves the forecast at once
    env.render()
    assert cam.resyncs == 2 and cam.stats.syntheses == syntheses + 1
    env.close()


def test_forecast_holds_the_ego_motion_and_agents_velocity(womd_path):
    from mad_sim.data import load_scenario

    state = WorldState.from_scenario(load_scenario(womd_path))
    t, e = state.timestep, state.ego_index
    ego = EgoMotion(speed=5.0, accel=-2.0, curvature=0.05)
    fut = forecast_state(state, ego, 9)
    xy, yaw, v = state.sim.xyz[e, t, :2], np.float64(state.sim.heading[e, t]), np.float64(5.0)
    for k in range(1, 9):
        xy, yaw, v = bicycle_step(xy, yaw, v, ego.accel, ego.curvature)
        np.testing.assert_allclose(fut.sim.xyz[e, t + k, :2], xy, atol=1e-9)
        np.testing.assert_allclose(fut.sim.heading[e, t + k], yaw, atol=1e-9)
    others = np.flatnonzero(state.sim.valid[:, t])
    others = others[others != e]
    np.testing.assert_allclose(
        fut.sim.xyz[others, t + 8, :2], state.sim.xyz[others, t, :2] + 0.8 * state.sim.velocity[others, t], atol=1e-9
    )
    assert not state.sim.valid[:, t + 1].any()  # the state itself is untouched


def test_bad_rgb_inputs(womd_path, tmp_path):
    with pytest.raises(ConfigError, match="key 'prompt'.*empty"):
        gym.make("MADDrive-v0", render_mode="rgb_array", prompt="  ", **RGB)
    with pytest.raises(ConfigError, match="rgb_chunk_frames"):
        gym.make("MADDrive-v0", render_mode="rgb_array", **{**RGB, "rgb_chunk_frames": 10})
    with pytest.raises(PresetError, match="svd-tiny.*no appearance adapter"):
        gym.make("MADDrive-v0", render_mode="rgb_array", appearance_preset="svd-tiny")
    with pytest.raises(PresetError, match="no appearance adapter.*missing.safetensors"):
        gym.make("MADDrive-v0", rgb_observation=True, appearance_weights=str(tmp_path / "missing.safetensors"))
    pose_env = gym.make("MADDrive-v0", render_mode="pose")
    with pytest.raises(ConfigError, match="reset option 'prompt'.*empty"):
        pose_env.reset(seed=0, options={"prompt": ""})
    with pytest.raises(ConfigError, match="first_frame.*no camera frames"):
        pose_env.reset(seed=0, options={"first_frame": np.zeros((128, 128, 3), np.uint8)})
    env = gym.make("MADDrive-v0", scenario=str(womd_path), render_mode="rgb_array", **RGB)
    with pytest.raises(ConfigError, match="reset option 'prompt'.*empty"):
        env.reset(seed=0, options={"prompt": ""})
    with pytest.raises(ShapeError, match="first frame: 32x64 pixels, expected 64x64"):
        env.reset(seed=0, options={"first_frame": np.zeros((32, 64, 3), np.uint8)})
        env.render()
    with pytest.raises(ShapeError, match="first frame: expected uint8"):
        env.reset(seed=0, options={"first_frame": np.zeros((64, 64, 3), np.float32)})
        env.render()
    first = np.full((64, 64, 3), 77, np.uint8)
    env.reset(seed=0, options={"first_frame": first})
    assert np.array_equal(env.render(), first)  # the episode's first frame is the hard condition of its step 0
    env.close()
