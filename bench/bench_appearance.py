"""RGB frames per second at 128x128 (tiny preset, chunked) against the pose-only step rate, same run.

    python bench/bench_appearance.py [--steps 4] [--chunk 17] [--frames 64] [--threads 1]

One thread is the default: on the shared 2-core machines (load average 3-5)
two threads ran a 17-frame chunk 5x slower (5.3 s against 1.0 s).

Pose-only: :class:`PoseRenderer` drawing the real WOMD scene from the SDC,
one ``render_state`` per step (what an RL loop with pose observations pays).
RGB: :class:`RGBChunkCache` asked for the frame of every step, pose frames
from the same renderer (one synthesis per ``chunk - 1`` steps).  Weights:
the shipped tiny backbone and appearance LoRA when present, otherwise a
random init of the same architecture (the time per frame does not depend on
the values).  Prints figures and ratios; never asserts on time.
Env: ``MADDrive-v0`` on the same scene stepped with a constant action,
``render_mode="pose"`` against ``render_mode="rgb_array"`` (``render()``
every step, the env's RGB camera: forecast pose lookahead + chunk cache),
both in this run; ``--env-steps 0`` skips it.  The load average is printed:
the machines are shared, and figures move with it.
Target: >= 10 RGB frames/s at 128x128 (camera frames as fast as the 10 Hz simulation makes them).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from mad_sim.data.root import data_root

REPO = Path(__file__).resolve().parents[1]
DATA = data_root()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=4, help="sampler steps per chunk")
    ap.add_argument("--chunk", type=int, default=17, help="frames per synthesis (8k+1)")
    ap.add_argument("--frames", type=int, default=64, help="episode steps to serve")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (also the env's rgb_threads)")
    ap.add_argument("--env-steps", type=int, default=48, help="env steps per render mode (0: skip the env figures)")
    ap.add_argument("--drop-empty", action="store_true", help="leave all-black pose patches out of the tokens")
    args = ap.parse_args()
    from mad_sim.model.cpu_paths import describe  # the CPU fast paths this machine gets

    print(f"machine: {describe()}", flush=True)
    torch.set_num_threads(args.threads)

    from mad_sim.data import load_scenario
    from mad_sim.model.appearance.synthesizer import AppearanceSynthesizer, RGBChunkCache
    from mad_sim.model.backbone import WEIGHTS_DIR, shipped_weights
    from mad_sim.model.backbone_loading import load_backbone
    from mad_sim.model.mad import MADModel
    from mad_sim.render.pose import PoseRenderer

    scenario = load_scenario(DATA / "womd" / "womd_scenario_input.tfrecord")
    renderer = PoseRenderer(128, 128)
    sdc = int(scenario.sdc_index)
    steps = min(args.frames, scenario.num_steps - 1)

    def pose_at(t: int) -> np.ndarray:
        return renderer.render_scenario(scenario, sdc, t, t + 1)[0]

    pose_at(0)
    t0 = time.perf_counter()
    for t in range(steps):
        pose_at(t)
    pose_fps = steps / (time.perf_counter() - t0)

    shipped = shipped_weights("tiny").is_file() and (WEIGHTS_DIR / "tiny_appearance.safetensors").is_file()
    if shipped:
        synth = AppearanceSynthesizer.from_pretrained("tiny", device="cpu")
    else:
        model = MADModel(load_backbone("tiny", weights="random", device="cpu"))
        model.add_adapter("appearance", rank=32, alpha=32)
        synth = AppearanceSynthesizer(model)

    def lookahead_from(t: int):
        def look(n: int) -> np.ndarray:
            ks = np.minimum(np.arange(t, t + n), scenario.num_steps - 1)
            return (
                renderer.render_scenario(scenario, sdc, int(ks[0]), int(ks[-1]) + 1)
                if ks[-1] - ks[0] == n - 1
                else np.stack([pose_at(int(k)) for k in ks])
            )

        return look

    warm = RGBChunkCache(synth, args.chunk, steps=args.steps)
    warm.frame(0, lookahead_from(0))  # first call pays one-off allocations
    cache = RGBChunkCache(synth, args.chunk, steps=args.steps, seed=1, drop_empty_pose_tokens=args.drop_empty)
    t0 = time.perf_counter()
    for t in range(steps):
        cache.frame(t, lookahead_from(t))
    rgb_s = time.perf_counter() - t0
    rgb_fps = steps / rgb_s
    t0 = time.perf_counter()
    synth.synthesize(lookahead_from(0)(args.chunk), steps=args.steps, generator=torch.Generator().manual_seed(0))
    one = time.perf_counter() - t0
    env_figures = env_rates(args) if args.env_steps > 0 else {}
    print(
        json.dumps(
            {
                "load_average_1min": round(os.getloadavg()[0], 2),
                "weights": "shipped" if shipped else "random-init (same architecture)",
                "threads": args.threads,
                "drop_empty_pose_tokens": args.drop_empty,
                "sampler_steps": args.steps,
                "chunk_frames": args.chunk,
                "episode_steps": steps,
                "pose_only_steps_per_s": round(pose_fps, 1),
                "rgb_frames_per_s_chunked": round(rgb_fps, 2),
                "rgb_syntheses": cache.stats.syntheses,
                "rgb_cache_hits": cache.stats.hits,
                "one_chunk_synthesis_s": round(one, 3),
                "rgb_frames_per_s_one_chunk": round(args.chunk / one, 2),
                "rgb_cost_vs_pose_step": round(pose_fps / rgb_fps, 1),
                "target_10_fps_met": bool(rgb_fps >= 10.0),
                **env_figures,
            },
            indent=1,
        )
    )


def env_rates(args: argparse.Namespace) -> dict:
    """Env steps/s with pose rendering vs with rgb_array rendering, every step, same scene and action."""
    import gymnasium as gym

    import mad_sim  # noqa: F401

    out = {}
    for mode in ("pose", "rgb_array"):
        env = gym.make(
            "MADDrive-v0",
            scenario=str(DATA / "womd" / "womd_scenario_input.tfrecord"),
            render_mode=mode,
            rgb_steps=args.steps,
            rgb_chunk_frames=args.chunk,
            rgb_threads=args.threads,
            terminate_on_collision=False,
            terminate_on_offroad=False,
        )
        env.reset(seed=0)
        env.render()  # loads the model (rgb_array) and fills the first chunk: not timed
        n = min(args.env_steps, env.unwrapped.state.remaining_log_steps)
        t0 = time.perf_counter()
        for _ in range(n):
            env.step(np.zeros(2, np.float32))
            env.render()
        out[f"env_{mode}_steps_per_s"] = round(n / (time.perf_counter() - t0), 2)
        if mode == "rgb_array":
            cam = env.unwrapped.rgb_camera
            out.update(env_rgb_syntheses=cam.stats.syntheses - 1, env_rgb_resyncs=cam.resyncs, env_rgb_weights=cam.weights)
        env.close()
    out["env_rgb_cost_vs_pose_step"] = round(out["env_pose_steps_per_s"] / out["env_rgb_array_steps_per_s"], 1)
    return out


if __name__ == "__main__":
    main()
