"""Ego odometry from a pose video: register the static map's pixels on the ground plane, frame to frame.

The map in a pose frame (white lane centrelines and dots, grey road lines,
road edges, crosswalks; :func:`~mad_sim.model.pose_pixels.map_pixels`) is
static in the world, so its apparent motion is the camera's.  For a camera
at known height over a flat road, every map pixel back-projects to one
ground point (:meth:`Camera.backproject_ground`).

Registration of frame ``k`` against a reference frame ``j`` finds the planar
motion ``m = (dx, dy, dyaw)``, the pose of frame ``k``'s vehicle frame in
frame ``j``'s, that minimises a symmetric image-space chamfer cost::

    p_k = R(-dyaw) (p_j - [dx, dy])          (ground points of frame j seen from frame k)
    cost(m) = mean_i min(D_k(project(p_k,i)), tau) + mean_i min(D_j(project(p_j,i)), tau)

(the second term maps frame ``k``'s ground points into frame ``j`` with the
inverse motion), with ``D`` the truncated distance maps of the lane (white)
and grey map pixels, bilinear so the cost is smooth below one pixel, and
points that leave the image costing ``tau / 2``.  Errors are measured in
pixels, where the camera measures, not in metres on the ground (where far
points are metres uncertain).  The minimum is found by a coarse-to-fine
grid around the constant-velocity guess; a weak quadratic pull toward that
guess settles directions the map does not constrain (along a straight,
dot-less lane).

One frame step moves near ground points by well under a pixel, and
rasterised one-pixel lines barely change, so registering consecutive frames
is biased toward standing still.  Each frame is therefore registered against
earlier frames ``refs`` steps back (default 12, clamped to the first frame;
several lags may be given, their costs add), whose poses are already
estimated: the unknown is the frame's pose ``q`` in the first frame, and the
cost is the sum over references ``j`` of the symmetric cost of the relative
motion ``pose_j^-1 (+) q`` (SE(2)).  Measured on the WOMD log at 128 x 128
(33 frames, about 9 m): lags (1, 3, 6) give ADE 0.7-2.2 m, lag 12 gives
0.3-0.8 m (``bench/bench_parse.py``).

Frames: poses are ``(x, y, yaw)`` of each frame's vehicle frame (x forward,
y left, origin on the ground below the camera agent's box centre) in the
first frame's, metres and radians.  Nothing here imports torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from mad_sim.errors import ShapeError
from mad_sim.model.pose_pixels import PixelThresholds, _distance, bilinear, check_frame, map_pixels
from mad_sim.model.skeleton_fit import grid
from mad_sim.render.camera import Camera

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OdometryConfig:
    """Settings of :func:`estimate_ego_motion`.

    Attributes:
      max_range_m: ground points farther than this (from the camera) are not used.
      max_points: ground points kept per frame (evenly subsampled).
      tau_px: distance truncation, pixels (0: ``max(2, width / 40)``).
      levels: coarse-to-fine search ``(step_xy m, n_xy, step_yaw deg, n_yaw)``; each centred on the previous best.
      prior_weight: weight of the pull toward the constant-velocity guess, in pixels per (m / sigma)^2.
      sigma_xy_m, sigma_yaw_deg: scales of that pull.
      refs: lags (frames back) of the reference frames each frame is registered against.
      grey_weight: weight of the grey map classes relative to the white lanes.
      pixels: colour-class thresholds.
    """

    max_range_m: float = 40.0
    max_points: int = 800
    tau_px: float = 0.0
    levels: Tuple[Tuple[float, int, float, int], ...] = ((0.4, 5, 1.5, 5), (0.12, 5, 0.5, 5), (0.04, 3, 0.15, 3),
                                                         (0.015, 3, 0.05, 3))
    prior_weight: float = 0.02
    sigma_xy_m: float = 1.0
    sigma_yaw_deg: float = 5.0
    refs: Tuple[int, ...] = (12,)
    grey_weight: float = 0.5
    pixels: PixelThresholds = field(default_factory=PixelThresholds)

    def tau(self, width: int) -> float:
        return float(self.tau_px) if self.tau_px > 0 else max(2.0, width / 40.0)


@dataclass
class _FrameData:
    """Ground points and distance maps of one frame: ``points [P, 2]`` vehicle frame, ``cls [P]`` (0 lane, 1 grey),
    ``dist [2, H, W]``."""

    points: np.ndarray
    cls: np.ndarray
    dist: np.ndarray


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SE(2) composition ``a (+) b`` of poses ``[..., 3]``: ``b`` expressed in ``a``'s frame, returned in ``a``'s parent."""
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    return np.stack([a[..., 0] + c * b[..., 0] - s * b[..., 1], a[..., 1] + s * b[..., 0] + c * b[..., 1],
                     np.angle(np.exp(1j * (a[..., 2] + b[..., 2])))], -1)


def inverse(a: np.ndarray) -> np.ndarray:
    """SE(2) inverse of poses ``[..., 3]``."""
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    return np.stack([-(c * a[..., 0] + s * a[..., 1]), s * a[..., 0] - c * a[..., 1], -a[..., 2]], -1)


def _frame_data(frame: np.ndarray, camera: Camera, cfg: OdometryConfig, tau: float) -> _FrameData:
    lane, grey = map_pixels(frame, cfg.pixels)
    dist = np.stack([_distance(lane, tau), _distance(grey, tau)])
    pts, cls = [], []
    for k, m in enumerate((lane, grey)):
        v, u = np.nonzero(m)
        if u.size == 0:
            continue
        g = camera.backproject_ground(np.stack([u, v], -1).astype(np.float64))
        rel = g[:, :2] - camera.position[:2]
        ok = np.isfinite(g).all(1) & (np.hypot(rel[:, 0], rel[:, 1]) <= cfg.max_range_m)
        pts.append(g[ok, :2])
        cls.append(np.full(int(ok.sum()), k, np.int64))
    points = np.concatenate(pts) if pts else np.zeros((0, 2))
    cl = np.concatenate(cls) if cls else np.zeros(0, np.int64)
    if points.shape[0] > cfg.max_points:
        keep = np.linspace(0, points.shape[0] - 1, cfg.max_points).astype(np.int64)
        points, cl = points[keep], cl[keep]
    return _FrameData(points, cl, dist)


