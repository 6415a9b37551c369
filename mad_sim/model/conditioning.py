"""Conditions: videos the model reads its controls from, encoded by the backbone's own VAE.

A :class:`Condition` is a pixel video ``[B, 3, F, H, W]`` in [-1, 1] (black =
-1) with a kind and a time placement:

===============  =====================================================  =======================
kind             what                                                   default ``frame_offset``
===============  =====================================================  =======================
``first_frame``  the first RGB camera frame (F = 1)                     1000 (far-away time)
``pose_history`` the past pose frames, ending just before the target     ``-F``
``pose``         the pose video of the target's own time span            0
                 (appearance adapter input)
``ego_motion``   the ego-motion video of the target's time span          0
``boxes``        object-box video of the target's time span              0
===============  =====================================================  =======================

``frame_offset`` counts pixel frames from the target's first frame to the
condition's first frame (RoPE time coordinate = offset / frame_rate seconds,
see :mod:`mad_sim.model.ltx`).

Pose patches: a latent patch (with time compression ``t`` and space
compression ``s``, latent frame k covers pixel frames ``tk-t+1..tk``, frame 0
covers pixel frame 0; each latent cell covers an ``s`` x ``s`` pixel square:
8x8 pixels for the tiny VAE, 32x32 for LTX-Video's)
"holds pose" when at least ``min_fraction`` (5%) of its pixels are non-black
(any channel above ``-1 + 2 * black_level / 255``).  Those masks drive the
targeted noise of the appearance adapter and the optional dropping of empty
pose tokens at inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from mad_sim.errors import ShapeError

KINDS = ("first_frame", "pose_history", "pose", "ego_motion", "boxes")
POSE_KINDS = ("pose_history", "pose")
REFERENCE_FRAME = 1000


@dataclass
class Condition:
    """A conditioning video.

    Attributes:
      video: [B, 3, F, H, W] float tensor in [-1, 1].
      kind: one of :data:`KINDS`.
      frame_offset: pixel frames from the target's first frame (None: the kind's default).
    """

    video: torch.Tensor
    kind: str
    frame_offset: Optional[int] = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ShapeError(f"condition kind {self.kind!r} is not one of {KINDS}")
        if not isinstance(self.video, torch.Tensor) or self.video.ndim != 5 or self.video.size(1) != 3:
            shape = tuple(self.video.shape) if hasattr(self.video, "shape") else type(self.video).__name__
            raise ShapeError(f"condition {self.kind!r}: video must be a [B, 3, F, H, W] tensor, got {shape}")

    @property
    def offset(self) -> int:
        """The effective frame offset (pixel frames)."""
        if self.frame_offset is not None:
            return int(self.frame_offset)
        if self.kind == "first_frame":
            return REFERENCE_FRAME
        if self.kind == "pose_history":
            return -int(self.video.size(2))
        return 0


def uint8_to_video(frames: torch.Tensor) -> torch.Tensor:
    """[..., F, H, W, 3] uint8 -> [..., 3, F, H, W] float32 in [-1, 1] (leading batch dims kept)."""
    if frames.dtype != torch.uint8 or frames.ndim < 4 or frames.size(-1) != 3:
        raise ShapeError(f"expected uint8 frames [..., F, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    x = frames.float().div(127.5).sub(1.0)
    return x.movedim(-1, -4)


def video_to_uint8(video: torch.Tensor) -> torch.Tensor:
    """[..., 3, F, H, W] in [-1, 1] -> [..., F, H, W, 3] uint8 (rounded; values outside [-1, 1] saturate)."""
    x = ((video.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.movedim(-4, -1)


def pose_patch_mask(
    video: torch.Tensor, *, temporal_ratio: int = 8, spatial_ratio: int = 32, min_fraction: float = 0.05, black_level: float = 8.0
) -> torch.Tensor:
    """Latent patches holding pose pixels: [B, 3, F, H, W] in [-1, 1] -> [B, f, h, w] bool.

    ``f = (F - 1) / temporal_ratio + 1``, ``h = H / spatial_ratio``, ``w = W / spatial_ratio``.
    A pixel is non-black when any channel exceeds ``black_level`` (0..255 scale).
    """
    b, _, F, H, W = video.shape
    if (F - 1) % temporal_ratio or H % spatial_ratio or W % spatial_ratio:
        raise ShapeError(
            f"pose video {F}x{H}x{W} does not tile into latent patches "
            f"({temporal_ratio}k+1 frames, sizes divisible by {spatial_ratio})"
        )
    lit = (video.amax(dim=1) > (-1.0 + 2.0 * black_level / 255.0)).float()  # [B, F, H, W]
    h, w = H // spatial_ratio, W // spatial_ratio
    first = lit[:, :1]
    rest = lit[:, 1:]
    tiles = [first.reshape(b, 1, 1, h, spatial_ratio, w, spatial_ratio).mean(dim=(2, 4, 6))]
    if rest.size(1):
        k = rest.size(1) // temporal_ratio
        tiles.append(rest.reshape(b, k, temporal_ratio, h, spatial_ratio, w, spatial_ratio).mean(dim=(2, 4, 6)))
    frac = torch.cat(tiles, dim=1)
    return frac >= min_fraction
