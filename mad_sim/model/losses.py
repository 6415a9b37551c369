"""The flow-matching training loss on target tokens (conditions are clean context, not supervised).

    x_s = (1 - s) x0 + s eps,   v* = eps - x0,   loss = mean over target latents of (v_theta(x_s, 1000 s | cond) - v*)^2

``s`` comes from :func:`mad_sim.model.noise.sample_sigmas`.  Condition tokens
enter with timestep 0 and are not part of the loss (their predictions are
discarded by the denoiser wrapper).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from mad_sim.model.ltx import LatentCondition
from mad_sim.model.noise import sample_sigmas


def flow_matching_loss(
    denoiser: torch.nn.Module,
    x0: torch.Tensor,
    conditions: Sequence[LatentCondition],
    text_embeds: torch.Tensor,
    text_mask: torch.Tensor,
    generator: Optional[torch.Generator] = None,
    sampler: str = "shifted_logit_normal",
    sigmas: Optional[torch.Tensor] = None,
    noise: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Scalar MSE between predicted and true velocity on the target latents ``x0`` [B, C, f, h, w].

    ``sigmas`` [B] and ``noise`` (like ``x0``) may be given for evaluation on fixed draws
    (e.g. held-out losses comparable between models); otherwise they are drawn from ``generator``.
    """
    b = x0.size(0)
    num_tokens = int(x0[0, 0].numel())
    if sigmas is None:
        sigmas = sample_sigmas(b, num_tokens, generator, sampler, device=x0.device)
    sigmas = sigmas.to(x0.device, x0.dtype)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    s = sigmas.view(b, 1, 1, 1, 1)
    xs = (1 - s) * x0 + s * noise
    target = noise - x0
    pred = denoiser(xs, sigmas * 1000.0, conditions, text_embeds, text_mask)
    return torch.mean((pred.float() - target.float()) ** 2)
