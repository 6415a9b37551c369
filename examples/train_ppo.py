"""Train stable-baselines3 PPO on MADDrive-v0's real training scenes, evaluated on the validation scenes.

    python examples/train_ppo.py --train corpus:train --val corpus:val --minutes 20 --out runs/ppo

Needs the ``[rl]`` extra (``pip install -e .[rl]``).  The policy is an MLP
(SB3 ``MlpPolicy``) on the flat observation (``obs_mode="flat"``: ego state,
the 8 nearest agents and 64 nearest road-graph points, normalised to [-1, 1])
and drives with the bicycle action; the other agents replay the log.  Every
reset draws a training scene with the wrapper's seeded generator (the scenes
of ``--train``, a corpus split, glob or file, are parsed once and kept in memory).

**Behaviour-cloning warm start** (``--bc-minutes``, 10 of the ``--minutes`` by
default; 0 switches it off): the actor is first fitted to the env's expert
(the logged path tracked with the bicycle action) on the training scenes, with
DAgger rounds, on the same ``VecNormalize`` observations PPO sees
(:mod:`bc_warmstart`, beside this file); eval.csv's first row (step 0, policy
``bc``) scores it alone.  PPO then continues with :data:`PPO_AFTER_BC`
(smaller steps, a KL stop, the critic fitted alone first: with PPO's defaults
the cloned policy lost half its route completion within 150k steps, examples/README.md).

``--train-reward`` changes reward weights for training only (shaping); the
evaluations always score the env's default reward, as ``rl_eval.py`` does.

Written to ``--out``:

- ``train.csv``: per rollout: PPO timesteps, wall seconds since the run's start
  (BC included), PPO env steps per second (training included), mean return and
  length of the last 100 episodes;
- ``eval.csv``: per evaluation (after BC, every ``--eval-every`` steps and at the end):
  the deterministic policy on the validation scenes (``--eval-scenes`` of them):
  return, route completion, collision and offroad rates
  (:mod:`rl_eval`, beside this file);
- ``bc.csv``: per BC round: DAgger's beta, samples so far, episodes, collection
  and fitting seconds, the fit's MSE (and on held-out scenes with ``holdout``);
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
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

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


def _monitored_env(scenes: Sequence, seed: int, env_kwargs: Optional[Dict[str, Any]]) -> Any:
    """:func:`make_env` in SB3's ``Monitor`` (episode returns and lengths for train.csv)."""
    from stable_baselines3.common.monitor import Monitor

    return Monitor(make_env(scenes, seed, env_kwargs))


