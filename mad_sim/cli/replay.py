"""``mad-sim replay FILE --out OUT.mp4``: replay a log through the env and write pose | BEV panels.

The ego follows its logged trajectory (the expert planner, tracked by the
env's trajectory controller) and the other agents replay the log
(``--agents`` switches them to a scripted policy).
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("replay", help="replay a log through the env and write a pose | BEV video")
    p.add_argument("file", help="a WOMD TFRecord or ScenarioNet pickle")
    p.add_argument("--index", type=int, default=0, help="scenario index within the file")
    p.add_argument("--ego", default="sdc", help="ego track index or 'sdc'")
    p.add_argument("--agents", default="log", help="agent policy: log, idm, constant_velocity")
    p.add_argument("--size", type=int, default=256, help="panel size in pixels")
    p.add_argument("--out", default="out/replay.mp4", help="video file (.mp4 or .gif)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import mad_sim  # noqa: F401
    from mad_sim.cli.demo import drive_and_record
    from mad_sim.cli.outputs import check_output
    from mad_sim.data.sources import load_scenario
    from mad_sim.planners import make_planner
    from mad_sim.planners.adapter import RecedingHorizonDriver
    from mad_sim.render.video import VIDEO_SUFFIXES

    check_output(args.out, suffixes=VIDEO_SUFFIXES)
    scenario = load_scenario(args.file, args.index)
    ego = args.ego if args.ego == "sdc" else int(args.ego)
    env = gym.make(
        "MADDrive-v0",
        agents=args.agents,
        action="trajectory",
        terminate_on_collision=False,
        terminate_on_offroad=False,
        terminate_on_route_completion=False,
    )  # the whole log
    driver = RecedingHorizonDriver(make_planner("expert"), k=1, horizon=20, replan_every=1)
    try:
        summary = drive_and_record(env, driver, args.size, args.out, options={"scenario": scenario, "ego": ego})
    finally:
        env.close()
    print(json.dumps(summary))
    return 0
