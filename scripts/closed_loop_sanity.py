"""Closed-loop sanity on real scenarios: expert ego, agents mad vs constant velocity vs log vs idm.

    python scripts/closed_loop_sanity.py [--data SPEC] [--max-scenes N] [--steps 80] [--agents log,constant_velocity,idm,mad]
                                       [--agents ...,mad_log_oracle,mad_vae_oracle]  (perfect motion model: eval/oracle_agents.py)
                                       [--video out/sanity_mad.mp4] [--weights auto]

Per agent policy, over the scenes of ``--data`` (any ``load_scenarios`` spec,
e.g. ``corpus:val``; default the WOMD and ScenarioNet samples; ego = SDC
driven by the expert planner through ``RecedingHorizonDriver``): ego
collision rate and offroad rate (fraction of steps), and the log divergence
of the *other* agents (mean metres between simulated and logged positions
over valid controlled agents within 60 m of the ego).  With ``mad`` in the
list, also on **the same agents**: the (step, agent) samples the model drove
in the ``mad`` run, scored under every policy (so the model is compared with
constant velocity on exactly the agents it moved); the model's share of the
nearby agent-steps; and the mean distance between the learned agents and the
same agents in the constant-velocity run; and the share of nearby agent-steps
whose state fused an accepted model measurement (``info["measured_agents"]``).  Writes a pose | BEV video of the
``mad`` run on the first scene.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mad_sim.data.root import data_root

DATA = data_root()
FILES = [
    "womd/womd_scenario_input.tfrecord",
    "womd/motion_data_one_scenario.tfrecord",
    "scenarionet/sd_waymo_v1.2_eb4b91b10ca94ff2.pkl",
]


def episode(path: Path, agents: str, steps: int, frames: list | None = None, agent_options: dict | None = None) -> dict:
    import gymnasium as gym
    from mad_sim.planners import make_planner
    from mad_sim.planners.adapter import RecedingHorizonDriver

    env = gym.make(
        "MADDrive-v0",
        scenario=str(path),
        agents=agents,
        action="trajectory",
        agent_options=(agent_options or {}) if agents.startswith("mad") else {},
        terminate_on_collision=False,
        terminate_on_offroad=False,
    )
    driver = RecedingHorizonDriver(make_planner("expert"), k=1, horizon=30, replan_every=5)
    env.reset(seed=0)
    driver.reset()
    base = env.unwrapped
    col = off = 0
    div_all, div_learned = [], []
    per_sample: dict = {}
    learned_keys: list = []
    n = n_measured = 0
    if frames is not None:
        from mad_sim.render.bev import render_bev
        from mad_sim.render.pose import PoseRenderer

        pose = PoseRenderer(128, 128)
    for _ in range(steps):
        _, _, term, trunc, info = env.step(driver.act(env))
        n += 1
        s = base.state
        t, e = s.timestep, s.ego_index
        col += int(info["collision"])
        off += int(info["offroad"])
        ok = s.sim.valid[:, t] & s.log.valid[:, t]
        ok[e] = False
        ok &= np.hypot(*(s.log.xy[:, t] - s.log.xy[e, t]).T) < 60
        d = np.hypot(*(s.sim.xy[:, t] - s.log.xy[:, t]).T)
        div_all.extend(d[ok].tolist())
        learned = np.zeros(s.num_agents, bool)
        learned[info.get("learned_agents", [])] = True
        div_learned.extend(d[ok & learned].tolist())
        measured = np.zeros(s.num_agents, bool)
        measured[info.get("measured_agents", [])] = True
        n_measured += int((ok & measured).sum())
        for a in np.flatnonzero(ok):
            per_sample[(t, int(a))] = (float(d[a]), s.sim.xy[a, t].copy())
        learned_keys += [(t, int(a)) for a in np.flatnonzero(ok & learned)]
        if frames is not None:
            frames.append((pose.render_state(s), render_bev(s, size=128, extent_m=40.0)))
        if term or trunc:
            break
    env.close()
    return {
        "steps": n,
        "collision": col / n,
        "offroad": off / n,
        "div_all": float(np.mean(div_all)) if div_all else float("nan"),
        "div_learned": float(np.mean(div_learned)) if div_learned else float("nan"),
        "learned_samples": len(div_learned),
        "measured_samples": n_measured,
        "nearby_samples": len(div_all),
        "per_sample": per_sample,
        "learned_keys": learned_keys,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=[str(DATA / f) for f in FILES])
    ap.add_argument("--max-scenes", type=int, default=0, help="first N scenes of --data (0: all)")
    ap.add_argument("--agents", default="log,idm,mad")
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--weights", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--video", default="out/sanity_mad.mp4")
    ap.add_argument(
        "--agent-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a LearnedAgentSettings field for the mad agents (repeatable), e.g. prior_strength=0.5",
    )
    ap.add_argument("--out", default="", help="write the figures as JSON here")
    args = ap.parse_args()
    import torch

    import mad_sim  # noqa: F401
    from mad_sim.data.sources import scenario_files

    torch.set_num_threads(args.threads)
    import yaml

    options: dict = dict(weights=args.weights, threads=args.threads)
    for item in args.agent_option:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--agent-option {item!r}: expected KEY=VALUE")
        options[key] = yaml.safe_load(value)
    files = scenario_files(args.data)[: args.max_scenes or None]
    policies = args.agents.split(",")
    if any(p.endswith("_oracle") for p in policies):
        import mad_sim.eval.oracle_agents  # noqa: F401  (registers mad_log_oracle / mad_vae_oracle)
    runs: dict = {}
    for agents in policies:
        res = []
        for i, f in enumerate(files):
            frames = [] if (agents.startswith("mad") and i == 0 and args.video) else None
            res.append(episode(f, agents, args.steps, frames, options))
            if frames:
                from mad_sim.render.video import side_by_side, write_video

                video = side_by_side(
                    [np.stack([p for p, _ in frames]), np.stack([b for _, b in frames])], labels=["pose (mad agents)", "bev"]
                )
                write_video(args.video, video, fps=10)
        runs[agents] = res
    summary: dict = {"scenes": [str(f) for f in files], "steps": args.steps, "agent_options": options, "policies": {}}
    print(f"closed-loop sanity: expert ego, {len(files)} scenes, up to {args.steps} steps, mad options {options}")
    print(f"{'agents':18s} {'collision':>10s} {'offroad':>10s} {'log div (m)':>12s}")
    for a, res in runs.items():
        row = {k: float(np.nanmean([r[k] for r in res])) for k in ("collision", "offroad", "div_all")}
        print(f"{a:18s} {row['collision']:10.3f} {row['offroad']:10.3f} {row['div_all']:12.2f}")
        summary["policies"][a] = row
    for a in [a for a in runs if a.startswith("mad")]:
        m = runs[a]
        same = {}
        for b, res in runs.items():
            vals = [r["per_sample"][k][0] for r, mm in zip(res, m) for k in mm["learned_keys"] if k in r["per_sample"]]
            same[b] = float(np.mean(vals)) if vals else float("nan")
        learned = sum(r["learned_samples"] for r in m)
        nearby = sum(r["nearby_samples"] for r in m)
        measured = sum(r["measured_samples"] for r in m)
        figures = {
            "div_same_agents": same,
            "model_share": learned / max(nearby, 1),
            "measured_share": measured / max(nearby, 1),
        }
        print(f"{a}: on the agents it drove, log divergence " + ", ".join(f"{b} {v:.2f} m" for b, v in same.items()))
        print(f"  share of nearby agent-steps it drove: {learned}/{nearby} = {figures['model_share']:.3f}")
        print(
            f"  of which fused an accepted model measurement that step: {measured}/{nearby} = {figures['measured_share']:.3f} "
            "(the other learned agent-steps moved at the filter's constant-velocity prediction)"
        )
        if "constant_velocity" in runs:
            gaps = [
                float(np.hypot(*(r["per_sample"][k][1] - c["per_sample"][k][1])))
                for r, c in zip(m, runs["constant_velocity"])
                for k in r["learned_keys"]
                if k in c["per_sample"]
            ]
            figures["learned_vs_cv_m"] = float(np.mean(gaps)) if gaps else float("nan")
            print(f"  mean distance from the same agents under constant velocity: {figures['learned_vs_cv_m']:.2f} m")
        summary["policies"][a].update(figures)
    if args.out:
        import json

        from mad_sim.io import write_text_atomic

        write_text_atomic(args.out, json.dumps(summary, indent=1))
    if args.video:
        print(f"wrote {args.video}")


if __name__ == "__main__":
    main()
