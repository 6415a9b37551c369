"""The SVD family behind the same interface: UNetSpatioTemporalCondition, temporal-decoder VAE, CLIP image encoder.

Differences from the LTX family (what the rest of the code does not need to know):

* **Latents.** ``AutoencoderKLTemporalDecoder`` encodes each frame alone (8x in
  space, 1x in time): video ``[B, 3, F, H, W]`` -> latents ``[B, 4, F, H/8, W/8]``
  scaled by ``scaling_factor`` (0.18215).  Any frame count works; sizes must be
  multiples of ``8 * 2**(levels - 1)`` (16 for ``svd-tiny``, 64 for ``svd``).
* **Conditions are channels, not tokens.** The UNet has no RoPE sequence to
  prepend to; as SVD does with its image latent, condition latents are
  concatenated to the noisy latents along channels, one channel group per
  condition *slot* (``SLOTS``: the image slot, then ``ego_motion``, ``pose``,
  ``boxes``).  A single-frame condition (``first_frame``, and ``pose_history``,
  of which SVD sees only the last frame = the present) is repeated over all
  target frames; a video condition (``ego_motion``, ``pose``, ``boxes``) must
  have the target's frame count (it is time-aligned).  Missing slots are zeros.
  ``svd-tiny`` is built with all slots (``in_channels = 4 * (1 + 4)``); the
  real ``svd`` UNet has 8 input channels (the image slot) and gets extra slots
  by :meth:`SVDDenoiser.expand_slots`, which widens ``conv_in`` with zero
  weights (the pretrained function is unchanged until trained).  The image slot
  holds *unscaled* latents, as in SVD.
* **Image embedding instead of text.** The CLIP image embedding of the image
  condition's last frame is the UNet's cross-attention input; prompts are not
  supported (SVD has no text encoder) and :meth:`SVDBackbone.encode_prompts`
  returns a placeholder the denoiser ignores.
* **Parameterisation.** SVD was trained with EDM v-prediction.  The wrapper
  turns it into the flow-matching velocity the shared loss and sampler use:
  for ``x_s = (1 - s) x0 + s eps`` the EDM sample is ``x = x_s / (1 - s)`` at
  ``sigma = s / (1 - s)`` (clamped to SVD's [0.002, 700]); the UNet sees
  ``x / sqrt(sigma^2 + 1)`` and ``c_noise = log(sigma) / 4``; its output F gives
  ``x0_hat = x / (sigma^2 + 1) - sigma / sqrt(sigma^2 + 1) F`` and the velocity
  ``v = (x_s - x0_hat) / s``.  So the real SVD samples with its native
  denoiser, and LoRA training keeps its parameterisation.
* **Adapters** go in through ``peft.inject_adapter_in_model`` like LTX's (the
  UNet's attention blocks have the same ``to_q/k/v/out.0`` and ``ff.net``
  names); LoRA files use the ``unet.`` prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from mad_sim.errors import CheckpointError, ShapeError
from mad_sim.model.backbone import Backbone, require_diffusers_dir, seeded_init, shipped_weights
from mad_sim.model.ltx import LatentCondition
from mad_sim.model.presets import Preset

SLOTS = ("image", "ego_motion", "pose", "boxes")
IMAGE_KINDS = ("first_frame", "pose_history")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGMA_MIN, SIGMA_MAX = 0.002, 700.0


class SVDDenoiser(torch.nn.Module):
    """Wraps ``UNetSpatioTemporalConditionModel``: flow-matching velocity from 5-D latents and condition slots."""

    family = "svd"

    def __init__(
        self,
        unet: torch.nn.Module,
        *,
        latent_channels: int,
        scaling_factor: float,
        frame_rate: float,
        motion_bucket_id: int = 127,
        noise_aug_strength: float = 0.02,
    ) -> None:
        super().__init__()
        self.model = unet
        self.latent_channels = int(latent_channels)
        self.scaling_factor = float(scaling_factor)
        self.added_time = (float(frame_rate) - 1.0, float(motion_bucket_id), float(noise_aug_strength))

    @property
    def num_slots(self) -> int:
        return int(self.model.config.in_channels) // self.latent_channels - 1

    def expand_slots(self, num_slots: int = len(SLOTS)) -> None:
        """Widen ``conv_in`` to ``num_slots`` condition groups; new input weights are zero."""
        conv = self.model.conv_in
        have = conv.in_channels
        want = self.latent_channels * (1 + num_slots)
        if want <= have:
            return
        new = torch.nn.Conv2d(
            want,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        with torch.no_grad():
            new.weight.zero_()
            new.weight[:, :have] = conv.weight
            new.bias.copy_(conv.bias)
        self.model.conv_in = new
        self.model.register_to_config(in_channels=want)

    def _slot_latents(
        self, conditions: Sequence[LatentCondition], b: int, f: int, h: int, w: int, like: torch.Tensor
    ) -> torch.Tensor:
        groups = [
            torch.zeros(b, self.latent_channels, f, h, w, dtype=like.dtype, device=like.device) for _ in range(self.num_slots)
        ]
        for c in conditions:
            slot = "image" if c.kind in IMAGE_KINDS else c.kind
            idx = SLOTS.index(slot)
            if idx >= self.num_slots:
                raise ShapeError(
                    f"condition {c.kind!r} needs slot {idx} but the UNet has {self.num_slots}; call denoiser.expand_slots()"
                )
            lat = c.latents.to(like.dtype)
            if lat.shape[-2:] != (h, w):
                raise ShapeError(
                    f"condition {c.kind!r}: latent size {tuple(lat.shape[-2:])} != target {(h, w)} "
                    f"(SVD concatenates conditions as channels: same size needed)"
                )
            if slot == "image":
                lat = (lat[:, :, -1:] / self.scaling_factor).expand(-1, -1, f, -1, -1)
            elif lat.size(2) != f:
                raise ShapeError(f"condition {c.kind!r}: {lat.size(2)} frames != target {f} (time-aligned in SVD)")
            groups[idx] = lat
        return torch.cat(groups, dim=1)

    def forward(
        self,
        noisy: torch.Tensor,
        timestep: torch.Tensor,
        conditions: Sequence[LatentCondition],
        text_embeds: torch.Tensor,
        text_mask: torch.Tensor,
        drop_empty: bool = False,
    ) -> torch.Tensor:
        b, c, f, h, w = noisy.shape
        s = (
            (timestep.to(torch.float32).reshape(-1) / 1000.0).expand(b)
            if timestep.numel() == 1
            else timestep.to(torch.float32).reshape(-1) / 1000.0
        )
        s = s.clamp(SIGMA_MIN / (1 + SIGMA_MIN), SIGMA_MAX / (1 + SIGMA_MAX))
        sigma = s / (1 - s)
        sv = sigma.view(b, 1, 1, 1, 1).to(noisy.dtype)
        x = noisy / (1 - s).view(b, 1, 1, 1, 1).to(noisy.dtype)
        c_in = 1.0 / torch.sqrt(sv**2 + 1)
        inp = torch.cat([x * c_in, self._slot_latents(conditions, b, f, h, w, noisy)], dim=1)
        emb = next((cond.embedding for cond in conditions if cond.embedding is not None and cond.kind in IMAGE_KINDS), None)
        cross = self.model.config.cross_attention_dim
        if emb is None:
            emb = torch.zeros(b, 1, cross, dtype=noisy.dtype, device=noisy.device)
        added = torch.tensor([self.added_time], dtype=noisy.dtype, device=noisy.device).expand(b, 3)
        out = self.model(
            inp.permute(0, 2, 1, 3, 4), (0.25 * torch.log(sigma)).to(noisy.dtype), emb.to(noisy.dtype), added, return_dict=False
        )[0].permute(0, 2, 1, 3, 4)
        x0 = x / (sv**2 + 1) - sv / torch.sqrt(sv**2 + 1) * out
        return (noisy - x0) / s.view(b, 1, 1, 1, 1).to(noisy.dtype)


class SVDBackbone(Backbone):
    """Stable Video Diffusion components with the :class:`Backbone` interface (see the module doc)."""

    family = "svd"

    def __init__(self, config: Preset, vae: Any, unet: Any, scheduler: Any, image_encoder: Any) -> None:
        self.config = config
        self.vae = vae
        self.scheduler = scheduler
        self.image_encoder = image_encoder
        self.text_encoder = image_encoder  # what Backbone.to() moves
        self.tokenizer = None
        self.denoiser = SVDDenoiser(
            unet,
            latent_channels=vae.config.latent_channels,
            scaling_factor=vae.config.scaling_factor,
            frame_rate=config.frame_rate,
        )
        self._prompt_cache: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
        for m in (self.vae, self.image_encoder, self.denoiser):
            m.eval()
            m.requires_grad_(False)

    def components(self) -> Tuple[Tuple[str, torch.nn.Module], ...]:
        return (("vae", self.vae), ("unet", self.denoiser.model), ("image_encoder", self.image_encoder))

    @property
    def transformer(self) -> Any:  # the denoising network, whatever its kind
        return self.denoiser.model

    @property
    def temporal_ratio(self) -> int:
        return 1

    @property
    def spatial_ratio(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        return self.spatial_ratio * 2 ** (len(self.denoiser.model.config.block_out_channels) - 1)

    def check_size(self, frames: int, height: int, width: int, what: str = "video") -> None:
        m = self.size_multiple
        if frames < 1:
            raise ShapeError(f"{what}: {frames} frames; needs at least 1")
        if height % m or width % m or height < m or width < m:
            raise ShapeError(
                f"{what}: size {height}x{width}; {self.config.name} needs height and width divisible "
                f"by {m} (e.g. {max(m, height // m * m)}x{max(m, width // m * m)})"
            )

    def latent_shape(self, frames: int, height: int, width: int) -> Tuple[int, int, int, int]:
        self.check_size(frames, height, width)
        return (self.latent_channels, frames, height // self.spatial_ratio, width // self.spatial_ratio)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * float(self.vae.config.scaling_factor)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z / float(self.vae.config.scaling_factor)

    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        raise ShapeError("SVD latents are normalised by the VAE's scaling_factor only (no per-channel stats)")

    def encode_video(self, video: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        self.check_video(video)
        b, _, f, h, w = video.shape
        frames = video.to(self.vae.device, self.vae.dtype).permute(0, 2, 1, 3, 4).reshape(b * f, 3, h, w)
        dist = self.vae.encode(frames).latent_dist
        z = dist.sample(generator) if generator is not None else dist.mode()
        z = z.reshape(b, f, *z.shape[1:]).permute(0, 2, 1, 3, 4)
        return self.normalize(z)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.ndim != 5 or latents.size(1) != self.latent_channels:
            raise ShapeError(f"latents: expected [B, {self.latent_channels}, F, h, w], got {tuple(latents.shape)}")
        b, c, f, h, w = latents.shape
        z = self.denormalize(latents.to(self.vae.device, self.vae.dtype)).permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        out = self.vae.decode(z, num_frames=f).sample
        return out.reshape(b, f, *out.shape[1:]).permute(0, 2, 1, 3, 4)

    def condition_embedding(self, video: torch.Tensor) -> torch.Tensor:
        """CLIP image embedding ``[B, 1, D]`` of a condition video's last frame ([-1, 1] pixels)."""
        size = int(self.image_encoder.config.image_size)
        img = video[:, :, -1].to(self.image_encoder.device, torch.float32)
        img = F.interpolate(img, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        img = (img + 1.0) / 2.0
        mean = torch.tensor(CLIP_MEAN, device=img.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=img.device).view(1, 3, 1, 1)
        img = ((img - mean) / std).to(self.image_encoder.dtype)
        return self.image_encoder(img).image_embeds.unsqueeze(1)

    def encode_prompts(self, prompts: Optional[Sequence[str]], batch: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """SVD has no text encoder: non-empty prompts raise; returns a placeholder [B, 1, 1] / [B, 1]."""
        if prompts is not None and any(p for p in prompts):
            raise ShapeError(f"{self.config.name} has no text encoder; prompts are not supported (pass prompts=None)")
        return (
            torch.zeros(batch, 1, 1, device=self.device, dtype=self.dtype),
            torch.ones(batch, 1, dtype=torch.bool, device=self.device),
        )

    def save_pretrained(self, directory) -> Path:
        directory = Path(directory)
        self.vae.save_pretrained(directory / "vae", safe_serialization=True)
        self.denoiser.model.save_pretrained(directory / "unet", safe_serialization=True)
        self.image_encoder.save_pretrained(directory / "image_encoder", safe_serialization=True)
        self.scheduler.save_pretrained(directory / "scheduler")
        return directory

    def pipeline(self) -> Any:
        raise NotImplementedError("the stock SVD pipeline uses EDM sampling; use MADModel.sample")


SVD_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)


def _build(preset: Preset, seed: Optional[int]) -> SVDBackbone:
    from diffusers import AutoencoderKLTemporalDecoder, FlowMatchEulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    unet_cfg = dict(preset.denoiser)
    latent = int(preset.vae["latent_channels"])
    unet_cfg["in_channels"] = latent * (1 + len(SLOTS))
    unet_cfg["out_channels"] = latent
    with seeded_init(seed):
        vae = AutoencoderKLTemporalDecoder(**preset.vae)
        unet = UNetSpatioTemporalConditionModel(**unet_cfg)
        enc = CLIPVisionModelWithProjection(CLIPVisionConfig(**preset.text))
    if enc.config.projection_dim != unet.config.cross_attention_dim:
        raise ShapeError(
            f"{preset.name}: CLIP projection {enc.config.projection_dim} != UNet cross-attention "
            f"{unet.config.cross_attention_dim}"
        )
    return SVDBackbone(preset, vae, unet, FlowMatchEulerDiscreteScheduler(**SVD_SCHEDULER), enc.eval())


def _load_dir(preset: Preset, directory: Path, dtype: Optional[torch.dtype]) -> SVDBackbone:
    from diffusers import AutoencoderKLTemporalDecoder, FlowMatchEulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionModelWithProjection

    require_diffusers_dir(directory, ("vae", "unet", "image_encoder"), "SVD", "stable-video-diffusion weights")
    kw = dict(torch_dtype=dtype) if dtype is not None else {}
    try:
        vae = AutoencoderKLTemporalDecoder.from_pretrained(directory, subfolder="vae", **kw)
        unet = UNetSpatioTemporalConditionModel.from_pretrained(directory, subfolder="unet", **kw)
        enc = CLIPVisionModelWithProjection.from_pretrained(directory, subfolder="image_encoder", **kw)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{directory}: cannot load the SVD backbone ({exc})") from exc
    bb = SVDBackbone(preset, vae, unet, FlowMatchEulerDiscreteScheduler(**SVD_SCHEDULER), enc)
    bb.denoiser.expand_slots()
    return bb


def load_svd_backbone(
    preset: Preset, path=None, weights=None, seed: Optional[int] = 0, dtype: Optional[torch.dtype] = None
) -> SVDBackbone:
    """Build ``svd-tiny`` (random / shipped / file weights) or load ``svd`` from a diffusers directory."""
    if preset.needs_path:
        directory = Path(path)
        if not directory.is_dir():
            raise CheckpointError(f"{directory}: backbone directory not found (--backbone PATH)")
        return _load_dir(preset, directory, dtype)
    bb = _build(preset, seed)
    if weights is None:
        file = shipped_weights(preset.name)
        if not file.is_file():
            raise CheckpointError(
                f"no shipped weights for preset {preset.name!r} at {file}: pass weights=PATH, "
                f"or weights='random' for an untrained model"
            )
        bb.load_file(file)
    elif str(weights) != "random":
        bb.load_file(weights)
    return bb
