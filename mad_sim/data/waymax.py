"""Waymax ``SimulatorState`` -> :class:`~mad_sim.data.scenario.Scenario`, without waymax or jax.

Two ways in:

* :func:`load_waymax` reads a pickled state (``corpus/waymax/*.pkl``) through
  the allow-list unpickler of :mod:`.waymax_pickle`;
* :func:`scenario_from_waymax` converts a state already in memory: a real
  ``waymax.datatypes.SimulatorState`` (jax arrays) or anything with the same
  attributes (numpy arrays, ``SimpleNamespace``...), duck-typed.

What is read (field names and enums from waymax/datatypes/*.py; shapes are
Waymax's, ``N`` objects, ``T`` steps, ``L`` light slots, ``P`` points; a
leading batch dimension of size 1 is squeezed, larger batches are refused):

* ``log_trajectory``: ``x, y, z, vel_x, vel_y, yaw, length, width, height,
  valid, timestamp_micros`` [N, T] (metres, m/s, radians CCW from +x, world
  frame).  ``sim_trajectory`` (the simulator's own rollout) is ignored: a
  Scenario is the log.
* ``object_metadata``: ``ids``, ``object_types`` (``ObjectTypeIds``: 0 unset,
  1 vehicle, 2 pedestrian, 3 cyclist, 4 other, the WOMD values of
  :class:`ObjectType`; anything else reads as OTHER), ``is_sdc``,
  ``is_modeled`` (WOMD's tracks to predict), ``objects_of_interest`` [N].
* ``roadgraph_points``: ``x, y, z, types, ids, valid`` [P].
* ``log_traffic_light``: ``x, y, z, state, lane_ids, valid`` [L, T].
* ``timestep``: the last step the simulator has executed.

Rules:

* **Tracks**: Waymax pads to a fixed object count with slots that are never
  valid (type -1, positions -1): those are dropped, so ``N`` is the number of
  real objects.  At invalid steps of kept tracks, position, heading and
  velocity are set to 0 and the size to the track's size at its first valid
  step (Waymax stores -1 sentinels there).  Headings are wrapped to [-pi, pi).
* ``sdc_index``: the one kept object with ``is_sdc`` (SchemaError when there
  is none or more than one); ``tracks_to_predict``: the ``is_modeled``
  objects (difficulty 0: Waymax does not keep it); ``objects_of_interest``:
  the ids of the flagged objects; ``track_ids``: ``object_metadata.ids``.
* ``timestamps`` [T]: per step, the ``timestamp_micros`` of the valid objects
  (steps without any valid object are interpolated), in seconds relative to
  the first step.
* ``current_index``: the state's ``timestep`` when it is >= 1 (a state the
  Waymax env has reset or stepped: ``env.reset`` with the default
  ``init_steps=11`` leaves it at 10).  A state straight from the Waymax
  dataloader has ``timestep`` 0 (every corpus file does) and gets WOMD's
  present step, :data:`WOMD_CURRENT_INDEX` (10), or ``T - 1`` for a shorter
  log.  Pass ``current_index`` to choose.
* **Roadgraph**: valid points grouped by ``ids`` into one feature each, in
  the order the ids first appear, points in their stored order.  The kind and
  subtype come from the feature's first point's ``types``
  (``MapElementIds``): 0-3 lanes (:class:`LaneType` undefined, freeway,
  surface street, bike lane), 5-13 road lines (:class:`RoadLineType` =
  type - 5: unknown, broken single white ... passing double yellow), 14-16
  road edges (:class:`RoadEdgeType` = type - 14: unknown, boundary, median),
  17 stop sign (kept as one point, the first), 18 crosswalk, 19 speed bump,
  20 driveway (a later WOMD type, not in Waymax's enum; polygons as stored:
  WOMD's corners, not closed).  Points of any other type (Waymax's -1
  ``UNKNOWN``, the unused 4, > 20) are skipped and counted in the log.
  Waymax keeps at most ``max_num_rg_points`` points (20000 in the corpus),
  so a map may end in a cut feature, and some traffic-light lanes may have
  no lane feature.  No lane graph (entry/exit lanes) is stored by Waymax:
  ``RoadMap.lanes`` is empty.
* **Traffic lights**: Waymax's [L, T] slots become ``TrafficLights`` [T, L']
  over the L' slots valid at some step (a slot may hold different lanes at
  different steps, as in WOMD); ``states`` are Waymax's
  ``TrafficLightStates``, the same numbers as :class:`SignalState`;
  ``stop_points`` are the ``x, y, z``.  Invalid entries are zeros.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import numpy as np

from mad_sim.data.scenario import (
    MapKind,
    ObjectType,
    RoadMap,
    Scenario,
    SignalState,
    TrafficLights,
    Trajectory,
)
from mad_sim.data.tfrecord import PathLike
from mad_sim.data.waymax_pickle import WaymaxRecord, is_waymax_pickle, load_waymax_state
from mad_sim.errors import SchemaError

log = logging.getLogger(__name__)

__all__ = ["WOMD_CURRENT_INDEX", "is_waymax_pickle", "load_waymax", "map_element_kinds", "scenario_from_waymax"]

WOMD_CURRENT_INDEX = 10
"""The present step of a WOMD log (1.0 s of history at 10 Hz), used when the state's timestep is 0."""


