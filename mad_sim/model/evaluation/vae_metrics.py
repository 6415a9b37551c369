"""Reconstruction metrics for pose videos (numpy; uint8 frames ``[..., H, W, 3]``).

- :func:`psnr`: ``10 log10(255^2 / MSE)`` over all pixels (dB).
- :func:`line_metrics`: a pixel is *lit* when its max channel exceeds
  ``lit_threshold`` (60). **Recall** = fraction of lit target pixels that have
  a lit reconstructed pixel within ``radius`` px (Chebyshev, i.e. 3x3 for 1);
  for a *coloured* target pixel (saturation ``(max - min) / max`` > 0.35) the
  neighbour must also be coloured with a hue within one 30-degree bin of the
  target's. **Precision** is the same test with the roles swapped.

PSNR alone rewards the mean pose image (dark with a faint horizon); line
recall/precision measure what parsing generated frames back into agents needs.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np

from mad_sim.errors import ShapeError

HUE_BINS = 12  # 30-degree bins


def _check_frames(name: str, x: np.ndarray) -> None:
    if x.ndim < 3 or x.shape[-1] != 3:
        raise ShapeError(f"{name}: expected [..., H, W, 3] frames, got {x.shape}")


def psnr(target: np.ndarray, recon: np.ndarray) -> float:
    """PSNR in dB of uint8-range frames (``10 log10(255^2 / MSE)``, MSE over every value)."""
    _check_frames("target", target)
    if target.shape != recon.shape:
        raise ShapeError(f"recon shape {recon.shape} differs from target {target.shape}")
    mse = float(np.mean((target.astype(np.float64) - recon.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary max filter of ``[..., H, W]`` masks over a (2r+1)^2 square (zeros outside)."""
    if radius <= 0:
        return mask
    h, w = mask.shape[-2:]
    pad = np.zeros(mask.shape[:-2] + (h + 2 * radius, w + 2 * radius), dtype=bool)
    pad[..., radius : radius + h, radius : radius + w] = mask
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= pad[..., dy : dy + h, dx : dx + w]
    return out


def _classify(frames: np.ndarray, lit_threshold: float, sat_threshold: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lit, coloured, hue_bin)`` masks/bins of ``[..., H, W, 3]`` uint8 frames (hue bins of 30 degrees)."""
    f = frames.astype(np.float32)
    mx, mn = f.max(-1), f.min(-1)
    lit = mx > lit_threshold
    sat = (mx - mn) / np.maximum(mx, 1e-6)
    coloured = lit & (sat > sat_threshold)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    hue = np.degrees(np.arctan2(math.sqrt(3.0) * (g - b), 2.0 * r - g - b)) % 360.0
    hue_bin = np.floor(hue / (360.0 / HUE_BINS)).astype(np.int64) % HUE_BINS
    return lit, coloured, hue_bin


def _matched(src: np.ndarray, ref: np.ndarray, lit_threshold: float, sat_threshold: float, radius: int) -> Tuple[int, int]:
    """``(matched, total)`` lit pixels of ``src`` that ``ref`` covers within ``radius`` (hue-aware)."""
    s_lit, s_col, s_bin = _classify(src, lit_threshold, sat_threshold)
    r_lit, r_col, r_bin = _classify(ref, lit_threshold, sat_threshold)
    near_lit = _dilate(r_lit, radius)
    ok = s_lit & ~s_col & near_lit
    total = int(s_lit.sum())
    matched = int(ok.sum())
    if s_col.any():
        near_bin = np.stack([_dilate(r_col & (r_bin == k), radius) for k in range(HUE_BINS)], axis=-1)
        idx = s_bin[..., None] + np.array([-1, 0, 1])
        hit = np.take_along_axis(near_bin, idx % HUE_BINS, axis=-1).any(-1)
        matched += int((s_col & hit).sum())
    return matched, total


def line_metrics(
    target: np.ndarray, recon: np.ndarray, lit_threshold: float = 60.0, radius: int = 1, sat_threshold: float = 0.35
) -> Dict[str, float]:
    """Line recall / precision of a reconstruction (see module doc). Frames ``[..., H, W, 3]`` uint8.

    Returns ``{"recall", "precision", "f1", "lit_target", "lit_recon"}`` (fractions;
    recall is 1 when the target has no lit pixel, precision 1 when the recon has none).
    """
    _check_frames("target", target)
    if target.shape != recon.shape:
        raise ShapeError(f"recon shape {recon.shape} differs from target {target.shape}")
    m_r, n_r = _matched(target, recon, lit_threshold, sat_threshold, radius)
    m_p, n_p = _matched(recon, target, lit_threshold, sat_threshold, radius)
    rec = m_r / n_r if n_r else 1.0
    prec = m_p / n_p if n_p else 1.0
    f1 = 0.0 if rec + prec == 0 else 2 * rec * prec / (rec + prec)
    npx = target[..., 0].size
    return {"recall": rec, "precision": prec, "f1": f1, "lit_target": n_r / npx, "lit_recon": n_p / npx}
