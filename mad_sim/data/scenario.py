"""The `Scenario`: one driving log as numpy arrays.

A `Scenario` is what every reader produces (WOMD TFRecords, ScenarioNet
pickles, the procedural generator) and what the world state is seeded from.
All coordinates are in the log's *world* frame, SI units (metres, seconds,
radians, headings counter-clockwise from +x).

Shapes use ``N`` tracks, ``T`` steps (10 Hz), ``M`` map features, ``P`` map
points, ``L`` traffic-light slots.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Dict, List

import numpy as np

from mad_sim.errors import SchemaError

DT = 0.1
"""Seconds between two steps (WOMD logs are 10 Hz)."""


class ObjectType(IntEnum):
    """WOMD ``Track.ObjectType`` values."""

    UNSET = 0
    VEHICLE = 1
    PEDESTRIAN = 2
    CYCLIST = 3
    OTHER = 4


class MapKind(IntEnum):
    """Which ``MapFeature.feature_data`` a polyline came from (names as in map.proto)."""

    LANE = 1
    ROAD_LINE = 2
    ROAD_EDGE = 3
    STOP_SIGN = 4
    CROSSWALK = 5
    SPEED_BUMP = 6
    DRIVEWAY = 7

    @property
    def proto_name(self) -> str:
        """The oneof field name in map.proto (``lane``, ``road_line``, ...)."""
        return self.name.lower()


class LaneType(IntEnum):
    UNDEFINED = 0
    FREEWAY = 1
    SURFACE_STREET = 2
    BIKE_LANE = 3


class RoadLineType(IntEnum):
    UNKNOWN = 0
    BROKEN_SINGLE_WHITE = 1
    SOLID_SINGLE_WHITE = 2
    SOLID_DOUBLE_WHITE = 3
    BROKEN_SINGLE_YELLOW = 4
    BROKEN_DOUBLE_YELLOW = 5
    SOLID_SINGLE_YELLOW = 6
    SOLID_DOUBLE_YELLOW = 7
    PASSING_DOUBLE_YELLOW = 8


class RoadEdgeType(IntEnum):
    UNKNOWN = 0
    BOUNDARY = 1
    MEDIAN = 2


class SignalState(IntEnum):
    """WOMD ``TrafficSignalLaneState.State`` values."""

    UNKNOWN = 0
    ARROW_STOP = 1
    ARROW_CAUTION = 2
    ARROW_GO = 3
    STOP = 4
    CAUTION = 5
    GO = 6
    FLASHING_STOP = 7
    FLASHING_CAUTION = 8


@dataclass
class Trajectory:
    """Per-object, per-step states, all arrays ``[N, T, ...]`` (world frame).

    Attributes:
      xyz: [N, T, 3] float64, box centre in metres.
      heading: [N, T] float64, yaw in radians, CCW from +x.
      velocity: [N, T, 2] float64, (vx, vy) in m/s, world frame.
      size: [N, T, 3] float32, (length, width, height) in metres.
      valid: [N, T] bool; every other field is meaningless where this is False.
    """

    xyz: np.ndarray
    heading: np.ndarray
    velocity: np.ndarray
    size: np.ndarray
    valid: np.ndarray

    @property
    def num_objects(self) -> int:
        return int(self.valid.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.valid.shape[1])

    @property
    def xy(self) -> np.ndarray:
        """[N, T, 2] view of the centre's x, y."""
        return self.xyz[..., :2]

    @property
    def speed(self) -> np.ndarray:
        """[N, T] float64, m/s."""
        return np.hypot(self.velocity[..., 0], self.velocity[..., 1])

    @classmethod
    def zeros(cls, num_objects: int, num_steps: int) -> "Trajectory":
        return cls(
            xyz=np.zeros((num_objects, num_steps, 3)),
            heading=np.zeros((num_objects, num_steps)),
            velocity=np.zeros((num_objects, num_steps, 2)),
            size=np.zeros((num_objects, num_steps, 3), np.float32),
            valid=np.zeros((num_objects, num_steps), bool),
        )

    def copy(self) -> "Trajectory":
        return Trajectory(**{f.name: getattr(self, f.name).copy() for f in dataclasses.fields(self)})

    def take(self, index: np.ndarray, axis: int = 0) -> "Trajectory":
        """Select objects (``axis=0``) or steps (``axis=1``) by index or mask."""
        picked = np.flatnonzero(index) if np.asarray(index).dtype == bool else index
        return Trajectory(**{f.name: np.take(getattr(self, f.name), picked, axis=axis) for f in dataclasses.fields(self)})

    def validate(self, source: str = "<trajectory>") -> None:
        """Raise SchemaError if shapes disagree or a valid state holds a non-finite number."""
        n, t = self.valid.shape
        expect = {"xyz": (n, t, 3), "heading": (n, t), "velocity": (n, t, 2), "size": (n, t, 3)}
        for name, shape in expect.items():
            arr = getattr(self, name)
            if arr.shape != shape:
                raise SchemaError(f"shape {arr.shape}, expected {shape}", path=source, field=name)
            bad = ~np.isfinite(arr.reshape(n, t, -1)).all(-1) & self.valid
            if bad.any():
                i, k = np.argwhere(bad)[0]
                raise SchemaError(f"non-finite value at valid track {i}, step {k}", path=source, field=name)


