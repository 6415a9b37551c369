"""Backbone presets: which architecture, which configuration, where weights come from.

A :class:`Preset` is plain data (no torch).  ``tiny`` and ``svd-tiny`` carry
their full component configurations in code, so they can be built with random
weights anywhere; ``ltx-2b``, ``ltx-13b`` and ``svd`` describe real released
checkpoints whose weights (and exact configs) live in a local diffusers-format
directory the user passes with ``--backbone PATH``.

The reference configurations of the real checkpoints (LTX-Video 0.9.x 2B and
13B, SVD-XT) are kept here too: they are what
:func:`mad_sim.model.backbone_loading.build_empty` instantiates on the meta device to
check parameter counts and adapter targets without loading any weight.

Compression: an LTX VAE maps pixels ``[3, F, H, W]`` to latents
``[C, (F - 1) / t + 1, H / s, W / s]``; the released VAEs have ``t = 8``,
``s = 32`` (frame counts ``8k + 1``, sizes multiples of 32), the tiny one
``t = 4``, ``s = 8`` (frames ``4k + 1``; with the transformer's 4x4 patches
sizes stay multiples of 32).  The SVD VAE is 8x in space and 1x in time
(frames any count >= 1, sizes multiples of 64 for the UNet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Literal, Optional, Tuple

from mad_sim.errors import PresetError
from mad_sim.render.camera import Camera
from mad_sim.render.camera_mount import DASHCAM, CameraMount

Family = Literal["ltx", "svd"]

# FlowMatchEulerDiscreteScheduler as LTX-Video 0.9.x ships it (dynamic,
# resolution-dependent shift; terminal sigma stretched to 0.1).
LTX_SCHEDULER: Dict[str, Any] = dict(
    num_train_timesteps=1000,
    shift=1.0,
    use_dynamic_shifting=True,
    base_shift=0.95,
    max_shift=2.05,
    base_image_seq_len=1024,
    max_image_seq_len=4096,
    shift_terminal=0.1,
)

# Tiny: the LTX architecture scaled down, its representation chosen by VAE
# parse-back (MODEL_CARD.md: render real validation scenes, encode -> decode,
# parse the agents back).  The VAE is LTX-Video 0.9.5's design at 8x space /
# 4x time with 16 latent channels: 2x2 patches, then two spatio-temporal 2x
# blocks, one resnet per level; its down- and up-samplers add a
# parameter-free space<->depth shortcut to the learned conv, so the latent
# always carries the input's layout (the 0.9.0 design, strided convs only,
# trained from scratch on mostly-black pose videos decoded the mean image).
# A 128x128 frame is a 16x16 latent grid (a 10-pixel car spans more than a
# cell; at the earlier 32x it was a third of one), and frames are ``4k + 1``:
# a 9 + 17 frame clip has 3 + 5 latent frames.  The transformer's
# ``patch_size=4`` makes a token of 4x4 latent cells (16 x 16 = 256
# channels), so one latent frame is 4x4 = 16 tokens.  Transformer 8 heads x
# 64 = 512 wide, 8 layers, ~36M.
TINY_VAE: Dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=16,
    block_out_channels=(16, 32, 64),
    down_block_types=("LTXVideo095DownBlock3D",) * 2,
    layers_per_block=(1, 1, 1),
    downsample_type=("spatiotemporal",) * 2,
    spatio_temporal_scaling=(True, True),
    decoder_block_out_channels=(32, 64),
    decoder_layers_per_block=(1, 1, 1),
    decoder_spatio_temporal_scaling=(True, True),
    decoder_inject_noise=(False, False, False),
    upsample_residual=(True, True),
    upsample_factor=(2, 2),
    patch_size=2,
    patch_size_t=1,
    timestep_conditioning=False,
    encoder_causal=True,
    decoder_causal=False,
    spatial_compression_ratio=8,
    temporal_compression_ratio=4,
)
TINY_TRANSFORMER: Dict[str, Any] = dict(
    in_channels=256,
    out_channels=256,
    patch_size=4,
    patch_size_t=1,
    num_attention_heads=8,
    attention_head_dim=64,
    cross_attention_dim=512,
    num_layers=8,
    caption_channels=128,
)
ELEVATED_12M = CameraMount(hfov_deg=90.0, mount_height=12.0, pitch_deg=35.0)
"""A pose camera 12 m above the viewpoint, 35 deg down.

