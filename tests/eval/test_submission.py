"""The 32 Waymo-made rollouts of scenario 637f20cafde22ff8 as K = 32 predictions per object."""

import numpy as np
import pytest
from mad_sim.eval.submission import read_submission, rollout_metrics

from mad_sim.data import load_scenario
from mad_sim.errors import SchemaError


def test_submission_metrics(submission_path, womd_still_path):
    rollouts = read_submission(submission_path)
    assert len(rollouts) == 1
    r = rollouts[0]
    assert r.scenario_id == "637f20cafde22ff8"
    assert r.xy.shape == (32, 50, 80, 2)
    scenario = load_scenario(womd_still_path)
    m = rollout_metrics(r, scenario)
    assert m["k"] == 32 and m["num_objects"] == 50
    # measured: minADE 1.258 m, minFDE 2.217 m, APD 1.172 m, miss rate 0.10
    assert m["minADE"] == pytest.approx(1.258, abs=0.01)
    assert m["minFDE"] == pytest.approx(2.217, abs=0.01)
    assert m["APD"] == pytest.approx(1.172, abs=0.01)
    assert m["miss_rate"] == pytest.approx(0.10, abs=0.01)
    # the rollouts start one step after current_index: shifting the log by a step makes them worse
    idx = {int(i): n for n, i in enumerate(scenario.track_ids)}
    rows = np.array([idx[int(i)] for i in r.object_ids])
    err = {}
    for shift in (0, 1, 2):
        gt = scenario.tracks.xy[rows, 10 + shift : 15 + shift]
        ok = scenario.tracks.valid[rows, 10 + shift : 15 + shift]
        err[shift] = np.median(np.linalg.norm(r.xy[:, :, :5] - gt[None], axis=-1)[:, ok])
    assert err[1] < err[0] and err[1] < err[2]


def test_submission_against_wrong_log(submission_path, womd_path):
    r = read_submission(submission_path)[0]
    with pytest.raises(SchemaError, match="scenario"):
        rollout_metrics(r, load_scenario(womd_path))


def test_not_a_submission(womd_path):
    with pytest.raises(SchemaError):
        read_submission(womd_path)
