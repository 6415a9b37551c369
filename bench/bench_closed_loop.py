"""Simulated seconds per wall second: one env with learned agents (tiny, 128x128), 4 envs batched, vs log agents.

    python bench/bench_closed_loop.py [--steps 64] [--threads 1] [--weights auto|random]

Each configuration drives the WOMD log's SDC with a constant action for
``--steps`` steps (0.1 s each) after a warm-up episode, on the same machine
in the same run; figures are printed with their ratio to log agents.
Target: >= 1.0 simulated s / wall s for one env with learned agents.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "womd" / "womd_scenario_input.tfrecord"


def run(make, num_envs: int, steps: int) -> float:
    """Simulated seconds per wall second over ``steps`` vector steps of ``num_envs`` envs."""
    env = make()
    env.reset(seed=list(range(num_envs)) if num_envs > 1 else 0)
    act = np.zeros((num_envs, 2), np.float32) if num_envs > 1 else np.zeros(2, np.float32)
    env.step(act)  # warm-up (model load, first prediction)
    start = time.perf_counter()
    done_steps = 0
    while done_steps < steps:
        out = env.step(act)
        done_steps += 1
        if num_envs == 1 and (out[2] or out[3]):
            env.reset()
    wall = time.perf_counter() - start
    env.close()
    return num_envs * steps * 0.1 / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--weights", default="auto")
    ap.add_argument("--chunk", type=int, default=16)
    args = ap.parse_args()
    import gymnasium as gym
    import torch

    import mad_sim  # noqa: F401
    from mad_sim.model import learned_agents as la
    from mad_sim.model.predictor_service import make_mad_vector_env

    torch.set_num_threads(args.threads)
    la.configure(weights=args.weights, threads=args.threads, chunk=args.chunk)
    kw = dict(scenario=str(DATA), terminate_on_collision=False, terminate_on_offroad=False)
    results = {}
    results["log, 1 env"] = run(lambda: gym.make("MADDrive-v0", agents="log", **kw), 1, args.steps)
    results["mad, 1 env"] = run(lambda: gym.make("MADDrive-v0", agents="mad", **kw), 1, args.steps)
    results["log, 4 envs (SyncVectorEnv)"] = run(
        lambda: gym.vector.SyncVectorEnv([lambda: gym.make("MADDrive-v0", agents="log", **kw)] * 4), 4, args.steps)
    results["mad, 4 envs (MADVectorEnv, batched)"] = run(lambda: make_mad_vector_env(4, **kw), 4, args.steps)
    base = results["log, 1 env"]
    svc = la.default_settings()
    print(f"closed loop, WOMD {DATA.name}, {args.steps} steps, torch threads {args.threads}, chunk {svc.chunk}, "
          f"{svc.future_frames} frames at {svc.size}x{svc.size}, {svc.sampler_steps} sampler steps, weights {args.weights}")
    for name, v in results.items():
        print(f"  {name:38s} {v:8.2f} sim s / wall s   ({v / base:.4f} x log agents)")
    one = results["mad, 1 env"]
    print(f"  target >= 1.0 sim s / wall s for one env with learned agents: {'MET' if one >= 1.0 else 'NOT MET'} ({one:.2f})")


if __name__ == "__main__":
    main()
