"""Simulated seconds per wall second: one env with learned agents (tiny, 128x128), 4 envs batched, vs log agents.

    python bench/bench_closed_loop.py [--steps 64] [--threads 1] [--weights auto|random] [--preset tiny]

``--preset NAME --weights random`` times a representation candidate's architecture (token count, VAE
decode, parse) before it has trained weights; the parser then finds noise, so only the time is meaningful.

Each configuration drives the WOMD log's SDC with a constant action for
``--steps`` steps (0.1 s each) after a warm-up step, on the same machine in
the same run; figures are printed with their ratio to log agents, both per
wall second and per CPU second of this process (the CPU figure is what the
code costs; the wall figure also pays for other processes' load, whose
average is printed).  Configurations with learned agents:

* ``mad, 1 env, unmerged LoRA``: the motion adapter applied as a separate
  low-rank product in every layer (the state before the merge; same frames);
* ``mad, 1 env, float32`` / ``bfloat16``: the LoRA merged into the base weights, each precision asked
  for (bfloat16 is CPU autocast, not bit-identical: faster where the CPU has native bf16, much slower
  where it emulates it);
* ``mad, 1 env (precision auto)``: the default, the precision this machine gets (the header's
  ``machine:`` line says which and why: :mod:`mad_sim.model.cpu_paths`);
* ``mad, 4 envs``: :class:`~mad_sim.envs.vector.MADVectorEnv` from ``gymnasium.make_vec``, one batched
  sampler call per chunk.

Target: >= 1.0 simulated s / wall s for one env with learned agents.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from mad_sim.data.root import data_root

DATA = data_root() / "womd" / "womd_scenario_input.tfrecord"


def run(make, num_envs: int, steps: int) -> tuple[float, float]:
    """Simulated seconds per wall second and per CPU second over ``steps`` vector steps of ``num_envs`` envs."""
    env = make()
    env.reset(seed=list(range(num_envs)) if num_envs > 1 else 0)
    act = np.zeros((num_envs, 2), np.float32) if num_envs > 1 else np.zeros(2, np.float32)
    env.step(act)  # warm-up (model load, first prediction)
    start, cpu = time.perf_counter(), time.process_time()
    done_steps = 0
    while done_steps < steps:
        out = env.step(act)
        done_steps += 1
        if num_envs == 1 and (out[2] or out[3]):
            env.reset()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    env.close()
    sim = num_envs * steps * 0.1
    return sim / wall, sim / cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--weights", default="auto")
    ap.add_argument("--preset", default="tiny", help="learned agents' model preset (candidates: --weights random)")
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--skip", default="", help="comma-separated configurations to skip: unmerged,bf16,vector")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    import gymnasium as gym
    import torch

    import mad_sim  # noqa: F401
    from mad_sim.model.agents.settings import LearnedAgentSettings
    from mad_sim.model.cpu_paths import describe, resolve_precision

    torch.set_num_threads(args.threads)
    opts = dict(preset=args.preset, weights=args.weights, threads=args.threads, chunk=args.chunk)
    kw = dict(scenario=str(DATA), terminate_on_collision=False, terminate_on_offroad=False)

    def mad(**extra):
        return lambda: gym.make("MADDrive-v0", agents="mad", agent_options={**opts, **extra}, **kw)

    auto = resolve_precision("auto")[0]
    results = {}
    load0 = os.getloadavg()[0]
    results["log, 1 env"] = run(lambda: gym.make("MADDrive-v0", agents="log", **kw), 1, args.steps)
    if "unmerged" not in skip:
        results["mad, 1 env, unmerged LoRA (before)"] = run(mad(merge_lora=False, precision="float32"), 1, args.steps)
    results["mad, 1 env, float32"] = run(mad(precision="float32"), 1, args.steps)
    if "bf16" not in skip:
        results["mad, 1 env, bfloat16"] = run(mad(precision="bfloat16"), 1, args.steps)
    results[f"mad, 1 env (precision auto: {auto})"] = run(mad(), 1, args.steps)
    if "vector" not in skip:
        results["log, 4 envs (SyncVectorEnv)"] = run(
            lambda: gym.vector.SyncVectorEnv([lambda: gym.make("MADDrive-v0", agents="log", **kw)] * 4), 4, args.steps
        )
        results["mad, 4 envs (MADVectorEnv, batched)"] = run(
            lambda: gym.make_vec(
                "MADDrive-v0", num_envs=4, vectorization_mode="vector_entry_point", agents="mad", agent_options=opts, **kw
            ),
            4,
            args.steps,
        )
    base_wall, base_cpu = results["log, 1 env"]
    svc = LearnedAgentSettings(**opts)
    print(f"machine: {describe()}")
    print(
        f"closed loop, WOMD {DATA.name}, {args.steps} steps, torch threads {args.threads}, chunk {svc.chunk}, "
        f"{svc.future_frames} frames at {svc.size}x{svc.size}, {svc.sampler_steps or 'preset'} sampler steps, "
        f"preset {args.preset}, weights {args.weights}"
    )
    print(f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} CPUs)")
    print(f"  {'configuration':38s} {'sim s/wall s':>12s} {'x log':>8s} {'sim s/CPU s':>12s} {'x log':>8s}")
    for name, (wall, cpu) in results.items():
        print(f"  {name:38s} {wall:12.2f} {wall / base_wall:8.4f} {cpu:12.2f} {cpu / base_cpu:8.4f}")
    one, one_cpu = results[f"mad, 1 env (precision auto: {auto})"]
    print(
        f"  target >= 1.0 sim s / wall s for one env with learned agents: {'MET' if one >= 1.0 else 'NOT MET'} "
        f"({one:.2f}; {one_cpu:.2f} per CPU second)"
    )


if __name__ == "__main__":
    main()
