"""WOMD ``Scenario`` protos <-> the :class:`~mad_sim.data.scenario.Scenario` dataclass.

Reading uses our own wire-compatible schema (:mod:`mad_sim.data.proto`), so no
TensorFlow or waymo-open-dataset package is needed.  What is read:

* ``scenario_id``, ``timestamps_seconds`` [T], ``current_time_index``,
  ``sdc_track_index``, ``objects_of_interest`` (object ids) and
  ``tracks_to_predict`` (track indices + difficulty);
* every track: ``id``, ``object_type`` and per step ``center_x/y/z``,
  ``length/width/height``, ``heading``, ``velocity_x/y``, ``valid`` (stored as
  [N, T] arrays; values of invalid steps are kept as the file has them, so a
  write reproduces them);
* map features: lane centres (type, speed limit, interpolating, entry / exit
  lanes, left / right neighbour ids), road lines and road edges with their
  type, stop signs (position, controlled lanes), crosswalks, speed bumps,
  driveways (polygons);
* dynamic map states: the traffic-signal lane states of every step.

Not kept: lane boundary segments and the index ranges of lane neighbours
(only the neighbour ids are), and the lidar / camera-token payloads of newer
WOMD releases.  :func:`scenario_to_proto` writes everything that is kept, so
``proto -> Scenario -> proto -> Scenario`` is the identity on the dataclass.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Union

import numpy as np
from google.protobuf.message import DecodeError

from mad_sim.data.proto import map_pb2, scenario_pb2
from mad_sim.data.scenario import LaneInfo, MapKind, RoadMap, Scenario, TrafficLights, Trajectory
from mad_sim.data.tfrecord import PathLike, write_records
from mad_sim.errors import SchemaError

log = logging.getLogger(__name__)

_KIND_BY_NAME = {k.proto_name: k for k in MapKind}
_STATE_FIELDS = ("center_x", "center_y", "center_z", "length", "width", "height", "heading", "velocity_x", "velocity_y", "valid")


def parse_scenario_bytes(payload: bytes, path: Optional[str] = None, record: Optional[int] = None) -> scenario_pb2.Scenario:
    """Parse one serialized ``Scenario``; SchemaError if the bytes are not one.

    A record of another message type (a perception ``Frame``, a submission)
    either fails to decode or decodes to a message without timestamps or
    tracks; both are reported as SchemaError naming ``path`` and ``record``.
    """
    msg = scenario_pb2.Scenario()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise SchemaError(f"not a serialized WOMD Scenario ({exc})", path=path, record=record) from None
    if not msg.timestamps_seconds or not msg.tracks:
        raise SchemaError("not a WOMD Scenario: no timestamps_seconds / tracks (another message type?)", path=path, record=record)
    return msg


# --- proto -> dataclass ------------------------------------------------------------

# Fast path: ObjectState messages decoded straight from the wire bytes.
# Serializers write the fields of a state in field-number order, each as a
# tag byte and a little-endian value; WOMD files hold two shapes of state:
# "full" (all ten fields, 59 bytes) and "invalid" (center_z and valid only,
# 11 bytes).  Offsets below are from the state's first byte.
_FULL = {
    "center_x": (1, "<f8"),
    "center_y": (10, "<f8"),
    "center_z": (19, "<f8"),
    "length": (28, "<f4"),
    "width": (33, "<f4"),
    "height": (38, "<f4"),
    "heading": (43, "<f4"),
    "velocity_x": (48, "<f4"),
    "velocity_y": (53, "<f4"),
    "valid": (58, "u1"),
}
_FULL_TAGS = np.array([0x11, 0x19, 0x21, 0x2D, 0x35, 0x3D, 0x45, 0x4D, 0x55, 0x58], np.uint8)
_FULL_TAG_AT = np.array([0, 9, 18, 27, 32, 37, 42, 47, 52, 57])
_SHORT = {"center_z": (1, "<f8"), "valid": (10, "u1")}
_SHORT_TAGS, _SHORT_TAG_AT = np.array([0x21, 0x58], np.uint8), np.array([0, 9])


def _varint_end(buf: bytes, pos: int) -> int:
    while buf[pos] & 0x80:
        pos += 1
    return pos + 1


def _states_fast(msg: scenario_pb2.Scenario, num_steps: int) -> Optional[Dict[str, np.ndarray]]:
    """Columns ``{field: [N * T]}`` of all states decoded from the wire, or None if a state has another shape.

    None sends the caller to the generic (message API) path, which gives the
    same numbers, only slower.
    """
    raws = [t.SerializeToString() for t in msg.tracks]
    buf = b"".join(raws)
    ends = np.cumsum([len(r) for r in raws])
    first = []
    try:
        for raw, track_start in zip(raws, ends - [len(r) for r in raws]):  # skip the 0x08 id / 0x10 type header
            pos = 0
            if raw[pos] == 0x08:
                pos = _varint_end(raw, pos + 1)
            if raw[pos] == 0x10:
                pos = _varint_end(raw, pos + 1)
            first.append(track_start + pos)
    except IndexError:
        return None
    u8 = np.frombuffer(buf, np.uint8)
    # Follow the 0x1a <length> frames of all tracks in parallel, one state per iteration.
    pos_all = np.zeros((len(raws), num_steps), np.int64)
    cur = np.asarray(first, np.int64)
    for k in range(num_steps):
        if (cur + 1 >= len(u8)).any():
            return None
        pos_all[:, k] = cur
        cur = cur + 2 + u8[cur + 1]
    frame_tag, frame_len = u8[pos_all], u8[pos_all + 1]
    if (frame_tag != 0x1A).any() or (frame_len & 0x80).any() or (cur != ends).any():
        return None
    start, size = (pos_all + 2).ravel(), frame_len.ravel()
    full, short = size == 59, size == 11
    if not (full | short).all():
        return None
    if (u8[start[full, None] + _FULL_TAG_AT] != _FULL_TAGS).any() or (
        u8[start[short, None] + _SHORT_TAG_AT] != _SHORT_TAGS
    ).any():
        return None
    cols: Dict[str, np.ndarray] = {}
    for name, (off, dt) in _FULL.items():
        width = np.dtype(dt).itemsize
        col = np.zeros(len(start), dt)
        col[full] = u8[start[full, None] + off + np.arange(width)].copy().view(dt).ravel()
        if name in _SHORT:
            soff = _SHORT[name][0]
            col[short] = u8[start[short, None] + soff + np.arange(width)].copy().view(dt).ravel()
        cols[name] = col
    if (cols["valid"] > 1).any():
        return None
    return cols


def _tracks_from_proto(
    msg: scenario_pb2.Scenario, num_steps: int, path: Optional[str], record: Optional[int], fast_path: bool = True
) -> tuple:
    n = len(msg.tracks)
    counts = [len(t.states) for t in msg.tracks]
    if any(c != num_steps for c in counts):
        i = next(i for i, c in enumerate(counts) if c != num_steps)
        raise SchemaError(
            f"track {i} has {counts[i]} states, expected {num_steps} (one per timestamp)",
            path=path,
            record=record,
            field="tracks.states",
        )
    fast = _states_fast(msg, num_steps) if fast_path else None
    cols: Mapping[str, Union[np.ndarray, List[float]]]  # decoded columns, or per-field lists of message values
    if fast is not None:
        cols = fast
    else:
        states = [s for t in msg.tracks for s in t.states]
        cols = {name: [getattr(s, name) for s in states] for name in _STATE_FIELDS}
    shape = (n, num_steps)
    xyz = np.stack([np.asarray(cols[k], np.float64).reshape(shape) for k in ("center_x", "center_y", "center_z")], -1)
    size = np.stack([np.asarray(cols[k], np.float32).reshape(shape) for k in ("length", "width", "height")], -1)
    heading = np.asarray(cols["heading"], np.float32).reshape(shape).astype(np.float64)
    velocity = np.stack([np.asarray(cols[k], np.float32).reshape(shape) for k in ("velocity_x", "velocity_y")], -1).astype(
        np.float64
    )
    valid = np.asarray(cols["valid"], bool).reshape(shape)
    traj = Trajectory(xyz=xyz, heading=heading, velocity=velocity, size=size, valid=valid)
    ids = np.asarray([t.id for t in msg.tracks], np.int64)
    types = np.asarray([t.object_type for t in msg.tracks], np.int8)
    return traj, ids, types


def _points(points: Iterable[map_pb2.MapPoint]) -> List[tuple]:
    return [(p.x, p.y, p.z) for p in points]


def roadmap_from_features(
    features: Iterable[map_pb2.MapFeature], path: Optional[str] = None, record: Optional[int] = None
) -> RoadMap:
    """Build a :class:`RoadMap` from ``MapFeature`` messages (features with no data are skipped)."""
    ids: List[int] = []
    kinds: List[int] = []
    subtypes: List[int] = []
    lengths: List[int] = []
    pts: List[tuple] = []
    lanes: Dict[int, LaneInfo] = {}
    stops: Dict[int, List[int]] = {}
    for feature in features:
        which = feature.WhichOneof("feature_data")
        if which is None:
            log.debug("%s record %s: map feature %d has no data, skipped", path, record, feature.id)
            continue
        data = getattr(feature, which)
        kind = _KIND_BY_NAME[which]
        subtype = 0
        if kind is MapKind.LANE:
            poly = _points(data.polyline)
            subtype = data.type
            lanes[int(feature.id)] = LaneInfo(
                speed_limit_mph=float(data.speed_limit_mph),
                interpolating=bool(data.interpolating),
                entry_lanes=[int(i) for i in data.entry_lanes],
                exit_lanes=[int(i) for i in data.exit_lanes],
                left_neighbors=[int(nb.feature_id) for nb in data.left_neighbors],
                right_neighbors=[int(nb.feature_id) for nb in data.right_neighbors],
            )
        elif kind in (MapKind.ROAD_LINE, MapKind.ROAD_EDGE):
            poly = _points(data.polyline)
            subtype = data.type
        elif kind is MapKind.STOP_SIGN:
            poly = _points([data.position])
            stops[int(feature.id)] = [int(i) for i in data.lane]
        else:
            poly = _points(data.polygon)
        ids.append(int(feature.id))
        kinds.append(int(kind))
        subtypes.append(int(subtype))
        lengths.append(len(poly))
        pts.extend(poly)
    offsets = np.zeros(len(ids) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return RoadMap(
        ids=np.asarray(ids, np.int64),
        kinds=np.asarray(kinds, np.int8),
        subtypes=np.asarray(subtypes, np.int8),
        offsets=offsets,
        points=np.asarray(pts, np.float64).reshape(-1, 3),
        lanes=lanes,
        stop_sign_lanes=stops,
    )


def traffic_lights_from_states(
    steps: List[Iterable[map_pb2.TrafficSignalLaneState]],
    num_steps: int,
    path: Optional[str] = None,
    record: Optional[int] = None,
) -> TrafficLights:
    """[T, L] arrays from per-step lists of lane states (slot order as in the file)."""
    if len(steps) == 0:
        return TrafficLights.empty(num_steps)
    if len(steps) != num_steps:
        raise SchemaError(
            f"{len(steps)} dynamic map states for {num_steps} timestamps", path=path, record=record, field="dynamic_map_states"
        )
    rows = [list(s) for s in steps]
    width = max((len(s) for s in rows), default=0)
    tl = TrafficLights(
        lane_ids=np.zeros((num_steps, width), np.int64),
        states=np.zeros((num_steps, width), np.int8),
        stop_points=np.zeros((num_steps, width, 3)),
        valid=np.zeros((num_steps, width), bool),
    )
    for t, lane_states in enumerate(rows):
        for k, ls in enumerate(lane_states):
            tl.lane_ids[t, k] = ls.lane
            tl.states[t, k] = ls.state
            tl.stop_points[t, k] = (ls.stop_point.x, ls.stop_point.y, ls.stop_point.z)
            tl.valid[t, k] = True
    return tl


def scenario_from_proto(
    msg: scenario_pb2.Scenario, source: str = "", record: Optional[int] = None, fast_path: bool = True
) -> Scenario:
    """Convert a parsed ``Scenario`` message; SchemaError names ``source``/``record``/field at fault.

    ``fast_path`` decodes track states straight from their wire bytes when
    they have the canonical layout (same result, about 10x faster); False
    always reads them field by field through the message API.
    """
    path = source or None
    num_steps = len(msg.timestamps_seconds)
    tracks, ids, types = _tracks_from_proto(msg, num_steps, path, record, fast_path)
    roadmap = roadmap_from_features(msg.map_features, path, record)
    lights = traffic_lights_from_states([d.lane_states for d in msg.dynamic_map_states], num_steps, path, record)
    scenario = Scenario(
        scenario_id=msg.scenario_id,
        timestamps=np.asarray(msg.timestamps_seconds, np.float64),
        current_index=int(msg.current_time_index),
        sdc_index=int(msg.sdc_track_index),
        track_ids=ids,
        object_types=types,
        tracks=tracks,
        roadmap=roadmap,
        traffic_lights=lights,
        tracks_to_predict=np.asarray([r.track_index for r in msg.tracks_to_predict], np.int64),
        tracks_to_predict_difficulty=np.asarray([r.difficulty for r in msg.tracks_to_predict], np.int8),
        objects_of_interest=np.asarray(msg.objects_of_interest, np.int64),
        source=source,
    )
    _validate(scenario, path, record)
    return scenario


def _validate(scenario: Scenario, path: Optional[str], record: Optional[int]) -> None:
    """Re-raise the dataclass's own checks with the file and record in the message."""
    try:
        scenario.validate()
    except SchemaError as exc:
        msg = str(exc).split(": ", 1)[-1] if exc.path else str(exc)
        raise SchemaError(msg, path=path, record=record, field=exc.field) from None


