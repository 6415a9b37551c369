"""Waymax SimulatorState pickles: the 38 corpus files, the sniff, duck-typed states, refusal of bad pickles."""

from __future__ import annotations

import collections
import os
import pickle
import pickletools
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mad_sim.data.scenario import (
    MapKind,
    ObjectType,
    RoadEdgeType,
    RoadLineType,
    Scenario,
    SignalState,
)
from mad_sim.data.waymax import (
    WOMD_CURRENT_INDEX,
    is_waymax_pickle,
    load_waymax,
    scenario_from_waymax,
)
from mad_sim.data.waymax_pickle import WaymaxRecord, first_global, load_waymax_state
from mad_sim.errors import (
    CorruptRecordError,
    SchemaError,
    TruncatedRecordError,
    UnsafePickleError,
)
from tests.conftest import data_file, data_root

FIRST = "corpus/waymax/waymax_scenario_1207b9e6eca7717b.pkl"


def waymax_files() -> list[Path]:
    data_file(FIRST)  # skips (or fails under CI) when the corpus is missing
    files = sorted((data_root() / "corpus" / "waymax").glob("*.pkl"))
    assert len(files) == 38
    return files


@pytest.fixture(scope="module")
def scenes() -> dict[str, Scenario]:
    return {p.name: load_waymax(p) for p in waymax_files()}


def test_every_file_loads(scenes):
    assert len(scenes) == 38
    for name, s in scenes.items():
        assert s.num_steps == 91 and s.current_index == WOMD_CURRENT_INDEX, name
        assert 1 <= s.num_tracks <= 32 and s.roadmap.num_features > 0, name
        assert s.scenario_id in name and s.source.endswith(name)
        assert s.tracks.xyz.dtype == np.float64 and s.tracks.size.dtype == np.float32
    counts = collections.Counter(ObjectType(t).name for s in scenes.values() for t in s.object_types)
    assert counts == {"VEHICLE": 995, "PEDESTRIAN": 80, "CYCLIST": 12}
    total = sum((collections.Counter(s.roadmap.counts()) for s in scenes.values()), collections.Counter())
    assert total == {"lane": 3631, "road_line": 1409, "road_edge": 1631, "stop_sign": 87, "crosswalk": 125, "speed_bump": 69}


@pytest.mark.parametrize(
    "hex_id, tracks, sdc, sdc_id, kinds, maps, tl_lanes, ttp, interest",
    [
        (
            "1207b9e6eca7717b",
            32,
            8,
            1914,
            {"VEHICLE": 28, "CYCLIST": 2, "PEDESTRIAN": 2},
            {"lane": 84, "road_line": 63, "road_edge": 85},
            23,
            list(range(8)),
            [],
        ),
        (
            "1484a8acd236fd1a",
            32,
            4,
            2819,
            {"VEHICLE": 28, "PEDESTRIAN": 4},
            {"lane": 237, "road_line": 32, "road_edge": 69, "stop_sign": 14, "crosswalk": 20, "speed_bump": 9},
            0,
            [0, 1, 2, 3],
            [622, 659],
        ),
        (
            "74e892ddfe3b9b8",
            7,
            2,
            2311,
            {"VEHICLE": 6, "PEDESTRIAN": 1},  # 25 of 32 slots are padding
            {"lane": 47, "road_line": 4, "road_edge": 40, "stop_sign": 2},
            0,
            [0, 1],
            [1929, 2310],
        ),
    ],
)
def test_pinned_files(scenes, hex_id, tracks, sdc, sdc_id, kinds, maps, tl_lanes, ttp, interest):
    s = scenes[f"waymax_scenario_{hex_id}.pkl"]
    assert (s.scenario_id, s.num_tracks, s.num_steps, s.current_index) == (hex_id, tracks, 91, 10)
    assert (s.sdc_index, int(s.track_ids[s.sdc_index])) == (sdc, sdc_id)
    assert dict(collections.Counter(ObjectType(t).name for t in s.object_types)) == kinds
    assert {k: v for k, v in s.roadmap.counts().items() if v} == maps
    tl = s.traffic_lights
    assert len(np.unique(tl.lane_ids[tl.valid])) == tl_lanes and tl.valid.shape[0] == 91
    assert s.tracks_to_predict.tolist() == ttp and s.objects_of_interest.tolist() == interest


