"""The shared Waymo test submission (32 rollouts of scenario 637f20cafde22ff8) scored end to end; export / import."""

import numpy as np
import pytest
from mad_sim.eval.sim_agents.config import FEATURES, WOSAC_2025
from mad_sim.eval.sim_agents.rollout_set import SimRollouts, evaluated_ids, sim_agent_rows
from mad_sim.eval.sim_agents.scoring import score_rollouts
from mad_sim.eval.sim_agents.submission_io import read_submission, write_submission

from mad_sim.data import load_scenario
from mad_sim.errors import SchemaError, ShapeError

WAYMO_637F = {
    "linear_speed_likelihood": 0.647147,
    "linear_acceleration_likelihood": 0.129309,
    "angular_speed_likelihood": 0.061596,
    "angular_acceleration_likelihood": 0.309280,
    "distance_to_nearest_object_likelihood": 0.237239,
    "collision_indication_likelihood": 0.052868,
    "time_to_collision_likelihood": 0.754345,
    "distance_to_road_edge_likelihood": 0.402153,
    "offroad_indication_likelihood": 0.073568,
    "traffic_light_violation_likelihood": 0.999969,
    "metametric": 0.258240,
    "average_displacement_error": 2.505281,
    "min_average_displacement_error": 2.084689,
    "simulated_collision_rate": 0.6875,
    "simulated_offroad_rate": 0.265625,
    "simulated_traffic_light_violation_rate": 0.0,
}
"""Waymo's scores of the shared test submission (6 decimals), as its scorer printed them."""


@pytest.fixture(scope="module")
def scored(request):
    from tests.conftest import data_file

    scenario = load_scenario(data_file("womd/motion_data_one_scenario.tfrecord"))
    rollouts = read_submission(data_file("womd/test_submission.binproto"))[0]
    return scenario, rollouts, score_rollouts(scenario, rollouts)


def test_submission_scored(scored):
    scenario, rollouts, row = scored
    assert rollouts.xyz.shape == (32, 50, 80, 3)
    assert row["evaluated_ids"] == [1675, 1676, 2320, 2406]  # the SDC and the 3 tracks to predict
    for f in FEATURES:
        assert 0.0 < row[f"{f}_likelihood"] <= 1.0
    assert row["metametric"] == pytest.approx(sum(WOSAC_2025[f].weight * row[f"{f}_likelihood"] for f in FEATURES))
    # Waymo's own scorer on this file (compute_scenario_metrics_for_bundle, 2025 config, waymo-open-dataset
    # 1.6.7; scripts/waymo_sim_agents_metrics.py, re-checked by the opt-in tests/eval/test_sim_agents_official.py)
    for key, value in WAYMO_637F.items():
        assert row[key] == pytest.approx(value, abs=1e-4), key
    assert row["has_traffic_lights"]


def _log_rollouts(scenario, r=4, t=80):
    rows = sim_agent_rows(scenario)
    t0 = scenario.current_index
    tr = scenario.tracks
    xyz = np.repeat(tr.xyz[rows, t0 + 1 : t0 + 1 + t][None], r, 0)
    heading = np.repeat(tr.heading[rows, t0 + 1 : t0 + 1 + t][None], r, 0)
    return SimRollouts(scenario.scenario_id, scenario.track_ids[rows].astype(np.int64), xyz, heading)


def test_log_as_rollouts_is_near_perfect(scored):
    scenario = scored[0]
    row = score_rollouts(scenario, _log_rollouts(scenario))
    assert row["min_average_displacement_error"] == pytest.approx(0.0, abs=1e-9)
    for f in ("collision_indication", "offroad_indication", "traffic_light_violation"):
        assert row[f"{f}_likelihood"] == pytest.approx(4.001 / 4.002, abs=1e-6)
    assert row["metametric"] > scored[2]["metametric"] + 0.3


def test_roundtrip(tmp_path, scored):
    _, rollouts, _ = scored
    path = tmp_path / "out.binproto"
    small = SimRollouts(rollouts.scenario_id, rollouts.object_ids, rollouts.xyz[:2], rollouts.heading[:2])
    write_submission(path, [small], method_name="test")
    back = read_submission(path)[0]
    assert back.scenario_id == small.scenario_id and list(back.object_ids) == list(small.object_ids)
    np.testing.assert_allclose(back.xyz, small.xyz, atol=1e-3)  # float32 on the wire
    np.testing.assert_allclose(back.heading, small.heading, atol=1e-6)


