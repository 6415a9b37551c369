"""Per-step driving metrics and the reward of ``MADDrive-v0``: named terms times weights.

Metrics (:class:`StepMetrics`, all in ``info`` every step, whatever the weights):

- ``collision``: the ego's box overlaps a valid agent's box (oriented-box test,
  :func:`mad_sim.world.geometry.overlap_matrix`); ``collision_at_fault``: such
  an overlap while the ego moves (|speed| >= :data:`STANDING_SPEED`) with an
  agent whose centre is not behind the ego's (its ego-frame x >= 0): being
  run into from behind, or while standing, is not the ego's fault (the
  logged agents cannot react; nuPlan's at-fault rule, simplified).  Either
  ends the episode (``terminate_on_collision``); the reward's ``collision``
  term counts only the at-fault one.
- ``offroad``: the ego's centre is more than ``offroad_margin`` metres beyond
  the nearest road edge (:func:`mad_sim.world.road_distance.road_edge_distance`,
  positive = off the road; without road edges the lanes' corridors bound the
  road); never set on maps with neither road edges nor lanes.
- ``progress``: metres gained this step along the route
  (:class:`mad_sim.envs.route.Route`, the ego's logged path), counted only up
  to the route's goal (driving past the end of the log earns nothing);
  ``route_progress`` is the total since reset, ``route_length`` the metres
  from the start to the goal, ``route_completed`` True on the step the goal
  is reached (a terminal success when ``terminate_on_route_completion``).
- ``speed_limit``: m/s along the route at the ego's projection (lane limits,
  else ``default_speed_limit`` or the logged ego's top speed if higher); ``overspeed``: ``max(0, speed - speed_limit)`` m/s.
- ``ttc``: seconds to collision with the nearest agent ahead in the ego's
  corridor at the present closing speed (inf when none is closing, see :func:`time_to_collision`).
- ``jerk``: ``(a_t - a_{t-1}) / dt`` in m/s^3; ``accel``, ``curvature``,
  ``speed`` as applied.
- ``log_divergence``: metres between the ego and its logged position at the
  same step (NaN where the log is invalid, counted as 0 in the reward; in
  ``info`` it is then ``None``, so equal episodes give equal infos).

Reward = ``sum(weight[name] * value(name))`` over :data:`REWARD_TERMS`
(each value per step; the table gives the default weights)::

    name              value (per step)                         unit     weight
    progress          progress                                 m        0.1
    route_completion  route_completed                          0/1      10.0
    collision         collision_at_fault                       0/1      -10.0
    offroad           offroad                                  0/1      -10.0
    overspeed         overspeed                                m/s      -0.05
    ttc               max(0, 1 - ttc / TTC_THRESHOLD_S)        [0, 1]   0.0
    jerk              |jerk|                                   m/s^3    0.0
    log_divergence    log_divergence (NaN -> 0)                m        0.0

``reward_weights`` (an env config key) maps term names to weights; the
names it leaves out keep their defaults, 0 switches a term off, and an
unknown name is a :class:`~mad_sim.errors.ConfigError`.  ``info["reward_terms"]``
holds every term's value (unweighted) each step.  A new term is one
:func:`register_reward_term` call: a :class:`RewardTerm` reading a metric field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional

import numpy as np

from mad_sim.data.scenario import MapKind, RoadMap
from mad_sim.errors import ConfigError

STANDING_SPEED = 0.1
"""m/s below which a collision is never the ego's fault."""
TTC_THRESHOLD_S = 3.0
"""Seconds below which the ``ttc`` term is non-zero (it grows linearly to 1 at a TTC of 0)."""