def test_first_file_details(scenes):
    s = scenes["waymax_scenario_1207b9e6eca7717b.pkl"]
    np.testing.assert_allclose(s.timestamps[[0, 1, 10, 90]], [0.0, 0.100029, 1.00009, 8.975159])
    assert len(s.roadmap.points) == 20000  # Waymax's max_num_rg_points: every point is valid here
    tl = s.traffic_lights
    assert tl.valid.shape == (91, 16) and int(tl.valid.sum()) == 1058
    assert set(np.unique(tl.states[tl.valid]).tolist()) == {0, 1, 2, 3, 4}
    assert (tl.lane_ids[~tl.valid] == 0).all() and (tl.stop_points[~tl.valid] == 0).all()
    # A light's stop point is the start of the lane it controls (the same id space as the roadgraph); 15 of the
    # 23 lanes (ids 567-957) are not in the map: Waymax kept only the first 20000 points (ids 5-404).
    found = 0
    for lane in np.unique(tl.lane_ids[tl.valid]):
        m = np.flatnonzero((s.roadmap.ids == lane) & (s.roadmap.kinds == MapKind.LANE))
        if len(m):
            stop = tl.stop_points[tl.valid & (tl.lane_ids == lane)]
            np.testing.assert_allclose(stop, np.broadcast_to(s.roadmap.polyline(m[0])[0], stop.shape), atol=0.05)
            found += 1
    assert found == 8
    assert set(s.roadmap.subtypes[s.roadmap.kinds == MapKind.ROAD_EDGE].tolist()) == {RoadEdgeType.BOUNDARY}
    lines = set(s.roadmap.subtypes[s.roadmap.kinds == MapKind.ROAD_LINE].tolist())
    assert lines <= {int(t) for t in RoadLineType} and RoadLineType.BROKEN_SINGLE_WHITE in lines


def test_physics(scenes):
    for name, s in scenes.items():
        tr = s.tracks
        both = tr.valid[:, 1:] & tr.valid[:, :-1]
        step = np.linalg.norm(np.diff(tr.xy, axis=1), axis=-1) / np.diff(s.timestamps)
        speed = 0.5 * (tr.speed[:, 1:] + tr.speed[:, :-1])
        assert np.median(np.abs(step - speed)[both]) < 0.15, name  # measured: at most 0.10 m/s
        moving = both & (speed > 2.0)
        yaw = np.arctan2(tr.velocity[:, 1:, 1], tr.velocity[:, 1:, 0])
        assert np.median(np.abs((tr.heading[:, 1:] - yaw + np.pi) % (2 * np.pi) - np.pi)[moving]) < 0.05, name
        assert tr.valid[s.sdc_index, s.current_index], name
        assert np.abs(tr.heading).max() <= np.pi
        invalid = ~tr.valid
        assert (tr.xyz[invalid] == 0).all() and (tr.velocity[invalid] == 0).all() and (tr.heading[invalid] == 0).all()
        assert (tr.size > 0).all(), name  # no -1 sentinel leaks, even at invalid steps
        assert np.isfinite(s.roadmap.points).all() and (np.diff(s.roadmap.offsets) > 0).all()
        stops = s.roadmap.select([MapKind.STOP_SIGN])
        assert (np.diff(s.roadmap.offsets)[stops] == 1).all()


def test_sniff():
    for p in waymax_files():
        assert is_waymax_pickle(p), p
        assert first_global(p) == ("waymax.datatypes.simulator_state", "SimulatorState")
    others = [
        data_file("scenarionet/sd_waymo_v1.2_eb4b91b10ca94ff2.pkl"),
        *sorted((data_root() / "corpus" / "nuscenes").glob("*.pkl")),
        *sorted((data_root() / "corpus" / "metadrive_waymo_20s").glob("*.pkl")),
        data_file("womd/womd_scenario_input.tfrecord"),
    ]
    assert len(others) == 18
    for p in others:
        assert not is_waymax_pickle(p), p