@dataclass
class LaneInfo:
    """The lane-graph attributes of one ``MapFeature.lane`` (ids are map-feature ids)."""

    speed_limit_mph: float = 0.0
    interpolating: bool = False
    entry_lanes: List[int] = field(default_factory=list)
    exit_lanes: List[int] = field(default_factory=list)
    left_neighbors: List[int] = field(default_factory=list)
    right_neighbors: List[int] = field(default_factory=list)


@dataclass
class RoadMap:
    """The static map as typed polylines, all in the world frame.

    Feature ``m`` owns points ``points[offsets[m]:offsets[m + 1]]``.  Stop
    signs are one-point polylines (their position); crosswalks, speed bumps
    and driveways are closed polygons (first point not repeated).

    Attributes:
      ids: [M] int64, the map-feature ids of the log.
      kinds: [M] int8, :class:`MapKind`.
      subtypes: [M] int8, :class:`LaneType` / :class:`RoadLineType` /
        :class:`RoadEdgeType` for lanes, road lines and road edges, else 0.
      offsets: [M + 1] int64, start of each feature's points.
      points: [P, 3] float64, metres.
      lanes: lane-graph attributes by feature id (lanes only).
      stop_sign_lanes: controlled lane ids by stop-sign feature id.
    """

    ids: np.ndarray
    kinds: np.ndarray
    subtypes: np.ndarray
    offsets: np.ndarray
    points: np.ndarray
    lanes: Dict[int, LaneInfo] = field(default_factory=dict)
    stop_sign_lanes: Dict[int, List[int]] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> "RoadMap":
        return cls(
            ids=np.zeros(0, np.int64),
            kinds=np.zeros(0, np.int8),
            subtypes=np.zeros(0, np.int8),
            offsets=np.zeros(1, np.int64),
            points=np.zeros((0, 3)),
        )

    @property
    def num_features(self) -> int:
        return int(self.ids.shape[0])

    def polyline(self, m: int) -> np.ndarray:
        """[K, 3] points of feature ``m`` (an index, not an id)."""
        return self.points[self.offsets[m] : self.offsets[m + 1]]

    def point_feature_index(self) -> np.ndarray:
        """[P] int64: for every point, the index of the feature that owns it."""
        return np.repeat(np.arange(self.num_features), np.diff(self.offsets))

    def select(self, kinds: "list[MapKind] | tuple[MapKind, ...]") -> np.ndarray:
        """Indices of the features whose kind is in ``kinds``."""
        return np.flatnonzero(np.isin(self.kinds, [int(k) for k in kinds]))

    def counts(self) -> Dict[str, int]:
        """Number of features per kind, keyed by the proto's names (``lane``, ``road_line``...)."""
        return {k.proto_name: int((self.kinds == k).sum()) for k in MapKind}


@dataclass
class TrafficLights:
    """Dynamic map states: per step, up to ``L`` controlled lanes.

    Attributes:
      lane_ids: [T, L] int64, the controlled lane's feature id.
      states: [T, L] int8, :class:`SignalState`.
      stop_points: [T, L, 3] float64, where vehicles stop, metres.
      valid: [T, L] bool.
    """

    lane_ids: np.ndarray
    states: np.ndarray
    stop_points: np.ndarray
    valid: np.ndarray

    @classmethod
    def empty(cls, num_steps: int) -> "TrafficLights":
        return cls(
            lane_ids=np.zeros((num_steps, 0), np.int64),
            states=np.zeros((num_steps, 0), np.int8),
            stop_points=np.zeros((num_steps, 0, 3)),
            valid=np.zeros((num_steps, 0), bool),
        )


