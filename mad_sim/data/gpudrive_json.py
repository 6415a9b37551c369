"""GPUDrive / Nocturne scene JSON -> :class:`~mad_sim.data.scenario.Scenario`.

One reader for the family.  GPUDrive's JSON is the newer form of Nocturne's;
every difference between them is detected from the **content** of the file
(never from its name):

* ``objects``: per object ``position`` [T] as a list of ``{x, y[, z]}`` or (as
  in Nocturne's ``noc_state_test.json``) a dict of lists ``{x: [T], y: [T]}``;
  ``velocity`` [T] in the same layouts (m/s, world frame; when absent it is
  the finite difference of the positions); ``heading`` [T]; ``valid`` [T];
  scalar ``length``, ``width`` and, in GPUDrive only, ``height`` (m); ``type``
  (``vehicle`` / ``pedestrian`` / ``cyclist`` / ``other`` / ``unset``, any
  other string -> OTHER); GPUDrive may add an integer ``id``.
* ``roads``: ``{geometry: [K] of {x, y[, z]}, type}`` with ``type`` one of
  ``lane``, ``road_line``, ``road_edge``, ``stop_sign`` (one point),
  ``crosswalk``, ``speed_bump``, ``driveway`` (polygons); GPUDrive adds the
  feature ``id`` and ``map_element_id`` (Waymax's ``MapElementIds``: 0-3 lane
  types, 5-13 road-line types, 14-16 road-edge types), which gives the
  subtype (:class:`LaneType`, :class:`RoadLineType`, :class:`RoadEdgeType`);
  without it the subtype is 0 (undefined / unknown).  A road type outside the
  list (a string, or a ``MapElementIds`` number) is skipped with a warning.
* ``tl_states``: ``{lane id: {state: [k] of "stop" | "arrow_go" | ...,
  x, y[, z]: [k] stop point, time_index: [k]}}``; lists may be shorter than
  the log (a light seen only from step 74 on).  Step ``time_index[j]`` of the
  light gets ``state[j]``; other steps are invalid.  Unknown state names read
  as UNKNOWN (with a warning).
* ``metadata`` (GPUDrive only): ``sdc_track_index``, ``tracks_to_predict``
  (``{track_index, difficulty}``), ``objects_of_interest`` (object ids).

Not kept: the objects' ``goalPosition`` (their last valid position) and
``mark_as_expert`` flags, and the ``id`` on single geometry points.

Rules and defaults:

* **Heading unit** (:func:`heading_units`): the file's headings are compared
  with the direction of motion, ``atan2(vy, vx)``, over every valid sample
  moving faster than 2 m/s; the unit (radians, or degrees converted) whose
  median absolute angular error is smaller wins.  With fewer than 10 such
  samples: degrees if any valid ``|heading| > 2*pi + 1e-3``, else radians.
  Both GPUDrive files with metadata are radians; the other 67 scenes of the
  corpus (four of the six under ``gpudrive/``, two of those with z and height) are degrees.  Headings are
  then wrapped into ``[-pi, pi)``.
* Missing z -> 0; missing height -> :data:`DEFAULT_HEIGHT` by type (vehicle
  1.5 m, pedestrian 1.8 m, cyclist 1.7 m, other 1.0 m).  The size of an object
  is one value for all steps.  A length or width of 0 (three Nocturne files
  hold 55 such pedestrians and vehicles) is replaced by :data:`DEFAULT_FOOTPRINT`
  of its type, with a warning: a box must have an area to be drawn, collided
  with or parsed.  At invalid steps position, heading and velocity
  are set to 0 (the files hold sentinels there: -10000 or 1e-4).
* Time: 10 Hz from 0 (``timestamps = arange(T) * 0.1``); ``current_index``
  is 10 (WOMD: 1 s of history, 8 s of future), or ``T - 1`` for a shorter log.
* ``track_ids``: the objects' ``id`` when every object has one, else the index.
  Road feature ids: their ``id`` when every road has one, else the position in ``roads``.
* ``scenario_id`` (:func:`scenario_id_of`): a non-empty ``scenario_id`` (top
  level, else in ``metadata``), else ``name`` (else the file's stem) without
  its directory and ``.json`` suffix: ``tfrecord-<shard>_<hex id>`` (a hex id of
  12+ digits) gives the hex id, otherwise a leading ``tfrecord-`` is dropped and
  the shard and index kept (``tfrecord-00031-of-01000_123.json`` ->
  ``00031-of-01000_123``), which is unique per WOMD shard file.
* **SDC**: ``metadata.sdc_track_index`` where present (:func:`has_logged_sdc`
  is True, and so is the scenario's ``sdc_logged``).  Otherwise
  (Nocturne) ``sdc_index`` is *chosen*: the vehicle whose contiguous valid run
  through ``current_index`` is longest, ties broken by the longest path
  travelled (sum of step lengths between consecutive valid steps), then the
  lowest index; when no vehicle is valid at ``current_index``, any object type
  is considered, and when none is, the object with most valid steps.
  ``sdc_logged`` is False then.  Any vehicle valid at the current step can
  still be the ego: the env takes ``ego=index``.  (Observed, not used: in all
  69 scenes of the corpus the *last* object is a vehicle valid at every step,
  and in the two with metadata it is the SDC, as in the WOMD protos here; the
  rule picks it in 19 of the 67 others.)

Errors: :func:`load_scene_json` raises TruncatedRecordError for an empty file
or one cut short (the parser fails at the end, inside an unterminated string or
a split UTF-8 character, or the text opens with ``{`` / ``[`` but does not end
with the matching bracket), CorruptRecordError for other invalid JSON or
non-UTF-8 bytes, SchemaError for a JSON value that is not a scene (such as
Nocturne's ``valid_files.json`` index); :func:`scenario_from_gpudrive` raises
SchemaError naming the field (``objects[3].position``) for anything missing,
mis-shaped or non-finite.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from typing import Any, Literal

import numpy as np

from mad_sim.data.gpudrive_map import read_lights, read_roads
from mad_sim.data.json_fields import JsonFields
from mad_sim.data.scenario import (
    DT,
    ObjectType,
    Scenario,
    Trajectory,
)
from mad_sim.data.tfrecord import PathLike
from mad_sim.errors import (
    CorruptRecordError,
    DataNotFoundError,
    SchemaError,
    TruncatedRecordError,
)

log = logging.getLogger(__name__)

WOMD_CURRENT_INDEX = 10
"""The present step of a 9.1 s WOMD log (11 steps of history including it, 80 of future)."""

DEFAULT_HEIGHT: dict[int, float] = {
    int(ObjectType.VEHICLE): 1.5,
    int(ObjectType.PEDESTRIAN): 1.8,
    int(ObjectType.CYCLIST): 1.7,
    int(ObjectType.OTHER): 1.0,
    int(ObjectType.UNSET): 1.0,
}
"""Height in metres used where the file has none (Nocturne), by :class:`ObjectType`."""

DEFAULT_FOOTPRINT: dict[int, tuple[float, float]] = {
    int(ObjectType.VEHICLE): (4.5, 2.0),
    int(ObjectType.PEDESTRIAN): (0.8, 0.8),
    int(ObjectType.CYCLIST): (1.8, 0.8),
    int(ObjectType.OTHER): (1.0, 1.0),
    int(ObjectType.UNSET): (1.0, 1.0),
}
"""(length, width) in metres used where the file gives 0, by :class:`ObjectType`."""

MOVING_SPEED = 2.0
"""m/s: samples faster than this vote on the heading unit."""
MIN_MOVING_SAMPLES = 10

_OBJECT_TYPES = {
    "vehicle": ObjectType.VEHICLE,
    "pedestrian": ObjectType.PEDESTRIAN,
    "cyclist": ObjectType.CYCLIST,
    "other": ObjectType.OTHER,
    "unset": ObjectType.UNSET,
}
_HEX_ID = re.compile(r"^(?:tfrecord-)?(?:\d+-of-\d+_)?([0-9a-f]{12,})$")


def looks_like_scene_json(obj: Any) -> bool:
    """True for a GPUDrive / Nocturne scene: a dict whose ``objects`` and ``roads`` are lists."""
    return isinstance(obj, dict) and isinstance(obj.get("objects"), list) and isinstance(obj.get("roads"), list)


def _metadata(obj: Any) -> dict[str, Any]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return meta if isinstance(meta, dict) else {}


def has_logged_sdc(obj: Any) -> bool:
    """True when the scene names its self-driving car (``metadata.sdc_track_index``, GPUDrive)."""
    sdc = _metadata(obj).get("sdc_track_index")
    return isinstance(sdc, int) and not isinstance(sdc, bool)


def scenario_id_of(obj: dict[str, Any], source: str = "") -> str:
    """The scene's id by the rule in the module docstring."""
    meta = _metadata(obj)
    for sid in (obj.get("scenario_id"), meta.get("scenario_id")):
        if isinstance(sid, str) and sid:
            return sid
    given = obj.get("name")
    name = os.path.basename(given if isinstance(given, str) and given else source).removesuffix(".json")
    m = _HEX_ID.match(name)
    return m.group(1) if m else name.removeprefix("tfrecord-")


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def headings_in_degrees(heading: np.ndarray, velocity: np.ndarray, valid: np.ndarray) -> bool:
    """The heading-unit rule of the module docstring on arrays heading [N, T], velocity [N, T, 2], valid [N, T]."""
    moving = valid & (np.hypot(velocity[..., 0], velocity[..., 1]) > MOVING_SPEED)
    if int(moving.sum()) >= MIN_MOVING_SAMPLES:
        motion = np.arctan2(velocity[..., 1][moving], velocity[..., 0][moving])
        h = heading[moving]
        return bool(np.median(np.abs(_wrap(np.deg2rad(h) - motion))) < np.median(np.abs(_wrap(h - motion))))
    return bool(np.any(np.abs(heading[valid]) > 2 * math.pi + 1e-3))