def map_element_kinds() -> np.ndarray:
    """[21, 2] int: ``(MapKind, subtype)`` for each Waymax ``MapElementIds`` value 0..20, ``(0, 0)`` if unknown."""
    table = np.zeros((21, 2), np.int64)
    for t in range(4):
        table[t] = (MapKind.LANE, t)
    for t in range(5, 14):
        table[t] = (MapKind.ROAD_LINE, t - 5)
    for t in range(14, 17):
        table[t] = (MapKind.ROAD_EDGE, t - 14)
    table[17:21, 0] = (MapKind.STOP_SIGN, MapKind.CROSSWALK, MapKind.SPEED_BUMP, MapKind.DRIVEWAY)
    return table


_KINDS = map_element_kinds()


class _Reader:
    """Fetches a state's attributes as numpy arrays; SchemaError names the source and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, message: str, field: str) -> SchemaError:
        return SchemaError(message, path=self.source, record=0, field=field)

    def part(self, obj: Any, name: str, where: str = "") -> Any:
        field = f"{where}.{name}" if where else name
        if isinstance(obj, dict):
            if name not in obj:
                raise self.fail("missing", field)
            return obj[name]
        if not hasattr(obj, name):
            raise self.fail(f"missing (a {type(obj).__name__} has no such attribute)", field)
        return getattr(obj, name)

    def array(self, obj: Any, name: str, where: str, ndim: int, dtype: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """``obj.name`` as an ``ndim``-D array of ``dtype`` (leading unit batch dims squeezed), optionally of ``shape``."""
        field = f"{where}.{name}"
        try:
            arr = np.asarray(self.part(obj, name, where))
        except (TypeError, ValueError) as exc:
            raise self.fail(f"not an array ({exc})", field) from None
        while arr.ndim > ndim and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != ndim:
            raise self.fail(f"shape {arr.shape}: expected {ndim} dimensions (one unbatched scenario)", field)
        if shape is not None and arr.shape != shape:
            raise self.fail(f"shape {arr.shape}, expected {shape}", field)
        if arr.dtype.kind not in "biuf":
            raise self.fail(f"dtype {arr.dtype} is not numeric", field)
        return arr.astype(dtype, copy=False)


def _timestamps(micros: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[T] seconds from the first step, from [N, T] per-object microseconds (only valid entries count)."""
    t = valid.shape[1]
    stamp = np.where(valid, micros, np.iinfo(np.int64).min).max(0)
    have = valid.any(0)
    steps = np.arange(t, dtype=np.float64)
    if not have.any():
        return steps * 0.1
    known = np.flatnonzero(have)
    sec = stamp[known].astype(np.float64) * 1e-6
    if len(known) == 1:
        out = sec[0] + (steps - known[0]) * 0.1
    else:
        out = np.interp(steps, known, sec)
        lo, hi = known[0], known[-1]  # np.interp holds the ends flat: extend at 10 Hz instead
        out[:lo] = sec[0] + (steps[:lo] - lo) * 0.1
        out[hi + 1 :] = sec[-1] + (steps[hi + 1 :] - hi) * 0.1
    return out - out[0]


def _tracks(rd: _Reader, state: Any) -> tuple[Trajectory, np.ndarray, np.ndarray, np.ndarray]:
    """(trajectory [N', T] of the real objects, kept mask [N], timestamps [T], int64 micros [N, T])."""
    traj = rd.part(state, "log_trajectory")
    w = "log_trajectory"
    valid = rd.array(traj, "valid", w, 2, bool)
    shape = valid.shape
    f = {
        k: rd.array(traj, k, w, 2, np.float64, shape)
        for k in ("x", "y", "z", "vel_x", "vel_y", "yaw", "length", "width", "height")
    }
    micros = rd.array(traj, "timestamp_micros", w, 2, np.int64, shape)
    keep = np.asarray(valid.any(1))
    v = valid[keep]
    xyz = np.stack([f["x"], f["y"], f["z"]], -1)[keep]
    vel = np.stack([f["vel_x"], f["vel_y"]], -1)[keep]
    heading = (f["yaw"][keep] + np.pi) % (2 * np.pi) - np.pi
    size = np.stack([f["length"], f["width"], f["height"]], -1)[keep]
    first = np.argmax(v, 1)
    size = np.where(v[..., None], size, size[np.arange(len(size)), first][:, None, :]).astype(np.float32)
    xyz[~v] = 0.0
    vel[~v] = 0.0
    heading[~v] = 0.0
    return (Trajectory(xyz=xyz, heading=heading, velocity=vel, size=size, valid=v), keep, _timestamps(micros, valid), micros)


