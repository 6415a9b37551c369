"""The early MetaDrive dicts (corpus/metadrive_waymo_20s) and ScenarioNet nuScenes scenes (corpus/nuscenes)."""

from __future__ import annotations

import builtins
import collections
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from mad_sim.data.scenario import (
    MapKind,
    ObjectType,
    RoadEdgeType,
    Scenario,
    SignalState,
)
from mad_sim.data.scenarionet import (
    load_scenarionet,
    safe_load,
    scenario_from_scenarionet,
)
from mad_sim.errors import SchemaError, TruncatedRecordError, UnsafePickleError
from tests.conftest import data_file

MD20S = ["250011f460de6135", "2831b6fde0420b0d", "61fa872f2d274223", "8799c31b5be1f312", "8d3d061e518531d0", "b36a6d0bc9e525bc"]
NUSCENES = ["0061", "0103", "0553", "0655", "0757", "0796", "0916", "1077", "1094", "1100"]


def md20s(name: str) -> Path:
    return data_file(f"corpus/metadrive_waymo_20s/md20s_{name}.pkl")


def nuscenes(scene: str) -> Path:
    return data_file(f"corpus/nuscenes/sd_nuscenes_v1.0-mini_scene-{scene}.pkl")


ALL_FILES = [pytest.param(md20s, n, id=f"md20s-{n}") for n in MD20S] + [
    pytest.param(nuscenes, n, id=f"nuscenes-{n}") for n in NUSCENES
]


def _counts(s: Scenario) -> dict:
    return {k: v for k, v in s.roadmap.counts().items() if v}


@pytest.mark.parametrize("where, name", ALL_FILES)
def test_every_file_loads_with_sane_physics(where, name):
    s = load_scenarionet(where(name))
    tr = s.tracks
    assert 190 <= s.num_steps <= 201 and s.num_tracks >= 19
    assert s.object_labels.shape == (s.num_tracks,) and s.labels().tolist() == s.object_labels.tolist()
    assert tr.valid[s.sdc_index].any()
    h = tr.heading[tr.valid]
    assert h.min() >= -np.pi and h.max() <= np.pi
    dt = np.diff(s.timestamps)
    assert abs(np.median(dt) - 0.1) < 1e-3 and dt.min() > 0.085 and dt.max() < 0.105  # one WOMD gap is 0.0894 s
    # speed from positions vs the stored velocity (the velocity at the later step of each pair)
    both = tr.valid[:, 1:] & tr.valid[:, :-1]
    err = np.linalg.norm(np.diff(tr.xy, axis=1) / dt[None, :, None] - tr.velocity[:, 1:], axis=-1)
    per_track = np.array([np.median(err[i][both[i]]) for i in range(s.num_tracks) if both[i].sum() >= 5])
    assert np.median(per_track) < 0.01 and per_track.max() < 0.2, (np.median(per_track), per_track.max())
    # the SDC drives on the map: its positions lie near lane centrelines
    lanes = np.isin(s.roadmap.point_feature_index(), s.roadmap.select([MapKind.LANE]))
    sdc = tr.xy[s.sdc_index][tr.valid[s.sdc_index]][::10]
    gap = np.sqrt(((sdc[:, None] - s.roadmap.points[lanes][None, :, :2]) ** 2).sum(-1)).min(1)
    assert np.median(gap) < 1.5
    # lanes are 3D points, never (x, y, yaw) poses
    assert np.isfinite(s.roadmap.points).all()