def test_sniff_memo_and_protocols(tmp_path: Path, fake_waymax):
    obj = fake_waymax.roadgraph.RoadgraphPoints()
    # The module name is pickled first as data, so the STACK_GLOBAL fetches it back from the memo (BINGET).
    memo = tmp_path / "memo.pkl"
    memo.write_bytes(pickle.dumps([[type(obj).__module__], obj], protocol=4))
    ops = [op.name for op, _, _ in pickletools.genops(memo.read_bytes())]
    assert "BINGET" in ops[: ops.index("STACK_GLOBAL")]
    assert first_global(memo) == ("waymax.datatypes.roadgraph", "RoadgraphPoints") and is_waymax_pickle(memo)
    old = tmp_path / "p2.pkl"  # protocol 2 uses GLOBAL
    old.write_bytes(pickle.dumps(obj, protocol=2))
    assert first_global(old) == ("waymax.datatypes.roadgraph", "RoadgraphPoints")
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": np.zeros(3)}))
    ref = first_global(plain)
    assert ref is not None and ref[0].startswith("numpy") and not is_waymax_pickle(plain)
    text = tmp_path / "x.json"
    text.write_text('{"objects": []}')
    assert not is_waymax_pickle(text) and not is_waymax_pickle(tmp_path / "missing.pkl")


def _namespace(obj: Any) -> Any:
    """A WaymaxRecord tree as SimpleNamespace objects of fresh numpy arrays."""
    if isinstance(obj, WaymaxRecord):
        return SimpleNamespace(**{k: _namespace(v) for k, v in vars(obj).items()})
    return np.array(obj) if isinstance(obj, np.ndarray) else obj


def assert_same_scenario(a: Scenario, b: Scenario) -> None:
    assert (a.scenario_id, a.current_index, a.sdc_index) == (b.scenario_id, b.current_index, b.sdc_index)
    for name in ("timestamps", "track_ids", "object_types", "tracks_to_predict", "objects_of_interest"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for part in ("tracks", "roadmap", "traffic_lights"):
        for key, value in vars(getattr(a, part)).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, getattr(getattr(b, part), key), err_msg=f"{part}.{key}")


def test_in_memory_state_matches_file():
    path = data_file(FIRST)
    from_file = load_waymax(path)
    state = _namespace(load_waymax_state(path))
    assert_same_scenario(scenario_from_waymax(state, "1207b9e6eca7717b", str(path)), from_file)
    for name, value in vars(state.log_trajectory).items():  # a batch of one is squeezed
        setattr(state.log_trajectory, name, value[None])
    assert_same_scenario(scenario_from_waymax(state, "1207b9e6eca7717b"), from_file)
    state.timestep = np.int32(25)  # a stepped state: its timestep is the present
    assert scenario_from_waymax(state).current_index == 25
    assert scenario_from_waymax(state, current_index=3).current_index == 3


def _tiny_state(timestep: int = 0) -> SimpleNamespace:
    """3 object slots (the last is padding) x 12 steps, 7 roadgraph points, 2 light slots (the last unused)."""
    n, t = 3, 12
    steps = np.arange(t, dtype=np.float32)
    valid = np.ones((n, t), bool)
    valid[1, :4] = False
    valid[2] = False
    pad = np.full((n, t), -1.0, np.float32)
    x = np.where(valid, np.stack([steps, steps * 0.5, steps]), pad)
    traj = SimpleNamespace(
        x=x,
        y=np.where(valid, 1.0, -1.0).astype(np.float32),
        z=np.zeros((n, t), np.float32),
        vel_x=np.where(valid, np.array([[10.0], [5.0], [0.0]]), -1.0).astype(np.float32),
        vel_y=np.where(valid, 0.0, -1.0).astype(np.float32),
        yaw=np.where(valid, 0.0, -1.0).astype(np.float32),
        length=np.where(valid, 4.5, -1.0).astype(np.float32),
        width=np.where(valid, 2.0, -1.0).astype(np.float32),
        height=np.where(valid, 1.5, -1.0).astype(np.float32),
        valid=valid,
        timestamp_micros=np.where(valid, (np.arange(t) * 100_000)[None], -1).astype(np.int32),
    )
    meta = SimpleNamespace(
        ids=np.array([7, 9, -1], np.int32),
        object_types=np.array([1, 2, -1], np.int32),
        is_sdc=np.array([True, False, False]),
        is_modeled=np.array([False, True, False]),
        is_valid=valid.any(1),
        objects_of_interest=np.array([False, True, False]),
        is_controlled=np.zeros(n, bool),
    )
    # Feature 5 (a lane) is interleaved with feature 3 (a solid double yellow line); 8 is a 2-point stop sign;
    # the -1 point and the invalid point are dropped.
    rg = SimpleNamespace(
        x=np.array([0, 10, 1, 11, 2, 50, 51, 99, 98], np.float32),
        y=np.zeros(9, np.float32),
        z=np.zeros(9, np.float32),
        dir_x=np.zeros(9, np.float32),
        dir_y=np.zeros(9, np.float32),
        dir_z=np.zeros(9, np.float32),
        types=np.array([2, 12, 2, 12, 2, 17, 17, -1, 2], np.int32),
        ids=np.array([5, 3, 5, 3, 5, 8, 8, 4, 5], np.int32),
        valid=np.array([True] * 8 + [False]),
    )
    lights = SimpleNamespace(
        x=np.full((2, t), 3.0, np.float32),
        y=np.zeros((2, t), np.float32),
        z=np.zeros((2, t), np.float32),
        state=np.full((2, t), SignalState.GO, np.int32),
        lane_ids=np.full((2, t), 5, np.int32),
        valid=np.array([[True] * 6 + [False] * 6, [False] * t]),
    )
    return SimpleNamespace(
        log_trajectory=traj,
        sim_trajectory=traj,
        object_metadata=meta,
        roadgraph_points=rg,
        log_traffic_light=lights,
        timestep=np.int32(timestep),
        sdc_paths=None,
    )


