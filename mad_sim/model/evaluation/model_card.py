"""Ship trained tiny weights into the package and write their model card.

``python -m mad_sim.model.evaluation.model_card --runs runs/tiny --out mad_sim/weights``
takes the final exports of the three training runs

- ``<runs>/base/final/<preset>.safetensors`` (VAE + transformer + text encoder,
  the single-file layout of :meth:`mad_sim.model.backbone.Backbone.save_file`),
- ``<runs>/motion/final/<preset>_motion.safetensors`` (diffusers-format LoRA),

stores them as float16 (halves the size; the loaders cast back to the
model's dtype on load; float16 keeps 10 mantissa bits, far below the noise
of a model trained for minutes) and writes ``MODEL_CARD.md`` with the data,
steps, losses, wall time and the command that reproduces them, read from the
runs' ``losses.json``, checkpoint ``meta.json`` and the clip manifest.
Optionally a held-out evaluation JSON (``mad_sim.model.evaluation.motion``) is
quoted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch

from mad_sim.errors import CheckpointError
from mad_sim.io import atomic_path, write_text_atomic

log = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]
STAGES = ("vae", "base", "motion")


def to_half(src: PathLike, dst: PathLike, replace: Optional[Dict[str, torch.Tensor]] = None, int8: bool = False) -> Path:
    """Copy a safetensors file with float32 tensors stored as float16 (metadata kept), atomically.

    ``replace``: tensors that override the file's (same keys and shapes only).
    ``int8``: store large weight matrices as row-wise int8 instead
    (:mod:`mad_sim.model.weights_codec`; the backbone loader decodes them).
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise CheckpointError(f"{src}: trained weights not found (did the training run finish and export?)")
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata() or {})
        sd = {k: f.get_tensor(k) for k in f.keys()}
    for k, v in (replace or {}).items():
        if k not in sd or sd[k].shape != v.shape:
            raise CheckpointError(f"{src}: cannot replace {k!r} (missing or shape {tuple(v.shape)} differs)")
        sd[k] = v
    if int8:
        from mad_sim.model.weights_codec import encode_state_dict

        out = encode_state_dict(sd)
        meta["stored_dtype"] = "int8 row-wise (large matrices) + float16"
    else:
        out = {k: (v.half() if v.dtype == torch.float32 else v).contiguous() for k, v in sd.items()}
        meta["stored_dtype"] = "float16"
    with atomic_path(dst) as tmp:
        save_file(out, str(tmp), metadata=meta)
    dst.chmod(0o644)  # package data: world-readable (the temporary file was 0600)
    return dst


def session_seconds(records: List[dict]) -> float:
    """Wall seconds of a run from its loss records (``time`` restarts at 0 after each resume)."""
    total, last = 0.0, 0.0
    for r in records:
        t = float(r.get("time", 0.0))
        if t < last:
            total += last
        last = t
    return total + last


def run_summary(run: Path) -> Dict[str, Any]:
    """Steps, batch, final train/eval losses and wall time of one run folder."""
    losses = json.loads((run / "losses.json").read_text())
    recs = losses["records"]
    if not recs:
        raise CheckpointError(f"{run}/losses.json: no loss record")
    from mad_sim.model.training.checkpoint import latest_checkpoint

    ck = latest_checkpoint(run / "checkpoints")
    cfg = json.loads((ck / "meta.json").read_text())["config"] if ck else {}
    tail = recs[-5:]
    out: Dict[str, object] = {
        "steps": recs[-1]["step"],
        "batch_size": cfg.get("batch_size"),
        "lr": (cfg.get("optim") or {}).get("lr"),
        "first_loss": round(recs[0]["loss"], 4),
        "final_loss": round(sum(r["loss"] for r in tail) / len(tail), 4),
        "minutes": round(session_seconds(recs) / 60.0, 1),
        "config": cfg,
    }
    evals = [r for r in recs if "eval_loss" in r]
    if evals:
        out["eval_first"] = {k: round(v, 4) for k, v in evals[0].items() if k.startswith("eval_")}
        out["eval_last"] = {k: round(v, 4) for k, v in evals[-1].items() if k.startswith("eval_")}
    return out


