"""ScenarioNet pickles -> :class:`~mad_sim.data.scenario.Scenario`, read safely.

A ScenarioNet scenario file is a pickled ``dict`` of builtins and numpy arrays
(MetaDrive's "scenario description"):

* ``metadata``: ``ts`` [T] seconds, ``sdc_id``, ``sdc_track_index``,
  ``current_time_index``, ``objects_of_interest`` (ids), ``tracks_to_predict``
  (``{id: {"track_index", "difficulty", ...}}``), ``scenario_id``;
* ``tracks``: ``{id: {"type": "VEHICLE"|..., "state": {"position" [T, 3|2],
  "length"/"width"/"height"/"heading" [T], "velocity" [T, 2], "valid" [T]}}}``;
* ``map_features``: ``{id: {"type": "LANE_SURFACE_STREET"|"ROAD_LINE_..."|
  "ROAD_EDGE_..."|"STOP_SIGN"|"CROSSWALK"|..., "polyline"|"polygon"|
  "position": [K, 3], lane attributes...}}``;
* ``dynamic_map_states``: ``{lane id: {"state": {"object_state": [T] of
  "LANE_STATE_..." or None}, "stop_point": [3], "lane": id}}``.

Pickle can run arbitrary code, so files are loaded by :class:`SafeUnpickler`,
which resolves only an allow-list of globals (numpy arrays, dtypes and scalars,
``collections.defaultdict`` / ``OrderedDict`` and builtin containers and
scalars).  Anything else raises :class:`~mad_sim.errors.UnsafePickleError`
before it is imported or called.
"""

from __future__ import annotations

import builtins
import collections
import io
import logging
import os
import pickle
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from mad_sim.data.scenario import (LaneInfo, LaneType, MapKind, ObjectType, RoadEdgeType, RoadLineType, RoadMap,
                                   Scenario, SignalState, TrafficLights, Trajectory)
from mad_sim.data.tfrecord import PathLike
from mad_sim.errors import CorruptRecordError, DataNotFoundError, SchemaError, TruncatedRecordError, UnsafePickleError

log = logging.getLogger(__name__)

try:  # numpy >= 2 moved the pickling helpers to numpy._core
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

_BUILTINS = ("int", "float", "complex", "bool", "str", "bytes", "bytearray", "list", "tuple", "dict", "set",
             "frozenset", "slice", "range")

ALLOWED_GLOBALS: Dict[Tuple[str, str], Callable[..., Any]] = {
    **{("builtins", n): getattr(builtins, n) for n in _BUILTINS},
    **{("__builtin__", n): getattr(builtins, n) for n in _BUILTINS},  # protocol-2 pickles from Python 2
    ("collections", "defaultdict"): collections.defaultdict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
}
"""``(module, name)`` pairs a pickle may reference, and what they resolve to."""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (nothing is imported)."""

    def __init__(self, file: io.BufferedIOBase, source: str = "<pickle>") -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refused global {module}.{name} (only numpy arrays and builtins are allowed)",
                                    path=self.source, record=0) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused persistent id", path=self.source, record=0)


def safe_load(path: PathLike) -> Any:
    """Unpickle ``path`` with :class:`SafeUnpickler`; every failure is a :mod:`mad_sim.errors` class."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise DataNotFoundError("no such file", path=name)
    with open(name, "rb") as f:
        if not f.read(1):
            raise TruncatedRecordError("empty file: no pickle", path=name, record=0)
        f.seek(0)
        try:
            return SafeUnpickler(f, name).load()
        except UnsafePickleError:
            raise
        except EOFError:
            raise TruncatedRecordError("pickle ends early", path=name, record=0) from None
        except Exception as exc:  # a malformed pickle can raise almost anything
            raise CorruptRecordError(f"not a readable pickle ({type(exc).__name__}: {exc})", path=name, record=0) from None


# --- dict -> Scenario --------------------------------------------------------------

class _Ctx:
    """Error-message context: the file, and a helper to fetch required keys."""

    def __init__(self, source: str) -> None:
        self.source = source

    def get(self, d: Any, key: str, field: str) -> Any:
        if not isinstance(d, dict):
            raise SchemaError(f"expected a dict, found {type(d).__name__}", path=self.source, record=0, field=field)
        if key not in d:
            raise SchemaError("missing key", path=self.source, record=0, field=f"{field}.{key}" if field else key)
        return d[key]

    def array(self, value: Any, shape_tail: Tuple[int, ...], num_steps: int, field: str, dtype: Any) -> np.ndarray:
        try:
            arr = np.asarray(value, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"not numeric ({exc})", path=self.source, record=0, field=field) from None
        if arr.shape != (num_steps, *shape_tail):
            raise SchemaError(f"shape {arr.shape}, expected {(num_steps, *shape_tail)}", path=self.source, record=0, field=field)
        return arr


def _int_ids(keys: List[Any]) -> np.ndarray:
    """Integer ids for ScenarioNet's string keys: the number itself when numeric, else the position."""
    try:
        return np.asarray([int(k) for k in keys], np.int64)
    except (TypeError, ValueError):
        return np.arange(len(keys), dtype=np.int64)


