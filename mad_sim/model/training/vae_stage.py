"""The ``vae`` training stage: the tiny ``AutoencoderKLLTXVideo``.

Trained from scratch (or from ``init_vae``) on windows of ``frames`` frames of
pose, ego-motion and dashcam RGB video; loss = edge-weighted L1/L2
reconstruction + ``kl_weight`` x KL (see
:class:`~mad_sim.model.training.loop.VaeLossConfig`).  On export, per-channel
latent mean/std over training clips are written into the VAE's
``latents_mean``/``latents_std`` buffers (LTX normalises latents with them
before the transformer), so the transformer sees roughly unit-variance
latents.  The stage interface is described in :mod:`mad_sim.model.training.stages`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mad_sim.errors import CheckpointError, ConfigError
from mad_sim.model.training.stage_io import load_safetensors_into, save_safetensors, videos_to_tensor

log = logging.getLogger(__name__)


def edge_weight_map(target: torch.Tensor, threshold: float, weight: float) -> torch.Tensor:
    """Per-pixel weights ``[B, 1, F, H, W]``: ``1 + weight`` on and 1 px around bright pixels, else 1.

    ``target`` is ``[B, 3, F, H, W]`` in ``[-1, 1]``; a pixel is bright when a
    channel exceeds ``threshold`` (0-255 scale).
    """
    bright = (target.amax(dim=1, keepdim=True) > threshold / 127.5 - 1.0).float()
    b, c, f, h, w = bright.shape
    grown = F.max_pool2d(bright.transpose(1, 2).reshape(b * f, 1, h, w), 3, stride=1, padding=1)
    grown = grown.reshape(b, f, 1, h, w).transpose(1, 2)
    return 1.0 + weight * grown


def agent_pixel_mask(windows: np.ndarray, min_chroma: int = 60) -> np.ndarray:
    """``[B, F, H, W]`` bool: the agent pixels of pose windows and their 1-px neighbourhood.

    In a pose video the agents are the coloured strokes (hue-cycling vehicle
    edges, stick figures) and the map is white, so a pixel is an agent's when
    its chroma ``max(R, G, B) - min(R, G, B)`` is at least ``min_chroma``.
    Windows that are not pose videos (mostly non-black: ego-motion, camera
    RGB; more than a third of their pixels lit) get no mask.  ``windows`` is
    ``[B, F, H, W, 3]`` uint8.
    """
    w = windows.astype(np.int16)
    chroma = (w.max(-1) - w.min(-1)) >= min_chroma
    lit = windows.max(-1) > 20
    pose_like = lit.reshape(len(windows), -1).mean(1) < 1.0 / 3.0
    b, f, h, wd = chroma.shape
    grown = cv2.dilate(chroma.reshape(b * f, h, wd).astype(np.uint8).transpose(1, 2, 0), np.ones((3, 3), np.uint8))
    grown = grown.reshape(h, wd, b * f).transpose(2, 0, 1).reshape(b, f, h, wd).astype(bool)
    return grown & pose_like[:, None, None, None]


@torch.no_grad()
def latent_stats(vae: torch.nn.Module, cache, device, num_clips: int = 64, seed: int = 1234) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std ``[C]`` of raw posterior means over ``num_clips`` training clips.

    Both the future pose video and the future ego-motion video of each clip
    are encoded (the two kinds of video the transformer reads and writes).
    """
    rng = np.random.default_rng(seed)
    idx = cache.indices("train")
    idx = np.sort(rng.choice(idx, size=min(num_clips, idx.size), replace=False))
    spec, feats = cache.spec, []
    for chunk in np.array_split(idx, max(1, len(idx) // 8)):
        pose, ego = cache.batch(chunk)
        for video in (pose[:, spec.future_slice], ego[:, spec.future_slice]):
            lat = vae.encode(videos_to_tensor(video, device)).latent_dist.mean
            feats.append(lat.transpose(0, 1).reshape(lat.shape[1], -1))
    allf = torch.cat(feats, dim=1)
    return allf.mean(dim=1), allf.std(dim=1).clamp_min(1e-3)


class VaeStage:
    """Train the preset's LTX VAE from scratch (or from ``init_vae``)."""

    def __init__(self, cfg, cache, device) -> None:
        from diffusers import AutoencoderKLLTXVideo

        from mad_sim.model.presets import get_preset

        preset = get_preset(cfg.preset)
        if preset.family != "ltx":
            raise ConfigError(f"stage 'vae' trains an LTX VAE; preset {cfg.preset!r} is {preset.family}")
        if cfg.frames > cache.spec.total_frames:
            raise ConfigError(f"frames={cfg.frames} exceeds the clips' {cache.spec.total_frames} frames")
        torch.manual_seed(cfg.seed)
        self.module = AutoencoderKLLTXVideo(**preset.vae).to(device)
        if cfg.init_vae:
            load_safetensors_into(self.module, cfg.init_vae, "VAE")
        from mad_sim.model.onednn_conv import use_onednn_conv3d

        use_onednn_conv3d(self.module)  # 1.3-1.5x faster backward at these shapes; same parameter names
        if not cfg.vae_loss.train_encoder:
            self.module.encoder.requires_grad_(False)
        self.cfg, self.cache, self.device = cfg, cache, device
        self._rgb_clips = None
        self._rgb_vehicles = None  # [K, F, H, W] bool vehicle-box masks of the RGB clips (vehicle_weight > 0)

    def _unwrap(self) -> torch.nn.Module:
        m = self.module
        return getattr(m, "module", m)

    def _rgb(self):
        """The paired dashcam clip cache (opened on first use; only when ``rgb_fraction > 0``)."""
        if self._rgb_clips is None:
            from mad_sim.model.training.appearance_clips import (
                AppearanceClips,
                AppearanceClipSpec,
                build_appearance_clips,
                shared_data_sources,
            )

            try:
                spec = AppearanceClipSpec(**self.cfg.vae_loss.rgb_clips)
            except TypeError as exc:
                raise ConfigError(f"vae_loss.rgb_clips: {exc}") from exc
            if spec.width != self.cache.spec.width or spec.height != self.cache.spec.height:
                raise ConfigError(
                    f"vae_loss.rgb_clips are {spec.width}x{spec.height}, the pose clips "
                    f"{self.cache.spec.width}x{self.cache.spec.height}"
                )
            self._rgb_clips = AppearanceClips(build_appearance_clips(**shared_data_sources(), spec=spec, progress=False))
        return self._rgb_clips

    def sample_windows(self, batch: np.ndarray, rng: np.random.Generator, vehicles: bool = False):
        """``[B, frames, H, W, 3]`` uint8: a random window of each clip's pose, ego-motion or RGB video.

        Each sample is an ego-motion window with probability ``ego_fraction``,
        a window of a random train-split dashcam RGB clip with probability
        ``rgb_fraction``, else a pose window of clip ``batch[i]``.  With
        ``vehicles``, returns ``(windows, masks [B, frames, H, W] bool)``: the
        RGB windows' vehicle-box masks (all False for pose / ego windows).
        """
        cfg, spec = self.cfg, self.cache.spec
        pose, ego = self.cache.batch(batch)
        u = rng.random(len(batch))
        start = rng.integers(0, spec.total_frames - cfg.frames + 1, size=len(batch))
        out = np.stack([(ego if u[i] < cfg.vae_loss.ego_fraction else pose)[i, s : s + cfg.frames] for i, s in enumerate(start)])
        masks = np.zeros(out.shape[:-1], bool)
        for i in np.flatnonzero(u >= 1.0 - cfg.vae_loss.rgb_fraction):
            clips = self._rgb()
            k = rng.choice(clips.indices("train"))
            s = rng.integers(0, clips.spec.frames - cfg.frames + 1)
            out[i] = clips.rgb[k, s : s + cfg.frames]
            if vehicles:
                if self._rgb_vehicles is None:
                    from mad_sim.model.appearance.vehicle_masks import clip_vehicle_masks

                    self._rgb_vehicles = clip_vehicle_masks(clips)
                masks[i] = self._rgb_vehicles[k, s : s + cfg.frames]
        return (out, masks) if vehicles else out

    def loss(self, batch: np.ndarray, rng: np.random.Generator, gen: torch.Generator) -> Tuple[torch.Tensor, Dict[str, float]]:
        lc = self.cfg.vae_loss
        vw, aw = lc.vehicle_weight, lc.agent_weight
        extra = None
        if vw > 0:
            windows, masks = self.sample_windows(batch, rng, vehicles=True)
            extra = vw * torch.from_numpy(masks).to(self.device, torch.float32).unsqueeze(1)
        else:
            windows = self.sample_windows(batch, rng)
        if aw > 0:
            agents = aw * torch.from_numpy(agent_pixel_mask(windows)).to(self.device, torch.float32).unsqueeze(1)
            extra = agents if extra is None else extra + agents
        loss, parts, _ = self._loss(videos_to_tensor(windows, self.device), gen, extra)
        return loss, parts

    def _loss(
        self, x: torch.Tensor, gen: torch.Generator | None, extra_weight: torch.Tensor | None = None
    ) -> Tuple[torch.Tensor, Dict[str, float], torch.Tensor]:
        """``(loss, parts, recon)``: edge-weighted reconstruction error of ``x`` [B, 3, F, H, W]
        (weights normalised per sample; ``extra_weight`` [B, 1, F, H, W] is added to the
        edge weights first, e.g. vehicle boxes) + KL, and the reconstruction itself."""
        lc = self.cfg.vae_loss
        posterior = self.module.encode(x).latent_dist
        z = posterior.mean
        if lc.posterior_noise > 0 and gen is not None:
            z = z + lc.posterior_noise * posterior.std * torch.randn(z.shape, generator=gen).to(self.device)
        recon = self.module.decode(z).sample
        w = edge_weight_map(x, lc.bright_threshold, lc.edge_weight)
        if extra_weight is not None:
            w = w + extra_weight
        w = w / w.mean(dim=(1, 2, 3, 4), keepdim=True)  # each sample weighs the same, pose or RGB
        err = recon - x
        l1 = (w * err.abs()).mean()
        l2 = (w * err.pow(2)).mean()
        rec = {"l1": l1, "l2": l2, "l1+l2": l1 + l2}[lc.recon]
        kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1.0 - posterior.logvar).mean()
        loss = rec + lc.kl_weight * kl
        return loss, {"l1": float(l1.detach()), "l2": float(l2.detach()), "kl": float(kl.detach())}, recon

    @torch.no_grad()
    def eval_loss(self, num_clips: int = 8) -> Dict[str, float]:
        """Held-out reconstruction scores (recorded at each checkpoint).

        The first ``frames`` frames of ``num_clips`` eval-split pose clips (and
        their ego-motion videos; and, with ``rgb_fraction > 0``, eval-split RGB
        clips), reconstructed through the posterior mean: ``eval_loss`` (the
        training loss), ``eval_psnr`` / ``eval_recall`` / ``eval_precision``
        of the pose videos (:mod:`mad_sim.model.evaluation.vae_metrics`), ``eval_ego_psnr``
        and ``eval_rgb_psnr`` (dB).
        """
        from mad_sim.model.conditioning import video_to_uint8
        from mad_sim.model.evaluation.vae_metrics import line_metrics, psnr

        vae = self._unwrap()
        was_training = vae.training
        vae.eval()
        idx = self.cache.indices("eval")
        if idx.size == 0:
            return {}
        idx = idx[np.linspace(0, idx.size - 1, min(num_clips, idx.size)).round().astype(int)]
        pose, ego = self.cache.batch(idx)
        sets = {"pose": pose[:, : self.cfg.frames], "ego": ego[:, : self.cfg.frames]}
        if self.cfg.vae_loss.rgb_fraction > 0:
            clips = self._rgb()
            ridx = clips.indices("eval")
            ridx = ridx[np.linspace(0, ridx.size - 1, min(num_clips // 2, ridx.size)).round().astype(int)]
            sets["rgb"] = np.asarray(clips.rgb[ridx, : self.cfg.frames])
        out: Dict[str, float] = {}
        losses = []
        for name, videos in sets.items():
            recs = []
            for i in range(0, len(videos), 2):
                x = videos_to_tensor(videos[i : i + 2], self.device)
                loss, _, recon = self._loss(x, None)  # posterior mean: the same reconstruction as inference
                losses.append(float(loss))
                recs.append(video_to_uint8(recon).cpu().numpy())
            rec = np.concatenate(recs)
            key = "" if name == "pose" else f"{name}_"
            out[f"eval_{key}psnr"] = psnr(np.asarray(videos), rec)
            if name == "pose":
                lines = line_metrics(np.asarray(videos), rec)
                out.update({f"eval_{k}": v for k, v in lines.items() if k in ("recall", "precision")})
        out["eval_loss"] = float(np.mean(losses))
        vae.train(was_training)
        return out

    def trainable_state(self) -> Dict[str, torch.Tensor]:
        return {k: v for k, v in self._unwrap().state_dict().items()}

    def load_trainable_state(self, sd: Dict[str, torch.Tensor]) -> None:
        missing, unexpected = self._unwrap().load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"checkpoint does not fit the VAE: missing {missing[:3]}, unexpected {unexpected[:3]}")

    def latent_stats(self, num_clips: int = 64, seed: int = 1234) -> Tuple[torch.Tensor, torch.Tensor]:
        vae = self._unwrap().eval()
        out = latent_stats(vae, self.cache, self.device, num_clips, seed)
        vae.train()
        return out

    def export(self, folder: Path) -> Dict[str, Path]:
        vae = self._unwrap()
        mean, std = self.latent_stats()
        vae.latents_mean.copy_(mean)
        vae.latents_std.copy_(std)
        path = save_safetensors(
            vae.state_dict(),
            Path(folder) / "vae.safetensors",
            {"format": "diffusers AutoencoderKLLTXVideo", "preset": self.cfg.preset},
        )
        return {"vae": path}