def _metadata(rd: _Reader, state: Any, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """(track ids [N'], ObjectType [N'], sdc index, tracks to predict [K], objects of interest ids [J])."""
    meta = rd.part(state, "object_metadata")
    w = "object_metadata"
    n = (keep.shape[0],)
    ids = rd.array(meta, "ids", w, 1, np.int64, n)[keep]
    raw = rd.array(meta, "object_types", w, 1, np.int64, n)[keep]
    types = np.where(np.isin(raw, [int(t) for t in ObjectType]), raw, int(ObjectType.OTHER)).astype(np.int8)
    is_sdc = rd.array(meta, "is_sdc", w, 1, bool, n)
    sdc = np.flatnonzero(is_sdc[keep])
    if len(sdc) != 1:
        lost = " (the SDC's track is never valid)" if len(sdc) == 0 and is_sdc.any() else ""
        raise rd.fail(f"{len(sdc)} valid objects are flagged as the SDC, expected 1{lost}", f"{w}.is_sdc")
    modeled = rd.array(meta, "is_modeled", w, 1, bool, n)[keep] if _has(meta, "is_modeled") else np.zeros(len(ids), bool)
    interest = (
        rd.array(meta, "objects_of_interest", w, 1, bool, n)[keep]
        if _has(meta, "objects_of_interest")
        else np.zeros(len(ids), bool)
    )
    return ids, types, int(sdc[0]), np.flatnonzero(modeled).astype(np.int64), ids[interest]


def _has(obj: Any, name: str) -> bool:
    value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return value is not None


def _roadmap(rd: _Reader, state: Any) -> RoadMap:
    """The typed polylines of ``roadgraph_points`` (rules in the module docstring)."""
    rg = rd.part(state, "roadgraph_points")
    if rg is None:
        return RoadMap.empty()
    w = "roadgraph_points"
    valid = rd.array(rg, "valid", w, 1, bool)
    p = valid.shape
    xyz = np.stack([rd.array(rg, k, w, 1, np.float64, p) for k in ("x", "y", "z")], -1)
    types = rd.array(rg, "types", w, 1, np.int64, p)
    ids = rd.array(rg, "ids", w, 1, np.int64, p)
    known = (types >= 0) & (types < len(_KINDS)) & (types != 4)
    skipped = valid & ~known
    if skipped.any():
        log.info(
            "%s: %d roadgraph points of types %s (not WOMD map features) skipped",
            rd.source,
            int(skipped.sum()),
            sorted(set(types[skipped].tolist())),
        )
    use = valid & known
    if not np.isfinite(xyz[use]).all():
        raise rd.fail("non-finite coordinate at a valid point", f"{w}.x")
    fid, ftype, pts = ids[use], types[use], xyz[use]
    uniq, first, inverse = np.unique(fid, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # features in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    feature = rank[inverse.reshape(-1)]
    perm = np.argsort(feature, kind="stable")  # group points by feature, keeping their order
    feature, pts = feature[perm], pts[perm]
    kind_sub = _KINDS[ftype[first[order]]]
    counts = np.bincount(feature, minlength=len(order))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    extra_stop = (kind_sub[feature, 0] == MapKind.STOP_SIGN) & (np.arange(len(feature)) > starts[feature])
    if extra_stop.any():  # a stop sign is one position: keep its first point
        pts, feature = pts[~extra_stop], feature[~extra_stop]
        counts = np.bincount(feature, minlength=len(order))
    offsets = np.zeros(len(order) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return RoadMap(
        ids=uniq[order].astype(np.int64),
        kinds=kind_sub[:, 0].astype(np.int8),
        subtypes=kind_sub[:, 1].astype(np.int8),
        offsets=offsets,
        points=pts,
    )


def _traffic_lights(rd: _Reader, state: Any, num_steps: int) -> TrafficLights:
    """``log_traffic_light`` [L, T] -> TrafficLights [T, L'] over the slots valid at some step."""
    tl = rd.part(state, "log_traffic_light")
    if tl is None:
        return TrafficLights.empty(num_steps)
    w = "log_traffic_light"
    valid = rd.array(tl, "valid", w, 2, bool)
    if valid.shape[1] != num_steps:
        raise rd.fail(f"shape {valid.shape}: {valid.shape[1]} steps, the log has {num_steps}", f"{w}.valid")
    s = valid.shape
    used = valid.any(1)
    valid = valid[used].T
    lane = rd.array(tl, "lane_ids", w, 2, np.int64, s)[used].T
    state_ = rd.array(tl, "state", w, 2, np.int64, s)[used].T
    stop = np.stack([rd.array(tl, k, w, 2, np.float64, s)[used].T for k in ("x", "y", "z")], -1)
    known = np.isin(state_, [int(v) for v in SignalState])
    if (valid & ~known).any():
        log.info(
            "%s: traffic-light states %s are not WOMD states: read as UNKNOWN",
            rd.source,
            sorted(set(state_[valid & ~known].tolist())),
        )
    if not np.isfinite(stop[valid]).all():
        raise rd.fail("non-finite stop point at a valid entry", f"{w}.x")
    return TrafficLights(
        lane_ids=np.where(valid, lane, 0),
        states=np.where(valid & known, state_, 0).astype(np.int8),
        stop_points=np.where(valid[..., None], stop, 0.0),
        valid=valid,
    )


def _current_index(rd: _Reader, state: Any, num_steps: int, current_index: int | None) -> int:
    if current_index is None:
        step = rd.array(state, "timestep", "state", 0, np.int64) if _has(state, "timestep") else np.int64(0)
        current_index = int(step) if int(step) >= 1 else min(WOMD_CURRENT_INDEX, num_steps - 1)
    if not 0 <= current_index < num_steps:
        raise rd.fail(f"current index {current_index} outside [0, {num_steps})", "timestep")
    return int(current_index)


def scenario_from_waymax(state: Any, scenario_id: str = "", source: str = "", current_index: int | None = None) -> Scenario:
    """Convert one Waymax ``SimulatorState`` (or a duck-typed stand-in) into a :class:`Scenario`.

    Args:
      state: an object (or dict) with ``log_trajectory``, ``object_metadata``,
        ``roadgraph_points``, ``log_traffic_light`` and ``timestep`` as in
        ``waymax.datatypes``; arrays may be numpy or jax (read with ``np.asarray``).
      scenario_id: the id to give the scenario (Waymax states hold none).
      source: where the state came from, for error messages and ``Scenario.source``.
      current_index: the present step; by default from ``timestep`` (see the module docstring).

    Raises:
      SchemaError naming ``source`` and the field (``log_trajectory.x``...) for a missing,
      mis-shaped, non-numeric or non-finite field, or an SDC flag that is not on one valid object.
    """
    rd = _Reader(source or "<waymax state>")
    tracks, keep, timestamps, _micros = _tracks(rd, state)
    if tracks.num_objects == 0:
        raise rd.fail("no object is valid at any step", "log_trajectory.valid")
    track_ids, types, sdc, ttp, interest = _metadata(rd, state, keep)
    scenario = Scenario(
        scenario_id=scenario_id,
        timestamps=timestamps,
        current_index=_current_index(rd, state, tracks.num_steps, current_index),
        sdc_index=sdc,
        track_ids=track_ids,
        object_types=types,
        tracks=tracks,
        roadmap=_roadmap(rd, state),
        traffic_lights=_traffic_lights(rd, state, tracks.num_steps),
        tracks_to_predict=ttp,
        tracks_to_predict_difficulty=np.zeros(len(ttp), np.int8),
        objects_of_interest=interest.astype(np.int64),
        source=source,
    )
    try:
        scenario.validate()
    except SchemaError as exc:
        raise SchemaError(str(exc).split(": ", 1)[-1], path=rd.source, record=0, field=exc.field) from None
    return scenario


_HEX_ID = re.compile(r"([0-9a-f]{12,})$")


def scenario_id_from_path(path: PathLike) -> str:
    """The WOMD id in a file name (``waymax_scenario_1207b9e6eca7717b.pkl`` -> ``1207b9e6eca7717b``), else the stem."""
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    match = _HEX_ID.search(stem)
    return match.group(1) if match else stem


def load_waymax(path: PathLike, current_index: int | None = None) -> Scenario:
    """Read one pickled Waymax ``SimulatorState`` safely and convert it (see :func:`scenario_from_waymax`).

    Raises UnsafePickleError / TruncatedRecordError / CorruptRecordError / DataNotFoundError from
    :func:`~mad_sim.data.waymax_pickle.load_waymax_state`, SchemaError when the pickle is not a
    ``SimulatorState``.
    """
    name = os.fspath(path)
    state = load_waymax_state(name)
    if not isinstance(state, WaymaxRecord) or state.waymax_class != "SimulatorState":
        found = state.waymax_class if isinstance(state, WaymaxRecord) else type(state).__name__
        raise SchemaError(f"the pickle holds a {found}, not a Waymax SimulatorState", path=name, record=0, field="")
    return scenario_from_waymax(state, scenario_id_from_path(name), name, current_index)