def heading_units(obj: dict[str, Any], source: str = "") -> Literal["deg", "rad"]:
    """``"deg"`` or ``"rad"``: the unit the scene's ``heading`` lists are in (by content)."""
    raw = _read_objects(JsonFields(source or "<scene json>"), obj)
    return "deg" if headings_in_degrees(raw.heading, raw.velocity, raw.valid) else "rad"


class _Objects:
    """Raw per-object arrays before unit conversion (world frame, file units)."""

    def __init__(self, n: int, t: int) -> None:
        self.xyz = np.zeros((n, t, 3))
        self.heading = np.zeros((n, t))
        self.velocity = np.zeros((n, t, 2))
        self.valid = np.zeros((n, t), bool)
        self.size = np.zeros((n, 3), np.float32)
        self.types = np.zeros(n, np.int8)
        self.ids: list[Any] = []
        self.has_velocity = np.ones(n, bool)


def _object_type(value: Any) -> ObjectType:
    if isinstance(value, str):
        return _OBJECT_TYPES.get(value.lower(), ObjectType.OTHER)
    if isinstance(value, int) and not isinstance(value, bool) and value in {int(k) for k in ObjectType}:
        return ObjectType(value)
    return ObjectType.OTHER


def _read_objects(ctx: JsonFields, obj: Any) -> _Objects:
    objects = ctx.get(obj, "objects", "")
    if not isinstance(objects, list) or not objects:
        raise ctx.fail("expected a non-empty list of objects", "objects")
    t = len(ctx.get(objects[0], "valid", "objects[0]") or [])
    if t == 0:
        raise ctx.fail("no steps", "objects[0].valid")
    raw = _Objects(len(objects), t)
    for i, o in enumerate(objects):
        where = f"objects[{i}]"
        valid = np.asarray(ctx.get(o, "valid", where))
        if valid.shape != (t,) or valid.dtype.kind not in "bi":
            raise ctx.fail(
                f"shape {valid.shape} / dtype {valid.dtype}, expected [{t}] booleans "
                "(every object needs as many steps as objects[0])",
                f"{where}.valid",
            )
        raw.valid[i] = valid.astype(bool)
        pos = ctx.series(ctx.get(o, "position", where), f"{where}.position", 3)
        if len(pos) != t:
            raise ctx.fail(f"{len(pos)} positions for {t} steps", f"{where}.position")
        raw.xyz[i] = pos
        try:
            heading = np.asarray(ctx.get(o, "heading", where), np.float64)
        except (TypeError, ValueError):
            raise ctx.fail("not a list of numbers", f"{where}.heading") from None
        if heading.shape != (t,):
            raise ctx.fail(f"shape {heading.shape}, expected [{t}]", f"{where}.heading")
        raw.heading[i] = heading
        if "velocity" in o:
            vel = ctx.series(o["velocity"], f"{where}.velocity", 2)
            if len(vel) != t:
                raise ctx.fail(f"{len(vel)} velocities for {t} steps", f"{where}.velocity")
            raw.velocity[i] = vel
        else:
            raw.has_velocity[i] = False
        raw.types[i] = _object_type(ctx.get(o, "type", where))
        for j, key in enumerate(("length", "width")):
            raw.size[i, j] = ctx.number(ctx.get(o, key, where), f"{where}.{key}")
        raw.size[i, 2] = ctx.number(o["height"], f"{where}.height") if "height" in o else DEFAULT_HEIGHT[int(raw.types[i])]
        raw.ids.append(o.get("id"))
    for name, arr in (("position", raw.xyz), ("heading", raw.heading), ("velocity", raw.velocity)):
        bad = ~np.isfinite(arr.reshape(len(objects), t, -1)).all(-1) & raw.valid
        if bad.any():
            i, k = np.argwhere(bad)[0]
            raise ctx.fail(f"non-finite value at valid step {k}", f"objects[{i}].{name}")
    if not raw.has_velocity.all():
        _fill_velocity(raw)
    return raw


