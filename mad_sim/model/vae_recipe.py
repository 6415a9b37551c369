"""VAE rescue: a training recipe that makes the tiny LTX VAE reconstruct pose videos.

Pose frames are ~94% black with 1-px coloured lines. A plain per-pixel loss
on them has a trivial, very good local minimum: the mean pose image (dark,
with a faint horizon), which the from-scratch runs fell into. This module
makes the lines visible to the optimiser and measures what matters for
parsing generated frames back into agents.

Metrics: :func:`~mad_sim.model.vae_metrics.psnr` and
:func:`~mad_sim.model.vae_metrics.line_metrics` (line recall / precision), and

- :func:`latent_dependence`: decode a clip's latent and another clip's latent;
  if the decoder ignores the latent both decodes are the same image.

Loss (torch, videos ``[B, 3, F, H, W]`` in ``[-1, 1]``):

- :func:`foreground_weights`: per sample, lit pixels (dilated by ``grow`` px)
  carry ``fg_share`` of the total weight and dark pixels the rest; the map
  has mean 1 so the loss scale does not depend on how much of a frame is lit.
- :func:`gaussian_blur`: separable Gaussian over H and W of every frame.
- :func:`recipe_loss`: weighted L1 between blurred reconstruction and blurred
  target at the curriculum's current ``sigma`` plus ``sharp_weight`` times the
  weighted L1 at full resolution (blur widens a 1-px line's gradient basin
  from 1 px to ~2 sigma px, so a decoder that puts a line 2 px off still
  gets pulled towards it).
- :func:`Curriculum`: ``sigma`` anneals linearly from ``sigma_start`` to
  ``sigma_end``; lines are thickened (grey dilation of input AND target,
  radius ``dilate_radius`` px shrinking linearly to 0 over ``dilate_steps``).

Training (:func:`train`): Adam(W) with linear warmup, gradient clip, random
``crop`` x ``crop`` windows of the 128x128 clips (the VAE is fully
convolutional; a 64 crop costs ~1/4 of a full frame), deterministic
auto-encoder (posterior mean, ``kl_weight`` 0 by default), resumable
checkpoints (:mod:`mad_sim.model.checkpoint`) every ``checkpoint_minutes``.
Run: ``python -m mad_sim.model.vae_recipe configs/train/tiny_vae_rescue.yaml``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from mad_sim.errors import ConfigError, ShapeError
from mad_sim.model.vae_metrics import line_metrics, psnr

log = logging.getLogger(__name__)



# --------------------------------------------------------------------------- loss (torch)
def to_tensor(videos: np.ndarray) -> torch.Tensor:
    """``[B, F, H, W, 3]`` uint8 -> ``[B, 3, F, H, W]`` float32 in ``[-1, 1]``."""
    x = torch.from_numpy(np.ascontiguousarray(videos))
    return x.permute(0, 4, 1, 2, 3).float().div_(127.5).sub_(1.0)


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """``[B, 3, F, H, W]`` in ``[-1, 1]`` -> ``[B, F, H, W, 3]`` uint8 (clipped, rounded)."""
    x = (video.detach().float().clamp(-1, 1) + 1.0) * 127.5
    return x.round().to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur over H, W of ``[B, C, F, H, W]`` (kernel radius ceil(3 sigma), zero padding)."""
    if sigma <= 0.05:
        return x
    r = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    b, c, f, h, w = x.shape
    y = x.permute(0, 2, 1, 3, 4).reshape(b * f * c, 1, h, w)
    y = F.conv2d(y, k.view(1, 1, 1, -1), padding=(0, r))
    y = F.conv2d(y, k.view(1, 1, -1, 1), padding=(r, 0))
    return y.view(b, f, c, h, w).permute(0, 2, 1, 3, 4)


