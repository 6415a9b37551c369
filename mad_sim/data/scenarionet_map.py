"""ScenarioNet / MetaDrive ``map_features`` and ``dynamic_map_states`` -> RoadMap, TrafficLights.

Used by :mod:`mad_sim.data.scenarionet`; the variants it meets (told apart by
their content) are:

Map feature types, and the :class:`MapKind` each becomes:

=================================================  ===========================================
``LANE_SURFACE_STREET`` / ``_FREEWAY`` /            LANE (:class:`LaneType` by suffix, unknown
``_BIKE_LANE`` / other ``LANE_*``                   suffixes UNDEFINED)
``ROAD_LINE_*``, ``UNKNOWN_LINE``                   ROAD_LINE (:class:`RoadLineType` by suffix)
``ROAD_EDGE_BOUNDARY`` / ``_MEDIAN`` / other        ROAD_EDGE (BOUNDARY / MEDIAN / UNKNOWN)
a ``ROAD_LINE_*`` whose id starts ``boundary_``     ROAD_EDGE BOUNDARY: ScenarioNet's nuScenes
                                                    converter stores the drivable area's outline
                                                    this way (its only road edges)
``STOP_SIGN``, ``stop_sign`` (MetaDrive <= 0.2)     STOP_SIGN (``position``/``pos``, ``lane``/``lanes``)
``CROSSWALK``, ``CROSS_WALK`` (MetaDrive 0.3),      CROSSWALK
``{"sign": "cross_walk"}`` (MetaDrive <= 0.2)
``SPEED_BUMP``; a feature whose ``type`` is the     SPEED_BUMP (MetaDrive <= 0.2's converter set
feature dict itself                                 ``speed_bump["type"] = speed_bump``)
``DRIVEWAY``                                        DRIVEWAY
anything else                                       skipped with a warning
=================================================  ===========================================

Geometry is ``polyline`` or ``polygon`` (either key, whichever the feature has;
lanes, lines and edges prefer ``polyline``), ``[K, 2]`` or ``[K, 3]`` metres,
arrays or lists of tuples.  ``[K, 2]`` gets z = 0.  nuScenes lane centrelines
are ``[K, 3]`` poses ``(x, y, yaw)``: a lane whose third column follows its own
segment directions is read as such and gets z = 0.  Lane speed limits come from
``speed_limit_mph``, else ``speed_limit_kmh`` (converted).  Lane-graph lists
hold ids, or dicts with ``feature_id`` (ScenarioNet) or ``id`` (MetaDrive <= 0.2);
``entry``/``exit`` are the old names of ``entry_lanes``/``exit_lanes``.

Traffic lights (``dynamic_map_states``):

* ScenarioNet: ``{id: {"lane": id, "stop_point": [3], "state": {"object_state":
  [T] of "LANE_STATE_..." or None}}}``; None is "not observed".
* MetaDrive 0.3: ``{id: {"state": {"object_state": [T] int (WOMD enum),
  "lane": [T] int, "stop_point": [T, 3]}}}``; a step where state, lane and stop
  point are all 0 is "not observed" (the converter's fill value).
* MetaDrive <= 0.2: a list, per step, of ``{lane id: {"state": int,
  "stop_point": [3]}}`` (possibly nested one list deeper); empty lists and dicts
  mean no lights.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mad_sim.data.scenario import (
    LaneInfo,
    LaneType,
    MapKind,
    RoadEdgeType,
    RoadLineType,
    RoadMap,
    SignalState,
    TrafficLights,
)
from mad_sim.errors import SchemaError

log = logging.getLogger(__name__)

KMH_PER_MPH = 1.609344


def int_ids(keys: list[Any]) -> np.ndarray:
    """Integer ids for ScenarioNet's keys: the number itself when all are numeric, else the position."""
    try:
        return np.asarray([int(k) for k in keys], np.int64)
    except (TypeError, ValueError):
        return np.arange(len(keys), dtype=np.int64)


