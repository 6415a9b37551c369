"""A backbone object and its weights files: the VAE, the denoiser, the scheduler and the text encoder of one preset.

:class:`Backbone` is the LTX family (:mod:`mad_sim.model.svd` builds the SVD
family behind the same interface); :mod:`mad_sim.model.backbone_loading`
builds one for a preset (``load_backbone``).

Single-file layout (what ``save_file`` writes and the tiny weights ship as):
one safetensors file whose keys are ``vae.*``, ``transformer.*`` and
``text_encoder.*`` (the denoiser's own state dict under ``transformer.``),
metadata ``{"preset": name, "format": "mad-sim-backbone"}``; shipped files live
in ``mad_sim/weights`` (:data:`WEIGHTS_DIR`, :func:`shipped_weights`) and are
read by :func:`read_safetensors`.

Latents are normalised with the VAE's ``latents_mean`` / ``latents_std``
buffers (``(z - mean) * scaling_factor / std``, the LTX convention); after
training a VAE, set them with :meth:`Backbone.set_latent_stats`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch

from mad_sim.errors import CheckpointError, ShapeError
from mad_sim.io import atomic_path
from mad_sim.model.ltx import LTXDenoiser
from mad_sim.model.onednn_conv import use_onednn_conv3d
from mad_sim.model.presets import Preset
from mad_sim.model.text import encode_prompts

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
PathLike = Union[str, os.PathLike]


def shipped_weights(preset: str) -> Path:
    """Where the package's trained weights for ``preset`` live."""
    return WEIGHTS_DIR / f"{preset}.safetensors"