def test_early_metadrive_old_format():
    """``version: "old format"``: top-level ts/sdc id, float valid [T, 1], int map keys, MetaDrive 0.2 map types."""
    s = load_scenarionet(md20s("2831b6fde0420b0d"))
    assert (s.scenario_id, s.num_tracks, s.num_steps, s.current_index) == ("2831b6fde0420b0d", 19, 199, 0)
    assert s.sdc_index == 18 and s.track_ids[18] == 1538
    assert _counts(s) == {"lane": 231, "road_line": 34, "road_edge": 67, "stop_sign": 6, "speed_bump": 4}
    edges = s.roadmap.subtypes[s.roadmap.kinds == MapKind.ROAD_EDGE]
    assert ((edges == RoadEdgeType.BOUNDARY).sum(), (edges == RoadEdgeType.MEDIAN).sum()) == (63, 4)
    assert s.roadmap.stop_sign_lanes[530] == [395] and s.roadmap.stop_sign_lanes[532] == [451, 456, 463]
    info = s.roadmap.lanes[167]  # old names: entry/exit, neighbours as {"id": ...}
    assert (info.entry_lanes, info.exit_lanes, info.left_neighbors, info.right_neighbors) == ([168], [487], [144], [169, 488])
    assert collections.Counter(s.labels().tolist()) == {"VEHICLE": 19}
    assert s.traffic_lights.valid.shape == (199, 0)
    np.testing.assert_allclose(s.timestamps[-1], 19.8, atol=1e-3)
    np.testing.assert_allclose(np.median(s.tracks.size[18][s.tracks.valid[18]], 0), [5.286, 2.332, 2.332], atol=0.01)


def test_early_metadrive_v03_without_metadata():
    """``MetaDrive v0.3.0.1`` ScenarioDescription: the top-level sdc_track_index 46 is an id (track 35)."""
    s = load_scenarionet(md20s("8799c31b5be1f312"))
    assert (s.num_tracks, s.num_steps) == (36, 198)
    assert s.sdc_index == 35 and s.track_ids[35] == 46
    assert _counts(s) == {"lane": 79, "road_line": 18, "road_edge": 20, "stop_sign": 2, "crosswalk": 4, "speed_bump": 1}
    assert collections.Counter(s.labels().tolist()) == {"VEHICLE": 26, "CYCLIST": 6, "PEDESTRIAN": 4}
    tl = s.traffic_lights  # int WOMD states, per-step lane ids, 0 where not observed
    assert tl.valid.shape == (198, 6) and tl.valid.sum() == 6
    assert (tl.states[tl.valid] == SignalState.STOP).all()
    assert sorted(set(tl.lane_ids[0].tolist())) == [47, 134, 135, 136, 137, 138]


def test_early_metadrive_v03_with_metadata():
    s = load_scenarionet(md20s("b36a6d0bc9e525bc"))
    assert (s.scenario_id, s.num_tracks, s.num_steps) == ("b36a6d0bc9e525bc", 182, 200)
    assert s.sdc_index == 181 and s.track_ids[181] == 4876
    assert _counts(s) == {"lane": 222, "road_line": 81, "road_edge": 51, "stop_sign": 7, "crosswalk": 10, "speed_bump": 9}
    assert collections.Counter(s.labels().tolist()) == {"VEHICLE": 168, "PEDESTRIAN": 11, "CYCLIST": 3}
    tl = s.traffic_lights
    assert tl.valid.shape == (200, 21) and tl.valid.sum() == 1849
    states = collections.Counter(tl.states[tl.valid].tolist())
    assert states == {
        SignalState.GO: 732,
        SignalState.ARROW_STOP: 456,
        SignalState.STOP: 344,
        SignalState.UNKNOWN: 260,
        SignalState.ARROW_GO: 57,
    }
    assert {round(i.speed_limit_mph) for i in s.roadmap.lanes.values()} == {0, 15, 25, 30, 35}


