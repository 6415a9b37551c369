"""`MADPlanner`: the world model imagines K futures; the ego trajectory is read out of each video.

From a :class:`~mad_sim.planners.base.PlanningContext` (ego frame at t0):

1. the context is drawn as a pose video from the ego's camera (the last
   ``history_frames`` steps; the map's z is shifted so the ground under the
   ego is at 0, since the context holds no heights: agents stand on that
   ground with class-typical heights);
2. the motion adapter samples ``K`` futures **without ego conditioning** (the
   model imagines the ego's motion too), one batched sampler call with ``K``
   noise seeds, continued autoregressively (the last generated frames become
   the next history) until ``horizon`` steps are covered;
3. :func:`~mad_sim.model.parse.odometry.track_ego_motion` registers the static
   map of each future (present frame first), which gives the ego poses
   ``(x, y, yaw)`` in the ego frame at t0, and flags every frame whose pose
   is not a measurement (unreadable frame, registration failing the checks).

**Invalid proposals.**  A sample is *valid* when at least
``min_valid_fraction`` of its generated frames have valid odometry (over all
its chunks).  An invalid sample is a video the odometry cannot read, so its
trajectory would be the constant-velocity prediction dressed up as the
model's: it is dropped.  Replacements are drawn (batched, fresh noise seeds)
until K samples are valid or ``max_resamples`` extra samples have been drawn
in this plan; slots still empty get the constant-velocity planner's modes
(:class:`~mad_sim.planners.constant_velocity.ConstantVelocityPlanner`, most
likely first) and are marked ``fallback``.  Valid samples share the
probability mass equally and fallbacks get none; with no valid sample the
fallbacks share it.  :attr:`Plan.info` reports ``valid_proposals`` (valid
model samples among the K returned), ``fallback`` ([K] bool),
``samples_drawn`` (model samples drawn for this plan) and ``valid_fraction``
([K] share of valid odometry frames; 0 for fallbacks), and ``mad-sim eval
open-loop`` averages ``valid_proposals`` over the plans.

Valid samples are returned in the order drawn, so ``mad-sim eval open-loop
--planner mad --k 6`` gives minADE@6 / APD@6 as in the paper (over the
valid samples and, where too few were valid, the marked fallbacks).  Randomness: noise seeds
come from a ``numpy.random.Generator`` (``seed``), re-created per plan
from the context's origin so a plan is a function of its context.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from mad_sim.planners.base import Plan, PlanningContext

from mad_sim.data.scenario import DT, ObjectType, RoadMap, Scenario, TrafficLights, Trajectory

log = logging.getLogger(__name__)

HEIGHTS = {int(ObjectType.VEHICLE): 1.6, int(ObjectType.PEDESTRIAN): 1.75, int(ObjectType.CYCLIST): 1.7}
"""Class-typical heights (m) for agents whose context has no height."""


@dataclass
class MADPlannerSettings:
    """preset / weights / lora / threads: the model (see :func:`~mad_sim.model.agents.predictor_service.load_predictor`);
    size: pose frame pixels; history_frames / future_frames: 8k+1; sampler_steps (None: the preset's);
    precision: ``auto`` / ``float32`` / ``bfloat16`` (as the learned agents'); seed: base noise seed;
    max_chunks: autoregressive forecasts per plan at most (beyond, the last estimated motion is held);
    min_valid_fraction: share of a sample's generated frames with valid odometry for the sample to count;
    max_resamples: extra samples a plan may draw to replace invalid ones (0: none)."""

    preset: str = "tiny"
    weights: str = "auto"
    lora: Optional[str] = None
    threads: Optional[int] = None
    size: int = 128
    history_frames: int = 9
    future_frames: int = 17
    sampler_steps: Optional[int] = None
    precision: str = "auto"
    seed: int = 0
    max_chunks: int = 5
    min_valid_fraction: float = 0.8
    max_resamples: int = 6

    def __post_init__(self) -> None:
        from mad_sim.config_checks import require_choice, require_frames_8k1
        from mad_sim.errors import ConfigError

        require_choice("MAD planner: ", "precision", self.precision, ("auto", "float32", "bfloat16"))
        require_frames_8k1("MAD planner: ", "history_frames", self.history_frames)
        require_frames_8k1("MAD planner: ", "future_frames", self.future_frames, minimum=9)
        if not 0.0 < self.min_valid_fraction <= 1.0 or self.max_resamples < 0 or self.max_chunks < 1:
            raise ConfigError(
                f"MAD planner: min_valid_fraction={self.min_valid_fraction} must be in (0, 1], "
                f"max_resamples={self.max_resamples} >= 0, max_chunks={self.max_chunks} >= 1"
            )


def ground_height(roadmap: RoadMap, radius: float = 15.0) -> float:
    """Median z (m) of the map points within ``radius`` of the ego-frame origin (0 if none)."""
    pts = np.asarray(roadmap.points)
    if len(pts) == 0 or pts.shape[1] < 3:
        return 0.0
    near = np.hypot(pts[:, 0], pts[:, 1]) < radius
    z = pts[near, 2] if near.any() else pts[:, 2]
    return float(np.median(z)) if np.isfinite(z).any() else 0.0


def context_scenario(ctx: PlanningContext) -> Scenario:
    """The context as a small :class:`Scenario` (ego = track 0, ego frame at t0, ground at z = 0)."""
    h = ctx.ego_xy.shape[0]
    n = 1 + ctx.agents_xy.shape[0]
    types = np.concatenate([[int(ObjectType.VEHICLE)], np.asarray(ctx.agent_types, np.int8)]).astype(np.int8)
    heights = np.array([HEIGHTS.get(int(t), 1.6) for t in types])
    tr = Trajectory.zeros(n, h)
    tr.xyz[0, :, :2], tr.heading[0], tr.velocity[0], tr.valid[0] = ctx.ego_xy, ctx.ego_heading, ctx.ego_velocity, ctx.ego_valid
    tr.xyz[1:, :, :2], tr.heading[1:], tr.velocity[1:] = ctx.agents_xy, ctx.agents_heading, ctx.agents_velocity
    tr.valid[1:] = ctx.agents_valid
    sizes = np.concatenate([ctx.ego_size[None], ctx.agents_size]).astype(np.float64)
    tr.size[:] = np.concatenate([sizes, heights[:, None]], 1)[:, None].astype(np.float32)
    tr.xyz[:, :, 2] = heights[:, None] / 2
    tr.valid &= (tr.size[..., :2] > 0).all(-1)
    rm = ctx.roadmap
    pts = np.asarray(rm.points, np.float64).copy()
    if len(pts):
        pts[:, 2] -= ground_height(rm)
    roadmap = RoadMap(
        ids=rm.ids,
        kinds=rm.kinds,
        subtypes=rm.subtypes,
        offsets=rm.offsets,
        points=pts,
        lanes=rm.lanes,
        stop_sign_lanes=rm.stop_sign_lanes,
    )
    lights = TrafficLights(np.zeros((h, 0), np.int64), np.zeros((h, 0), np.int8), np.zeros((h, 0, 3)), np.zeros((h, 0), bool))
    return Scenario(
        scenario_id="context",
        timestamps=np.arange(h) * ctx.dt,
        current_index=h - 1,
        sdc_index=0,
        track_ids=np.arange(n, dtype=np.int64),
        object_types=types,
        tracks=tr,
        roadmap=roadmap,
        traffic_lights=lights,
    )


class MADPlanner:
    """K imagined futures of the motion adapter, the ego trajectory read out by lane odometry."""

    name = "mad"

    def __init__(self, settings: Optional[MADPlannerSettings] = None, service=None) -> None:
        from mad_sim.model.agents.predictor_service import shared_service
        from mad_sim.render.pose import PoseRenderer

        self.settings = s = settings or MADPlannerSettings()
        self.service = service or shared_service(
            s.preset, s.weights, s.lora, None, s.sampler_steps, s.threads, precision=s.precision
        )
        from mad_sim.model.presets import pose_camera

        self.renderer = PoseRenderer(camera=pose_camera(s.preset, s.size, s.size))
        self.last_videos: Optional[np.ndarray] = None

    def history(self, ctx: PlanningContext) -> np.ndarray:
        """``[F_h, H, W, 3]`` pose frames of the context (oldest first; the earliest valid one repeated)."""
        sc = context_scenario(ctx)
        valid = np.flatnonzero(ctx.ego_valid)
        if valid.size == 0 or not ctx.ego_valid[-1]:
            from mad_sim.errors import SchemaError

            raise SchemaError("MAD planner: the ego has no valid state at t0", field="ego_valid")
        first = int(valid[0])
        frames = self.renderer.render_scenario(sc, 0, first, ctx.ego_xy.shape[0])
        fh = self.settings.history_frames
        if len(frames) < fh:
            frames = np.concatenate([np.repeat(frames[:1], fh - len(frames), 0), frames])
        return frames[-fh:]

    def sample(
        self, context: PlanningContext, n: int, horizon: int, rng: np.random.Generator
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` imagined futures read out by odometry.

        Returns ``(poses [n, horizon, 3], valid_fraction [n], videos [n, F, H, W, 3])``: ego poses
        ``(x, y, yaw)`` (ego frame at t0; past the generated frames the last estimated motion is held),
        the share of each sample's generated frames whose odometry is valid, and the generated frames.
        """
        from mad_sim.model.agents.predictor_service import ForecastRequest
        from mad_sim.model.parse.odometry import compose, track_ego_motion

        s = self.settings
        hist = [self.history(context)] * n
        v, w = context.speed, context.yaw_rate()
        step = np.array([v * DT, 0.0, w * DT])
        poses = np.zeros((n, 1, 3))
        good = np.zeros(n)
        last_frame = np.repeat(hist[0][-1][None], n, 0)
        videos = []
        for _ in range(s.max_chunks):
            if poses.shape[1] - 1 >= horizon:
                break
            reqs = [ForecastRequest(hist[i], None, s.future_frames, int(rng.integers(2**31 - 1))) for i in range(n)]
            futures = self.service.forecast(reqs)
            new = []
            for i in range(n):
                track = track_ego_motion(
                    np.concatenate([last_frame[i][None], futures[i]]), self.renderer.camera, initial_velocity=step
                )
                good[i] += track.valid[1:].sum()
                new.append(compose(poses[i, -1][None], track.poses[1:]))
            poses = np.concatenate([poses, np.stack(new)], 1)
            videos.append(np.stack(futures))
            hist = [np.concatenate([hist[i], futures[i]])[-s.history_frames :] for i in range(n)]
            last_frame = np.stack([f[-1] for f in futures])
        frac = good / max(poses.shape[1] - 1, 1)
        return _hold_motion(poses[:, 1:], horizon, step), frac, np.concatenate(videos, 1)

    def plan(self, context: PlanningContext, k: int, horizon: int) -> Plan:
        """K proposals: valid samples first (in the order drawn), then marked constant-velocity fallbacks."""
        from mad_sim.planners.constant_velocity import ConstantVelocityPlanner

        s = self.settings
        rng = np.random.default_rng(
            [s.seed, int(abs(context.origin_xy[0]) * 100) % 2**31, int(abs(context.origin_xy[1]) * 100) % 2**31]
        )
        kept: List[np.ndarray] = []
        kept_frac: List[float] = []
        kept_video: List[np.ndarray] = []
        drawn, budget = 0, k + s.max_resamples
        while len(kept) < k and drawn < budget:
            n = min(k - len(kept), budget - drawn)
            traj, frac, video = self.sample(context, n, horizon, rng)
            drawn += n
            for i in np.flatnonzero(frac >= s.min_valid_fraction):
                kept.append(traj[i])
                kept_frac.append(float(frac[i]))
                kept_video.append(video[i])
            log.debug(
                "MAD planner: %d of %d samples valid (odometry frame share %s)",
                int((frac >= s.min_valid_fraction).sum()),
                n,
                np.round(frac, 2),
            )
        valid = len(kept)
        fallback = np.arange(k) >= valid
        xy = np.zeros((k, horizon, 2))
        heading = np.zeros((k, horizon))
        for row, t in enumerate(kept):
            xy[row], heading[row] = t[:, :2], t[:, 2]
        if valid < k:
            cv = ConstantVelocityPlanner().plan(context, k - valid, horizon)
            xy[valid:], heading[valid:] = cv.xy, cv.heading
            log.info("MAD planner: %d of %d proposals are constant-velocity fallbacks (%d samples drawn)", k - valid, k, drawn)
        prob = np.where(fallback, 0.0, 1.0) if valid else np.ones(k)
        self.last_videos = np.stack(kept_video) if kept_video else None
        info = {
            "valid_proposals": valid,
            "fallback": fallback.tolist(),
            "samples_drawn": drawn,
            "valid_fraction": kept_frac + [0.0] * (k - valid),
        }
        return Plan(xy=xy, heading=heading, probabilities=prob / prob.sum(), info=info)


def _hold_motion(traj: np.ndarray, horizon: int, step: np.ndarray) -> np.ndarray:
    """``traj [n, T, 3]`` cut or extended to ``horizon`` steps, holding each row's last motion (per step, in the
    moving frame; ``step`` when a row has fewer than two poses)."""
    from mad_sim.model.parse.odometry import compose

    if traj.shape[1] >= horizon:
        return traj[:, :horizon]
    out = []
    for row in traj:
        d = _relative(row[-2], row[-1]) if len(row) >= 2 else step
        p, extra = row[-1], []
        for _ in range(horizon - len(row)):
            p = compose(p, d)
            extra.append(p)
        out.append(np.concatenate([row, np.stack(extra)]))
    return np.stack(out)


def _relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SE(2) motion ``m`` with ``b = a (+) m``."""
    from mad_sim.model.parse.odometry import compose, inverse

    return compose(inverse(a), b)


__all__ = ["HEIGHTS", "MADPlanner", "MADPlannerSettings", "context_scenario", "ground_height"]