def _data_section(cfg: dict) -> str:
    from mad_sim.model.training.clips import ClipSpec
    from mad_sim.model.training.datasets import SourceConfig, cache_key, default_cache_root

    data = cfg.get("data") or {}
    spec = ClipSpec(**(data.get("spec") or {}))
    sources = [SourceConfig(**s) for s in data.get("sources") or []]
    root = Path(os.path.expanduser(data.get("cache_dir") or "")) if data.get("cache_dir") else default_cache_root()
    manifest_path = root / cache_key(spec, sources) / "manifest.json"
    lines = [
        f"- clips: {spec.context_frames} context + {spec.future_frames} future frames at 10 Hz, "
        f"{spec.width}x{spec.height}, pose video + ego-motion video, viewpoint = any vehicle valid over the "
        f"whole window (window stride {spec.stride} steps, up to {spec.max_viewpoints} viewpoints per window)"
    ]
    counts: Dict[str, Dict[str, int]] = {}
    if manifest_path.is_file():
        for c in json.loads(manifest_path.read_text())["clips"]:
            key = Path(c["source"]).name if c["source"] != "procedural" else "procedural scenes"
            counts.setdefault(key, {"train": 0, "eval": 0})[c["split"]] += 1
    for s in sources:
        name = Path(s.path).name if s.kind == "file" else "procedural scenes"
        n = counts.get(name, {}).get(s.split)
        what = s.path if s.kind == "file" else f"{s.count} procedural scenes (seeds {s.seed}..{s.seed + s.count - 1})"
        lines.append(f"- {s.split}: {what}" + (f": {n} clips" if n is not None else ""))
    return "\n".join(lines)


def _vae_text(summaries: Dict[str, dict]) -> str:
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
        f"  Held-out reconstruction at the last checkpoint (8 clips of the held-out scenario, "
        f"first {cfg.get('frames', 9)} frames): pose PSNR {ev.get('eval_psnr', float('nan')):.2f} dB, "
        f"line recall {ev.get('eval_recall', float('nan')):.3f} / precision {ev.get('eval_precision', float('nan')):.3f} "
        f"(`mad_sim/model/evaluation/vae_metrics.py`), ego-motion PSNR {ev.get('eval_ego_psnr', float('nan')):.2f} dB"
    )
    if "eval_rgb_psnr" in ev:
        scores += f", dashcam RGB PSNR {ev['eval_rgb_psnr']:.2f} dB (held-out quarter of the video)"
    return (
        "- `vae`: `AutoencoderKLLTXVideo` in the LTX-Video 0.9.5 design (32x space, 8x time;\n"
        "  space<->depth shortcuts in its samplers, see `presets.TINY_VAE`) trained from scratch\n"
        f"  on pose ({1 - loss.get('ego_fraction', 0) - loss.get('rgb_fraction', 0):.0%}), ego-motion "
        f"({loss.get('ego_fraction', 0):.0%}) and dashcam RGB ({loss.get('rgb_fraction', 0):.0%}) windows;\n"
        "  edge-weighted L1 + L2 and a small KL; deterministic latents (posterior mean); per-channel\n"
        "  latent mean/std stored in `latents_mean` / `latents_std`. The 0.9.0 design (strided convs\n"
        "  only) collapsed to the mean image in every from-scratch run.\n" + scores + "."
    )


def _boxes_text(summaries: Dict[str, dict]) -> str:
    task = ((summaries.get("motion") or {}).get("config") or {}).get("task") or {}
    p = task.get("p_boxes", 0.0)
    if not p:
        return ""
    return (
        f"; with probability {p} a sample also gets the box video of 1-3 controlled\n"
        "  vehicles (object control, `mad_sim/model/object_control.py`)"
    )


def _appearance_text(scores: dict, summary: Optional[dict]) -> str:
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


