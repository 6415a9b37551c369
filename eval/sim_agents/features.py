"""The WOSAC metric features of a scenario's log and of its rollouts.

For each evaluated object (:func:`~.rollout_set.evaluated_ids`) and future
step, and for each rollout (the log is one more "rollout"):

- kinematics (:mod:`.kinematics`): linear speed / acceleration, angular speed / acceleration;
- interaction (:mod:`.interaction`): distance to the nearest object, collision, time to collision;
- map (:mod:`.map_features`): distance to the road edge, offroad, red-light violation;
- the average displacement error from the log.

A map without a road edge (no WOMD scene; some corpus formats) has no
distance to the road edge: those arrays are NaN and ``has_road_edges`` is
False, and :mod:`.likelihood` leaves the two road-edge features unscored
(Waymo's scorer stops with ``ValueError('Missing road edges.')`` there).

As in WOSAC, every trajectory is the log's history (steps ``0 .. current``,
with the log's validity) followed by the ``T`` simulated steps, which count
as valid; box sizes after the current step are the sizes at the current step.
The log's own features use the log's validity throughout.  Interaction
features are measured against every simulated object (not only the
evaluated ones).  ADE, as Waymo's code computes it, is the mean 3-D error
over the log-valid steps of the whole trajectory, history included (where
the error is zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from mad_sim.eval.sim_agents.interaction import distance_to_nearest_object, time_to_collision
from mad_sim.eval.sim_agents.kinematics import kinematic_features
from mad_sim.eval.sim_agents.map_features import distance_to_road_edge, red_light_violation
from mad_sim.eval.sim_agents.rollout_set import SimRollouts, check_rollouts, evaluated_ids

from mad_sim.data.scenario import DT, MapKind, Scenario


@dataclass
class MetricFeatures:
    """Features of ``R`` samples (1 for the log) of ``E`` evaluated objects over ``T`` future steps.

    ``object_ids [E]``, ``object_types [E]``, ``valid [E, T]`` (the log's future validity);
    per-step float arrays ``[R, E, T]``: ``linear_speed`` (m/s), ``linear_acceleration`` (m/s^2),
    ``angular_speed`` (rad/s), ``angular_acceleration`` (rad/s^2), ``distance_to_nearest_object`` (m),
    ``time_to_collision`` (s), ``distance_to_road_edge`` (m); bool ``[R, E, T]``:
    ``collision_per_step``, ``offroad_per_step``, ``traffic_light_violation_per_step``;
    ``ade [R, E]`` (m); ``has_road_edges``: False when the map has none (road-edge distances NaN).
    """

    object_ids: np.ndarray
    object_types: np.ndarray
    valid: np.ndarray
    linear_speed: np.ndarray
    linear_acceleration: np.ndarray
    angular_speed: np.ndarray
    angular_acceleration: np.ndarray
    distance_to_nearest_object: np.ndarray
    collision_per_step: np.ndarray
    time_to_collision: np.ndarray
    distance_to_road_edge: np.ndarray
    offroad_per_step: np.ndarray
    traffic_light_violation_per_step: np.ndarray
    ade: np.ndarray
    has_road_edges: bool = True


def _sample_features(
    xyz: np.ndarray,
    heading: np.ndarray,
    size: np.ndarray,
    valid: np.ndarray,
    log_xyz: np.ndarray,
    log_valid: np.ndarray,
    ev: np.ndarray,
    t0: int,
    dt: float,
) -> dict:
    """Per-scene features of one joint scene ``xyz [A, F, 3]`` (F = t0 + 1 + T) for the evaluated rows ``ev``
    (the map features are computed for all scenes at once by :func:`_map_features`)."""
    fut = slice(t0 + 1, None)
    speed, accel, wspeed, waccel = kinematic_features(xyz[ev], heading[ev], dt)
    # interaction features from the current step on (one step before the future feeds the speed's difference)
    now = slice(t0, None)
    xy, length, width = xyz[:, now, :2], size[:, now, 0].astype(np.float64), size[:, now, 1].astype(np.float64)
    dist = distance_to_nearest_object(xy, heading[:, now], length, width, valid[:, now], ev)
    ttc = time_to_collision(xy, heading[:, now], length, width, valid[:, now], ev, dt)
    err = np.linalg.norm(xyz[ev] - log_xyz[ev], axis=-1)
    lv = log_valid[ev]
    with np.errstate(invalid="ignore", divide="ignore"):
        ade = np.where(lv, err, 0.0).sum(-1) / lv.sum(-1)
    return {
        "linear_speed": speed[:, fut],
        "linear_acceleration": accel[:, fut],
        "angular_speed": wspeed[:, fut],
        "angular_acceleration": waccel[:, fut],
        "distance_to_nearest_object": dist[:, 1:],
        "time_to_collision": ttc[:, 1:],
        "ade": ade,
    }


def _map_features(scenario: Scenario, xyz: np.ndarray, heading: np.ndarray, size: np.ndarray, valid: np.ndarray, t0: int) -> dict:
    """Road-edge distance and red-light violations of scenes ``xyz [S, E, F, 3]`` over the future steps
    (road-edge distances NaN on a map without road edges)."""
    if has_road_edges(scenario):
        edge = distance_to_road_edge(
            xyz[:, :, t0 + 1 :],
            heading[:, :, t0 + 1 :],
            size[:, :, t0 + 1 :].astype(np.float64),
            valid[:, :, t0 + 1 :],
            scenario.roadmap,
        )
    else:
        edge = np.full(valid[:, :, t0 + 1 :].shape, np.nan)
    tl = red_light_violation(xyz[:, :, t0:, :2], valid[:, :, t0:], scenario.roadmap, scenario.traffic_lights, start=t0)
    return {"distance_to_road_edge": edge, "traffic_light_violation_per_step": tl[:, :, 1:]}


def has_road_edges(scenario: Scenario) -> bool:
    """Whether the map has a road-edge polyline of at least 2 points (the road-edge features need one)."""
    rm = scenario.roadmap
    n = np.diff(rm.offsets)
    return bool(((rm.kinds == int(MapKind.ROAD_EDGE)) & (n >= 2)).any())


def _stack(samples: list, maps: dict, ids: np.ndarray, types: np.ndarray, valid: np.ndarray, edges: bool) -> MetricFeatures:
    f = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
    f.update(maps)
    with np.errstate(invalid="ignore"):
        offroad = f["distance_to_road_edge"] > 0.0
    return MetricFeatures(
        object_ids=ids,
        object_types=types,
        valid=valid,
        collision_per_step=f["distance_to_nearest_object"] < 0.0,
        offroad_per_step=offroad,
        has_road_edges=edges,
        **f,
    )


def compute_features(
    scenario: Scenario, rollouts: SimRollouts, evaluated: Optional[np.ndarray] = None, dt: float = DT
) -> Tuple[MetricFeatures, MetricFeatures]:
    """``(log_features, sim_features)`` of ``rollouts`` against ``scenario`` (module docstring).

    ``evaluated``: object ids to score (default :func:`~.rollout_set.evaluated_ids`); those that are not
    sim agents are left out.  Errors: see :func:`~.rollout_set.check_rollouts`.
    """
    rows = check_rollouts(rollouts, scenario)
    t0, t = scenario.current_index, rollouts.num_steps
    f = t0 + 1 + t
    tr = scenario.tracks
    want = evaluated_ids(scenario) if evaluated is None else np.asarray(evaluated, np.int64)
    pos = {int(i): n for n, i in enumerate(rollouts.object_ids)}
    ev = np.array(sorted((pos[int(i)] for i in want if int(i) in pos), key=lambda n: int(rollouts.object_ids[n])), np.int64)
    size = np.concatenate([tr.size[rows, : t0 + 1], np.repeat(tr.size[rows, t0 : t0 + 1], t, 1)], 1)
    log_xyz, log_heading = tr.xyz[rows, :f], tr.heading[rows, :f]
    log_valid = tr.valid[rows, :f]
    sim_valid = np.concatenate([tr.valid[rows, : t0 + 1], np.ones((len(rows), t), bool)], 1)
    ids, types = rollouts.object_ids[ev].astype(np.int64), scenario.object_types[rows[ev]]
    fut_valid = log_valid[ev, t0 + 1 :]
    log_f = _stack(
        [_sample_features(log_xyz, log_heading, size, log_valid, log_xyz, log_valid, ev, t0, dt)],
        _map_features(scenario, log_xyz[None, ev], log_heading[None, ev], size[None, ev], log_valid[None, ev], t0),
        ids,
        types,
        fut_valid,
        has_road_edges(scenario),
    )
    xyz = np.concatenate(
        [np.broadcast_to(log_xyz[None, :, : t0 + 1], (rollouts.num_rollouts,) + log_xyz[:, : t0 + 1].shape), rollouts.xyz], 2
    )
    heading = np.concatenate([np.broadcast_to(log_heading[None, :, : t0 + 1], xyz.shape[:2] + (t0 + 1,)), rollouts.heading], 2)
    sims = [
        _sample_features(xyz[r], heading[r], size, sim_valid, log_xyz, log_valid, ev, t0, dt)
        for r in range(rollouts.num_rollouts)
    ]
    r = rollouts.num_rollouts
    maps = _map_features(
        scenario,
        xyz[:, ev],
        heading[:, ev],
        np.broadcast_to(size[ev], (r,) + size[ev].shape),
        np.broadcast_to(sim_valid[ev], (r,) + sim_valid[ev].shape),
        t0,
    )
    return log_f, _stack(sims, maps, ids, types, fut_valid, log_f.has_road_edges)
