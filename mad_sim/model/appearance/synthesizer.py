"""`AppearanceSynthesizer`: pose video (+ first RGB frame, + text) -> camera video, and its chunk cache.

The second half of MAD: the same backbone with the ``appearance`` LoRA
adapter "dresses" a pose video as camera frames.  It runs only when someone
asks for RGB: nothing here is imported or loaded by pose- or state-only use
of the simulator.

Conditioning (LTX family, :mod:`mad_sim.model.ltx`):

* the **pose video** (``[F, H, W, 3]`` uint8, the target's own time span) is
  VAE-encoded and prepended as clean tokens at the target's time
  coordinates (``Condition(kind="pose")``, frame offset 0);
* the **first RGB frame**, when given, is (a) prepended as a clean reference
  image (``first_frame``, time offset 1000 frames: the scene's look) and
  (b) the *hard condition of frame 0*: the LTX VAE is causal, so pixel frame
  0 alone makes latent frame 0; at every sampler step that latent frame is
  replaced by the first frame's latents noised to the current level,
  ``z_0 <- (1 - sigma) z_first + sigma eps_first``, and set to ``z_first``
  after the last step, and output frame 0 is the given frame itself (the
  LTX decoder is not causal, so decoding alone would let later frames
  bleed into it);
* the **text prompt** goes through the backbone's text encoder (``None``:
  no prompt; an empty string is an error, it is almost always a bug).

Training (:meth:`AppearanceSynthesizer.training_loss`): flow matching on the
RGB clip's latents with the pose video as condition and, with probability
``p_first``, the clip's first frame as reference; *targeted noise* corrupts
only the pose latent patches that hold pose pixels
(``ref = (1 - s) ref + s eps``, ``s ~ U(0, 0.3)``), so the adapter learns to
trust but not copy imperfect (generated) pose videos.

:class:`RGBChunkCache` produces frames in chunks of ``F`` as pose frames come:
asking for the frame of every step costs one synthesis per ``F - 1`` steps.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from mad_sim.errors import ConfigError, PresetError, ShapeError
from mad_sim.model.conditioning import Condition, uint8_to_video, video_to_uint8
from mad_sim.model.mad import MADModel
from mad_sim.model.sampling import set_schedule

log = logging.getLogger(__name__)
ArrayLike = Union[np.ndarray, torch.Tensor]
PathLike = Union[str, os.PathLike]


def _as_uint8(x: ArrayLike, what: str, ndims: Tuple[int, ...], layout: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.ndim not in ndims or t.size(-1) != 3:
        shape = tuple(getattr(x, "shape", ())) or type(x).__name__
        raise ShapeError(f"{what}: expected uint8 RGB {layout}, got {getattr(x, 'dtype', type(x).__name__)} {shape}")
    return t


def check_prompt(prompt: Optional[str]) -> Optional[str]:
    """``None`` or a non-empty string; an empty or blank prompt raises :class:`ConfigError`."""
    if prompt is None:
        return None
    if not isinstance(prompt, str):
        raise ConfigError(f"prompt must be a string or None, got {type(prompt).__name__}")
    if not prompt.strip():
        raise ConfigError("prompt is empty: pass None for no prompt, or describe the scene (e.g. 'rainy night')")
    return prompt


def appearance_lora_path(preset: str, lora: Optional[PathLike] = None) -> Path:
    """The appearance LoRA file of ``preset``: ``lora`` if given, else ``mad_sim/weights/<preset>_appearance.safetensors``."""
    from mad_sim.model.backbone import WEIGHTS_DIR

    return Path(lora) if lora is not None else WEIGHTS_DIR / f"{preset}_appearance.safetensors"


def check_appearance_lora(preset: str, lora: Optional[PathLike] = None) -> Path:
    """:func:`appearance_lora_path`, or :class:`PresetError` when that file does not exist (nothing is loaded)."""
    from mad_sim.model.presets import PRESETS

    if preset not in PRESETS:
        raise PresetError(f"unknown model preset {preset!r} (known: {', '.join(PRESETS)})")
    path = appearance_lora_path(preset, lora)
    if not path.is_file():
        raise PresetError(
            f"preset {preset!r} has no appearance adapter ({path} not found): train it with "
            f"`mad-sim train appearance`, pass --lora PATH, or use pose/state observations only"
        )
    return path


class AppearanceSynthesizer:
    """Dress pose videos as camera video with the ``appearance`` adapter.

    Args:
      model: the :class:`MADModel` (its backbone may carry other adapters too).
      adapter: the adapter's name (``None``: the base model, for ablations).
      size: ``(height, width)`` the adapter renders; default the preset's ``default_size``.
    """

    def __init__(self, model: MADModel, adapter: Optional[str] = "appearance", size: Optional[Tuple[int, int]] = None) -> None:
        if adapter is not None and adapter not in model.adapters:
            raise PresetError(
                f"preset {model.backbone.config.name!r} has no {adapter!r} adapter loaded (have: "
                f"{model.adapters or 'none'}): load one with model.load_adapter({adapter!r}, PATH), "
                f"train it with `mad-sim train appearance`, or use pose observations only"
            )
        self.model = model
        self.adapter = adapter
        self.size = tuple(size) if size is not None else tuple(model.backbone.config.default_size)

    @classmethod
    def random(
        cls, size: Tuple[int, int] = (128, 128), preset: str = "tiny", seed: int = 0, rank: int = 8
    ) -> "AppearanceSynthesizer":
        """An untrained stand-in: random-init ``preset`` backbone + a fresh ``appearance`` LoRA (``size`` = (H, W)).

        For tests and plumbing only (its frames are noise-like); LoRA B starts at
        zero, so it renders exactly what the random base model renders.
        """
        from mad_sim.model.backbone_loading import load_backbone

        model = MADModel(load_backbone(preset, weights="random", device="cpu", seed=seed))
        model.add_adapter("appearance", rank=rank, alpha=rank)
        return cls(model, "appearance", size=size)

    @classmethod
    def from_pretrained(
        cls,
        preset: str = "tiny",
        path: Optional[PathLike] = None,
        lora: Optional[PathLike] = None,
        device: Optional[str] = None,
        dtype: Optional[torch.dtype] = None,
        weights: Optional[PathLike] = None,
    ) -> "AppearanceSynthesizer":
        """Backbone ``preset`` + its appearance LoRA (default ``mad_sim/weights/<preset>_appearance.safetensors``).

        Raises:
          PresetError: the preset has no appearance adapter file (checked before the backbone loads).
        """
        from mad_sim.model.backbone_loading import load_backbone

        lora_path = check_appearance_lora(preset, lora)
        model = MADModel(load_backbone(preset, path=path, device=device, dtype=dtype, weights=weights))
        model.load_adapter("appearance", lora_path)
        return cls(model, "appearance")

    @property
    def backbone(self):
        return self.model.backbone

    # ------------------------------------------------------------------ inputs
    def _check_pose(self, pose: ArrayLike) -> Tuple[torch.Tensor, bool]:
        t = _as_uint8(pose, "pose video", (4, 5), "[F, H, W, 3] or [B, F, H, W, 3]")
        batched = t.ndim == 5
        t = t if batched else t.unsqueeze(0)
        f, h, w = (int(x) for x in t.shape[1:4])
        if (h, w) != self.size:
            raise ShapeError(
                f"pose video: {h}x{w} pixels, but the {self.backbone.config.name} appearance adapter "
                f"renders {self.size[0]}x{self.size[1]} (resize the pose video or render it at that size)"
            )
        self.backbone.check_size(f, h, w, what="pose video")
        return t, batched

    def _check_first(self, first: ArrayLike, batch: int) -> torch.Tensor:
        t = _as_uint8(first, "first frame", (3, 4), "[H, W, 3] or [B, H, W, 3]")
        t = t if t.ndim == 4 else t.unsqueeze(0).expand(batch, -1, -1, -1)
        if tuple(t.shape[1:3]) != self.size:
            raise ShapeError(
                f"first frame: {t.shape[1]}x{t.shape[2]} pixels, expected {self.size[0]}x{self.size[1]} like the pose video"
            )
        if t.size(0) != batch:
            raise ShapeError(f"first frame: batch {t.size(0)} != pose video batch {batch}")
        return t

    def conditions(self, pose: torch.Tensor, first: Optional[torch.Tensor]) -> List[Condition]:
        """Pixel conditions from uint8 ``pose [B, F, H, W, 3]`` and ``first [B, H, W, 3]`` (or None)."""
        dev = self.backbone.device
        conds = [Condition(uint8_to_video(pose).to(dev), "pose")]
        if first is not None:
            conds.append(Condition(uint8_to_video(first.unsqueeze(1)).to(dev), "first_frame"))
        return conds

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def synthesize(
        self,
        pose: ArrayLike,
        first_frame: Optional[ArrayLike] = None,
        prompt: Optional[str] = None,
        steps: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        guidance_scale: Optional[float] = None,
        negative_prompt: str = "",
        drop_empty_pose_tokens: bool = False,
    ) -> np.ndarray:
        """Camera frames ``[F, H, W, 3]`` uint8 (``[B, ...]`` for batched input) for a pose video.

        Args:
          pose: uint8 ``[F, H, W, 3]`` or ``[B, F, H, W, 3]`` at the adapter's size, ``F = tk + 1`` (tiny: 4k + 1).
          first_frame: optional uint8 ``[H, W, 3]`` (or ``[B, H, W, 3]``): the scene's look and frame 0.
          prompt: text such as ``"rainy night"``; None for none; empty strings are refused.
          steps: sampler steps; None: the preset's
            (:attr:`~mad_sim.model.presets.Preset.sampler_steps`, 4 for tiny, 50 for LTX).
          generator: the noise's torch.Generator.
          guidance_scale: > 1 contrasts the prompt with ``negative_prompt`` (doubles the work); None: the
            preset's (:attr:`~mad_sim.model.presets.Preset.guidance_scale`, 1.0 for tiny, 3.5 for LTX).
          drop_empty_pose_tokens: leave the tokens of all-black pose patches out of the
            sequence (fewer tokens, faster; the adapter was trained with all of them).
        """
        prompt = check_prompt(prompt)
        preset = self.backbone.config
        steps = int(preset.sampler_steps if steps is None else steps)
        guidance_scale = float(preset.guidance_scale if guidance_scale is None else guidance_scale)
        if steps < 2:
            raise ConfigError(f"steps={steps}: the LTX schedule (terminal sigma stretched to 0.1) needs at least 2 steps")
        pose_t, batched = self._check_pose(pose)
        b, f, h, w, _ = pose_t.shape
        first_t = None if first_frame is None else self._check_first(first_frame, b)
        self.model.set_adapter(self.adapter)
        latents = self._sample(
            self.conditions(pose_t, first_t),
            first_t,
            f,
            h,
            w,
            steps,
            generator,
            None if prompt is None else [prompt] * b,
            guidance_scale,
            negative_prompt,
            drop_empty_pose_tokens,
        )
        video = self.backbone.decode_latents(latents.to(self.backbone.dtype)).float().clamp(-1.0, 1.0)
        frames = video_to_uint8(video.cpu()).numpy()
        if first_t is not None:
            frames[:, 0] = first_t.numpy()  # the hard condition, exactly (the decoder is not causal)
        return frames if batched else frames[0]

    def _sample(
        self,
        conditions: Sequence[Condition],
        first: Optional[torch.Tensor],
        f: int,
        h: int,
        w: int,
        steps: int,
        generator: Optional[torch.Generator],
        prompts: Optional[List[str]],
        guidance_scale: float,
        negative_prompt: str,
        drop_empty: bool = False,
    ) -> torch.Tensor:
        """The Euler flow-matching loop of :func:`mad_sim.model.sampling.denoise` with frame 0 held (module doc)."""
        from diffusers.utils.torch_utils import randn_tensor

        bb, model = self.backbone, self.model
        b = conditions[0].video.size(0)
        conds = model.encode_conditions(conditions, batch=b, pose_masks=drop_empty)
        embeds, mask = bb.encode_prompts(prompts, b)
        cfg = guidance_scale > 1.0
        if cfg:
            neg_e, neg_m = bb.encode_prompts([negative_prompt] * b, b)
            embeds, mask = torch.cat([neg_e, embeds]), torch.cat([neg_m, mask])
            conds = [
                type(c)(torch.cat([c.latents] * 2), c.kind, c.frame_offset, None if c.keep is None else torch.cat([c.keep] * 2))
                for c in conds
            ]
        shape = (b,) + tuple(bb.latent_shape(f, h, w))
        latents = randn_tensor(shape, generator=generator, device=bb.device, dtype=torch.float32)
        z_first = eps_first = None
        if first is not None:  # the reference condition's latents are exactly latent frame 0 (causal encoder)
            z_first = next(c.latents for c in conds if c.kind == "first_frame")[:b].float()
            eps_first = randn_tensor(tuple(z_first.shape), generator=generator, device=bb.device, dtype=torch.float32)
        timesteps = set_schedule(bb.scheduler, steps, int(np.prod(shape[2:])), device=latents.device)
        denoiser = self.model.denoiser
        cond_tokens = denoiser.condition_tokens(conds, drop_empty) if hasattr(denoiser, "condition_tokens") else None
        kwargs = {"cond_tokens": cond_tokens} if cond_tokens is not None else {}
        for t in timesteps:
            if z_first is not None and eps_first is not None:
                sigma = float(t) / 1000.0
                latents[:, :, :1] = (1.0 - sigma) * z_first + sigma * eps_first
            x = torch.cat([latents] * 2) if cfg else latents
            v = denoiser(x.to(embeds.dtype), t.expand(x.shape[0]), conds, embeds, mask, **kwargs).float()
            if cfg:
                v_neg, v_pos = v.chunk(2)
                v = v_neg + guidance_scale * (v_pos - v_neg)
            latents = bb.scheduler.step(v, t, latents, return_dict=False)[0]
        if z_first is not None:
            latents[:, :, :1] = z_first
        return latents

    # ------------------------------------------------------------------ training
    def training_loss(
        self,
        rgb: ArrayLike,
        pose: ArrayLike,
        generator: Optional[torch.Generator] = None,
        *,
        prompts: Optional[Sequence[str]] = None,
        p_first: float = 0.5,
        targeted_noise: bool = True,
        targeted_noise_max: float = 0.3,
        sigmas: Optional[torch.Tensor] = None,
        noise: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Flow-matching loss of the active adapter on paired clips (the ``appearance`` training stage's loss).

        Args:
          rgb, pose: uint8 ``[B, F, H, W, 3]`` paired clips (:class:`~mad_sim.model.training.appearance_clips.AppearanceClips`).
          generator: drives which samples get the first frame, noise levels, noise and targeted noise.
          p_first: probability per batch that the clip's first frame is given as reference.
          targeted_noise: corrupt pose-holding pose latent patches (the paper's recipe); False for the ablation.
        """
        pose_t, _ = self._check_pose(pose)
        rgb_t = _as_uint8(rgb, "rgb clip", (5,), "[B, F, H, W, 3]")
        if rgb_t.shape != pose_t.shape:
            raise ShapeError(f"rgb clip {tuple(rgb_t.shape)} and pose clip {tuple(pose_t.shape)} differ")
        use_first = bool(torch.rand(1, generator=generator).item() < p_first)
        conds = self.conditions(pose_t, rgb_t[:, 0] if use_first else None)
        target = uint8_to_video(rgb_t).to(self.backbone.device)
        return self.model.training_loss(
            target,
            conds,
            prompts,
            generator,
            targeted_noise_on_pose=targeted_noise,
            targeted_noise_max=targeted_noise_max,
            sigmas=sigmas,
            noise=noise,
        )


