"""The ``appearance`` training stage: LoRA ``appearance`` on the frozen base, paired RGB / pose clips.

Plugs into :func:`mad_sim.model.training.loop.train` like the other stages
(``module``, ``loss(batch, rng, gen)``, ``trainable_state``,
``load_trainable_state``, ``eval_loss``, ``export``); its ``cache`` is an
:class:`~mad_sim.model.training.appearance_clips.AppearanceClips` (``train(cfg,
cache=AppearanceClips(build_appearance_clips(**shared_data_sources())))``).

Per sample (flow matching on the RGB clip's normalised latents ``x0``):

* condition ``pose`` (the clip's pose video, frame offset 0), with
  **targeted noise**: its latent patches that hold pose pixels (>= 5%
  non-black, :func:`~mad_sim.model.conditioning.pose_patch_mask`) become
  ``(1 - s) z + s eps``, ``s ~ U(0, targeted_noise_max)`` per sample
  (``targeted_noise: false`` trains the ablation without it);
* with probability ``p_first``, the clip's first RGB frame as the reference
  image (``first_frame``, offset 1000).  The LTX encoder is causal, so its
  latents are the first latent frame of ``x0``: no extra encoding.

The VAE is frozen, so RGB latents, pose latents and pose patch masks are
encoded once and cached beside the clips (``latents-<vae hash>.safetensors``).
``eval_loss`` scores held-out clips at fixed noise levels with clean poses
and with poses perturbed like forecasts (:func:`~mad_sim.model.evaluation.appearance.perturb_pose`),
the numbers the targeted-noise ablation compares.

Task knobs are read from ``cfg.task`` with defaults when absent:
``p_first`` (0.5), ``targeted_noise`` (True), ``targeted_noise_max`` (0.3).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from mad_sim.model.conditioning import pose_patch_mask
from mad_sim.model.ltx import LatentCondition
from mad_sim.model.noise import targeted_noise
from mad_sim.model.training.denoiser_stage import group_loss, load_trainable_state, trainable_state, vae_fingerprint
from mad_sim.model.training.stage_io import initial_backbone, save_safetensors, videos_to_tensor

log = logging.getLogger(__name__)


@torch.no_grad()
def encode_appearance_latents(
    backbone, clips, batch_size: int = 4, progress: bool = True, perturb_seed: int = 1234
) -> Dict[str, torch.Tensor]:
    """``{rgb, pose, pose_perturbed, mask}``: latents ``[K, C, f, h, w]`` and pose patch masks ``[K, f, h, w]``.

    ``pose_perturbed`` holds the latents of the eval clips' perturbed pose videos
    (zeros for train clips).  Cached in the clip folder (atomic).
    """
    from safetensors.torch import load_file

    from mad_sim.model.evaluation.appearance import perturb_pose

    path = Path(clips.folder) / f"latents-{vae_fingerprint(backbone.vae)}.safetensors"
    if path.is_file():
        try:
            out = load_file(str(path))
            if all(k in out and out[k].shape[0] == len(clips) for k in ("rgb", "pose", "pose_perturbed", "mask")):
                return out
        except Exception as exc:  # a damaged cache is rebuilt
            log.warning("latent cache %s unreadable (%s); re-encoding", path, exc)
    dev = backbone.device
    held = set(clips.indices("eval").tolist())
    rng = np.random.default_rng(perturb_seed)
    parts: Dict[str, list] = {"rgb": [], "pose": [], "pose_perturbed": [], "mask": []}
    for start in tqdm(range(0, len(clips), batch_size), desc="encoding appearance clips", disable=not progress):
        idx = np.arange(start, min(start + batch_size, len(clips)))
        rgb, pose = clips.batch(idx)
        pose_v = videos_to_tensor(pose, dev)
        parts["rgb"].append(backbone.encode_video(videos_to_tensor(rgb, dev)).float().cpu())
        parts["pose"].append(backbone.encode_video(pose_v).float().cpu())
        parts["mask"].append(
            pose_patch_mask(pose_v, temporal_ratio=backbone.temporal_ratio, spatial_ratio=backbone.spatial_ratio).cpu()
        )
        bad = np.stack([perturb_pose(p, rng) if int(k) in held else p for k, p in zip(idx, pose)])
        pert = backbone.encode_video(videos_to_tensor(bad, dev)).float().cpu()
        pert[[int(k) not in held for k in idx]] = 0.0
        parts["pose_perturbed"].append(pert)
    out = {k: torch.cat(v) for k, v in parts.items()}
    save_safetensors(out, path, {"vae": path.stem})
    return out


class AppearanceStage:
    """LoRA ``appearance`` training (see the module doc)."""

    def __init__(self, cfg, cache, device) -> None:
        from mad_sim.model.lora import add_lora, load_lora, read_lora, set_active

        self.cfg, self.cache, self.device = cfg, cache, device
        task = getattr(cfg, "task", None)
        self.p_first = float(getattr(task, "p_first", 0.5))
        self.use_targeted = bool(getattr(task, "targeted_noise", True))
        self.targeted_max = float(getattr(task, "targeted_noise_max", 0.3))
        bb = initial_backbone(cfg, device)
        self.backbone = bb
        self.latents = encode_appearance_latents(bb, cache)
        add_lora(bb.transformer, "appearance", cfg.lora.rank, cfg.lora.alpha, bb.config.lora_targets)
        if cfg.init_lora:
            sd, lcfg = read_lora(cfg.init_lora, "transformer")
            load_lora(bb.transformer, "appearance", sd, lcfg, source=cfg.init_lora)
        set_active(bb.transformer, "appearance")
        torch.manual_seed(cfg.seed)
        self.module = bb.denoiser
        self.eval_index = cache.indices("eval")[: cfg.eval_clips]
        self._text: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = {}

    def text(self, batch: int) -> Tuple[torch.Tensor, torch.Tensor]:
        if batch not in self._text:
            self._text[batch] = self.backbone.encode_prompts(None, batch)
        return self._text[batch]

    def conditions(
        self,
        lat: Dict[str, torch.Tensor],
        with_first: bool,
        gen: torch.Generator | None,
        pose_key: str = "pose",
        noised: bool = False,
    ) -> list:
        pose = lat[pose_key]
        if noised:
            pose = targeted_noise(pose, lat["mask"], gen, self.targeted_max)
        conds = [LatentCondition(pose, "pose", 0.0)]
        if with_first:
            conds.append(LatentCondition(lat["rgb"][:, :, :1], "first_frame", 1000.0))
        return conds

    def loss(self, batch: np.ndarray, rng: np.random.Generator, gen: torch.Generator) -> Tuple[torch.Tensor, Dict[str, float]]:
        idx = torch.as_tensor(np.asarray(batch))
        lat = {k: v[idx].to(self.device) for k, v in self.latents.items()}
        with_first = bool(rng.random() < self.p_first)
        x0 = lat["rgb"]
        b = x0.size(0)
        from mad_sim.model.noise import sample_sigmas

        sigma = sample_sigmas(b, int(x0[0, 0].numel()), gen, device=x0.device)
        eps = torch.randn(x0.shape, generator=gen).to(x0.device)
        conds = self.conditions(lat, with_first, gen, noised=self.use_targeted)
        loss = group_loss(self.module, x0, conds, self.text(b), sigma, eps)
        return loss, {"with_first": float(with_first)}

    def trainable_state(self) -> Dict[str, torch.Tensor]:
        return trainable_state(self.module)

    def load_trainable_state(self, sd: Dict[str, torch.Tensor]) -> None:
        load_trainable_state(self.module, sd, "the appearance stage (different LoRA parameters)")

    @torch.no_grad()
    def fixed_loss(self, pose_key: str, sigmas=(0.2, 0.4, 0.6, 0.8), seed: int = 0) -> float:
        """Held-out flow-matching loss at fixed noise levels and noise (first frame given)."""
        m = getattr(self.module, "module", self.module)
        total, count = 0.0, 0
        idx = torch.as_tensor(self.eval_index)
        lat = {k: v[idx].to(self.device) for k, v in self.latents.items()}
        for j, s in enumerate(sigmas):
            gen = torch.Generator().manual_seed(seed * 1000 + j)
            eps = torch.randn(lat["rgb"].shape, generator=gen).to(self.device)
            sigma = torch.full((len(idx),), float(s), device=self.device)
            loss = group_loss(m, lat["rgb"], self.conditions(lat, True, None, pose_key), self.text(len(idx)), sigma, eps)
            total += float(loss) * len(idx)
            count += len(idx)
        return total / max(count, 1)

    def eval_loss(self) -> Dict[str, float]:
        if self.eval_index.size == 0:
            return {}
        m = getattr(self.module, "module", self.module)
        m.eval()
        out = {"eval_loss": self.fixed_loss("pose"), "eval_loss_perturbed_pose": self.fixed_loss("pose_perturbed")}
        m.train()
        return out

    def export(self, folder: Path) -> Dict[str, Path]:
        from mad_sim.model.lora import save_lora

        path = Path(folder) / f"{self.cfg.preset}_appearance.safetensors"
        return {"appearance": save_lora(self.backbone.transformer, "appearance", path, prefix="transformer")}
