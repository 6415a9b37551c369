"""Trajectory metrics: minADE@K, minFDE@K, miss rate (Waymo), APD@K.  Pure numpy.

Shapes: ``B`` objects (or scenarios), ``K`` predicted trajectories each, ``T``
future steps at 10 Hz, coordinates in metres in any common frame (the
evaluator uses the ego frame at t0; every metric here is invariant to a
rigid transform applied to predictions and ground truth together).
``valid[B, T]`` masks ground-truth steps that the log does not have.

Definitions (``d[b,k,t] = ||pred[b,k,t] - gt[b,t]||_2``, ``V_b`` the valid steps):

- ADE   ``ADE[b,k] = mean_{t in V_b} d[b,k,t]``; ``minADE[b] = min_k ADE[b,k]``.
- FDE   at the last valid step ``t* = max V_b``: ``minFDE[b] = min_k d[b,k,t*]``.
- miss  (Waymo Open Motion metrics) at each measurement step ``t_m`` (3, 5, 8 s
  = steps 29, 49, 79 after t0 at 10 Hz): rotate the error into the ground
  truth's heading at ``t_m``, ``lon = e . (cos h, sin h)``, ``lat = e . (-sin h, cos h)``;
  thresholds scale with the object's speed ``v`` at t0:
  ``s(v) = 0.5`` for ``v < 1.4 m/s``, ``1.0`` for ``v > 11 m/s``, linear in
  between; base thresholds (lat, lon) = (1.0, 2.0) m at 3 s, (1.8, 3.6) m at
  5 s, (3.0, 6.0) m at 8 s.  The object is *missed* at ``t_m`` when no
  prediction has ``|lat| <= s*lat_thr`` and ``|lon| <= s*lon_thr``; steps where
  the ground truth is invalid are not scored (NaN).
- APD   average pairwise distance, a diversity measure (higher = less
  collapsed): ``APD[b] = 2 / (K (K-1)) sum_{i<j} mean_{t in V_b} ||pred[b,i,t] - pred[b,j,t]||``
  (the per-step L2 averaged over time, then over the K(K-1)/2 pairs).
  ``APD_flat`` is the other convention in the literature: the L2 norm of the
  difference of the flattened ``[T*2]`` trajectories, averaged over pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

from mad_sim.errors import ShapeError

#: Waymo measurement points: (seconds, lateral threshold m, longitudinal threshold m).
WAYMO_MISS_STEPS: Tuple[Tuple[float, float, float], ...] = ((3.0, 1.0, 2.0), (5.0, 1.8, 3.6), (8.0, 3.0, 6.0))
SPEED_LOWER, SPEED_UPPER = 1.4, 11.0
SCALE_LOWER, SCALE_UPPER = 0.5, 1.0


def _check(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    valid = np.asarray(valid, bool)
    if pred.ndim != 4 or pred.shape[-1] != 2:
        raise ShapeError(f"predictions must be [B, K, T, 2], got {pred.shape}")
    b, _, t, _ = pred.shape
    if gt.shape != (b, t, 2):
        raise ShapeError(f"ground truth must be [B, T, 2] = {(b, t, 2)}, got {gt.shape}")
    if valid.shape != (b, t):
        raise ShapeError(f"valid mask must be [B, T] = {(b, t)}, got {valid.shape}")
    if not np.isfinite(gt[valid]).all():
        raise ShapeError("ground truth holds a non-finite value at a valid step")
    if not np.isfinite(pred[np.broadcast_to(valid[:, None], pred.shape[:3])]).all():
        raise ShapeError("a prediction holds a non-finite value at a scored step")
    return pred, gt, valid


def displacement(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``[B, K, T]`` Euclidean distance between ``pred[B,K,T,2]`` and ``gt[B,T,2]``."""
    return np.linalg.norm(np.asarray(pred) - np.asarray(gt)[:, None], axis=-1)