@pytest.mark.parametrize(
    "scene, n, t, sdc, counts, labels",
    [
        (
            "0061",
            226,
            191,
            12,
            {"lane": 460, "road_line": 97, "road_edge": 29},
            {"TRAFFIC_CONE": 71, "TRAFFIC_BARRIER": 65, "PEDESTRIAN": 60, "VEHICLE": 24, "CYCLIST": 6},
        ),
        (
            "0103",
            122,
            196,
            2,
            {"lane": 358, "road_line": 149, "road_edge": 6},
            {"VEHICLE": 61, "PEDESTRIAN": 46, "TRAFFIC_CONE": 8, "CYCLIST": 7},
        ),
    ],
)
def test_nuscenes_scene(scene, n, t, sdc, counts, labels):
    path = nuscenes(scene)
    s = load_scenarionet(path)
    assert (s.scenario_id, s.num_tracks, s.num_steps, s.current_index) == (f"scene-{scene}", n, t, 0)
    assert s.sdc_index == sdc == list(safe_load(path)["tracks"]).index("ego")
    assert _counts(s) == counts
    # road edges are ScenarioNet's "boundary_*" lines; no lane graph, no traffic lights in nuScenes-mini
    assert (s.roadmap.subtypes[s.roadmap.kinds == MapKind.ROAD_EDGE] == RoadEdgeType.BOUNDARY).all()
    assert s.traffic_lights.valid.shape == (t, 0)
    lab = s.labels()
    assert collections.Counter(lab.tolist()) == labels
    static = np.isin(lab, ["TRAFFIC_CONE", "TRAFFIC_BARRIER"])
    assert (s.object_types[static] == ObjectType.OTHER).all()
    assert (s.object_types[lab == "VEHICLE"] == ObjectType.VEHICLE).all()
    assert (s.object_types[lab == "PEDESTRIAN"] == ObjectType.PEDESTRIAN).all()
    # cones and barriers stand still (annotation jitter only)
    moved = [np.ptp(s.tracks.xy[i][s.tracks.valid[i]], axis=0).max() for i in np.flatnonzero(static)]
    assert max(moved, default=0.0) < 0.6
    # the ego box comes swapped (1.73 m long, 4.08 m wide) and is read the right way round
    np.testing.assert_allclose(s.tracks.size[sdc][s.tracks.valid[sdc]][0], [4.08, 1.73, 1.56], atol=0.01)
    lanes = s.roadmap.select([MapKind.LANE])
    lane_z = s.roadmap.points[np.isin(s.roadmap.point_feature_index(), lanes), 2]
    assert (lane_z == 0).all()  # the (x, y, yaw) poses lost their yaw, not kept as a height


def test_labels_fall_back_and_womd_round_trip_keeps_other(tmp_path: Path):
    from mad_sim.data import load_scenario
    from mad_sim.data.womd import write_scenarios

    s = load_scenarionet(nuscenes("0757"))
    out = tmp_path / "nu.tfrecord"
    write_scenarios(out, s)
    back = load_scenario(out)
    assert back.object_labels.shape == (0,)
    np.testing.assert_array_equal(back.object_types, s.object_types)
    assert collections.Counter(back.labels().tolist()) == {"VEHICLE": 22, "OTHER": 5, "PEDESTRIAN": 2, "CYCLIST": 1}
    assert collections.Counter(s.labels().tolist())["TRAFFIC_CONE"] == 5


def test_label_shape_is_validated():
    s = load_scenarionet(nuscenes("0757"))
    s.object_labels = s.object_labels[:-1]
    with pytest.raises(SchemaError, match="labels") as err:
        s.validate()
    assert err.value.field == "object_labels"


# --- refusal of bad input, per flavour ---------------------------------------------------------------------


def _early_dict(payload):
    return {"id": "x", "version": "old format", "ts": [0.0, 0.1], "sdc_track_index": "1", "tracks": payload}


def _nuscenes_dict(payload):
    return {
        "id": "scene-x",
        "metadata": {"sdc_id": "ego", "ts": np.zeros(2), "dataset": "nuscenes"},
        "tracks": {"ego": {"type": "VEHICLE", "state": {}}},
        "map_features": payload,
    }


