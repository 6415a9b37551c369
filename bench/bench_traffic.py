"""Scripted-traffic cost per simulated step, IDM against log replay measured in the same run.

    python bench/bench_traffic.py [--steps 80] [--repeat 3]

For each scene (the real WOMD log with 257 tracks; a procedural signalised
intersection) the world is stepped env-style: every ``horizon`` steps the
policy is asked for the next ``horizon`` states of all agents but the SDC
(which holds still), and they are written into the state one step at a time.  Prints CPU milliseconds per
step (this process only, best of
``--repeat``), path (re)builds per step, and the IDM / LogReplay ratio.
Then the same scene through the env (``gym.make("MADDrive-v0", agents=...)``,
zero ego action, no termination): env steps per CPU second with IDM agents
against log agents in the same run (best of ``--repeat`` runs of ``--steps`` steps).
No assertion on time: figures only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from mad_sim.data.root import data_root

REPO = Path(__file__).resolve().parents[1]
WOMD = data_root() / "womd" / "womd_scenario_input.tfrecord"


def _run(scenario, make_policy, steps: int, horizon: int) -> tuple[float, object]:
    from mad_sim.world.state import WorldState

    st = WorldState.from_scenario(scenario)
    steps = min(steps, st.remaining_log_steps)
    ctrl = np.ones(st.num_agents, bool)
    ctrl[st.ego_index] = False
    policy = make_policy()
    cpu = time.process_time()
    out, col = None, 0
    for _ in range(steps):
        if out is None or col >= out.num_steps:  # like the env's AgentStream: ask every `horizon` steps
            out, col = policy.advance(st, ctrl, min(horizon, st.remaining_log_steps)), 0
        t = st.timestep
        xyz = out.xyz[:, col].copy()
        xyz[~ctrl] = st.sim.xyz[~ctrl, t]
        st.write_step(t + 1, xyz, out.heading[:, col], out.velocity[:, col], out.valid[:, col] | ~ctrl)
        st.timestep = t + 1
        col += 1
    return (time.process_time() - cpu) * 1000.0 / steps, policy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from mad_sim.model.cpu_paths import describe  # the CPU fast paths this machine gets

    print(f"machine: {describe()}", flush=True)
    from mad_sim.data import load_scenario
    from mad_sim.data.procedural import generate_scenario
    from mad_sim.world.idm import IDM
    from mad_sim.world.traffic import ConstantVelocity, LogReplay

    scenes = []
    if WOMD.is_file():
        scenes.append(("WOMD log, 257 tracks", load_scenario(WOMD)))
    else:
        print(f"missing {WOMD}: real-log rows skipped", file=sys.stderr)
    scenes.append(("procedural intersection", generate_scenario(np.random.default_rng(1), kind="intersection")))
    policies = [
        ("LogReplay", LogReplay, 1),
        ("ConstantVelocity", ConstantVelocity, 1),
        ("IDM horizon 1", IDM, 1),
        ("IDM horizon 10", IDM, 10),
    ]
    print(f"{'scene':26s} {'policy':18s} {'agents':>6s} {'ms/step (cpu)':>13s} {'builds/step':>11s} {'vs log':>8s}")
    for name, sc in scenes:
        base = None
        for label, make, horizon in policies:
            best, policy = min((_run(sc, make, args.steps, horizon) for _ in range(args.repeat)), key=lambda r: r[0])
            base = best if base is None else base
            builds = getattr(policy, "path_builds", None)
            steps = min(args.steps, sc.num_steps - 1 - sc.current_index)
            b = "-" if builds is None else f"{builds / steps:.2f}"
            print(f"{name:26s} {label:18s} {sc.num_tracks:6d} {best:13.3f} {b:>11s} {best / base:7.1f}x")
    env_rows(args.steps, args.repeat)


def _env_rate(path: Path, agents: str, steps: int) -> float:
    """Env steps per CPU second on ``path`` with ``agents`` (zero ego action, episodes restarted at the log's end)."""
    import gymnasium as gym

    import mad_sim  # noqa: F401

    env = gym.make(
        "MADDrive-v0",
        scenario=str(path),
        agents=agents,
        terminate_on_collision=False,
        terminate_on_offroad=False,
        terminate_on_route_completion=False,
    ).unwrapped
    env.reset(seed=0)
    action = np.zeros(2, np.float32)
    cpu = time.process_time()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(action)
        if term or trunc:
            env.reset(seed=0)
    rate = steps / (time.process_time() - cpu)
    env.close()
    return rate


def env_rows(steps: int, repeat: int) -> None:
    if not WOMD.is_file():
        return
    rates = {a: max(_env_rate(WOMD, a, steps) for _ in range(repeat)) for a in ("log", "idm")}
    print(f"\n{'env (WOMD log, 257 tracks)':34s} {'agents':8s} {'env steps/s (cpu)':>17s} {'vs log':>8s}")
    for a, r in rates.items():
        print(f"{'':34s} {a:8s} {r:17.0f} {r / rates['log']:7.2f}x")


if __name__ == "__main__":
    main()