def test_hand_built_state():
    s = scenario_from_waymax(_tiny_state(), "tiny")
    assert (s.num_tracks, s.num_steps, s.current_index, s.sdc_index) == (2, 12, 10, 0)
    assert s.track_ids.tolist() == [7, 9] and s.object_types.tolist() == [ObjectType.VEHICLE, ObjectType.PEDESTRIAN]
    assert s.tracks_to_predict.tolist() == [1] and s.objects_of_interest.tolist() == [9]
    assert (s.tracks.xyz[1, :4] == 0).all() and (s.tracks.size[1, :4] == [4.5, 2.0, 1.5]).all()
    np.testing.assert_allclose(s.timestamps, np.arange(12) * 0.1)
    rm = s.roadmap
    assert rm.ids.tolist() == [5, 3, 8]
    assert rm.kinds.tolist() == [MapKind.LANE, MapKind.ROAD_LINE, MapKind.STOP_SIGN]
    assert rm.subtypes.tolist() == [2, RoadLineType.SOLID_DOUBLE_YELLOW, 0]
    assert rm.polyline(0)[:, 0].tolist() == [0, 1, 2] and rm.polyline(1)[:, 0].tolist() == [10, 11]
    assert rm.polyline(2)[:, 0].tolist() == [50]
    tl = s.traffic_lights
    assert tl.valid.shape == (12, 1) and tl.valid[:6, 0].all() and not tl.valid[6:].any()
    assert (tl.states[:6, 0] == SignalState.GO).all() and (tl.states[6:] == 0).all()
    assert (tl.stop_points[:6, 0] == [3, 0, 0]).all() and (tl.lane_ids[6:] == 0).all()
    assert scenario_from_waymax(_tiny_state(timestep=4)).current_index == 4


def test_bad_states_name_the_field():
    state = _tiny_state()
    state.object_metadata.is_sdc = np.zeros(3, bool)
    with pytest.raises(SchemaError, match=r"object_metadata.is_sdc"):
        scenario_from_waymax(state, source="mem")
    state = _tiny_state()
    del state.log_trajectory.vel_x
    with pytest.raises(SchemaError, match=r"mem, record 0, field 'log_trajectory.vel_x'"):
        scenario_from_waymax(state, source="mem")
    state = _tiny_state()
    state.log_trajectory.x = state.log_trajectory.x[:, :5]
    with pytest.raises(SchemaError, match=r"log_trajectory.x"):
        scenario_from_waymax(state)
    state = _tiny_state()
    state.log_trajectory.y[0, 3] = np.nan
    with pytest.raises(SchemaError, match="non-finite"):
        scenario_from_waymax(state)


# --- refusal of unsafe or malformed pickles ----------------------------------------------------------------


@pytest.fixture
def fake_waymax(monkeypatch):
    """Importable stand-ins for waymax.datatypes.* (plain classes) so tests can pickle states like Waymax does."""
    mods = {}
    for parent in ("waymax", "waymax.datatypes"):  # pickle imports the module path, so the packages must exist
        monkeypatch.setitem(sys.modules, parent, types.ModuleType(parent))
    for mod, classes in {
        "roadgraph": ["RoadgraphPoints"],
        "simulator_state": ["SimulatorState", "Foo"],
        "object_state": ["Trajectory", "ObjectMetadata"],
        "traffic_lights": ["TrafficLights"],
    }.items():
        full = f"waymax.datatypes.{mod}"
        module = types.ModuleType(full)
        for name in classes:
            setattr(module, name, type(name, (), {"__module__": full, "__qualname__": name}))
        monkeypatch.setitem(sys.modules, full, module)
        mods[mod] = module
    return SimpleNamespace(**mods)


