"""Model benchmarks (tiny preset, CPU): sampling, LoRA training steps, VAE per frame.

    python bench/bench_model.py [--repeats 5] [--size 128] [--frames 17]

Prints figures and ratios against baselines measured in the same run (never
asserts on time):

* a 4-step forecast of 17 frames at 128x128 (pose history 9 frames + ego-motion
  video as prepended condition tokens), split into condition encoding,
  denoising and decoding; baseline: diffusers' stock ``LTXPipeline`` on the
  same components with no conditions. Target: <= 0.5 s (the learned agents' forecast budget).
* one LoRA (rank 32) training step at batch 1 on pre-encoded latents;
  baseline: the same step training the whole transformer. Target: <= 0.15 s,
  not met on the 2-core machines (0.19-0.27 s): the step is compute-bound.
  Its 128 tokens (9-frame pose history, ego-motion video, 17-frame target)
  through the ~36M-parameter transformer cost about 7.5 GFLOP forward and as
  much again for the input gradients; the base model's matrix products, at
  about 150 GFLOP/s on two threads, are half of the step, the LoRA products
  (small, 80 modules) an eighth, element-wise ops a fifth (torch.profiler).
  Tried: bfloat16 autocast 0.175 s, frozen weights stored in bfloat16 0.19 s
  (its CPU attention backward is 3x slower), fused AdamW -4%,
  ``torch.compile`` 0.21 s (after 55 s of compiling).
* VAE encode / decode seconds per frame; switching adapters; the forecast
  with all-black pose tokens dropped, and under bfloat16 autocast (the
  learned agents' opt-in ``precision="bfloat16"``).  The VAE's batch-1
  float32 3-D convolutions run through oneDNN (``model/onednn_conv.py``);
  before that they took PyTorch's im2col fallback and the forecast took
  0.51-0.57 s, of which 0.13 s encoding and 0.04 s decoding.

On a machine shared with other jobs, wall times inflate and multi-threaded
CPU seconds include OpenMP spin-waiting; ``--threads 1`` gives CPU seconds
that measure the single-core cost (the idle 2-core wall time is then roughly
0.55-0.7x of it).

The context is the real WOMD log's SDC pose history and logged ego motion
(the data root: ``$MAD_SIM_DATA`` or ``../shared/data``), or noise when that file is missing.

Weights are random (timings do not depend on them).  Medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from mad_sim.data.root import data_root

CPU_SECONDS = {}


def _median(fn, repeats: int, name: str = "") -> float:
    """Median wall seconds of ``fn``; its median process CPU seconds go to CPU_SECONDS[name].

    CPU seconds (all threads) do not grow when other processes compete for the
    cores, so they stay comparable on a loaded machine (idle wall time lies
    between CPU / threads and CPU).
    """
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    if name:
        CPU_SECONDS[name] = statistics.median(cpu)
    return statistics.median(times)


def _context(args):
    """Pose history + ego-motion video of the real WOMD log (SDC), or noise if the shared data is missing."""

    import numpy as np

    from mad_sim.model import uint8_to_video

    s, f, h = args.size, args.frames, args.history
    path = data_root() / "womd" / "womd_scenario_input.tfrecord"
    if path.is_file():
        from mad_sim.data import load_scenario
        from mad_sim.render.ego_motion import EgoMotionRenderer
        from mad_sim.render.pose import PoseRenderer

        sc = load_scenario(path)
        vp, now = sc.sdc_index, sc.current_index
        hist = PoseRenderer(s, s).render_scenario(sc, vp, now - h + 1, now + 1)
        poses = np.concatenate(
            [sc.tracks.xy[vp, now - h + 1 : now + 1 + f], sc.tracks.heading[vp, now - h + 1 : now + 1 + f, None]], axis=1
        )
        ego = EgoMotionRenderer(s, s, seed=0).render(poses)[-f:]
        to = lambda a: uint8_to_video(torch.from_numpy(np.ascontiguousarray(a))).unsqueeze(0)  # noqa: E731
        return to(hist), to(ego), "womd"
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(1, 3, h, s, s, generator=gen) * 2 - 1, torch.rand(1, 3, f, s, s, generator=gen) * 2 - 1, "random")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--history", type=int, default=9)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads; with 1, the CPU seconds are the single-core cost even on a loaded machine",
    )
    args = ap.parse_args()
    from mad_sim.model.cpu_paths import describe  # the CPU fast paths this machine gets

    print(f"machine: {describe()}", flush=True)
    if args.threads:
        torch.set_num_threads(args.threads)

    from mad_sim.model import Condition, MADModel, load_backbone
    from mad_sim.model.onednn_conv import OneDNNConv3d
    from mad_sim.model.sampling import denoise

    torch.manual_seed(0)
    bb = load_backbone("tiny", weights="random", device="cpu")
    model = MADModel(bb)
    model.add_adapter("motion", rank=args.rank, alpha=args.rank)
    model.set_adapter("motion")
    s, f, r = args.size, args.frames, args.repeats
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    hist, ego, source = _context(args)
    conds = [Condition(hist, "pose_history"), Condition(ego, "ego_motion")]
    res = {"threads": torch.get_num_threads(), "size": s, "frames": f, "steps": args.steps, "context": source}

    with torch.inference_mode():
        res["forecast_s"] = _median(
            lambda: model.sample(conds, num_frames=f, height=s, width=s, steps=args.steps, generator=g()), r, "forecast_s"
        )
        res["forecast_drop_empty_s"] = _median(
            lambda: model.sample(
                conds, num_frames=f, height=s, width=s, steps=args.steps, generator=g(), drop_empty_pose_tokens=True
            ),
            r,
            "forecast_drop_empty_s",
        )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            res["forecast_bf16_s"] = _median(
                lambda: model.sample(conds, num_frames=f, height=s, width=s, steps=args.steps, generator=g()),
                r,
                "forecast_bf16_s",
            )
        masked = model.encode_conditions(conds, pose_masks=True)
        res["pose_tokens_kept"] = f"{int(masked[0].keep.sum())}/{masked[0].keep.numel()}"
        res["adapter_switch_ms"] = 1000 * _median(lambda: (model.set_adapter(None), model.set_adapter("motion")), max(r, 5)) / 2
        lat = model.encode_conditions(conds)
        e, m = bb.encode_prompts(None, 1)
        shape = (1,) + bb.latent_shape(f, s, s)
        res["encode_conditions_s"] = _median(lambda: model.encode_conditions(conds), r, "encode_conditions_s")
        res["denoise_s"] = _median(
            lambda: denoise(bb.denoiser, bb.scheduler, shape, lat, e, m, steps=args.steps, generator=g()), r, "denoise_s"
        )
        z = denoise(bb.denoiser, bb.scheduler, shape, lat, e, m, steps=args.steps, generator=g())
        res["decode_s"] = _median(lambda: bb.decode_latents(z), r, "decode_s")
        convs = [m for m in bb.vae.modules() if type(m) is OneDNNConv3d]
        for m in convs:  # baseline: PyTorch's own dispatch (im2col slow_conv3d for these batch-1 shapes)
            m.__class__ = torch.nn.Conv3d
        res["baseline_encode_conditions_default_conv_s"] = _median(
            lambda: model.encode_conditions(conds), r, "baseline_encode_conditions_default_conv_s"
        )
        res["baseline_decode_default_conv_s"] = _median(lambda: bb.decode_latents(z), r, "baseline_decode_default_conv_s")
        for m in convs:
            m.__class__ = OneDNNConv3d
        res["vae_encode_s_per_frame"] = res["encode_conditions_s"] / (args.history + f)
        res["vae_decode_s_per_frame"] = res["decode_s"] / f
        model.set_adapter(None)
        pipe = bb.pipeline()
        pipe.set_progress_bar_config(disable=True)
        patch = int(getattr(bb.transformer.config, "patch_size", 1))
        if patch > 1:  # diffusers' LTXPipeline packs latents 1x1 per token: it cannot run a patch-p transformer
            print(f"baseline_ltxpipeline_s: skipped, the transformer's patch size is {patch} (LTXPipeline runs patch 1 only)")
        res["baseline_ltxpipeline_s"] = (
            float("nan")
            if patch > 1
            else _median(
                lambda: pipe(
                    prompt="",
                    height=s,
                    width=s,
                    num_frames=f,
                    num_inference_steps=args.steps,
                    guidance_scale=1.0,
                    generator=g(),
                    output_type="pt",
                    max_sequence_length=bb.config.max_text_tokens,
                    frame_rate=bb.config.frame_rate,
                ),
                r,
                "baseline_ltxpipeline_s",
            )
        )
        model.set_adapter("motion")
        target = bb.encode_video(torch.rand(1, 3, f, s, s, generator=g()) * 2 - 1)

    def step(params, opt):
        loss = model.training_loss(None, target_latents=target, condition_latents=lat, generator=g())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    lora_params = model.adapter_parameters("motion")
    opt = torch.optim.AdamW(lora_params, lr=2e-4)
    res["lora_step_s"] = _median(lambda: step(lora_params, opt), r, "lora_step_s")
    model.set_adapter(None)
    full = list(bb.transformer.parameters())
    base_params = [p for n, p in bb.transformer.named_parameters() if "lora_" not in n]
    for p in base_params:
        p.requires_grad_(True)
    opt_full = torch.optim.AdamW(base_params, lr=2e-4)
    res["baseline_full_step_s"] = _median(lambda: step(full, opt_full), r, "baseline_full_step_s")
    for p in base_params:
        p.requires_grad_(False)

    res["forecast_vs_pipeline"] = res["forecast_s"] / res["baseline_ltxpipeline_s"]
    res["lora_vs_full_step"] = res["lora_step_s"] / res["baseline_full_step_s"]
    res["encode_vs_default_conv"] = res["encode_conditions_s"] / res["baseline_encode_conditions_default_conv_s"]
    res["decode_vs_default_conv"] = res["decode_s"] / res["baseline_decode_default_conv_s"]
    res["lora_steps_per_s"] = 1.0 / res["lora_step_s"]
    res["target_forecast_s"] = 0.5
    res["target_lora_step_s"] = 0.15
    for k, v in CPU_SECONDS.items():
        res[f"cpu:{k}"] = v
    if "baseline_ltxpipeline_s" in CPU_SECONDS:
        res["cpu:forecast_vs_pipeline"] = CPU_SECONDS["forecast_s"] / CPU_SECONDS["baseline_ltxpipeline_s"]
    res["cpu:lora_vs_full_step"] = CPU_SECONDS["lora_step_s"] / CPU_SECONDS["baseline_full_step_s"]
    try:
        res["load_average_1min"] = __import__("os").getloadavg()[0]
    except OSError:
        pass
    for k, v in res.items():
        print(f"{k:28s} {v:.4f}" if isinstance(v, float) else f"{k:28s} {v}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}))


if __name__ == "__main__":
    main()