def ade_per_mode(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``[B, K]`` mean displacement over valid steps (NaN for an object without a valid step)."""
    pred, gt, valid = _check(pred, gt, valid)
    d = np.where(valid[:, None], displacement(pred, gt), 0.0)
    n = valid.sum(-1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, d.sum(-1) / np.maximum(n, 1), np.nan)


def min_ade(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(minADE[B], best_mode[B])``; NaN / -1 for objects without a valid step."""
    ade = ade_per_mode(pred, gt, valid)
    ok = np.isfinite(ade).all(-1)
    best = np.where(ok, np.argmin(np.where(np.isfinite(ade), ade, np.inf), -1), -1)
    return np.where(ok, np.min(np.where(ok[:, None], ade, 0.0), -1), np.nan), best


def min_fde(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``[B]`` best-of-K distance at each object's last valid step (NaN without a valid step)."""
    pred, gt, valid = _check(pred, gt, valid)
    t = pred.shape[2]
    last = np.where(valid.any(-1), t - 1 - np.argmax(valid[:, ::-1], -1), 0)
    d = displacement(pred, gt)[np.arange(pred.shape[0]), :, last]  # [B, K]
    return np.where(valid.any(-1), d.min(-1), np.nan)


def speed_scale(speed: np.ndarray) -> np.ndarray:
    """Waymo's threshold scale: 0.5 below 1.4 m/s, 1.0 above 11 m/s, linear between."""
    v = np.asarray(speed, np.float64)
    frac = np.clip((v - SPEED_LOWER) / (SPEED_UPPER - SPEED_LOWER), 0.0, 1.0)
    return SCALE_LOWER + (SCALE_UPPER - SCALE_LOWER) * frac


def miss_at_steps(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray,
    gt_heading: np.ndarray,
    speed_t0: np.ndarray,
    steps: Sequence[Tuple[int, float, float]],
) -> np.ndarray:
    """``[B, S]`` float: 1.0 missed, 0.0 hit, NaN not scored (ground truth invalid or step beyond T).

    ``steps`` holds ``(step_index, lateral_threshold, longitudinal_threshold)``
    with ``step_index`` counted in the ``T`` axis (0 = 0.1 s after t0);
    ``gt_heading[B, T]`` radians in the same frame as the points;
    ``speed_t0[B]`` m/s at t0.
    """
    pred, gt, valid = _check(pred, gt, valid)
    b, _, t, _ = pred.shape
    scale = speed_scale(speed_t0).reshape(b)
    out = np.full((b, len(steps)), np.nan)
    for s, (k, lat_thr, lon_thr) in enumerate(steps):
        if not 0 <= k < t:
            continue
        err = pred[:, :, k] - gt[:, None, k]  # [B, K, 2]
        h = np.asarray(gt_heading, np.float64)[:, k]
        c, sn = np.cos(h)[:, None], np.sin(h)[:, None]
        lon = err[..., 0] * c + err[..., 1] * sn
        lat = -err[..., 0] * sn + err[..., 1] * c
        hit = ((np.abs(lat) <= lat_thr * scale[:, None]) & (np.abs(lon) <= lon_thr * scale[:, None])).any(-1)
        out[:, s] = np.where(valid[:, k], (~hit).astype(np.float64), np.nan)
    return out


def waymo_miss_steps(dt: float = 0.1) -> Tuple[Tuple[int, float, float], ...]:
    """Waymo's (step index, lat, lon) triples for a future sampled every ``dt`` seconds from t0 + dt."""
    return tuple((int(round(sec / dt)) - 1, lat, lon) for sec, lat, lon in WAYMO_MISS_STEPS)


def apd(pred: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """``[B]`` average pairwise distance (per-step L2, mean over valid steps, mean over pairs).

    ``pred[B, K, T, 2]``; ``valid[B, T]`` (default: all steps).  K < 2 gives NaN.
    """
    pred = np.asarray(pred, np.float64)
    if pred.ndim != 4 or pred.shape[-1] != 2:
        raise ShapeError(f"predictions must be [B, K, T, 2], got {pred.shape}")
    b, k, t, _ = pred.shape
    valid = np.ones((b, t), bool) if valid is None else np.asarray(valid, bool)
    if valid.shape != (b, t):
        raise ShapeError(f"valid mask must be [B, T] = {(b, t)}, got {valid.shape}")
    if k < 2:
        return np.full(b, np.nan)
    i, j = np.triu_indices(k, 1)
    d = np.linalg.norm(pred[:, i] - pred[:, j], axis=-1)  # [B, pairs, T]
    n = valid.sum(-1)
    per_pair = np.where(valid[:, None], d, 0.0).sum(-1) / np.maximum(n, 1)[:, None]
    return np.where(n > 0, per_pair.mean(-1), np.nan)


def apd_flat(pred: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """``[B]`` APD, flattened convention: mean over pairs of ``||flat(pred_i) - flat(pred_j)||_2``
    over the valid steps' ``[T_valid * 2]`` coordinates."""
    pred = np.asarray(pred, np.float64)
    if pred.ndim != 4 or pred.shape[-1] != 2:
        raise ShapeError(f"predictions must be [B, K, T, 2], got {pred.shape}")
    b, k, t, _ = pred.shape
    valid = np.ones((b, t), bool) if valid is None else np.asarray(valid, bool)
    if k < 2:
        return np.full(b, np.nan)
    i, j = np.triu_indices(k, 1)
    sq = ((pred[:, i] - pred[:, j]) ** 2).sum(-1)  # [B, pairs, T]
    return np.where(valid.any(-1), np.sqrt(np.where(valid[:, None], sq, 0.0).sum(-1)).mean(-1), np.nan)


@dataclass
class TrajectoryMetrics:
    """Metrics of one batch of B objects (arrays ``[B]``; miss ``[B, 3]`` at 3/5/8 s)."""

    min_ade: np.ndarray
    min_fde: np.ndarray
    best_mode: np.ndarray
    miss: np.ndarray
    apd: np.ndarray
    apd_flat: np.ndarray

    def miss_rate(self) -> np.ndarray:
        """``[B]`` mean over the scored measurement steps (NaN when none is scored)."""
        m = self.miss
        n = np.isfinite(m).sum(-1)
        with np.errstate(invalid="ignore"):
            return np.where(n > 0, np.nansum(m, -1) / np.maximum(n, 1), np.nan)


def trajectory_metrics(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, gt_heading: np.ndarray, speed_t0: np.ndarray, dt: float = 0.1
) -> TrajectoryMetrics:
    """All metrics of the module docstring for ``pred[B,K,T,2]`` against ``gt[B,T,2]``."""
    ade, best = min_ade(pred, gt, valid)
    return TrajectoryMetrics(
        min_ade=ade,
        min_fde=min_fde(pred, gt, valid),
        best_mode=best,
        miss=miss_at_steps(pred, gt, valid, gt_heading, speed_t0, waymo_miss_steps(dt)),
        apd=apd(pred, valid),
        apd_flat=apd_flat(pred, valid),
    )