def _fill_velocity(raw: _Objects) -> None:
    """Finite-difference velocity (m/s) for objects whose file gives none: the mean of the forward and backward
    differences that have both ends valid, 0 where neither has."""
    xy, ok = raw.xyz[..., :2], raw.valid[:, 1:] & raw.valid[:, :-1]
    step = np.where(ok[..., None], (xy[:, 1:] - xy[:, :-1]) / DT, 0.0)
    total = np.zeros_like(xy)
    total[:, :-1] += step
    total[:, 1:] += step
    count = np.zeros(raw.valid.shape)
    count[:, :-1] += ok
    count[:, 1:] += ok
    est = total / np.maximum(count, 1)[..., None]
    raw.velocity[~raw.has_velocity] = est[~raw.has_velocity]


def _int_ids(values: list[Any]) -> np.ndarray:
    if values and all(isinstance(x, int) and not isinstance(x, bool) for x in values):
        return np.asarray(values, np.int64)
    return np.arange(len(values), dtype=np.int64)


def choose_sdc(xy: np.ndarray, valid: np.ndarray, types: np.ndarray, current: int) -> int:
    """The default ego of a scene without a logged SDC (rule in the module docstring).

    Args: xy [N, T, 2] m; valid [N, T] bool; types [N] :class:`ObjectType`; current step.
    """
    n = valid.shape[0]
    now = valid[:, current]
    run = np.where(now, np.cumprod(valid[:, current:], 1).sum(1) + np.cumprod(valid[:, current::-1], 1).sum(1) - 1, 0)
    both = valid[:, 1:] & valid[:, :-1]
    dist = (np.hypot(*np.moveaxis(xy[:, 1:] - xy[:, :-1], -1, 0)) * both).sum(1)
    vehicles = now & (types == ObjectType.VEHICLE)
    cand = vehicles if vehicles.any() else now
    if not cand.any():
        cand, run = np.ones(n, bool), valid.sum(1)
    idx = np.flatnonzero(cand)
    order = np.lexsort((idx, -dist[idx], -run[idx]))
    return int(idx[order[0]])


