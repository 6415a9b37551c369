"""The ``MADDrive-v0`` observation: a flat ``gymnasium.spaces.Dict`` (``obs_mode="dict"``) or one vector (``"flat"``).

Flat (no nested Dicts) so stable-baselines3's ``MultiInputPolicy`` and
``FlattenObservation`` take it as is.  Everything is in the ego frame at the
present step (x forward, y left, metres, radians, m/s).

============== =================== ======== =========================================
key            shape               dtype    content
============== =================== ======== =========================================
ego            [13]                float32  :data:`EGO_FEATURES`
agents         [K, 11]             float32  K nearest valid agents, :data:`AGENT_FEATURES`,
                                            nearest first, zero padded
agents_mask    [K]                 int8     1 where the ``agents`` row is an agent
roadgraph      [P, 11]             float32  P nearest resampled map points,
                                            :data:`ROADGRAPH_FEATURES`, zero padded
roadgraph_mask [P]                 int8     1 where the ``roadgraph`` row is a point
pose           [H, W, 3]           uint8    the pose frame (only with ``pose_observation``)
rgb            [H, W, 3]           uint8    the camera frame (only with ``rgb_observation``,
                                            :mod:`mad_sim.envs.rgb`)
============== =================== ======== =========================================

**Bounds.**  Every Box is finite: feature ``f`` lies in ``[-B_f, B_f]``
(``[0, B_f]`` for sizes and time, ``[0, 1]`` for one-hots), see
:func:`feature_bounds`: agent and map positions within their radius
(``agent_radius``, ``roadgraph_radius``), unit vectors within 1, speeds
within :data:`MAX_SPEED` m/s, accelerations within :data:`MAX_ACCEL` m/s^2,
yaw rate within :data:`MAX_YAW_RATE` rad/s, curvature within
:data:`MAX_CURVATURE` 1/m, sizes within :data:`MAX_SIZE` m, route progress
within :data:`MAX_ROUTE` m, lateral offset within :data:`MAX_LATERAL` m, time
left within :data:`MAX_TIME` s.  The bounds are chosen so that the flat mode's
division by them keeps the useful range visible (a 2 m lateral offset is 0.1).
Values beyond a bound (a delta action's implied acceleration, a far
excursion from the route) are clipped to it.

**Flat mode** (``obs_mode="flat"``): one float32 vector in ``[-1, 1]`` of
length ``13 + 12 K + 12 P``, every feature divided by its bound ``B_f``::

    [0, 13)                    ego features / bounds (EGO_FEATURES order)
    [13, 13 + 12 K)            K agent rows of 12: AGENT_FEATURES / bounds, then the mask (0/1)
    [13 + 12 K, 13 + 12 (K+P)) P roadgraph rows of 12: ROADGRAPH_FEATURES / bounds, then the mask

Rows keep the Dict's order (nearest first); :func:`flat_layout` gives the slices.
Image observations cannot be flattened (``pose_observation`` / ``rgb_observation``
with ``obs_mode="flat"`` is a ConfigError).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Dict, Optional, Union

import numpy as np
from gymnasium import spaces
from mad_sim.envs.config import EnvConfig

from mad_sim.data.scenario import MapKind, ObjectType, RoadMap
from mad_sim.errors import ConfigError

EGO_FEATURES = (
    "speed",
    "accel",
    "yaw_rate",
    "curvature",
    "length",
    "width",
    "route_progress",
    "route_lateral",
    "route_heading_error",
    "time_left",
    "speed_limit",
    "route_remaining",
    "log_ahead",
)
"""speed m/s, accel m/s^2, yaw_rate rad/s, curvature 1/m (last applied), length/width m,
route_progress m along the logged route since reset, route_lateral m (signed, left +) and
route_heading_error rad from the logged route, time_left s until the log ends, speed_limit m/s
(the reward's, at the ego's place on the route), route_remaining m to the route's goal,
log_ahead m that the logged ego is ahead of the ego along the route at this step (negative:
behind; its last logged place once the log ends)."""

AGENT_FEATURES = (
    "x",
    "y",
    "cos_heading",
    "sin_heading",
    "vx",
    "vy",
    "length",
    "width",
    "is_vehicle",
    "is_pedestrian",
    "is_cyclist",
)
ROADGRAPH_FEATURES = ("x", "y", "dir_x", "dir_y") + tuple(f"is_{k.proto_name}" for k in MapKind)


MAX_SPEED = 60.0
"""m/s, bound of speeds and velocity components."""
MAX_ACCEL = 50.0
"""m/s^2, bound of the ego's acceleration."""
MAX_YAW_RATE = 10.0
"""rad/s, bound of the ego's yaw rate."""
MAX_CURVATURE = 2.0
"""1/m, bound of the ego's curvature."""
MAX_SIZE = 30.0
"""m, bound of lengths and widths."""
MAX_ROUTE = 1000.0
"""m, bound of route progress."""
MAX_LATERAL = 20.0
"""m, bound of the lateral offset from the route (farther is clipped: the flat vector keeps a lane's width visible)."""
MAX_TIME = 30.0
"""s, bound of the time left (longer logs are clipped)."""
MAX_AHEAD = 50.0
"""m, bound of how far the logged ego is ahead or behind."""
OBS_MODES = ("dict", "flat")


