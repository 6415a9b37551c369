"""`MADModel`: one backbone, named LoRA adapters, conditions, the training loss and the sampler.

    model = MADModel(load_backbone("tiny", weights="random"))
    model.add_adapter("motion", rank=32, alpha=32)
    model.set_adapter("motion")
    loss = model.training_loss(target, [Condition(history, "pose_history")], generator=g)
    video = model.sample([Condition(history, "pose_history")], num_frames=17, height=128, width=128,
                         steps=4, generator=g)          # [B, 3, 17, 128, 128] in [-1, 1]

Conditions are encoded by the backbone's VAE (no gradient through the VAE)
and, for the LTX family, prepended as clean tokens at their own RoPE
coordinates (:mod:`mad_sim.model.ltx`); the SVD family concatenates them as
channels (:mod:`mad_sim.model.svd`).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch

import mad_sim.model.lora as _lora
from mad_sim.errors import CheckpointError, ShapeError
from mad_sim.model.conditioning import POSE_KINDS, Condition, pose_patch_mask
from mad_sim.model.lora_convert import convert_authors_lora
from mad_sim.model.losses import flow_matching_loss
from mad_sim.model.ltx import LatentCondition
from mad_sim.model.noise import targeted_noise
from mad_sim.model.sampling import denoise

log = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]

ADAPTER_NAMES = ("motion", "appearance")


class MADModel:
    """The MAD world model over one :class:`~mad_sim.model.backbone.Backbone`."""

    def __init__(self, backbone) -> None:
        self.backbone = backbone

    # ------------------------------------------------------------------ adapters
    @property
    def denoiser(self) -> torch.nn.Module:
        return self.backbone.denoiser

    @property
    def _lora_module(self) -> torch.nn.Module:
        return self.backbone.denoiser.model

    @property
    def _lora_prefix(self) -> str:
        return "transformer" if self.backbone.family == "ltx" else "unet"

    @property
    def adapters(self) -> List[str]:
        return _lora.adapter_names(self._lora_module)

    @property
    def active_adapter(self) -> Optional[str]:
        return _lora.active_adapter(self._lora_module)

    def add_adapter(
        self, name: str, rank: Optional[int] = None, alpha: Optional[float] = None, targets: Optional[Sequence[str]] = None
    ) -> None:
        """Add LoRA adapter ``name`` (rank defaults to the preset's ``adapter_rank``, alpha to rank, targets to
        the preset's, the paper's six)."""
        rank = int(self.backbone.config.adapter_rank if rank is None else rank)
        _lora.add_lora(
            self._lora_module,
            name,
            rank,
            float(rank if alpha is None else alpha),
            list(targets or self.backbone.config.lora_targets),
        )

    def set_adapter(self, name: Optional[str]) -> None:
        """Activate adapter ``name``; None disables every adapter (the base model exactly)."""
        _lora.set_active(self._lora_module, name)

    def adapter_parameters(self, name: str) -> List[torch.nn.Parameter]:
        """The trainable LoRA parameters of ``name`` (for the optimizer)."""
        return _lora.lora_parameters(self._lora_module, name)

    def adapter_state_dict(self, name: str) -> Dict[str, torch.Tensor]:
        return _lora.adapter_state_dict(self._lora_module, name)

    def save_adapter(self, name: str, path: PathLike) -> Path:
        """Write adapter ``name`` as diffusers-format LoRA safetensors (``path`` a .safetensors file or a dir)."""
        return _lora.save_lora(self._lora_module, name, path, self._lora_prefix)

    def load_adapter(self, name: str, path: PathLike) -> None:
        """Load a diffusers-format LoRA file as adapter ``name`` (created from the file's config if absent)."""
        sd, cfg = _lora.read_lora(path, self._lora_prefix)
        _lora.load_lora(self._lora_module, name, sd, cfg, source=str(path))

    def load_authors_lora(self, path_or_state_dict: Union[PathLike, Mapping[str, torch.Tensor]], name: str = "motion") -> None:
        """Load LoRA weights in the MAD authors' LTX-Video-Trainer layout as adapter ``name``."""
        if isinstance(path_or_state_dict, Mapping):
            sd, source = dict(path_or_state_dict), "<state dict>"
        else:
            from mad_sim.model.backbone import read_safetensors

            sd, source = read_safetensors(path_or_state_dict), str(path_or_state_dict)
        if self.backbone.family != "ltx":
            raise CheckpointError(f"{source}: the authors' LoRA layout is for LTX backbones, not {self.backbone.config.name}")
        peft_sd, cfg = convert_authors_lora(sd, source)
        _lora.load_lora(self._lora_module, name, peft_sd, cfg, source=source)

    # ------------------------------------------------------------------ conditions
    def encode_conditions(
        self, conditions: Sequence[Condition], batch: Optional[int] = None, pose_masks: bool = False
    ) -> List[LatentCondition]:
        """VAE-encode each condition (no gradient); pose kinds get their patch masks when asked."""
        out: List[LatentCondition] = []
        bb = self.backbone
        for i, cond in enumerate(conditions):
            if not isinstance(cond, Condition):
                raise ShapeError(f"conditions[{i}]: expected a Condition, got {type(cond).__name__}")
            if batch is not None and cond.video.size(0) != batch:
                raise ShapeError(f"condition {cond.kind!r}: batch {cond.video.size(0)} != target batch {batch}")
            bb.check_video(cond.video, what=f"condition {cond.kind!r}")
            with torch.no_grad():
                lat = bb.encode_video(cond.video)
            keep = None
            if pose_masks and cond.kind in POSE_KINDS:
                keep = pose_patch_mask(
                    cond.video.to(lat.device), temporal_ratio=bb.temporal_ratio, spatial_ratio=bb.spatial_ratio
                )
            emb = None
            if hasattr(bb, "condition_embedding"):
                with torch.no_grad():
                    emb = bb.condition_embedding(cond.video)
            out.append(LatentCondition(lat, cond.kind, float(cond.offset), keep, emb))
        return out

    # ------------------------------------------------------------------ training
    def training_loss(
        self,
        target_video: torch.Tensor,
        conditions: Sequence[Condition] = (),
        prompts: Optional[Sequence[str]] = None,
        generator: Optional[torch.Generator] = None,
        *,
        targeted_noise_on_pose: bool = False,
        targeted_noise_max: float = 0.3,
        sampler: str = "shifted_logit_normal",
        target_latents: Optional[torch.Tensor] = None,
        condition_latents: Optional[Sequence[LatentCondition]] = None,
        sigmas: Optional[torch.Tensor] = None,
        noise: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Flow-matching loss (scalar, differentiable w.r.t. the active adapter / denoiser).

        Args:
          target_video: [B, 3, F, H, W] in [-1, 1] (a size ``Backbone.check_size`` accepts); ignored when
            ``target_latents`` (pre-encoded, normalised) are given.
          conditions: pixel conditions, or pass ``condition_latents`` already encoded.
          prompts: B strings or None (empty prompts).
          generator: drives noise levels, noise and targeted noise.
          targeted_noise_on_pose: corrupt pose-holding patches of pose conditions
            (``ref = (1-s) ref + s eps``, ``s ~ U(0, targeted_noise_max)`` per sample).
          sampler: noise-level sampler (:mod:`mad_sim.model.noise`).
          sigmas, noise: fixed draws for comparable evaluation losses.
        """
        bb = self.backbone
        if target_latents is None:
            bb.check_video(target_video, what="target_video")
            with torch.no_grad():
                target_latents = bb.encode_video(target_video)
        x0 = target_latents.to(bb.device, bb.dtype)
        b = x0.size(0)
        if condition_latents is None:
            condition_latents = self.encode_conditions(conditions, batch=b, pose_masks=targeted_noise_on_pose)
        conds = list(condition_latents)
        if targeted_noise_on_pose:
            noised = []
            for c in conds:
                if c.kind in POSE_KINDS:
                    if c.keep is None:
                        raise ShapeError(f"targeted noise needs the pose patch mask of condition {c.kind!r}")
                    c = LatentCondition(
                        targeted_noise(c.latents, c.keep, generator, targeted_noise_max),
                        c.kind,
                        c.frame_offset,
                        c.keep,
                        c.embedding,
                    )
                noised.append(c)
            conds = noised
        embeds, mask = bb.encode_prompts(prompts, b)
        return flow_matching_loss(self.denoiser, x0, conds, embeds, mask, generator, sampler, sigmas, noise)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        conditions: Sequence[Condition] = (),
        num_frames: int = 17,
        height: int = 128,
        width: int = 128,
        steps: Optional[int] = None,
        guidance_scale: Optional[float] = None,
        generator: Optional[torch.Generator] = None,
        prompts: Optional[Sequence[str]] = None,
        negative_prompt: str = "",
        drop_empty_pose_tokens: bool = False,
        batch_size: Optional[int] = None,
        return_latents: bool = False,
        progress: bool = False,
        latents: Optional[torch.Tensor] = None,
        init_video: Optional[torch.Tensor] = None,
        strength: float = 1.0,
    ) -> torch.Tensor:
        """Generate a video ``[B, 3, num_frames, height, width]`` in [-1, 1].

        ``B`` comes from the conditions, the prompts, ``latents`` or ``batch_size``.  ``steps`` /
        ``guidance_scale`` None: the preset's (:attr:`~mad_sim.model.presets.Preset.sampler_steps`,
        ``guidance_scale``).  ``latents``: the initial noise ``[B, C, f, h, w]`` (float32; default drawn from
        ``generator``), e.g. one seeded draw per request of a batch.  With ``drop_empty_pose_tokens`` the
        tokens of all-black pose patches (no patch of the batch holds >= 5% pose pixels) are left out.
        ``init_video`` ``[B, 3, num_frames, height, width]`` in [-1, 1] with ``strength`` < 1: start from
        that video noised to ``strength`` of the schedule instead of pure noise (SDEdit;
        :func:`~mad_sim.model.sampling.denoise`).
        """
        bb = self.backbone
        bb.check_size(num_frames, height, width, what="sample")
        steps = int(bb.config.sampler_steps if steps is None else steps)
        guidance_scale = float(bb.config.guidance_scale if guidance_scale is None else guidance_scale)
        b = batch_size
        if latents is not None:
            b = latents.size(0)
        if conditions:
            b = conditions[0].video.size(0)
        elif prompts is not None:
            b = len(prompts)
        b = b or 1
        t0 = time.perf_counter()
        conds = self.encode_conditions(conditions, batch=b, pose_masks=drop_empty_pose_tokens)
        embeds, mask = bb.encode_prompts(prompts, b)
        neg_e = neg_m = None
        if guidance_scale > 1.0:
            neg_e, neg_m = bb.encode_prompts([negative_prompt] * b, b)
        shape = (b,) + tuple(bb.latent_shape(num_frames, height, width))
        if latents is not None and tuple(latents.shape) != shape:
            raise ShapeError(f"latents: {tuple(latents.shape)}, expected {shape} for {num_frames} frames at {height}x{width}")
        init = None
        if init_video is not None and strength < 1.0:
            if tuple(init_video.shape) != (b, 3, num_frames, height, width):
                raise ShapeError(f"init_video: {tuple(init_video.shape)}, expected {(b, 3, num_frames, height, width)}")
            init = bb.encode_video(init_video).float()
        latents = denoise(
            self.denoiser,
            bb.scheduler,
            shape,
            conds,
            embeds,
            mask,
            steps=steps,
            guidance_scale=guidance_scale,
            neg_embeds=neg_e,
            neg_mask=neg_m,
            generator=generator,
            drop_empty=drop_empty_pose_tokens,
            device=bb.device,
            progress=progress,
            latents=None if latents is None else latents.to(bb.device, torch.float32),
            init_latents=init,
            strength=float(strength) if init is not None else 1.0,
        )
        if return_latents:
            return latents
        video = bb.decode_latents(latents.to(bb.dtype)).float().clamp(-1.0, 1.0)
        log.debug("sampled %s in %.3f s", tuple(video.shape), time.perf_counter() - t0)
        return video
