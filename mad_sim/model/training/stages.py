"""What each training stage trains and its loss (used by :mod:`mad_sim.model.training.loop`).

A stage object has

- ``module``: the ``torch.nn.Module`` whose ``requires_grad`` parameters are trained;
- ``loss(batch, rng, gen) -> (loss, parts)``: the scalar loss of the clips
  ``batch`` (indices into the clip cache), drawing every random choice from
  ``rng`` (numpy, data choices) and ``gen`` (torch, noise); ``parts`` are
  floats to log;
- ``trainable_state()`` / ``load_trainable_state(sd)``: the tensors a
  checkpoint holds (all weights for full training, the adapter for LoRA);
- ``export(folder) -> {name: path}``: the weights a user ships.

Stages: ``vae`` (:mod:`mad_sim.model.training.vae_stage`), ``base`` / ``motion``
(:mod:`mad_sim.model.training.denoiser_stage`), ``appearance``
(:mod:`mad_sim.model.training.appearance_stage`); :func:`build_stage` picks one.
"""

from __future__ import annotations

from mad_sim.model.training.appearance_stage import AppearanceStage
from mad_sim.model.training.denoiser_stage import DenoiserStage
from mad_sim.model.training.vae_stage import VaeStage

__all__ = ["build_stage"]


def build_stage(cfg, cache, device):
    """The stage object for ``cfg.stage``."""
    if cfg.stage == "vae":
        return VaeStage(cfg, cache, device)
    if cfg.stage == "appearance":  # paired RGB/pose clips; knobs in cfg.task (AppearanceTaskConfig)
        return AppearanceStage(cfg, cache, device)
    return DenoiserStage(cfg, cache, device)
