"""The ``base`` and ``motion`` stages: flow matching on VAE latents of pose clips.

Both stages load a :class:`~mad_sim.model.backbone.Backbone` (VAE frozen)
and train on the **future** pose video of each clip (``future_frames``
frames, e.g. 17 -> 5 latent frames of 16x16 cells, 4x4 tokens each, at 128x128 with the tiny VAE).

Flow matching (LTX-Video's objective): with clean normalised latents ``x0``,
``eps ~ N(0, I)`` and a noise level ``s`` per sample (shifted logit-normal,
:func:`mad_sim.model.noise.sample_sigmas`),

    x_s = (1 - s) x0 + s eps,   loss = mean || v_theta(x_s, 1000 s, conditions) - (eps - x0) ||^2

over target tokens only; condition tokens are clean (timestep 0) and come
first in the sequence (:class:`~mad_sim.model.ltx.LTXDenoiser`).

Tasks (drawn per sample; samples of one task are run together):

- ``base`` (whole transformer trained, stand-in for a pretrained video
  model): unconditional pose video, or conditioned on the present frame
  (the last context frame, one frame placed just before the target:
  ``frame_offset = -1``), ``history_dropout`` / ``1 - history_dropout``.
- ``motion`` (LoRA ``motion`` on the frozen base): the pose history
  (``context_frames`` frames ending at the present, ``frame_offset =
  -context_frames``), plus with probability ``ego_condition_prob`` the
  ego-motion video of the target's time span (``frame_offset = 0``).
  With probability ``p_boxes`` (object control, the "conditional
  forecaster") a sample whose clip has controlled agents also gets their box
  video over the target's span (``kind="boxes"``, ``frame_offset = 0``;
  :mod:`mad_sim.model.object_control`): tasks ``history_boxes`` and
  ``history_ego_boxes``. The loss stays on the target tokens only. An adapter
  trained with ``p_boxes > 0`` records it in its safetensors metadata
  (:data:`BOXES_META_KEY`).

Because the VAE is frozen, every clip's latents (history, present frame,
future pose, future ego-motion) are encoded once and cached beside the clips
as ``latents-<vae hash>.safetensors`` (with the box videos' latents too when
the cache holds box videos).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from mad_sim.errors import CheckpointError, ConfigError
from mad_sim.model.training.stage_io import initial_backbone, save_safetensors, videos_to_tensor

log = logging.getLogger(__name__)

LATENT_KEYS = ("history", "present", "future", "ego")
TASKS = ("uncond", "present", "history", "history_ego", "history_boxes", "history_ego_boxes")
BOXES_META_KEY = "boxes_task"
"""Safetensors metadata key of a motion adapter trained with the boxes task (JSON: p_boxes, max_agents, slots)."""


def latent_keys(cache) -> Tuple[str, ...]:
    """The latent videos of a cache: :data:`LATENT_KEYS`, plus ``boxes`` when it holds box videos."""
    return LATENT_KEYS + (("boxes",) if getattr(cache, "boxes", None) is not None else ())


def vae_fingerprint(vae: torch.nn.Module) -> str:
    """Short sha256 of the VAE's weights: names the cached-latent file, so latents of another VAE are never reused."""
    h = hashlib.sha256()
    for k, v in sorted(vae.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_clip_latents(backbone, cache, batch_size: int = 8, progress: bool = True) -> Dict[str, torch.Tensor]:
    """Normalised latents of every clip: ``{history, present, future, ego[, boxes]}`` each ``[K, C, f, h, w]``.

    Cached in the clip folder as ``latents-<vae hash>.safetensors`` (atomic).
    ``boxes`` (the future's box videos) only for a cache built with them.
    """
    from safetensors.torch import load_file

    path = Path(cache.folder) / f"latents-{vae_fingerprint(backbone.vae)}.safetensors"
    if path.is_file():
        try:
            out = load_file(str(path))
            if all(k in out and out[k].shape[0] == len(cache) for k in latent_keys(cache)):
                return out
        except Exception as exc:  # a damaged cache file is rebuilt
            log.warning("latent cache %s unreadable (%s); re-encoding", path, exc)
    spec = cache.spec
    parts: Dict[str, List[torch.Tensor]] = {k: [] for k in latent_keys(cache)}
    dev = backbone.device
    for start in tqdm(range(0, len(cache), batch_size), desc="encoding clips", disable=not progress):
        idx = np.arange(start, min(start + batch_size, len(cache)))
        pose, ego = cache.batch(idx)
        videos = {
            "history": pose[:, spec.context_slice],
            "present": pose[:, spec.present : spec.present + 1],
            "future": pose[:, spec.future_slice],
            "ego": ego[:, spec.future_slice],
        }
        if "boxes" in parts:
            videos["boxes"] = cache.box_batch(idx)
        for k, v in videos.items():
            parts[k].append(backbone.encode_video(videos_to_tensor(v, dev)).float().cpu())
    out = {k: torch.cat(v) for k, v in parts.items()}
    save_safetensors(out, path, {"vae": path.stem})
    return out


def task_conditions(task: str, lat: Dict[str, torch.Tensor], context_frames: int) -> list:
    """The :class:`~mad_sim.model.ltx.LatentCondition` list of one task (batched latents)."""
    from mad_sim.model.ltx import LatentCondition

    if task == "uncond":
        return []
    if task == "present":
        return [LatentCondition(lat["present"], "pose_history", -1)]
    if task not in TASKS:
        raise ConfigError(f"unknown denoiser task {task!r} (known: {TASKS})")
    conds = [LatentCondition(lat["history"], "pose_history", -context_frames)]
    if task.startswith("history_ego"):
        conds.append(LatentCondition(lat["ego"], "ego_motion", 0))
    if task.endswith("_boxes"):
        conds.append(LatentCondition(lat["boxes"], "boxes", 0))
    return conds


def group_loss(
    denoiser, x0: torch.Tensor, conditions: list, text: Tuple[torch.Tensor, torch.Tensor], sigma: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """Flow-matching loss (mean over the group's latent elements) with given noise levels and noise.

    The model core's :func:`mad_sim.model.losses.flow_matching_loss`, so
    training and :meth:`MADModel.training_loss` optimise the same number.
    """
    from mad_sim.model.losses import flow_matching_loss

    return flow_matching_loss(denoiser, x0, conditions, text[0], text[1], sigmas=sigma, noise=eps)


@torch.no_grad()
def fixed_denoising_loss(
    denoiser,
    text_fn,
    latents: Dict[str, torch.Tensor],
    index: np.ndarray,
    task: str,
    context_frames: int,
    sigmas: Sequence[float] = (0.2, 0.4, 0.6, 0.8),
    seed: int = 0,
    batch_size: int = 16,
    device: Optional[torch.device] = None,
) -> float:
    """Mean flow-matching loss over clips ``index`` x fixed noise levels, with noise fixed by ``seed``.

    Deterministic: the same model, clips and seed give the same number, so two
    models (base vs adapted) are compared on identical noisy inputs.
    """
    total, count = 0.0, 0
    for start in range(0, len(index), batch_size):
        idx = torch.as_tensor(np.asarray(index[start : start + batch_size]))
        lat = {k: v[idx].to(device) for k, v in latents.items()}
        x0 = lat["future"]
        for j, s in enumerate(sigmas):
            gen = torch.Generator().manual_seed(int(seed) * 1000 + j)
            eps = torch.randn((len(index),) + tuple(x0.shape[1:]), generator=gen)[start : start + len(idx)].to(device)
            sigma = torch.full((len(idx),), float(s), device=device)
            loss = group_loss(denoiser, x0, task_conditions(task, lat, context_frames), text_fn(len(idx)), sigma, eps)
            total += float(loss) * len(idx)
            count += len(idx)
    return total / max(count, 1)


def trainable_state(module: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The parameters being trained (``requires_grad``) of ``module`` (unwrapped from accelerate's wrapper)."""
    m = getattr(module, "module", module)
    return {n: p.detach() for n, p in m.named_parameters() if p.requires_grad}


def load_trainable_state(module: torch.nn.Module, sd: Dict[str, torch.Tensor], what: str) -> None:
    """Copy a checkpoint's trainable tensors back; CheckpointError naming ``what`` if names or shapes differ."""
    m = getattr(module, "module", module)
    params = {n: p for n, p in m.named_parameters() if p.requires_grad}
    if set(params) != set(sd):
        missing, extra = sorted(set(params) - set(sd)), sorted(set(sd) - set(params))
        raise CheckpointError(f"checkpoint does not fit {what}: missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for n, p in params.items():
            if p.shape != sd[n].shape:
                raise CheckpointError(f"checkpoint tensor {n} has shape {tuple(sd[n].shape)}, model wants {tuple(p.shape)}")
            p.copy_(sd[n])


class DenoiserStage:
    """``base`` (whole transformer) or ``motion`` (LoRA adapter ``motion``) training."""

    def __init__(self, cfg, cache, device) -> None:
        from mad_sim.model.lora import add_lora, set_active

        if cfg.stage not in ("base", "motion"):
            raise ConfigError(f"stage {cfg.stage!r} is not built yet (available: vae, base, motion)")
        self.cfg, self.cache, self.device = cfg, cache, device
        self.spec = cache.spec
        p_boxes = float(getattr(cfg.task, "p_boxes", 0.0))
        if p_boxes > 0 and cfg.stage != "motion":
            raise ConfigError(f"task.p_boxes={p_boxes}: the boxes task belongs to the motion stage, not {cfg.stage!r}")
        if p_boxes > 0 and getattr(cache, "boxes", None) is None:
            raise ConfigError(
                f"task.p_boxes={p_boxes} needs box videos in the clip cache {cache.folder}: "
                "set data.boxes: {enabled: true} (builds a new cache folder)"
            )
        self.p_boxes = p_boxes
        # clips that can take the boxes task (at least one controlled agent)
        self.has_boxes = (np.asarray(cache.num_box_agents) > 0) if p_boxes > 0 else np.zeros(len(cache), bool)
        bb = initial_backbone(cfg, device)
        if cfg.fit_latent_stats:
            from mad_sim.model.training.vae_stage import latent_stats

            mean, std = latent_stats(bb.vae, cache, device)
            bb.set_latent_stats(mean, std)
            log.info("latent stats fitted: mean |m| %.4f, std %.4f", float(mean.abs().mean()), float(std.mean()))
        self.backbone = bb
        self.latents = encode_clip_latents(bb, cache, progress=True)
        self._text: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = {}
        if cfg.stage == "base":
            bb.transformer.requires_grad_(True)
        else:
            torch.manual_seed(cfg.seed)  # LoRA A is initialised from the global RNG: keep it seeded
            add_lora(bb.transformer, "motion", cfg.lora.rank, cfg.lora.alpha, bb.config.lora_targets)
            if cfg.init_lora:
                from mad_sim.model.lora import load_lora, read_lora

                sd, lcfg = read_lora(cfg.init_lora, "transformer")
                load_lora(bb.transformer, "motion", sd, lcfg, source=cfg.init_lora)
            set_active(bb.transformer, "motion")
        self.module = bb.denoiser
        self.eval_index = cache.indices("eval")[: cfg.eval_clips]
        self.eval_box_index = cache.box_indices("eval")[: cfg.eval_clips] if p_boxes > 0 else np.zeros(0, np.int64)

    # --- helpers -------------------------------------------------------------------
    def text(self, batch: int) -> Tuple[torch.Tensor, torch.Tensor]:
        if batch not in self._text:
            self._text[batch] = self.backbone.encode_prompts(None, batch)
        return self._text[batch]

    def draw_tasks(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Task name per sample of ``batch`` (clip indices), drawn by ``rng``.

        The boxes draw consumes ``rng`` only when ``p_boxes > 0``, so runs
        without it draw exactly what they drew before the task existed.
        """
        t = self.cfg.task
        n = len(batch)
        if self.cfg.stage == "base":
            return np.where(rng.random(n) < t.history_dropout, "uncond", "present")
        tasks = np.where(rng.random(n) < t.ego_condition_prob, "history_ego", "history").astype(object)
        if self.p_boxes > 0:
            boxed = (rng.random(n) < self.p_boxes) & self.has_boxes[np.asarray(batch, np.int64)]
            tasks[boxed] = tasks[boxed] + "_boxes"
        return tasks.astype(str)

    # --- stage protocol --------------------------------------------------------------
    def loss(self, batch: np.ndarray, rng: np.random.Generator, gen: torch.Generator) -> Tuple[torch.Tensor, Dict[str, float]]:
        from mad_sim.model.noise import sample_sigmas

        tasks = self.draw_tasks(batch, rng)
        idx = torch.as_tensor(batch)
        lat = {k: v[idx].to(self.device) for k, v in self.latents.items()}
        x0 = lat["future"]
        n_tokens = int(np.prod(x0.shape[2:]))
        sigma = sample_sigmas(len(batch), n_tokens, generator=gen).to(self.device)
        eps = torch.randn(x0.shape, generator=gen).to(self.device)
        total = torch.zeros((), device=self.device)
        parts: Dict[str, float] = {}
        for task in TASKS:
            sel = np.flatnonzero(tasks == task)
            if sel.size == 0:
                continue
            s = torch.as_tensor(sel, device=self.device)
            sub = {k: v[s] for k, v in lat.items()}
            per = group_loss(
                self.module,
                sub["future"],
                task_conditions(task, sub, self.spec.context_frames),
                self.text(len(sel)),
                sigma[s],
                eps[s],
            )
            total = total + per * len(sel)
            parts[f"loss_{task}"] = float(per.detach())
        return total / len(batch), parts

    def trainable_state(self) -> Dict[str, torch.Tensor]:
        return trainable_state(self.module)

    def load_trainable_state(self, sd: Dict[str, torch.Tensor]) -> None:
        load_trainable_state(self.module, sd, f"the {self.cfg.stage} stage")

    def eval_loss(self) -> Dict[str, float]:
        """Held-out denoising loss (fixed noise) of the current weights, per task."""
        if self.eval_index.size == 0:
            return {}
        m = getattr(self.module, "module", self.module)
        m.eval()
        tasks = ("uncond", "present") if self.cfg.stage == "base" else ("history", "history_ego")
        out = {
            f"eval_{t}": fixed_denoising_loss(
                m, self.text, self.latents, self.eval_index, t, self.spec.context_frames, device=self.device
            )
            for t in tasks
        }
        if self.eval_box_index.size:  # the boxes task and its no-box counterpart on the same clips
            for t in ("history", "history_boxes"):
                out[f"eval_{t}_boxclips"] = fixed_denoising_loss(
                    m, self.text, self.latents, self.eval_box_index, t, self.spec.context_frames, device=self.device
                )
        m.train()
        out["eval_loss"] = float(np.mean(list(out.values())))
        return out

    def export(self, folder: Path) -> Dict[str, Path]:
        from mad_sim.model.lora import save_lora

        folder = Path(folder)
        if self.cfg.stage == "base":
            return {"backbone": self.backbone.save_file(folder / f"{self.cfg.preset}.safetensors")}
        path = save_lora(
            self.backbone.transformer, "motion", folder / f"{self.cfg.preset}_motion.safetensors", prefix="transformer"
        )
        if self.p_boxes > 0:
            from mad_sim.model.object_control import MAX_SLOTS

            opts = self.cache.box_options
            add_metadata(
                path,
                {
                    BOXES_META_KEY: json.dumps(
                        {"p_boxes": self.p_boxes, "slots": MAX_SLOTS, "max_agents": opts.max_agents if opts else None}
                    )
                },
            )
        return {"motion": path}


def add_metadata(path: Path, extra: Dict[str, str]) -> None:
    """Rewrite a safetensors file with ``extra`` merged into its metadata (atomic; tensors unchanged)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from mad_sim.io import atomic_path

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
        sd = {k: f.get_tensor(k) for k in f.keys()}
    meta.update(extra)
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata=meta)


def boxes_task_info(path: Path) -> Optional[dict]:
    """The :data:`BOXES_META_KEY` record of a motion adapter file, or None if it was not trained with boxes."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get(BOXES_META_KEY)
    return json.loads(raw) if raw else None
