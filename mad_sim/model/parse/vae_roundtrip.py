"""The candidate VAE of a parse-back measurement: pose clips encoded and decoded as the model encodes its conditions.

:class:`VaeSpec` names a video VAE either by model preset (``tiny``: the
preset's ``AutoencoderKLLTXVideo`` config, weights from the shipped
backbone file, another backbone file, a diffusers directory, or ``random``)
or by a diffusers ``AutoencoderKLLTXVideo`` config (a ``config.json`` or a
folder holding one) plus a safetensors weights file (keys with or without a
``vae.`` prefix, as a backbone file stores them).

:class:`VaeRoundTrip` turns ``[F, H, W, 3]`` uint8 pose frames into their
reconstruction exactly as :meth:`~mad_sim.model.backbone.Backbone.encode_video`
/ :meth:`~mad_sim.model.backbone.Backbone.decode_latents` do for a condition
(:func:`~mad_sim.model.conditioning.uint8_to_video` to ``[1, 3, F, H, W]`` in
[-1, 1], posterior mode, the ``latents_mean`` / ``latents_std`` normalisation
and its inverse, ``decode`` with a zero timestep when the VAE is timestep
conditioned, clamp to [-1, 1], :func:`~mad_sim.model.conditioning.video_to_uint8`),
and times each encode and decode (wall seconds; CUDA synchronised).

Token count of a clip: ``f * h * w / (p^2 * p_t)`` with latents ``[C, f, h, w]``
and the transformer patch sizes ``p`` / ``p_t`` (the preset's, unless the
spec overrides them).

Torch is imported inside the functions, so importing this module stays
numpy-only like the rest of :mod:`mad_sim.model.parse`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mad_sim.errors import CheckpointError, ConfigError, PresetError, ShapeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VaeSpec:
    """Which VAE to round-trip through (see the module doc).

    Attributes:
      preset: model preset whose VAE config and transformer patch size apply (``tiny``).
      weights: the preset's backbone file (None: the shipped one; ``"random"``: a seeded random init;
        a diffusers directory: its ``vae/`` folder).
      vae_config: a diffusers ``AutoencoderKLLTXVideo`` ``config.json`` (or its folder); overrides ``preset``'s VAE.
      vae_weights: safetensors weights for ``vae_config`` (``vae.``-prefixed keys are accepted); None with a
        folder ``vae_config`` that holds its own weights.
      patch_size, patch_size_t: transformer patch sizes for the token count (None: the preset's).
      device: torch device.
      seed: seed of a random init.
    """

    preset: str = "tiny"
    weights: str | None = None
    vae_config: str | None = None
    vae_weights: str | None = None
    patch_size: int | None = None
    patch_size_t: int | None = None
    device: str = "cpu"
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _vae_state(sd: dict[str, Any]) -> dict[str, Any]:
    """A VAE state dict from a backbone file (``vae.*`` keys) or a bare VAE file."""
    if any(k.startswith("vae.") for k in sd):
        return {k[len("vae.") :]: v for k, v in sd.items() if k.startswith("vae.")}
    return dict(sd)


def _load_into(vae: Any, path: Path) -> None:
    from mad_sim.model.backbone import read_safetensors

    sd = _vae_state(read_safetensors(path))
    own = vae.state_dict()
    missing, extra = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if missing or extra:
        raise CheckpointError(f"{path}: does not fit the VAE: missing {missing[:3]}, unexpected {extra[:3]}")
    for k, v in sd.items():
        if own[k].shape != v.shape:
            raise CheckpointError(f"{path}: vae.{k} has shape {tuple(v.shape)}, the VAE wants {tuple(own[k].shape)}")
    vae.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()}, strict=True)


def build_vae(spec: VaeSpec) -> tuple[Any, tuple[int, int]]:
    """``(AutoencoderKLLTXVideo in eval mode on spec.device, (patch_size, patch_size_t))`` for ``spec``."""
    import torch
    from diffusers import AutoencoderKLLTXVideo

    from mad_sim.model.backbone import seeded_init, shipped_weights
    from mad_sim.model.onednn_conv import use_onednn_conv3d
    from mad_sim.model.presets import PRESETS, get_preset

    preset = PRESETS.get(spec.preset)
    if spec.vae_weights is not None and spec.vae_config is None:
        raise ConfigError(
            f"vae_weights={spec.vae_weights!r} goes with a vae_config; for the preset's own VAE pass the file as weights"
        )
    if spec.vae_config is None:
        preset = get_preset(spec.preset, spec.weights)  # PresetError: unknown, or a path preset without a directory
    if preset is not None and preset.family != "ltx":
        raise PresetError(f"preset {spec.preset!r} is not an LTX preset: the parse-back measures LTX video VAEs")
    denoiser = preset.denoiser if preset is not None else {}
    patch = (int(spec.patch_size or denoiser.get("patch_size", 1)), int(spec.patch_size_t or denoiser.get("patch_size_t", 1)))
    if spec.vae_config is not None:
        cfg = Path(spec.vae_config)
        folder = cfg if cfg.is_dir() else cfg.parent
        cfg_file = cfg / "config.json" if cfg.is_dir() else cfg
        if not cfg_file.is_file():
            raise CheckpointError(f"{cfg_file}: VAE config not found (--vae-config)")
        if spec.vae_weights is None and cfg.is_dir():
            vae = AutoencoderKLLTXVideo.from_pretrained(folder)
        elif spec.vae_weights is None:
            raise CheckpointError(f"{cfg_file}: a bare VAE config needs weights (--vae-weights FILE, or 'random')")
        else:
            conf = {k: v for k, v in json.loads(cfg_file.read_text()).items() if not k.startswith("_")}
            with seeded_init(spec.seed):
                vae = AutoencoderKLLTXVideo(**conf)
            if spec.vae_weights != "random":
                _load_into(vae, Path(str(spec.vae_weights)))
    else:
        assert preset is not None  # get_preset above raised otherwise
        with seeded_init(spec.seed):
            vae = AutoencoderKLLTXVideo(**preset.vae)
        w = spec.weights
        if w is None:
            _load_into(vae, shipped_weights(preset.name))
        elif w != "random":
            p = Path(w)
            if p.is_dir():
                vae = AutoencoderKLLTXVideo.from_pretrained(p, subfolder="vae")
            else:
                _load_into(vae, p)
    if any(p.dtype != torch.float32 for p in vae.parameters()):
        vae = vae.float()
    vae = vae.to(device=torch.device(spec.device))
    use_onednn_conv3d(vae)
    vae.eval()
    vae.requires_grad_(False)
    return vae, patch


class VaeRoundTrip:
    """``frames [F, H, W, 3] uint8 -> reconstruction [F, H, W, 3] uint8`` through a candidate VAE (module doc).

    Attributes:
      spec: the :class:`VaeSpec`.
      patch: ``(p, p_t)`` transformer patch sizes used for :meth:`tokens`.
      times: ``(encode_s, decode_s)`` wall seconds of every call.
      latent_shape: ``(C, f, h, w)`` of the last clip's latents.
    """

    def __init__(self, spec: VaeSpec | None = None, vae: Any = None, patch: tuple[int, int] = (1, 1)) -> None:
        self.spec = spec or VaeSpec()
        if vae is None:
            vae, patch = build_vae(self.spec)
        self.vae = vae
        self.patch = patch
        self.times: list[tuple[float, float]] = []
        self.latent_shape: tuple[int, ...] | None = None

    @property
    def temporal_ratio(self) -> int:
        return int(self.vae.temporal_compression_ratio)

    @property
    def spatial_ratio(self) -> int:
        return int(self.vae.spatial_compression_ratio)

    def _sync(self) -> None:
        import torch

        if next(self.vae.parameters()).device.type == "cuda":
            torch.cuda.synchronize()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch

        from mad_sim.model.conditioning import uint8_to_video, video_to_uint8

        f = np.asarray(frames)
        tr, sr = self.temporal_ratio, self.spatial_ratio
        if f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3:
            raise ShapeError(f"VaeRoundTrip: expected [F, H, W, 3] uint8 frames, got {f.dtype} {f.shape}")
        if (f.shape[0] - 1) % tr or f.shape[1] % sr or f.shape[2] % sr:
            raise ShapeError(
                f"VaeRoundTrip: {f.shape[0]} frames of {f.shape[2]}x{f.shape[1]}; this VAE needs "
                f"{tr}k+1 frames and sizes divisible by {sr}"
            )
        vae = self.vae
        p = next(vae.parameters())
        with torch.no_grad():
            video = uint8_to_video(torch.from_numpy(np.ascontiguousarray(f)))[None].to(p.device, p.dtype)
            mean = vae.latents_mean.view(1, -1, 1, 1, 1).to(p)
            std = vae.latents_std.view(1, -1, 1, 1, 1).to(p)
            scale = float(vae.config.scaling_factor)
            self._sync()
            t0 = time.perf_counter()
            z = (vae.encode(video).latent_dist.mode() - mean) * scale / std
            self._sync()
            t1 = time.perf_counter()
            zd = z * std / scale + mean
            temb = torch.zeros(1, device=p.device, dtype=p.dtype) if vae.config.timestep_conditioning else None
            out = vae.decode(zd, temb, return_dict=False)[0]
            self._sync()
            t2 = time.perf_counter()
        self.times.append((t1 - t0, t2 - t1))
        self.latent_shape = tuple(int(s) for s in z.shape[1:])
        return video_to_uint8(out.float().clamp(-1, 1).cpu())[0].numpy()

    def tokens(self, frames: int, height: int, width: int) -> int:
        """Transformer tokens of one ``frames x height x width`` clip: ``f h w / (p^2 p_t)`` (module doc)."""
        f = (frames - 1) // self.temporal_ratio + 1
        h, w = height // self.spatial_ratio, width // self.spatial_ratio
        p, pt = self.patch
        return int(np.ceil(f / pt) * np.ceil(h / p) * np.ceil(w / p))

    def timing(self) -> dict[str, Any]:
        """Median / mean wall milliseconds of encode, decode and both per clip, and the torch thread count."""
        import torch

        t = np.asarray(self.times, np.float64).reshape(-1, 2) * 1000.0
        tot = t.sum(1)
        nan = float("nan")
        return {
            "clips": len(t),
            "threads": int(torch.get_num_threads()),
            "encode_ms_median": float(np.median(t[:, 0])) if len(t) else nan,
            "decode_ms_median": float(np.median(t[:, 1])) if len(t) else nan,
            "total_ms_median": float(np.median(tot)) if len(t) else nan,
            "total_ms_mean": float(tot.mean()) if len(t) else nan,
        }

    def describe(self, frames: int, height: int, width: int) -> dict[str, Any]:
        """The VAE's compression, latent channels, patch and tokens for a clip (JSON-ready)."""
        c = int(self.vae.config.latent_channels)
        f = (frames - 1) // self.temporal_ratio + 1
        return {
            "spec": self.spec.to_dict(),
            "spatial_ratio": self.spatial_ratio,
            "temporal_ratio": self.temporal_ratio,
            "latent_shape": [c, f, height // self.spatial_ratio, width // self.spatial_ratio],
            "patch": list(self.patch),
            "tokens": self.tokens(frames, height, width),
        }


__all__ = ["VaeRoundTrip", "VaeSpec", "build_vae"]
