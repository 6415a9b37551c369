"""Sampling: our own Euler loop over diffusers' FlowMatchEulerDiscreteScheduler.

Stock pipelines cannot prepend condition tokens, so the loop is ours; it
follows ``LTXPipeline.__call__`` step for step so that, with no conditions and
adapters disabled, it reproduces the pipeline's output for the same seed
(tests/model/test_sampling.py):

1. noise ``[B, C, f, h, w]`` drawn with ``diffusers.utils.torch_utils.randn_tensor``;
2. sigmas ``linspace(1, 1/steps, steps)`` shifted by ``mu = calculate_shift(f h w)``
   (the scheduler's dynamic, resolution-dependent shift);
3. per step: velocity from the denoiser (classifier-free guidance with the
   negative prompt batched first when ``guidance_scale > 1``:
   ``v = v_neg + g (v_pos - v_neg)``), then ``scheduler.step``;
4. decode with the VAE.

**Starting from a prior** (``init_latents``, ``strength < 1``; SDEdit, Meng et
al. 2022, as diffusers' video-to-video pipelines do it): of the ``steps``-step
schedule only the last ``n = max(1, round(strength * steps))`` steps run; the
start is the prior's clean latents ``z_p`` noised to that step's level,
``x = sigma_0 * eps + (1 - sigma_0) * z_p`` (``scheduler.scale_noise``), so
``strength`` 1 is plain sampling and a small ``strength`` keeps the prior's
layout and lets the model correct its details.

Guidance contrasts prompts only; conditions are present in both branches
(as ``LTXConditionPipeline`` does).
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np
import torch

from mad_sim.errors import ShapeError
from mad_sim.model.ltx import LatentCondition

log = logging.getLogger(__name__)


def calculate_shift(
    seq_len: int, base_seq_len: int = 256, max_seq_len: int = 4096, base_shift: float = 0.5, max_shift: float = 1.15
) -> float:
    """mu of the dynamic schedule shift, linear in the token count (the Flux/LTX rule)."""
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return seq_len * m + (base_shift - m * base_seq_len)


def set_schedule(scheduler: Any, steps: int, num_tokens: int, device: Optional[torch.device] = None) -> torch.Tensor:
    """Configure ``scheduler`` for ``steps`` steps on ``num_tokens`` target tokens; returns its timesteps."""
    if steps < 1:
        raise ShapeError(f"steps must be >= 1, got {steps}")
    cfg = scheduler.config
    if steps < 2 and cfg.get("shift_terminal"):
        raise ShapeError(
            f"steps must be >= 2 with this schedule (its terminal stretch to {cfg.get('shift_terminal')} "
            f"needs two noise levels), got {steps}"
        )
    sigmas = np.linspace(1.0, 1 / steps, steps)
    mu = calculate_shift(
        num_tokens,
        cfg.get("base_image_seq_len", 256),
        cfg.get("max_image_seq_len", 4096),
        cfg.get("base_shift", 0.5),
        cfg.get("max_shift", 1.15),
    )
    scheduler.set_timesteps(sigmas=sigmas, device=device, mu=mu)
    return scheduler.timesteps


@torch.no_grad()
def denoise(
    denoiser: torch.nn.Module,
    scheduler: Any,
    latent_shape: Sequence[int],
    conditions: Sequence[LatentCondition],
    text_embeds: torch.Tensor,
    text_mask: torch.Tensor,
    *,
    steps: int,
    guidance_scale: float = 1.0,
    neg_embeds: Optional[torch.Tensor] = None,
    neg_mask: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    drop_empty: bool = False,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
    latents: Optional[torch.Tensor] = None,
    progress: bool = False,
    init_latents: Optional[torch.Tensor] = None,
    strength: float = 1.0,
) -> torch.Tensor:
    """Run the sampler; returns clean normalised latents ``[B, C, f, h, w]``.

    ``latents``: the initial noise (default drawn from ``generator``).  ``init_latents`` (normalised,
    the shape of the noise) with ``strength`` in (0, 1]: start from that prior (module doc).
    """
    from diffusers.utils.torch_utils import randn_tensor

    if not 0.0 < strength <= 1.0:
        raise ShapeError(f"strength must be in (0, 1], got {strength}")
    if latents is None:
        latents = randn_tensor(tuple(latent_shape), generator=generator, device=device, dtype=torch.float32)
    b, _, f, h, w = latents.shape
    timesteps = set_schedule(scheduler, steps, f * h * w, device=latents.device)
    if init_latents is not None:
        if tuple(init_latents.shape) != tuple(latents.shape):
            raise ShapeError(f"init_latents: {tuple(init_latents.shape)}, expected {tuple(latents.shape)}")
        start = len(timesteps) - max(1, int(round(strength * len(timesteps))))
        timesteps = timesteps[start:]
        scheduler.set_begin_index(start)
        latents = scheduler.scale_noise(init_latents.to(latents), timesteps[:1], latents)
    cfg = guidance_scale > 1.0
    if cfg:
        if neg_embeds is None or neg_mask is None:
            raise ShapeError("guidance_scale > 1 needs negative prompt embeddings")
        embeds = torch.cat([neg_embeds, text_embeds], dim=0)
        mask = torch.cat([neg_mask, text_mask], dim=0)
        conds = [
            LatentCondition(
                torch.cat([c.latents] * 2),
                c.kind,
                c.frame_offset,
                None if c.keep is None else torch.cat([c.keep] * 2),
                None if c.embedding is None else torch.cat([c.embedding] * 2),
            )
            for c in conditions
        ]
    else:
        embeds, mask, conds = text_embeds, text_mask, list(conditions)
    cond_tokens = denoiser.condition_tokens(conds, drop_empty) if hasattr(denoiser, "condition_tokens") else None
    iterator = timesteps
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(timesteps, desc="sampling", leave=False)
    for t in iterator:
        x = torch.cat([latents] * 2) if cfg else latents
        x = x.to(embeds.dtype)
        ts = t.expand(x.shape[0])
        kwargs = {"cond_tokens": cond_tokens} if cond_tokens is not None else {}
        v = denoiser(x, ts, conds, embeds, mask, drop_empty=drop_empty, **kwargs).float()
        if cfg:
            v_neg, v_pos = v.chunk(2)
            v = v_neg + guidance_scale * (v_pos - v_neg)
        latents = scheduler.step(v, t, latents, return_dict=False)[0]
    return latents
