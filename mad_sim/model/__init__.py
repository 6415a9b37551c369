"""The model layer: a diffusers video backbone, peft LoRA adapters, VAE-space conditions.

Layout.  The modules of this folder are the core (presets, backbone, backbone_loading,
ltx, svd, text, lora, lora_convert, conditioning, object_control, noise, losses, sampling,
weights_codec, onednn_conv, mad, motion); five subpackages build on it, and the
core imports none of them:

* :mod:`.parse`: pose frames back to agent states and the ego's motion (numpy / OpenCV);
* :mod:`.appearance`: pose video -> camera RGB, camera RGB -> pose video;
* :mod:`.agents`: learned agents and the shared predictor service (also imports ``parse``);
* :mod:`.training`: training (also imports ``appearance`` and the score modules of ``evaluation``);
* :mod:`.evaluation`: scores, held-out evaluations and the model card (also imports ``parse``,
  ``appearance`` and ``training``).

Public API (stable; the training code builds on it):

* :func:`load_backbone` ``(preset="tiny", path=None, device=None, dtype=None, weights=None, seed=0) -> Backbone``
  presets ``tiny`` / ``ltx-2b`` / ``ltx-13b`` / ``svd-tiny`` / ``svd`` (:mod:`.presets`);
  ``weights="random"`` for an untrained tiny model, None for the shipped
  ``mad_sim/weights/tiny.safetensors``.  A ``Backbone`` has ``vae``,
  ``denoiser`` (5-D latents in, velocity out; ``denoiser.model`` is the diffusers
  module), ``scheduler``, ``text_encoder``, ``tokenizer``, ``config``,
  ``encode_video(video[B,3,F,H,W] in [-1,1]) -> latents[B,C,f,h,w]``,
  ``decode_latents``, ``set_latent_stats``, ``save_file`` / ``load_file``
  (one safetensors), ``save_pretrained`` (diffusers dirs), ``check_size``.
* :class:`MADModel` ``(backbone)``: ``add_adapter(name, rank, alpha, targets)``,
  ``set_adapter(name | None)``, ``adapter_parameters(name)``,
  ``save_adapter(name, path)`` / ``load_adapter(name, path)`` (diffusers LoRA
  safetensors), ``load_authors_lora(path_or_state_dict, name)``,
  ``encode_conditions``, ``training_loss(target_video, conditions, prompts,
  generator, targeted_noise_on_pose=False, ...) -> scalar``,
  ``sample(conditions, num_frames, height, width, steps, guidance_scale,
  generator, prompts=None, drop_empty_pose_tokens=False) -> [B,3,F,H,W]``.
* :class:`Condition` ``(video[B,3,F,H,W], kind, frame_offset=None)`` with kinds
  ``first_frame`` (at frame 1000), ``pose_history`` (just before the target),
  ``pose``, ``ego_motion``, ``boxes`` (aligned with the target).
* :class:`MotionPredictor` ``(model)``: ``forecast(pose_history[F_h,H,W,3] uint8,
  ego_motion=None, num_frames=17, steps=4, generator=None) -> [F,H,W,3] uint8``
  (a leading batch dimension is kept when given).

* Lower level, used by the training code: :class:`mad_sim.model.ltx.LatentCondition`
  (VAE-encoded condition; ``Backbone.denoiser(noisy[B,C,f,h,w], timestep[B] 0..1000,
  conditions, text_embeds, text_mask) -> velocity``), :mod:`.lora` (``add_lora``,
  ``set_active``, ``save_lora`` / ``read_lora`` / ``load_lora``), :mod:`.noise`
  (``sample_sigmas``, ``targeted_noise``), :mod:`.losses` (``flow_matching_loss``),
  :mod:`.sampling` (``denoise``), :mod:`.presets` (each preset's sampler steps, guidance scale
  and adapter rank: the one place these defaults are written), :mod:`.cpu_paths` (which CPU fast
  paths pay on this machine: bf16 autocast, the oneDNN Conv3d swap).
* SVD family (:mod:`.svd`): same interface; conditions are concatenated as
  channel slots instead of prepended tokens, the CLIP image embedding replaces
  text, SVD's EDM v-prediction is wrapped as a flow-matching velocity.

Weights files: ``mad_sim/weights/<preset>.safetensors`` (one file, keys
``vae.* / transformer.* / text_encoder.*``, written by ``Backbone.save_file``),
``mad_sim/weights/<preset>_motion.safetensors`` and ``<preset>_appearance.safetensors``
(diffusers LoRA format, keys ``transformer.*``, written by ``MADModel.save_adapter``).

Shapes: LTX presets need ``tk+1`` frames (t = 8 for LTX-Video, 4 for tiny) and sizes divisible by 32
(:class:`~mad_sim.errors.ShapeError` names the fix).  Nothing here downloads.

Lazy imports (PEP 562).  Importing this package imports none of its modules: the
public names above are resolved on first access (``from mad_sim.model import MADModel``
or ``mad_sim.model.MADModel``) from the table ``_LAZY``, so that
``import mad_sim.model.parse.odometry`` or ``mad_sim.model.agents.settings``
(numpy only) does not pull in torch and diffusers.  An attribute that is not a
public name but a submodule (``mad_sim.model.lora``) is imported on access too,
as it was reachable when the package imported the core eagerly.  The
``TYPE_CHECKING`` block repeats the table for type checkers and IDEs
(``tests/test_lazy_imports.py`` keeps the two and ``__all__`` in step).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

if TYPE_CHECKING:
    from mad_sim.model.backbone import Backbone
    from mad_sim.model.backbone_loading import build_empty, load_backbone
    from mad_sim.model.conditioning import Condition, uint8_to_video, video_to_uint8
    from mad_sim.model.mad import MADModel
    from mad_sim.model.motion import MotionPredictor
    from mad_sim.model.presets import PRESETS, Preset, get_preset

_LAZY: Dict[str, str] = {
    "Backbone": "mad_sim.model.backbone",
    "build_empty": "mad_sim.model.backbone_loading",
    "load_backbone": "mad_sim.model.backbone_loading",
    "Condition": "mad_sim.model.conditioning",
    "uint8_to_video": "mad_sim.model.conditioning",
    "video_to_uint8": "mad_sim.model.conditioning",
    "MADModel": "mad_sim.model.mad",
    "MotionPredictor": "mad_sim.model.motion",
    "PRESETS": "mad_sim.model.presets",
    "Preset": "mad_sim.model.presets",
    "get_preset": "mad_sim.model.presets",
}
"""Public name -> the module that defines it (imported on first access)."""

__all__ = [
    "Backbone",
    "Condition",
    "MADModel",
    "PRESETS",
    "Preset",
    "build_empty",
    "get_preset",
    "load_backbone",
    "uint8_to_video",
    "video_to_uint8",
    "MotionPredictor",
]


def __getattr__(name: str) -> Any:
    """A public name from its module (then cached in this module), or a submodule; else AttributeError."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if not name.startswith("__"):
        full = f"{__name__}.{name}"
        try:
            return importlib.import_module(full)
        except ModuleNotFoundError as err:
            if err.name != full:
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