def test_bad_rollouts(scored, womd_path):
    scenario, rollouts, _ = scored
    with pytest.raises(SchemaError, match="scenario"):
        score_rollouts(load_scenario(womd_path), rollouts)
    short = _log_rollouts(scenario, 2, 80)
    long = SimRollouts(
        short.scenario_id, short.object_ids, np.concatenate([short.xyz] * 2, 2), np.concatenate([short.heading] * 2, 2)
    )
    with pytest.raises(ShapeError, match="160 steps"):
        score_rollouts(scenario, long)
    nan = _log_rollouts(scenario, 2, 10)
    nan.xyz[1, 3, 4, 0] = np.nan
    with pytest.raises(ShapeError, match="rollout 1, object .* step 4 is not finite"):
        score_rollouts(scenario, nan)
    ok = _log_rollouts(scenario, 2, 10)
    missing = SimRollouts(ok.scenario_id, ok.object_ids[1:], ok.xyz[:, 1:], ok.heading[:, 1:])
    with pytest.raises(SchemaError, match="missing"):
        score_rollouts(scenario, missing)
    assert len(evaluated_ids(scenario)) == 4


def test_not_a_submission(womd_path, tmp_path):
    with pytest.raises(SchemaError, match="SimAgentsChallengeSubmission"):
        read_submission(womd_path)


def test_shards_from_parts(tmp_path, scored):
    """Parts concatenate into shards of at most ``per_shard`` scenarios, read back as one submission."""
    from mad_sim.eval.sim_agents.submission_io import write_submission_part, write_submission_shards

    from mad_sim.data.proto import sim_agents_submission_pb2 as pb

    _, rollouts, _ = scored
    parts = []
    for k in range(3):
        ro = SimRollouts(f"s{k}", rollouts.object_ids[:3], rollouts.xyz[:2, :3, :5] + k, rollouts.heading[:2, :3, :5])
        parts.append(tmp_path / "parts" / f"s{k}.binproto")
        write_submission_part(parts[-1], ro)
    shards = write_submission_shards(tmp_path, "cv", parts, per_shard=2, authors=["a"])
    assert [p.rsplit("/", 1)[1] for p in shards] == ["cv.binproto-00000-of-00002", "cv.binproto-00001-of-00002"]
    first = pb.SimAgentsChallengeSubmission.FromString(open(shards[0], "rb").read())
    assert first.unique_method_name == "cv" and list(first.authors) == ["a"]
    assert first.submission_type == pb.SimAgentsChallengeSubmission.SIM_AGENTS_SUBMISSION
    back = read_submission(shards)
    assert [r.scenario_id for r in back] == ["s0", "s1", "s2"]
    np.testing.assert_allclose(back[2].xyz, rollouts.xyz[:2, :3, :5] + 2, atol=1e-3)


def test_a_map_without_road_edges_skips_their_features(scored, caplog):
    """The shared submission on its scene with the road edges relabelled as road lines: the two road-edge
    features (and the meta-metric, which needs them) are not scored, with a warning; the others are unchanged."""
    import dataclasses

    from mad_sim.eval.sim_agents.likelihood import aggregate

    from mad_sim.data.scenario import MapKind

    scenario, rollouts, full = scored
    rm = scenario.roadmap
    kinds = np.where(rm.kinds == int(MapKind.ROAD_EDGE), int(MapKind.ROAD_LINE), rm.kinds).astype(rm.kinds.dtype)
    bare = dataclasses.replace(scenario, roadmap=dataclasses.replace(rm, kinds=kinds))
    with caplog.at_level("WARNING"):
        row = score_rollouts(bare, rollouts)
    assert "no road edge" in caplog.text
    assert row["skipped_features"] == ["distance_to_road_edge", "offroad_indication"] and full["skipped_features"] == []
    for key in (
        "distance_to_road_edge_likelihood",
        "offroad_indication_likelihood",
        "metametric",
        "map_based_metrics",
        "simulated_offroad_rate",
    ):
        assert np.isnan(row[key])
    for f in FEATURES[:7] + ("traffic_light_violation",):
        assert row[f"{f}_likelihood"] == pytest.approx(full[f"{f}_likelihood"], abs=1e-12)
    agg = aggregate([full, row])
    assert agg["num_scenarios"] == 2 and agg["num_scenarios_without_road_edge"] == 1
    assert agg["metametric"] == pytest.approx(full["metametric"])  # the scene drops out of that mean only
