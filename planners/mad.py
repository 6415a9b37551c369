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
3. :func:`~mad_sim.model.odometry.estimate_ego_motion` registers the static
   map between consecutive frames of each future (present frame first),
   which gives the ego poses ``(x, y, yaw)`` in the ego frame at t0.

The K trajectories are returned with equal probabilities (the samples are
draws of the model, not ranked), so ``mad-sim eval open-loop --planner mad
--k 6`` gives minADE@6 / APD@6 as in the paper.  Randomness: noise seeds
come from a ``numpy.random.Generator`` (``seed``), re-created per plan
from the context's origin so a plan is a function of its context.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mad_sim.data.scenario import DT, ObjectType, RoadMap, Scenario, TrafficLights, Trajectory
from mad_sim.planners.base import Plan, PlanningContext

log = logging.getLogger(__name__)

HEIGHTS = {int(ObjectType.VEHICLE): 1.6, int(ObjectType.PEDESTRIAN): 1.75, int(ObjectType.CYCLIST): 1.7}
"""Class-typical heights (m) for agents whose context has no height."""


@dataclass
class MADPlannerSettings:
    """preset / weights / lora / threads: the model (see :func:`~mad_sim.model.predictor_service.load_predictor`);
    size: pose frame pixels; history_frames / future_frames: 8k+1; sampler_steps; seed: base noise seed;
    max_chunks: autoregressive forecasts per plan at most (beyond, the last estimated motion is held)."""

    preset: str = "tiny"
    weights: str = "auto"
    lora: Optional[str] = None
    threads: Optional[int] = None
    size: int = 128
    history_frames: int = 9
    future_frames: int = 17
    sampler_steps: int = 4
    seed: int = 0
    max_chunks: int = 5


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
    roadmap = RoadMap(ids=rm.ids, kinds=rm.kinds, subtypes=rm.subtypes, offsets=rm.offsets, points=pts, lanes=rm.lanes,
                      stop_sign_lanes=rm.stop_sign_lanes)
    lights = TrafficLights(np.zeros((h, 0), np.int64), np.zeros((h, 0), np.int8), np.zeros((h, 0, 3)), np.zeros((h, 0), bool))
    return Scenario(scenario_id="context", timestamps=np.arange(h) * ctx.dt, current_index=h - 1, sdc_index=0,
                    track_ids=np.arange(n, dtype=np.int64), object_types=types, tracks=tr, roadmap=roadmap,
                    traffic_lights=lights)


class MADPlanner:
    """K imagined futures of the motion adapter, the ego trajectory read out by lane odometry."""

    name = "mad"

    def __init__(self, settings: Optional[MADPlannerSettings] = None, service=None) -> None:
        from mad_sim.model.predictor_service import shared_service
        from mad_sim.render.pose import PoseRenderer

        self.settings = s = settings or MADPlannerSettings()
        self.service = service or shared_service(s.preset, s.weights, s.lora, None, s.sampler_steps, s.threads)
        self.renderer = PoseRenderer(width=s.size, height=s.size)
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

    def plan(self, context: PlanningContext, k: int, horizon: int) -> Plan:
        from mad_sim.model.odometry import compose, estimate_ego_motion
        from mad_sim.model.predictor_service import ForecastRequest

        s = self.settings
        rng = np.random.default_rng([s.seed, int(abs(context.origin_xy[0]) * 100) % 2**31,
                                     int(abs(context.origin_xy[1]) * 100) % 2**31])
        hist = [self.history(context)] * k
        present = hist[0][-1]
        v, w = context.speed, context.yaw_rate()
        step = np.array([v * DT, 0.0, w * DT])
        poses = np.zeros((k, 1, 3))
        last_frame = np.repeat(present[None], k, 0)
        videos = []
        for chunk in range(s.max_chunks):
            if poses.shape[1] - 1 >= horizon:
                break
            reqs = [ForecastRequest(hist[i], None, s.future_frames, int(rng.integers(2**31 - 1))) for i in range(k)]
            futures = self.service.forecast(reqs)
            new = []
            for i in range(k):
                frames = np.concatenate([last_frame[i][None], futures[i]])
                rel = estimate_ego_motion(frames, self.renderer.camera, initial_velocity=step)
                new.append(np.stack([compose(poses[i, -1], r) for r in rel[1:]]))
            poses = np.concatenate([poses, np.stack(new)], 1)
            videos.append(np.stack(futures))
            hist = [np.concatenate([hist[i], futures[i]])[-s.history_frames:] for i in range(k)]
            last_frame = np.stack([f[-1] for f in futures])
        traj = poses[:, 1:]
        if traj.shape[1] < horizon:  # hold the last estimated motion (per step, in the moving frame)
            extra = []
            for i in range(k):
                d = _relative(traj[i, -2], traj[i, -1]) if traj.shape[1] >= 2 else step
                p, out = traj[i, -1], []
                for _ in range(horizon - traj.shape[1]):
                    p = compose(p, d)
                    out.append(p)
                extra.append(np.stack(out))
            traj = np.concatenate([traj, np.stack(extra)], 1)
        traj = traj[:, :horizon]
        self.last_videos = np.concatenate(videos, 1) if videos else None
        return Plan(xy=traj[..., :2].copy(), heading=traj[..., 2].copy(), probabilities=np.full(k, 1.0 / k))


def _relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SE(2) motion ``m`` with ``b = a (+) m``."""
    from mad_sim.model.odometry import compose, inverse

    return compose(inverse(a), b)


__all__ = ["HEIGHTS", "MADPlanner", "MADPlannerSettings", "context_scenario", "ground_height"]
