"""Run the ``appearance`` stage through the shared trainer, and score it (targeted-noise ablation).

The shared trainer (:func:`mad_sim.model.training.loop.train`) routes ``stage:
appearance`` to :class:`~mad_sim.model.training.appearance_stage.AppearanceStage`; this
module supplies what differs from the pose stages (``mad-sim train appearance``
calls it):

* the YAML (``configs/train/tiny_appearance.yaml``) is a ``TrainConfig``
  plus one ``appearance:`` section
  (:class:`~mad_sim.model.training.appearance_task.AppearanceTaskConfig`: ``p_first``,
  ``targeted_noise``, ``targeted_noise_max`` and the clip geometry ``clips``),
  read by :func:`~mad_sim.model.training.loop.load_train_config` into ``cfg.task``;
* :func:`train_appearance` builds (or reuses) the paired clip cache of the
  shared dashcam data, hands the knobs to the stage as ``cfg.task`` and runs
  :func:`~mad_sim.model.training.loop.train` on those clips (resumable like every
  stage: ``--resume``);
* :func:`score_adapter` measures an adapter file on the held-out clips: the
  flow-matching loss at fixed noise with clean and with forecast-perturbed
  poses, and PSNR / SSIM of synthesized frames (first real frame given);
  :func:`vae_ceiling` the VAE's own RGB reconstruction PSNR / SSIM (no
  synthesis can beat its decoder).

``python -m mad_sim.model.training.appearance_train --config configs/train/tiny_appearance.yaml [--resume]
[--targeted-noise false] [--output-dir DIR] [--steps N]``; with ``--score NAME=LORA ... --out DIR``
it scores the untrained adapter and each file instead (``DIR/scores.json``, ``DIR/comparison_<name>.png``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from mad_sim.config import read_yaml
from mad_sim.errors import ConfigError
from mad_sim.model.training.appearance_clips import AppearanceClips, build_appearance_clips, shared_data_sources
from mad_sim.model.training.appearance_task import AppearanceTaskConfig
from mad_sim.model.training.loop import TrainConfig, load_train_config, train

log = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]


def load_appearance_config(
    path: PathLike, overrides: Optional[Dict[str, Any]] = None, task_overrides: Optional[Dict[str, Any]] = None
) -> Tuple[TrainConfig, AppearanceTaskConfig]:
    """``(TrainConfig, AppearanceTaskConfig)`` from a YAML file (unknown keys name the file); the task is ``cfg.task``.

    :func:`~mad_sim.model.training.loop.load_train_config` reads the file (the one loader of
    every stage); ``task_overrides`` win over the file's ``appearance:`` keys.
    """
    over = dict(overrides or {})
    if task_overrides:
        section = over.get("appearance", read_yaml(path).get("appearance")) or {}
        over["appearance"] = {**section, **task_overrides}
    cfg = load_train_config(path, stage="appearance", overrides=over)
    if not isinstance(cfg.task, AppearanceTaskConfig):  # TrainConfig checks the task against the stage
        raise ConfigError(f"{path}: task is {type(cfg.task).__name__}, expected AppearanceTaskConfig")
    return cfg, cfg.task


def open_clips(task: AppearanceTaskConfig, progress: bool = True) -> AppearanceClips:
    """The paired clip cache of the shared data (built once, reused by spec and file fingerprint)."""
    return AppearanceClips(build_appearance_clips(**shared_data_sources(), spec=task.spec(), progress=progress))


def train_appearance(
    cfg,
    task: AppearanceTaskConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: Optional[int] = None,
    clips: Optional[AppearanceClips] = None,
):
    """Train (or resume) the appearance LoRA; returns the trainer's ``TrainResult``."""
    clips = clips if clips is not None else open_clips(task, progress)
    cfg = dataclasses.replace(cfg, task=task)  # AppearanceStage reads p_first / targeted_noise(_max) from cfg.task
    return train(cfg, resume=resume, progress=progress, stop_after=stop_after, cache=clips)


# --- scoring -------------------------------------------------------------------------------------
def _stage_for_scoring(cfg, task: AppearanceTaskConfig, clips: AppearanceClips, lora: Optional[PathLike]):
    from mad_sim.model.lora import load_lora, read_lora
    from mad_sim.model.training.appearance_stage import AppearanceStage

    cfg = dataclasses.replace(cfg, task=task, init_lora="")
    stage = AppearanceStage(cfg, clips, "cpu")
    if lora is not None:
        sd, lcfg = read_lora(lora, "transformer")
        load_lora(stage.backbone.transformer, "appearance", sd, lcfg, source=str(lora))
    return stage


