"""The SB3 PPO example runs end to end (a short version): the plumbing, not the learning."""

import csv
import importlib.util
import math
import sys
from pathlib import Path

import pytest

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed (pip install -e .[rl])")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_ppo_example_short(womd_path, womd_still_path, tmp_path):
    mod = _load("train_ppo")
    res = mod.train(
        steps=1024,
        train_spec=str(womd_path),
        val_spec=f"{womd_path},{womd_still_path}",
        eval_scenes=2,
        eval_every=512,
        n_envs=2,
        n_steps=256,
        batch_size=128,
        out=str(tmp_path),
    )
    assert res["timesteps"] >= 1024 and res["steps_per_s"] > 0 and res["evals"] >= 2
    train_rows = list(csv.DictReader((tmp_path / "train.csv").open()))
    eval_rows = list(csv.DictReader((tmp_path / "eval.csv").open()))
    assert len(train_rows) == res["rollouts"] >= 2 and float(train_rows[-1]["steps_per_s"]) > 0
    assert len(eval_rows) == res["evals"] and int(eval_rows[-1]["timesteps"]) == res["timesteps"]
    final = res["final_eval"]
    assert final["scenes"] == 2 and final["completable"] == 1  # the second log's ego stands still
    for k in ("return", "route_completion", "collision", "offroad"):
        assert math.isfinite(final[k])
    assert (tmp_path / "ppo_maddrive.zip").is_file() and (tmp_path / "progress.csv").is_file()


def test_baselines_table_rows(womd_path):
    rl_eval = _load("rl_eval")
    import gymnasium as gym

    scenes = rl_eval.load_scenes(str(womd_path))
    env = gym.make("MADDrive-v0", **rl_eval.ENV_KWARGS)
    expert = rl_eval.summarise("expert", rl_eval.run_episodes(rl_eval.make_policy("expert", env), scenes))
    zero = rl_eval.summarise("zero", rl_eval.run_episodes(rl_eval.make_policy("zero", env), scenes))
    assert expert["route_completion"] == 1.0 and expert["collision"] == 0.0 and expert["return"] > zero["return"]
    assert "expert" in rl_eval.format_table([expert, zero])


def test_bc_warm_start_then_ppo(womd_path, womd_still_path, tmp_path):
    """BC rounds logged, eval.csv's step-0 row is the cloned policy, the critic warm-up freezes the actor."""
    mod = _load("train_ppo")
    res = mod.train(
        steps=256,
        train_spec=f"{womd_path},{womd_still_path}",
        val_spec=str(womd_path),
        eval_scenes=1,
        eval_every=10**6,
        n_envs=1,
        n_steps=128,
        batch_size=64,
        out=str(tmp_path),
        bc_minutes=1.0,
        bc_options=dict(first_samples=150, round_samples=60, epochs=2, holdout=0.5, max_rounds=2, log_std=-1.7),
        critic_warmup=10**6,  # longer than the run: PPO fits the critic only
    )
    bc = res["bc"]
    assert bc["rounds"] == 2 and bc["samples"] == 75 + 30 and bc["wall_s"] < 60  # half the samples on the held-out scene
    assert len(bc["holdout_scenes"]) == 1 and all(math.isfinite(v) for v in bc["holdout_mse"])
    bc_rows = list(csv.DictReader((tmp_path / "bc.csv").open()))
    assert [int(r["samples"]) for r in bc_rows] == [75, 105] and [float(r["beta"]) for r in bc_rows] == [1.0, 0.5]
    eval_rows = list(csv.DictReader((tmp_path / "eval.csv").open()))
    assert eval_rows[0]["policy"] == "bc" and int(eval_rows[0]["timesteps"]) == 0
    assert eval_rows[-1]["policy"] == "bc+ppo" and int(eval_rows[-1]["timesteps"]) == res["timesteps"] >= 256
    assert res["ppo"] == mod.PPO_AFTER_BC | {"critic_warmup": 10**6}
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    model = PPO.load(str(tmp_path / "ppo_maddrive"), device="cpu")
    # set by BC and untouched by PPO: the actor (log_std included) was frozen throughout
    assert model.policy.log_std.detach().numpy().tolist() == pytest.approx([-1.7, -1.7], abs=1e-7)
    assert model.learning_rate == mod.PPO_AFTER_BC["learning_rate"]
    vn = VecNormalize.load(str(tmp_path / "vecnormalize.pkl"), _dummy_venv())
    assert vn.obs_rms.count >= bc["samples"]  # BC's statistics, then PPO's running updates


def _dummy_venv():
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    rl_eval = _load("rl_eval")
    return DummyVecEnv([lambda: gym.make("MADDrive-v0", **rl_eval.ENV_KWARGS)])


def test_bc_fit_lowers_the_actor_error(womd_path):
    """``fit`` regresses the actor's mean action onto expert labels (normalised as VecNormalize does)."""
    import gymnasium as gym
    import numpy as np
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    rl_eval = _load("rl_eval")
    bc = _load("bc_warmstart")
    scenes = rl_eval.load_scenes(str(womd_path))
    venv = VecNormalize(_dummy_venv())
    model = PPO("MlpPolicy", venv, device="cpu", seed=0, n_steps=64)
    env = gym.make("MADDrive-v0", **rl_eval.ENV_KWARGS)
    rng = np.random.default_rng(0)
    obs, act, episodes = bc.collect(env, scenes, 120, rng, noise=0.1)
    assert obs.shape == (120, env.observation_space.shape[0]) and act.shape == (120, 2) and episodes >= 1
    assert np.all(np.abs(act) <= 1.0)
    bc.set_obs_stats(venv, obs)
    assert venv.obs_rms.count == 120 and np.all(venv.obs_rms.var >= bc.VAR_FLOOR)
    x = venv.normalize_obs(obs)
    before = bc.mse(model.policy, x, act).sum()
    value_net = [p.detach().clone() for p in model.policy.value_net.parameters()]
    bc.fit(model.policy, x, act, epochs=30, lr=1e-3, batch_size=32, rng=rng)
    assert bc.mse(model.policy, x, act).sum() < 0.5 * before
    assert all(np.array_equal(a, b.detach()) for a, b in zip(value_net, model.policy.value_net.parameters()))