def lit_mask(x: torch.Tensor, lit_threshold: float = 60.0) -> torch.Tensor:
    """``[B, 1, F, H, W]`` float mask of pixels whose max channel exceeds ``lit_threshold`` (0..255 scale)."""
    return ((x.amax(1, keepdim=True) + 1.0) * 127.5 > lit_threshold).float()


def dilate_video(x: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Per-channel grey dilation (max filter over (2r+1)^2 in H, W) of ``[B, C, F, H, W]``: thicker lines."""
    if radius <= 0:
        return x
    b, c, f, h, w = x.shape
    y = x.reshape(b, c * f, h, w)
    y = F.max_pool2d(y, 2 * radius + 1, stride=1, padding=radius)
    return y.view(b, c, f, h, w)


def foreground_weights(target: torch.Tensor, fg_share: float = 0.5, grow: int = 1,
                       lit_threshold: float = 60.0) -> torch.Tensor:
    """``[B, 1, F, H, W]`` weights, mean 1 per sample: lit pixels (grown by ``grow`` px) carry ``fg_share``.

    With ``n`` pixels per sample and ``k`` of them foreground, foreground pixels
    get ``fg_share * n / k`` and background ``(1 - fg_share) * n / (n - k)``.
    A sample with no foreground (or all foreground) gets uniform weight 1.
    """
    if not 0.0 < fg_share < 1.0:
        raise ConfigError(f"fg_share={fg_share} must be in (0, 1)")
    m = dilate_video(lit_mask(target, lit_threshold), grow)
    n = float(m[0].numel())
    k = m.flatten(1).sum(1).view(-1, 1, 1, 1, 1)
    fg = fg_share * n / k.clamp(min=1.0)
    bg = (1.0 - fg_share) * n / (n - k).clamp(min=1.0)
    w = m * fg + (1.0 - m) * bg
    degenerate = (k == 0) | (k == n)
    return torch.where(degenerate, torch.ones_like(w), w)


@dataclass
class Curriculum:
    """Schedules of the loss: blur sigma (px) anneals linearly, targets dilated early.

    Attributes:
      sigma_start / sigma_end: blur at step 0 and from ``anneal_steps`` on (pixels).
      anneal_steps: steps of the linear anneal.
      dilate_radius / dilate_steps: thick-line phase: input and target are
        dilated by ``ceil(dilate_radius * (1 - step / dilate_steps))`` px.
      sharp_weight: weight of the unblurred term next to the blurred one.
      fg_share: share of the loss carried by (grown) lit pixels.
      l2_weight: weight of an extra weighted MSE on the sharp term (0 = L1 only).
      out_spread_weight: weight of :func:`spread_penalty` on the decoded video
        (its across-batch std must not fall below the target's).
      z_spread_weight / z_spread_target: weight of the hinge that keeps the
        across-batch std of every latent entry at least ``z_spread_target``.
    """

    sigma_start: float = 2.5
    sigma_end: float = 0.0
    anneal_steps: int = 1500
    dilate_steps: int = 0
    dilate_radius: int = 1
    sharp_weight: float = 0.5
    fg_share: float = 0.5
    l2_weight: float = 0.0
    out_spread_weight: float = 0.0
    z_spread_weight: float = 0.0
    z_spread_target: float = 1.0

    def radius(self, step: int) -> int:
        if step >= self.dilate_steps:
            return 0
        return int(math.ceil(self.dilate_radius * (1.0 - step / self.dilate_steps)))

    def sigma(self, step: int) -> float:
        if self.anneal_steps <= 0:
            return self.sigma_end
        a = min(1.0, max(0.0, step / self.anneal_steps))
        return (1.0 - a) * self.sigma_start + a * self.sigma_end


def spread_penalty(pred: torch.Tensor, floor: torch.Tensor | float) -> torch.Tensor:
    """Mean hinge ``relu(floor - std_b(pred))`` of the across-batch std of every entry (VICReg-style variance term).

    The collapse this recipe fights is a decoder whose output no longer depends
    on its input: its across-batch std goes to 0. At initialisation the
    latent-dependent part of the output is uncorrelated with the target, so a
    plain reconstruction loss removes it faster than the encoder learns to make
    it useful; each decoder stage then shrinks it further (measured: the std
    falls 2-4x per up block within 30 steps at lr 1e-3). The hinge makes that
    shortcut cost loss. ``pred``: ``[B, ...]`` with ``B >= 2``.
    """
    if pred.size(0) < 2:
        raise ShapeError("spread_penalty needs a batch of at least 2")
    return F.relu(floor - pred.std(0)).mean()


def recipe_loss(recon: torch.Tensor, target: torch.Tensor, cur: Curriculum, step: int,
                z: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, float]]:
    """The curriculum loss of a reconstruction ``[B, 3, F, H, W]`` against its target (both in [-1, 1]).

    ``z``: the latents (posterior means), needed when ``cur.z_spread_weight > 0``.
    """
    if recon.shape != target.shape:
        raise ShapeError(f"recon {tuple(recon.shape)} vs target {tuple(target.shape)}")
    w = foreground_weights(target, cur.fg_share, grow=1)
    sigma = cur.sigma(step)
    sharp = (w * (recon - target).abs()).mean()
    loss = cur.sharp_weight * sharp
    terms = {"sharp_l1": float(sharp.detach()), "sigma": sigma}
    if sigma > 0.05:
        wb = foreground_weights(target, cur.fg_share, grow=int(math.ceil(2 * sigma)))
        blur = (wb * (gaussian_blur(recon, sigma) - gaussian_blur(target, sigma)).abs()).mean()
        loss = loss + blur
        terms["blur_l1"] = float(blur.detach())
    if cur.l2_weight > 0:
        l2 = (w * (recon - target).pow(2)).mean()
        loss = loss + cur.l2_weight * l2
        terms["l2"] = float(l2.detach())
    if cur.out_spread_weight > 0:
        sp = spread_penalty(recon, target.std(0).detach())
        loss = loss + cur.out_spread_weight * sp
        terms["out_spread"] = float(sp.detach())
    if cur.z_spread_weight > 0:
        if z is None:
            raise ConfigError("curriculum.z_spread_weight > 0 needs the latents")
        zp = spread_penalty(z, cur.z_spread_target)
        loss = loss + cur.z_spread_weight * zp
        terms["z_spread"] = float(zp.detach())
    return loss, terms


# --------------------------------------------------------------------------- model
def build_vae(overrides: Optional[Dict[str, Any]] = None) -> torch.nn.Module:
    """``AutoencoderKLLTXVideo`` from the tiny preset's ``TINY_VAE`` with ``overrides`` applied (lists -> tuples)."""
    from diffusers import AutoencoderKLLTXVideo

    from mad_sim.model.presets import TINY_VAE

    cfg = dict(TINY_VAE)
    for k, v in (overrides or {}).items():
        if k not in cfg and k not in ("decoder_inject_noise", "upsample_residual", "upsample_factor", "downsample_type"):
            raise ConfigError(f"vae override {k!r} is not an AutoencoderKLLTXVideo argument of the tiny preset")
        cfg[k] = tuple(v) if isinstance(v, list) else v
    return AutoencoderKLLTXVideo(**cfg)


def init_output_layer(vae: torch.nn.Module, bias: float = -0.9, scale: float = 0.1) -> None:
    """Start the decoder near the data: output bias ``bias`` (-0.9 ~ black in [-1, 1]), conv_out weights x ``scale``.

    At the preset's random init the decoded video is grey noise (mean ~0.3,
    per-sample std ~0.18) while pose targets are ~94% black (-1). The largest
    early gradient is then "shift everything to black and drop the noise",
    which the network satisfies by making its output independent of the
    latent (measured: decoder-output spread across a batch falls from 0.18 to
    1e-4 within 30 Adam steps at lr 1e-3). Starting at black with little noise
    leaves the lines as the main error.
    """
    conv = vae.decoder.conv_out.conv
    with torch.no_grad():
        conv.weight.mul_(scale)
        if conv.bias is not None:
            conv.bias.fill_(bias)


class CentringPenalty:
    """Hooks on every RMSNorm of the VAE; ``value()`` = mean over norms of ``mean_c(m_c^2 / (v_c + eps))``.

    ``m_c`` / ``v_c``: mean / variance of channel ``c`` of the norm's input over
    batch, time and space. RMSNorm (the LTX VAE's only normalisation, over
    channels, no mean subtraction) maps a feature ``m + s`` whose constant part
    ``m`` dominates to nearly the same unit vector everywhere, so a network
    that grows constant parts (SiLU outputs have a positive mean; convs sum
    them) loses its input dependence layer by layer. Penalising ``m^2 / v``
    keeps the features centred, as LayerNorm/GroupNorm would.
    """

    def __init__(self, vae: torch.nn.Module, eps: float = 1e-4) -> None:
        from diffusers.models.normalization import RMSNorm

        self.eps = eps
        self.terms: List[torch.Tensor] = []
        self.handles = []
        for name, m in vae.named_modules():
            if isinstance(m, RMSNorm):
                self.handles.append(m.register_forward_pre_hook(self._hook))

    def _hook(self, module: torch.nn.Module, inputs: Tuple[torch.Tensor, ...]) -> None:
        if not torch.is_grad_enabled():
            return
        x = inputs[0].flatten(0, -2)  # LTX applies RMSNorm with channels last
        m, v = x.mean(0), x.var(0)
        self.terms.append((m.pow(2) / (v + self.eps)).mean())

    def value(self) -> torch.Tensor:
        """The penalty of the forward passes since the last call (then cleared)."""
        out = torch.stack(self.terms).mean() if self.terms else torch.zeros(())
        self.terms = []
        return out


KEEP_BIASES = ("encoder.conv_out.conv.bias", "decoder.conv_out.conv.bias")


def freeze_inner_biases(vae: torch.nn.Module, keep: Tuple[str, ...] = KEEP_BIASES) -> int:
    """Zero every bias of the VAE except ``keep`` and stop training them; returns how many were frozen.

    The LTX VAE normalises with RMSNorm over channels, which does not remove a
    per-channel constant: a growing conv bias ``b`` turns a feature ``b + s``
    into ``(b + s) / |b|`` after the next norm, shrinking the input-dependent
    part ``s``. The cheapest way to fit the mean pose image is exactly that,
    and it is the collapse seen in every from-scratch run. Without inner
    biases the constant part of each feature must come through the weights.
    The architecture is unchanged (the frozen biases are saved as zeros).
    """
    n = 0
    for name, p in vae.named_parameters():
        if name.endswith(".bias") and name not in keep:
            with torch.no_grad():
                p.zero_()
            p.requires_grad_(False)
            n += 1
    return n


def autoencode(vae: torch.nn.Module, x: torch.Tensor, kl: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(recon, z, kl_term)``: deterministic auto-encoding through the posterior mean ``z`` (output not clipped)."""
    post = vae.encode(x).latent_dist
    recon = vae.decode(post.mean).sample
    if kl:
        k = 0.5 * (post.mean.pow(2) + post.var - 1.0 - post.logvar).mean()
    else:
        k = torch.zeros((), device=x.device)
    return recon, post.mean, k


@torch.no_grad()
def reconstruct(vae: torch.nn.Module, videos: np.ndarray, batch: int = 2) -> np.ndarray:
    """``[B, F, H, W, 3]`` uint8 -> reconstructions, same shape, uint8 (posterior mean)."""
    out = []
    for i in range(0, len(videos), batch):
        out.append(to_uint8(autoencode(vae, to_tensor(videos[i:i + batch]))[0]))
    return np.concatenate(out)


@torch.no_grad()
def latent_dependence(vae: torch.nn.Module, videos: np.ndarray, recon: Optional[np.ndarray] = None) -> Dict[str, float]:
    """How much the decode depends on the latent: decode clip ``i`` and clip ``i+1``'s latent.

    Returns ``{"decode_diff": mean |D(z_i) - D(z_j)|, "target_diff": mean |x_i - x_j|, "ratio"}``
    (0..255 scale); ``ratio`` near 0 means the decoder ignores its latent.
    ``recon``: the reconstructions of ``videos`` when already computed.
    """
    if len(videos) < 2:
        raise ShapeError("latent_dependence needs at least 2 clips")
    rec = (reconstruct(vae, videos) if recon is None else recon).astype(np.float32)
    x = videos.astype(np.float32)
    dd = float(np.abs(rec - np.roll(rec, 1, axis=0)).mean())
    td = float(np.abs(x - np.roll(x, 1, axis=0)).mean())
    return {"decode_diff": dd, "target_diff": td, "ratio": dd / max(td, 1e-9)}


def evaluate(vae: torch.nn.Module, videos: np.ndarray) -> Dict[str, float]:
    """PSNR, line metrics and latent dependence of ``vae`` on held-out ``[B, F, H, W, 3]`` uint8 clips."""
    was_training = vae.training
    vae.eval()
    rec = reconstruct(vae, videos)
    out = {"psnr": psnr(videos, rec), **line_metrics(videos, rec)}
    out.update(latent_dependence(vae, videos, rec))
    vae.train(was_training)
    return out


def mean_image_baseline(train_videos: np.ndarray, eval_videos: np.ndarray) -> Dict[str, float]:
    """Metrics of predicting the per-pixel mean training frame for every eval frame (the collapse mode)."""
    mean = train_videos.reshape(-1, *train_videos.shape[-3:]).astype(np.float64).mean(0)
    pred = np.broadcast_to(np.round(mean).astype(np.uint8), eval_videos.shape)
    return {"psnr": psnr(eval_videos, pred), **line_metrics(eval_videos, np.ascontiguousarray(pred))}


# --------------------------------------------------------------------------- training
@dataclass
class RecipeConfig:
    """``configs/train/tiny_vae_rescue.yaml``.

    Attributes:
      output_dir: run folder (checkpoints/, metrics.jsonl, recon.png).
      cache_dir: clip cache folder (``pose.npy``, ``manifest.json``; see datasets.ClipCache).
      vae: overrides of ``TINY_VAE`` (e.g. ``block_out_channels``).
      init_vae: optional safetensors state dict to start from.
      steps: total optimizer steps (resume continues up to it).
      batch_size, frames (8k+1), crop (pixels, <= clip size; full size = no crop).
      lr, warmup_steps, betas, weight_decay, grad_clip, kl_weight: optimiser.
      centre_weight: weight of :class:`CentringPenalty` (0 = off).
      init_output_bias / init_output_scale: :func:`init_output_layer` on a fresh
        start (``init_output_scale <= 0`` skips it).
      image_steps / image_batch: the first ``image_steps`` steps train on single
        frames (``image_batch`` crops per step, ~1/9 the cost of a clip), then clips.
      curriculum: :class:`Curriculum`.
      eval_every: steps between held-out evaluations; eval_clips: how many.
      checkpoint_minutes: wall minutes between checkpoints.
      seed: numpy / torch seed.
      threads: torch threads.
    """

    output_dir: str = "runs/vae_rescue/main"
    cache_dir: str = "~/.cache/mad-sim/clips/d1d863d280a70a4a"
    vae: Dict[str, Any] = field(default_factory=dict)
    init_vae: str = ""
    steps: int = 3000
    batch_size: int = 2
    frames: int = 9
    crop: int = 64
    lr: float = 1e-3
    warmup_steps: int = 50
    betas: Tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    kl_weight: float = 0.0
    centre_weight: float = 1.0
    init_output_bias: float = -0.9
    init_output_scale: float = 0.1
    image_steps: int = 0
    image_batch: int = 8
    curriculum: Curriculum = field(default_factory=Curriculum)
    eval_every: int = 200
    eval_clips: int = 8
    checkpoint_minutes: float = 3.0
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.frames < 1 or (self.frames - 1) % 8:
            raise ConfigError(f"frames={self.frames} must be 8k+1")
        if self.crop < 32 or self.crop % 32:
            raise ConfigError(f"crop={self.crop} must be a positive multiple of 32")
        self.betas = tuple(self.betas)  # type: ignore[assignment]


def load_recipe(path: str) -> RecipeConfig:
    """YAML -> :class:`RecipeConfig` (unknown keys are errors naming the file)."""
    from mad_sim.config import load_config

    return load_config(path, RecipeConfig)


def sample_batch(pose: np.ndarray, index: np.ndarray, frames: int, crop: int, rng: np.random.Generator) -> np.ndarray:
    """Random ``frames``-long windows, random ``crop`` x ``crop`` crops of clips ``index`` of ``pose [K, T, H, W, 3]``."""
    k, t, h, w, _ = pose.shape
    out = np.empty((len(index), frames, crop, crop, 3), dtype=np.uint8)
    for j, i in enumerate(index):
        s = rng.integers(0, t - frames + 1)
        y = rng.integers(0, h - crop + 1)
        x = rng.integers(0, w - crop + 1)
        out[j] = pose[i, s:s + frames, y:y + crop, x:x + crop]
    return out


def eval_set(pose: np.ndarray, eval_index: np.ndarray, n: int, frames: int) -> np.ndarray:
    """Fixed held-out set: ``n`` eval clips spread over the split, their first ``frames`` frames, full size."""
    pick = eval_index[np.linspace(0, len(eval_index) - 1, n).round().astype(int)]
    return np.asarray(pose[pick, :frames])


def save_recon_image(path: Path, target: np.ndarray, recon: np.ndarray, frames: Tuple[int, ...] = (0, 4, 8)) -> None:
    """PNG grid: one row per clip, ``target | recon`` pairs for the given frames."""
    import imageio.v3 as iio

    from mad_sim.io import atomic_path

    rows = []
    for t_clip, r_clip in zip(target, recon):
        cells = []
        for f in frames:
            cells += [t_clip[f], np.full((t_clip.shape[1], 2, 3), 128, np.uint8), r_clip[f],
                      np.full((t_clip.shape[1], 6, 3), 255, np.uint8)]
        rows.append(np.concatenate(cells, 1))
    with atomic_path(path, suffix=".png") as tmp:
        iio.imwrite(tmp, np.concatenate(rows, 0))


def _lr_at(cfg: RecipeConfig, step: int) -> float:
    return cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))


def train(cfg: RecipeConfig, max_minutes: Optional[float] = None, progress: bool = True) -> Dict[str, float]:
    """Train (or resume) the recipe; returns the last evaluation. See the module doc."""
    from tqdm import tqdm

    from mad_sim.model.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
    from mad_sim.model.datasets import ClipCache

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = ClipCache(Path(cfg.cache_dir).expanduser())
    pose = cache.pose
    train_idx, eval_idx = cache.indices("train"), cache.indices("eval")
    eval_videos = eval_set(pose, eval_idx, cfg.eval_clips, cfg.frames)
    torch.manual_seed(cfg.seed)
    vae = build_vae(cfg.vae)
    if cfg.init_vae:
        from safetensors.torch import load_file
        vae.load_state_dict(load_file(cfg.init_vae))
    elif cfg.init_output_scale > 0:
        init_output_layer(vae, cfg.init_output_bias, cfg.init_output_scale)
    centring = CentringPenalty(vae) if cfg.centre_weight > 0 else None
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    step, cpu_used = 0, 0.0
    ck_dir = out / "checkpoints"
    if latest_checkpoint(ck_dir) is not None:
        ck = load_checkpoint(ck_dir)
        vae.load_state_dict(ck.model)
        if ck.optimizer is not None:
            try:
                opt.load_state_dict(ck.optimizer)
            except ValueError as exc:
                log.warning("optimizer state not restored (%s)", exc)
        step = ck.step
        cpu_used = float(ck.extra.get("cpu_seconds", 0.0))
        log.info("resumed from %s at step %d", ck.path, step)
    rng = np.random.default_rng([cfg.seed, step])
    cfg_dict = json.loads(json.dumps(asdict(cfg)))
    last_ck = time.monotonic()
    t_start = time.monotonic()
    cpu0 = time.process_time()
    metrics: Dict[str, float] = {}
    vae.train()
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="vae-rescue")

    def cpu_now() -> float:
        return cpu_used + time.process_time() - cpu0

    def checkpoint() -> None:
        save_checkpoint(ck_dir, step, vae.state_dict(), optimizer=opt, config=cfg_dict,
                        extra={"cpu_seconds": cpu_now(), "metrics": metrics}, keep=2)

    def run_eval() -> None:
        nonlocal metrics
        metrics = evaluate(vae, eval_videos)
        metrics.update(step=step, cpu_seconds=cpu_now())
        with open(out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(metrics) + "\n")
        log.info("eval step %d: %s", step, {k: round(v, 4) for k, v in metrics.items()})
        rec = reconstruct(vae.eval(), eval_videos[:4]); vae.train()
        save_recon_image(out / "recon.png", eval_videos[:4], rec)

    while step < cfg.steps:
        if max_minutes is not None and time.monotonic() - t_start > 60.0 * max_minutes:
            break
        for g in opt.param_groups:
            g["lr"] = _lr_at(cfg, step)
        if step < cfg.image_steps:
            x = to_tensor(sample_batch(pose, rng.choice(train_idx, cfg.image_batch), 1, cfg.crop, rng))
        else:
            x = to_tensor(sample_batch(pose, rng.choice(train_idx, cfg.batch_size), cfg.frames, cfg.crop, rng))
        x = dilate_video(x, cfg.curriculum.radius(step))
        recon, z, kl = autoencode(vae, x, kl=cfg.kl_weight > 0)
        loss, terms = recipe_loss(recon, x, cfg.curriculum, step, z)
        if centring is not None:
            cp = centring.value()
            loss = loss + cfg.centre_weight * cp
            terms["centre"] = float(cp.detach())
        if cfg.kl_weight > 0:
            loss = loss + cfg.kl_weight * kl
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {float(loss)} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(vae.parameters(), cfg.grad_clip))
        opt.step()
        step += 1
        bar.update(1)
        if step % 25 == 0:
            log.info("step %d loss %.4f gnorm %.3f %s cpu %.0fs", step, float(loss), gnorm,
                     {k: round(v, 4) for k, v in terms.items()}, cpu_now())
        if step % cfg.eval_every == 0:
            run_eval()
        if time.monotonic() - last_ck > 60.0 * cfg.checkpoint_minutes:
            checkpoint()
            last_ck = time.monotonic()
    bar.close()
    if not metrics or metrics.get("step") != step:
        run_eval()
    checkpoint()
    return metrics


def export_weights(cfg: RecipeConfig, target: str, fit_stats_clips: int = 32) -> Dict[str, float]:
    """Latest checkpoint -> float16 safetensors state dict with fitted ``latents_mean`` / ``latents_std``.

    The stats are the per-channel mean / std of posterior means over
    ``fit_stats_clips`` training pose clips (9 frames, full size), the
    normalisation :class:`mad_sim.model.backbone.Backbone` applies.
    """
    from safetensors.torch import save_file

    from mad_sim.io import atomic_path
    from mad_sim.model.checkpoint import load_checkpoint
    from mad_sim.model.datasets import ClipCache

    ck = load_checkpoint(Path(cfg.output_dir) / "checkpoints")
    vae = build_vae(cfg.vae)
    vae.load_state_dict(ck.model)
    vae.eval()
    cache = ClipCache(Path(cfg.cache_dir).expanduser())
    idx = cache.indices("train")
    pick = idx[np.linspace(0, len(idx) - 1, fit_stats_clips).round().astype(int)]
    zs = []
    with torch.no_grad():
        for i in range(0, len(pick), 2):
            zs.append(vae.encode(to_tensor(np.asarray(cache.pose[pick[i:i + 2], :cfg.frames]))).latent_dist.mean)
    z = torch.cat(zs).transpose(0, 1).flatten(1)
    vae.latents_mean.copy_(z.mean(1))
    vae.latents_std.copy_(z.std(1).clamp(min=1e-4))
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in vae.state_dict().items()}
    with atomic_path(target, suffix=".safetensors") as tmp:
        save_file(sd, str(tmp), metadata={"format": "mad-sim-vae", "step": str(ck.step),
                                          "vae_overrides": json.dumps(cfg.vae)})
    return {"step": ck.step, "latent_std_mean": float(z.std(1).mean())}


def evaluate_run(cfg: RecipeConfig, num_clips: int = 32, image: Optional[str] = None) -> Dict[str, Any]:
    """Latest checkpoint vs the mean-image baseline on ``num_clips`` held-out clips (``cfg.frames`` frames, full size).

    Writes a ``target | recon`` PNG (4 clips, frames 0/4/8) to ``image`` when given.
    """
    from mad_sim.model.checkpoint import load_checkpoint
    from mad_sim.model.datasets import ClipCache

    torch.set_num_threads(cfg.threads)
    ck = load_checkpoint(Path(cfg.output_dir) / "checkpoints")
    vae = build_vae(cfg.vae)
    vae.load_state_dict(ck.model)
    cache = ClipCache(Path(cfg.cache_dir).expanduser())
    tr, ev = cache.indices("train"), cache.indices("eval")
    videos = eval_set(cache.pose, ev, min(num_clips, len(ev)), cfg.frames)
    model = evaluate(vae, videos)
    base = mean_image_baseline(np.asarray(cache.pose[tr[::8], :cfg.frames]), videos)
    if image:
        save_recon_image(Path(image), videos[:4], reconstruct(vae.eval(), videos[:4]))
    return {"step": ck.step, "cpu_seconds": ck.extra.get("cpu_seconds"), "clips": len(videos),
            "model": model, "mean_image": base}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="VAE rescue recipe: train / evaluate / export the tiny pose VAE")
    p.add_argument("config")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--set", nargs="*", default=[], help="overrides key=value (yaml values), e.g. steps=500 crop=128")
    p.add_argument("--output-dir", default=None)
    p.add_argument("--export", default=None, help="write float16 weights of the latest checkpoint here and exit")
    p.add_argument("--evaluate", type=int, default=0, metavar="N",
                   help="evaluate the latest checkpoint on N held-out clips against the mean image and exit")
    p.add_argument("--image", default=None, help="with --evaluate: write a target|recon PNG here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_recipe(args.config)
    import yaml

    for kv in args.set:
        key, _, val = kv.partition("=")
        obj: Any = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            obj = getattr(obj, part)
        if not hasattr(obj, parts[-1]):
            raise ConfigError(f"--set: unknown key {key!r}")
        setattr(obj, parts[-1], yaml.safe_load(val))
    if args.output_dir:
        cfg.output_dir = args.output_dir
    cfg.__post_init__()
    if args.evaluate:
        print(json.dumps(evaluate_run(cfg, args.evaluate, args.image), indent=1))
        return 0
    if args.export:
        print(json.dumps(export_weights(cfg, args.export)))
        return 0
    print(json.dumps(train(cfg, max_minutes=args.max_minutes, progress=False)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
