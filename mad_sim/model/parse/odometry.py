"""Ego odometry from a pose video: register the static map's pixels on the ground plane, frame to frame.

The map in a pose frame (white lane centrelines and dots, grey road lines,
road edges, crosswalks; :func:`~mad_sim.model.parse.pixels.map_pixels`) is
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
therefore keeps the track physical (:class:`~mad_sim.model.parse.odometry_limits.MotionLimits`, per frame step
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
* **Validity, not confidence.**  A frame's pose is a measurement only when the
  frame is readable and its registration passes absolute checks on the
  residual and the inlier share (:mod:`mad_sim.model.parse.odometry_validity`);
  otherwise :attr:`OdometryTrack.valid` says so (the pose is the prediction,
  moved at most by the bounded correction toward a failed fit).  Frames register only against valid
  frames, so a corrupted frame flags itself and not its successors.  (These
  checks replaced a relative test, cost over 1.5 times the recent median,
  which cascaded: with lag-12 references costs grow over a clip's first
  frames, and a clean still clip had 13 of 17 frames refused.)

Measured (``bench/bench_parse.py``, 128 px, 8 clips of 17 / 33 frames):
degraded clips no longer diverge (worst ADE 1.2 m, was 12.9 m), clean clips
cost about 10% more ADE than without the guards (figures from before the
validity checks replaced the median-ratio outlier test).

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
from mad_sim.model.parse.odometry_ground import FrameData, compose, frame_data, inverse, transfer_cost
from mad_sim.model.parse.odometry_limits import MotionLimits
from mad_sim.model.parse.odometry_validity import FitQuality, ValidityConfig, acceptable, fit_quality, readable
from mad_sim.model.parse.pixels import PixelThresholds, check_frame
from mad_sim.model.parse.skeleton_fit import grid
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
      limits: :class:`MotionLimits` of a frame step.
      dt: seconds between frames.
      validity: :class:`~mad_sim.model.parse.odometry_validity.ValidityConfig`, when a frame's pose counts as measured.
    """

    max_range_m: float = 40.0
    max_points: int = 800
    tau_px: float = 0.0
    levels: Tuple[Tuple[float, int, float, int], ...] = (
        (0.4, 5, 1.5, 5),
        (0.12, 5, 0.5, 5),
        (0.04, 3, 0.15, 3),
        (0.015, 3, 0.05, 3),
    )
    prior_weight: float = 0.02
    sigma_xy_m: float = 1.0
    sigma_yaw_deg: float = 5.0
    refs: Tuple[int, ...] = (12,)
    grey_weight: float = 0.5
    pixels: PixelThresholds = field(default_factory=PixelThresholds)
    limits: MotionLimits = field(default_factory=MotionLimits)
    dt: float = DT
    validity: ValidityConfig = field(default_factory=ValidityConfig)

    def __post_init__(self) -> None:
        if not self.dt > 0 or not self.refs or min(self.refs) < 1:
            raise ConfigError(f"OdometryConfig: dt={self.dt} must be > 0 and refs={self.refs} lags >= 1")

    def tau(self, width: int) -> float:
        return float(self.tau_px) if self.tau_px > 0 else max(2.0, width / 40.0)


def register(
    camera: Camera,
    refs: List[Tuple[FrameData, np.ndarray]],
    cur: FrameData,
    guess: np.ndarray,
    cfg: OdometryConfig,
    tau: float,
    prev_pose: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, float]:
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
            c = (
                c
                + transfer_cost(camera, data, cur, rel, tau, cfg.grey_weight)
                + transfer_cost(camera, cur, data, inverse(rel), tau, cfg.grey_weight)
            )
        k = int(np.argmin(c))
        best, cost = cand[k], float(c[k])
    return best, cost