@torch.no_grad()
def score_adapter(
    cfg,
    task: AppearanceTaskConfig,
    clips: AppearanceClips,
    lora: Optional[PathLike],
    *,
    steps: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> Tuple[Dict[str, float], Any]:
    """Held-out scores of the appearance LoRA file ``lora`` (None: the untrained adapter, i.e. the base model).

    Returns ``({eval_loss, eval_loss_perturbed_pose, psnr, ssim, psnr_perturbed, ssim_perturbed}, synthesizer)``.
    """
    from mad_sim.model.appearance.synthesizer import AppearanceSynthesizer
    from mad_sim.model.evaluation.appearance import evaluate_appearance
    from mad_sim.model.mad import MADModel

    stage = _stage_for_scoring(cfg, task, clips, lora)
    stage.module.eval()
    out = stage.eval_loss()
    model = MADModel(stage.backbone)
    synth = AppearanceSynthesizer(model, "appearance", size=(clips.spec.height, clips.spec.width))
    clean = evaluate_appearance(synth, clips, steps=steps, seed=seed, progress=progress)
    bad = evaluate_appearance(synth, clips, steps=steps, seed=seed, progress=progress, perturb=np.random.default_rng(1234))
    out.update(
        psnr=clean["psnr"],
        ssim=clean["ssim"],
        psnr_perturbed=bad["psnr"],
        ssim_perturbed=bad["ssim"],
        clips=clean["clips"],
        frames=clean["frames"],
    )
    return out, synth


@torch.no_grad()
def vae_ceiling(backbone, clips: AppearanceClips, split: str = "eval") -> Dict[str, float]:
    """PSNR / SSIM of the VAE's own encode -> decode of the held-out RGB clips (all frames)."""
    from mad_sim.model.conditioning import video_to_uint8
    from mad_sim.model.evaluation.appearance import psnr, ssim
    from mad_sim.model.training.stage_io import videos_to_tensor

    ps, ss = [], []
    for k in clips.indices(split):
        rgb, _ = clips.batch(np.array([k]))
        lat = backbone.encode_video(videos_to_tensor(rgb, backbone.device))
        rec = video_to_uint8(backbone.decode_latents(lat).float().clamp(-1, 1).cpu()).numpy()
        ps.append(psnr(rec, rgb))
        ss.append(ssim(rec, rgb))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)), "clips": len(ps)}


def report(
    cfg,
    task: AppearanceTaskConfig,
    adapters: Mapping[str, Optional[PathLike]],
    out: PathLike,
    *,
    steps: int = 8,
    seed: int = 0,
    image_adapter: Optional[str] = None,
    progress: bool = True,
) -> Dict[str, Any]:
    """Score each named adapter (None = untrained) and the VAE ceiling; write ``scores.json`` and comparison PNGs.

    ``comparison_<name>.png``: real | pose | synthesized rows of the first held-out clip (first real frame given).
    """
    from mad_sim.io import write_text_atomic
    from mad_sim.model.evaluation.appearance import comparison_image

    out = Path(out)
    clips = open_clips(task, progress)
    result: Dict[str, Any] = {
        "held_out_clips": int(len(clips.indices("eval"))),
        "sampler_steps": steps,
        "init_backbone": cfg.init_backbone,
    }
    k = clips.indices("eval")[:1]
    rgb, pose = clips.batch(k)
    for name, lora in adapters.items():
        scores, synth = score_adapter(cfg, task, clips, lora, steps=steps, seed=seed, progress=progress)
        result[name] = {**scores, "lora": None if lora is None else str(lora)}
        log.info("%s: %s", name, scores)
        if "vae_ceiling" not in result:
            result["vae_ceiling"] = vae_ceiling(synth.backbone, clips)
        if image_adapter is None or name == image_adapter:
            frames = synth.synthesize(pose[0], first_frame=rgb[0, 0], steps=steps, generator=torch.Generator().manual_seed(seed))
            comparison_image(rgb[0], pose[0], frames, out / f"comparison_{name}.png", scale=2)
    write_text_atomic(out / "scores.json", json.dumps(result, indent=1))
    return result


def ship_adapter(lora: PathLike, dst: PathLike, backbone: PathLike) -> Path:
    """Copy the appearance LoRA ``lora`` to ``dst`` in float16 (atomic), recording the backbone it was trained on.

    Metadata ``trained_on_backbone`` (file name) and ``trained_on_backbone_sha256`` let a user
    see when the shipped backbone changed under the adapter.
    """
    import hashlib

    from safetensors import safe_open
    from safetensors.torch import save_file

    from mad_sim.io import atomic_path

    h = hashlib.sha256()
    with open(backbone, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    with safe_open(str(lora), framework="pt") as f:
        meta = dict(f.metadata() or {})
        sd = {k: f.get_tensor(k) for k in f.keys()}
    sd = {k: (v.half() if v.dtype == torch.float32 else v).contiguous() for k, v in sd.items()}
    meta.update(stored_dtype="float16", trained_on_backbone=Path(backbone).name, trained_on_backbone_sha256=h.hexdigest())
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        save_file(sd, str(tmp), metadata=meta)
    dst.chmod(0o644)
    return dst


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--targeted-noise", choices=["true", "false"], help="override appearance.targeted_noise")
    p.add_argument("--output-dir")
    p.add_argument("--steps", type=int)
    p.add_argument("--stop-after", type=int)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--score",
        nargs="*",
        metavar="NAME=LORA",
        help="score instead of training: 'untrained' plus each NAME=LORA file (held-out loss, PSNR/SSIM)",
    )
    p.add_argument("--out", default="runs/tiny/appearance_eval", help="folder of --score's scores.json and images")
    p.add_argument("--sample-steps", type=int, default=8, help="sampler steps of --score")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    over = {k: v for k, v in (("output_dir", a.output_dir), ("steps", a.steps)) if v is not None}
    task_over = {} if a.targeted_noise is None else {"targeted_noise": a.targeted_noise == "true"}
    cfg, task = load_appearance_config(a.config, over, task_over)
    if a.score is not None:
        adapters: Dict[str, Optional[str]] = {"untrained": None}
        adapters.update(dict(item.split("=", 1) for item in a.score))
        print(json.dumps(report(cfg, task, adapters, a.out, steps=a.sample_steps, progress=not a.no_progress), indent=1))
        return 0
    res = train_appearance(cfg, task, resume=a.resume, progress=not a.no_progress, stop_after=a.stop_after)
    print(
        json.dumps(
            {
                "output_dir": str(res.output_dir),
                "steps": res.steps,
                "final_loss": res.final_loss,
                "seconds": round(res.seconds, 1),
                "exported": res.exported,
            }
        )
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
