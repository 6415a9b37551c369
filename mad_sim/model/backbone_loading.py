"""Building a backbone for a preset: random init, shipped weights, a safetensors file or a diffusers directory.

``load_backbone(preset, path=None, device=None, dtype=None, weights=None)``
builds a :class:`~mad_sim.model.backbone.Backbone` (LTX family;
:mod:`mad_sim.model.svd` builds the SVD family behind the same interface):

* ``tiny``: components from the configs in :mod:`mad_sim.model.presets`;
  ``weights=None`` loads the shipped ``mad_sim/weights/tiny.safetensors``
  (CheckpointError if it is missing), ``weights="random"`` keeps the random
  init (seeded by ``seed``), ``weights=PATH`` reads a single safetensors file
  or a diffusers-format directory.
* ``ltx-2b`` / ``ltx-13b``: ``path`` is a local diffusers-format LTX-Video
  directory (``vae/``, ``transformer/``, ``text_encoder/``, ``tokenizer/``,
  ``scheduler/``); nothing is downloaded.

``build_empty(preset)`` instantiates a preset's reference modules on the meta
device (parameter counts and adapter targets of the big presets).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from mad_sim.errors import CheckpointError
from mad_sim.model.backbone import Backbone, require_diffusers_dir, seeded_init, shipped_weights
from mad_sim.model.presets import Preset, get_preset
from mad_sim.model.text import build_text_encoder, build_tokenizer

PathLike = Union[str, os.PathLike]


def default_device() -> torch.device:
    """The device accelerate picks for this process (CPU here; the local GPU under ``accelerate launch``)."""
    from accelerate import PartialState

    return PartialState().device


def _build_ltx(preset: Preset, seed: Optional[int]) -> Backbone:
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel

    with seeded_init(seed):
        vae = AutoencoderKLLTXVideo(**preset.vae)
        transformer = LTXVideoTransformer3DModel(**preset.denoiser)
        text_encoder = build_text_encoder(preset.text)
    scheduler = FlowMatchEulerDiscreteScheduler(**preset.scheduler)
    return Backbone(preset, vae, transformer, scheduler, text_encoder, build_tokenizer(preset.max_text_tokens))


def _load_ltx_dir(preset: Preset, directory: Path, dtype: Optional[torch.dtype]) -> Backbone:
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel
    from transformers import AutoTokenizer, T5EncoderModel

    require_diffusers_dir(
        directory, ("vae", "transformer", "text_encoder", "tokenizer", "scheduler"), "LTX-Video", "the LTX-Video weights"
    )
    kw = dict(torch_dtype=dtype) if dtype is not None else {}
    try:
        vae = AutoencoderKLLTXVideo.from_pretrained(directory, subfolder="vae", **kw)
        transformer = LTXVideoTransformer3DModel.from_pretrained(directory, subfolder="transformer", **kw)
        text_encoder = T5EncoderModel.from_pretrained(directory, subfolder="text_encoder", **kw)
        tokenizer = AutoTokenizer.from_pretrained(directory, subfolder="tokenizer", local_files_only=True)
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(directory, subfolder="scheduler")
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{directory}: cannot load the backbone ({exc})") from exc
    if len(tokenizer) < 100:
        raise CheckpointError(
            f"{directory}/tokenizer: tokenizer has only {len(tokenizer)} entries "
            f"(an empty offline tokenizer maps every word to <unk>)"
        )
    if (directory / "tokenizer" / "tokenizer.json").is_file() and preset.name == "tiny":
        tokenizer.model_max_length = preset.max_text_tokens
    return Backbone(preset, vae, transformer, scheduler, text_encoder, tokenizer)


def load_backbone(
    preset: str = "tiny",
    path: Optional[PathLike] = None,
    device: Optional[Union[str, torch.device]] = None,
    dtype: Optional[torch.dtype] = None,
    weights: Optional[Union[str, PathLike]] = None,
    seed: Optional[int] = 0,
) -> Any:
    """Build the backbone of ``preset``.

    Args:
      preset: ``tiny``, ``ltx-2b``, ``ltx-13b``, ``svd-tiny`` or ``svd``.
      path: local diffusers-format directory (required by ``ltx-2b``, ``ltx-13b``, ``svd``).
      device, dtype: where to put it (default: accelerate's device, float32).
      weights: for the built-in presets: None = shipped weights, ``"random"`` = random init,
        or a single safetensors file / diffusers directory.
      seed: torch seed of the random init (None: the global RNG).

    Raises:
      PresetError: unknown preset, or a path preset without ``path``.
      CheckpointError: missing / corrupt / mismatched weights.
    """
    cfg = get_preset(preset, None if path is None else str(path))
    bb: Backbone
    if cfg.family == "svd":
        from mad_sim.model.svd import load_svd_backbone

        bb = load_svd_backbone(cfg, path=path, weights=weights, seed=seed, dtype=dtype)
    elif cfg.needs_path:
        if path is None:  # get_preset refuses a path preset without one; narrowed here for the type checker
            raise CheckpointError(f"preset {cfg.name!r} needs path= (a diffusers folder)")
        directory = Path(path)
        if not directory.is_dir():
            raise CheckpointError(f"{directory}: backbone directory not found (--backbone PATH)")
        bb = _load_ltx_dir(cfg, directory, dtype)
    else:
        bb = _build_ltx(cfg, seed)
        if weights is None:
            file = shipped_weights(cfg.name)
            if not file.is_file():
                raise CheckpointError(
                    f"no shipped weights for preset {cfg.name!r} at {file}: train them with "
                    f"`mad-sim train vae` then `mad-sim train base` (configs/train/), pass "
                    f"weights=PATH, or weights='random' for an untrained model"
                )
            bb.load_file(file)
        elif str(weights) != "random":
            wpath = Path(weights)
            if wpath.is_dir():
                bb = _load_ltx_dir(cfg, wpath, dtype)
            else:
                bb.load_file(wpath)
    device = torch.device(device) if device is not None else default_device()
    bb.to(device=device, dtype=dtype or torch.float32)
    return bb


def build_empty(preset: str) -> Dict[str, Any]:
    """Instantiate a preset's reference denoiser (and VAE for LTX) on the meta device (no memory).

    Returns ``{"denoiser": module, "vae": module or None}``; used to check parameter counts
    and adapter targets of the big presets without their weights.
    """
    from accelerate import init_empty_weights

    cfg = get_preset(preset, path="<meta>")
    with init_empty_weights():
        if cfg.family == "ltx":
            from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel

            return {"denoiser": LTXVideoTransformer3DModel(**cfg.denoiser), "vae": AutoencoderKLLTXVideo(**cfg.vae)}
        from diffusers import UNetSpatioTemporalConditionModel

        return {"denoiser": UNetSpatioTemporalConditionModel(**cfg.denoiser), "vae": None}