@dataclass(frozen=True)
class FeatureBounds:
    """``low`` / ``high`` float32 arrays per Dict key (``ego`` [10], ``agents`` [11], ``roadgraph`` [11])."""

    ego: tuple[np.ndarray, np.ndarray]
    agents: tuple[np.ndarray, np.ndarray]
    roadgraph: tuple[np.ndarray, np.ndarray]

    @property
    def scales(self) -> Dict[str, np.ndarray]:
        """Per key, the divisor that maps each feature into [-1, 1] (its largest absolute bound)."""
        return {
            k: np.maximum(np.abs(lo), np.abs(hi)).astype(np.float32)
            for k, (lo, hi) in (("ego", self.ego), ("agents", self.agents), ("roadgraph", self.roadgraph))
        }


def feature_bounds(config: EnvConfig) -> FeatureBounds:
    """The finite bounds of every feature (see the module docstring)."""
    pi = np.pi
    ego_hi = np.array(
        [
            MAX_SPEED,
            MAX_ACCEL,
            MAX_YAW_RATE,
            MAX_CURVATURE,
            MAX_SIZE,
            MAX_SIZE,
            MAX_ROUTE,
            MAX_LATERAL,
            pi,
            MAX_TIME,
            MAX_SPEED,
            MAX_ROUTE,
            MAX_AHEAD,
        ],
        np.float32,
    )
    ego_lo = -ego_hi
    ego_lo[[4, 5, 9, 10, 11]] = 0.0
    r = float(config.agent_radius)
    ag_hi = np.array([r, r, 1, 1, MAX_SPEED, MAX_SPEED, MAX_SIZE, MAX_SIZE, 1, 1, 1], np.float32)
    ag_lo = -ag_hi
    ag_lo[6:] = 0.0
    rr = float(config.roadgraph_radius)
    rg_hi = np.array([rr, rr, 1, 1] + [1] * (len(ROADGRAPH_FEATURES) - 4), np.float32)
    rg_lo = -rg_hi
    rg_lo[4:] = 0.0
    return FeatureBounds((ego_lo, ego_hi), (ag_lo, ag_hi), (rg_lo, rg_hi))


def flat_layout(config: EnvConfig) -> Dict[str, slice]:
    """Slices of the flat vector: ``ego``, ``agents`` (K rows of 12), ``roadgraph`` (P rows of 12)."""
    k, p = config.num_agents, config.num_roadgraph_points
    a0 = len(EGO_FEATURES)
    r0 = a0 + k * (len(AGENT_FEATURES) + 1)
    return {"ego": slice(0, a0), "agents": slice(a0, r0), "roadgraph": slice(r0, r0 + p * (len(ROADGRAPH_FEATURES) + 1))}


def observation_space(config: EnvConfig) -> spaces.Space:
    """The observation space of an env built with ``config`` (a Dict, or a Box in flat mode)."""
    k, p = config.num_agents, config.num_roadgraph_points
    if config.obs_mode == "flat":
        return spaces.Box(-1.0, 1.0, (flat_layout(config)["roadgraph"].stop,), np.float32)
    b = feature_bounds(config)
    d: Dict[str, spaces.Space] = {
        "ego": spaces.Box(b.ego[0], b.ego[1], dtype=np.float32),
        "agents": spaces.Box(np.tile(b.agents[0], (k, 1)), np.tile(b.agents[1], (k, 1)), dtype=np.float32),
        "agents_mask": spaces.MultiBinary(k),
        "roadgraph": spaces.Box(np.tile(b.roadgraph[0], (p, 1)), np.tile(b.roadgraph[1], (p, 1)), dtype=np.float32),
        "roadgraph_mask": spaces.MultiBinary(p),
    }
    if config.pose_observation:
        d["pose"] = spaces.Box(0, 255, (config.pose_height, config.pose_width, 3), np.uint8)
    if config.rgb_observation:
        d["rgb"] = spaces.Box(0, 255, (config.pose_height, config.pose_width, 3), np.uint8)
    return spaces.Dict(d)


