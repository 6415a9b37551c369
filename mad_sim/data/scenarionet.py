"""ScenarioNet / MetaDrive scenario pickles -> :class:`~mad_sim.data.scenario.Scenario`, read safely.

A ScenarioNet scenario file is a pickled ``dict`` of builtins and numpy arrays
(MetaDrive's "scenario description").  The current form (ScenarioNet >= 0.1,
WOMD and nuScenes conversions alike):

* ``metadata``: ``ts`` [T] seconds, ``sdc_id``, ``sdc_track_index`` (an index),
  ``current_time_index``, ``objects_of_interest`` (ids), ``tracks_to_predict``
  (``{id: {"track_index", "difficulty", ...}}``), ``scenario_id``;
* ``tracks``: ``{id: {"type": "VEHICLE"|"PEDESTRIAN"|"CYCLIST"|"TRAFFIC_CONE"|
  "TRAFFIC_BARRIER"|..., "state": {"position" [T, 3|2], "length"/"width"/
  "height" [T] or [T, 1], "heading" [T], "velocity" [T, 2], "valid" [T]}}}``;
* ``map_features`` and ``dynamic_map_states``: see :mod:`.scenarionet_map`.

Earlier MetaDrive dicts (``version`` "old format" or "MetaDrive v0.3.0.1", as in
MetaDrive's ``assets/waymo``), recognised by their keys:

* no ``metadata``: ``ts`` [T] and ``sdc_track_index`` (a track *id*, str or int,
  not an index) at the top level, the scenario id in ``id``;
  ``MetaDrive v0.3.0.1`` files pickle the dict as
  ``metadrive.scenario.scenario_description.ScenarioDescription`` (read as a
  dict, see :mod:`.safe_pickle`);
* states with ``size`` [T, 3] (length, width, height) instead of three arrays,
  ``heading`` and ``valid`` as [T, 1], ``valid`` as float 0/1;
* headings not wrapped (seen from -12.6 to 7.8 rad): every reader output is
  wrapped to [-pi, pi).

Units everywhere are metres, m/s and radians in the log's world frame (checked:
finite differences of positions match the stored velocities, and headings
follow the velocity direction).  Timestamps are kept as stored (WOMD's are
0.0993-0.1001 s apart; nuScenes' are interpolated to exactly 0.1 s).  A file
without ``current_time_index`` (the early dicts, nuScenes) gets 0.

Labels: ``Scenario.object_labels`` is each track's ``type`` string.  Types
that :class:`ObjectType` lacks (``TRAFFIC_CONE``, ``TRAFFIC_BARRIER``, ...)
become ``ObjectType.OTHER``.  ScenarioNet's nuScenes conversion swaps the
ego's box (length 1.73 m, width 4.08 m while it drives along its heading): a
``VEHICLE`` whose median width exceeds both its median length and 3 m (wider
than any road vehicle) gets the two swapped.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import numpy as np

from mad_sim.data.safe_pickle import ALLOWED_GLOBALS, SafeUnpickler, safe_load
from mad_sim.data.scenario import ObjectType, Scenario, Trajectory
from mad_sim.data.scenarionet_map import (
    int_ids,
    roadmap_from_scenarionet,
    traffic_lights_from_scenarionet,
)
from mad_sim.data.tfrecord import PathLike
from mad_sim.errors import SchemaError

log = logging.getLogger(__name__)

__all__ = ["ALLOWED_GLOBALS", "SafeUnpickler", "load_scenarionet", "safe_load", "scenario_from_scenarionet"]


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

    def array(self, value: Any, shape_tail: tuple[int, ...], num_steps: int, field: str, dtype: Any) -> np.ndarray:
        """``value`` as ``[num_steps, *shape_tail]``; a per-step scalar may come as [T, 1]."""
        try:
            arr = np.asarray(value, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"not numeric ({exc})", path=self.source, record=0, field=field) from None
        if not shape_tail and arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.shape != (num_steps, *shape_tail):
            raise SchemaError(f"shape {arr.shape}, expected {(num_steps, *shape_tail)}", path=self.source, record=0, field=field)
        return arr


MAX_VEHICLE_WIDTH = 3.0
"""Metres; road vehicles are at most about 2.6 m wide, so a wider-than-long box wider than this is swapped."""


def _object_type(name: str) -> int:
    return int(ObjectType[name]) if name in ObjectType.__members__ else int(ObjectType.OTHER)


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Angles in radians wrapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def _tracks(ctx: _Ctx, tracks: dict[str, Any], num_steps: int) -> tuple[Trajectory, np.ndarray, np.ndarray, list[str]]:
    """The trajectory [N, T], object types [N] and labels [N] (the ``type`` strings) of ``tracks``."""
    n = len(tracks)
    traj = Trajectory.zeros(n, num_steps)
    labels = np.empty(n, object)
    for i, (key, track) in enumerate(tracks.items()):
        where = f"tracks.{key}"
        state = ctx.get(track, "state", where)
        sw = f"{where}.state"
        pos = np.asarray(ctx.get(state, "position", sw))
        if pos.ndim == 2 and pos.shape[1] == 2:
            pos = np.concatenate([pos, np.zeros((pos.shape[0], 1))], 1)
        traj.xyz[i] = ctx.array(pos, (3,), num_steps, f"{sw}.position", np.float64)
        if "size" in state and "length" not in state:  # MetaDrive <= 0.3: one [T, 3] array
            traj.size[i] = ctx.array(state["size"], (3,), num_steps, f"{sw}.size", np.float32)
        else:
            for j, k in enumerate(("length", "width", "height")):
                traj.size[i, :, j] = ctx.array(ctx.get(state, k, sw), (), num_steps, f"{sw}.{k}", np.float32)
        traj.heading[i] = wrap_angle(ctx.array(ctx.get(state, "heading", sw), (), num_steps, f"{sw}.heading", np.float64))
        traj.velocity[i] = ctx.array(ctx.get(state, "velocity", sw), (2,), num_steps, f"{sw}.velocity", np.float64)
        traj.valid[i] = ctx.array(ctx.get(state, "valid", sw), (), num_steps, f"{sw}.valid", np.float64) > 0.5
        labels[i] = str(ctx.get(track, "type", where))
    types = np.asarray([_object_type(s) for s in labels], np.int8)
    _unswap_boxes(ctx, traj, types, list(tracks))
    return traj, types, labels, [str(k) for k in tracks]


def _unswap_boxes(ctx: _Ctx, traj: Trajectory, types: np.ndarray, keys: list[Any]) -> None:
    """Swap length and width of vehicles wider than long and wider than any road vehicle (in place).

    The second condition (median width > :data:`MAX_VEHICLE_WIDTH`) keeps genuinely short, wide boxes
    (nuScenes scene-0655 has a parked trailer of 1.79 m x 2.17 m) as they are.
    """
    masked = np.where(traj.valid[..., None], traj.size[..., :2], np.nan)
    with warnings.catch_warnings():  # tracks never valid: all-NaN medians, never swapped
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(masked, axis=1)
    swap = (types == ObjectType.VEHICLE) & (med[:, 1] > med[:, 0]) & (med[:, 1] > MAX_VEHICLE_WIDTH)
    if swap.any():
        log.info(
            "%s: vehicle boxes wider than long, length and width swapped: %s", ctx.source, [keys[i] for i in np.flatnonzero(swap)]
        )
        traj.size[swap, :, :2] = traj.size[swap, :, 1::-1]


def _sdc_index(ctx: _Ctx, data: dict[str, Any], meta: dict[str, Any], index_of: dict[str, int]) -> int:
    """The SDC's track index, from ``metadata.sdc_id`` / ``metadata.sdc_track_index`` (an index) or,
    in the early dicts, the top-level ``sdc_track_index`` / ``sdc_index`` (a track id)."""
    if "sdc_id" in meta and str(meta["sdc_id"]) in index_of:
        return index_of[str(meta["sdc_id"])]
    if "sdc_track_index" in meta:
        return int(meta["sdc_track_index"])
    for key in ("sdc_track_index", "sdc_index"):
        if key in data:
            if str(data[key]) not in index_of:
                raise SchemaError(f"SDC id {data[key]!r} is not a track", path=ctx.source, record=0, field=key)
            return index_of[str(data[key])]
    sdc_id = str(ctx.get(meta, "sdc_id", "metadata"))
    raise SchemaError(f"SDC id {sdc_id!r} is not a track", path=ctx.source, record=0, field="metadata.sdc_id")


def scenario_from_scenarionet(data: Any, source: str = "") -> Scenario:
    """Convert a ScenarioNet / MetaDrive scenario dict; SchemaError names the file and the key at fault."""
    ctx = _Ctx(source or "<scenarionet>")
    if not isinstance(data, dict):
        raise SchemaError(f"expected a dict, found {type(data).__name__}", path=ctx.source, record=0, field="")
    early = "metadata" not in data and any(k in data for k in ("ts", "sdc_track_index", "sdc_index"))
    meta: dict[str, Any] = {} if early else ctx.get(data, "metadata", "")
    tracks = ctx.get(data, "tracks", "")
    if not isinstance(tracks, dict) or not tracks:
        raise SchemaError("no tracks", path=ctx.source, record=0, field="tracks")
    ts_field = ("", "ts") if early else ("metadata", "ts")
    try:
        ts = np.asarray(ctx.get(data if early else meta, ts_field[1], ts_field[0]), np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"not numeric ({exc})", path=ctx.source, record=0, field=".".join(filter(None, ts_field))) from None
    num_steps = int(ts.shape[0])
    traj, types, labels, keys = _tracks(ctx, tracks, num_steps)
    track_ids = int_ids(keys)
    index_of = {k: i for i, k in enumerate(keys)}
    predict = meta.get("tracks_to_predict") or {}
    ttp = [
        int(v["track_index"]) if isinstance(v, dict) and "track_index" in v else index_of.get(str(k), -1)
        for k, v in predict.items()
    ]
    difficulty = [int(v.get("difficulty", 0)) if isinstance(v, dict) else 0 for v in predict.values()]
    interest = [int(track_ids[index_of[str(k)]]) for k in meta.get("objects_of_interest") or [] if str(k) in index_of]
    current = meta.get("current_time_index", data.get("current_time_index"))
    try:
        current_index = 0 if current is None else int(current)
    except (TypeError, ValueError):
        raise SchemaError(f"not an integer: {current!r}", path=ctx.source, record=0, field="current_time_index") from None
    scenario = Scenario(
        scenario_id=str(meta.get("scenario_id", data.get("id", meta.get("id", "")))),
        timestamps=ts,
        current_index=current_index,
        sdc_index=_sdc_index(ctx, data, meta, index_of),
        track_ids=track_ids,
        object_types=types,
        tracks=traj,
        roadmap=roadmap_from_scenarionet(ctx.source, data.get("map_features") or {}),
        traffic_lights=traffic_lights_from_scenarionet(ctx.source, data.get("dynamic_map_states"), num_steps),
        tracks_to_predict=np.asarray(ttp, np.int64),
        tracks_to_predict_difficulty=np.asarray(difficulty, np.int8),
        objects_of_interest=np.asarray(interest, np.int64),
        source=source,
        object_labels=labels,
    )
    try:
        scenario.validate()
    except SchemaError as exc:
        raise SchemaError(str(exc).split(": ", 1)[-1], path=ctx.source, record=0, field=exc.field) from None
    return scenario


def load_scenarionet(path: PathLike) -> Scenario:
    """Read one ScenarioNet / MetaDrive ``.pkl`` file safely and convert it."""
    return scenario_from_scenarionet(safe_load(path), os.fspath(path))
