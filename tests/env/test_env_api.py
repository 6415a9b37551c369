"""MADDrive-v0: registration, Gymnasium API, spaces, config, bad input."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mad_sim.envs import EnvConfig, make_config

import mad_sim  # noqa: F401  (registers the env)
from mad_sim.errors import ActionError, ConfigError, EnvStateError, SchemaError

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_import_registers_without_torch():
    code = (
        "import sys, mad_sim, gymnasium as gym; "
        "assert 'MADDrive-v0' in gym.registry; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "env = gym.make('mad_sim:MADDrive-v0'); env.reset(seed=1); env.step(env.action_space.sample()); "
        "assert 'torch' not in sys.modules, 'torch imported by the env'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    mad_sim.envs.register_envs()  # idempotent
    mad_sim.envs.register_envs()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(action="trajectory", agents="idm"),
        dict(action="delta", agents="constant_velocity", num_agents=4, num_roadgraph_points=32),
        dict(pose_observation=True, render_mode="pose"),
        dict(render_mode="bev", bev_size=96),
    ],
)
def test_check_env_procedural(kwargs):
    env = gym.make("MADDrive-v0", **kwargs)
    check_env(env.unwrapped)
    env.close()


def test_check_env_womd_pose(womd_path):
    env = gym.make("MADDrive-v0", scenario=str(womd_path), pose_observation=True, render_mode="bev", bev_size=64)
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    assert obs["pose"].dtype == np.uint8 and obs["pose"].shape == (128, 128, 3)
    assert obs["pose"].max() > 0  # lanes and agents are drawn
    env.close()


def test_observation_dtypes_and_content(womd_path):
    env = gym.make("MADDrive-v0", scenario=str(womd_path), num_agents=8)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["ego"].dtype == np.float32 and obs["agents"].dtype == np.float32
    assert obs["agents_mask"].dtype == np.int8 and obs["roadgraph_mask"].dtype == np.int8
    assert obs["agents_mask"].sum() == 8  # a busy log: 8 agents within 60 m
    d = np.hypot(obs["agents"][:, 0], obs["agents"][:, 1])
    assert np.all(np.diff(d) >= 0)  # nearest first
    assert obs["roadgraph_mask"].sum() == 128
    assert obs["ego"][0] == pytest.approx(info["speed"])
    assert info["scenario_id"] == "ee519cf571686d19" and info["timestep"] == 10


def test_config_file_and_keywords(tmp_path):
    cfg = make_config(str(REPO / "configs/env/default.yaml"), agents="idm")
    assert isinstance(cfg, EnvConfig) and cfg.agents == "idm" and cfg.max_accel == 6.0
    env = gym.make("MADDrive-v0", config=str(REPO / "configs/env/default.yaml"), action="delta")
    assert env.action_space.shape == (3,)
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents: idm\nspeed: 3\n")
    with pytest.raises(ConfigError, match="speed"):
        gym.make("MADDrive-v0", config=str(bad))
    with pytest.raises(ConfigError, match="action"):
        gym.make("MADDrive-v0", action="teleport")
    with pytest.raises(ConfigError, match="unknown agent policy 'nobody'"):
        gym.make("MADDrive-v0", agents="nobody")  # at gym.make, like action=, not at the first reset
    with pytest.raises(ConfigError, match="takes no settings"):
        gym.make("MADDrive-v0", agents="idm", agent_options={"chunk": 8})


def test_bad_actions_and_order():
    env = gym.make("MADDrive-v0").unwrapped
    with pytest.raises(EnvStateError):
        env.step(np.zeros(2, np.float32))
    env.reset(seed=3)
    for bad in (np.array([np.nan, 0.0]), np.array([0.0, np.inf])):
        with pytest.raises(ActionError, match="non-finite"):
            env.step(bad)
    with pytest.raises(ActionError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(ActionError, match="shape"):
        env.step(np.zeros((1, 2)))
    # a rejected action left the state untouched
    assert env.state.timestep == env.state.scenario.current_index
    env.step(np.array([5.0, 0.0]))  # out of the box: clipped to +1 (6 m/s^2)
    assert env.last_metrics.accel == pytest.approx(6.0)
    env.close()
    env.close()  # twice is fine
    with pytest.raises(EnvStateError):
        env.step(np.zeros(2, np.float32))


def test_step_after_episode_end(womd_path):
    env = gym.make("MADDrive-v0", scenario=str(womd_path), max_steps=3).unwrapped
    env.reset(seed=0)
    for _ in range(3):
        *_, term, trunc, _ = env.step(np.zeros(2, np.float32))
    assert trunc and not term
    with pytest.raises(EnvStateError, match="reset"):
        env.step(np.zeros(2, np.float32))
    env.reset()
    env.step(np.zeros(2, np.float32))


def test_ego_without_valid_state(womd_path):
    env = gym.make("MADDrive-v0", scenario=str(womd_path)).unwrapped
    sc = env.reset(seed=0) and env.scenario
    invalid = np.flatnonzero(~sc.tracks.valid[:, sc.current_index])
    assert invalid.size
    with pytest.raises(SchemaError, match="no valid state"):
        env.reset(options={"ego": int(invalid[0])})
    with pytest.raises(ConfigError, match="unknown key"):
        env.reset(options={"weather": "rain"})


def test_seeding_is_deterministic():
    a = gym.make("MADDrive-v0", agents="idm")
    b = gym.make("MADDrive-v0", agents="idm")
    oa, _ = a.reset(seed=42)
    ob, _ = b.reset(seed=42)
    act = np.array([0.3, -0.1], np.float32)
    for _ in range(5):
        oa, ra, *_ = a.step(act)
        ob, rb, *_ = b.step(act)
    assert ra == rb and all(np.array_equal(oa[k], ob[k]) for k in oa)
    o42, _ = a.reset(seed=42)
    o43, _ = a.reset(seed=43)
    assert not np.array_equal(o42["roadgraph"], o43["roadgraph"])  # another procedural scene


def test_scenarios_drawn_with_env_rng(womd_path, womd_still_path, scenarionet_path):
    files = [str(womd_path), str(womd_still_path), str(scenarionet_path)]
    env = gym.make("MADDrive-v0").unwrapped
    ids = []
    for seed in range(12):
        env.reset(seed=seed, options={"scenario": files})
        ids.append(env.scenario.scenario_id)
    assert set(ids) == {"ee519cf571686d19", "637f20cafde22ff8", "eb4b91b10ca94ff2"}
    again = []
    for seed in range(12):
        env.reset(seed=seed, options={"scenario": files})
        again.append(env.scenario.scenario_id)
    assert again == ids  # same seeds, same draws
    env.reset(seed=0, options={"scenario": str(scenarionet_path), "ego": "sdc"})
    assert env.state.timestep == env.scenario.current_index


def test_every_env_preset_validates():
    presets = sorted((REPO / "configs" / "env").glob("*.yaml"))
    assert len(presets) >= 2
    for path in presets:
        cfg = make_config(str(path))
        assert isinstance(cfg, EnvConfig), path
