"""The LTX denoiser: latents <-> tokens, RoPE coordinates, prepended clean condition tokens.

Token layout (diffusers' ``LTXPipeline._pack_latents`` with patch sizes p, p_t):
latents ``[B, C, f, h, w]`` become tokens ``[B, (f/p_t)(h/p)(w/p), C p_t p p]``
ordered frame-major, then row, then column.

RoPE coordinates (``video_coords`` ``[B, 3, S]``: time, row, column) follow the
pipeline's convention, so a video with no conditions gets exactly the
positions ``LTXPipeline`` computes from ``rope_interpolation_scale``:

    time = latent_frame * (temporal_ratio / frame_rate) * p_t + frame_offset / frame_rate   [s]
    row  = latent_row * spatial_ratio * p                                              [pixels]
    col  = latent_col * spatial_ratio * p                                              [pixels]

(the transformer then divides by its base sizes 20, 2048, 2048).  A condition
placed ``frame_offset`` pixel frames from the target's first frame therefore
sits at its own time coordinate: the reference image at frame 1000, a pose
history just before the target (negative offsets), an ego-motion video aligned
with the target (offset 0).

Per-token timesteps (``[B, S]``, scheduler units 0..1000): condition tokens
get 0 (clean), target tokens the current noise level.  When there are no
condition tokens a per-sample ``[B]`` timestep is passed, which is what the
stock pipeline does (bit-identical results).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch

from mad_sim.errors import ShapeError


def pack_latents(latents: torch.Tensor, p: int = 1, p_t: int = 1) -> torch.Tensor:
    """[B, C, f, h, w] -> [B, S, C p_t p p] (LTXPipeline order)."""
    b, c, f, h, w = latents.shape
    x = latents.reshape(b, c, f // p_t, p_t, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4, 7).flatten(1, 3)


def unpack_latents(tokens: torch.Tensor, f: int, h: int, w: int, p: int = 1, p_t: int = 1) -> torch.Tensor:
    """Inverse of :func:`pack_latents`: [B, S, D] -> [B, C, f, h, w] (f, h, w in latent units)."""
    b = tokens.size(0)
    x = tokens.reshape(b, f // p_t, h // p, w // p, -1, p_t, p, p)
    return x.permute(0, 4, 1, 5, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(2, 3)


def latent_coords(
    batch: int,
    f: int,
    h: int,
    w: int,
    *,
    temporal_ratio: int,
    spatial_ratio: int,
    frame_rate: float,
    p: int = 1,
    p_t: int = 1,
    frame_offset: float = 0.0,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """RoPE coordinates ``[B, 3, S]`` (seconds, pixel row, pixel column) of a packed latent grid."""
    gf = torch.arange(f // p_t, dtype=torch.float32, device=device)
    gh = torch.arange(h // p, dtype=torch.float32, device=device)
    gw = torch.arange(w // p, dtype=torch.float32, device=device)
    grid = torch.stack(torch.meshgrid(gf, gh, gw, indexing="ij"), dim=0)  # [3, f, h, w]
    scale_t = temporal_ratio / frame_rate
    grid = torch.stack([grid[0] * scale_t * p_t, grid[1] * spatial_ratio * p, grid[2] * spatial_ratio * p])
    if frame_offset:
        grid[0] = grid[0] + float(frame_offset) / frame_rate
    return grid.flatten(1, 3).unsqueeze(0).repeat(batch, 1, 1)


@dataclass
class LatentCondition:
    """A condition after the VAE: what the denoisers consume.

    Attributes:
      latents: [B, C, f, h, w] normalised latents (clean, or targeted-noised in training).
      kind: the :class:`~mad_sim.model.conditioning.Condition` kind.
      frame_offset: pixel frames from the target's first frame to the condition's first frame.
      keep: optional [B, f, h, w] bool, latent patches that hold content (pose pixels);
        used to drop empty patches at inference.
      embedding: optional [B, 1, D] image embedding of the condition's last frame
        (SVD family: its CLIP image encoder; unused by LTX).
    """

    latents: torch.Tensor
    kind: str
    frame_offset: float
    keep: Optional[torch.Tensor] = None
    embedding: Optional[torch.Tensor] = None


class LTXDenoiser(torch.nn.Module):
    """Wraps ``LTXVideoTransformer3DModel``: 5-D latents in, 5-D velocity out.

    ``forward(noisy[B,C,f,h,w], timestep[B] (0..1000), conditions, text_embeds[B,L,D],
    text_mask[B,L]) -> velocity[B,C,f,h,w]`` (flow matching: v = eps - x0).
    """

    family = "ltx"

    def __init__(self, transformer: torch.nn.Module, *, temporal_ratio: int, spatial_ratio: int, frame_rate: float) -> None:
        super().__init__()
        self.model = transformer
        self.temporal_ratio = int(temporal_ratio)
        self.spatial_ratio = int(spatial_ratio)
        self.frame_rate = float(frame_rate)

    @property
    def patch(self) -> tuple:
        return int(self.model.config.patch_size), int(self.model.config.patch_size_t)

    def _tokens(self, latents: torch.Tensor, frame_offset: float) -> tuple:
        p, p_t = self.patch
        b, _, f, h, w = latents.shape
        if f % p_t or h % p or w % p:
            raise ShapeError(f"latent grid {tuple(latents.shape[2:])} is not divisible by the patch sizes (p_t={p_t}, p={p})")
        tokens = pack_latents(latents, p, p_t)
        coords = latent_coords(
            b,
            f,
            h,
            w,
            temporal_ratio=self.temporal_ratio,
            spatial_ratio=self.spatial_ratio,
            frame_rate=self.frame_rate,
            p=p,
            p_t=p_t,
            frame_offset=frame_offset,
            device=latents.device,
        )
        return tokens, coords

    def condition_tokens(self, conditions: Sequence[LatentCondition], drop_empty: bool = False) -> tuple:
        """Concatenated condition tokens [B, S_c, D] and coords [B, 3, S_c] (None, None if no conditions).

        ``drop_empty``: drop the tokens of patches whose ``keep`` is False for every
        sample of the batch (a batch shares one token count).
        """
        toks: List[torch.Tensor] = []
        crds: List[torch.Tensor] = []
        p, p_t = self.patch
        for cond in conditions:
            t, c = self._tokens(cond.latents, cond.frame_offset)
            if drop_empty and cond.keep is not None:
                keep = cond.keep.any(dim=0)  # [f, h, w]
                if p > 1 or p_t > 1:
                    f, h, w = keep.shape
                    keep = keep.reshape(f // p_t, p_t, h // p, p, w // p, p).any(5).any(3).any(1)
                idx = keep.flatten().nonzero().squeeze(1)
                t, c = t[:, idx], c[:, :, idx]
            toks.append(t)
            crds.append(c)
        if not toks:
            return None, None
        return torch.cat(toks, dim=1), torch.cat(crds, dim=2)

    def forward(
        self,
        noisy: torch.Tensor,
        timestep: torch.Tensor,
        conditions: Sequence[LatentCondition],
        text_embeds: torch.Tensor,
        text_mask: torch.Tensor,
        drop_empty: bool = False,
        cond_tokens: Optional[tuple] = None,
    ) -> torch.Tensor:
        p, p_t = self.patch
        b, _, f, h, w = noisy.shape
        tokens, coords = self._tokens(noisy, 0.0)
        n_target = tokens.size(1)
        ctok, ccrd = cond_tokens if cond_tokens is not None else self.condition_tokens(conditions, drop_empty)
        timestep = timestep.to(noisy.dtype).reshape(-1)
        if timestep.numel() == 1 and b > 1:
            timestep = timestep.expand(b)
        if ctok is not None and ctok.size(1) > 0:
            hidden = torch.cat([ctok.to(tokens.dtype), tokens], dim=1)
            coords = torch.cat([ccrd, coords], dim=2)
            ts = torch.cat(
                [
                    torch.zeros(b, ctok.size(1), dtype=timestep.dtype, device=timestep.device),
                    timestep[:, None].expand(b, n_target),
                ],
                dim=1,
            )
        else:
            hidden, ts = tokens, timestep
        out = self.model(
            hidden_states=hidden,
            encoder_hidden_states=text_embeds,
            timestep=ts,
            encoder_attention_mask=text_mask,
            video_coords=coords,
            return_dict=False,
        )[0]
        return unpack_latents(out[:, -n_target:], f // p_t * p_t, h // p * p, w // p * p, p, p_t)