def write_model_card(
    runs: PathLike,
    out: PathLike,
    shipped: Dict[str, Path],
    evaluation: Optional[dict] = None,
    command: str = "scripts/train_tiny.sh",
    appearance: Optional[dict] = None,
) -> Path:
    """Write ``<out>/MODEL_CARD.md`` from the runs under ``runs`` (folders vae/, base/, motion/)."""
    runs = Path(runs)
    summaries = {s: run_summary(runs / s) for s in STAGES if (runs / s / "losses.json").is_file()}
    base_cfg = (summaries.get("base") or {}).get("config") or {}
    if "vae" in summaries and not base_cfg.get("init_vae"):
        del summaries["vae"]  # a VAE run the shipped backbone does not use
    any_cfg = next(iter(summaries.values()))["config"] if summaries else {}
    rows = []
    for stage, s in summaries.items():
        ev = s.get("eval_last") or {}
        rows.append(
            f"| {stage} | {s['steps']} | {s['batch_size']} | {s['lr']} | {s['first_loss']} -> {s['final_loss']} | "
            f"{ev.get('eval_loss', '')} | {s['minutes']} |"
        )
    files = "\n".join(f"- `{p.name}`: {p.stat().st_size / 1e6:.1f} MB ({k})" for k, p in shipped.items())
    total = sum(p.stat().st_size for p in shipped.values()) / 1e6
    ev_txt = ""
    if evaluation:
        d = evaluation.get("denoising_loss", evaluation)
        ev_txt = (
            "\n## Held-out evaluation (motion adapter vs its base)\n\n"
            f"Clips of `womd/motion_data_one_scenario.tfrecord` (never trained on): {d['num_clips']} clips, "
            f"noise levels {list(d['sigmas'])}, noise seed {d['seed']}; flow-matching denoising loss, lower is better.\n\n"
            "| task | base | motion LoRA | relative |\n|---|---|---|---|\n"
            + "\n".join(
                f"| {t} | {d['base'][t]:.4f} | {d['adapted'][t]:.4f} | {100 * d['relative_improvement'][t]:+.1f}% |"
                for t in d["base"]
            )
            + "\n"
        )
        sens = d.get("ego_sensitivity")
        if sens:
            ev_txt += (
                "\nEgo sensitivity (the history_ego loss with another clip's ego-motion video minus with its own; "
                f"about 0 means the model ignores the action it is given): base {sens['base']:+.5f}, "
                f"motion LoRA {sens['adapted']:+.5f}.\n"
            )
    text = f"""# mad-sim tiny world model

The embedded default of mad-sim: the LTX-Video architecture scaled down
(`tiny` preset in `mad_sim/model/presets.py`), trained from scratch on this
project's 2-core CPU machines because no pretrained tiny video model exists:
a base video model (stand-in for a pretrained backbone), then the `motion`
LoRA adapter on top of the frozen base, the way MAD adapts a pretrained
LTX-Video. It is a smoke-test-scale model trained for about an hour on
2-core CPUs: it exercises every code path, and its forecasts and camera
frames are blurry sketches of a scene (see the held-out scores below), not a
useful driving simulator. Use `ltx-2b` / `ltx-13b` with real weights for
quality.

## Files

{files}

Total {total:.1f} MB. The backbone's weight matrices are stored as row-wise
int8 with float32 row scales (`mad_sim/model/weights_codec.py`; decoded to
float32 on load, error at most half a quantisation step, 0.4% of a row's
largest magnitude), its small tensors as float16; the adapters as float16.
The backbone file holds `vae.*`, `transformer.*` and `text_encoder.*` (the
text encoder is the random-init tiny T5 of the preset, never trained:
prompts are empty). The adapter is a diffusers-format LoRA (rank
{(summaries.get("motion", {}).get("config") or {}).get("lora", {}).get("rank", "?")},
alpha {(summaries.get("motion", {}).get("config") or {}).get("lora", {}).get("alpha", "?")}, on `to_k, to_q, to_v,
to_out.0, ff.net.0.proj, ff.net.2`; the paper uses rank 512 / alpha 512 on
LTX-2B: a rank-512 adapter would be larger than this whole model).

## Data

{_data_section(any_cfg)}

Sources: Waymo Open Motion Dataset samples and a ScenarioNet pickle from
`../shared/data` (Waymo Open Dataset terms: non-commercial), plus seeded
procedural scenes (`mad_sim.data.procedural`). The held-out WOMD scenario
637f20cafde22ff8 (`motion_data_one_scenario.tfrecord`) is used only for
evaluation.

## Training

| stage | steps | batch | peak lr | train loss (first -> last 5) | held-out loss (own tasks, first 32 clips) | wall minutes |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{_vae_text(summaries)}
- `base`: the whole transformer, flow matching on the future pose video
  latents, unconditional or conditioned on the present frame (50/50), VAE frozen.
- `motion`: rank-limited LoRA on the frozen base; tasks pose history ->
  future and pose history + ego-motion video -> future, 50/50 per sample{_boxes_text(summaries)}.
- All runs: AdamW, cosine schedule with linear warm-up, gradient clipping at
  1.0, seed 0, one or two CPU threads as in `scripts/train_tiny.sh`, on a
  machine shared with other jobs (wall minutes are inflated by that load; the
  one-off encoding of all clips' latents, about 2-4 minutes, is not included).
{ev_txt}
## Reproduce

```
{command}
```

(`configs/train/tiny_{{vae,base,motion}}.yaml`; the clip cache is built on the
first run under `~/.cache/mad-sim/clips`; then
`python -m mad_sim.model.evaluation.model_card --runs runs/tiny --out mad_sim/weights`.)
"""
    if appearance:
        app_run = runs / "appearance"
        text += _appearance_text(appearance, run_summary(app_run) if (app_run / "losses.json").is_file() else None)
    path = Path(out) / "MODEL_CARD.md"
    write_text_atomic(path, text)
    path.chmod(0o644)
    return path