def _callbacks(
    out: Optional[Path], val_scenes: Sequence, eval_every: int, seed: int, venv: Any, t_run: float, name: str = "ppo"
) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class Curves(BaseCallback):
        """train.csv per rollout and eval.csv every ``eval_every`` steps (and once at the end).

        ``wall_s`` counts from ``t_run`` (the run's start, BC included); ``steps_per_s`` from PPO's start."""

        def __init__(self) -> None:
            super().__init__()
            self.t0 = time.perf_counter()
            self.next_eval = eval_every
            self.train_rows: List[Dict[str, float]] = []
            self.eval_rows: List[Dict[str, Any]] = []

        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            buf = self.model.ep_info_buffer
            wall = time.perf_counter() - self.t0
            row = {
                "timesteps": int(self.num_timesteps),
                "wall_s": round(time.perf_counter() - t_run, 2),
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

        def evaluate(self, policy_name: Optional[str] = None) -> Dict[str, Any]:
            t = time.perf_counter()
            act = rl_eval.model_policy(self.model, getattr(venv, "normalize_obs", None))
            s = rl_eval.summarise(policy_name or name, rl_eval.run_episodes(act, val_scenes, seed=seed))
            s.update(
                timesteps=int(self.num_timesteps),
                wall_s=round(time.perf_counter() - t_run, 2),
                eval_s=round(time.perf_counter() - t, 2),
            )
            for k in ("return", "route_completion", "collision", "collision_at_fault", "offroad"):
                self.logger.record(f"eval/{k}", s[k])
            self.eval_rows.append(s)
            _append_csv(out, "eval.csv", s)
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
    bc_minutes: float = 0.0,
    bc_options: Optional[Dict[str, Any]] = None,
    learning_rate: Optional[float] = None,
    clip_range: Optional[float] = None,
    critic_warmup: Optional[int] = None,
    target_kl: Optional[float] = None,
    verbose: bool = False,
) -> Dict[str, Any]:
    """Train for ``steps`` PPO env steps (or until ``minutes`` of wall time, BC included); returns the run's figures.

    ``bc_minutes`` > 0: a behaviour-cloning warm start first (:func:`bc_warmstart.warm_start`,
    ``bc_options`` its keywords), evaluated once (eval.csv's step-0 row, policy ``bc``) before PPO.
    ``learning_rate`` / ``clip_range`` / ``critic_warmup`` (PPO steps with the actor frozen) /
    ``target_kl`` (SB3's early stop of an update's epochs; 0: none) default to :data:`PPO_DEFAULTS`
    or, after BC, :data:`PPO_AFTER_BC`.
    """
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    t_run = time.perf_counter()
    t_end = t_run + 60.0 * minutes if minutes is not None else float("inf")
    torch.set_num_threads(1)
    out_dir = Path(out) if out else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("train.csv", "eval.csv", "bc.csv"):
            (out_dir / name).unlink(missing_ok=True)
    use_bc = bc_minutes > 0
    hp = dict(PPO_AFTER_BC if use_bc else PPO_DEFAULTS)
    for k, v in (
        ("learning_rate", learning_rate),
        ("clip_range", clip_range),
        ("critic_warmup", critic_warmup),
        ("target_kl", target_kl),
    ):
        if v is not None:
            hp[k] = v
    train_scenes = rl_eval.load_scenes(train_spec, train_limit)
    val_scenes = rl_eval.load_scenes(val_spec, eval_scenes)
    train_kwargs = dict(rl_eval.ENV_KWARGS, reward_weights=train_reward) if train_reward else None
    fns: List[Callable[[], Any]] = [
        functools.partial(_monitored_env, train_scenes, seed + i, train_kwargs) for i in range(n_envs)
    ]
    venv: Any = SubprocVecEnv(fns) if subproc else DummyVecEnv(fns)
    venv.seed(seed)
    if normalize:  # running mean / std of observations and returns (the SB3 zoo's default for continuous control)
        venv = VecNormalize(venv, norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=0.99)
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=n_steps,
        batch_size=batch_size,
        n_epochs=10,
        learning_rate=hp["learning_rate"],
        clip_range=hp["clip_range"],
        target_kl=hp["target_kl"] or None,
        gamma=0.99,
        gae_lambda=0.95,
        ent_coef=0.0,
        seed=seed,
        verbose=0,
        device="cpu",
        policy_kwargs=dict(log_std_init=-1.0),
    )  # start near the zero action (std 0.37, not 1); BC sets its own log_std
    formats = ["csv"] if out_dir is not None else []
    try:
        import tensorboard  # noqa: F401

        formats += ["tensorboard"] if out_dir is not None else []
    except ImportError:
        pass
    formats += ["stdout"] if verbose else []
    # SB3's default logger makes a /tmp/SB3-<date> folder per run even when silent: log where asked only
    model.set_logger(configure(str(out_dir) if out_dir is not None else None, formats))
    curves = _callbacks(out_dir, val_scenes, eval_every, seed, venv, t_run, "bc+ppo" if use_bc else "ppo")
    bc: Optional[Dict[str, Any]] = None
    if use_bc:
        import bc_warmstart

        bc = bc_warmstart.warm_start(
            model,
            venv,
            train_scenes,
            min(bc_minutes, (t_end - time.perf_counter()) / 60.0),
            env_kwargs=train_kwargs,
            seed=seed,
            log=lambda row: _append_csv(out_dir, "bc.csv", row),
            **(bc_options or {}),
        )
        curves.init_callback(model)
        bc["eval"] = curves.evaluate("bc")
        model.logger.dump(0)
    callbacks: List[Any] = [curves]
    if hp["critic_warmup"] > 0:
        callbacks.append(_critic_warmup(int(hp["critic_warmup"])))
    if minutes is not None:
        callbacks.append(_deadline(t_end))
    t0 = time.perf_counter()
    if steps > 0 and time.perf_counter() < t_end:
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
        "run_wall_s": time.perf_counter() - t_run,
        "steps_per_s": model.num_timesteps / max(wall, 1e-9),
        "train_scenes": len(train_scenes),
        "eval_scenes": len(val_scenes),
        "ppo": hp,
        "bc": bc,
        "final_eval": final,
        "evals": len(curves.eval_rows),
        "rollouts": len(curves.train_rows),
    }


PPO_DEFAULTS: Dict[str, Any] = dict(learning_rate=3e-4, clip_range=0.2, critic_warmup=0, target_kl=0.0)
"""PPO from scratch (SB3's defaults)."""
PPO_AFTER_BC: Dict[str, Any] = dict(learning_rate=1e-4, clip_range=0.1, critic_warmup=4096, target_kl=0.02)
"""PPO after the BC warm start: smaller steps, updates stopped past a KL of 1.5 * 0.02 (the cloned policy's std is
0.135, so small mean changes are large KLs: 0.2-1.0 per update with the defaults), and the critic fitted alone on the
first 4096 steps (see examples/README.md)."""


def _critic_warmup(n: int) -> Any:
    import bc_warmstart
    from stable_baselines3.common.callbacks import BaseCallback

    class CriticWarmup(BaseCallback):
        """The actor (and ``log_std``) frozen for the first ``n`` PPO steps: only the critic learns."""

        def _on_training_start(self) -> None:
            bc_warmstart.freeze_actor(self.model.policy, True)

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            # the update after this rollout trains the actor once n steps are collected
            if self.num_timesteps > n:
                bc_warmstart.freeze_actor(self.model.policy, False)

        def _on_training_end(self) -> None:
            bc_warmstart.freeze_actor(self.model.policy, False)

    return CriticWarmup()


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
    ap.add_argument(
        "--bc-minutes", type=float, default=10.0, help="behaviour-cloning warm start, wall minutes inside --minutes (0: none)"
    )
    ap.add_argument("--bc-epochs", type=int, default=None, help="BC epochs per fit")
    ap.add_argument("--bc-log-std", type=float, default=None, help="log_std PPO explores with after BC")
    ap.add_argument("--learning-rate", type=float, default=None, help="PPO learning rate")
    ap.add_argument("--clip-range", type=float, default=None, help="PPO clip range")
    ap.add_argument("--critic-warmup", type=int, default=None, help="first PPO steps with the actor frozen")
    ap.add_argument("--target-kl", type=float, default=None, help="PPO's early stop of an update (0: none)")
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
        bc_minutes=args.bc_minutes,
        bc_options={k: v for k, v in (("epochs", args.bc_epochs), ("log_std", args.bc_log_std)) if v is not None},
        learning_rate=args.learning_rate,
        clip_range=args.clip_range,
        critic_warmup=args.critic_warmup,
        target_kl=args.target_kl,
    )
    print(json.dumps(res, default=float))


if __name__ == "__main__":
    main()