@contextlib.contextmanager
def seeded_init(seed: Optional[int]):
    """Run module construction under ``torch.manual_seed(seed)`` without touching the global RNG (None: no seeding)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class Backbone:
    """One video diffusion backbone (LTX family).

    Attributes:
      config: the :class:`~mad_sim.model.presets.Preset`.
      vae: ``AutoencoderKLLTXVideo``.
      denoiser: :class:`~mad_sim.model.ltx.LTXDenoiser` (``denoiser.model`` is the transformer).
      scheduler: ``FlowMatchEulerDiscreteScheduler``.
      text_encoder, tokenizer: T5-style encoder and its tokenizer.
    """

    family = "ltx"

    def __init__(self, config: Preset, vae: Any, transformer: Any, scheduler: Any, text_encoder: Any, tokenizer: Any) -> None:
        self.config = config
        self.vae = vae
        self.scheduler = scheduler
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.denoiser = LTXDenoiser(
            transformer,
            temporal_ratio=vae.temporal_compression_ratio,
            spatial_ratio=vae.spatial_compression_ratio,
            frame_rate=config.frame_rate,
        )
        self._prompt_cache: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
        use_onednn_conv3d(self.vae)  # batch-1 float32 CPU clips: 8-14x faster 3-D convolutions
        for m in (self.vae, self.text_encoder, self.denoiser):
            m.eval()
            m.requires_grad_(False)

    # ----------------------------------------------------------------- properties
    @property
    def transformer(self) -> Any:
        return self.denoiser.model

    @property
    def temporal_ratio(self) -> int:
        return int(self.vae.temporal_compression_ratio)

    @property
    def spatial_ratio(self) -> int:
        return int(self.vae.spatial_compression_ratio)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.denoiser.parameters()).dtype

    def components(self) -> Tuple[Tuple[str, torch.nn.Module], ...]:
        """(file prefix, module) of the weights a backbone file holds."""
        return (("vae", self.vae), ("transformer", self.transformer), ("text_encoder", self.text_encoder))

    def to(self, device: Optional[Union[str, torch.device]] = None, dtype: Optional[torch.dtype] = None) -> "Backbone":
        for m in (self.vae, self.text_encoder, self.denoiser):
            current = next(m.parameters())
            if dtype is not None and current.dtype != dtype:
                m.to(dtype=dtype)
            if device is not None and current.device != torch.device(device):
                m.to(device=device)
        self._prompt_cache.clear()
        return self

    # ----------------------------------------------------------------- shapes
    def check_video(self, video: torch.Tensor, what: str = "video") -> None:
        """ShapeError unless ``video`` is a finite [B, 3, F, H, W] float tensor of a size :meth:`check_size` accepts."""
        if not isinstance(video, torch.Tensor) or video.ndim != 5 or video.size(1) != 3:
            shape = tuple(video.shape) if hasattr(video, "shape") else type(video).__name__
            raise ShapeError(f"{what}: expected a [B, 3, F, H, W] tensor in [-1, 1], got shape {shape}")
        if not video.is_floating_point():
            raise ShapeError(f"{what}: expected a float tensor in [-1, 1], got {video.dtype} (convert uint8 with uint8_to_video)")
        self.check_size(int(video.size(2)), int(video.size(3)), int(video.size(4)), what)
        if not torch.isfinite(video).all():
            raise ShapeError(f"{what}: contains NaN or infinite values")

    @property
    def size_multiple(self) -> int:
        """Pixels per token side: the VAE's space compression times the transformer's patch size (tiny: 8 x 4)."""
        patch = getattr(getattr(self.transformer, "config", None), "patch_size", 1)
        return self.spatial_ratio * int(patch if isinstance(patch, int) else 1)

    def check_size(self, frames: int, height: int, width: int, what: str = "video") -> None:
        """ShapeError unless ``frames`` = tk+1 (t the VAE's time compression) and the sizes are multiples of
        :attr:`size_multiple` (so the latents tile into the transformer's patches)."""
        tr, sr = self.temporal_ratio, self.size_multiple
        if frames < 1 or (frames - 1) % tr:
            k = max((frames - 1) // tr, 0)
            raise ShapeError(
                f"{what}: {frames} frames; {self.config.name} needs {tr}k+1 frames (e.g. {tr * k + 1} or {tr * (k + 1) + 1})"
            )
        if height % sr or width % sr or height < sr or width < sr:
            raise ShapeError(
                f"{what}: size {height}x{width}; {self.config.name} needs height and width divisible "
                f"by {sr} (e.g. {max(sr, height // sr * sr)}x{max(sr, width // sr * sr)})"
            )

    def latent_shape(self, frames: int, height: int, width: int) -> Tuple[int, int, int, int]:
        """(C, f, h, w) of the latents of a [3, frames, height, width] video."""
        self.check_size(frames, height, width)
        return (
            self.latent_channels,
            (frames - 1) // self.temporal_ratio + 1,
            height // self.spatial_ratio,
            width // self.spatial_ratio,
        )

    # ----------------------------------------------------------------- VAE
    def _stats(self, like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, float]:
        mean = self.vae.latents_mean.view(1, -1, 1, 1, 1).to(like.device, like.dtype)
        std = self.vae.latents_std.view(1, -1, 1, 1, 1).to(like.device, like.dtype)
        return mean, std, float(self.vae.config.scaling_factor)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        mean, std, scale = self._stats(z)
        return (z - mean) * scale / std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        mean, std, scale = self._stats(z)
        return z * std / scale + mean

    def encode_video(self, video: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """[B, 3, F, H, W] in [-1, 1] -> normalised latents [B, C, (F-1)/t+1, H/s, W/s] (:meth:`latent_shape`).

        The posterior mean is used; with a ``generator`` a posterior sample is drawn instead.
        Gradients flow when called under ``torch.enable_grad`` with a trainable VAE.
        """
        self.check_video(video)
        video = video.to(self.vae.device, self.vae.dtype)
        dist = self.vae.encode(video).latent_dist
        z = dist.sample(generator) if generator is not None else dist.mode()
        return self.normalize(z)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents [B, C, f, h, w] -> video [B, 3, t(f-1)+1, s h, s w] (roughly [-1, 1], not clipped).

        ``t`` / ``s``: the VAE's time / space compression (:attr:`temporal_ratio`, :attr:`spatial_ratio`).
        """
        if latents.ndim != 5 or latents.size(1) != self.latent_channels:
            raise ShapeError(f"latents: expected [B, {self.latent_channels}, f, h, w], got {tuple(latents.shape)}")
        z = self.denormalize(latents.to(self.vae.device, self.vae.dtype))
        temb = None
        if self.vae.config.timestep_conditioning:
            temb = torch.zeros(z.size(0), device=z.device, dtype=z.dtype)
        return self.vae.decode(z, temb, return_dict=False)[0]

    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the per-channel latent normalisation (``[C]`` each, std > 0)."""
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        c = self.latent_channels
        if mean.numel() != c or std.numel() != c or not torch.isfinite(mean).all() or not (std > 0).all():
            raise ShapeError(f"latent stats must be [{c}] finite, std > 0; got {tuple(mean.shape)} / {tuple(std.shape)}")
        self.vae.latents_mean.copy_(mean.to(self.vae.latents_mean))
        self.vae.latents_std.copy_(std.to(self.vae.latents_std))

    # ----------------------------------------------------------------- text
    def encode_prompts(self, prompts: Optional[Sequence[str]], batch: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Prompt embeddings [B, L, D] and mask [B, L]; None means empty prompts (cached)."""
        if prompts is None:
            prompts = [""] * batch
        prompts = list(prompts)
        if len(prompts) != batch:
            raise ShapeError(f"{len(prompts)} prompts for a batch of {batch}")
        if all(p == prompts[0] for p in prompts):
            key = prompts[0]
            cached = self._prompt_cache.get(key)
            if cached is not None and cached[0].is_inference() and not torch.is_inference_mode_enabled():
                cached = None  # made under inference_mode: autograd cannot save it for backward
            if cached is None:
                self._prompt_cache[key] = encode_prompts(
                    self.tokenizer, self.text_encoder, [key], self.config.max_text_tokens, self.device, self.dtype
                )
            e, m = self._prompt_cache[key]
            return e.expand(batch, -1, -1), m.expand(batch, -1)
        return encode_prompts(self.tokenizer, self.text_encoder, prompts, self.config.max_text_tokens, self.device, self.dtype)

    # ----------------------------------------------------------------- I/O
    def state_dict(self) -> Dict[str, torch.Tensor]:
        """Base weights (no LoRA) under ``vae.`` / ``transformer.`` / ``text_encoder.`` prefixes."""
        out: Dict[str, torch.Tensor] = {}
        for prefix, module in self.components():
            sd = module.state_dict()
            for k, v in sd.items():
                if "lora_" in k:
                    continue
                out[f"{prefix}.{k.replace('.base_layer', '')}"] = v.detach().contiguous()
        return out

    def save_file(self, path: PathLike) -> Path:
        """Write the base weights as one safetensors file (atomic); see the module doc for the layout."""
        from safetensors.torch import save_file

        path = Path(path)
        sd = {k: v.cpu() for k, v in self.state_dict().items()}
        sd = _dedupe_shared(sd)
        with atomic_path(path) as tmp:
            save_file(sd, str(tmp), metadata={"preset": self.config.name, "format": "mad-sim-backbone"})
        return path

    def load_file(self, path: PathLike) -> None:
        """Load base weights written by :meth:`save_file`; CheckpointError if missing, corrupt or mismatched."""
        sd = read_safetensors(path)
        self.load_state_dict(sd, source=str(path))

    def load_state_dict(self, sd: Dict[str, torch.Tensor], source: str = "<state dict>") -> None:
        groups: Dict[str, Dict[str, torch.Tensor]] = {prefix: {} for prefix, _ in self.components()}
        for k, v in sd.items():
            prefix, _, rest = k.partition(".")
            if prefix not in groups:
                raise CheckpointError(f"{source}: unexpected key {k!r} (expected {', '.join(p + '.*' for p in groups)})")
            groups[prefix][rest] = v
        for prefix, module in self.components():
            own = {k.replace(".base_layer", ""): k for k in module.state_dict() if "lora_" not in k}
            got = groups[prefix]
            missing = sorted(set(own) - set(got) - _tied_keys(module))
            extra = sorted(set(got) - set(own))
            if missing or extra:
                raise CheckpointError(
                    f"{source}: does not fit the {self.config.name} {prefix}: "
                    f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                    f"unexpected {extra[:3]}{'...' if len(extra) > 3 else ''}"
                )
            target = module.state_dict()
            for k, v in got.items():
                dst = target[own[k]]
                if dst.shape != v.shape:
                    raise CheckpointError(f"{source}: {prefix}.{k} has shape {tuple(v.shape)}, model wants {tuple(dst.shape)}")
                with torch.no_grad():
                    dst.copy_(v.to(dst.dtype))
            if hasattr(module, "tie_weights") and hasattr(module, "shared"):
                module.tie_weights()
        self._prompt_cache.clear()

    def save_pretrained(self, directory: PathLike) -> Path:
        """Write a diffusers-format ``LTXPipeline`` directory (model_index.json, vae/, transformer/,
        text_encoder/, tokenizer/, scheduler/; safetensors), loadable by ``load_backbone(..., path=dir)``
        and by ``diffusers.LTXPipeline.from_pretrained(dir)``.  Adapters are not included."""
        directory = Path(directory)
        self.pipeline().save_pretrained(directory, safe_serialization=True)
        return directory

    def pipeline(self) -> Any:
        """A stock ``diffusers.LTXPipeline`` over the same components (no adapters or conditions of ours)."""
        from diffusers import LTXPipeline

        return LTXPipeline(
            scheduler=self.scheduler,
            vae=self.vae,
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
            transformer=self.transformer,
        )


def require_diffusers_dir(directory: Path, subfolders: Sequence[str], family: str, weights_hint: str) -> None:
    """CheckpointError unless ``directory`` has every component subfolder of a diffusers-format ``family`` pipeline."""
    for sub in subfolders:
        if not (directory / sub).is_dir():
            raise CheckpointError(
                f"{directory}: not a diffusers-format {family} directory (no {sub}/ folder); "
                f"pass --backbone PATH of a local copy of {weights_hint}"
            )


def _tied_keys(module: Any) -> set:
    # T5EncoderModel ties encoder.embed_tokens to shared; either name may be absent from a file.
    return {"encoder.embed_tokens.weight"} if hasattr(module, "shared") else set()


def _dedupe_shared(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    sd = dict(sd)
    if "text_encoder.encoder.embed_tokens.weight" in sd and "text_encoder.shared.weight" in sd:
        del sd["text_encoder.encoder.embed_tokens.weight"]
    seen: Dict[int, str] = {}
    for k in list(sd):
        ptr = sd[k].data_ptr()
        if ptr in seen and sd[k].numel() and sd[seen[ptr]].shape == sd[k].shape:
            sd[k] = sd[k].clone()
        seen.setdefault(ptr, k)
    return sd


def read_safetensors(path: PathLike) -> Dict[str, torch.Tensor]:
    """Read a safetensors file to CPU tensors; CheckpointError naming the file if missing or corrupt."""
    from safetensors.torch import load_file

    from mad_sim.model.weights_codec import decode_state_dict

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        sd = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for bad headers / truncation
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    return decode_state_dict(sd)  # int8-stored shipped weights (mad_sim.model.weights_codec); no-op otherwise
