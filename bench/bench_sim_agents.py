"""Rollouts per second per agent policy, against log replay in the same run, and the scoring cost.

    OMP_NUM_THREADS=1 python bench/bench_sim_agents.py [--policies log,constant_velocity,idm] [--rollouts 4]

Each policy simulates ``--rollouts`` rollouts of 8 s of the shared WOMD scenario with the ego on its log
(deterministic policies are simulated once and repeated: the figure is what the benchmark pays);
``scoring`` is the WOSAC features + likelihoods of those rollouts.  Prints seconds and the ratio to log replay.
"""

from __future__ import annotations

import argparse
import time

from mad_sim.eval.sim_agents.rollouts import RolloutSettings, simulate
from mad_sim.eval.sim_agents.scoring import score_rollouts

from mad_sim.data import load_scenario
from mad_sim.data.root import data_root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policies", default="log,constant_velocity,idm")
    ap.add_argument("--rollouts", type=int, default=4)
    args = ap.parse_args()
    from mad_sim.model.cpu_paths import describe  # the CPU fast paths this machine gets

    print(f"machine: {describe()}", flush=True)
    scenario = load_scenario(data_root() / "womd" / "womd_scenario_input.tfrecord")
    settings = RolloutSettings(rollouts=args.rollouts)
    rates = {}
    for name in ["log"] + [p for p in args.policies.split(",") if p != "log"]:
        t = time.perf_counter()
        ro = simulate(scenario, name, settings)
        sim_s = time.perf_counter() - t
        t = time.perf_counter()
        score_rollouts(scenario, ro)
        score_s = time.perf_counter() - t
        rates[name] = args.rollouts / sim_s
        print(
            f"{name:18s} {rates[name]:8.1f} rollouts/s  x{rates[name] / rates['log']:.3f} of log replay  "
            f"scoring {score_s:.2f} s ({'deterministic' if ro.info['deterministic'] else 'stochastic'})"
        )


if __name__ == "__main__":
    main()
