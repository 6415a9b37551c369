"""``mad-sim render FILE --viewpoint sdc|TRACK --out OUT.mp4``: render a logged scenario as video.

Panels (``--panels``, comma-separated, in order): ``pose`` (the pose video
from the viewpoint's camera), ``ego`` (the sphere-and-dust ego-motion video
of the viewpoint's logged poses), ``bev`` (top-down debug view).  Prints a
JSON summary: ``frames``, ``width``, ``height`` (of the written video),
``seconds`` (its duration), plus ``fps``, ``viewpoint``, ``steps``, ``out``
and ``render_seconds`` (wall time spent rendering).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from typing import List, Tuple

import numpy as np

from mad_sim.errors import RenderError

PANELS = ("pose", "ego", "bev")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "render",
        help="render a scenario as a pose / ego-motion / BEV video",
        description="Render a logged scenario from one agent's viewpoint and write mp4 or gif.",
    )
    p.add_argument("file", metavar="FILE", help="WOMD .tfrecord or ScenarioNet .pkl file")
    p.add_argument("--index", type=int, default=0, help="which scenario of the file (default 0)")
    p.add_argument("--viewpoint", default="sdc", help="'sdc' or a track index (any valid track can be the camera)")
    p.add_argument("--out", required=True, help="output .mp4 or .gif")
    p.add_argument("--size", default="128x128", help="panel size WxH in pixels (default 128x128)")
    p.add_argument("--panels", default="pose", help="comma-separated panels among pose,ego,bev (default pose)")
    p.add_argument("--t0", type=int, default=None, help="first step (default: start of the viewpoint's valid run)")
    p.add_argument("--t1", type=int, default=None, help="end step, exclusive (default: end of that run)")
    p.add_argument("--fps", type=float, default=10.0, help="frames per second of the video (logs are 10 Hz)")
    p.add_argument("--seed", type=int, default=0, help="dust seed of the ego-motion panel")
    p.set_defaults(func=run)


def parse_size(text: str) -> Tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise RenderError(f"--size must look like 256x128, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_panels(text: str) -> List[str]:
    panels = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in panels if p not in PANELS]
    if bad or not panels:
        raise RenderError(f"--panels must be a comma-separated subset of {','.join(PANELS)}, got {text!r}")
    return panels


def valid_run(valid: np.ndarray, around: int) -> Tuple[int, int]:
    """``[t0, t1)`` of the contiguous run of True containing ``around`` (else the first run)."""
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        raise RenderError("the viewpoint track is never valid")
    at = around if valid[around] else int(idx[0])
    t0 = at
    while t0 > 0 and valid[t0 - 1]:
        t0 -= 1
    t1 = at
    while t1 < len(valid) and valid[t1]:
        t1 += 1
    return t0, t1


def run(args: argparse.Namespace) -> int:
    from mad_sim.cli.outputs import check_output
    from mad_sim.data import load_scenario
    from mad_sim.render.bev import render_bev
    from mad_sim.render.ego_motion import EgoMotionRenderer
    from mad_sim.render.pose import PoseRenderer
    from mad_sim.render.video import VIDEO_SUFFIXES, side_by_side, write_video
    from mad_sim.world.state import WorldState

    width, height = parse_size(args.size)
    panels = parse_panels(args.panels)
    check_output(args.out, suffixes=VIDEO_SUFFIXES)
    scenario = load_scenario(args.file, index=args.index)
    if args.viewpoint.strip().lower() == "sdc":
        vp = scenario.sdc_index
    elif re.fullmatch(r"\d+", args.viewpoint.strip()):
        vp = int(args.viewpoint)
    else:
        raise RenderError(f"--viewpoint must be 'sdc' or a track index, got {args.viewpoint!r}")
    if not 0 <= vp < scenario.num_tracks:
        raise RenderError(f"{scenario.source}: viewpoint track {vp} outside [0, {scenario.num_tracks})")
    d0, d1 = valid_run(scenario.tracks.valid[vp], scenario.current_index)
    t0 = d0 if args.t0 is None else args.t0
    t1 = d1 if args.t1 is None else args.t1
    start = time.perf_counter()
    frames = []
    labels = []
    for name in panels:
        if name == "pose":
            frames.append(PoseRenderer(width, height).render_scenario(scenario, vp, t0, t1))
        elif name == "ego":
            tr = scenario.tracks
            steps = np.arange(t0, t1)
            if not tr.valid[vp, steps].all():
                raise RenderError(f"{scenario.source}: viewpoint track {vp} is not valid over steps [{t0}, {t1})")
            poses = np.concatenate([tr.xy[vp, steps], tr.heading[vp, steps][:, None]], 1)
            frames.append(EgoMotionRenderer(width, height, seed=args.seed).render(poses - [*poses[0, :2], 0.0]))
        else:
            bev = []
            for t in range(t0, t1):
                state = WorldState(scenario=scenario, sim=scenario.tracks, timestep=t, ego_index=vp)
                bev.append(render_bev(state, size=(height, height)))
            frames.append(np.stack(bev))
        labels.append(name)
    video = side_by_side(frames, labels if len(frames) > 1 else None, time_label=True, fps=args.fps, t0=float(t0 * 0.1))
    elapsed = time.perf_counter() - start
    out = write_video(args.out, video, fps=args.fps)
    print(
        json.dumps(
            {
                "frames": int(video.shape[0]),
                "width": int(video.shape[2]),
                "height": int(video.shape[1]),
                "seconds": round(video.shape[0] / args.fps, 3),
                "fps": args.fps,
                "viewpoint": vp,
                "steps": [t0, t1],
                "panels": panels,
                "out": str(out),
                "render_seconds": round(elapsed, 3),
            }
        )
    )
    return 0