@dataclass
class OdometryTrack:
    """What :func:`track_ego_motion` found; every array NaN-free.

    Attributes:
      poses: [F, 3] ``(x, y, yaw)`` of every frame in the first frame's vehicle frame (metres, radians).
        Invalid frames hold the filtered constant-velocity prediction (moved by at most the bounded
        correction toward a registration that failed the checks).
      valid: [F] bool, frame ``k``'s pose is a measurement: the frame is readable and its registration
        passed the validity checks (:mod:`~mad_sim.model.parse.odometry_validity`).  Frame 0 (the origin) is valid
        when readable.  Step ``k`` (frame ``k - 1`` to ``k``)
        is the pose of frame ``k``; the poses are registered against earlier *valid* frames, so one
        invalid frame does not invalidate its neighbours.
      cost: [F] registration cost of each frame (pixels, prior included); 0 for frame 0 and where no
        registration ran (unreadable frame, no valid reference).
      residual_px: [F] mean distance (pixels) of the registration's transferred points inside the image
        (:class:`~mad_sim.model.parse.odometry_validity.FitQuality`); 0 for frame 0, ``tau`` where none ran.
      inliers: [F] int, transferred points within ``validity.inlier_px`` of their class (0 where none ran).
      overlap: [F] int, transferred points that landed inside the image.
      ground_points: [F] int, map pixels of each frame back-projected onto the ground within range.
      readable: [F] bool, the frame passed :func:`~mad_sim.model.parse.odometry_validity.readable`.
      rejected: [F] bool, a registration ran but failed the validity checks.
    """

    poses: np.ndarray
    valid: np.ndarray
    cost: np.ndarray
    residual_px: np.ndarray
    inliers: np.ndarray
    overlap: np.ndarray
    ground_points: np.ndarray
    readable: np.ndarray
    rejected: np.ndarray

    @classmethod
    def empty(cls, n: int, tau: float) -> "OdometryTrack":
        """A track of ``n`` frames at the origin with nothing measured yet."""
        return cls(
            np.zeros((n, 3)),
            np.zeros(n, bool),
            np.zeros(n),
            np.full(n, float(tau)),
            np.zeros(n, np.int64),
            np.zeros(n, np.int64),
            np.zeros(n, np.int64),
            np.zeros(n, bool),
            np.zeros(n, bool),
        )


def _check_video(frames: np.ndarray, camera: Camera) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4:
        raise ShapeError(
            f"estimate_ego_motion: expected frames [F, H, W, 3] uint8, got {getattr(frames, 'shape', type(frames).__name__)}"
        )
    for k in range(frames.shape[0]):
        check_frame(frames[k], f"estimate_ego_motion frame {k}")
    if frames.shape[1:3] != (camera.height, camera.width):
        raise ShapeError(
            f"estimate_ego_motion: frames are {frames.shape[2]}x{frames.shape[1]} but the camera is "
            f"{camera.width}x{camera.height}"
        )


def _references(k: int, lags: Tuple[int, ...], usable: np.ndarray) -> List[int]:
    """Frames frame ``k`` registers against: for each lag the usable frame before ``k`` nearest to
    ``k - lag`` (clamped to 0; earlier on ties), without repeats; empty when no earlier frame is usable."""
    before = np.flatnonzero(usable[:k])
    if before.size == 0:
        return []
    out = {int(before[np.argmin(np.abs(before - max(k - lag, 0)))]) for lag in lags}
    return sorted(out)


