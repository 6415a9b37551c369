"""``mad-sim demo``: the closed loop with learned agents, as a log | imagined | parsed video, and the model card's figures.

The ego is the IDM planner driven receding-horizon (its planned trajectory is
the action, so the learned agents see the ego's intended motion); the other
agents are driven by the MAD motion predictor (``--agents mad``, the default:
generated pose frames parsed back into agent states, scripted IDM outside the
camera's view) or by a scripted policy (``--agents idm|log|constant_velocity``).
The scene is procedural (seeded) unless ``--scenario`` names a WOMD /
ScenarioNet file.

The video (panels in :mod:`mad_sim.cli.demo_panels`), one frame per 0.1 s step:

- with learned agents, three panels: **log** (the logged scene at the step,
  from the simulated ego's pose with the learned agents' pose camera; a
  procedural scene's generated tracks are its log), **imagined** (the
  generated pose frame the model produced for the step, or a black frame
  saying why there is none) and **parsed (BEV, 60 m)** (the simulated scene
  from above, ``view_range_m`` = 60 m from the ego to the border, ego filled;
  agents the model drove this step ringed, those whose state took in a model
  measurement also dotted, the fallback-driven ones plain; a legend line);
- with scripted agents: log | BEV;
- ``--rgb`` adds a camera panel (the appearance synthesizer dressing the env's pose frames).

With learned agents the demo runs :data:`LEARNED_CHUNKS` prediction chunks
(3 x 16 steps = 4.8 s of simulated time with the default settings: a whole
number of chunks, so no prediction is made for a step that is never taken)
unless ``--steps`` says otherwise, which keeps it under a minute on a 2-core
CPU machine (about 1 simulated second per CPU second; the wall time depends
on the machine's load); scripted agents run to the end of the scene.

Prints, with learned agents, the headline figures of the shipped model card
(``mad_sim/weights/MODEL_CARD.md``, read by
:mod:`mad_sim.model.evaluation.model_card_figures`; measured on held-out
validation scenes, not on this run), then, last, a JSON summary: steps,
simulated and wall seconds, collisions, offroad, progress, how many agents
the model drove and how many agent-steps took in a model measurement, and
whether the shipped weights or a random model were used.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

LEARNED_CHUNKS = 3
"""Default length with learned agents, in prediction chunks (3 x 16 steps = 4.8 s: under a minute on 2 CPU cores)."""

AGENTS = ("mad", "idm", "log", "constant_velocity")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="closed loop with learned agents: drive a scene, write a log | imagined | parsed (BEV) video"
    )
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
    panels: Optional[Sequence[Any]] = None,
) -> Dict[str, Any]:
    """Run one episode, draw the panels after the reset and each step, write the video; the JSON-ready summary.

    ``panels``: callables ``panel(env.unwrapped, info) -> [H, W, 3]`` uint8 with a ``label``
    (:mod:`mad_sim.cli.demo_panels`); default the simulated pose | BEV (``mad-sim replay``).
    An env with ``render_mode="rgb_array"`` adds a last panel, its camera frame
    (``env.render()``, synthesized in chunks), and the summary its ``rgb_syntheses``.

    When the env's agents are learned (``info["learned_agents"]``), the summary
    also counts them: ``learned_agents`` distinct agents driven by the model at
    some step, ``learned_agent_steps`` agent-steps, ``learned_max`` at once; and
    ``measured_agent_steps``, the agent-steps whose state took in a model
    measurement (``info["measured_agents"]``), when the policy reports them.
    """
    from tqdm.auto import tqdm

    from mad_sim.cli.demo_panels import BevPanel, PosePanel
    from mad_sim.render.video import side_by_side, write_video

    base = env.unwrapped
    if panels is None:
        panels = [PosePanel(size, "pose"), BevPanel(size, base.config.bev_extent_m, "bev")]
    start = time.perf_counter()
    _, info = env.reset(seed=seed, options=options)
    driver.reset()

    rgb = base.render_mode == "rgb_array"
    columns: List[List[np.ndarray]] = [[] for _ in range(len(panels) + int(rgb))]

    def draw(info: Dict[str, Any]) -> None:
        for col, panel in zip(columns, panels):
            col.append(panel(base, info))
        if rgb:
            columns[-1].append(env.render())

    draw(info)
    collisions = offroad = 0
    steps = 0
    learned_ids: set = set()
    learned_steps = learned_max = measured_steps = 0
    has_learned = has_measured = False
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
            if "measured_agents" in info:
                has_measured = True
                measured_steps += len(info["measured_agents"])
            draw(info)
            if term or trunc:
                break
    labels = [p.label for p in panels] + (["camera"] if rgb else [])
    video = side_by_side([np.stack(c) for c in columns], labels=labels)
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
        "frames": len(columns[0]),
        "panels": labels,
        "out": str(out),
    }
    if rgb:
        summary.update(rgb_syntheses=base.rgb_camera.stats.syntheses, rgb_weights=base.rgb_camera.weights)
    if has_learned:
        summary.update(learned_agents=len(learned_ids), learned_agent_steps=learned_steps, learned_max=learned_max)
    if has_measured:
        summary["measured_agent_steps"] = measured_steps
    return summary


def demo_panels(env: Any, size: int, agents: str) -> List[Any]:
    """The demo's panels: log | imagined | parsed (BEV) with learned agents, log | BEV with scripted ones."""
    from mad_sim.cli.demo_panels import BevPanel, ImaginedPanel, LogPanel, ParsedBevPanel

    base = env.unwrapped
    settings = base.agent_settings
    if agents == "mad":
        return [
            LogPanel(size, settings.preset),
            ImaginedPanel(size, base.agent_policy),
            ParsedBevPanel(size, settings.view_range_m, settings.fallback),
        ]
    from mad_sim.model.agents.settings import LearnedAgentSettings

    return [LogPanel(size, LearnedAgentSettings().preset), BevPanel(size, base.config.bev_extent_m, f"bev (agents: {agents})")]