def map_kind(type_name: str, key: str = "") -> tuple[MapKind, int] | None:
    """(kind, subtype) for a ScenarioNet / MetaDrive map type string, None if unknown."""
    name = type_name.upper()
    if name.startswith("LANE_"):
        sub = name[5:]
        return MapKind.LANE, int(LaneType[sub]) if sub in LaneType.__members__ else int(LaneType.UNDEFINED)
    if name.startswith("ROAD_LINE_") or name == "UNKNOWN_LINE":
        if key.startswith("boundary_"):
            return MapKind.ROAD_EDGE, int(RoadEdgeType.BOUNDARY)
        sub = name[10:]
        return MapKind.ROAD_LINE, int(RoadLineType[sub]) if sub in RoadLineType.__members__ else 0
    if name.startswith("ROAD_EDGE_"):
        sub = name[10:]
        return MapKind.ROAD_EDGE, int(RoadEdgeType[sub]) if sub in RoadEdgeType.__members__ else 0
    name = {"CROSS_WALK": "CROSSWALK"}.get(name, name)
    if name in MapKind.__members__:
        return MapKind[name], 0
    return None


def _feature_kind(source: str, key: str, feature: Any) -> tuple[MapKind, int] | None:
    where = f"map_features.{key}"
    if not isinstance(feature, dict):
        raise SchemaError(f"expected a dict, found {type(feature).__name__}", path=source, record=0, field=where)
    type_name = feature.get("type")
    if type_name is feature:  # MetaDrive <= 0.2 wrote speed_bump["type"] = speed_bump
        return MapKind.SPEED_BUMP, 0
    if type_name is None and str(feature.get("sign", "")).lower() == "cross_walk":  # MetaDrive <= 0.2 crosswalks
        return MapKind.CROSSWALK, 0
    if "type" not in feature:
        raise SchemaError("missing key", path=source, record=0, field=f"{where}.type")
    parsed = map_kind(str(type_name), key)
    if parsed is None:
        log.warning("%s: map feature %s of type %r is not a WOMD map feature, skipped", source, key, type_name)
    return parsed


def _points(source: str, feature: dict[str, Any], names: tuple[str, str], where: str) -> np.ndarray:
    name = names[0] if names[0] in feature else names[1]
    if name not in feature:
        raise SchemaError("missing key", path=source, record=0, field=f"{where}.{names[0]}")
    try:
        pts = np.asarray(feature[name], np.float64)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"not numeric ({exc})", path=source, record=0, field=f"{where}.{name}") from None
    if pts.ndim != 2 or pts.shape[1] not in (2, 3):
        raise SchemaError(f"shape {pts.shape}, expected [K, 3]", path=source, record=0, field=f"{where}.{name}")
    if pts.shape[1] == 2:
        pts = np.concatenate([pts, np.zeros((len(pts), 1))], 1)
    return pts


def _is_yaw_column(pts: np.ndarray) -> bool:
    """True when ``pts[:, 2]`` is the heading of the polyline (nuScenes lane poses), not a height."""
    if len(pts) < 2 or np.abs(pts[:, 2]).max() > np.pi + 1e-3:
        return False
    seg = np.diff(pts[:, :2], axis=0)
    keep = np.hypot(seg[:, 0], seg[:, 1]) > 1e-3
    if not keep.any():
        return False
    err = np.angle(np.exp(1j * (np.arctan2(seg[keep, 1], seg[keep, 0]) - pts[:-1][keep, 2])))
    return bool(np.median(np.abs(err)) < 0.1)


def _id_list(values: Any, id_of: dict[str, int]) -> list[int]:
    out = []
    for v in values if isinstance(values, (list, tuple, np.ndarray)) else []:
        key = str(v.get("feature_id", v.get("id")) if isinstance(v, dict) else v)
        if key in id_of:
            out.append(id_of[key])
    return out


