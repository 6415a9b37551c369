"""Text sections of the tiny model card (MODEL_CARD.md), from the runs' configs and summaries.

Each function returns Markdown for one part of the card written by
:func:`mad_sim.model.evaluation.model_card.write_model_card`: the data, its
sources, the VAE, object control and the appearance adapter.  ``cfg`` is a
run's config as stored in its checkpoint (``TrainConfig`` as a dict),
``summaries`` maps stage -> :func:`~mad_sim.model.evaluation.model_card.run_summary`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional


def data_section(cfg: dict) -> str:
    """The clip geometry and, per source, its clip count (from the run's clip-cache manifest, when present)."""
    from mad_sim.config import from_dict
    from mad_sim.model.training.datasets import DatasetConfig, cache_key, default_cache_root

    data = from_dict(cfg.get("data") or {}, DatasetConfig, source="run config", prefix="data")
    spec = data.clip_spec()
    root = Path(os.path.expanduser(data.cache_dir)) if data.cache_dir else default_cache_root()
    manifest_path = root / cache_key(spec, data.sources, data.boxes, data.counterfactual) / "manifest.json"
    lines = [
        f"- clips: {spec.context_frames} context + {spec.future_frames} future frames at 10 Hz, "
        f"{spec.width}x{spec.height}, pose video + ego-motion video, viewpoint = any vehicle valid over the "
        f"whole window (window stride {spec.stride} steps, up to {spec.max_viewpoints} viewpoints per window)"
    ]
    counts: Dict[int, int] = {}
    if manifest_path.is_file():
        for c in json.loads(manifest_path.read_text())["clips"]:
            counts[int(c["source_index"])] = counts.get(int(c["source_index"]), 0) + 1
    for i, s in enumerate(data.sources):
        if s.kind == "file":
            what = s.path
        elif s.kind == "corpus":
            what = f"the corpus's `{s.path}` split"
        else:
            what = f"{s.count} procedural scenes (seeds {s.seed}..{s.seed + s.count - 1})"
        n = counts.get(i)
        lines.append(f"- {s.split}: {what}" + (f": {n} clips" if n is not None else ""))
    return "\n".join(lines)


def sources_text(cfg: dict) -> str:
    """Where the clips come from and what is held out, from the config's ``data.sources``."""
    sources = (cfg.get("data") or {}).get("sources") or []
    if any(s.get("kind") == "corpus" for s in sources):
        return (
            "Sources: the real-scene corpus of `../shared/data` (`mad_sim/data/corpus.py`: WOMD, Waymax, GPUDrive,\n"
            "Nocturne, ScenarioNet and nuScenes scenes, split into `train` and `val` by scene) and seeded\n"
            "procedural scenes (`mad_sim.data.procedural`); Waymo data under the Waymo Open Dataset terms\n"
            "(non-commercial). The `val` scenes are used only for evaluation: held-out losses and every\n"
            "figure below are measured on scenes never trained on."
        )
    return (
        "Sources: Waymo Open Motion Dataset samples and a ScenarioNet pickle from\n"
        "`../shared/data` (Waymo Open Dataset terms: non-commercial), plus seeded\n"
        "procedural scenes (`mad_sim.data.procedural`); the `eval` sources are used only for evaluation."
    )


def vae_text(summaries: Dict[str, dict], preset: str = "tiny") -> str:
    """The VAE paragraph; ``preset``: the shipped backbone's preset, whose VAE the run trained."""
    vae = summaries.get("vae")
    if not vae:
        return (
            "- VAE: **not trained**: the shipped `vae.*` weights are the preset's seeded random\n"
            "  initialisation with per-channel latent mean/std fitted on training clips; decoded\n"
            "  videos are not readable."
        )
    ev = vae.get("eval_last") or {}
    cfg = vae.get("config") or {}
    loss = cfg.get("vae_loss") or {}
    scores = (
        f"  Held-out reconstruction at the last checkpoint (8 held-out clips, "
        f"first {cfg.get('frames', 9)} frames): pose PSNR {ev.get('eval_psnr', float('nan')):.2f} dB, "
        f"line recall {ev.get('eval_recall', float('nan')):.3f} / precision {ev.get('eval_precision', float('nan')):.3f} "
        f"(`mad_sim/model/evaluation/vae_metrics.py`), ego-motion PSNR {ev.get('eval_ego_psnr', float('nan')):.2f} dB"
    )
    if "eval_rgb_psnr" in ev:
        scores += f", dashcam RGB PSNR {ev['eval_rgb_psnr']:.2f} dB (held-out quarter of the video)"
    return (
        f"- `vae`: `AutoencoderKLLTXVideo` in the LTX-Video 0.9.5 design ({compression(preset)};\n"
        "  space<->depth shortcuts in its samplers, see `presets.TINY_VAE`) trained from scratch\n"
        f"  on pose ({1 - loss.get('ego_fraction', 0) - loss.get('rgb_fraction', 0):.0%}), ego-motion "
        f"({loss.get('ego_fraction', 0):.0%}) and dashcam RGB ({loss.get('rgb_fraction', 0):.0%}) windows;\n"
        "  edge-weighted L1 + L2 and a small KL; deterministic latents (posterior mean); per-channel\n"
        "  latent mean/std stored in `latents_mean` / `latents_std`. The 0.9.0 design (strided convs\n"
        "  only) collapsed to the mean image in every from-scratch run.\n" + scores + "."
    )


def compression(preset_name: str) -> str:
    """``"8x space, 4x time, 16 latent channels"``: the VAE of preset ``preset_name``."""
    from mad_sim.model.presets import PRESETS

    preset = PRESETS.get(preset_name)
    if preset is None:
        return "compression unknown"
    v = preset.vae
    return (
        f"{v.get('spatial_compression_ratio', 32)}x space, {v.get('temporal_compression_ratio', 8)}x time, "
        f"{v.get('latent_channels', 128)} latent channels"
    )


def boxes_text(summaries: Dict[str, dict]) -> str:
    task = ((summaries.get("motion") or {}).get("config") or {}).get("task") or {}
    p = task.get("p_boxes", 0.0)
    if not p:
        return ""
    return (
        f"; with probability {p} a sample also gets the box video of 1-3 controlled\n"
        "  vehicles (object control, `mad_sim/model/object_control.py`)"
    )


def appearance_text(scores: dict, summary: Optional[dict]) -> str:
    """The appearance adapter's section from ``appearance_train --score``'s ``scores.json``."""

    def row(name: str, label: str) -> str:
        d = scores[name]
        return (
            f"| {label} | {d['eval_loss']:.4f} | {d['eval_loss_perturbed_pose']:.4f} | "
            f"{d['psnr']:.2f} / {d['ssim']:.3f} | {d['psnr_perturbed']:.2f} / {d['ssim_perturbed']:.3f} |"
        )

    rows = [row("untrained", "untrained (the base)")]
    rows += [
        row(k, lbl)
        for k, lbl in (("targeted_noise", "targeted noise (shipped)"), ("no_targeted_noise", "ablation: no targeted noise"))
        if k in scores
    ]
    ceiling = scores.get("vae_ceiling") or {}
    train = ""
    if summary:
        train = (
            f"- Training: {summary['steps']} steps, batch {summary['batch_size']}, AdamW lr {summary['lr']}, "
            f"train loss {summary['first_loss']} -> {summary['final_loss']}, {summary['minutes']} wall minutes.\n"
        )
    return f"""
## Appearance adapter (`tiny_appearance.safetensors`)

LoRA `appearance` (rank 32, alpha 32, the preset's six target projections) on
the frozen shipped backbone (metadata `trained_on_backbone_sha256`; a test fails
when the backbone is re-shipped without retraining the adapter). Pose video as
clean reference tokens, the first RGB frame (p = 0.5 in training) as the hard
condition of frame 0, targeted noise on the pose latents (patches with >= 5%
non-black pixels, `s ~ U(0, 0.3)`).

- Data: paired clips of `video/solidWhiteRight.mp4` with pose videos from the
  classical extractor (`mad_sim/model/appearance/pose_extract.py`), 17 frames at 10 Hz,
  128x128; {scores.get("held_out_clips", "?")} held-out clips from the last 25% of the video.
{train}- Held-out scores ({scores.get("sampler_steps", "?")} sampler steps, first frame given and not scored): flow-matching
  loss with clean and forecast-perturbed pose videos, PSNR (dB) / SSIM of the synthesized frames:

| adapter | loss, clean poses | loss, perturbed poses | PSNR / SSIM | PSNR / SSIM, perturbed |
|---|---|---|---|---|
{chr(10).join(rows)}

  The VAE's own encode -> decode of the held-out clips: PSNR {ceiling.get("psnr", float("nan")):.2f} dB,
  SSIM {ceiling.get("ssim", float("nan")):.3f} (the ceiling of any adapter on this backbone).
- Reproduce: `python -m mad_sim.model.training.appearance_train --config configs/train/tiny_appearance.yaml`
  (ablation arm: `--targeted-noise false --output-dir runs/tiny/appearance_no_tn`; scores and
  real | pose | synthesized images: `--score targeted_noise=... no_targeted_noise=... --out runs/tiny/appearance_eval`).
"""
