"""Closed-loop sanity on the real scenarios: expert ego, agents mad vs log vs idm.

    python bench/closed_loop_sanity.py [--steps 80] [--video out/sanity_mad.mp4] [--weights auto]

Per agent policy, over the WOMD and ScenarioNet samples (ego = SDC driven by
the expert planner through ``RecedingHorizonDriver``): ego collision rate and
offroad rate (fraction of steps), and the log divergence of the *other*
agents (mean metres between simulated and logged positions over valid
controlled agents within 60 m of the ego; for ``mad`` also over the
learned-driven ones alone).  Writes a pose | BEV video of the ``mad`` run on
the first scenario.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FILES = ["womd/womd_scenario_input.tfrecord", "womd/motion_data_one_scenario.tfrecord",
         "scenarionet/sd_waymo_v1.2_eb4b91b10ca94ff2.pkl"]


def episode(path: Path, agents: str, steps: int, frames: list | None = None) -> dict:
    import gymnasium as gym

    from mad_sim.planners import make_planner
    from mad_sim.planners.adapter import RecedingHorizonDriver

    env = gym.make("MADDrive-v0", scenario=str(path), agents=agents, action="trajectory",
                   terminate_on_collision=False, terminate_on_offroad=False)
    driver = RecedingHorizonDriver(make_planner("expert"), k=1, horizon=30, replan_every=5)
    env.reset(seed=0)
    driver.reset()
    base = env.unwrapped
    col = off = 0
    div_all, div_learned = [], []
    n = 0
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
        if frames is not None:
            frames.append((pose.render_state(s), render_bev(s, size=128, extent_m=40.0)))
        if term or trunc:
            break
    env.close()
    return {"steps": n, "collision": col / n, "offroad": off / n, "div_all": float(np.mean(div_all)) if div_all else float("nan"),
            "div_learned": float(np.mean(div_learned)) if div_learned else float("nan"), "learned_samples": len(div_learned)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--weights", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--video", default="out/sanity_mad.mp4")
    args = ap.parse_args()
    import torch

    import mad_sim  # noqa: F401
    from mad_sim.model.agents import learned as la

    torch.set_num_threads(args.threads)
    la.configure(weights=args.weights, threads=args.threads)
    rows = {}
    for agents in ("log", "idm", "mad"):
        res = []
        for i, f in enumerate(FILES):
            frames = [] if (agents == "mad" and i == 0 and args.video) else None
            res.append(episode(DATA / f, agents, args.steps, frames))
            if frames:
                from mad_sim.render.video import side_by_side, write_video

                video = side_by_side([np.stack([p for p, _ in frames]), np.stack([b for _, b in frames])],
                                     labels=["pose (mad agents)", "bev"])
                write_video(args.video, video, fps=10)
        rows[agents] = {k: float(np.nanmean([r[k] for r in res])) for k in ("collision", "offroad", "div_all", "div_learned")}
    print(f"closed-loop sanity: expert ego, {len(FILES)} real scenarios, up to {args.steps} steps, weights {args.weights}")
    print(f"{'agents':8s} {'collision':>10s} {'offroad':>10s} {'log div (m)':>12s} {'learned div (m)':>16s}")
    for a, r in rows.items():
        print(f"{a:8s} {r['collision']:10.3f} {r['offroad']:10.3f} {r['div_all']:12.2f} {r['div_learned']:16.2f}")
    if args.video:
        print(f"wrote {args.video}")


if __name__ == "__main__":
    main()
