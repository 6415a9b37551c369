"""Measuring the appearance synthesizer: PSNR / SSIM on held-out clips, perturbed poses, a side-by-side image.

* :func:`psnr`: ``10 log10(255^2 / MSE)`` over all pixels and channels (dB).
* :func:`ssim`: Wang et al. (2004) structural similarity, Gaussian window
  (sigma 1.5, 11 x 11), ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` with
  ``L = 255``, on each RGB channel, averaged over pixels and channels.
* :func:`perturb_pose` corrupts a pose video the way generated forecasts
  differ from rendered ones: per-frame jitter (integer shift up to
  ``max_shift_px``), blur (Gaussian, sigma up to ``max_blur``), dimming
  (brightness x U(0.6, 1)) and dropped strokes (each 8x8 cell blanked with
  probability ``drop``).  The targeted-noise ablation compares adapters on
  held-out clips with these perturbed pose videos.
* :func:`evaluate_appearance` synthesizes every held-out clip (first real
  frame given, so frame 0 is excluded from the scores) and averages.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from mad_sim.errors import ShapeError
from mad_sim.io import atomic_path

log = logging.getLogger(__name__)


def _pair(a: np.ndarray, b: np.ndarray) -> tuple:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != np.uint8 or b.dtype != np.uint8 or a.shape[-1] != 3:
        raise ShapeError(
            f"image metrics need two uint8 [..., H, W, 3] arrays of one shape, got {a.dtype} {a.shape} and {b.dtype} {b.shape}"
        )
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of uint8 images / videos of one shape (inf when identical)."""
    x, y = _pair(a, b)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of uint8 images ``[..., H, W, 3]`` (see module doc)."""
    x, y = _pair(a, b)
    x = x.reshape((-1,) + x.shape[-3:])
    y = y.reshape((-1,) + y.shape[-3:])
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda im: cv2.GaussianBlur(im, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    scores = []
    for xi, yi in zip(x, y):
        mx, my = blur(xi), blur(yi)
        vx = blur(xi * xi) - mx * mx
        vy = blur(yi * yi) - my * my
        cxy = blur(xi * yi) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        scores.append(float(s.mean()))
    return float(np.mean(scores))


def perturb_pose(
    pose: np.ndarray, rng: np.random.Generator, max_shift_px: int = 2, max_blur: float = 1.0, drop: float = 0.1
) -> np.ndarray:
    """A pose video ``[F, H, W, 3]`` uint8 corrupted like a generated forecast (see module doc)."""
    pose = np.asarray(pose)
    if pose.ndim != 4 or pose.dtype != np.uint8:
        raise ShapeError(f"pose video: expected [F, H, W, 3] uint8, got {pose.dtype} {pose.shape}")
    f, h, w, _ = pose.shape
    out = np.empty_like(pose)
    for k in range(f):
        dx, dy = rng.integers(-max_shift_px, max_shift_px + 1, size=2)
        m = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
        img: np.ndarray = cv2.warpAffine(pose[k], m, (w, h), borderValue=0).astype(np.float32)
        sigma = float(rng.uniform(0.0, max_blur))
        if sigma > 0.2:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
        img *= rng.uniform(0.6, 1.0)
        cells = rng.random(((h + 7) // 8, (w + 7) // 8)) < drop
        img[np.kron(cells, np.ones((8, 8), bool))[:h, :w]] = 0
        out[k] = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return out


def evaluate_appearance(
    synth,
    clips,
    split: str = "eval",
    *,
    perturb: Optional[np.random.Generator] = None,
    steps: int = 8,
    seed: int = 0,
    max_clips: Optional[int] = None,
    progress: bool = True,
) -> Dict[str, float]:
    """PSNR / SSIM of synthesized against real frames over the clips of ``split``.

    Args:
      synth: an :class:`~mad_sim.model.appearance.synthesizer.AppearanceSynthesizer`.
      clips: :class:`~mad_sim.model.training.appearance_clips.AppearanceClips`.
      perturb: a Generator to corrupt the pose videos with :func:`perturb_pose` (None: clean poses).
      steps, seed: sampler steps; clip ``i`` uses ``torch.Generator`` seed ``seed + i``.

    Returns:
      ``{"psnr": dB, "ssim": ..., "clips": n, "frames": scored frames}`` (frame 0 is given, not scored).
    """
    index = clips.indices(split)[:max_clips]
    ps, ss = [], []
    for i, k in enumerate(tqdm(index, desc=f"appearance eval ({split})", disable=not progress)):
        rgb, pose = clips.batch(np.array([k]))
        pose_in = pose[0] if perturb is None else perturb_pose(pose[0], perturb)
        out = synth.synthesize(pose_in, first_frame=rgb[0, 0], steps=steps, generator=torch.Generator().manual_seed(seed + i))
        ps.append(psnr(out[1:], rgb[0, 1:]))
        ss.append(ssim(out[1:], rgb[0, 1:]))
    n = len(index)
    return {
        "psnr": float(np.mean(ps)) if n else float("nan"),
        "ssim": float(np.mean(ss)) if n else float("nan"),
        "clips": n,
        "frames": n * (clips.spec.frames - 1),
    }


def comparison_image(
    real: np.ndarray,
    pose: np.ndarray,
    synthesized: np.ndarray,
    path: Union[str, os.PathLike],
    frames: Optional[Sequence[int]] = None,
    scale: int = 2,
) -> np.ndarray:
    """Write (atomically) and return a PNG grid: one row per frame, columns real | pose | synthesized.

    ``real``, ``pose``, ``synthesized``: ``[F, H, W, 3]`` uint8 of one clip; ``frames``: which rows
    (default 4 evenly spaced); ``scale``: nearest-neighbour upscaling for viewing.
    """
    for name, v in (("real", real), ("pose", pose), ("synthesized", synthesized)):
        if np.asarray(v).shape != np.asarray(real).shape or np.asarray(v).dtype != np.uint8:
            raise ShapeError(
                f"comparison_image: {name} must be uint8 {np.asarray(real).shape}, got "
                f"{np.asarray(v).dtype} {np.asarray(v).shape}"
            )
    f = len(real)
    rows_idx = list(frames) if frames is not None else sorted(set(np.linspace(0, f - 1, 4).round().astype(int)))
    sep = np.full((real.shape[1], 2, 3), 255, np.uint8)
    rows = [np.concatenate([real[k], sep, pose[k], sep, synthesized[k]], 1) for k in rows_idx]
    grid = np.concatenate(rows, 0)
    grid = np.repeat(np.repeat(grid, scale, 0), scale, 1)
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), grid[..., ::-1]):
            raise ShapeError(f"{path}: OpenCV could not write the image")
    return grid