@dataclass
class Scenario:
    """One driving log.

    Attributes:
      scenario_id: the log's id.
      timestamps: [T] float64 seconds.
      current_index: the present step; steps before it are history (10 in WOMD).
      sdc_index: the track index of the self-driving car (the default ego).
      track_ids: [N] int64 object ids.
      object_types: [N] int8 :class:`ObjectType`.
      tracks: the logged :class:`Trajectory` ``[N, T]``.
      roadmap: the static :class:`RoadMap`.
      traffic_lights: the :class:`TrafficLights` ``[T, L]``.
      tracks_to_predict: [K] int64 track indices (not ids).
      tracks_to_predict_difficulty: [K] int8.
      objects_of_interest: [J] int64 object ids.
      source: where it was read from (a path, or a generator description).
      object_labels: [N] str (object or unicode dtype), the source's own class
        name of each track (``"VEHICLE"``, ``"TRAFFIC_CONE"``,
        ``"TRAFFIC_BARRIER"``...), or empty ``[0]`` when the source gives none.
        Classes :class:`ObjectType` has no value for (cones, barriers) are
        ``ObjectType.OTHER`` in ``object_types`` and keep their name here.
        Use :meth:`labels`, which falls back to the ObjectType names.
      sdc_logged: True when the source names the self-driving car; False when
        it has none (Nocturne JSON) and the reader chose ``sdc_index`` (see
        that reader's docstring). Any valid vehicle can be the ego either way.
    """

    scenario_id: str
    timestamps: np.ndarray
    current_index: int
    sdc_index: int
    track_ids: np.ndarray
    object_types: np.ndarray
    tracks: Trajectory
    roadmap: RoadMap
    traffic_lights: TrafficLights
    tracks_to_predict: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tracks_to_predict_difficulty: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    objects_of_interest: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    source: str = ""
    object_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    sdc_logged: bool = True

    @property
    def num_tracks(self) -> int:
        return self.tracks.num_objects

    @property
    def num_steps(self) -> int:
        return self.tracks.num_steps

    def labels(self) -> np.ndarray:
        """[N] object array of class names: ``object_labels`` if given, else the ObjectType names."""
        if self.object_labels.shape == (self.num_tracks,):
            return self.object_labels.astype(object)
        names = np.array([t.name for t in ObjectType], object)
        codes = np.asarray(self.object_types, np.int64)
        known = np.isin(codes, [int(t) for t in ObjectType])
        return np.where(known, names[np.clip(codes, 0, len(names) - 1)], "OTHER").astype(object)

    def validate(self) -> None:
        """Raise SchemaError if the arrays disagree with each other."""
        src = self.source or f"scenario {self.scenario_id}"
        self.tracks.validate(src)
        n, t = self.tracks.valid.shape
        if self.track_ids.shape != (n,) or self.object_types.shape != (n,):
            raise SchemaError(
                f"{n} tracks but ids {self.track_ids.shape} / types {self.object_types.shape}", path=src, field="tracks"
            )
        if self.object_labels.shape not in ((0,), (n,)):
            raise SchemaError(
                f"{n} tracks but {self.object_labels.shape} labels (expected [0] or [{n}])", path=src, field="object_labels"
            )
        if self.timestamps.shape != (t,):
            raise SchemaError(f"{t} steps but {self.timestamps.shape[0]} timestamps", path=src, field="timestamps_seconds")
        if not 0 <= self.current_index < t:
            raise SchemaError(f"current index {self.current_index} outside [0, {t})", path=src, field="current_time_index")
        if not 0 <= self.sdc_index < n:
            raise SchemaError(f"SDC index {self.sdc_index} outside [0, {n})", path=src, field="sdc_track_index")
        if np.any((self.tracks_to_predict < 0) | (self.tracks_to_predict >= n)):
            raise SchemaError("a track to predict is out of range", path=src, field="tracks_to_predict")

    def summary(self) -> dict:
        """The JSON-ready summary printed by ``mad-sim info``."""
        sdc = self.tracks.xy[self.sdc_index]
        valid = self.tracks.valid[self.sdc_index]
        return {
            "scenario_id": self.scenario_id,
            "num_tracks": self.num_tracks,
            "num_steps": self.num_steps,
            "current_index": int(self.current_index),
            "sdc_index": int(self.sdc_index),
            "tracks_to_predict": [int(i) for i in self.tracks_to_predict],
            "map_features": self.roadmap.counts(),
            "sdc_xy": [[float(x), float(y)] if v else None for (x, y), v in zip(sdc, valid)],
        }
