"""10,000-step soak with learned agents (episodes reset as they end): RSS at start and end.

    python bench/soak_memory.py [--steps 10000] [--weights auto|random] [--size 64]

Prints the resident set size (MB, from /proc/self/status VmRSS; peak VmHWM)
every ``--every`` steps; a flat RSS after the first episodes means no leak.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "womd" / "womd_scenario_input.tfrecord"


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
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--weights", default="auto")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import gymnasium as gym
    import torch

    import mad_sim  # noqa: F401
    from mad_sim.model import learned_agents as la

    torch.set_num_threads(args.threads)
    la.configure(weights=args.weights, size=args.size, threads=args.threads)
    env = gym.make("MADDrive-v0", agents="mad", scenario=str(DATA))
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    start_rss = None
    episodes, t0 = 1, time.perf_counter()
    for step in range(1, args.steps + 1):
        _, _, term, trunc, _ = env.step(rng.uniform(-0.3, 0.3, 2).astype(np.float32))
        if term or trunc:
            env.reset()
            episodes += 1
        if step == 100:
            start_rss = rss_mb()
            print(f"step {step:6d}: RSS {start_rss[0]:8.1f} MB (start, after warm-up)  peak {start_rss[1]:8.1f} MB", flush=True)
        if step % args.every == 0:
            r = rss_mb()
            print(f"step {step:6d}: RSS {r[0]:8.1f} MB  peak {r[1]:8.1f} MB  episodes {episodes}  "
                  f"{step * 0.1 / (time.perf_counter() - t0):.2f} sim s / wall s", flush=True)
    end = rss_mb()
    print(f"RSS start {start_rss[0]:.1f} MB, end {end[0]:.1f} MB (delta {end[0] - start_rss[0]:+.1f} MB), "
          f"peak {end[1]:.1f} MB over {args.steps} steps / {episodes} episodes")


if __name__ == "__main__":
    main()