def scenario_from_bytes(payload: bytes, source: str = "", record: Optional[int] = None) -> Scenario:
    """Parse and convert one serialized ``Scenario``."""
    return scenario_from_proto(parse_scenario_bytes(payload, source or None, record), source, record)


# --- dataclass -> proto ------------------------------------------------------------


def _set_points(field, points: np.ndarray) -> None:
    for x, y, z in points.tolist():
        field.add(x=x, y=y, z=z)


def roadmap_to_features(roadmap: RoadMap) -> List[map_pb2.MapFeature]:
    """``MapFeature`` messages for every feature of ``roadmap``, in order."""
    out = []
    for m in range(roadmap.num_features):
        fid = int(roadmap.ids[m])
        kind = MapKind(int(roadmap.kinds[m]))
        poly = roadmap.polyline(m)
        feature = map_pb2.MapFeature(id=fid)
        data = getattr(feature, kind.proto_name)
        data.SetInParent()
        if kind is MapKind.LANE:
            info = roadmap.lanes.get(fid, LaneInfo())
            data.type = int(roadmap.subtypes[m])
            data.speed_limit_mph = info.speed_limit_mph
            data.interpolating = info.interpolating
            data.entry_lanes.extend(info.entry_lanes)
            data.exit_lanes.extend(info.exit_lanes)
            for nb in info.left_neighbors:
                data.left_neighbors.add(feature_id=nb)
            for nb in info.right_neighbors:
                data.right_neighbors.add(feature_id=nb)
            _set_points(data.polyline, poly)
        elif kind in (MapKind.ROAD_LINE, MapKind.ROAD_EDGE):
            data.type = int(roadmap.subtypes[m])
            _set_points(data.polyline, poly)
        elif kind is MapKind.STOP_SIGN:
            if len(poly):
                x, y, z = poly[0].tolist()
                data.position.x, data.position.y, data.position.z = x, y, z
            data.lane.extend(roadmap.stop_sign_lanes.get(fid, []))
        else:
            _set_points(data.polygon, poly)
        out.append(feature)
    return out