@dataclass
class StepMetrics:
    """One step's metrics (see the module docstring for units)."""

    collision: bool
    offroad: bool
    progress: float
    route_progress: float
    route_lateral: float
    route_heading_error: float
    speed: float
    accel: float
    jerk: float
    curvature: float
    log_divergence: float
    route_length: float = 0.0
    route_completed: bool = False
    speed_limit: float = float("inf")
    overspeed: float = 0.0
    ttc: float = float("inf")
    collision_at_fault: bool = False

    def as_info(self) -> Dict[str, object]:
        d: Dict[str, object] = dict(self.__dict__)
        for k in ("collision", "collision_at_fault", "offroad", "route_completed"):
            d[k] = bool(d[k])
        if not np.isfinite(self.log_divergence):
            d["log_divergence"] = None
        return d


METRIC_FIELDS = tuple(f.name for f in dataclasses.fields(StepMetrics))


@dataclass(frozen=True)
class RewardTerm:
    """A named reward term: ``value(metrics)`` (per step, in ``unit``) times its weight.

    ``metric`` names the :class:`StepMetrics` field the term reads (checked when registered).
    """

    metric: str
    value: Callable[[StepMetrics], float]
    unit: str
    weight: float


def _finite_or_zero(x: float) -> float:
    return float(x) if np.isfinite(x) else 0.0


REWARD_TERMS: Dict[str, RewardTerm] = {}


def register_reward_term(name: str, term: RewardTerm, *, overwrite: bool = False) -> None:
    """Add a term (its weight is the default; ``reward_weights`` can then set it by name)."""
    if term.metric not in METRIC_FIELDS:
        raise ConfigError(f"reward term {name!r} reads {term.metric!r}, not a metric (known: {', '.join(METRIC_FIELDS)})")
    if name in REWARD_TERMS and not overwrite:
        raise ConfigError(f"reward term {name!r} is already registered")
    REWARD_TERMS[name] = term


for _name, _term in {
    "progress": RewardTerm("progress", lambda m: m.progress, "m", 0.1),
    "route_completion": RewardTerm("route_completed", lambda m: float(m.route_completed), "0/1", 10.0),
    "collision": RewardTerm("collision_at_fault", lambda m: float(m.collision_at_fault), "0/1", -10.0),
    "offroad": RewardTerm("offroad", lambda m: float(m.offroad), "0/1", -10.0),
    "overspeed": RewardTerm("overspeed", lambda m: m.overspeed, "m/s", -0.05),
    "ttc": RewardTerm("ttc", lambda m: max(0.0, 1.0 - m.ttc / TTC_THRESHOLD_S), "[0, 1]", 0.0),
    "jerk": RewardTerm("jerk", lambda m: abs(m.jerk), "m/s^3", 0.0),
    "log_divergence": RewardTerm("log_divergence", lambda m: _finite_or_zero(m.log_divergence), "m", 0.0),
}.items():
    register_reward_term(_name, _term)


def reward_weights(overrides: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
    """The default weight of every term with ``overrides`` applied (ConfigError on unknown names / non-numbers)."""
    weights = {name: t.weight for name, t in REWARD_TERMS.items()}
    for name, w in dict(overrides or {}).items():
        if name not in REWARD_TERMS:
            raise ConfigError(f"key 'reward_weights': unknown term {name!r} (known: {', '.join(sorted(REWARD_TERMS))})")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w):
            raise ConfigError(f"key 'reward_weights': weight of {name!r} must be a finite number, got {w!r}")
        weights[name] = float(w)
    return weights


class LinearReward:
    """``reward(m) = sum(w[name] * term(m))`` over the terms with a non-zero weight."""

    def __init__(self, overrides: Optional[Mapping[str, float]] = None) -> None:
        self.weights = reward_weights(overrides)
        self._active = [(REWARD_TERMS[n].value, w) for n, w in self.weights.items() if w != 0.0]

    def terms(self, m: StepMetrics) -> Dict[str, float]:
        """Every term's unweighted value."""
        return {n: float(REWARD_TERMS[n].value(m)) for n in self.weights}

    def __call__(self, m: StepMetrics) -> float:
        return float(sum(w * f(m) for f, w in self._active))


