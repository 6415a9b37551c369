"""The planner protocol: history + map in, K ego trajectories with probabilities out.

Everything a planner sees is in the **ego frame at t0** (origin at the ego's
position at the planning step, x along its heading, y left; metres, radians,
m/s), sampled at 10 Hz.  A planner returns a :class:`Plan` over ``horizon``
future steps ``t0 + 1 ... t0 + horizon``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Protocol

import numpy as np

from mad_sim.data.frames import heading_world_to_ego, vectors_world_to_ego, world_to_ego
from mad_sim.data.scenario import DT, RoadMap, Scenario, Trajectory
from mad_sim.errors import SchemaError, ShapeError


@dataclass
class PlanningContext:
    """The planner's input, ego frame at t0.

    Attributes:
      ego_xy: [H, 2] history positions (last row = t0, i.e. ~(0, 0)).
      ego_heading: [H] rad.  ego_velocity: [H, 2] m/s.  ego_valid: [H] bool.
      ego_size: [2] (length, width) m.
      agents_xy: [N, H, 2], agents_heading: [N, H], agents_velocity: [N, H, 2],
        agents_size: [N, 2], agents_valid: [N, H], agent_types: [N] int8 (the
        ego is excluded).
      roadmap: the map with its points moved into the ego frame.
      origin_xy: [2] world position of the frame; origin_yaw: its world heading.
      dt: seconds per step.
      future_xy / future_valid: [F, 2] / [F] the logged ego future (only the
        expert may read it; None when not known, e.g. closed loop).
    """

    ego_xy: np.ndarray
    ego_heading: np.ndarray
    ego_velocity: np.ndarray
    ego_valid: np.ndarray
    ego_size: np.ndarray
    agents_xy: np.ndarray
    agents_heading: np.ndarray
    agents_velocity: np.ndarray
    agents_size: np.ndarray
    agents_valid: np.ndarray
    agent_types: np.ndarray
    roadmap: RoadMap
    origin_xy: np.ndarray
    origin_yaw: float
    dt: float = DT
    future_xy: Optional[np.ndarray] = None
    future_valid: Optional[np.ndarray] = None

    @property
    def speed(self) -> float:
        """Current speed (m/s), signed along the heading."""
        v = self.ego_velocity[-1]
        return float(v[0] * np.cos(self.ego_heading[-1]) + v[1] * np.sin(self.ego_heading[-1]))

    def yaw_rate(self, steps: int = 5) -> float:
        """Mean yaw rate (rad/s) over the last ``steps`` valid history steps (0 without history)."""
        idx = np.flatnonzero(self.ego_valid)[-(steps + 1) :]
        if idx.size < 2:
            return 0.0
        dh = np.angle(np.exp(1j * (self.ego_heading[idx[-1]] - self.ego_heading[idx[0]])))
        return float(dh / ((idx[-1] - idx[0]) * self.dt))


@dataclass
class Plan:
    """K candidate ego trajectories (ego frame at t0).

    Attributes:
      xy: [K, F, 2] positions at t0 + dt ... t0 + F dt.
      heading: [K, F] rad.
      probabilities: [K], non-negative, summing to 1.
      info: what the planner wants to report about the plan (JSON-able values), e.g. the MAD
        planner's ``valid_proposals`` and ``fallback`` (:mod:`mad_sim.planners.mad`); empty by default.
    """

    xy: np.ndarray
    heading: np.ndarray
    probabilities: np.ndarray
    info: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k, f = self.xy.shape[:2]
        if self.xy.shape != (k, f, 2) or self.heading.shape != (k, f) or self.probabilities.shape != (k,):
            raise ShapeError(
                f"plan shapes disagree: xy {self.xy.shape}, heading {self.heading.shape}, "
                f"probabilities {self.probabilities.shape}"
            )
        if not (np.isfinite(self.xy).all() and np.isfinite(self.heading).all()):
            raise ShapeError("plan holds a non-finite position or heading")

    @property
    def best(self) -> int:
        return int(np.argmax(self.probabilities))


class Planner(Protocol):
    """``plan(context, k, horizon) -> Plan`` with ``k`` trajectories of ``horizon`` steps."""

    name: str

    def plan(self, context: PlanningContext, k: int, horizon: int) -> Plan: ...


def transform_roadmap(roadmap: RoadMap, origin_xy: np.ndarray, origin_yaw: float) -> RoadMap:
    """A copy of ``roadmap`` with its points in the ego frame of ``(origin_xy, origin_yaw)`` (z kept)."""
    pts = roadmap.points.copy()
    if len(pts):
        pts[:, :2] = world_to_ego(pts[:, :2], origin_xy, origin_yaw)
    return RoadMap(
        ids=roadmap.ids,
        kinds=roadmap.kinds,
        subtypes=roadmap.subtypes,
        offsets=roadmap.offsets,
        points=pts,
        lanes=roadmap.lanes,
        stop_sign_lanes=roadmap.stop_sign_lanes,
    )


def build_context(
    tracks: Trajectory,
    object_types: np.ndarray,
    roadmap: RoadMap,
    t0: int,
    ego_index: int,
    history: int = 11,
    log: Optional[Trajectory] = None,
    horizon: int = 0,
    source: str = "<scenario>",
) -> PlanningContext:
    """Context for planning at step ``t0`` from ``tracks`` (the log, or the simulated state).

    ``history`` steps ending at ``t0`` (inclusive); ``log`` + ``horizon``
    attach the logged future for the expert.  Raises SchemaError when the ego
    has no valid state at ``t0``.
    """
    if not tracks.valid[ego_index, t0]:
        raise SchemaError(f"ego track {ego_index} has no valid state at step {t0}", path=source, field="tracks.valid")
    h0 = max(0, t0 - history + 1)
    sl = slice(h0, t0 + 1)
    origin = tracks.xy[ego_index, t0].copy()
    yaw = float(tracks.heading[ego_index, t0])
    others = np.ones(tracks.num_objects, bool)
    others[ego_index] = False
    valid = tracks.valid[:, sl]

    def xy(i: np.ndarray) -> np.ndarray:
        return np.where(valid[i, :, None], world_to_ego(tracks.xy[i, sl], origin, yaw), 0.0)

    ctx = PlanningContext(
        ego_xy=xy(np.array(ego_index))[...],
        ego_heading=np.where(valid[ego_index], heading_world_to_ego(tracks.heading[ego_index, sl], yaw), 0.0),
        ego_velocity=np.where(valid[ego_index, :, None], vectors_world_to_ego(tracks.velocity[ego_index, sl], yaw), 0.0),
        ego_valid=valid[ego_index].copy(),
        ego_size=tracks.size[ego_index, t0, :2].astype(np.float64),
        agents_xy=xy(others),
        agents_heading=np.where(valid[others], heading_world_to_ego(tracks.heading[others, sl], yaw), 0.0),
        agents_velocity=np.where(valid[others][..., None], vectors_world_to_ego(tracks.velocity[others, sl], yaw), 0.0),
        agents_size=tracks.size[others, t0, :2].astype(np.float64),
        agents_valid=valid[others].copy(),
        agent_types=np.asarray(object_types)[others],
        roadmap=transform_roadmap(roadmap, origin, yaw),
        origin_xy=origin,
        origin_yaw=yaw,
    )
    if log is not None and horizon > 0:
        fut = slice(t0 + 1, t0 + 1 + horizon)
        fv = np.zeros(horizon, bool)
        fxy = np.zeros((horizon, 2))
        n = min(horizon, log.num_steps - t0 - 1)
        fv[:n] = log.valid[ego_index, fut]
        fxy[:n] = world_to_ego(log.xy[ego_index, fut], origin, yaw)
        ctx.future_xy, ctx.future_valid = np.where(fv[:, None], fxy, 0.0), fv
    return ctx


def context_from_scenario(
    scenario: Scenario, t0: Optional[int] = None, ego_index: Optional[int] = None, history: int = 11, horizon: int = 0
) -> PlanningContext:
    """Open-loop context from a log (with the logged future attached when ``horizon > 0``)."""
    t = scenario.current_index if t0 is None else int(t0)
    ego = scenario.sdc_index if ego_index is None else int(ego_index)
    return build_context(
        scenario.tracks,
        scenario.object_types,
        scenario.roadmap,
        t,
        ego,
        history,
        log=scenario.tracks,
        horizon=horizon,
        source=scenario.source or scenario.scenario_id,
    )


def rollout_unicycle(
    speed: np.ndarray, yaw_rate: np.ndarray, accel: np.ndarray, horizon: int, dt: float = DT
) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``[K, F, 2]`` and headings ``[K, F]`` from the ego-frame origin.

    Per mode: ``v_t = max(0, v + a t)``, ``yaw_t = omega t``, ``p_t = sum v_t dt (cos yaw_t, sin yaw_t)``
    (the same semi-implicit order as the bicycle model).
    """
    t = dt * np.arange(1, horizon + 1)
    v = np.maximum(0.0, speed[:, None] + accel[:, None] * t)
    yaw = yaw_rate[:, None] * t
    step = v * dt
    xy = np.cumsum(np.stack([step * np.cos(yaw), step * np.sin(yaw)], -1), axis=1)
    return xy, yaw
