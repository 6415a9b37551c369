"""WOMD Scenario reading on the real files, writing back, and the official cross-check."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mad_sim.data import load_scenario, load_scenarios
from mad_sim.data.scenario import MapKind, ObjectType
from mad_sim.data.tfrecord import iter_records, write_records
from mad_sim.data.womd import scenario_from_bytes, write_scenarios
from mad_sim.errors import DataNotFoundError, SchemaError


def test_reference_scenario_numbers(womd_path):
    s = load_scenario(womd_path)
    assert s.scenario_id == "ee519cf571686d19"
    assert (s.num_tracks, s.num_steps, s.current_index, s.sdc_index) == (257, 91, 10, 256)
    assert s.tracks_to_predict.tolist() == [18, 234, 229, 26]
    assert s.objects_of_interest.tolist() == [625, 2694]
    assert s.roadmap.num_features == 215
    assert s.roadmap.counts() == {
        "lane": 114,
        "road_line": 12,
        "road_edge": 75,
        "stop_sign": 4,
        "crosswalk": 4,
        "speed_bump": 6,
        "driveway": 0,
    }
    sdc_xy = s.tracks.xy[s.sdc_index][s.tracks.valid[s.sdc_index]]
    assert len(sdc_xy) == 91
    assert np.linalg.norm(sdc_xy[-1] - sdc_xy[0]) == pytest.approx(24.48, abs=0.05)
    assert s.object_types[s.sdc_index] == ObjectType.VEHICLE
    np.testing.assert_allclose(np.diff(s.timestamps), 0.1, atol=0.002)
    assert s.traffic_lights.valid.shape == (91, 0)
    # Lane polylines are dense and the lane graph points to lanes of this map.
    lanes = s.roadmap.select([MapKind.LANE])
    assert len(lanes) == 114 and set(s.roadmap.lanes) == set(s.roadmap.ids[lanes].tolist())
    lane_ids = set(s.roadmap.lanes)
    assert all(set(info.exit_lanes) <= lane_ids for info in s.roadmap.lanes.values())


def test_still_scenario_with_traffic_lights(womd_still_path):
    s = load_scenario(womd_still_path)
    assert (s.scenario_id, s.num_tracks, s.num_steps, s.roadmap.num_features) == ("637f20cafde22ff8", 83, 91, 301)
    sdc = s.tracks.xy[s.sdc_index][s.tracks.valid[s.sdc_index]]
    assert np.linalg.norm(sdc - sdc[0], axis=-1).max() < 0.5  # the ego stands still
    tl = s.traffic_lights
    assert tl.valid.shape == (91, 12) and tl.valid.any(1).all()
    assert set(np.unique(tl.states[tl.valid])) <= set(range(9))
    assert set(tl.lane_ids[tl.valid].tolist()) <= set(s.roadmap.lanes)


def _assert_same(a, b, path="scenario"):
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            if f.name != "source":
                _assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}[{k}]")
    else:
        assert a == b, path


@pytest.mark.parametrize("fixture", ["womd_path", "womd_still_path"])
def test_write_back_round_trips(fixture, request, tmp_path: Path):
    original = load_scenario(request.getfixturevalue(fixture))
    out = tmp_path / "copy.tfrecord"
    assert write_scenarios(out, [original, original]) == 2
    copies = list(load_scenarios(out))
    assert len(copies) == 2
    for copy in copies:
        _assert_same(original, copy)
    assert copies[1].source == str(out)


def test_wrong_message_type_is_schema_error(frame_path, submission_path, tmp_path: Path):
    with pytest.raises(SchemaError) as err:
        load_scenario(frame_path)
    assert err.value.record == 0 and str(frame_path) in str(err.value)
    # A submission proto framed as a TFRecord parses as protobuf but is no Scenario.
    framed = tmp_path / "submission.tfrecord"
    write_records(framed, [submission_path.read_bytes()[:5000], b"\x0a\x03abc"])
    with pytest.raises(SchemaError, match="record 0"):
        load_scenario(framed)


def test_inconsistent_scenario_names_field(womd_path):
    payload = next(iter_records(womd_path))
    from mad_sim.data.proto import scenario_pb2

    msg = scenario_pb2.Scenario.FromString(payload)
    msg.sdc_track_index = 9999
    with pytest.raises(SchemaError, match="sdc_track_index") as err:
        scenario_from_bytes(msg.SerializeToString(), "mem.tfrecord", 3)
    assert "mem.tfrecord, record 3" in str(err.value)
    del msg.tracks[5].states[-1]
    with pytest.raises(SchemaError, match="track 5 has 90 states"):
        scenario_from_bytes(msg.SerializeToString(), "mem.tfrecord", 0)


def test_load_scenario_index_out_of_range(womd_path):
    with pytest.raises(DataNotFoundError, match="holds 1 scenario"):
        load_scenario(womd_path, index=1)


# --- the official cross-check ---------------------------------------------------------


def _official_check(msg, s):
    """Compare every field we read against the official parse ``msg``."""
    assert s.scenario_id == msg.scenario_id
    np.testing.assert_array_equal(s.timestamps, np.asarray(msg.timestamps_seconds))
    assert s.current_index == msg.current_time_index and s.sdc_index == msg.sdc_track_index
    assert s.objects_of_interest.tolist() == list(msg.objects_of_interest)
    assert s.tracks_to_predict.tolist() == [r.track_index for r in msg.tracks_to_predict]
    assert s.tracks_to_predict_difficulty.tolist() == [r.difficulty for r in msg.tracks_to_predict]
    assert s.track_ids.tolist() == [t.id for t in msg.tracks]
    assert s.object_types.tolist() == [t.object_type for t in msg.tracks]
    states = [[st for st in t.states] for t in msg.tracks]

    def field(name):
        return np.asarray([[getattr(st, name) for st in row] for row in states])

    tr = s.tracks
    for k, name in enumerate(["center_x", "center_y", "center_z"]):
        np.testing.assert_array_equal(tr.xyz[..., k], field(name), err_msg=name)
    for k, name in enumerate(["length", "width", "height"]):
        np.testing.assert_array_equal(tr.size[..., k], field(name).astype(np.float32), err_msg=name)
    np.testing.assert_array_equal(tr.heading, field("heading"))
    np.testing.assert_array_equal(tr.velocity[..., 0], field("velocity_x"))
    np.testing.assert_array_equal(tr.velocity[..., 1], field("velocity_y"))
    np.testing.assert_array_equal(tr.valid, field("valid"))

    rm = s.roadmap
    assert rm.ids.tolist() == [f.id for f in msg.map_features]
    for m, f in enumerate(msg.map_features):
        which = f.WhichOneof("feature_data")
        assert MapKind(rm.kinds[m]).proto_name == which
        data = getattr(f, which)
        lines = which in ("lane", "road_line", "road_edge")
        pts = [data.position] if which == "stop_sign" else (data.polyline if lines else data.polygon)
        np.testing.assert_array_equal(rm.polyline(m), np.asarray([[p.x, p.y, p.z] for p in pts]).reshape(-1, 3))
        if which in ("lane", "road_line", "road_edge"):
            assert rm.subtypes[m] == data.type
        if which == "lane":
            info = rm.lanes[f.id]
            assert (info.speed_limit_mph, info.interpolating) == (data.speed_limit_mph, data.interpolating)
            assert info.entry_lanes == list(data.entry_lanes) and info.exit_lanes == list(data.exit_lanes)
            assert info.left_neighbors == [n.feature_id for n in data.left_neighbors]
            assert info.right_neighbors == [n.feature_id for n in data.right_neighbors]
        if which == "stop_sign":
            assert rm.stop_sign_lanes[f.id] == list(data.lane)

    tl = s.traffic_lights
    assert len(msg.dynamic_map_states) in (0, s.num_steps)
    for t, dms in enumerate(msg.dynamic_map_states):
        n = len(dms.lane_states)
        assert tl.valid[t, :n].all() and not tl.valid[t, n:].any()
        assert tl.lane_ids[t, :n].tolist() == [ls.lane for ls in dms.lane_states]
        assert tl.states[t, :n].tolist() == [ls.state for ls in dms.lane_states]
        np.testing.assert_array_equal(
            tl.stop_points[t, :n].reshape(-1, 3),
            np.asarray([[ls.stop_point.x, ls.stop_point.y, ls.stop_point.z] for ls in dms.lane_states]).reshape(-1, 3),
        )


@pytest.mark.parametrize("fixture", ["womd_path", "womd_still_path"])
def test_official_protos_agree(fixture, request, official_protos, tmp_path: Path):
    path = request.getfixturevalue(fixture)
    payload = next(iter_records(path))
    official = official_protos.scenario_pb2.Scenario.FromString(payload)
    ours = load_scenario(path)
    _official_check(official, ours)
    # What we write, the official schema reads back to the same fields.
    out = tmp_path / "written.tfrecord"
    write_scenarios(out, ours)
    _official_check(official_protos.scenario_pb2.Scenario.FromString(next(iter_records(out))), ours)


@pytest.mark.parametrize("fixture", ["womd_path", "womd_still_path"])
def test_wire_fast_path_equals_message_api(fixture, request):
    from mad_sim.data.proto import scenario_pb2
    from mad_sim.data.womd import _states_fast, scenario_from_proto

    msg = scenario_pb2.Scenario.FromString(next(iter_records(request.getfixturevalue(fixture))))
    assert _states_fast(msg, 91) is not None  # real WOMD states take the fast path
    fast, slow = scenario_from_proto(msg), scenario_from_proto(msg, fast_path=False)
    _assert_same(fast, slow)
    # A state in another wire shape (here: heading cleared) sends the whole read to the generic path.
    msg.tracks[3].states[7].ClearField("heading")
    assert _states_fast(msg, 91) is None
    _assert_same(scenario_from_proto(msg), scenario_from_proto(msg, fast_path=False))
    assert scenario_from_proto(msg).tracks.heading[3, 7] == 0.0