def decoder_tensors(vae_file: PathLike) -> Dict[str, torch.Tensor]:
    """``vae.decoder.*`` tensors of a VAE state-dict file (a ``vae`` stage export or checkpoint)."""
    from mad_sim.model.backbone import read_safetensors

    sd = read_safetensors(Path(vae_file) / "model.safetensors" if Path(vae_file).is_dir() else vae_file)
    out = {f"vae.{k}": v for k, v in sd.items() if k.startswith("decoder.")}
    if not out:
        raise CheckpointError(f"{vae_file}: holds no decoder.* tensor")
    return out


def ship(
    runs: PathLike,
    out: PathLike,
    preset: str = "tiny",
    evaluation: Optional[PathLike] = None,
    vae_decoder: Optional[PathLike] = None,
    appearance: Optional[PathLike] = None,
) -> Dict[str, Path]:
    """Copy the final exports to ``out`` (backbone int8 + float16, adapters float16) and write the model card.

    ``vae_decoder``: a decoder-only VAE run's weights to put in place of the
    backbone's decoder (the encoder, hence the latent space, is unchanged).
    ``appearance``: the appearance adapter's ``scores.json`` (``appearance_train --score``)
    for the card's appearance section; ``<runs>/appearance/final/<preset>_appearance.safetensors``,
    when present, is shipped with the new backbone's sha256 in its metadata
    (:func:`mad_sim.model.training.appearance_train.ship_adapter`).
    """
    runs, out = Path(runs), Path(out)
    replace = decoder_tensors(vae_decoder) if vae_decoder else None
    shipped = {
        "backbone": to_half(runs / "base" / "final" / f"{preset}.safetensors", out / f"{preset}.safetensors", replace, int8=True)
    }
    motion = runs / "motion" / "final" / f"{preset}_motion.safetensors"
    if motion.is_file():
        shipped["motion adapter"] = to_half(motion, out / f"{preset}_motion.safetensors")
    app_lora = runs / "appearance" / "final" / f"{preset}_appearance.safetensors"
    if app_lora.is_file():
        from mad_sim.model.training.appearance_train import ship_adapter

        shipped["appearance adapter"] = ship_adapter(app_lora, out / f"{preset}_appearance.safetensors", shipped["backbone"])
    ev = json.loads(Path(evaluation).read_text()) if evaluation else None
    app = json.loads(Path(appearance).read_text()) if appearance else None
    card = write_model_card(runs, out, shipped, ev, appearance=app)
    return {**shipped, "card": card}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Ship trained tiny weights (float16) and write MODEL_CARD.md")
    p.add_argument("--runs", default="runs/tiny")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "weights"))
    p.add_argument("--preset", default="tiny")
    p.add_argument("--evaluation", help="motion_eval.json from mad_sim.model.evaluation.motion")
    p.add_argument("--vae-decoder", help="decoder-only VAE weights (file or checkpoint folder) to ship")
    p.add_argument("--appearance", help="scores.json of appearance_train --score (the card's appearance section)")
    a = p.parse_args(argv)
    files = ship(a.runs, a.out, a.preset, a.evaluation, a.vae_decoder, a.appearance)
    print(json.dumps({k: str(v) for k, v in files.items()}, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
