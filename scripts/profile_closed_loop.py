"""Where one env's step time goes with learned agents (``agents="mad"``): a cProfile split by stage.

    python scripts/profile_closed_loop.py [--steps 48] [--threads 1] [--weights auto|random] [--clock cpu|wall]

Drives the WOMD log's SDC with a constant action for ``--steps`` steps after a
warm-up step (model load, first prediction) and prints, per stage, the
cumulative seconds of the functions that implement it (cProfile; ``--clock
cpu`` counts this process's CPU seconds, which other processes' load does not
inflate, ``wall`` counts elapsed seconds) and its share of the total:

* ``history render``: pose frames of the history (:meth:`LearnedAgents._history_frames`);
* ``ego-motion video``: :meth:`EgoMotionRenderer.render`;
* ``VAE encode`` / ``transformer`` / ``VAE decode``: the predictor service's sampler call;
* ``parse``: generated frames back to agent states (:meth:`LearnedAgents._parse`);
* ``fallback policy``: the scripted policy of agents not learned-driven;
* ``env (rest)``: everything else in ``env.step`` (dynamics, observation, metrics).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

import numpy as np

from mad_sim.data.root import data_root

DATA = data_root() / "womd" / "womd_scenario_input.tfrecord"

STAGES = {
    "history render": [("agents/learned.py", "_history_frames")],
    "ego-motion video": [("ego_motion.py", "render")],
    "VAE encode": [("backbone.py", "encode_video")],
    "transformer": [("sampling.py", "denoise")],
    "VAE decode": [("backbone.py", "decode_latents")],
    "parse": [("agents/learned.py", "_parse")],
    "fallback policy": [("traffic.py", "advance"), ("idm.py", "advance")],
}


def cumulative(stats: pstats.Stats, file_suffix: str, func: str) -> float:
    """Cumulative seconds of every profiled function ``func`` defined in a file ending with ``file_suffix``."""
    total = 0.0
    for (path, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if name == func and path.endswith(file_suffix):
            total += ct
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--weights", default="auto")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    ap.add_argument("--top", type=int, default=0, help="also print the top N functions by cumulative time")
    args = ap.parse_args()
    import gymnasium as gym
    import torch

    import mad_sim  # noqa: F401

    torch.set_num_threads(args.threads)
    env = gym.make(
        "MADDrive-v0",
        agents="mad",
        scenario=str(DATA),
        terminate_on_collision=False,
        terminate_on_offroad=False,
        agent_options=dict(weights=args.weights, threads=args.threads),
    )
    env.reset(seed=0)
    act = np.zeros(2, np.float32)
    env.step(act)
    policy = env.unwrapped.agent_policy
    warm_predictions = policy.stats.predictions
    timer = time.process_time if args.clock == "cpu" else time.perf_counter
    prof = cProfile.Profile(timer)
    w0, c0 = time.perf_counter(), time.process_time()
    prof.enable()
    for _ in range(args.steps):
        _, _, term, trunc, _ = env.step(act)
        if term or trunc:
            env.reset()
    prof.disable()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    stats = pstats.Stats(prof)
    total = cumulative(stats, "drive.py", "step")
    load = os.getloadavg()
    sim = args.steps * 0.1
    print(
        f"agents=mad, WOMD {DATA.name}, {args.steps} steps ({sim:.1f} sim s), "
        f"{policy.stats.predictions - warm_predictions} predictions, "
        f"torch threads {args.threads}, weights {policy.service.weights_info or args.weights}"
    )
    print(
        f"wall {wall:.2f} s ({sim / wall:.2f} sim s / wall s), CPU {cpu:.2f} s ({sim / cpu:.2f} sim s / CPU s), "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print(f"split by stage ({args.clock} seconds, cProfile; total env.step {total:.2f} s):")
    accounted = 0.0
    for stage, funcs in STAGES.items():
        sec = sum(cumulative(stats, f, n) for f, n in funcs)
        accounted += sec
        print(f"  {stage:18s} {sec:7.2f} s  {100 * sec / total:5.1f} %  {1000 * sec / args.steps:7.1f} ms/step")
    rest = total - accounted
    print(f"  {'env (rest)':18s} {rest:7.2f} s  {100 * rest / total:5.1f} %  {1000 * rest / args.steps:7.1f} ms/step")
    if args.top:
        stats.sort_stats("cumulative").print_stats(args.top)
    env.close()


if __name__ == "__main__":
    main()