def scenario_to_proto(scenario: Scenario) -> scenario_pb2.Scenario:
    """The ``Scenario`` message holding every field :func:`scenario_from_proto` reads.

    ``Scenario.object_labels`` is not written: WOMD's ``ObjectType`` has no cone
    or barrier class, so such tracks stay ``TYPE_OTHER`` and a round trip through
    this message loses their label (the read-back Scenario has no labels, and
    ``labels()`` falls back to the ObjectType names).
    """
    msg = scenario_pb2.Scenario(
        scenario_id=scenario.scenario_id, current_time_index=int(scenario.current_index), sdc_track_index=int(scenario.sdc_index)
    )
    msg.timestamps_seconds.extend(scenario.timestamps.tolist())
    tr = scenario.tracks
    n, t = tr.valid.shape
    cols = [
        tr.xyz[..., 0].tolist(),
        tr.xyz[..., 1].tolist(),
        tr.xyz[..., 2].tolist(),
        tr.size[..., 0].tolist(),
        tr.size[..., 1].tolist(),
        tr.size[..., 2].tolist(),
        tr.heading.tolist(),
        tr.velocity[..., 0].tolist(),
        tr.velocity[..., 1].tolist(),
        tr.valid.tolist(),
    ]
    for i in range(n):
        track = msg.tracks.add(id=int(scenario.track_ids[i]), object_type=int(scenario.object_types[i]))
        rows = [c[i] for c in cols]
        for k in range(t):
            track.states.add(**{name: row[k] for name, row in zip(_STATE_FIELDS, rows)})
    msg.map_features.extend(roadmap_to_features(scenario.roadmap))
    tl = scenario.traffic_lights
    if tl.valid.shape[1] > 0:
        for step in range(t):
            dms = msg.dynamic_map_states.add()
            for slot in np.flatnonzero(tl.valid[step]):
                x, y, z = tl.stop_points[step, slot].tolist()
                dms.lane_states.add(
                    lane=int(tl.lane_ids[step, slot]),
                    state=int(tl.states[step, slot]),
                    stop_point=map_pb2.MapPoint(x=x, y=y, z=z),
                )
    msg.objects_of_interest.extend(int(i) for i in scenario.objects_of_interest)
    difficulty = scenario.tracks_to_predict_difficulty
    for j, idx in enumerate(scenario.tracks_to_predict):
        msg.tracks_to_predict.add(track_index=int(idx), difficulty=int(difficulty[j]) if j < len(difficulty) else 0)
    return msg


def write_scenarios(path: PathLike, scenarios: Union[Scenario, Iterable[Scenario]]) -> int:
    """Write scenarios as a WOMD TFRecord file (one ``Scenario`` per record), atomically."""
    items: Iterator[Scenario] = iter([scenarios]) if isinstance(scenarios, Scenario) else iter(scenarios)
    return write_records(os.fspath(path), (scenario_to_proto(s).SerializeToString() for s in items))