class ObservationPacker:
    """Clips the features to their bounds and packs them as the Dict or the flat vector."""

    def __init__(self, config: EnvConfig) -> None:
        if config.obs_mode == "flat" and (config.pose_observation or config.rgb_observation):
            raise ConfigError("obs_mode='flat' holds no images: drop pose_observation / rgb_observation or use obs_mode='dict'")
        self.flat = config.obs_mode == "flat"
        b = feature_bounds(config)
        self._bounds = {"ego": b.ego, "agents": b.agents, "roadgraph": b.roadgraph}
        self._scale = b.scales
        self._size = flat_layout(config)["roadgraph"].stop

    def __call__(
        self,
        ego: np.ndarray,
        agents: tuple[np.ndarray, np.ndarray],
        roadgraph: tuple[np.ndarray, np.ndarray],
        pose: Optional[np.ndarray] = None,
        rgb: Optional[np.ndarray] = None,
    ) -> Union[Dict[str, np.ndarray], np.ndarray]:
        bd = self._bounds
        ego = np.clip(ego, *bd["ego"])
        ag = np.clip(agents[0], *bd["agents"])
        rg = np.clip(roadgraph[0], *bd["roadgraph"])
        if not self.flat:
            return assemble(ego, (ag, agents[1]), (rg, roadgraph[1]), pose, rgb)
        sc = self._scale
        return np.concatenate(
            [
                ego / sc["ego"],
                np.concatenate([ag / sc["agents"], agents[1][:, None]], 1).ravel(),
                np.concatenate([rg / sc["roadgraph"], roadgraph[1][:, None]], 1).ravel(),
            ]
        ).astype(np.float32)


