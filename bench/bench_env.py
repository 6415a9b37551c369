"""MADDrive-v0 throughput, and highway-env's ``highway-fast-v0`` as the peer.

    python bench/bench_env.py [--episodes 5] [--no-peer]

Prints steps per second and *simulated seconds per wall second* (MADDrive
steps are 0.1 s; a highway-fast-v0 step is 1 s) for:

1. one env, log agents (the WOMD log with 257 tracks), no pose observation;
2. the same with the 128x128 pose observation;
3. one env, IDM agents (lane following, signals, stop signs), no pose;
4. four envs in an AsyncVectorEnv (log agents, no pose);
5. highway-fast-v0, one env (installed into this venv by this script if missing).

Target: at least 200 simulated seconds per wall second for (1).  Figures
are measured in this run; ratios are against the peer measured here too.
The CPU-time column (this process only) shows the figure without other
processes' load on a shared machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mad_sim.data.root import data_root

REPO = Path(__file__).resolve().parents[1]
WOMD = data_root() / "womd" / "womd_scenario_input.tfrecord"
TARGET_SIM_S_PER_S = 200.0


def _episodes(env, episodes: int, action) -> tuple[int, float, float]:
    """(steps, wall seconds, CPU seconds of this process) over ``episodes`` episodes."""
    steps = 0
    start, cpu = time.perf_counter(), time.process_time()
    for ep in range(episodes):
        env.reset(seed=ep)
        done = False
        while not done:
            _, _, term, trunc, _ = env.step(action)
            steps += 1
            done = term or trunc
    return steps, time.perf_counter() - start, time.process_time() - cpu


def bench_single(pose: bool, episodes: int, agents: str = "log") -> dict:
    import gymnasium as gym

    import mad_sim  # noqa: F401

    env = gym.make(
        "MADDrive-v0",
        scenario=str(WOMD),
        agents=agents,
        pose_observation=pose,
        terminate_on_collision=False,
        terminate_on_offroad=False,
    ).unwrapped
    env.reset(seed=0)
    n_agents = int(env.state.sim.valid[:, env.state.timestep].sum())
    _episodes(env, 1, np.zeros(2, np.float32))  # warm-up (map crop, renderer)
    steps, wall, cpu = _episodes(env, episodes, np.zeros(2, np.float32))
    env.close()
    return {
        "name": f"MADDrive {agents} agents, {'pose 128x128' if pose else 'no pose'}",
        "agents": n_agents,
        "steps": steps,
        "steps_per_s": steps / wall,
        "sim_s_per_s": steps * 0.1 / wall,
        "sim_s_per_cpu_s": steps * 0.1 / cpu,
    }


def bench_async(n: int, episodes: int) -> dict:
    from mad_sim.envs import make_vec

    venv = make_vec(
        n, asynchronous=True, scenario=str(WOMD), agents="log", terminate_on_collision=False, terminate_on_offroad=False
    )
    venv.reset(seed=0)
    action = np.zeros((n, 2), np.float32)
    for _ in range(10):
        venv.step(action)
    steps = 80 * episodes
    start = time.perf_counter()
    for _ in range(steps):
        venv.step(action)
    wall = time.perf_counter() - start
    venv.close()
    return {
        "name": f"MADDrive x{n} AsyncVectorEnv, log agents, no pose",
        "agents": None,
        "steps": steps * n,
        "steps_per_s": steps * n / wall,
        "sim_s_per_s": steps * n * 0.1 / wall,
        "sim_s_per_cpu_s": None,
    }


def ensure_highway_env() -> bool:
    if importlib.util.find_spec("highway_env") is not None:
        return True
    import gymnasium

    print("installing highway-env into this venv (peer benchmark) ...", file=sys.stderr)
    pin = [f"gymnasium=={gymnasium.__version__}", f"numpy=={np.__version__}"]
    out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "highway-env", *pin], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"highway-env could not be installed: {out.stderr.strip()[-400:]}", file=sys.stderr)
        return False
    return True


def bench_highway(episodes: int) -> dict | None:
    if not ensure_highway_env():
        return None
    import gymnasium as gym
    import highway_env  # noqa: F401

    env = gym.make("highway-fast-v0")
    cfg = env.unwrapped.config
    step_s = 1.0 / cfg["policy_frequency"]
    _episodes(env, 1, 1)
    steps, wall, cpu = _episodes(env, episodes, 1)  # IDLE
    env.close()
    return {
        "name": f"highway-fast-v0 ({cfg['vehicles_count']} vehicles, {step_s:g} s/step)",
        "agents": cfg["vehicles_count"],
        "steps": steps,
        "steps_per_s": steps / wall,
        "sim_s_per_s": steps * step_s / wall,
        "sim_s_per_cpu_s": steps * step_s / cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--no-peer", action="store_true", help="skip highway-env")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    from mad_sim.model.cpu_paths import describe  # the CPU fast paths this machine gets

    print(f"machine: {describe()}", flush=True)
    if not WOMD.is_file():
        sys.exit(f"missing {WOMD}")
    rows = [
        bench_single(False, args.episodes),
        bench_single(True, max(1, args.episodes // 2)),
        bench_single(False, max(1, args.episodes // 2), agents="idm"),
        bench_async(4, max(1, args.episodes // 2)),
    ]
    peer = None if args.no_peer else bench_highway(args.episodes)
    if peer:
        rows.append(peer)
    print(f"{'benchmark':58s} {'agents':>6s} {'steps':>6s} {'steps/s':>9s} {'sim s/s':>9s} {'sim s/cpu s':>11s} {'vs peer':>8s}")
    for r in rows:
        ratio = f"{r['sim_s_per_s'] / peer['sim_s_per_s']:.2f}x" if peer else "-"
        cpu = "-" if r["sim_s_per_cpu_s"] is None else f"{r['sim_s_per_cpu_s']:.1f}"
        print(
            f"{r['name']:58s} {str(r['agents'] or '-'):>6s} {r['steps']:6d} {r['steps_per_s']:9.1f} "
            f"{r['sim_s_per_s']:9.1f} {cpu:>11s} {ratio:>8s}"
        )
    first = rows[0]["sim_s_per_s"]
    print(
        f"target: >= {TARGET_SIM_S_PER_S:.0f} simulated s per wall s for one env, log agents, no pose: "
        f"{first:.1f} ({'met' if first >= TARGET_SIM_S_PER_S else 'NOT met'})"
    )
    if args.json:
        from mad_sim.io import write_text_atomic

        write_text_atomic(args.json, json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
