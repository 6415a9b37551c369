"""``mad-sim demo``: drive a scene closed loop and write a pose | BEV video.

The ego is the IDM planner driven receding-horizon; the other agents are IDM
(``--agents``); the scene is procedural (seeded) unless ``--scenario`` names a
log.  Prints a JSON summary (steps, collisions, offroad, progress, wall time).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Dict, Optional

import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="drive a scene closed loop and write a pose | BEV video")
    p.add_argument("--scenario", help="a WOMD / ScenarioNet file (default: a procedural scene)")
    p.add_argument("--kind", choices=["straight", "curve", "intersection"], help="procedural scene kind")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--agents", default="idm", help="agent policy: idm, log, constant_velocity")
    p.add_argument("--planner", default="idm", help="ego planner: idm, cv, expert")
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps (default: end of log)")
    p.add_argument("--size", type=int, default=256, help="panel size in pixels")
    p.add_argument("--out", default="out/demo.mp4", help="video file (.mp4 or .gif)")
    p.set_defaults(func=run)


def drive_and_record(env: Any, driver: Any, size: int, out: str, seed: int = 0,
                     options: Optional[Dict[str, Any]] = None, max_steps: Optional[int] = None) -> Dict[str, Any]:
    """Run one episode, render pose and BEV panels each step, write the video; the JSON-ready summary."""
    from mad_sim.render.bev import render_bev
    from mad_sim.render.pose import PoseRenderer
    from mad_sim.render.video import side_by_side, write_video

    base = env.unwrapped
    pose = PoseRenderer(width=size, height=size)
    start = time.perf_counter()
    env.reset(seed=seed, options=options)
    driver.reset()

    def frames() -> tuple[np.ndarray, np.ndarray]:
        return pose.render_state(base.state), render_bev(base.state, size=size, extent_m=base.config.bev_extent_m)

    pose_frames, bev_frames = [], []
    p, b = frames()
    pose_frames.append(p)
    bev_frames.append(b)
    collisions = offroad = 0
    steps = 0
    info: Dict[str, Any] = {}
    while max_steps is None or steps < max_steps:
        _, _, term, trunc, info = env.step(driver.act(env))
        steps += 1
        collisions += int(info["collision"])
        offroad += int(info["offroad"])
        p, b = frames()
        pose_frames.append(p)
        bev_frames.append(b)
        if term or trunc:
            break
    video = side_by_side([np.stack(pose_frames), np.stack(bev_frames)], labels=["pose", "bev"])
    write_video(out, video, fps=10)
    return {"scenario_id": base.state.scenario.scenario_id, "steps": steps, "collisions": collisions,
            "offroad": offroad, "progress_m": round(float(info.get("route_progress", 0.0)), 3),
            "terminated": bool(info.get("collision") or info.get("offroad")),
            "wall_time_s": round(time.perf_counter() - start, 3), "frames": len(pose_frames), "out": str(out)}


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import mad_sim  # noqa: F401
    from mad_sim.planners import make_planner
    from mad_sim.planners.adapter import RecedingHorizonDriver

    env = gym.make("MADDrive-v0", scenario=args.scenario, procedural_kind=args.kind, agents=args.agents,
                   action="trajectory", terminate_on_offroad=False)
    driver = RecedingHorizonDriver(make_planner(args.planner), k=6, horizon=30, replan_every=5)
    summary = drive_and_record(env, driver, args.size, args.out, seed=args.seed, max_steps=args.steps)
    env.close()
    print(json.dumps(summary))
    return 0