def _fake_state(fake_waymax, tiny: SimpleNamespace) -> Any:
    parts = {
        "log_trajectory": "object_state.Trajectory",
        "sim_trajectory": "object_state.Trajectory",
        "object_metadata": "object_state.ObjectMetadata",
        "roadgraph_points": "roadgraph.RoadgraphPoints",
        "log_traffic_light": "traffic_lights.TrafficLights",
    }
    state = fake_waymax.simulator_state.SimulatorState()
    for field, where in parts.items():
        mod, cls = where.split(".")
        obj = getattr(getattr(fake_waymax, mod), cls)()
        obj.__dict__.update(vars(getattr(tiny, field)))
        setattr(state, field, obj)
    state.timestep, state.sdc_paths = np.int32(0), None
    return state


def test_plain_numpy_waymax_pickle_round_trips(tmp_path: Path, fake_waymax):
    path = tmp_path / "waymax_scenario_00000000000abc12.pkl"
    path.write_bytes(pickle.dumps(_fake_state(fake_waymax, _tiny_state())))
    assert is_waymax_pickle(path)
    s = load_waymax(path)
    assert s.scenario_id == "00000000000abc12"
    assert_same_scenario(s, scenario_from_waymax(_tiny_state(), "00000000000abc12"))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path, fake_waymax):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    state = _fake_state(fake_waymax, _tiny_state())
    state.log_trajectory.x = Evil()
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps(state))
    assert is_waymax_pickle(bad)  # the sniff passes it on: the unpickler must refuse it
    with pytest.raises(UnsafePickleError, match=r"refused global (posix|os|nt)\.system") as err:
        load_waymax(bad)
    assert str(bad) in str(err.value) and err.value.path == str(bad)
    assert not marker.exists()


def test_other_classes_are_refused(tmp_path: Path, fake_waymax):
    for obj, refused in [
        (fake_waymax.simulator_state.Foo(), r"waymax\.datatypes\.simulator_state\.Foo"),
        (collections.Counter("ab"), r"collections\.Counter"),
    ]:
        bad = tmp_path / "obj.pkl"
        bad.write_bytes(pickle.dumps(obj))
        with pytest.raises(UnsafePickleError, match=refused):
            load_waymax(bad)


def test_record_refuses_reserved_field_names():
    with pytest.raises(pickle.UnpicklingError, match="at most 0 fields"):
        WaymaxRecord(1)  # the base record has no fields: a positional value has nowhere to go
    for state in ({"waymax_class": "SimulatorState"}, {"__class__": int}, {"_private": 1}, {3: 4}, [1, 2]):
        with pytest.raises(pickle.UnpicklingError):
            WaymaxRecord().__setstate__(state)


def test_jax_reconstruct_takes_only_numpy(tmp_path: Path):
    # _reconstruct_array(builtins.dict, ...) instead of numpy's _reconstruct: refused, as a corrupt record.
    body = (
        b"\x80\x04\x8c\x0ejax._src.array\x8c\x12_reconstruct_array\x93"  # fun = the jax rebuild
        b"(\x8c\x08builtins\x8c\x04dict\x93)}Nt"  # args = (dict, (), {}, None)
        b"R."
    )
    bad = tmp_path / "jax.pkl"
    bad.write_bytes(body)
    with pytest.raises(CorruptRecordError, match="_reconstruct"):
        load_waymax_state(bad)


def test_truncated_empty_and_garbage(tmp_path: Path):
    data = data_file(FIRST).read_bytes()
    for cut in (len(data) // 2, 100, len(data) - 1):
        short = tmp_path / f"short{cut}.pkl"
        short.write_bytes(data[:cut])
        with pytest.raises(TruncatedRecordError, match=str(short)):
            load_waymax(short)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(TruncatedRecordError):
        load_waymax(empty)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"\x80\x04" + bytes(range(256)) * 4)
    with pytest.raises(CorruptRecordError, match=str(junk)):
        load_waymax(junk)
    notstate = tmp_path / "list.pkl"
    notstate.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(SchemaError, match="not a Waymax SimulatorState"):
        load_waymax(notstate)