def _object_type(name: Any) -> int:
    return int(ObjectType[name]) if isinstance(name, str) and name in ObjectType.__members__ else int(ObjectType.OTHER)


def _tracks(ctx: _Ctx, tracks: Dict[str, Any], num_steps: int) -> Tuple[Trajectory, np.ndarray, np.ndarray, List[str]]:
    keys = list(tracks)
    n = len(keys)
    traj = Trajectory.zeros(n, num_steps)
    types = np.zeros(n, np.int8)
    for i, key in enumerate(keys):
        where = f"tracks.{key}"
        track = tracks[key]
        state = ctx.get(track, "state", where)
        pos = np.asarray(ctx.get(state, "position", f"{where}.state"), np.float64)
        if pos.ndim == 2 and pos.shape[1] == 2:
            pos = np.concatenate([pos, np.zeros((pos.shape[0], 1))], 1)
        traj.xyz[i] = ctx.array(pos, (3,), num_steps, f"{where}.state.position", np.float64)
        for j, k in enumerate(("length", "width", "height")):
            traj.size[i, :, j] = ctx.array(ctx.get(state, k, f"{where}.state"), (), num_steps, f"{where}.state.{k}", np.float32)
        traj.heading[i] = ctx.array(ctx.get(state, "heading", f"{where}.state"), (), num_steps, f"{where}.state.heading", np.float64)
        traj.velocity[i] = ctx.array(ctx.get(state, "velocity", f"{where}.state"), (2,), num_steps, f"{where}.state.velocity", np.float64)
        traj.valid[i] = ctx.array(ctx.get(state, "valid", f"{where}.state"), (), num_steps, f"{where}.state.valid", bool)
        types[i] = _object_type(ctx.get(track, "type", where))
    return traj, _int_ids(keys), types, [str(k) for k in keys]


def _map_kind(type_name: str) -> Optional[Tuple[MapKind, int]]:
    """(kind, subtype) for a ScenarioNet map type string, None if unknown."""
    if type_name.startswith("LANE_"):
        sub = type_name[5:]
        sub = "UNDEFINED" if sub not in LaneType.__members__ else sub
        return MapKind.LANE, int(LaneType[sub])
    if type_name.startswith("ROAD_LINE_"):
        sub = type_name[10:]
        return MapKind.ROAD_LINE, int(RoadLineType[sub]) if sub in RoadLineType.__members__ else 0
    if type_name.startswith("ROAD_EDGE_"):
        sub = type_name[10:]
        return MapKind.ROAD_EDGE, int(RoadEdgeType[sub]) if sub in RoadEdgeType.__members__ else 0
    if type_name in MapKind.__members__:
        return MapKind[type_name], 0
    return None


def _id_list(values: Any, id_of: Dict[str, int]) -> List[int]:
    out = []
    for v in values or []:
        key = str(v.get("feature_id") if isinstance(v, dict) else v)
        if key in id_of:
            out.append(id_of[key])
    return out


