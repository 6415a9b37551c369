"""10,000-step soak with learned agents (episodes reset as they end): RSS at start and end.

    python scripts/soak_memory.py [--steps 10000] [--weights auto|random] [--size 128] [--actions episode|random]

Actions: ``episode`` (default) draws one bicycle action per episode, uniform in
[-0.3, 0.3]^2, and holds it (the agents re-predict once per chunk, as under a
smooth driver); ``random`` draws a new one every step (the intended ego path
then changes by more than the tolerance almost every step, so the agents
re-predict every ``min_interval`` steps: the worst case, about 8x slower).

Prints the resident set size (MB, from /proc/self/status VmRSS; peak VmHWM)
every ``--every`` steps; a flat RSS after the first episodes means no leak.
Stopped early (Ctrl-C or SIGTERM), it still prints the summary line with the
number of steps actually run.
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

import numpy as np

from mad_sim.data.root import data_root

DATA = data_root() / "womd" / "womd_scenario_input.tfrecord"


def rss_mb() -> tuple[float, float]:
    vals = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            k, v = line.split(":")
            vals[k] = float(v.split()[0]) / 1024
    return vals.get("VmRSS", float("nan")), vals.get("VmHWM", float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--weights", default="auto")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--actions", choices=["episode", "random"], default="episode")
    args = ap.parse_args()
    import gymnasium as gym
    import torch

    import mad_sim  # noqa: F401

    torch.set_num_threads(args.threads)
    env = gym.make(
        "MADDrive-v0",
        agents="mad",
        scenario=str(DATA),
        agent_options=dict(weights=args.weights, size=args.size, threads=args.threads),
    )
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    start_rss = None
    episodes, t0, step = 1, time.perf_counter(), 0

    def stop(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    policy = env.unwrapped.agent_policy
    print(
        f"soak: agents=mad, {DATA.name}, up to {args.steps} steps, {args.size}x{args.size}, torch threads "
        f"{args.threads}, weights {policy.service.weights_info or args.weights}; RSS at start {rss_mb()[0]:.1f} MB",
        flush=True,
    )
    action = rng.uniform(-0.3, 0.3, 2).astype(np.float32)
    try:
        for step in range(1, args.steps + 1):
            if args.actions == "random":
                action = rng.uniform(-0.3, 0.3, 2).astype(np.float32)
            _, _, term, trunc, _ = env.step(action)
            if term or trunc:
                env.reset()
                episodes += 1
                action = rng.uniform(-0.3, 0.3, 2).astype(np.float32)
            if step == 100:
                start_rss = rss_mb()
                print(
                    f"step {step:6d}: RSS {start_rss[0]:8.1f} MB (start, after warm-up)  peak {start_rss[1]:8.1f} MB", flush=True
                )
            if step % args.every == 0:
                r = rss_mb()
                print(
                    f"step {step:6d}: RSS {r[0]:8.1f} MB  peak {r[1]:8.1f} MB  episodes {episodes}  "
                    f"predictions {policy.service.stats.requests}  "
                    f"{step * 0.1 / (time.perf_counter() - t0):.2f} sim s / wall s",
                    flush=True,
                )
    except KeyboardInterrupt:
        step -= 1
        print(f"stopped after {step} of {args.steps} steps", flush=True)
    end = rss_mb()
    first = start_rss[0] if start_rss is not None else float("nan")
    print(
        f"RSS start {first:.1f} MB, end {end[0]:.1f} MB (delta {end[0] - first:+.1f} MB), "
        f"peak {end[1]:.1f} MB over {step} steps / {episodes} episodes, "
        f"{(time.perf_counter() - t0) / 60:.1f} min",
        flush=True,
    )


if __name__ == "__main__":
    main()
