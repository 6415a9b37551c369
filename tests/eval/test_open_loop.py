"""Open-loop evaluation on the real logs."""

import numpy as np
import pytest
from mad_sim.eval.open_loop import OpenLoopSettings, evaluate_scenario, run_open_loop
from mad_sim.planners import make_planner

from mad_sim.data import load_scenario


def test_expert_is_exact(womd_path, scenarionet_path):
    res = run_open_loop([str(womd_path), str(scenarionet_path)], ["expert"], OpenLoopSettings(), progress=False)
    agg = res["expert"]["aggregate"]
    assert agg["num_scenarios"] == 2
    assert agg["minADE"] == 0.0 and agg["minFDE"] == 0.0 and agg["miss_rate"] == 0.0 and agg["APD"] == 0.0


def test_cv_idm_numbers(womd_path, womd_still_path, scenarionet_path):
    spec = [str(womd_path), str(womd_still_path), str(scenarionet_path)]
    res = run_open_loop(spec, ["cv", "idm"], OpenLoopSettings(k=6, horizon_s=8.0), progress=False)
    cv, idm = res["cv"], res["idm"]
    by_id = {r["scenario_id"]: r for r in cv["scenarios"]}
    # the ego of 637f20cafde22ff8 stands still for 9 s: constant velocity is exact there
    assert by_id["637f20cafde22ff8"]["minADE"] < 0.01
    assert by_id["637f20cafde22ff8"]["APD"] < 0.01
    # ee519cf571686d19: the ego drives 24.5 m and turns; CV's straight lines miss it by metres
    assert 1.5 < by_id["ee519cf571686d19"]["minADE"] < 5.0
    # IDM follows the lanes: better than CV on average, and more diverse (lane + speed choices)
    assert idm["aggregate"]["minADE"] < cv["aggregate"]["minADE"]
    assert idm["aggregate"]["APD"] > cv["aggregate"]["APD"]
    for r in cv["scenarios"] + idm["scenarios"]:
        assert r["valid_steps"] > 0 and np.isfinite(r["minADE"]) and r["APD_flat"] >= r["APD"]


def test_windows_and_tracks_to_predict(womd_path):
    scenario = load_scenario(womd_path)
    rows = evaluate_scenario(scenario, make_planner("cv"), OpenLoopSettings(horizon_s=3.0, stride=20, tracks_to_predict=True))
    t0s = sorted({r["t0"] for r in rows})
    assert t0s == [10, 30, 50]
    tracks = {r["track"] for r in rows}
    assert scenario.sdc_index in tracks and len(tracks) > 1
    assert all(np.isnan(r["miss_5s"]) for r in rows)  # beyond a 3 s horizon: not scored


def test_workers_match_serial(womd_path, scenarionet_path):
    spec = [str(womd_path), str(scenarionet_path)]
    a = run_open_loop(spec, ["cv"], OpenLoopSettings(), workers=1, progress=False)
    b = run_open_loop(spec, ["cv"], OpenLoopSettings(), workers=2, progress=False)
    assert a["cv"]["aggregate"] == pytest.approx(b["cv"]["aggregate"])


def test_valid_proposals_reported(womd_path):
    """A planner that reports valid proposals / fallbacks in Plan.info gets them in its rows and the aggregate;
    planners that do not report them get None (left out of the mean, '-' in the table)."""
    from mad_sim.eval.open_loop import aggregate
    from mad_sim.eval.report import table
    from mad_sim.planners.base import Plan

    class HalfFallback:
        name = "half"

        def __init__(self) -> None:
            self.cv = make_planner("cv")
            self.calls = 0

        def plan(self, ctx, k, horizon):
            p = self.cv.plan(ctx, k, horizon)
            self.calls += 1
            valid = 4 if self.calls == 1 else 2
            return Plan(
                p.xy, p.heading, p.probabilities, info={"valid_proposals": valid, "fallback": [i >= valid for i in range(k)]}
            )

    scenario = load_scenario(womd_path)
    settings = OpenLoopSettings(k=6, horizon_s=3.0, stride=20)
    rows = evaluate_scenario(scenario, HalfFallback(), settings)
    assert [r["valid_proposals"] for r in rows] == [4, 2, 2] and [r["fallback_proposals"] for r in rows] == [2, 4, 4]
    agg = aggregate(rows)
    assert agg["valid_proposals"] == pytest.approx(8 / 3)
    cv_rows = evaluate_scenario(scenario, make_planner("cv"), settings)
    assert all(r["valid_proposals"] is None and r["fallback_proposals"] is None for r in cv_rows)
    cv_agg = aggregate(cv_rows)
    assert cv_agg["valid_proposals"] is None and cv_agg["minADE"] > 0
    text = table({"half": {"aggregate": agg}, "cv": {"aggregate": cv_agg}}, ["minADE", "valid_proposals"])
    assert "2.667" in text and text.splitlines()[-1].split()[-1] == "-"
