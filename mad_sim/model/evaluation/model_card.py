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
from mad_sim.model.evaluation.model_card_representation import representation_section
from mad_sim.model.evaluation.model_card_sections import appearance_text, boxes_text, data_section, sources_text, vae_text

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


def write_model_card(
    runs: PathLike,
    out: PathLike,
    shipped: Dict[str, Path],
    evaluation: Optional[dict] = None,
    command: str = "scripts/train_tiny.sh",
    appearance: Optional[dict] = None,
    parseback: Optional[PathLike] = None,
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
    app_run = runs / "appearance"
    app_summary = run_summary(app_run) if (app_run / "losses.json").is_file() else None
    total_minutes = sum(float(s["minutes"]) for s in [*summaries.values(), *([app_summary] if app_summary else [])])
    files = "\n".join(f"- `{p.name}`: {p.stat().st_size / 1e6:.1f} MB ({k})" for k, p in shipped.items())
    total = sum(p.stat().st_size for p in shipped.values()) / 1e6
    ev_txt = ""
    if evaluation:
        d = evaluation.get("denoising_loss", evaluation)
        ev_txt = (
            "\n## Held-out evaluation (motion adapter vs its base)\n\n"
            f"Held-out clips (never trained on): {d['num_clips']} clips, "
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
LTX-Video. It is a small model trained for {total_minutes:.0f} wall minutes in all on
2-core CPUs: it exercises every code path; how well it forecasts real scenes
it never saw is measured below (and in the README's status table), and it is
not yet a useful driving simulator. Use `ltx-2b` / `ltx-13b` with real weights for
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

{data_section(any_cfg)}

{sources_text(any_cfg)}

## Training

| stage | steps | batch | peak lr | train loss (first -> last 5) | held-out loss (own tasks, first 32 clips) | wall minutes |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{vae_text(summaries, str(base_cfg.get("preset", "tiny")))}
- `base`: the whole transformer, flow matching on the future pose video
  latents, unconditional or conditioned on the present frame (50/50), VAE frozen.
- `motion`: rank-limited LoRA on the frozen base; tasks pose history ->
  future and pose history + ego-motion video -> future, 50/50 per sample{boxes_text(summaries)}.
- All runs: AdamW, cosine schedule with linear warm-up, gradient clipping at
  1.0, seed 0, one or two CPU threads (each run's `threads`), on a
  machine shared with lighter jobs (wall minutes include that load; the
  one-off rendering and encoding of the clips is not included).
{ev_txt}
{representation_section(parseback)}
## Reproduce

```
{command}
```

(`configs/train/tiny_{{vae,base,motion}}.yaml`; the clip cache is built on the
first run under `~/.cache/mad-sim/clips`; then
`python -m mad_sim.model.evaluation.model_card --runs runs/tiny --out mad_sim/weights`.)
"""
    if appearance:
        text += appearance_text(appearance, app_summary)
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
    parseback: Optional[PathLike] = None,
) -> Dict[str, Path]:
    """Copy the final exports to ``out`` (backbone int8 + float16, adapters float16) and write the model card.

    ``vae_decoder``: a decoder-only VAE run's weights to put in place of the
    backbone's decoder (the encoder, hence the latent space, is unchanged).
    ``appearance``: the appearance adapter's ``scores.json`` (``appearance_train --score``)
    for the card's appearance section; ``parseback``: the shipped VAE's
    ``bench/bench_vae_parseback.py --json`` report for the representation section.
    ``<runs>/appearance/final/<preset>_appearance.safetensors``, when present, is shipped with the new
    backbone's sha256 in its metadata
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
    card = write_model_card(runs, out, shipped, ev, appearance=app, parseback=parseback)
    return {**shipped, "card": card}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Ship trained tiny weights (float16) and write MODEL_CARD.md")
    p.add_argument("--runs", default="runs/tiny")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "weights"))
    p.add_argument("--preset", default="tiny")
    p.add_argument("--evaluation", help="motion_eval.json from mad_sim.model.evaluation.motion")
    p.add_argument("--vae-decoder", help="decoder-only VAE weights (file or checkpoint folder) to ship")
    p.add_argument("--appearance", help="scores.json of appearance_train --score (the card's appearance section)")
    p.add_argument("--parseback", help="the shipped VAE's bench/bench_vae_parseback.py --json report")
    a = p.parse_args(argv)
    files = ship(a.runs, a.out, a.preset, a.evaluation, a.vae_decoder, a.appearance, a.parseback)
    print(json.dumps({k: str(v) for k, v in files.items()}, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