@dataclass
class RoadgraphPoints:
    """A map resampled to roughly even spacing (world frame): xy [Q,2], unit directions [Q,2], kinds [Q]."""

    xy: np.ndarray
    direction: np.ndarray
    kinds: np.ndarray

    @functools.cached_property
    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Contiguous copies of ``xy[:, 0]`` and ``xy[:, 1]`` (per-step distance tests read them)."""
        return np.ascontiguousarray(self.xy[:, 0]), np.ascontiguousarray(self.xy[:, 1])

    @classmethod
    def from_roadmap(cls, roadmap: RoadMap, spacing: float) -> "RoadgraphPoints":
        """Keep one point per ``spacing`` metres of each polyline (vectorised over all points).

        A point survives when ``floor(s / spacing)`` (``s`` its arclength within
        its feature) differs from its predecessor's, or it starts a feature.
        Directions are the unit vector to the next point of the same feature
        (the previous one for a feature's last point; zero for a lone point).
        """
        pts = np.asarray(roadmap.points, np.float64)[:, :2]
        if len(pts) == 0:
            return cls(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, np.int8))
        owner = roadmap.point_feature_index()
        starts = np.zeros(len(pts), bool)
        starts[roadmap.offsets[:-1][np.diff(roadmap.offsets) > 0]] = True
        seg = np.r_[0.0, np.linalg.norm(np.diff(pts, axis=0), axis=-1)]
        seg[starts] = 0.0
        cum = np.cumsum(seg)
        cum -= np.maximum.accumulate(np.where(starts, cum, 0.0))
        bucket = np.floor(cum / spacing)
        keep = starts | (bucket != np.r_[-1.0, bucket[:-1]])
        nxt = np.r_[pts[1:], pts[-1:]] - pts
        same_next = np.r_[owner[1:] == owner[:-1], False]
        prev = pts - np.r_[pts[:1], pts[:-1]]
        d = np.where(same_next[:, None], nxt, prev)
        d[starts & ~same_next] = 0.0
        norm = np.linalg.norm(d, axis=-1, keepdims=True)
        d = np.where(norm > 1e-9, d / np.maximum(norm, 1e-9), 0.0)
        return cls(pts[keep], d[keep], np.asarray(roadmap.kinds)[owner[keep]].astype(np.int8))


def ego_features(
    speed: float,
    accel: float,
    yaw_rate: float,
    curvature: float,
    length: float,
    width: float,
    progress: float,
    lateral: float,
    heading_error: float,
    time_left: float,
    speed_limit: float,
    remaining: float,
    log_ahead: float,
) -> np.ndarray:
    """The ego row (:data:`EGO_FEATURES` order; an infinite speed limit is reported as :data:`MAX_SPEED`)."""
    return np.array(
        [
            speed,
            accel,
            yaw_rate,
            curvature,
            length,
            width,
            progress,
            lateral,
            heading_error,
            time_left,
            min(speed_limit, MAX_SPEED),
            remaining,
            log_ahead,
        ],
        np.float32,
    )


_KIND_VALUES = np.array([int(m) for m in MapKind])
_TYPE_VALUES = np.array([int(ObjectType.VEHICLE), int(ObjectType.PEDESTRIAN), int(ObjectType.CYCLIST)])


def nearest_first(d2: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """The at most ``k`` entries of ``idx`` with the smallest squared distance ``d2[idx]``, nearest first.

    Ties keep index order (stable sort), so the result does not depend on the partition's order.
    """
    if idx.size > k:
        idx = idx[np.argpartition(d2[idx], k - 1)[:k]]
    return idx[np.argsort(d2[idx], kind="stable")]


def rotate_to_ego(c: float, s: float, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-axis vectors ``(x, y)`` in the ego frame: ``R(-yaw0) (x, y)`` with ``c, s = cos yaw0, sin yaw0``."""
    return c * x + s * y, -s * x + c * y


def agent_features(
    xy: np.ndarray,
    heading: np.ndarray,
    velocity: np.ndarray,
    size: np.ndarray,
    types: np.ndarray,
    valid: np.ndarray,
    ego_index: int,
    ego_xy: np.ndarray,
    ego_yaw: float,
    k: int,
    radius: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``([K, 11] float32, [K] int8)``: the K nearest valid agents within ``radius`` (ego frame).

    Rows: ``R(-yaw0)(p - p0)``, ``cos/sin(h - yaw0)``, ``R(-yaw0) v``, length,
    width, one-hot type; nearest first, zero rows and mask 0 after the last agent.
    """
    out = np.zeros((k, len(AGENT_FEATURES)), np.float32)
    mask = np.zeros(k, np.int8)
    dx = xy[:, 0] - ego_xy[0]
    dy = xy[:, 1] - ego_xy[1]
    d2 = dx * dx + dy * dy
    cand = valid & (d2 <= radius * radius)
    cand[ego_index] = False
    idx = np.flatnonzero(cand)
    if idx.size == 0:
        return out, mask
    idx = nearest_first(d2, idx, k)
    n = idx.size
    c, s = np.cos(ego_yaw), np.sin(ego_yaw)
    o = out[:n]
    o[:, 0], o[:, 1] = rotate_to_ego(c, s, dx[idx], dy[idx])
    h = heading[idx] - ego_yaw
    o[:, 2] = np.cos(h)
    o[:, 3] = np.sin(h)
    v = velocity[idx]
    o[:, 4], o[:, 5] = rotate_to_ego(c, s, v[:, 0], v[:, 1])
    o[:, 6:8] = size[idx, :2]
    o[:, 8:11] = types[idx, None] == _TYPE_VALUES
    mask[:n] = 1
    return out, mask


def roadgraph_features(
    points: RoadgraphPoints, ego_xy: np.ndarray, ego_yaw: float, p: int, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """``([P, 11] float32, [P] int8)``: the P nearest map points within ``radius`` (ego frame).

    Rows: position ``R(-yaw0)(q - p0)``, unit direction ``R(-yaw0) u``, one-hot
    :class:`MapKind`; nearest first, zero padded.
    """
    out = np.zeros((p, len(ROADGRAPH_FEATURES)), np.float32)
    mask = np.zeros(p, np.int8)
    if len(points.xy) == 0:
        return out, mask
    x, y = points.columns
    dx = x - ego_xy[0]
    dy = y - ego_xy[1]
    d2 = dx * dx + dy * dy
    idx = nearest_first(d2, np.flatnonzero(d2 <= radius * radius), p)
    n = idx.size
    c, s = np.cos(ego_yaw), np.sin(ego_yaw)
    o = out[:n]
    o[:, 0], o[:, 1] = rotate_to_ego(c, s, dx[idx], dy[idx])
    u = points.direction[idx]
    o[:, 2], o[:, 3] = rotate_to_ego(c, s, u[:, 0], u[:, 1])
    o[:, 4:] = points.kinds[idx, None] == _KIND_VALUES
    mask[:n] = 1
    return out, mask


def assemble(
    ego: np.ndarray,
    agents: tuple[np.ndarray, np.ndarray],
    roadgraph: tuple[np.ndarray, np.ndarray],
    pose: Optional[np.ndarray],
    rgb: Optional[np.ndarray] = None,
) -> Dict[str, np.ndarray]:
    obs = {"ego": ego, "agents": agents[0], "agents_mask": agents[1], "roadgraph": roadgraph[0], "roadgraph_mask": roadgraph[1]}
    if pose is not None:
        obs["pose"] = pose
    if rgb is not None:
        obs["rgb"] = rgb
    return obs