def _transfer_cost(camera: Camera, src: _FrameData, dst: _FrameData, motion: np.ndarray, tau: float,
                   grey_weight: float) -> np.ndarray:
    """[C] mean cost of ``src``'s ground points seen from ``dst`` when ``dst``'s pose in ``src``'s frame is ``motion [C, 3]``."""
    if src.points.shape[0] == 0:
        return np.full(motion.shape[0], 0.5 * tau)
    c, s = np.cos(motion[:, 2])[:, None], np.sin(motion[:, 2])[:, None]
    dx = src.points[None, :, 0] - motion[:, 0:1]
    dy = src.points[None, :, 1] - motion[:, 1:2]
    x = c * dx + s * dy
    y = -s * dx + c * dy
    pts = np.stack([x, y, np.zeros_like(x)], -1)
    uv, depth = camera.project(pts)
    d = bilinear(dst.dist, np.broadcast_to(src.cls[None], x.shape), uv)
    d = np.where(np.isfinite(d), d, 0.5 * tau)
    w = np.where(src.cls == 0, 1.0, grey_weight)[None]
    return (d * w).sum(1) / w.sum()


def register(camera: Camera, refs: List[Tuple[_FrameData, np.ndarray]], cur: _FrameData, guess: np.ndarray,
             cfg: OdometryConfig, tau: float) -> Tuple[np.ndarray, float]:
    """Pose ``[3]`` of ``cur`` (in the common frame) minimising the summed symmetric cost against ``refs``.

    Args:
      refs: ``(frame data, pose [3])`` of the reference frames, poses in the common frame.
      guess: [3] starting pose (and centre of the quadratic pull).
    """
    best = np.asarray(guess, np.float64).copy()
    sig = np.array([cfg.sigma_xy_m, cfg.sigma_xy_m, np.radians(cfg.sigma_yaw_deg)])
    cost = np.inf
    for step_xy, n_xy, step_yaw, n_yaw in cfg.levels:
        cand = best[None] + grid(step_xy, n_xy, np.radians(step_yaw), n_yaw)
        c = cfg.prior_weight * (((cand - guess) / sig) ** 2).sum(1)
        for data, pose in refs:
            rel = compose(inverse(pose)[None], cand)
            c = c + _transfer_cost(camera, data, cur, rel, tau, cfg.grey_weight) \
                + _transfer_cost(camera, cur, data, inverse(rel), tau, cfg.grey_weight)
        k = int(np.argmin(c))
        best, cost = cand[k], float(c[k])
    return best, cost


def estimate_ego_motion(frames: np.ndarray, camera: Camera, config: Optional[OdometryConfig] = None,
                        initial_velocity: Optional[np.ndarray] = None) -> np.ndarray:
    """Ego poses ``[F, 3]`` ``(x, y, yaw)`` in the first frame's vehicle frame, from a pose video ``[F, H, W, 3]``.

    Args:
      frames: uint8 RGB pose frames drawn by ``camera`` (the pose renderer's).
      camera: the camera, in the ego's vehicle frame.
      config: :class:`OdometryConfig`.
      initial_velocity: optional ``(dx, dy, dyaw)`` per frame to start the
        constant-velocity guess from (e.g. the ego's last known motion); zeros by default.
    """
    if not isinstance(frames, np.ndarray) or frames.ndim != 4:
        raise ShapeError(f"estimate_ego_motion: expected frames [F, H, W, 3] uint8, got "
                         f"{getattr(frames, 'shape', type(frames).__name__)}")
    for k in range(frames.shape[0]):
        check_frame(frames[k], f"estimate_ego_motion frame {k}")
    if frames.shape[1:3] != (camera.height, camera.width):
        raise ShapeError(f"estimate_ego_motion: frames are {frames.shape[2]}x{frames.shape[1]} but the camera is "
                         f"{camera.width}x{camera.height}")
    cfg = config or OdometryConfig()
    tau = cfg.tau(camera.width)
    n = frames.shape[0]
    poses = np.zeros((n, 3))
    if n < 2:
        return poses
    data: List[_FrameData] = [_frame_data(frames[k], camera, cfg, tau) for k in range(n)]
    step = np.zeros(3) if initial_velocity is None else np.asarray(initial_velocity, np.float64).reshape(3)
    for k in range(1, n):
        guess = compose(poses[k - 1], step)
        refs = [(data[k - lag], poses[k - lag]) for lag in sorted(set(min(r, k) for r in cfg.refs))]
        poses[k], cost = register(camera, refs, data[k], guess, cfg, tau)
        step = compose(inverse(poses[k - 1]), poses[k])
        log.debug("odometry frame %d: pose %s, cost %.3f", k, np.round(poses[k], 3), cost)
    return poses


def trajectory_in_first_frame(xy: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Logged world poses ``xy [F, 2]``, ``heading [F]`` as ``[F, 3]`` poses in the first pose's frame (for comparisons)."""
    world = np.concatenate([np.asarray(xy, np.float64), np.asarray(heading, np.float64)[:, None]], 1)
    return compose(inverse(world[0])[None], world)


__all__ = ["OdometryConfig", "compose", "estimate_ego_motion", "inverse", "register", "trajectory_in_first_frame"]
