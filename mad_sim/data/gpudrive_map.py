"""The map and traffic lights of GPUDrive / Nocturne scene JSON (see :mod:`mad_sim.data.gpudrive_json`).

* ``roads``: ``{geometry: [K] of {x, y[, z]}, type}``; ``type`` a map.proto
  feature name (``lane``, ``road_line``, ``road_edge``, ``stop_sign``,
  ``crosswalk``, ``speed_bump``, ``driveway``) or a Waymax ``MapElementIds``
  number; ``map_element_id`` (GPUDrive) gives the subtype: 0-3 lane types,
  5-13 road-line types, 14-16 road-edge types.  Stop signs keep their first
  point.  Unknown types are skipped with a warning.
* ``tl_states``: ``{lane id: {state: [k], x, y[, z]: [k], time_index: [k]}}``:
  step ``time_index[j]`` gets ``state[j]`` (names of :class:`SignalState`,
  case-insensitive, with or without ``lane_state_``); other steps are invalid.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mad_sim.data.json_fields import JsonFields
from mad_sim.data.scenario import MapKind, RoadMap, SignalState, TrafficLights

log = logging.getLogger(__name__)

_ROAD_KINDS = {k.proto_name: k for k in MapKind}
# Waymax MapElementIds -> (kind, subtype): 0-3 lanes, 5-13 road lines, 14-16 road edges, 17-20 the rest.
_ELEMENT_KIND = {
    **{i: (MapKind.LANE, i) for i in range(4)},
    **{i: (MapKind.ROAD_LINE, i - 5) for i in range(5, 14)},
    **{i: (MapKind.ROAD_EDGE, i - 14) for i in range(14, 17)},
    17: (MapKind.STOP_SIGN, 0),
    18: (MapKind.CROSSWALK, 0),
    19: (MapKind.SPEED_BUMP, 0),
    20: (MapKind.DRIVEWAY, 0),
}
_SUBTYPE_BASE = {MapKind.LANE: (0, 3), MapKind.ROAD_LINE: (5, 13), MapKind.ROAD_EDGE: (14, 16)}
_SIGNALS = {s.name.lower(): s for s in SignalState}


def _road_kind(ctx: JsonFields, road: dict[str, Any], where: str) -> tuple[MapKind, int] | None:
    kind_name = ctx.get(road, "type", where)
    element = road.get("map_element_id")
    element = element if isinstance(element, int) and not isinstance(element, bool) else None
    if isinstance(kind_name, str) and kind_name.lower() in _ROAD_KINDS:
        kind = _ROAD_KINDS[kind_name.lower()]
        lo, hi = _SUBTYPE_BASE.get(kind, (0, -1))
        return kind, (element - lo if element is not None and lo <= element <= hi else 0)
    if isinstance(kind_name, int) and not isinstance(kind_name, bool) and kind_name in _ELEMENT_KIND:
        return _ELEMENT_KIND[kind_name]
    log.warning("%s: %s has road type %r, not a WOMD map feature: skipped", ctx.source, where, kind_name)
    return None


def read_roads(ctx: JsonFields, obj: dict[str, Any]) -> RoadMap:
    """The ``roads`` list as a :class:`RoadMap` (types and subtypes as in the module docstring)."""
    roads = ctx.get(obj, "roads", "")
    if not isinstance(roads, list):
        raise ctx.fail(f"expected a list, found {type(roads).__name__}", "roads")
    ids: list[Any] = []
    index: list[int] = []
    kinds, subtypes, chunks = [], [], []
    for m, road in enumerate(roads):
        where = f"roads[{m}]"
        parsed = _road_kind(ctx, road, where)
        if parsed is None:
            continue
        pts = ctx.series(ctx.get(road, "geometry", where), f"{where}.geometry", 3)
        if len(pts) == 0:
            raise ctx.fail("no points", f"{where}.geometry")
        if not np.isfinite(pts).all():
            raise ctx.fail("non-finite coordinate", f"{where}.geometry")
        if parsed[0] is MapKind.STOP_SIGN:
            pts = pts[:1]
        ids.append(road.get("id"))
        index.append(m)
        kinds.append(int(parsed[0]))
        subtypes.append(parsed[1])
        chunks.append(pts)
    offsets = np.zeros(len(chunks) + 1, np.int64)
    np.cumsum([len(c) for c in chunks], out=offsets[1:])
    has_ids = all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    return RoadMap(
        ids=np.asarray(ids if has_ids else index, np.int64),
        kinds=np.asarray(kinds, np.int8),
        subtypes=np.asarray(subtypes, np.int8),
        offsets=offsets,
        points=np.concatenate(chunks) if chunks else np.zeros((0, 3)),
    )


def read_lights(ctx: JsonFields, obj: dict[str, Any], t: int) -> TrafficLights:
    """``tl_states`` as :class:`TrafficLights` over ``t`` steps; steps a light has no ``time_index`` for are invalid."""
    states = obj.get("tl_states") or {}
    if not isinstance(states, dict):
        raise ctx.fail(f"expected an object keyed by lane id, found {type(states).__name__}", "tl_states")
    n = len(states)
    tl = TrafficLights(
        lane_ids=np.zeros((t, n), np.int64),
        states=np.zeros((t, n), np.int8),
        stop_points=np.zeros((t, n, 3)),
        valid=np.zeros((t, n), bool),
    )
    unknown = set()
    for k, (key, light) in enumerate(states.items()):
        where = f"tl_states.{key}"
        names = ctx.get(light, "state", where)
        steps = np.asarray(light.get("time_index", range(len(names))))
        if not isinstance(names, list) or steps.shape != (len(names),) or steps.dtype.kind not in "iu":
            raise ctx.fail("state and time_index must be lists of one length", where)
        if len(steps) and (steps.min() < 0 or steps.max() >= t):
            raise ctx.fail(f"time index outside [0, {t})", f"{where}.time_index")
        try:
            tl.lane_ids[:, k] = int(key)
        except ValueError:
            raise ctx.fail(f"lane id {key!r} is not an integer", where) from None
        pts = np.zeros((len(steps), 3))
        for j, axis in enumerate("xyz"):
            if axis in light:
                col = np.asarray(light[axis], np.float64)
                if col.shape != steps.shape:
                    raise ctx.fail(f"{col.shape[0] if col.ndim else 0} values for {len(steps)} steps", f"{where}.{axis}")
                pts[:, j] = col
        codes = []
        for s in names:
            name = str(s).lower().removeprefix("lane_state_")
            if name not in _SIGNALS:
                unknown.add(s)
            codes.append(int(_SIGNALS.get(name, SignalState.UNKNOWN)))
        tl.states[steps, k] = codes
        tl.stop_points[steps, k] = pts
        tl.valid[steps, k] = True
    if unknown:
        log.warning("%s: traffic-light states %s are not WOMD states: read as UNKNOWN", ctx.source, sorted(map(str, unknown)))
    return tl