The ground from 5 to 50 m ahead spans rows 38-104 of a 128-row frame (66
rows), against rows 65-84 (18 rows) with the dashcam mount.  On clean frames
the parser then finds 0.91 of the visible vehicles within 30 m (dashcam
mount: 0.77), with a median error of 0.04 m (0.30 m), measured with
``bench/bench_vae_parseback.py --no-vae``.
"""
TINY_TEXT: Dict[str, Any] = dict(
    d_model=128,
    d_kv=32,
    d_ff=256,
    num_layers=2,
    num_heads=4,
    relative_attention_num_buckets=8,
    feed_forward_proj="gated-gelu",
    dropout_rate=0.0,
)

# LTX-Video 0.9.x reference configs (diffusers names).  2B: 28 layers x 32 heads
# x 64; 13B (0.9.7/0.9.8): 48 layers x 32 heads x 128, cross-attention 4096.
LTX_2B_TRANSFORMER: Dict[str, Any] = dict(
    in_channels=128,
    out_channels=128,
    patch_size=1,
    patch_size_t=1,
    num_attention_heads=32,
    attention_head_dim=64,
    cross_attention_dim=2048,
    num_layers=28,
    caption_channels=4096,
)
LTX_13B_TRANSFORMER: Dict[str, Any] = dict(
    in_channels=128,
    out_channels=128,
    patch_size=1,
    patch_size_t=1,
    num_attention_heads=32,
    attention_head_dim=128,
    cross_attention_dim=4096,
    num_layers=48,
    caption_channels=4096,
)
LTX_VAE: Dict[str, Any] = dict(
    latent_channels=128, block_out_channels=(128, 256, 512, 512), patch_size=4, patch_size_t=1, timestep_conditioning=False
)

# SVD-tiny: UNetSpatioTemporalConditionModel with two small levels; SVD's 4
# latent channels, 8 input channels (noisy latent + first-frame latent).
SVD_TINY_UNET: Dict[str, Any] = dict(
    sample_size=16,
    in_channels=8,
    out_channels=4,
    down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    block_out_channels=(32, 64),
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=24,
    layers_per_block=1,
    cross_attention_dim=64,
    transformer_layers_per_block=1,
    num_attention_heads=(2, 4),
    num_frames=25,
)
SVD_TINY_VAE: Dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    block_out_channels=(32, 32, 64, 64),
    layers_per_block=1,
    latent_channels=4,
    scaling_factor=0.18215,
)
SVD_TINY_IMAGE_ENCODER: Dict[str, Any] = dict(
    hidden_size=32,
    intermediate_size=64,
    projection_dim=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=32,
    patch_size=8,
    num_channels=3,
)
SVD_UNET: Dict[str, Any] = dict(num_frames=25)  # diffusers defaults are SVD-XT's UNet

# The paper's adapter targets (LTX transformer attention + feed-forward).
LTX_LORA_TARGETS: Tuple[str, ...] = ("to_k", "to_q", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2")
# UNet analogues (the spatio-temporal transformer blocks use the same names).
SVD_LORA_TARGETS: Tuple[str, ...] = ("to_k", "to_q", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2")


@dataclass(frozen=True)
class Preset:
    """A named backbone configuration.

    Attributes:
      name: the preset's name (``--preset``).
      family: ``"ltx"`` (token transformer, flow matching, prepended condition
        tokens) or ``"svd"`` (spatio-temporal UNet, channel-concatenated conditions).
      needs_path: True when weights must come from ``--backbone PATH``.
      vae / denoiser / text: component configs (diffusers / transformers kwargs);
        for path presets they are the reference configs (the directory's own
        ``config.json`` wins when loading).
      scheduler: FlowMatchEulerDiscreteScheduler kwargs.
      frame_rate: frames per second the RoPE time axis is scaled by (our data: 10 Hz).
      max_text_tokens: prompt length (tokens) fed to the text encoder.
      lora_targets: module-name suffixes LoRA adapters attach to.
      default_size: (height, width) of pose videos for this preset.
      sampler_steps / guidance_scale: the sampler's defaults (every caller that
        is not given steps or a guidance scale uses these: ``MADModel.sample``,
        ``AppearanceSynthesizer.synthesize``, the predictor service, the learned agents,
        the MAD planner, ``mad-sim generate``).
      adapter_rank: LoRA rank (alpha = rank) of ``MADModel.add_adapter`` when none is given.
    """

    name: str
    family: Family
    needs_path: bool
    vae: Dict[str, Any] = field(default_factory=dict)
    denoiser: Dict[str, Any] = field(default_factory=dict)
    text: Dict[str, Any] = field(default_factory=dict)
    scheduler: Dict[str, Any] = field(default_factory=lambda: dict(LTX_SCHEDULER))
    frame_rate: float = 10.0
    max_text_tokens: int = 16
    lora_targets: Tuple[str, ...] = LTX_LORA_TARGETS
    default_size: Tuple[int, int] = (128, 128)
    camera: CameraMount = DASHCAM
    description: str = ""
    sampler_steps: int = 4
    guidance_scale: float = 1.0
    adapter_rank: int = 32


PRESETS: Dict[str, Preset] = {
    # tiny ones: 4 steps, no guidance (what the shipped tiny weights were measured with), rank 32 (the paper's
    # 512 scaled to the 512-wide transformer).  LTX: the MAD paper's inference (50 steps, guidance 3.5), rank 512.
    "tiny": Preset(
        "tiny",
        "ltx",
        False,
        vae=TINY_VAE,
        denoiser=TINY_TRANSFORMER,
        text=TINY_TEXT,
        camera=ELEVATED_12M,
        description="LTX architecture, ~36M transformer (patch 4), VAE 8x/4x (16 ch), pose camera 12 m high "
        "pitched 35 deg; trained on CPU, shipped in mad_sim/weights",
    ),
    # Candidate representation (issue 13): the tiny VAE with 32 latent channels instead of 16 (24x
    # compression instead of 48x; the transformer's tokens are 4x4 cells of 32 channels = 512).  Measured by
    # parse-back (bench/bench_vae_parseback.py) against the shipped tiny VAE; trained by
    # configs/train/candidates/c32_vae.yaml.  Not shipped.
    "tiny-c32": Preset(
        "tiny-c32",
        "ltx",
        False,
        vae={**TINY_VAE, "latent_channels": 32},
        denoiser={**TINY_TRANSFORMER, "in_channels": 512, "out_channels": 512},
        text=TINY_TEXT,
        camera=ELEVATED_12M,
        description="candidate: the tiny preset with a 32-channel VAE latent (parse-back study, issue 13)",
    ),
    "ltx-2b": Preset(
        "ltx-2b",
        "ltx",
        True,
        vae=LTX_VAE,
        denoiser=LTX_2B_TRANSFORMER,
        max_text_tokens=128,
        default_size=(512, 768),
        sampler_steps=50,
        guidance_scale=3.5,
        adapter_rank=512,
        description="LTX-Video 0.9.x 2B from a local diffusers directory",
    ),
    "ltx-13b": Preset(
        "ltx-13b",
        "ltx",
        True,
        vae=LTX_VAE,
        denoiser=LTX_13B_TRANSFORMER,
        max_text_tokens=128,
        default_size=(512, 768),
        sampler_steps=50,
        guidance_scale=3.5,
        adapter_rank=512,
        description="LTX-Video 0.9.7+ 13B from a local diffusers directory",
    ),
    "svd-tiny": Preset(
        "svd-tiny",
        "svd",
        False,
        vae=SVD_TINY_VAE,
        denoiser=SVD_TINY_UNET,
        text=SVD_TINY_IMAGE_ENCODER,
        lora_targets=SVD_LORA_TARGETS,
        default_size=(128, 128),
        description="tiny UNetSpatioTemporalCondition + AutoencoderKLTemporalDecoder + CLIP vision, random init",
    ),
    "svd": Preset(
        "svd",
        "svd",
        True,
        denoiser=SVD_UNET,
        lora_targets=SVD_LORA_TARGETS,
        default_size=(576, 1024),
        description="Stable Video Diffusion (img2vid-xt) from a local diffusers directory",
    ),
}


def get_preset(name: str, path: Optional[str] = None) -> Preset:
    """The preset called ``name``; PresetError if unknown or if it needs a path and ``path`` is None."""
    if name not in PRESETS:
        raise PresetError(f"unknown model preset {name!r} (known: {', '.join(PRESETS)})")
    preset = PRESETS[name]
    if preset.needs_path and path is None:
        raise PresetError(
            f"preset {name!r} needs a local diffusers-format directory: pass --backbone PATH "
            f"(load_backbone({name!r}, path=...)); no weights are downloaded at run time"
        )
    return preset


def pose_camera(name: str, width: int, height: int) -> Camera:
    """The pose-video camera of preset ``name`` at ``width`` x ``height`` (no weights needed; PresetError if unknown)."""
    if name not in PRESETS:
        raise PresetError(f"unknown model preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name].camera.camera(width, height)
