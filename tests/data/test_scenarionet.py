"""ScenarioNet import: the real pickle, and refusal of unsafe or malformed pickles."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.data.scenario import ObjectType, SignalState
from mad_sim.data.scenarionet import safe_load, scenario_from_scenarionet
from mad_sim.errors import CorruptRecordError, SchemaError, TruncatedRecordError, UnsafePickleError


def test_real_scenarionet_file(scenarionet_path):
    s = load_scenario(scenarionet_path)
    assert (s.scenario_id, s.num_tracks, s.num_steps) == ("eb4b91b10ca94ff2", 45, 199)
    assert s.sdc_index == 44 and s.track_ids[44] == 51
    assert s.roadmap.num_features == 209
    assert s.roadmap.counts() == {
        "lane": 107,
        "road_line": 53,
        "road_edge": 33,
        "stop_sign": 1,
        "crosswalk": 5,
        "speed_bump": 1,
        "driveway": 9,
    }
    assert (s.object_types == ObjectType.VEHICLE).all()
    assert s.objects_of_interest.tolist() == [11, 17]
    assert s.traffic_lights.valid.shape == (199, 14)
    assert (s.traffic_lights.states[s.traffic_lights.valid] == SignalState.STOP).sum() == 414
    assert (s.traffic_lights.states[s.traffic_lights.valid] == SignalState.GO).sum() == 780
    info = s.roadmap.lanes[144]
    assert (info.speed_limit_mph, info.exit_lanes, info.left_neighbors, info.right_neighbors) == (40.0, [277], [145], [281, 279])
    assert s.roadmap.stop_sign_lanes == {331: [279]}
    np.testing.assert_allclose(np.diff(s.timestamps), 0.1, atol=0.002)
    sdc = s.tracks.xy[44][s.tracks.valid[44]]
    assert 50 < np.linalg.norm(sdc[-1] - sdc[0]) < 70


def test_malicious_pickle_is_refused_without_running(tmp_path: Path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"metadata": {}, "tracks": Evil()}))
    with pytest.raises(UnsafePickleError, match=r"refused global (posix|os|nt)\.system") as err:
        load_scenario(bad)
    assert err.value.record == 0 and str(bad) in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("obj", [Path("x"), np.random.default_rng(0)])
def test_other_classes_are_refused(tmp_path: Path, obj):
    bad = tmp_path / "obj.pkl"
    bad.write_bytes(pickle.dumps(obj))
    with pytest.raises(UnsafePickleError):
        safe_load(bad)


def test_truncated_and_garbage_pickles(scenarionet_path, tmp_path: Path):
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(scenarionet_path.read_bytes()[:1000])
    with pytest.raises((TruncatedRecordError, CorruptRecordError)) as err:
        load_scenario(cut)
    assert str(cut) in str(err.value)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(TruncatedRecordError, match="empty file"):
        load_scenario(empty)


def test_missing_keys_name_the_field(scenarionet_path):
    data = safe_load(scenarionet_path)
    del data["tracks"]["3"]["state"]["heading"]
    with pytest.raises(SchemaError, match=r"field 'tracks.3.state.heading'"):
        scenario_from_scenarionet(data, "mem.pkl")
    data = safe_load(scenarionet_path)
    data["tracks"]["3"]["state"]["valid"] = data["tracks"]["3"]["state"]["valid"][:-1]
    with pytest.raises(SchemaError, match=r"shape \(198,\), expected \(199,\)"):
        scenario_from_scenarionet(data, "mem.pkl")
    with pytest.raises(SchemaError, match="missing key"):
        scenario_from_scenarionet({"tracks": {}}, "mem.pkl")