def scenario_from_gpudrive(obj: Any, source: str = "") -> Scenario:
    """Convert one GPUDrive / Nocturne scene dict; SchemaError names ``source`` and the field at fault."""
    ctx = JsonFields(source or "<scene json>")
    if not looks_like_scene_json(obj):
        raise ctx.fail(f"not a GPUDrive / Nocturne scene: {_describe(obj)}", _missing_field(obj))
    raw = _read_objects(ctx, obj)
    n, t = raw.valid.shape
    degrees = headings_in_degrees(raw.heading, raw.velocity, raw.valid)
    heading = _wrap(np.deg2rad(raw.heading) if degrees else raw.heading)
    flat = ~(raw.size[:, :2] > 0).all(1)
    if flat.any():
        log.warning(
            "%s: %d object(s) have a zero length or width: given their type's default footprint", ctx.source, int(flat.sum())
        )
        raw.size[flat, :2] = [DEFAULT_FOOTPRINT[int(k)] for k in raw.types[flat]]
    invalid = ~raw.valid
    raw.xyz[invalid] = 0.0
    raw.velocity[invalid] = 0.0
    heading[invalid] = 0.0
    tracks = Trajectory(
        xyz=raw.xyz, heading=heading, velocity=raw.velocity, size=np.repeat(raw.size[:, None], t, 1), valid=raw.valid
    )
    current = min(WOMD_CURRENT_INDEX, t - 1)
    meta = _metadata(obj)
    logged = has_logged_sdc(obj)
    if logged:
        sdc = int(meta["sdc_track_index"])
        if not 0 <= sdc < n:
            raise ctx.fail(f"{sdc} is outside [0, {n})", "metadata.sdc_track_index")
    else:
        sdc = choose_sdc(raw.xyz[..., :2], raw.valid, raw.types, current)
    ttp, difficulty = [], []
    for j, item in enumerate(meta.get("tracks_to_predict") or []):
        k = item.get("track_index") if isinstance(item, dict) else item
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n:
            raise ctx.fail(f"track index {k!r} is outside [0, {n})", f"metadata.tracks_to_predict[{j}]")
        ttp.append(k)
        difficulty.append(int(item.get("difficulty", 0)) if isinstance(item, dict) else 0)
    interest = [int(x) for x in meta.get("objects_of_interest") or [] if isinstance(x, int)]
    scenario = Scenario(
        scenario_id=scenario_id_of(obj, source),
        timestamps=np.arange(t) * DT,
        current_index=current,
        sdc_index=sdc,
        track_ids=_int_ids(raw.ids),
        object_types=raw.types,
        tracks=tracks,
        roadmap=read_roads(ctx, obj),
        traffic_lights=read_lights(ctx, obj, t),
        tracks_to_predict=np.asarray(ttp, np.int64),
        tracks_to_predict_difficulty=np.asarray(difficulty, np.int8),
        objects_of_interest=np.asarray(interest, np.int64),
        source=source,
        sdc_logged=logged,
    )
    scenario.validate()
    return scenario


