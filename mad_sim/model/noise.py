"""Noise levels for flow-matching training, and targeted noise on pose conditions.

Flow matching (rectified flow, the LTX-Video objective): with clean latents
``x0``, Gaussian ``eps`` and noise level ``s`` in [0, 1],

    x_s = (1 - s) x0 + s eps,     target velocity v = eps - x0,

and the denoiser sees the timestep ``1000 s``.

Noise-level samplers (per sample, driven by a ``torch.Generator``):

* ``"shifted_logit_normal"`` (default, what the LTX-Video trainer uses):
  ``s = sigmoid(n + shift)``, ``n ~ N(0, 1)``, with ``shift`` growing linearly
  with the target's token count from 0.95 at 1024 tokens to 2.05 at 4096
  (extrapolated outside), so larger videos train at higher noise, matching
  the sampler's dynamic schedule shift.
* ``"logit_normal"``: ``s = sigmoid(n)``.
* ``"uniform"``: ``s ~ U(0, 1)``.

Targeted noise (MAD appearance adapter): only latent patches of a pose
condition that hold pose pixels are corrupted, ``ref = (1 - s) ref + s noise``
with one ``s ~ U(0, s_max)`` per sample (``s_max`` = 0.3 in the paper).
"""

from __future__ import annotations

from typing import Optional

import torch

from mad_sim.errors import ConfigError

SAMPLERS = ("shifted_logit_normal", "logit_normal", "uniform")


def sequence_shift(
    num_tokens: int, min_tokens: int = 1024, max_tokens: int = 4096, min_shift: float = 0.95, max_shift: float = 2.05
) -> float:
    """Linear shift of the logit-normal mean with the token count (LTX trainer's rule)."""
    m = (max_shift - min_shift) / (max_tokens - min_tokens)
    return float(min_shift + m * (num_tokens - min_tokens))


def sample_sigmas(
    batch: int,
    num_tokens: int,
    generator: Optional[torch.Generator] = None,
    sampler: str = "shifted_logit_normal",
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Noise levels ``[batch]`` in (0, 1) for flow-matching training (see the module doc)."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown timestep sampler {sampler!r} (known: {', '.join(SAMPLERS)})")
    if sampler == "uniform":
        return torch.rand(batch, generator=generator, device=device)
    n = torch.randn(batch, generator=generator, device=device)
    if sampler == "shifted_logit_normal":
        n = n + sequence_shift(num_tokens)
    return torch.sigmoid(n)


def targeted_noise(
    latents: torch.Tensor, mask: torch.Tensor, generator: Optional[torch.Generator] = None, max_strength: float = 0.3
) -> torch.Tensor:
    """Corrupt masked latent patches: ``(1 - s) x + s eps`` where ``mask``, unchanged elsewhere.

    Args:
      latents: [B, C, f, h, w] clean condition latents.
      mask: [B, f, h, w] bool, patches that hold pose pixels.
      max_strength: ``s ~ U(0, max_strength)`` per sample.
    """
    b = latents.size(0)
    s = torch.rand(b, generator=generator, device=latents.device).mul(max_strength).to(latents.dtype)
    eps = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    s = s.view(b, 1, 1, 1, 1)
    noisy = (1 - s) * latents + s * eps
    return torch.where(mask.unsqueeze(1), noisy, latents)