def track_ego_motion(
    frames: np.ndarray, camera: Camera, config: Optional[OdometryConfig] = None, initial_velocity: Optional[np.ndarray] = None
) -> OdometryTrack:
    """Ego poses of a pose video, with the motion limits, outlier rejection and validity of the module docstring.

    Frame ``k`` is registered against the valid frames nearest ``k - lag``
    (before any frame is valid: the first readable frame, the *anchor*, whose
    pose is the prediction).  An unreadable frame or a frame without a
    reference keeps the prediction; a registration failing the validity checks
    still moves the pose by its bounded correction.  Either way ``valid`` is
    False and the frame is no one's reference.

    Args:
      frames: [F, H, W, 3] uint8 RGB pose frames drawn by ``camera`` (the pose renderer's).
      camera: the camera, in the ego's vehicle frame.
      config: :class:`OdometryConfig`.
      initial_velocity: optional ``(dx, dy, dyaw)`` per frame to start the
        filtered velocity from (e.g. the ego's last known motion); zeros by default.
    """
    _check_video(frames, camera)
    cfg = config or OdometryConfig()
    vcfg = cfg.validity
    tau = cfg.tau(camera.width)
    n = frames.shape[0]
    tr = OdometryTrack.empty(n, tau)
    tr.residual_px[:1] = 0.0
    if n == 0:
        return tr
    data: List[FrameData] = [frame_data(frames[k], camera, cfg.max_range_m, cfg.max_points, tau, cfg.pixels) for k in range(n)]
    tr.ground_points[:] = [d.ground_points for d in data]
    tr.readable[:] = [readable(d, vcfg) for d in data]
    tr.valid[0] = tr.readable[0]
    usable = tr.valid.copy()  # frames that may serve as references (valid ones, or the anchor)
    lim = cfg.limits
    vel = np.zeros(3) if initial_velocity is None else np.asarray(initial_velocity, np.float64).reshape(3)
    vel = lim.clamp(vel, cfg.dt)
    for k in range(1, n):
        guess = compose(tr.poses[k - 1], vel)
        tr.poses[k] = guess
        refs = _references(k, cfg.refs, usable)
        if tr.readable[k] and refs:
            ref_data = [(data[j], tr.poses[j]) for j in refs]
            pose, c = register(camera, ref_data, data[k], guess, cfg, tau, tr.poses[k - 1])
            pose = compose(guess, lim.limit_correction(compose(inverse(guess), pose)))
            q: FitQuality = fit_quality(camera, ref_data, data[k], pose, tau, vcfg.inlier_px)
            tr.cost[k], tr.residual_px[k], tr.inliers[k], tr.overlap[k] = c, q.residual_px, q.inliers, q.overlap
            # The (bounded) registration moves the pose either way: a degraded but readable frame's fit
            # still beats the bare prediction (measured: without it two degraded clips drift 5-7 m by
            # their end); only an accepted one is a measurement, and only valid frames become references.
            tr.poses[k] = pose
            tr.valid[k] = acceptable(q, vcfg)
            if not tr.valid[k]:
                tr.rejected[k] = True
                log.debug(
                    "odometry frame %d: registration failed the checks (residual %.2f px, %d / %d inliers)",
                    k,
                    q.residual_px,
                    q.inliers,
                    q.overlap,
                )
        elif tr.readable[k] and not usable.any():
            usable[k] = True  # the anchor: later frames register against it
        usable[k] |= tr.valid[k]
        step = compose(inverse(tr.poses[k - 1]), tr.poses[k])
        vel = lim.clamp(vel + lim.limit_change(step - vel, cfg.dt), cfg.dt)
        log.debug("odometry frame %d: pose %s, cost %.3f, valid %s", k, np.round(tr.poses[k], 3), tr.cost[k], tr.valid[k])
    return tr


def estimate_ego_motion(
    frames: np.ndarray, camera: Camera, config: Optional[OdometryConfig] = None, initial_velocity: Optional[np.ndarray] = None
) -> np.ndarray:
    """Ego poses ``[F, 3]`` ``(x, y, yaw)`` in the first frame's vehicle frame, from a pose video ``[F, H, W, 3]``.

    :func:`track_ego_motion`'s poses (same arguments), without the validity flags: callers that act on
    the poses should use :func:`track_ego_motion` and its ``valid``.
    """
    return track_ego_motion(frames, camera, config, initial_velocity).poses


def trajectory_in_first_frame(xy: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Logged world poses ``xy [F, 2]``, ``heading [F]`` as ``[F, 3]`` poses in the first pose's frame (for comparisons)."""
    world = np.concatenate([np.asarray(xy, np.float64), np.asarray(heading, np.float64)[:, None]], 1)
    return compose(inverse(world[0])[None], world)


__all__ = [
    "MotionLimits",
    "OdometryConfig",
    "OdometryTrack",
    "ValidityConfig",
    "compose",
    "estimate_ego_motion",
    "inverse",
    "register",
    "track_ego_motion",
    "trajectory_in_first_frame",
]