def _missing_field(obj: Any) -> str:
    """``roads`` for an object with an ``objects`` list but no ``roads`` list, else ``objects``."""
    return "roads" if isinstance(obj, dict) and isinstance(obj.get("objects"), list) else "objects"


def _describe(obj: Any) -> str:
    """A short description of a JSON value that is not a scene."""
    if isinstance(obj, dict):
        keys = list(obj)
        if keys and all(str(k).endswith(".json") for k in keys):
            return f"an index of {len(keys)} scene file names (like Nocturne's valid_files.json)"
        return f"an object with keys {keys[:6]}{' ...' if len(keys) > 6 else ''} (a scene needs 'objects' and 'roads' lists)"
    return f"a JSON {type(obj).__name__}, not an object with 'objects' and 'roads'"


def read_json(path: PathLike) -> Any:
    """Parse a JSON file; every failure is a :mod:`mad_sim.errors` class naming the file."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise DataNotFoundError("no such file", path=name)
    with open(name, "rb") as f:
        data = f.read()
    if not data.strip():
        raise TruncatedRecordError("empty file: no JSON", path=name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":  # a multi-byte character cut in two
            raise TruncatedRecordError("file ends inside a UTF-8 character", path=name) from None
        raise CorruptRecordError(f"not UTF-8 text ({exc})", path=name) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        body = text.strip()
        unclosed = body[:1] in "{[" and {"{": "}", "[": "]"}[body[:1]] != body[-1:]  # an object cut before its end
        if exc.pos >= len(body) or exc.msg.startswith("Unterminated string") or unclosed:
            raise TruncatedRecordError(f"JSON ends early, at line {exc.lineno} ({exc.msg})", path=name) from None
        raise CorruptRecordError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", path=name) from None


def scene_from_json(obj: Any, name: str) -> Scenario:
    """The scene of the parsed JSON ``obj`` read from file ``name``; SchemaError naming the file when it holds none."""
    if not looks_like_scene_json(obj):
        raise SchemaError(f"not a GPUDrive / Nocturne scene: {_describe(obj)}", path=name, field=_missing_field(obj))
    return scenario_from_gpudrive(obj, name)


def load_scene_json(path: PathLike) -> Scenario:
    """Read one GPUDrive / Nocturne ``.json`` scene file and convert it."""
    name = os.fspath(path)
    return scene_from_json(read_json(name), name)
