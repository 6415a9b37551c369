"""Behaviour-cloning warm start for the PPO example (:mod:`train_ppo`, beside this file).

Before PPO, the policy's actor is fitted by supervised regression to the
env's ``expert`` (the logged ego path tracked by the bicycle controller,
exactly :func:`rl_eval.make_policy` ``("expert")``: the actions it returns are
the env's bicycle actions, ``Box[-1, 1]^2`` = (acceleration / ``max_accel``,
curvature / ``max_curvature``)), on the training scenes only:

1. round 0: the expert drives; the env is stepped with its action plus
   Gaussian noise (``noise``, in action units: DART, so the data holds
   recoveries from small errors), the clean expert action is the label;
2. the observation statistics of ``VecNormalize`` (mean, variance, count) are
   set from every observation collected so far, so the actor is fitted on
   exactly the normalised observation PPO will see; the actor
   (``mlp_extractor.policy_net`` + ``action_net``) is fitted by mean squared
   error of its mean action to the labels (Adam, ``epochs`` passes);
3. DAgger rounds while the time budget lasts: the fitted policy drives (its
   deterministic action; the expert's with probability ``0.5 ** round``),
   the expert labels every visited state, the data are aggregated, and 2 is repeated.

Then ``log_std`` is set to ``log_std`` (the Gaussian's spread PPO explores with).
The critic is left alone here (PPO fits it; :func:`freeze_actor` lets the
caller train it alone first).  Observations are the flat float32 vectors of
``rl_eval.ENV_KWARGS`` (length ``13 + 12 K + 12 P``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import rl_eval

from mad_sim.errors import ConfigError

VAR_FLOOR = 1e-4
"""Floor of the per-feature observation variance set from the BC data (flat units^2): a feature
constant in the expert's data (std 0) would otherwise be scaled by 1e4 as soon as PPO visits
a state where it differs."""

MIN_COLLECT_S = 15.0
"""Seconds of collection a DAgger round needs at least (after its fit's reserve) to be started."""


def collect(
    env: Any,
    scenes: Sequence,
    n_samples: int,
    rng: np.random.Generator,
    learner: Optional[Callable[[np.ndarray], np.ndarray]] = None,
    beta: float = 1.0,
    noise: float = 0.0,
    deadline: float = float("inf"),
) -> tuple[np.ndarray, np.ndarray, int]:
    """Expert-labelled states ``(obs [N, D] float32, actions [N, 2] float32, episodes)``.

    Episodes on ``scenes`` in a shuffled order until ``n_samples`` steps or
    ``deadline`` (``time.perf_counter()``); the env is stepped with the expert
    action (probability ``beta``, else ``learner(obs)``) plus N(0, ``noise``^2)
    clipped to the action space; the label is always the clean expert action.
    """
    expert = rl_eval.make_policy("expert", env.unwrapped)
    obs_l: List[np.ndarray] = []
    act_l: List[np.ndarray] = []
    episodes = 0
    order = rng.permutation(len(scenes))
    while len(obs_l) < n_samples and time.perf_counter() < deadline:
        sc = scenes[int(order[episodes % len(order)])]
        obs, _ = env.reset(seed=int(rng.integers(2**31)), options={"scenario": sc})
        expert.reset()  # type: ignore[attr-defined]
        episodes += 1
        while len(obs_l) < n_samples:
            a_exp = np.asarray(expert(obs, env.unwrapped), np.float32)
            obs_l.append(np.asarray(obs, np.float32))
            act_l.append(a_exp)
            a = a_exp if learner is None or rng.random() < beta else np.asarray(learner(obs), np.float32)
            if noise > 0:
                a = a + rng.normal(0.0, noise, a.shape).astype(np.float32)
            obs, _, term, trunc, _ = env.step(np.clip(a, -1.0, 1.0).astype(np.float32))
            if term or trunc:
                break
    if not obs_l:
        return np.zeros((0, *env.observation_space.shape), np.float32), np.zeros((0, 2), np.float32), episodes
    return np.stack(obs_l), np.stack(act_l), episodes


def set_obs_stats(venv: Any, obs: np.ndarray) -> None:
    """``VecNormalize``'s observation mean / variance / count from ``obs`` ``[N, D]`` (variance floored at :data:`VAR_FLOOR`)."""
    x = obs.astype(np.float64)
    venv.obs_rms.mean = x.mean(0)
    venv.obs_rms.var = np.maximum(x.var(0), VAR_FLOOR)
    venv.obs_rms.count = float(len(obs))


def actor_parameters(policy: Any) -> List[Any]:
    """The parameters of the actor's mean: ``mlp_extractor.policy_net`` and ``action_net`` (not ``log_std``)."""
    return list(policy.mlp_extractor.policy_net.parameters()) + list(policy.action_net.parameters())


def freeze_actor(policy: Any, frozen: bool) -> None:
    """Stop (``frozen``) or restart gradient flow into the actor and ``log_std`` (a critic-only PPO warm-up)."""
    for p in actor_parameters(policy) + [policy.log_std]:
        p.requires_grad_(not frozen)


def fit(
    policy: Any, obs: np.ndarray, actions: np.ndarray, epochs: int, lr: float, batch_size: int, rng: np.random.Generator
) -> float:
    """Mean-squared-error regression of the actor's mean action on normalised ``obs`` to ``actions``; last epoch's MSE."""
    import torch

    params = actor_parameters(policy)
    opt = torch.optim.Adam(params, lr=lr)
    x = torch.as_tensor(obs, dtype=torch.float32)
    y = torch.as_tensor(actions, dtype=torch.float32)
    policy.set_training_mode(True)
    last = float("nan")
    for _ in range(epochs):
        perm = torch.as_tensor(rng.permutation(len(x)))
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            mean = policy.get_distribution(x[idx]).distribution.mean
            loss = torch.mean((mean - y[idx]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        last = total / len(x)
    policy.set_training_mode(False)
    return last


def mse(policy: Any, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Per-dimension mean squared error ``[2]`` of the actor's mean action (clipped to [-1, 1], as ``predict``)
    on normalised ``obs``."""
    import torch

    with torch.no_grad():
        mean = policy.get_distribution(torch.as_tensor(obs, dtype=torch.float32)).distribution.mean.numpy()
    return np.mean((np.clip(mean, -1, 1) - actions) ** 2, axis=0)


def warm_start(
    model: Any,
    venv: Any,
    scenes: Sequence,
    minutes: float,
    env_kwargs: Optional[Dict[str, Any]] = None,
    first_samples: int = 20_000,
    round_samples: int = 8_000,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 256,
    noise: float = 0.1,
    log_std: float = -2.0,
    holdout: float = 0.0,
    max_rounds: Optional[int] = None,
    seed: int = 0,
    log: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> Dict[str, Any]:
    """Fit ``model.policy``'s actor to the expert on ``scenes`` for ``minutes`` of wall time; returns the figures.

    ``venv``: the model's ``VecNormalize`` (its observation statistics are set
    from the data) or a plain VecEnv (no normalisation).  ``holdout``: share of
    ``scenes`` kept out of fitting (drawn with ``seed``; each round collects
    ``holdout`` of its samples there, the same way, and reports the actor's MSE
    on them per action dimension; their ids are returned as ``holdout_scenes``).
    ``max_rounds``: stop after that many rounds (round 0 included) even with time left.
    ``log(row)`` is called once per round.
    """
    import gymnasium as gym
    import torch

    import mad_sim  # noqa: F401

    t0 = time.perf_counter()
    t_end = t0 + 60.0 * minutes
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(scenes))
    n_held = int(round(holdout * len(scenes))) if len(scenes) > 1 else 0
    held_scenes = [scenes[int(i)] for i in perm[:n_held]]
    fit_scenes = [scenes[int(i)] for i in perm[n_held:]]
    env = gym.make("MADDrive-v0", **(env_kwargs or rl_eval.ENV_KWARGS))
    normalise = getattr(venv, "normalize_obs", None) if hasattr(venv, "obs_rms") else None
    norm = normalise if normalise is not None else (lambda o: o)
    policy = model.policy

    def learner(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.as_tensor(norm(obs[None]), dtype=torch.float32)
            return np.clip(policy.get_distribution(x).distribution.mean.numpy()[0], -1, 1)

    train_obs: List[np.ndarray] = []
    train_act: List[np.ndarray] = []
    held_obs: List[np.ndarray] = []
    held_act: List[np.ndarray] = []
    rounds: List[Dict[str, Any]] = []
    fit_s = 0.0
    r = 0
    while True:
        t = time.perf_counter()
        # leave time for this round's fit (about the last fit's time, scaled by the data's growth)
        reserve = 1.5 * fit_s * (1 + round_samples / max(sum(len(o) for o in train_obs), 1))
        n = first_samples if r == 0 else round_samples
        beta = 0.5**r
        deadline = t_end - reserve if r else t0 + 30.0 * minutes  # round 0 (expert data) gets half the budget at most
        eps = 0
        for part, part_scenes, n_part in ((train_obs, fit_scenes, n * (1 - holdout)), (held_obs, held_scenes, n * holdout)):
            if not part_scenes or n_part < 1:
                continue
            obs, act, n_eps = collect(
                env,
                part_scenes,
                int(n_part),
                rng,
                None if r == 0 else learner,
                beta=beta,
                noise=noise if r == 0 else 0.0,
                deadline=deadline,
            )
            part.append(obs)
            eps += n_eps
            (train_act if part is train_obs else held_act).append(act)
        collect_s = time.perf_counter() - t
        t = time.perf_counter()
        all_obs = np.concatenate(train_obs)
        all_act = np.concatenate(train_act)
        if len(all_obs) == 0:
            raise ConfigError(f"no BC samples in {minutes:.2f} min: give the warm start more time")
        if normalise is not None:
            set_obs_stats(venv, all_obs)
        train_mse = fit(policy, norm(all_obs), all_act, epochs, lr, batch_size, rng)
        fit_s = time.perf_counter() - t
        ho = np.concatenate(held_obs) if held_obs else np.zeros((0, all_obs.shape[1]), np.float32)
        ho_mse = mse(policy, norm(ho), np.concatenate(held_act)) if len(ho) else np.full(2, np.nan)
        row = {
            "round": r,
            "beta": beta,
            "samples": int(len(all_obs)),
            "episodes": eps,
            "collect_s": round(collect_s, 2),
            "fit_s": round(fit_s, 2),
            "train_mse": train_mse,
            "holdout_mse_accel": float(ho_mse[0]),
            "holdout_mse_curvature": float(ho_mse[1]),
            "wall_s": round(time.perf_counter() - t0, 2),
        }
        rounds.append(row)
        if log is not None:
            log(row)
        r += 1
        if max_rounds is not None and r >= max_rounds:
            break
        if time.perf_counter() + 1.5 * fit_s * (1 + round_samples / len(all_obs)) + MIN_COLLECT_S > t_end:
            break
    env.close()
    with torch.no_grad():
        policy.log_std.fill_(log_std)
    return {
        "rounds": len(rounds),
        "samples": rounds[-1]["samples"],
        "wall_s": time.perf_counter() - t0,
        "holdout_mse": [rounds[-1]["holdout_mse_accel"], rounds[-1]["holdout_mse_curvature"]],
        "log_std": log_std,
        "holdout_scenes": [sc.scenario_id for sc in held_scenes],
    }
