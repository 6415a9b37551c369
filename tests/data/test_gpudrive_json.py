"""GPUDrive / Nocturne scene JSON: every corpus file read in place, pinned figures, physics checks, bad input.

Numbers pinned here were read from the files (and cross-checked with a plain
``json.load``): object counts and types, road counts by type, traffic lights.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from mad_sim.data.gpudrive_json import (
    choose_sdc,
    has_logged_sdc,
    heading_units,
    headings_in_degrees,
    load_scene_json,
    looks_like_scene_json,
    read_json,
    scenario_from_gpudrive,
    scenario_id_of,
)
from mad_sim.data.scenario import DT, MapKind, ObjectType, Scenario, SignalState
from mad_sim.errors import CorruptRecordError, SchemaError, TruncatedRecordError
from mad_sim.world.geometry import overlap_matrix
from tests.conftest import data_file, data_root

FOLDERS = ("gpudrive", "nocturne", "nocturne_data10", "nocturne_maps50")
GD_RAD = "corpus/gpudrive/gd_tfrecord-00000-of-00150_2af8a17d6cee3f8.json"  # metadata, radians, 14 lights
GD_402 = "corpus/gpudrive/gd_tfrecord-00000-of-01000_402.json"  # metadata, radians
GD_DEG = "corpus/gpudrive/gd_tfrecord-00000-of-00150_238786b3cccc4a0e.json"  # z + height, but degrees, no metadata
NOC_DICT = "corpus/nocturne/noc_state_test.json"  # positions as a dict of lists, 11 lights
NOC_X = "corpus/nocturne/noc_intersection_scenario.json"
INDEX = "corpus/nocturne_maps50/valid_files.json"


@pytest.fixture(scope="module")
def corpus() -> dict[str, Scenario]:
    """Every scene JSON of the corpus folders, by path relative to the data root (about 5 s)."""
    data_file(GD_RAD)  # skips (or fails under CI) when the corpus is missing
    root = data_root()
    paths = sorted(p for d in FOLDERS for p in (root / "corpus" / d).glob("*.json") if p.name != "valid_files.json")
    return {p.relative_to(root).as_posix(): load_scene_json(p) for p in paths}


def test_corpus_aggregate(corpus):
    assert len(corpus) == 69
    types = np.concatenate([s.object_types for s in corpus.values()])
    assert {t.name: int((types == t).sum()) for t in (ObjectType.VEHICLE, ObjectType.PEDESTRIAN, ObjectType.CYCLIST)} == {
        "VEHICLE": 3557,
        "PEDESTRIAN": 401,
        "CYCLIST": 21,
    }
    assert {s.num_steps for s in corpus.values()} == {91}
    assert {s.current_index for s in corpus.values()} == {10}
    logged = sorted(k for k, s in corpus.items() if s.sdc_logged)
    assert logged == sorted([GD_RAD, GD_402])
    assert sorted(k for k, s in corpus.items() if s.traffic_lights.valid.shape[1]) == sorted([GD_RAD, GD_DEG, NOC_DICT])
    ids = [s.scenario_id for s in corpus.values()]
    assert len(set(ids)) == len(ids) and all(ids)


@pytest.mark.parametrize(
    "rel, n, types, sdc, logged, roads",
    [
        (
            GD_RAD,
            100,
            {"VEHICLE": 98, "PEDESTRIAN": 2},
            99,
            True,
            {"lane": 82, "road_line": 29, "road_edge": 20, "stop_sign": 2, "crosswalk": 4, "speed_bump": 0, "driveway": 37},
        ),
        (
            GD_402,
            91,
            {"VEHICLE": 90, "CYCLIST": 1},
            90,
            True,
            {"lane": 73, "road_line": 44, "road_edge": 41, "stop_sign": 4, "crosswalk": 6, "speed_bump": 1, "driveway": 56},
        ),
        (
            GD_DEG,
            87,
            {"VEHICLE": 84, "CYCLIST": 2, "PEDESTRIAN": 1},
            10,
            False,
            {"lane": 198, "road_line": 45, "road_edge": 32, "stop_sign": 1, "crosswalk": 5, "speed_bump": 2, "driveway": 14},
        ),
        (
            NOC_DICT,
            77,
            {"VEHICLE": 68, "PEDESTRIAN": 9},
            27,
            False,
            {"lane": 212, "road_line": 44, "road_edge": 47, "stop_sign": 0, "crosswalk": 5, "speed_bump": 8, "driveway": 0},
        ),
        (
            NOC_X,
            124,
            {"VEHICLE": 90, "PEDESTRIAN": 33, "CYCLIST": 1},
            123,
            False,
            {"lane": 74, "road_line": 13, "road_edge": 24, "stop_sign": 5, "crosswalk": 6, "speed_bump": 2, "driveway": 0},
        ),
    ],
)
def test_pinned_files(corpus, rel, n, types, sdc, logged, roads):
    s = corpus[rel]
    assert (s.num_tracks, s.num_steps) == (n, 91)
    got = {ObjectType(t).name: int((s.object_types == t).sum()) for t in np.unique(s.object_types)}
    assert got == types
    assert (s.sdc_index, s.sdc_logged) == (sdc, logged)
    assert s.roadmap.counts() == roads
    np.testing.assert_allclose(s.timestamps, np.arange(91) * DT)
    assert s.object_types[s.sdc_index] == ObjectType.VEHICLE and s.tracks.valid[s.sdc_index, s.current_index]
    assert has_logged_sdc(read_json(data_file(rel))) == logged


def test_metadata_and_ids():
    s = load_scene_json(data_file(GD_RAD))
    assert s.scenario_id == "2af8a17d6cee3f8"
    assert s.tracks_to_predict.tolist() == [6, 56] and s.tracks_to_predict_difficulty.tolist() == [1, 1]
    assert s.track_ids[:2].tolist() == [707, 708] and s.track_ids[99] == 895  # the objects' "id"
    assert s.roadmap.ids[:5].tolist() == [1, 5, 6, 7, 8]  # the roads' "id"
    assert s.tracks.xyz[99, 10, 2] == pytest.approx(-45.80, abs=0.01)  # z kept
    np.testing.assert_allclose(s.tracks.size[99, 0], [5.286, 2.332, 2.33], atol=1e-3)  # height from the file
    n = load_scene_json(data_file(NOC_X))
    assert n.scenario_id == "00222-of-01000_260" and n.track_ids.tolist() == list(range(124))
    assert (n.tracks.xyz[..., 2] == 0).all()  # no z in Nocturne
    for t, height in ((ObjectType.VEHICLE, 1.5), (ObjectType.PEDESTRIAN, 1.8), (ObjectType.CYCLIST, 1.7)):
        np.testing.assert_allclose(n.tracks.size[n.object_types == t, :, 2], height, rtol=1e-6)  # defaults by type


def test_scenario_id_rule():
    assert scenario_id_of({"name": "tfrecord-00031-of-01000_123.json"}) == "00031-of-01000_123"
    assert scenario_id_of({"name": "tfrecord-00000-of-00150_238786b3cccc4a0e.json"}) == "238786b3cccc4a0e"
    assert scenario_id_of({"name": "tfrecord-ab2a72c63f8fd589.json"}) == "ab2a72c63f8fd589"
    assert scenario_id_of({"name": "x.json", "scenario_id": "abc"}) == "abc"
    assert scenario_id_of({}, "/some/dir/scene_7.json") == "scene_7"


def test_map_subtypes_from_map_element_id(corpus):
    rm = corpus[GD_DEG].roadmap

    def count(kind: MapKind, sub: int) -> int:
        return int(((rm.kinds == kind) & (rm.subtypes == sub)).sum())

    assert (count(MapKind.LANE, 2), count(MapKind.LANE, 3)) == (183, 15)  # surface street, bike lane
    assert [count(MapKind.ROAD_LINE, k) for k in (1, 2, 6, 7, 8)] == [20, 20, 1, 2, 2]
    assert (count(MapKind.ROAD_EDGE, 1), count(MapKind.ROAD_EDGE, 2)) == (30, 2)  # boundary, median
    stops = rm.select([MapKind.STOP_SIGN])
    assert (np.diff(rm.offsets)[stops] == 1).all()
    assert (corpus[NOC_X].roadmap.subtypes == 0).all()  # Nocturne has no map_element_id


def test_traffic_lights():
    s = load_scene_json(data_file(GD_RAD))
    tl = s.traffic_lights
    assert tl.valid.shape == (91, 14) and int(tl.valid.sum()) == 7 * 91 + 4 * 17 + 3 * 7
    k = int(np.flatnonzero(tl.lane_ids[0] == 155)[0])
    assert not tl.valid[:74, k].any() and tl.valid[74:, k].all()  # seen from time_index 74 on
    k = int(np.flatnonzero(tl.lane_ids[0] == 174)[0])
    assert tl.states[0, k] == SignalState.GO and tl.states[90, k] == SignalState.STOP
    np.testing.assert_allclose(tl.stop_points[0, k], [491.2799, 1282.3362, -47.3087], atol=1e-3)
    counts = {SignalState(v).name: int((tl.states[tl.valid] == v).sum()) for v in np.unique(tl.states[tl.valid])}
    assert counts == {"ARROW_STOP": 364, "STOP": 147, "CAUTION": 114, "UNKNOWN": 53, "GO": 48}
    noc = load_scene_json(data_file(NOC_DICT)).traffic_lights
    assert noc.valid.shape == (91, 11) and noc.valid.all() and (noc.stop_points[..., 2] == 0).all()


def test_dict_of_lists_positions(corpus):
    raw = read_json(data_file(NOC_DICT))
    assert isinstance(raw["objects"][0]["position"], dict)
    s = corpus[NOC_DICT]
    assert s.tracks.xy[0, 0] == pytest.approx((raw["objects"][0]["position"]["x"][0], raw["objects"][0]["position"]["y"][0]))
    assert s.tracks.velocity[0, 0] == pytest.approx((0.21728515625, 8.02734375))
    assert s.tracks.heading[0, 0] == pytest.approx(math.radians(89.05052424757635))


@pytest.mark.parametrize(
    "rel, unit",
    [
        (GD_RAD, "rad"),
        (GD_402, "rad"),
        (GD_DEG, "deg"),
        (NOC_DICT, "deg"),
        (NOC_X, "deg"),
        ("corpus/gpudrive/gd_tfrecord-00031-of-01000_123.json", "deg"),
    ],
)
def test_heading_unit_detected_from_content(rel, unit):
    assert heading_units(read_json(data_file(rel))) == unit


def test_heading_unit_rule_on_arrays():
    t = np.arange(20)
    valid = np.ones((1, 20), bool)
    vel = np.zeros((1, 20, 2))
    vel[...] = 10 * np.cos(math.radians(5)), 10 * np.sin(math.radians(5))  # moving at 5 degrees
    assert headings_in_degrees(np.full((1, 20), 5.0), vel, valid)  # |5| < 2 pi, but degrees by motion
    vel[...] = 0.0, 10.0  # moving along +y
    assert headings_in_degrees(np.full((1, 20), 90.0), vel, valid)
    assert not headings_in_degrees(np.full((1, 20), math.pi / 2), vel, valid)
    assert not headings_in_degrees(np.full((1, 20), math.pi / 2 + 2 * math.pi), vel, valid)  # unwrapped radians
    still = np.zeros((1, 20, 2))
    assert headings_in_degrees(np.where(t < 10, 90.0, 0.0)[None], still, valid)  # no motion: magnitude rule
    assert not headings_in_degrees(np.full((1, 20), 3.0), still, valid)


def test_headings_wrapped_and_aligned_with_motion(corpus):
    for rel, s in corpus.items():
        h = s.tracks.heading[s.tracks.valid]
        assert np.all((h >= -math.pi) & (h <= math.pi)), rel
        tr = s.tracks
        moving = tr.valid & (tr.speed > 2.0) & (s.object_types == ObjectType.VEHICLE)[:, None]
        err = np.abs((tr.heading - np.arctan2(tr.velocity[..., 1], tr.velocity[..., 0]) + math.pi) % (2 * math.pi) - math.pi)
        assert np.median(err[moving]) < 0.2, rel  # measured: at most 0.14 rad (nocturne_maps50 ..._451)


def test_speed_from_positions_matches_velocity(corpus):
    for rel, s in corpus.items():
        tr = s.tracks
        both = tr.valid[:, 1:] & tr.valid[:, :-1]
        step = np.linalg.norm(tr.xy[:, 1:] - tr.xy[:, :-1], axis=-1) / DT
        err = np.abs(step - 0.5 * (tr.speed[:, 1:] + tr.speed[:, :-1]))[both]
        assert np.median(err) < 0.2, rel  # measured: at most 0.095 m/s


def test_sdc_path_agrees_with_integrated_velocity(corpus):
    """Trapezoid-integrated velocity of the SDC stays within 1.5 m + 2% of its path (measured: at most 1.05 m)."""
    for rel, s in corpus.items():
        i = s.sdc_index
        steps = np.flatnonzero(s.tracks.valid[i])
        xy, vel = s.tracks.xy[i, steps], s.tracks.velocity[i, steps]
        gaps = np.diff(steps) * DT
        integ = xy[0] + np.concatenate([np.zeros((1, 2)), np.cumsum(0.5 * (vel[1:] + vel[:-1]) * gaps[:, None], 0)])
        path = np.linalg.norm(np.diff(xy, axis=0), axis=-1).sum()
        assert np.linalg.norm(integ - xy, axis=-1).max() < 1.5 + 0.02 * path, rel


def test_first_frame_boxes_barely_overlap(corpus):
    """Parked rows of cars overlap when a heading unit is wrong: 431 vehicle pairs then, against 13 as read."""
    ours = wrong = 0
    for rel, s in corpus.items():
        tr = s.tracks
        v = tr.valid[:, 0] & (s.object_types == ObjectType.VEHICLE)
        size = tr.size[:, 0]
        pairs = int(overlap_matrix(tr.xy[:, 0], tr.heading[:, 0], size[:, 0], size[:, 1], v).sum()) // 2
        assert pairs <= 2 + 0.02 * v.sum(), rel
        deg = heading_units(read_json(data_file(rel))) == "deg"
        other = np.rad2deg(tr.heading[:, 0]) if deg else np.deg2rad(tr.heading[:, 0])
        wrong += int(overlap_matrix(tr.xy[:, 0], other, size[:, 0], size[:, 1], v).sum()) // 2
        ours += pairs
    assert ours <= 20 and wrong >= 10 * ours


def test_chosen_sdc_rule(corpus):
    for rel, s in corpus.items():
        if s.sdc_logged:
            continue
        v = s.tracks.valid
        cur = s.current_index
        assert s.object_types[s.sdc_index] == ObjectType.VEHICLE and v[s.sdc_index, cur], rel
        run = np.array(
            [
                (np.cumprod(v[k, cur:]).sum() + np.cumprod(v[k, cur::-1]).sum() - 1) if v[k, cur] else 0
                for k in range(s.num_tracks)
            ]
        )
        veh = s.object_types == ObjectType.VEHICLE
        assert run[s.sdc_index] == run[veh].max(), rel
    xy = np.zeros((3, 21, 2))
    xy[1, :, 0] = np.arange(21)  # moves 20 m
    xy[2, :, 0] = 2 * np.arange(21)  # moves 40 m, but is a pedestrian
    valid = np.ones((3, 21), bool)
    types = np.array([1, 1, 2])
    assert choose_sdc(xy, valid, types, 10) == 1
    valid[1, 15] = False  # shorter run through step 10
    assert choose_sdc(xy, valid, types, 10) == 0
    none_now = np.zeros((3, 21), bool)
    none_now[0, :3] = none_now[2, :5] = True  # nobody valid at step 10: most valid steps, any type
    assert choose_sdc(xy, none_now, types, 10) == 2


def test_velocity_derived_when_missing():
    raw = read_json(data_file(NOC_X))
    stored = scenario_from_gpudrive(raw, "x").tracks
    for o in raw["objects"]:
        del o["velocity"]
    derived = scenario_from_gpudrive(raw, "x").tracks
    err = np.linalg.norm(derived.velocity - stored.velocity, axis=-1)[stored.valid]
    assert np.median(err) < 0.2


def test_looks_like_scene_json():
    assert looks_like_scene_json(read_json(data_file(GD_RAD)))
    assert not looks_like_scene_json(read_json(data_file(INDEX)))
    assert not looks_like_scene_json([1, 2]) and not looks_like_scene_json({"objects": []})


# --- bad input ----------------------------------------------------------------------


def _write(tmp_path: Path, obj, name: str = "scene.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return path


def test_missing_key_names_file_and_field(tmp_path):
    obj = read_json(data_file(NOC_X))
    del obj["objects"][0]["position"]
    path = _write(tmp_path, obj)
    with pytest.raises(SchemaError) as err:
        load_scene_json(path)
    assert err.value.field == "objects[0].position" and err.value.path == str(path)
    assert str(path) in str(err.value) and "missing key" in str(err.value)


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda o: o["objects"][3]["position"][12].pop("y"), "objects[3].position"),
        (lambda o: o["objects"][2]["heading"].pop(), "objects[2].heading"),
        (lambda o: o["objects"][1].__setitem__("length", "long"), "objects[1].length"),
        (lambda o: o["roads"][5].pop("geometry"), "roads[5].geometry"),
        (lambda o: o.__setitem__("metadata", {"sdc_track_index": 500}), "metadata.sdc_track_index"),
    ],
)
def test_bad_fields(tmp_path, edit, field):
    obj = read_json(data_file(NOC_X))
    edit(obj)
    with pytest.raises(SchemaError) as err:
        load_scene_json(_write(tmp_path, obj))
    assert err.value.field == field, str(err.value)


def test_nan_at_valid_step(tmp_path):
    obj = read_json(data_file(NOC_X))
    o = obj["objects"][4]
    k = o["valid"].index(True)
    o["position"][k]["x"] = float("nan")
    with pytest.raises(SchemaError) as err:
        load_scene_json(_write(tmp_path, obj))
    assert err.value.field == "objects[4].position" and "non-finite" in str(err.value)


def test_truncated_and_corrupt_files(tmp_path):
    data = data_file(NOC_X).read_bytes()
    cut = tmp_path / "cut.json"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedRecordError) as err:
        load_scene_json(cut)
    assert err.value.path == str(cut)
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    with pytest.raises(TruncatedRecordError):
        load_scene_json(empty)
    bad = tmp_path / "bad.json"
    bad.write_bytes(data[:1000] + b"}}}" + data[1000:])
    with pytest.raises(CorruptRecordError) as err:
        load_scene_json(bad)
    assert err.value.path == str(bad)


def test_cut_anywhere_is_truncated(tmp_path):
    """A file cut at any byte reads as truncated, also inside a number or ``true`` (where the parser stops early)."""
    data = data_file(NOC_X).read_bytes()
    rng = np.random.default_rng(0)
    path = tmp_path / "cut.json"
    for k in [1, 2, *rng.integers(3, len(data) - 2, 40).tolist()]:
        path.write_bytes(data[:k])
        with pytest.raises(TruncatedRecordError):
            read_json(path)


def test_missing_roads_names_roads(tmp_path):
    obj = read_json(data_file(NOC_X))
    del obj["roads"]
    with pytest.raises(SchemaError) as err:
        load_scene_json(_write(tmp_path, obj))
    assert err.value.field == "roads"


def test_index_json_is_not_a_scene():
    path = data_file(INDEX)
    with pytest.raises(SchemaError) as err:
        load_scene_json(path)
    assert err.value.path == str(path) and "valid_files.json" in str(err.value) and "index" in str(err.value)


def test_unknown_road_type_skipped_with_warning(caplog):
    obj = read_json(data_file(NOC_X))
    obj["roads"][0]["type"] = "pothole"
    with caplog.at_level(logging.WARNING):
        s = scenario_from_gpudrive(obj, "x.json")
    assert s.roadmap.num_features == 123 and "pothole" in caplog.text


def test_zero_footprints_get_their_type_default(corpus):
    """Three Nocturne files hold pedestrians and vehicles of length and width 0: every box must have an area."""
    from mad_sim.data.gpudrive_json import DEFAULT_FOOTPRINT

    for rel, s in corpus.items():
        assert (s.tracks.size[..., :2][s.tracks.valid] > 0).all(), rel
    s = corpus["corpus/nocturne/noc_state_test.json"]
    ped = s.object_types == ObjectType.PEDESTRIAN
    assert np.isclose(s.tracks.size[ped, 0, :2], DEFAULT_FOOTPRINT[int(ObjectType.PEDESTRIAN)]).all(1).sum() >= 1
