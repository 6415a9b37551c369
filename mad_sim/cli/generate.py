"""``mad-sim generate pose``: forecast a pose video from a log's context with the motion adapter.

    mad-sim generate pose --scenario FILE --viewpoint sdc --frames 17 --out OUT.mp4
                          [--ego-motion log|none|VIDEO|ACTIONS.npy] [--preset tiny] [--steps N]
                          [--boxes-agents IDS|auto [--boxes-shift DX,DY]]

The context is the viewpoint vehicle's pose video over the ``--history``
logged steps ending at the scenario's current step (rendered with
:class:`~mad_sim.render.pose.PoseRenderer`); the forecast covers the next
``--frames`` steps (10 Hz).  ``--ego-motion`` conditions on the ego's motion
over the forecast: ``log`` (the logged poses), ``none`` (unconditional), a
video file of ``--frames`` frames, or a ``.npy`` of ``[frames, 2]`` actions
(acceleration m/s^2, curvature 1/m) integrated with the bicycle model from the
present pose and speed.  Like the training clips, the ego-motion video is
rendered over history + future and its future part is used.  ``--boxes-agents``
(object control; a motion adapter trained with the boxes task) conditions on
the box video of the given tracks' logged future (comma-separated track
indices, slot order, or ``auto``: up to 3 vehicles visible over the whole
forecast, drawn by ``--seed``), seen from the viewpoint's logged future poses;
``--boxes-shift DX,DY`` moves those boxes DX metres forward and DY metres to
the left of each agent's heading, to ask for a future the log does not hold.
The summary then reports the forecast's follow IoU with the boxes.
``--compare`` writes log | forecast (| boxes | ego motion) side by side.
Prints a one-line JSON summary.

``mad-sim generate rgb`` (the appearance adapter) is added here when its
module is present.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from mad_sim.errors import ActionError, ConfigError, DataError


def _pose_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", required=True, help="WOMD .tfrecord or ScenarioNet .pkl file")
    p.add_argument("--index", type=int, default=0, help="scenario index inside the file")
    p.add_argument("--viewpoint", default="sdc", help="'sdc' or a track index (any valid vehicle)")
    p.add_argument("--frames", type=int, default=17, help="frames to forecast (tk+1: 4k+1 for tiny)")
    p.add_argument("--history", type=int, default=9, help="context frames ending at the current step (tk+1: 4k+1 for tiny)")
    p.add_argument("--at", type=int, default=None, help="present step (default: the scenario's current index)")
    p.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="pose video size (default: the preset's, 128 128 for tiny)",
    )
    p.add_argument("--ego-motion", default="log", help="log | none | video file | actions .npy [frames, 2]")
    p.add_argument("--out", required=True, help="output video (.mp4 or .gif)")
    p.add_argument("--preset", default="tiny", help="backbone preset (tiny, ltx-2b, ltx-13b)")
    p.add_argument("--backbone", help="local diffusers directory of a path preset")
    p.add_argument("--weights", help="backbone weights for built-in presets: file, dir or 'random' (default: shipped)")
    p.add_argument("--lora", help="motion LoRA file (default: mad_sim/weights/<preset>_motion.safetensors)")
    p.add_argument("--no-lora", action="store_true", help="use the base model without the motion adapter")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the preset's, 4 for tiny)")
    p.add_argument(
        "--guidance", type=float, default=None, help="guidance scale (default: the preset's, 1.0 for tiny, 3.5 for ltx-*)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare", action="store_true", help="write log | forecast panels (needs the logged future)")
    p.add_argument("--boxes-agents", help="object control: comma-separated track indices or 'auto'")
    p.add_argument("--boxes-shift", default="0,0", help="DX,DY metres (forward, left of each agent) added to the boxes")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("generate", help="generate videos with the world model (pose forecast, RGB)")
    sub = p.add_subparsers(dest="generate_command", metavar="KIND")
    pose = sub.add_parser(
        "pose", help="forecast a pose video from a log's context (motion adapter)", description=__doc__.split("\n\n")[1]
    )
    _pose_arguments(pose)
    pose.set_defaults(func=run_pose)
    try:
        from mad_sim.cli.generate_rgb import add_rgb_parser
    except ImportError:
        pass
    else:
        add_rgb_parser(sub)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def _viewpoint(value: str, scenario) -> int:
    if value == "sdc":
        return int(scenario.sdc_index)
    try:
        vp = int(value)
    except ValueError as exc:
        raise ConfigError(f"--viewpoint {value!r}: expected 'sdc' or a track index") from exc
    if not 0 <= vp < scenario.num_tracks:
        raise ConfigError(f"--viewpoint {vp}: track index outside [0, {scenario.num_tracks})")
    return vp


def _ego_video(args: argparse.Namespace, scenario, vp: int, t0: int, present: int, size) -> Any:
    from mad_sim.render.ego_motion import EgoMotionRenderer, poses_from_actions

    kind = args.ego_motion
    if kind == "none":
        return None
    h, w = size
    tr = scenario.tracks
    hist = np.concatenate([tr.xy[vp, t0 : present + 1], tr.heading[vp, t0 : present + 1, None]], axis=-1)
    renderer = EgoMotionRenderer(w, h, seed=args.seed)
    if kind == "log":
        end = present + 1 + args.frames
        if end > scenario.num_steps or not tr.valid[vp, t0:end].all():
            raise DataError(
                f"viewpoint {vp} has no complete logged future of {args.frames} steps after step "
                f"{present}; pass --ego-motion none or an actions .npy",
                path=args.scenario,
            )
        poses = np.concatenate([tr.xy[vp, t0:end], tr.heading[vp, t0:end, None]], axis=-1)
        return renderer.render(poses)[-args.frames :]
    path = Path(kind)
    if path.suffix == ".npy":
        if not path.is_file():
            raise DataError("no such actions file", path=str(path))
        actions = np.load(path, allow_pickle=False)
        if actions.shape != (args.frames, 2) or not np.isfinite(actions).all():
            raise ActionError(f"{path}: actions must be finite [{args.frames}, 2] (accel, curvature), got {actions.shape}")
        speed = float(np.hypot(*tr.velocity[vp, present]))
        future = poses_from_actions(speed, actions, tuple(hist[-1]))[1:]
        return renderer.render(np.concatenate([hist, future]))[-args.frames :]
    from mad_sim.data.camera_files import read_video

    frames, _ = read_video(path)
    if frames.shape[0] != args.frames or frames.shape[1:3] != (h, w):
        raise DataError(
            f"ego-motion video has {frames.shape[0]} frames of {frames.shape[1]}x{frames.shape[2]}; "
            f"need {args.frames} frames of {h}x{w}",
            path=str(path),
        )
    return frames


def _parse_shift(text: str) -> np.ndarray:
    try:
        shift = np.array([float(x) for x in text.split(",")])
    except ValueError:
        shift = np.zeros(0)
    if shift.shape != (2,) or not np.isfinite(shift).all():
        raise ConfigError(f"--boxes-shift {text!r}: expected two finite numbers DX,DY (metres)")
    return shift


def _box_video(args: argparse.Namespace, scenario, vp: int, present: int, camera) -> Any:
    """``(box video [frames, H, W, 3] uint8, agents [n])`` for ``--boxes-agents``, or ``(None, [])``."""
    if not args.boxes_agents:
        if args.boxes_shift not in ("0,0", "0", ""):
            raise ConfigError("--boxes-shift needs --boxes-agents")
        return None, np.zeros(0, np.int64)
    from mad_sim.model.object_control import MAX_SLOTS, box_video_from_trajectory, choose_controlled_agents

    shift = _parse_shift(args.boxes_shift)
    tr = scenario.tracks
    steps = np.arange(present + 1, present + 1 + args.frames)
    if steps[-1] >= scenario.num_steps or not tr.valid[vp, steps].all():
        raise DataError(
            f"--boxes-agents: viewpoint {vp} has no complete logged future of {args.frames} steps after "
            f"step {present} to place the boxes in",
            path=args.scenario,
        )
    if args.boxes_agents == "auto":
        agents = choose_controlled_agents(
            tr, scenario.object_types, vp, steps, camera, np.random.default_rng(args.seed), max_agents=3
        )
        if agents.size == 0:
            raise DataError(
                f"--boxes-agents auto: no vehicle is visible from viewpoint {vp} over the whole forecast", path=args.scenario
            )
    else:
        try:
            agents = np.array([int(x) for x in args.boxes_agents.split(",")], np.int64)
        except ValueError as exc:
            raise ConfigError(f"--boxes-agents {args.boxes_agents!r}: expected track indices like 3,17 or 'auto'") from exc
        bad = [int(a) for a in agents if not 0 <= a < scenario.num_tracks or a == vp]
        if bad or agents.size > MAX_SLOTS or len(set(agents.tolist())) != agents.size:
            raise ConfigError(
                f"--boxes-agents {args.boxes_agents}: need 1..{MAX_SLOTS} distinct track indices in "
                f"[0, {scenario.num_tracks}) other than the viewpoint {vp} (bad: {bad})"
            )
        if not tr.valid[agents][:, steps].any(1).all():
            raise DataError(
                f"--boxes-agents: track(s) {agents[~tr.valid[agents][:, steps].any(1)].tolist()} have no "
                f"valid logged step in the forecast span",
                path=args.scenario,
            )
    if shift.any():
        import copy

        tr = copy.deepcopy(tr)
        h = tr.heading[agents]
        fwd = np.stack([np.cos(h), np.sin(h)], -1)
        left = np.stack([-np.sin(h), np.cos(h)], -1)
        tr.xyz[agents, :, :2] += shift[0] * fwd + shift[1] * left
    return box_video_from_trajectory(tr, vp, agents, steps, camera), agents


def run_pose(args: argparse.Namespace) -> int:
    import torch

    from mad_sim.cli.outputs import check_output
    from mad_sim.data import load_scenario
    from mad_sim.model import MADModel, MotionPredictor, load_backbone
    from mad_sim.render.pose import PoseRenderer
    from mad_sim.render.video import VIDEO_SUFFIXES, side_by_side, write_video

    check_output(args.out, suffixes=VIDEO_SUFFIXES)
    timings = {}
    t = time.perf_counter()
    scenario = load_scenario(args.scenario, index=args.index)
    vp = _viewpoint(args.viewpoint, scenario)
    present = scenario.current_index if args.at is None else int(args.at)
    t0 = present - args.history + 1
    if t0 < 0 or present >= scenario.num_steps:
        raise ConfigError(
            f"--history {args.history} frames ending at step {present} do not fit the log "
            f"(steps 0..{scenario.num_steps - 1}); use a later --at or a shorter --history"
        )
    timings["load_scenario_s"] = time.perf_counter() - t

    t = time.perf_counter()
    backbone = load_backbone(args.preset, path=args.backbone, weights=args.weights)
    model = MADModel(backbone)
    adapter = None
    if not args.no_lora:
        if args.lora is not None:
            model.load_adapter("motion", args.lora)
        else:
            from mad_sim.model.backbone import WEIGHTS_DIR

            shipped = WEIGHTS_DIR / f"{args.preset}_motion.safetensors"
            if not shipped.is_file():
                from mad_sim.errors import CheckpointError

                raise CheckpointError(
                    f"{shipped}: no motion adapter; pass --lora PATH, train one with "
                    f"`mad-sim train motion`, or use --no-lora for the base model"
                )
            model.load_adapter("motion", shipped)
        adapter = "motion"
    predictor = MotionPredictor(model, adapter)
    timings["load_model_s"] = time.perf_counter() - t

    size = tuple(args.size) if args.size else tuple(backbone.config.default_size)
    backbone.check_size(args.frames, *size, what="--frames/--size")
    backbone.check_size(args.history, *size, what="--history/--size")
    t = time.perf_counter()
    renderer = PoseRenderer(camera=backbone.config.camera.camera(size[1], size[0]))
    history = renderer.render_scenario(scenario, vp, t0, present + 1)
    ego = _ego_video(args, scenario, vp, t0, present, size)
    boxes, box_agents = _box_video(args, scenario, vp, present, renderer.camera)
    timings["render_context_s"] = time.perf_counter() - t

    steps = backbone.config.sampler_steps if args.steps is None else args.steps
    guidance = backbone.config.guidance_scale if args.guidance is None else args.guidance
    t = time.perf_counter()
    frames = predictor.forecast(
        history,
        ego_motion=ego,
        num_frames=args.frames,
        steps=steps,
        generator=torch.Generator().manual_seed(args.seed),
        guidance_scale=guidance,
        boxes=boxes,
    )
    timings["forecast_s"] = time.perf_counter() - t
    extra = {}
    if boxes is not None:
        from mad_sim.model.object_control import follow_iou

        extra = {
            "boxes_agents": box_agents.tolist(),
            "boxes_shift_m": _parse_shift(args.boxes_shift).tolist(),
            "follow_iou": round(follow_iou(frames, boxes, len(box_agents)), 4),
        }

    t = time.perf_counter()
    out = frames
    if args.compare:
        end = present + 1 + args.frames
        if end > scenario.num_steps:
            raise ConfigError(f"--compare needs {args.frames} logged steps after step {present}")
        log_frames = renderer.render_scenario(scenario, vp, present + 1, end)
        panels = [log_frames, frames] + ([boxes] if boxes is not None else []) + ([ego] if ego is not None else [])
        out = side_by_side(
            panels, ["log", "forecast"] + (["boxes"] if boxes is not None else []) + (["ego motion"] if ego is not None else [])
        )
    write_video(args.out, out, fps=10.0)
    timings["write_s"] = time.perf_counter() - t
    print(
        json.dumps(
            {
                "out": str(args.out),
                "scenario": scenario.scenario_id,
                "viewpoint": vp,
                "present_step": present,
                "history": args.history,
                "frames": args.frames,
                "size": list(size),
                "preset": args.preset,
                "adapter": adapter,
                "ego_motion": args.ego_motion,
                "steps": steps,
                "guidance": guidance,
                **extra,
                **{k: round(v, 3) for k, v in timings.items()},
            }
        )
    )
    return 0
