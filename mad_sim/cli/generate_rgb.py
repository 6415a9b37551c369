"""``mad-sim generate rgb --pose POSE.mp4 [--first-frame IMG] [--prompt TEXT] --out OUT.mp4``.

Dresses a pose video as camera video with the appearance adapter
(:class:`mad_sim.model.appearance.synthesizer.AppearanceSynthesizer`).  The pose video
must already have the adapter's size and ``tk + 1`` frames, ``t`` the VAE's
time compression (tiny: 4k + 1; nothing is resized or cut silently); ``--first-frame`` must be an image of that size.
With ``--side-by-side`` the output shows pose | synthesized.

``mad_sim.cli.generate`` nests this as the ``rgb`` action
(``add_rgb_parser(generate_subparsers)``); :func:`register` can add the same
thing as a top-level ``generate-rgb`` command for a parser of one's own.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Optional


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pose", required=True, help="pose video (.mp4/.gif), the adapter's size, tk+1 frames (tiny: 4k+1)")
    p.add_argument("--first-frame", help="RGB image (the scene's look; hard condition of frame 0)")
    p.add_argument("--prompt", help="text prompt, e.g. 'rainy night' (omit for none; empty is an error)")
    p.add_argument("--out", required=True, help="output video (.mp4 or .gif)")
    p.add_argument("--preset", default="tiny", help="backbone preset (tiny, ltx-2b, ltx-13b)")
    p.add_argument("--backbone", help="local diffusers directory of a path preset")
    p.add_argument("--weights", help="backbone weights file for built-in presets (default: shipped)")
    p.add_argument("--lora", help="appearance LoRA (default mad_sim/weights/<preset>_appearance.safetensors)")
    p.add_argument("--steps", type=int, default=8, help="sampler steps (>= 2)")
    p.add_argument("--guidance", type=float, default=1.0, help="text guidance scale (> 1 doubles the work)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--side-by-side", action="store_true", help="write pose | synthesized panels")


def check_inputs(pose: Any, pose_path: str, first: Any, first_path: Optional[str], preset: str) -> None:
    """Fail fast, before any model loads, on inputs the ``preset``'s appearance adapter cannot take.

    Raises ShapeError naming the file: a pose video whose frame count is not
    ``tk + 1`` (``t`` the preset VAE's time compression: 4 for tiny, 8 for
    LTX-Video) or whose size is not the preset's, a first frame of another size.
    """
    from mad_sim.errors import ShapeError
    from mad_sim.model.presets import PRESETS

    if preset not in PRESETS:
        return  # load_backbone names the unknown preset
    h, w = PRESETS[preset].default_size
    t = int(PRESETS[preset].vae.get("temporal_compression_ratio", 8))  # LTX-Video's reference config leaves it at 8
    f, ph, pw = (int(x) for x in pose.shape[:3])
    if (f - 1) % t:
        raise ShapeError(
            f"{pose_path}: pose video has {f} frames; the {preset} VAE takes {t}k+1 "
            f"({', '.join(str(t * k + 1) for k in (1, 2, 3))}, ...): cut it to {max(1, (f - 1) // t * t + 1)} frames"
        )
    if (ph, pw) != (h, w):
        raise ShapeError(
            f"{pose_path}: pose video is {ph}x{pw} pixels, the {preset} appearance adapter renders "
            f"{h}x{w} (render or resize the pose video to that size)"
        )
    if first is not None and tuple(first.shape[:2]) != (h, w):
        raise ShapeError(
            f"{first_path}: first frame is {first.shape[0]}x{first.shape[1]} pixels, expected {h}x{w} like the pose video"
        )


def add_rgb_parser(generate_subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``rgb`` action to ``mad-sim generate``'s subparsers."""
    p = generate_subparsers.add_parser(
        "rgb", help="pose video -> camera video (appearance adapter)", description=__doc__.split("\n\n")[1]
    )
    _arguments(p)
    p.set_defaults(func=run)
    return p


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("generate-rgb", help="pose video -> camera video (same as `generate rgb`)")
    _arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from mad_sim.cli.outputs import check_output
    from mad_sim.data.camera_files import check_rgb_frame, read_image, read_video
    from mad_sim.model.appearance.synthesizer import AppearanceSynthesizer, check_prompt
    from mad_sim.render.video import VIDEO_SUFFIXES, side_by_side, write_video

    prompt = check_prompt(args.prompt)  # before any loading: a bad prompt fails fast
    check_output(args.out, suffixes=VIDEO_SUFFIXES)
    pose, _ = read_video(args.pose)
    first = None if args.first_frame is None else check_rgb_frame(read_image(args.first_frame), args.first_frame)
    check_inputs(pose, args.pose, first, args.first_frame, args.preset)
    synth = AppearanceSynthesizer.from_pretrained(args.preset, path=args.backbone, lora=args.lora, weights=args.weights)
    t0 = time.perf_counter()
    frames = synth.synthesize(
        pose,
        first_frame=first,
        prompt=prompt,
        steps=args.steps,
        generator=torch.Generator().manual_seed(args.seed),
        guidance_scale=args.guidance,
    )
    seconds = time.perf_counter() - t0
    out = side_by_side([pose, frames], ["pose", "synthesized"], fps=args.fps) if args.side_by_side else frames
    write_video(args.out, out, fps=args.fps)
    print(
        json.dumps(
            {
                "out": str(args.out),
                "frames": int(len(frames)),
                "size": list(frames.shape[1:3]),
                "seconds": round(seconds, 3),
                "frames_per_second": round(len(frames) / seconds, 2),
            }
        )
    )
    return 0
