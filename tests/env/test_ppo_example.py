"""The SB3 PPO example runs end to end (a short version)."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed (pip install -e .[rl])")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_ppo.py"


@pytest.mark.slow
def test_ppo_example_short():
    spec = importlib.util.spec_from_file_location("train_ppo", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["train_ppo"] = mod
    spec.loader.exec_module(mod)
    res = mod.train(steps=256, n_steps=128, eval_episodes=1, max_episode_steps=20)
    assert res["timesteps"] >= 256
    assert math.isfinite(res["return_before"]) and math.isfinite(res["return_after"])
