"""Train stable-baselines3 PPO on MADDrive-v0's real training scenes, evaluated on the validation scenes.

    python examples/train_ppo.py --train corpus:train --val corpus:val --minutes 20 --out runs/ppo

Needs the ``[rl]`` extra (``pip install -e .[rl]``).  The policy is an MLP
(SB3 ``MlpPolicy``) on the flat observation (``obs_mode="flat"``: ego state,
the 8 nearest agents and 64 nearest road-graph points, normalised to [-1, 1])
and drives with the bicycle action; the other agents replay the log.  Every
reset draws a training scene with the wrapper's seeded generator (the scenes
of ``--train``, a corpus split, glob or file, are parsed once and kept in memory).

``--train-reward`` changes reward weights for training only (shaping); the
evaluations always score the env's default reward, as ``rl_eval.py`` does.

Written to ``--out``:

- ``train.csv``: per rollout: timesteps, wall seconds, env steps per second
  (training included), mean return and length of the last 100 episodes;
- ``eval.csv``: per evaluation (every ``--eval-every`` steps and at the end):
  the deterministic policy on the validation scenes (``--eval-scenes`` of them):
  return, route completion, collision and offroad rates
  (:mod:`rl_eval`, beside this file);
- SB3's ``progress.csv`` (and TensorBoard events when ``tensorboard`` is installed);
- ``ppo_maddrive.zip``, the model, and ``vecnormalize.pkl``, the observation
  and return statistics of ``VecNormalize`` (on by default: PPO on raw
  observations and a sparse +-10 reward learned little in 100k steps).

``--subproc`` runs the training envs in subprocesses (``SubprocVecEnv``), which
is why the script body sits under ``if __name__ == "__main__":``: the workers
start by importing this file, and without the guard each would start training again.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rl_eval  # noqa: E402  (beside this file)


def make_env(scenes: Sequence, seed: int, env_kwargs: Optional[Dict[str, Any]] = None) -> Any:
    """MADDrive-v0 whose every reset draws one of ``scenes`` (in memory) with a generator seeded by ``seed``."""
    import gymnasium as gym

    import mad_sim  # noqa: F401

    class SceneSampler(gym.Wrapper):
        def __init__(self, env: gym.Env) -> None:
            super().__init__(env)
            self._rng = np.random.default_rng(seed)

        def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> Any:
            options = dict(options or {})
            options.setdefault("scenario", scenes[int(self._rng.integers(len(scenes)))])
            return self.env.reset(seed=seed, options=options)

    return SceneSampler(gym.make("MADDrive-v0", **(env_kwargs or rl_eval.ENV_KWARGS)))


def _callbacks(out: Optional[Path], val_scenes: Sequence, eval_every: int, seed: int, venv: Any) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class Curves(BaseCallback):
        """train.csv per rollout and eval.csv every ``eval_every`` steps (and once at the end)."""

        def __init__(self) -> None:
            super().__init__()
            self.t0 = time.perf_counter()
            self.next_eval = eval_every
            self.train_rows: List[Dict[str, float]] = []
            self.eval_rows: List[Dict[str, Any]] = []

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            buf = self.model.ep_info_buffer
            wall = time.perf_counter() - self.t0
            row = {
                "timesteps": int(self.num_timesteps),
                "wall_s": round(wall, 2),
                "steps_per_s": round(self.num_timesteps / max(wall, 1e-9), 1),
                "ep_return_mean": float(np.mean([e["r"] for e in buf])) if buf else float("nan"),
                "ep_len_mean": float(np.mean([e["l"] for e in buf])) if buf else float("nan"),
            }
            self.train_rows.append(row)
            self.logger.record("rollout/steps_per_s", row["steps_per_s"])
            _append_csv(out, "train.csv", row)
            if self.num_timesteps >= self.next_eval:
                self.evaluate()
                self.next_eval += eval_every

        def evaluate(self) -> Dict[str, Any]:
            t = time.perf_counter()
            act = rl_eval.model_policy(self.model, getattr(venv, "normalize_obs", None))
            s = rl_eval.summarise("ppo", rl_eval.run_episodes(act, val_scenes, seed=seed))
            s.update(
                timesteps=int(self.num_timesteps),
                wall_s=round(time.perf_counter() - self.t0, 2),
                eval_s=round(time.perf_counter() - t, 2),
            )
            for k in ("return", "route_completion", "collision", "collision_at_fault", "offroad"):
                self.logger.record(f"eval/{k}", s[k])
            self.eval_rows.append(s)
            _append_csv(out, "eval.csv", {k: v for k, v in s.items() if k != "policy"})
            return s

    return Curves()


def _append_csv(out: Optional[Path], name: str, row: Dict[str, Any]) -> None:
    if out is None:
        return
    path = out / name
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def train(
    steps: int = 200_000,
    minutes: Optional[float] = None,
    train_spec: str = "corpus:train",
    val_spec: str = "corpus:val",
    eval_scenes: int = 12,
    eval_every: int = 20_000,
    n_envs: int = 2,
    n_steps: int = 1024,
    batch_size: int = 256,
    seed: int = 0,
    out: Optional[str] = None,
    subproc: bool = False,
    train_limit: Optional[int] = None,
    normalize: bool = True,
    train_reward: Optional[Dict[str, float]] = None,
    verbose: bool = False,
) -> Dict[str, Any]:
    """Train for ``steps`` env steps (or until ``minutes`` of wall time); returns the run's figures."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    torch.set_num_threads(1)
    out_dir = Path(out) if out else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("train.csv", "eval.csv"):
            (out_dir / name).unlink(missing_ok=True)
    train_scenes = rl_eval.load_scenes(train_spec, train_limit)
    val_scenes = rl_eval.load_scenes(val_spec, eval_scenes)
    train_kwargs = dict(rl_eval.ENV_KWARGS, reward_weights=train_reward) if train_reward else None
    fns = [lambda i=i: Monitor(make_env(train_scenes, seed + i, train_kwargs)) for i in range(n_envs)]
    venv = SubprocVecEnv(fns) if subproc else DummyVecEnv(fns)
    venv.seed(seed)
    if normalize:  # running mean / std of observations and returns (the SB3 zoo's default for continuous control)
        venv = VecNormalize(venv, norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=0.99)
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=n_steps,
        batch_size=batch_size,
        n_epochs=10,
        learning_rate=3e-4,
        gamma=0.99,
        gae_lambda=0.95,
        ent_coef=0.0,
        seed=seed,
        verbose=0,
        device="cpu",
        policy_kwargs=dict(log_std_init=-1.0),
    )  # start near the zero action (std 0.37, not 1)
    formats = ["csv"] if out_dir is not None else []
    try:
        import tensorboard  # noqa: F401

        formats += ["tensorboard"] if out_dir is not None else []
    except ImportError:
        pass
    formats += ["stdout"] if verbose else []
    # SB3's default logger makes a /tmp/SB3-<date> folder per run even when silent: log where asked only
    model.set_logger(configure(str(out_dir) if out_dir is not None else None, formats))
    curves = _callbacks(out_dir, val_scenes, eval_every, seed, venv)
    callbacks: List[Any] = [curves]
    if minutes is not None:
        callbacks.append(_deadline(time.perf_counter() + 60.0 * minutes))
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=CallbackList(callbacks))
    wall = time.perf_counter() - t0
    last = curves.eval_rows[-1] if curves.eval_rows else None
    final = last if last is not None and last["timesteps"] == model.num_timesteps else curves.evaluate()
    venv.close()
    if out_dir is not None:
        model.save(str(out_dir / "ppo_maddrive"))
        if isinstance(venv, VecNormalize):
            venv.save(str(out_dir / "vecnormalize.pkl"))
    return {
        "timesteps": int(model.num_timesteps),
        "wall_s": wall,
        "steps_per_s": model.num_timesteps / wall,
        "train_scenes": len(train_scenes),
        "eval_scenes": len(val_scenes),
        "final_eval": final,
        "evals": len(curves.eval_rows),
        "rollouts": len(curves.train_rows),
    }