def _roadmap(ctx: _Ctx, features: Dict[str, Any]) -> RoadMap:
    keys = [str(k) for k in features]
    int_ids = _int_ids(keys)
    id_of = dict(zip(keys, int_ids.tolist()))
    ids, kinds, subtypes, lengths, chunks = [], [], [], [], []
    lanes: Dict[int, LaneInfo] = {}
    stops: Dict[int, List[int]] = {}
    for key, fid, feature in zip(keys, int_ids.tolist(), features.values()):
        where = f"map_features.{key}"
        type_name = ctx.get(feature, "type", where)
        parsed = _map_kind(str(type_name))
        if parsed is None:
            log.warning("%s: map feature %s of type %r is not a WOMD map feature, skipped", ctx.source, key, type_name)
            continue
        kind, sub = parsed
        if kind is MapKind.STOP_SIGN:
            pts = np.asarray(ctx.get(feature, "position", where), np.float64).reshape(-1)
            pts = np.concatenate([pts, np.zeros(3 - pts.size)])[None] if pts.size in (2, 3) else None
            if pts is None:
                raise SchemaError("expected a 2- or 3-vector", path=ctx.source, record=0, field=f"{where}.position")
            stops[fid] = _id_list(feature.get("lane", []), id_of)
        else:
            name = "polyline" if kind in (MapKind.LANE, MapKind.ROAD_LINE, MapKind.ROAD_EDGE) else "polygon"
            pts = np.asarray(ctx.get(feature, name, where), np.float64)
            if pts.ndim != 2 or pts.shape[1] not in (2, 3):
                raise SchemaError(f"shape {pts.shape}, expected [K, 3]", path=ctx.source, record=0, field=f"{where}.{name}")
            if pts.shape[1] == 2:
                pts = np.concatenate([pts, np.zeros((len(pts), 1))], 1)
        if kind is MapKind.LANE:
            lanes[fid] = LaneInfo(speed_limit_mph=float(feature.get("speed_limit_mph", 0.0) or 0.0),
                                  interpolating=bool(feature.get("interpolating", False)),
                                  entry_lanes=_id_list(feature.get("entry_lanes"), id_of),
                                  exit_lanes=_id_list(feature.get("exit_lanes"), id_of),
                                  left_neighbors=_id_list(feature.get("left_neighbor"), id_of),
                                  right_neighbors=_id_list(feature.get("right_neighbor"), id_of))
        ids.append(fid)
        kinds.append(int(kind))
        subtypes.append(sub)
        lengths.append(len(pts))
        chunks.append(pts)
    offsets = np.zeros(len(ids) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return RoadMap(ids=np.asarray(ids, np.int64), kinds=np.asarray(kinds, np.int8), subtypes=np.asarray(subtypes, np.int8),
                   offsets=offsets, points=np.concatenate(chunks) if chunks else np.zeros((0, 3)),
                   lanes=lanes, stop_sign_lanes=stops)


def _traffic_lights(ctx: _Ctx, states: Dict[str, Any], num_steps: int) -> TrafficLights:
    keys = list(states)
    tl = TrafficLights(lane_ids=np.zeros((num_steps, len(keys)), np.int64), states=np.zeros((num_steps, len(keys)), np.int8),
                       stop_points=np.zeros((num_steps, len(keys), 3)), valid=np.zeros((num_steps, len(keys)), bool))
    for k, key in enumerate(keys):
        where = f"dynamic_map_states.{key}"
        light = states[key]
        seq = ctx.get(ctx.get(light, "state", where), "object_state", f"{where}.state")
        if len(seq) != num_steps:
            raise SchemaError(f"{len(seq)} states for {num_steps} steps", path=ctx.source, record=0, field=f"{where}.state.object_state")
        lane = light.get("lane", key)
        try:
            tl.lane_ids[:, k] = int(lane)
        except (TypeError, ValueError):
            raise SchemaError(f"lane id {lane!r} is not an integer", path=ctx.source, record=0, field=f"{where}.lane") from None
        stop = np.asarray(light.get("stop_point", np.zeros(3)), np.float64).reshape(-1)
        tl.stop_points[:, k, :stop.size] = stop[:3]
        for t, s in enumerate(seq):
            if s is None:
                continue
            name = str(s).removeprefix("LANE_STATE_")
            tl.states[t, k] = int(SignalState[name]) if name in SignalState.__members__ else 0
            tl.valid[t, k] = True
    return tl


def scenario_from_scenarionet(data: Any, source: str = "") -> Scenario:
    """Convert a ScenarioNet scenario dict; SchemaError names the file and the key at fault."""
    ctx = _Ctx(source or "<scenarionet>")
    meta = ctx.get(data, "metadata", "")
    tracks = ctx.get(data, "tracks", "")
    if not isinstance(tracks, dict) or not tracks:
        raise SchemaError("no tracks", path=ctx.source, record=0, field="tracks")
    ts = np.asarray(ctx.get(meta, "ts", "metadata"), np.float64).reshape(-1)
    num_steps = int(ts.shape[0])
    traj, track_ids, types, keys = _tracks(ctx, tracks, num_steps)
    index_of = {k: i for i, k in enumerate(keys)}
    if "sdc_track_index" in meta:
        sdc = int(meta["sdc_track_index"])
    else:
        sdc_id = str(ctx.get(meta, "sdc_id", "metadata"))
        if sdc_id not in index_of:
            raise SchemaError(f"SDC id {sdc_id!r} is not a track", path=ctx.source, record=0, field="metadata.sdc_id")
        sdc = index_of[sdc_id]
    predict = meta.get("tracks_to_predict") or {}
    ttp = [int(v["track_index"]) if isinstance(v, dict) and "track_index" in v else index_of.get(str(k), -1)
           for k, v in predict.items()]
    difficulty = [int(v.get("difficulty", 0)) if isinstance(v, dict) else 0 for v in predict.values()]
    interest = [int(track_ids[index_of[str(k)]]) for k in meta.get("objects_of_interest") or [] if str(k) in index_of]
    scenario = Scenario(
        scenario_id=str(meta.get("scenario_id", data.get("id", ""))),
        timestamps=ts,
        current_index=int(meta.get("current_time_index", 0)),
        sdc_index=sdc,
        track_ids=track_ids,
        object_types=types,
        tracks=traj,
        roadmap=_roadmap(ctx, data.get("map_features") or {}),
        traffic_lights=_traffic_lights(ctx, data.get("dynamic_map_states") or {}, num_steps),
        tracks_to_predict=np.asarray(ttp, np.int64),
        tracks_to_predict_difficulty=np.asarray(difficulty, np.int8),
        objects_of_interest=np.asarray(interest, np.int64),
        source=source,
    )
    try:
        scenario.validate()
    except SchemaError as exc:
        raise SchemaError(str(exc).split(": ", 1)[-1], path=ctx.source, record=0, field=exc.field) from None
    return scenario


def load_scenarionet(path: PathLike) -> Scenario:
    """Read one ScenarioNet ``.pkl`` file safely and convert it."""
    return scenario_from_scenarionet(safe_load(path), os.fspath(path))