@pytest.mark.parametrize("flavour", ["early", "description", "nuscenes"])
def test_malicious_pickle_is_refused(tmp_path: Path, monkeypatch, flavour):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            if flavour == "nuscenes":
                return (builtins.eval, (f"open({str(marker)!r}, 'w')",))
            return (os.system, (f"touch {marker}",))

    if flavour == "description":  # pickled as MetaDrive's ScenarioDescription (allowed) holding the payload
        module = types.ModuleType("metadrive.scenario.scenario_description")

        class ScenarioDescription(dict):
            pass

        ScenarioDescription.__module__ = module.__name__
        ScenarioDescription.__qualname__ = "ScenarioDescription"
        module.ScenarioDescription = ScenarioDescription  # type: ignore[attr-defined]
        for name in ("metadrive", "metadrive.scenario", module.__name__):
            monkeypatch.setitem(sys.modules, name, module)
        payload = pickle.dumps(ScenarioDescription(_early_dict({"1": Evil()})))
        assert b"ScenarioDescription" in payload
    elif flavour == "early":
        payload = pickle.dumps(_early_dict({"1": Evil()}))
    else:
        payload = pickle.dumps(_nuscenes_dict({"boundary_0": Evil()}))
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(payload)
    with pytest.raises(UnsafePickleError, match=r"refused global (posix|os|nt|builtins)\.(system|eval)") as err:
        load_scenarionet(bad)
    assert str(bad) in str(err.value)
    assert not marker.exists()


def test_scenario_description_reads_as_dict():
    data = safe_load(md20s("250011f460de6135"))
    assert type(data) is dict and data["version"] == "MetaDrive v0.3.0.1"


def test_missing_keys_name_the_field():
    data = safe_load(md20s("2831b6fde0420b0d"))
    del data["tracks"]["1537"]["state"]["position"]
    with pytest.raises(SchemaError, match=r"field 'tracks.1537.state.position'.*missing key"):
        scenario_from_scenarionet(data, "mem.pkl")
    data = safe_load(md20s("2831b6fde0420b0d"))
    del data["tracks"]["1537"]["state"]["size"]
    with pytest.raises(SchemaError, match=r"field 'tracks.1537.state.length'"):
        scenario_from_scenarionet(data, "mem.pkl")
    data = safe_load(md20s("2831b6fde0420b0d"))
    del data["ts"]
    with pytest.raises(SchemaError, match=r"field 'ts'"):
        scenario_from_scenarionet(data, "mem.pkl")
    data = safe_load(md20s("2831b6fde0420b0d"))
    data["sdc_track_index"] = "99999"
    with pytest.raises(SchemaError, match=r"field 'sdc_track_index'.*'99999' is not a track"):
        scenario_from_scenarionet(data, "mem.pkl")
    data = safe_load(nuscenes("0757"))
    del data["tracks"]["ego"]["state"]["position"]
    with pytest.raises(SchemaError, match=r"field 'tracks.ego.state.position'"):
        scenario_from_scenarionet(data, "mem.pkl")
    data = safe_load(nuscenes("0757"))
    key = next(k for k in data["map_features"] if k.startswith("boundary_"))
    del data["map_features"][key]["polyline"]
    with pytest.raises(SchemaError, match=rf"field 'map_features.{key}.polyline'"):
        scenario_from_scenarionet(data, "mem.pkl")


@pytest.mark.parametrize(
    "path",
    [lambda: md20s("2831b6fde0420b0d"), lambda: md20s("8799c31b5be1f312"), lambda: nuscenes("0757")],
    ids=["old-format", "description", "nuscenes"],
)
def test_truncated_file(tmp_path: Path, path):
    raw = path().read_bytes()
    for cut in (10, len(raw) // 2, len(raw) - 1):
        bad = tmp_path / f"cut{cut}.pkl"
        bad.write_bytes(raw[:cut])
        with pytest.raises(TruncatedRecordError) as err:
            load_scenarionet(bad)
        assert str(bad) in str(err.value)
