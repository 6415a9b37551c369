"""``mad-sim demo``: the closed loop, with learned agents, written as a pose | BEV video.

The ego is the IDM planner driven receding-horizon (its planned trajectory is
the action, so the learned agents see the ego's intended motion); the other
agents are driven by the MAD motion predictor (``--agents mad``, the default:
generated pose frames parsed back into agent states, scripted IDM outside the
camera's view) or by a scripted policy (``--agents idm|log|constant_velocity``).
The scene is procedural (seeded) unless ``--scenario`` names a WOMD /
ScenarioNet file.

With learned agents the demo runs :data:`LEARNED_CHUNKS` prediction chunks
(3 x 16 steps = 4.8 s of simulated time with the default settings: a whole
number of chunks, so no prediction is made for a step that is never taken)
unless ``--steps`` says otherwise, which keeps it under a minute on a 2-core
CPU machine (about 1 simulated second per CPU second; the wall time depends
on the machine's load); scripted agents run to the end of the scene.  Prints a JSON summary: steps, simulated and wall seconds,
collisions, offroad, progress, how many agents the model drove, and whether
the shipped weights or a random model were used.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Dict, Optional

import numpy as np

LEARNED_CHUNKS = 3
"""Default length with learned agents, in prediction chunks (3 x 16 steps = 4.8 s: under a minute on 2 CPU cores)."""

AGENTS = ("mad", "idm", "log", "constant_velocity")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="closed loop with learned agents: drive a scene, write a pose | BEV video")
    p.add_argument("--scenario", help="a WOMD / ScenarioNet file (default: a procedural scene)")
    p.add_argument("--kind", choices=["straight", "curve", "intersection"], help="procedural scene kind")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--agents", default="mad", choices=AGENTS, help="agent policy: mad (learned, default), idm, log, constant_velocity"
    )
    p.add_argument("--planner", default="idm", help="ego planner: idm, cv, expert")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"stop after this many 0.1 s steps (default: {LEARNED_CHUNKS} prediction chunks, 48 steps with the "
        "default chunk of 16, with --agents mad, else the end of the scene)",
    )
    p.add_argument(
        "--weights",
        default="auto",
        help="learned agents' model: auto (shipped tiny weights if present, else random), shipped, "
        "random, or a base safetensors path",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads of the learned agents' model")
    p.add_argument(
        "--agent-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the learned agents (LearnedAgentSettings), e.g. chunk=8 or size=64; repeatable",
    )
    p.add_argument("--size", type=int, default=256, help="panel size in pixels")
    p.add_argument("--out", default="out/demo.mp4", help="video file (.mp4 or .gif)")
    p.add_argument(
        "--rgb",
        action="store_true",
        help="add a camera panel: the appearance synthesizer dresses the pose frames (render_mode rgb_array)",
    )
    p.add_argument("--prompt", help="text for the camera panel, e.g. 'rainy night' (with --rgb)")
    p.set_defaults(func=run)


def drive_and_record(
    env: Any,
    driver: Any,
    size: int,
    out: str,
    seed: int = 0,
    options: Optional[Dict[str, Any]] = None,
    max_steps: Optional[int] = None,
    labels: tuple = ("pose", "bev"),
) -> Dict[str, Any]:
    """Run one episode, render pose and BEV panels each step, write the video; the JSON-ready summary.

    An env with ``render_mode="rgb_array"`` adds a third panel, its camera frame
    (``env.render()``, synthesized in chunks), and the summary its ``rgb_syntheses``.

    When the env's agents are learned (``info["learned_agents"]``), the summary
    also counts them: ``learned_agents`` distinct agents driven by the model at
    some step, ``learned_agent_steps`` agent-steps, ``learned_max`` at once.
    """
    from tqdm.auto import tqdm

    from mad_sim.render.bev import render_bev
    from mad_sim.render.pose import PoseRenderer
    from mad_sim.render.video import side_by_side, write_video

    base = env.unwrapped
    pose = PoseRenderer(width=size, height=size)
    start = time.perf_counter()
    env.reset(seed=seed, options=options)
    driver.reset()

    rgb = base.render_mode == "rgb_array"
    rgb_frames: list = []

    def frames() -> tuple[np.ndarray, np.ndarray]:
        if rgb:
            rgb_frames.append(env.render())
        return pose.render_state(base.state), render_bev(base.state, size=size, extent_m=base.config.bev_extent_m)

    pose_frames, bev_frames = [], []
    p, b = frames()
    pose_frames.append(p)
    bev_frames.append(b)
    collisions = offroad = 0
    steps = 0
    info: Dict[str, Any] = {}
    learned_ids: set = set()
    learned_steps = learned_max = 0
    has_learned = False
    total = max_steps if max_steps is not None else base.state.sim.num_steps - base.state.timestep - 1
    with tqdm(total=total, desc="demo", unit="step", leave=False, disable=None) as bar:
        while max_steps is None or steps < max_steps:
            _, _, term, trunc, info = env.step(driver.act(env))
            steps += 1
            bar.update(1)
            collisions += int(info["collision"])
            offroad += int(info["offroad"])
            if "learned_agents" in info:
                has_learned = True
                ids = list(info["learned_agents"])
                learned_ids.update(int(i) for i in ids)
                learned_steps += len(ids)
                learned_max = max(learned_max, len(ids))
            p, b = frames()
            pose_frames.append(p)
            bev_frames.append(b)
            if term or trunc:
                break
    panels = [np.stack(pose_frames), np.stack(bev_frames)] + ([np.stack(rgb_frames)] if rgb else [])
    video = side_by_side(panels, labels=list(labels) + (["camera"] if rgb and len(labels) < 3 else []))
    write_video(out, video, fps=10)
    summary = {
        "scenario_id": base.state.scenario.scenario_id,
        "steps": steps,
        "simulated_s": round(steps * 0.1, 3),
        "collisions": collisions,
        "offroad": offroad,
        "progress_m": round(float(info.get("route_progress", 0.0)), 3),
        "terminated": bool(info.get("collision") or info.get("offroad")),
        "wall_time_s": round(time.perf_counter() - start, 3),
        "frames": len(pose_frames),
        "out": str(out),
    }
    if rgb:
        summary.update(rgb_syntheses=base.rgb_camera.stats.syntheses, rgb_weights=base.rgb_camera.weights)
    if has_learned:
        summary.update(learned_agents=len(learned_ids), learned_agent_steps=learned_steps, learned_max=learned_max)
    return summary


def parse_options(items: list) -> Dict[str, Any]:
    """``["chunk=8", "precision=float32"]`` -> ``{"chunk": 8, "precision": "float32"}`` (values read as YAML)."""
    import yaml

    from mad_sim.errors import ConfigError

    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--agent-option {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import mad_sim  # noqa: F401
    from mad_sim.cli.outputs import check_output
    from mad_sim.planners import make_planner
    from mad_sim.planners.adapter import RecedingHorizonDriver
    from mad_sim.render.video import VIDEO_SUFFIXES

    t0 = time.perf_counter()
    check_output(args.out, suffixes=VIDEO_SUFFIXES)
    learned = args.agents == "mad"
    steps = args.steps
    if args.prompt is not None and not args.rgb:
        from mad_sim.errors import ConfigError

        raise ConfigError("--prompt is the camera panel's text: add --rgb")
    camera = dict(render_mode="rgb_array", prompt=args.prompt) if args.rgb else {}
    options = dict(weights=args.weights, threads=args.threads, **parse_options(args.agent_option)) if learned else {}
    driver = RecedingHorizonDriver(make_planner(args.planner), k=6, horizon=30, replan_every=5)
    env = gym.make(
        "MADDrive-v0",
        scenario=args.scenario,
        procedural_kind=args.kind,
        agents=args.agents,
        agent_options=options,
        action="trajectory",
        terminate_on_offroad=False,
        **camera,
    )
    if learned:
        import torch

        torch.set_num_threads(max(1, args.threads))
        if steps is None:
            steps = LEARNED_CHUNKS * env.unwrapped.agent_settings.chunk
    labels = (f"pose (agents: {args.agents})", "bev")
    try:
        summary = drive_and_record(env, driver, args.size, args.out, seed=args.seed, max_steps=steps, labels=labels)
        summary = {"agents": args.agents, "planner": args.planner, **summary}
        if learned:
            policy = env.unwrapped.agent_policy
            info = policy.service.weights_info
            summary.update(
                weights="random" if info == "random" else "shipped" if args.weights in ("auto", "shipped") else "given",
                weights_info=info,
                predictions=policy.stats.predictions,
                early_predictions=policy.stats.early,
                precision=policy.service.precision,
                precision_why=policy.service.precision_why,
            )
            if args.steps is None:
                summary["note"] = (
                    f"{steps * 0.1:.1f} s of simulated time ({LEARNED_CHUNKS} prediction chunks of "
                    f"{steps // LEARNED_CHUNKS} steps) by default with learned agents, to stay under "
                    "a minute on 2 CPU cores; --steps N for longer"
                )
    finally:
        env.close()
    summary["total_wall_time_s"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(summary))
    return 0
