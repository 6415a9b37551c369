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

Generated frames can be poor (noise, blur, a jittering image), and one bad
registration used to poison the rest: its step became the next frame's
constant-velocity guess, the along-lane cost is nearly flat, and the track
ran away (a degraded 33-frame clip ended 39 m off).  :func:`track_ego_motion`
therefore keeps the track physical (:class:`MotionLimits`, per frame step
``s = pose_{k-1}^-1 (+) pose_k`` in metres and radians, previous frame's axes):

* **Feasible candidates only.**  The grid search considers only steps with
  forward speed in ``[-max_reverse_mps, max_speed_mps]``, yaw rate within
  ``min(max_yaw_rate dt, max_curvature |s_x| + yaw_slack)`` (a car turns
  only while it moves) and side slip ``|s_y - s_x s_yaw / 2|`` (distance
  from a circular arc's chord) within ``lateral_slack_m``.
* **A filtered velocity.**  The prediction (search centre and prior) uses a
  velocity that follows the measured steps by at most ``max_accel_mps2 dt^2``
  of forward (and sideways) step and ``max_yaw_rate dt^2 / 0.5`` of yaw per
  frame, clamped into the bounds above: a spurious step cannot feed itself.
* **Bounded corrections.**  A registration may move the pose at most
  ``max_correction_m`` / ``max_correction_deg`` away from the prediction in
  one frame (the lagged references still pull it the rest of the way over
  the next frames).
* **Outlier rejection.**  A registration whose cost exceeds ``outlier_ratio``
  times the median of the last ``history`` accepted costs is rejected: the
  frame takes the prediction (constant velocity), and its cost stays out of the history.

Measured (``bench/bench_parse.py``, 128 px, 8 clips of 17 / 33 frames):
degraded clips no longer diverge (worst ADE 1.2 m, was 12.9 m), clean clips
cost about 10% more ADE than without the guards.

Frames: poses are ``(x, y, yaw)`` of each frame's vehicle frame (x forward,
y left, origin on the ground below the camera agent's box centre) in the
first frame's, metres and radians.  Nothing here imports torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from mad_sim.data.scenario import DT
from mad_sim.errors import ConfigError, ShapeError
from mad_sim.model.pose_pixels import PixelThresholds, truncated_distance_map, bilinear, check_frame, map_pixels
from mad_sim.model.skeleton_fit import grid
from mad_sim.render.camera import Camera

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MotionLimits:
    """Physically plausible bounds on the ego's motion between two frames (see the module docstring).

    Attributes:
      max_speed_mps: forward speed bound, m/s (40 m/s = 144 km/h).
      max_reverse_mps: reverse speed bound, m/s.
      max_accel_mps2: bound on the change of the predicted velocity, m/s^2 (hard braking is ~8-9 m/s^2).
      max_yaw_rate: rad/s (1 rad/s: a sharp turn at walking pace, far beyond highway turns).
      max_curvature: 1/m, the tightest turn (1 / 4 m: a car's turning circle).
      yaw_slack: rad per frame allowed on top of the curvature bound (estimation noise, standing rotation).
      lateral_slack_m: sideways motion per frame allowed beyond the arc's chord, metres.
      max_correction_m, max_correction_deg: largest move of a frame's pose away from the
        constant-velocity prediction that one registration may make (larger ones are shortened).
      enabled: apply the limits at all.
    """

    max_speed_mps: float = 40.0
    max_reverse_mps: float = 5.0
    max_accel_mps2: float = 10.0
    max_yaw_rate: float = 1.0
    max_curvature: float = 0.25
    yaw_slack: float = 0.01
    lateral_slack_m: float = 0.15
    max_correction_m: float = 1.0
    max_correction_deg: float = 3.0
    enabled: bool = True

    def clamp(self, step: np.ndarray, dt: float = DT) -> np.ndarray:
        """A frame step ``[3]`` moved into the speed, yaw-rate and side-slip bounds (nearest feasible values)."""
        if not self.enabled:
            return np.asarray(step, np.float64).copy()
        dx, dy, dyaw = (float(x) for x in step)
        dx = min(max(dx, -self.max_reverse_mps * dt), self.max_speed_mps * dt)
        ymax = min(self.max_yaw_rate * dt, self.max_curvature * abs(dx) + self.yaw_slack)
        dyaw = min(max(dyaw, -ymax), ymax)
        chord = 0.5 * dx * dyaw
        dy = min(max(dy, chord - self.lateral_slack_m), chord + self.lateral_slack_m)
        return np.array([dx, dy, dyaw])

    def limit_change(self, delta: np.ndarray, dt: float = DT) -> np.ndarray:
        """A change of the frame step ``[3]`` within one frame's acceleration (forward) and yaw-rate change."""
        if not self.enabled:
            return np.asarray(delta, np.float64).copy()
        a = self.max_accel_mps2 * dt * dt
        y = self.max_yaw_rate * dt * dt / 0.5  # yaw rate may change by its bound in half a second
        return np.array([min(max(float(delta[0]), -a), a), min(max(float(delta[1]), -a), a),
                         min(max(float(delta[2]), -y), y)])

    def limit_correction(self, corr: np.ndarray) -> np.ndarray:
        """A correction ``[3]`` of the predicted pose (in its frame) shortened to ``max_correction_m`` / ``_deg``."""
        out = np.asarray(corr, np.float64).copy()
        if not self.enabled:
            return out
        d = float(np.hypot(out[0], out[1]))
        if d > self.max_correction_m:
            out[:2] *= self.max_correction_m / d
        m = np.radians(self.max_correction_deg)
        out[2] = min(max(out[2], -m), m)
        return out

    def feasible(self, step: np.ndarray, dt: float = DT) -> np.ndarray:
        """[C] bool: which frame steps ``[C, 3]`` (previous frame's axes) are within the speed, yaw-rate
        and side-slip bounds."""
        step = np.asarray(step, np.float64)
        if not self.enabled:
            return np.ones(step.shape[0], bool)
        dx, dy, dyaw = step[:, 0], step[:, 1], step[:, 2]
        ok = (dx <= self.max_speed_mps * dt) & (dx >= -self.max_reverse_mps * dt)
        ok &= np.abs(dyaw) <= np.minimum(self.max_yaw_rate * dt, self.max_curvature * np.abs(dx) + self.yaw_slack)
        ok &= np.abs(dy - 0.5 * dx * dyaw) <= self.lateral_slack_m
        return ok


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
      limits: :class:`MotionLimits` of a frame step.
      outlier_ratio: a registration costing more than this times the recent median is rejected.
      history: accepted frames behind the median cost and the constant-velocity fallback.
      dt: seconds between frames.
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
    limits: MotionLimits = field(default_factory=MotionLimits)
    outlier_ratio: float = 1.5
    history: int = 5
    dt: float = DT

    def __post_init__(self) -> None:
        if not (self.outlier_ratio > 1.0) or self.history < 1 or not (self.dt > 0):
            raise ConfigError(f"OdometryConfig: outlier_ratio={self.outlier_ratio} must be > 1, history="
                              f"{self.history} >= 1 and dt={self.dt} > 0")

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
    dist = np.stack([truncated_distance_map(lane, tau), truncated_distance_map(grey, tau)])
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
             cfg: OdometryConfig, tau: float, prev_pose: Optional[np.ndarray] = None) -> Tuple[np.ndarray, float]:
    """Pose ``[3]`` of ``cur`` (in the common frame) minimising the summed symmetric cost against ``refs``.

    Args:
      refs: ``(frame data, pose [3])`` of the reference frames, poses in the common frame.
      guess: [3] starting pose (and centre of the quadratic pull).
      prev_pose: [3] the previous frame's pose; given, only steps from it within ``cfg.limits``
        (:meth:`MotionLimits.feasible`) are candidates.  If no candidate of a level is feasible, the
        level keeps its centre.
    """
    best = np.asarray(guess, np.float64).copy()
    sig = np.array([cfg.sigma_xy_m, cfg.sigma_xy_m, np.radians(cfg.sigma_yaw_deg)])
    cost = np.inf
    for step_xy, n_xy, step_yaw, n_yaw in cfg.levels:
        cand = best[None] + grid(step_xy, n_xy, np.radians(step_yaw), n_yaw)
        if prev_pose is not None:
            ok = cfg.limits.feasible(compose(inverse(np.asarray(prev_pose, np.float64))[None], cand), cfg.dt)
            if not ok.any():
                continue
            cand = cand[ok]
        c = cfg.prior_weight * (((cand - guess) / sig) ** 2).sum(1)
        for data, pose in refs:
            rel = compose(inverse(pose)[None], cand)
            c = c + _transfer_cost(camera, data, cur, rel, tau, cfg.grey_weight) \
                + _transfer_cost(camera, cur, data, inverse(rel), tau, cfg.grey_weight)
        k = int(np.argmin(c))
        best, cost = cand[k], float(c[k])
    return best, cost


@dataclass
class OdometryTrack:
    """What :func:`track_ego_motion` found.

    Attributes:
      poses: [F, 3] ``(x, y, yaw)`` of every frame in the first frame's vehicle frame (metres, radians).
      cost: [F] registration cost of each frame, pixels (NaN for frame 0).
      rejected: [F] bool, the registration was an outlier and the frame took the constant-velocity step.
    """

    poses: np.ndarray
    cost: np.ndarray
    rejected: np.ndarray


def _check_video(frames: np.ndarray, camera: Camera) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4:
        raise ShapeError(f"estimate_ego_motion: expected frames [F, H, W, 3] uint8, got "
                         f"{getattr(frames, 'shape', type(frames).__name__)}")
    for k in range(frames.shape[0]):
        check_frame(frames[k], f"estimate_ego_motion frame {k}")
    if frames.shape[1:3] != (camera.height, camera.width):
        raise ShapeError(f"estimate_ego_motion: frames are {frames.shape[2]}x{frames.shape[1]} but the camera is "
                         f"{camera.width}x{camera.height}")


def track_ego_motion(frames: np.ndarray, camera: Camera, config: Optional[OdometryConfig] = None,
                     initial_velocity: Optional[np.ndarray] = None) -> OdometryTrack:
    """Ego poses of a pose video with the motion limits and outlier rejection of the module docstring.

    Args:
      frames: [F, H, W, 3] uint8 RGB pose frames drawn by ``camera`` (the pose renderer's).
      camera: the camera, in the ego's vehicle frame.
      config: :class:`OdometryConfig`.
      initial_velocity: optional ``(dx, dy, dyaw)`` per frame to start the
        filtered velocity from (e.g. the ego's last known motion); zeros by default.
    """
    _check_video(frames, camera)
    cfg = config or OdometryConfig()
    tau = cfg.tau(camera.width)
    n = frames.shape[0]
    poses = np.zeros((n, 3))
    cost = np.full(n, np.nan)
    rejected = np.zeros(n, bool)
    if n < 2:
        return OdometryTrack(poses, cost, rejected)
    data: List[_FrameData] = [_frame_data(frames[k], camera, cfg, tau) for k in range(n)]
    lim = cfg.limits
    vel = np.zeros(3) if initial_velocity is None else np.asarray(initial_velocity, np.float64).reshape(3)
    vel = lim.clamp(vel, cfg.dt)
    costs: List[float] = []
    for k in range(1, n):
        guess = compose(poses[k - 1], vel)
        refs = [(data[k - lag], poses[k - lag]) for lag in sorted(set(min(r, k) for r in cfg.refs))]
        pose, c = register(camera, refs, data[k], guess, cfg, tau, poses[k - 1])
        cost[k] = c
        recent = costs[-cfg.history:]
        if len(recent) >= 3 and c > cfg.outlier_ratio * float(np.median(recent)):
            rejected[k] = True
            poses[k] = guess
            log.debug("odometry frame %d: registration cost %.3f rejected (recent median %.3f)", k, c,
                      float(np.median(recent)))
        else:
            costs.append(c)
            poses[k] = compose(guess, lim.limit_correction(compose(inverse(guess), pose)))
        step = compose(inverse(poses[k - 1]), poses[k])
        vel = lim.clamp(vel + lim.limit_change(step - vel, cfg.dt), cfg.dt)
        log.debug("odometry frame %d: pose %s, cost %.3f", k, np.round(poses[k], 3), c)
    return OdometryTrack(poses, cost, rejected)


def estimate_ego_motion(frames: np.ndarray, camera: Camera, config: Optional[OdometryConfig] = None,
                        initial_velocity: Optional[np.ndarray] = None) -> np.ndarray:
    """Ego poses ``[F, 3]`` ``(x, y, yaw)`` in the first frame's vehicle frame, from a pose video ``[F, H, W, 3]``.

    :func:`track_ego_motion`'s poses (same arguments).
    """
    return track_ego_motion(frames, camera, config, initial_velocity).poses


def trajectory_in_first_frame(xy: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Logged world poses ``xy [F, 2]``, ``heading [F]`` as ``[F, 3]`` poses in the first pose's frame (for comparisons)."""
    world = np.concatenate([np.asarray(xy, np.float64), np.asarray(heading, np.float64)[:, None]], 1)
    return compose(inverse(world[0])[None], world)


__all__ = ["MotionLimits", "OdometryConfig", "OdometryTrack", "compose", "estimate_ego_motion", "inverse", "register",
           "track_ego_motion", "trajectory_in_first_frame"]