# --- the chunked RGB cache (what the environment calls) -------------------------------------
@dataclass
class CacheStats:
    """How often the cache synthesized (``syntheses``) and served a frame without synthesis (``hits``)."""

    syntheses: int = 0
    hits: int = 0


@dataclass
class _Chunk:
    """The frames :class:`RGBChunkCache` holds: steps ``start`` to ``end - 1``, RGB ``frames`` and the ``pose``
    frames they were synthesized from (both ``[n, H, W, 3]`` uint8)."""

    start: int
    frames: np.ndarray
    pose: np.ndarray

    @property
    def end(self) -> int:
        """One past the last step held."""
        return self.start + len(self.frames)


class RGBChunkCache:
    """Camera frames for a running episode, synthesized ``chunk_frames`` at a time.

    ``frame(t, pose_lookahead)`` returns the RGB frame of step ``t``.  On a
    miss it asks ``pose_lookahead(n)`` for the pose frames of steps
    ``t .. t + n - 1`` (``[n, H, W, 3]`` uint8, the present first: the
    environment renders its current forecast; it may repeat its last frame
    when it knows less), synthesizes them in one call and serves steps
    ``t .. t + n - 1`` from the result.  The next chunk starts at the last
    frame of the previous one with that frame as the first-frame hard
    condition, so the look carries over and chunks join without a seam:
    one synthesis per ``chunk_frames - 1`` steps.

    Determinism: chunk ``k`` draws its noise from ``torch.Generator`` seeded
    ``(seed, k)``; same seed, same pose frames, same RGB frames.
    """

    def __init__(
        self,
        synthesizer: AppearanceSynthesizer,
        chunk_frames: int = 17,
        prompt: Optional[str] = None,
        steps: int = 4,
        seed: int = 0,
        drop_empty_pose_tokens: bool = False,
    ) -> None:
        synthesizer.backbone.check_size(chunk_frames, *synthesizer.size, what="RGB chunk")
        if steps < 2:
            raise ConfigError(f"RGB chunk: steps={steps}, the sampler needs at least 2")
        if chunk_frames < 2:
            raise ShapeError(f"RGB chunk: chunk_frames must be >= 2 to advance, got {chunk_frames}")
        self.synth = synthesizer
        self.chunk_frames = int(chunk_frames)
        self.steps = int(steps)
        self.drop_empty = bool(drop_empty_pose_tokens)
        self.reset(prompt=prompt, seed=seed)

    def reset(self, first_frame: Optional[np.ndarray] = None, prompt: Optional[str] = None, seed: int = 0) -> None:
        """Forget all frames (new episode); optionally set the scene's first RGB frame, prompt and seed."""
        self.prompt = check_prompt(prompt)
        self.seed = int(seed)
        self.first_frame = None if first_frame is None else self.synth._check_first(first_frame, 1)[0].numpy()
        self._cached: Optional[_Chunk] = None
        self._last_frame: Optional[np.ndarray] = None  # the last frame synthesized (the look a new chunk continues)
        self._chunk = 0
        self.stats = CacheStats()

    def set_prompt(self, prompt: Optional[str]) -> None:
        """Change the prompt; frames already synthesized are dropped (they show the old text)."""
        self.prompt = check_prompt(prompt)
        self._cached = self._last_frame = None

    def truncate(self, t: int) -> None:
        """Forget the cached frames of steps ``>= t`` (their pose forecast went stale).

        The next request for step ``t`` then continues from the frame of step
        ``t - 1`` (pose and RGB), hard-conditioned on it, so the look carries
        over; when nothing before ``t`` is cached, everything is dropped and the
        next chunk starts from the last frame synthesized.
        """
        c = self._cached
        if c is None or t >= c.end:
            return
        keep = int(t) - c.start
        if keep <= 0:
            self._cached = None
            return
        self._cached = _Chunk(c.start, c.frames[:keep], c.pose[:keep])

    def cached(self, t: int) -> bool:
        return self._cached is not None and self._cached.start <= t < self._cached.end

    def frame(self, t: int, pose_lookahead: Callable[[int], np.ndarray]) -> np.ndarray:
        """RGB frame ``[H, W, 3]`` uint8 of step ``t`` (see the class doc).

        A miss right after the cached chunk continues it (one frame of overlap,
        ``pose_lookahead(chunk_frames - 1)``); any other miss (a jump, or the
        first request) starts a chunk at ``t`` with ``pose_lookahead(chunk_frames)``,
        hard-conditioned on the last frame synthesized so far, else the
        episode's first frame (if given), else nothing.
        """
        c = self._cached
        if c is not None and c.start <= t < c.end:
            self.stats.hits += 1
            return c.frames[t - c.start]
        n = self.chunk_frames
        contiguous = c is not None and t == c.end
        want = n - 1 if contiguous else n
        pose = np.asarray(pose_lookahead(want))
        if pose.shape[:1] != (want,):
            raise ShapeError(f"pose_lookahead({want}) returned {pose.shape[:1][0] if pose.ndim else 0} frames")
        if c is not None and contiguous:
            start, first = t - 1, c.frames[-1]
            pose = np.concatenate([c.pose[-1:], pose])
        else:
            start = t
            first = self._last_frame if self._last_frame is not None else self.first_frame
        gen = torch.Generator().manual_seed(int(np.random.default_rng([self.seed, self._chunk]).integers(2**62)))
        frames = self.synth.synthesize(
            pose, first_frame=first, prompt=self.prompt, steps=self.steps, generator=gen, drop_empty_pose_tokens=self.drop_empty
        )
        self._cached, self._last_frame = _Chunk(start, frames, pose), frames[-1]
        self._chunk += 1
        self.stats.syntheses += 1
        return frames[t - start]