def has_road_edges(roadmap: RoadMap) -> bool:
    """Whether offroad can be judged: the map has road edges or lanes (their corridors then bound the road)."""
    return bool(np.any((roadmap.kinds == MapKind.ROAD_EDGE) | (roadmap.kinds == MapKind.LANE)))


def ego_overlaps(xy: np.ndarray, heading: np.ndarray, size: np.ndarray, valid: np.ndarray, ego: int) -> np.ndarray:
    """Indices of the valid agents whose box overlaps agent ``ego``'s (``xy[N,2]``, ``size[N,>=2]`` length, width).

    Only agents within the sum of the two half-diagonals are passed to the exact test.
    """
    from mad_sim.world.geometry import overlap_matrix

    half_diag = 0.5 * np.hypot(size[:, 0], size[:, 1])
    near = valid & (((xy - xy[ego]) ** 2).sum(-1) <= (half_diag + half_diag[ego]) ** 2)
    near[ego] = False
    idx = np.flatnonzero(near)
    if idx.size == 0:
        return idx
    sel = np.r_[ego, idx]
    m = overlap_matrix(
        xy[sel], heading[sel], size[sel, 0].astype(np.float64), size[sel, 1].astype(np.float64), np.ones(sel.size, bool)
    )
    return idx[np.asarray(m)[0, 1:]]


def ego_collides(xy: np.ndarray, heading: np.ndarray, size: np.ndarray, valid: np.ndarray, ego: int) -> bool:
    """Whether agent ``ego``'s box overlaps any other valid box (see :func:`ego_overlaps`)."""
    return bool(ego_overlaps(xy, heading, size, valid, ego).size)


def collision_at_fault(xy: np.ndarray, heading: np.ndarray, hits: np.ndarray, ego: int, ego_speed: float) -> bool:
    """Whether the overlaps ``hits`` (agent indices) are the ego's fault: it moves and one of them is not behind it."""
    if hits.size == 0 or abs(ego_speed) < STANDING_SPEED:
        return False
    d = xy[hits] - xy[ego]
    ahead = np.cos(heading[ego]) * d[:, 0] + np.sin(heading[ego]) * d[:, 1]
    return bool((ahead >= 0).any())


def time_to_collision(
    xy: np.ndarray,
    heading: np.ndarray,
    velocity: np.ndarray,
    size: np.ndarray,
    valid: np.ndarray,
    ego: int,
    ego_speed: float,
    margin: float = 0.5,
    horizon_m: float = 60.0,
) -> float:
    """Seconds until the ego's front meets the nearest agent ahead at the present closing speed.

    In the ego frame (x along its heading): agents within ``horizon_m`` of the ego with ``x > 0`` and
    ``|y| <= (w_ego + w_other) / 2 + margin`` are in the corridor; the gap is
    ``x - (l_ego + l_other) / 2`` (0 if negative) and the closing speed
    ``ego_speed - v_other . heading``.  Returns inf when no agent in the corridor is closing.
    """
    d = xy - xy[ego]
    near = np.flatnonzero(valid & ((d * d).sum(-1) < horizon_m * horizon_m))  # the few agents within reach
    near = near[near != ego]
    if near.size == 0:
        return float("inf")
    c, s = np.cos(heading[ego]), np.sin(heading[ego])
    dn = d[near]
    x = c * dn[:, 0] + s * dn[:, 1]
    y = -s * dn[:, 0] + c * dn[:, 1]
    sz = size[near]
    cand = (x > 0) & (np.abs(y) <= 0.5 * (sz[:, 1] + size[ego, 1]) + margin)
    if not cand.any():
        return float("inf")
    gap = np.maximum(x[cand] - 0.5 * (sz[cand, 0] + size[ego, 0]), 0.0)
    v = velocity[near[cand]]
    closing = ego_speed - (c * v[:, 0] + s * v[:, 1])
    ttc = np.where(closing > 1e-6, gap / np.maximum(closing, 1e-6), np.inf)
    return float(ttc.min())
