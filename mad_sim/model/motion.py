"""`MotionPredictor`: pose history (+ ego-motion video) -> future pose frames.

The motion adapter's two tasks (the authors train them 50/50 per sample):

* unconditional forecast: ``pose_history`` -> the next ``num_frames`` pose frames;
* ego-conditioned forecast: ``pose_history`` + the ego-motion video of the
  future span (camera in the textured sphere with dust, see
  :mod:`mad_sim.render.ego_motion`) -> the future pose frames consistent with
  that ego motion;
* object control (the "conditional forecaster", with an adapter trained with
  ``task.p_boxes > 0``): either of the above + the box video of chosen agents
  over the future span (:mod:`mad_sim.model.object_control`) -> future pose
  frames in which those agents follow their boxes.

Frames are uint8 RGB ``[F, H, W, 3]`` (or ``[B, F, H, W, 3]``); the pose
history sits just before the target in RoPE time (``frame_offset = -F_h``), the
ego-motion and box videos are aligned with the target (offset 0).  LTX presets need
``F_h`` and ``num_frames`` of the form ``tk+1``, ``t`` the VAE's time compression
(tiny: 4k+1, e.g. 9 or 17; LTX-Video: 8k+1), and sizes divisible by 32
(``Backbone.check_size``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from mad_sim.errors import CheckpointError, ConfigError, ShapeError
from mad_sim.model.conditioning import Condition, uint8_to_video, video_to_uint8
from mad_sim.model.mad import MADModel

log = logging.getLogger(__name__)
ArrayLike = Union[np.ndarray, torch.Tensor]


def _as_frames(x: ArrayLike, what: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.ndim not in (4, 5) or t.size(-1) != 3:
        shape = tuple(getattr(x, "shape", ())) or type(x).__name__
        dtype = getattr(x, "dtype", "?")
        raise ShapeError(f"{what}: expected uint8 frames [F, H, W, 3] or [B, F, H, W, 3], got {dtype} {shape}")
    return t


class MotionPredictor:
    """Forecast pose videos with the ``motion`` adapter (or the base model with ``adapter=None``)."""

    def __init__(self, model: MADModel, adapter: Optional[str] = "motion") -> None:
        if adapter is not None and adapter not in model.adapters:
            raise ConfigError(
                f"the model has no adapter {adapter!r} (have: {model.adapters}); load one with "
                f"model.load_adapter({adapter!r}, PATH) or pass adapter=None for the base model"
            )
        self.model = model
        self.adapter = adapter

    @classmethod
    def from_pretrained(
        cls,
        preset: str = "tiny",
        path: Optional[Union[str, os.PathLike]] = None,
        lora: Optional[Union[str, os.PathLike]] = None,
        device: Optional[str] = None,
        dtype: Optional[torch.dtype] = None,
        weights: Optional[Union[str, os.PathLike]] = None,
    ) -> "MotionPredictor":
        """Backbone ``preset`` plus its motion LoRA (default: the shipped ``mad_sim/weights/<preset>_motion.safetensors``)."""
        from mad_sim.model.backbone import WEIGHTS_DIR
        from mad_sim.model.backbone_loading import load_backbone

        model = MADModel(load_backbone(preset, path=path, device=device, dtype=dtype, weights=weights))
        lora_path = Path(lora) if lora is not None else WEIGHTS_DIR / f"{preset}_motion.safetensors"
        if not lora_path.is_file():
            raise CheckpointError(
                f"{lora_path}: motion adapter not found; train it with `mad-sim train motion` or pass lora=PATH"
            )
        model.load_adapter("motion", lora_path)
        return cls(model, "motion")

    @property
    def backbone(self):
        return self.model.backbone

    def forecast(
        self,
        pose_history: ArrayLike,
        ego_motion: Optional[ArrayLike] = None,
        num_frames: int = 17,
        steps: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        guidance_scale: Optional[float] = None,
        prompts: Optional[Sequence[str]] = None,
        drop_empty_pose_tokens: bool = False,
        boxes: Optional[ArrayLike] = None,
    ) -> np.ndarray:
        """Future pose frames ``[num_frames, H, W, 3]`` uint8 (``[B, ...]`` for batched input).

        Args:
          pose_history: uint8 ``[F_h, H, W, 3]`` or ``[B, F_h, H, W, 3]``, oldest first, last = present.
          ego_motion: optional uint8 ego-motion video of the future span, ``num_frames`` long, same size.
          boxes: optional uint8 box video of the controlled agents over the future span, ``num_frames``
            long, same size (:func:`~mad_sim.model.object_control.box_video_from_trajectory`).
          num_frames: frames to generate (``tk+1``: 4k+1 for tiny, 8k+1 for LTX-Video).
          steps / guidance_scale: sampler steps and guidance (None: the preset's defaults);
            generator: the noise's torch.Generator.
        """
        hist = _as_frames(pose_history, "pose_history")
        batched = hist.ndim == 5
        if not batched:
            hist = hist.unsqueeze(0)
        b, _, h, w, _ = hist.shape
        device = self.backbone.device
        conds = [Condition(uint8_to_video(hist).to(device), "pose_history")]
        for name, video in (("ego_motion", ego_motion), ("boxes", boxes)):
            if video is None:
                continue
            v = _as_frames(video, name)
            if v.ndim == 4:
                v = v.unsqueeze(0)
            if v.size(0) != b:
                raise ShapeError(f"{name}: batch {v.size(0)} != pose_history batch {b}")
            if v.shape[1:4] != (num_frames, h, w):
                raise ShapeError(
                    f"{name}: {tuple(v.shape[1:4])} frames x size, expected ({num_frames}, {h}, {w}) "
                    f"(the future span at the pose video's size)"
                )
            conds.append(Condition(uint8_to_video(v).to(device), name))
        self.model.set_adapter(self.adapter)
        video = self.model.sample(
            conds,
            num_frames=num_frames,
            height=h,
            width=w,
            steps=steps,
            guidance_scale=guidance_scale,
            generator=generator,
            prompts=prompts,
            drop_empty_pose_tokens=drop_empty_pose_tokens,
        )
        frames = video_to_uint8(video.cpu()).numpy()
        return frames if batched else frames[0]