def _lane_info(feature: dict[str, Any], id_of: dict[str, int]) -> LaneInfo:
    mph = feature.get("speed_limit_mph")
    if mph is None and feature.get("speed_limit_kmh") is not None:
        mph = float(feature["speed_limit_kmh"]) / KMH_PER_MPH
    return LaneInfo(
        speed_limit_mph=float(mph or 0.0),
        interpolating=bool(feature.get("interpolating", False)),
        entry_lanes=_id_list(feature.get("entry_lanes", feature.get("entry")), id_of),
        exit_lanes=_id_list(feature.get("exit_lanes", feature.get("exit")), id_of),
        left_neighbors=_id_list(feature.get("left_neighbor"), id_of),
        right_neighbors=_id_list(feature.get("right_neighbor"), id_of),
    )


def roadmap_from_scenarionet(source: str, features: dict[Any, Any]) -> RoadMap:
    """The :class:`RoadMap` of a ``map_features`` dict (see the module docstring for the variants)."""
    if not isinstance(features, dict):
        raise SchemaError(f"expected a dict, found {type(features).__name__}", path=source, record=0, field="map_features")
    keys = [str(k) for k in features]
    fids = int_ids(keys)
    id_of = dict(zip(keys, fids.tolist()))
    ids, kinds, subtypes, lengths, chunks = [], [], [], [], []
    lanes: dict[int, LaneInfo] = {}
    stops: dict[int, list[int]] = {}
    for key, fid, feature in zip(keys, fids.tolist(), features.values()):
        where = f"map_features.{key}"
        parsed = _feature_kind(source, key, feature)
        if parsed is None:
            continue
        kind, sub = parsed
        if kind is MapKind.STOP_SIGN:
            name = "position" if "position" in feature or "pos" not in feature else "pos"
            if name not in feature:
                raise SchemaError("missing key", path=source, record=0, field=f"{where}.position")
            pts = np.asarray(feature[name], np.float64).reshape(-1)
            if pts.size not in (2, 3):
                raise SchemaError("expected a 2- or 3-vector", path=source, record=0, field=f"{where}.{name}")
            pts = np.concatenate([pts, np.zeros(3 - pts.size)])[None]
            stops[fid] = _id_list(feature.get("lane", feature.get("lanes", [])), id_of)
        elif kind in (MapKind.LANE, MapKind.ROAD_LINE, MapKind.ROAD_EDGE):
            pts = _points(source, feature, ("polyline", "polygon"), where)
            if kind is MapKind.LANE and _is_yaw_column(pts):
                pts[:, 2] = 0.0
        else:
            pts = _points(source, feature, ("polygon", "polyline"), where)
        if kind is MapKind.LANE:
            lanes[fid] = _lane_info(feature, id_of)
        ids.append(fid)
        kinds.append(int(kind))
        subtypes.append(sub)
        lengths.append(len(pts))
        chunks.append(pts)
    offsets = np.zeros(len(ids) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return RoadMap(
        ids=np.asarray(ids, np.int64),
        kinds=np.asarray(kinds, np.int8),
        subtypes=np.asarray(subtypes, np.int8),
        offsets=offsets,
        points=np.concatenate(chunks) if chunks else np.zeros((0, 3)),
        lanes=lanes,
        stop_sign_lanes=stops,
    )


def _signal(value: Any) -> tuple[int, bool]:
    """(SignalState, observed) of one step's state: a "LANE_STATE_*" string, a WOMD enum int, or None."""
    if value is None:
        return 0, False
    if isinstance(value, str):
        name = value.removeprefix("LANE_STATE_")
        return (int(SignalState[name]) if name in SignalState.__members__ else 0), True
    code = int(value)
    return (code if code in SignalState._value2member_map_ else 0), code != 0


def _lane_id(source: str, value: Any, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SchemaError(f"lane id {value!r} is not an integer", path=source, record=0, field=field) from None


def _lights_from_dict(source: str, states: dict[Any, Any], num_steps: int) -> TrafficLights:
    n = len(states)
    tl = TrafficLights(
        lane_ids=np.zeros((num_steps, n), np.int64),
        states=np.zeros((num_steps, n), np.int8),
        stop_points=np.zeros((num_steps, n, 3)),
        valid=np.zeros((num_steps, n), bool),
    )
    for k, (key, light) in enumerate(states.items()):
        where = f"dynamic_map_states.{key}"
        if not isinstance(light, dict) or not isinstance(light.get("state"), dict):
            raise SchemaError("missing key", path=source, record=0, field=f"{where}.state")
        state = light["state"]
        if "object_state" not in state:
            raise SchemaError("missing key", path=source, record=0, field=f"{where}.state.object_state")
        seq = state["object_state"]
        if len(seq) != num_steps:
            raise SchemaError(
                f"{len(seq)} states for {num_steps} steps", path=source, record=0, field=f"{where}.state.object_state"
            )
        coded = [_signal(s) for s in seq]
        tl.states[:, k] = [c for c, _ in coded]
        observed = np.array([o for _, o in coded], bool)
        lane = light.get("lane", state.get("lane", key))
        stop = np.asarray(light.get("stop_point", state.get("stop_point", np.zeros(3))), np.float64)
        if np.ndim(lane) == 1 and len(lane) == num_steps:  # MetaDrive 0.3: per-step lane ids, 0 where not observed
            lanes = np.asarray(lane, np.int64)
            tl.lane_ids[:, k] = _lane_id(source, lanes[lanes != 0][0] if (lanes != 0).any() else key, f"{where}.state.lane")
            observed |= lanes != 0
        else:
            tl.lane_ids[:, k] = _lane_id(source, lane, f"{where}.lane")
        if stop.shape == (num_steps, 3):
            tl.stop_points[:, k] = stop
            observed |= (stop != 0).any(1)
        else:
            tl.stop_points[:, k, : min(stop.size, 3)] = stop.reshape(-1)[:3]
        tl.valid[:, k] = observed
    return tl


def _lights_from_steps(source: str, steps: list[Any], num_steps: int) -> TrafficLights:
    while len(steps) == 1 and isinstance(steps[0], list):  # seen as [[{}]]
        steps = steps[0]
    if not any(steps):
        return TrafficLights.empty(num_steps)
    if len(steps) != num_steps or not all(isinstance(s, dict) for s in steps):
        raise SchemaError(
            f"{len(steps)} per-step entries for {num_steps} steps", path=source, record=0, field="dynamic_map_states"
        )
    lanes = sorted({int(k) for s in steps for k in s})
    slot = {lane: i for i, lane in enumerate(lanes)}
    tl = TrafficLights(
        lane_ids=np.tile(np.asarray(lanes, np.int64), (num_steps, 1)),
        states=np.zeros((num_steps, len(lanes)), np.int8),
        stop_points=np.zeros((num_steps, len(lanes), 3)),
        valid=np.zeros((num_steps, len(lanes)), bool),
    )
    for t, step in enumerate(steps):
        for lane, entry in step.items():
            k = slot[int(lane)]
            code, _ = _signal(entry.get("state") if isinstance(entry, dict) else entry)
            tl.states[t, k], tl.valid[t, k] = code, True
            stop = np.asarray(entry.get("stop_point", np.zeros(3)) if isinstance(entry, dict) else np.zeros(3), np.float64)
            tl.stop_points[t, k, : min(stop.size, 3)] = stop.reshape(-1)[:3]
    return tl


def traffic_lights_from_scenarionet(source: str, states: Any, num_steps: int) -> TrafficLights:
    """The :class:`TrafficLights` ``[T, L]`` of ``dynamic_map_states`` (any of the three forms)."""
    if isinstance(states, dict):
        return _lights_from_dict(source, states, num_steps)
    if isinstance(states, list):
        return _lights_from_steps(source, states, num_steps)
    if states is None:
        return TrafficLights.empty(num_steps)
    raise SchemaError(
        f"expected a dict or list, found {type(states).__name__}", path=source, record=0, field="dynamic_map_states"
    )