def _deadline(t_end: float) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class Deadline(BaseCallback):
        """Stops training at the first step after the wall-clock deadline."""

        def _on_step(self) -> bool:
            return time.perf_counter() < t_end

    return Deadline()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default="corpus:train", help="training scenes: corpus split, glob or file")
    ap.add_argument("--val", default="corpus:val", help="validation scenes")
    ap.add_argument("--steps", type=int, default=1_000_000, help="env steps at most")
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock limit")
    ap.add_argument("--eval-scenes", type=int, default=12)
    ap.add_argument("--eval-every", type=int, default=20_000)
    ap.add_argument("--n-envs", type=int, default=2)
    ap.add_argument("--subproc", action="store_true", help="training envs in subprocesses (SubprocVecEnv)")
    ap.add_argument("--no-normalize", action="store_true", help="no VecNormalize (observation / return scaling)")
    ap.add_argument(
        "--train-reward",
        default=None,
        help="reward weights for training only, JSON (e.g. '{\"log_divergence\": -0.01}'); evaluation always uses the defaults",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder for the curves and the model")
    args = ap.parse_args()
    res = train(
        steps=args.steps,
        minutes=args.minutes,
        train_spec=args.train,
        val_spec=args.val,
        eval_scenes=args.eval_scenes,
        eval_every=args.eval_every,
        n_envs=args.n_envs,
        seed=args.seed,
        out=args.out,
        subproc=args.subproc,
        normalize=not args.no_normalize,
        train_reward=json.loads(args.train_reward) if args.train_reward else None,
    )
    print(json.dumps(res, default=float))


if __name__ == "__main__":
    main()
