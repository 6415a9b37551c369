"""Tensors and weight files shared by the training stages.

Video batches: ``[B, F, H, W, 3]`` uint8 (clip caches) <-> ``[B, 3, F, H, W]``
float32 in ``[-1, 1]`` (the VAE's input).  Weight files are safetensors,
written atomically; a missing or unfitting file raises
:class:`~mad_sim.errors.CheckpointError` naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import torch

from mad_sim.errors import CheckpointError
from mad_sim.io import atomic_path

__all__ = ["videos_to_tensor", "load_safetensors_into", "save_safetensors", "initial_backbone"]


def videos_to_tensor(videos: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[B, F, H, W, 3]`` uint8 -> ``[B, 3, F, H, W]`` float32 in ``[-1, 1]``."""
    x = torch.from_numpy(np.ascontiguousarray(videos)).to(device)
    return x.permute(0, 4, 1, 2, 3).float().div_(127.5).sub_(1.0)


def load_safetensors_into(module: torch.nn.Module, path: str, what: str, strict: bool = True) -> None:
    """Load a safetensors file into ``module``; CheckpointError names the file and the mismatch."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: {what} weights not found")
    try:
        sd = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{p}: not a readable safetensors file ({exc})") from exc
    try:
        missing, unexpected = module.load_state_dict(sd, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise CheckpointError(f"{p}: does not fit the {what} ({exc})") from exc
    if strict and (missing or unexpected):
        raise CheckpointError(f"{p}: does not fit the {what}: missing {missing[:3]}..., unexpected {unexpected[:3]}...")


def save_safetensors(sd: Dict[str, torch.Tensor], path: Path, metadata: Dict[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in sd.items()}, str(tmp), metadata=metadata)
    return path


def initial_backbone(cfg, device: torch.device | str):
    """The backbone a denoiser or appearance stage starts from, on ``device``.

    ``cfg.init_backbone`` (a backbone file) or a random init seeded with
    ``cfg.seed``; then ``cfg.init_vae`` / ``cfg.init_transformer``, when set,
    replace the VAE's / transformer's weights (CheckpointError names a file
    that is missing or does not fit).
    """
    from mad_sim.model.backbone_loading import load_backbone

    bb = load_backbone(cfg.preset, device="cpu", weights=cfg.init_backbone or "random", seed=cfg.seed)
    if cfg.init_vae:
        load_safetensors_into(bb.vae, cfg.init_vae, "VAE")
    if cfg.init_transformer:
        load_safetensors_into(bb.transformer, cfg.init_transformer, "transformer")
    return bb.to(device=device)
