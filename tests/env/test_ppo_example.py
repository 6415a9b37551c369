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