def headline_block(figures: Dict[str, Any], weights: str, preset: str) -> str:
    """The model card's headline figures (:func:`~mad_sim.model.evaluation.model_card_figures.format_headline`)
    and, when this run did not use the shipped tiny model, a line saying the figures are not this model's."""
    from mad_sim.model.evaluation.model_card_figures import format_headline

    text = format_headline(figures)
    if preset != "tiny":
        text += f"\n  this run's model is the {preset} preset: the card is the shipped tiny model's"
    elif weights != "shipped":
        model = "a random model" if weights == "random" else "the given weights"
        text += f"\n  this run used {model}: the figures above are the shipped weights'"
    return text


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
    drive: Any = env.unwrapped  # MADDrive-v0 itself (agent_settings, agent_policy)
    if learned:
        import torch

        torch.set_num_threads(max(1, args.threads))
        if steps is None:
            steps = LEARNED_CHUNKS * drive.agent_settings.chunk
    figures: Dict[str, Any] = {}
    try:
        if learned:  # read before the run: a missing or unreadable card fails before minutes of driving
            from mad_sim.model.evaluation.model_card_figures import CARD_PATH, read_card_figures

            figures = read_card_figures()
        panels = demo_panels(env, args.size, args.agents)
        summary = drive_and_record(env, driver, args.size, args.out, seed=args.seed, max_steps=steps, panels=panels)
        summary = {"agents": args.agents, "planner": args.planner, **summary}
        if learned:
            policy = drive.agent_policy
            info = policy.service.weights_info
            weights = "random" if info == "random" else "shipped" if args.weights in ("auto", "shipped") else "given"
            summary.update(
                weights=weights,
                weights_info=info,
                predictions=policy.stats.predictions,
                early_predictions=policy.stats.early,
                precision=policy.service.precision,
                precision_why=policy.service.precision_why,
                imagined_frames=sum(int(getattr(p, "shown", 0)) for p in panels),  # the ImaginedPanel's
                model_card=str(CARD_PATH.relative_to(CARD_PATH.parents[2])),
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
    if learned:
        print(headline_block(figures, summary["weights"], drive.agent_settings.preset))
    print(json.dumps(summary))
    return 0
