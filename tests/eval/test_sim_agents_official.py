"""Opt-in: our WOSAC scores agree with Waymo's own sim-agents metric code on the shared test submission.

Waymo's scorer (``waymo-open-dataset-tf-2-12-0`` 1.6.7, TensorFlow 2.13) lives in a separate virtual
environment, never the project's: build it with ``scripts/make_waymo_venv.sh`` (default
``~/.cache/mad-sim/waymo-venv``).  The test runs ``scripts/waymo_sim_agents_metrics.py`` in that
environment's Python, in a subprocess, on ``womd/test_submission.binproto`` (32 Waymo-made rollouts of
scenario 637f20cafde22ff8) with the 2025 sim-agents configuration, and compares every per-feature
likelihood, the meta-metric, ADE / minADE and the rates with :func:`score_rollouts` on the same file.

Opt-in, because it takes about ten minutes (Waymo's eager TensorFlow features on one CPU thread): runs
when ``MAD_SIM_WAYMO_PYTHON`` names that Python (``MAD_SIM_WAYMO_PYTHON=default`` for the venv the
script builds); then a missing or broken environment is a failure.  Skipped otherwise, even where the
venv exists, so the regular suite stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import data_file

REPO = Path(__file__).resolve().parents[2]
DEFAULT_VENV = Path.home() / ".cache" / "mad-sim" / "waymo-venv"
TOLERANCE = 1e-4
"""Largest |ours - Waymo's| allowed on a likelihood, the meta-metric or a rate; ADE / minADE to 1e-3 m."""


def _waymo_python() -> str:
    explicit = os.environ.get("MAD_SIM_WAYMO_PYTHON")
    if not explicit:
        pytest.skip(
            "opt-in (about 10 minutes): set MAD_SIM_WAYMO_PYTHON to the Python of Waymo's venv, or to 'default' "
            f"for {DEFAULT_VENV} (scripts/make_waymo_venv.sh builds it)"
        )
    if explicit == "default":
        return str(DEFAULT_VENV / "bin" / "python")
    return explicit


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    from mad_sim.eval.sim_agents.scoring import score_rollouts
    from mad_sim.eval.sim_agents.submission_io import read_submission

    from mad_sim.data import load_scenario

    scenario_path = data_file("womd/motion_data_one_scenario.tfrecord")
    submission = data_file("womd/test_submission.binproto")
    out = tmp_path_factory.mktemp("waymo") / "official.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [
            _waymo_python(),
            str(REPO / "scripts" / "waymo_sim_agents_metrics.py"),
            "--scenarios",
            str(scenario_path),
            "--submission",
            str(submission),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
        env=env,
        cwd=str(out.parent),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    official = json.loads(out.read_text())["637f20cafde22ff8"]
    ours = score_rollouts(load_scenario(scenario_path), read_submission(submission)[0])
    return ours, official


LIKELIHOODS = (
    "linear_speed",
    "linear_acceleration",
    "angular_speed",
    "angular_acceleration",
    "distance_to_nearest_object",
    "collision_indication",
    "time_to_collision",
    "distance_to_road_edge",
    "offroad_indication",
    "traffic_light_violation",
)


@pytest.mark.parametrize("feature", LIKELIHOODS)
def test_feature_likelihood_matches_waymo(both, feature):
    ours, official = both
    key = f"{feature}_likelihood"
    assert ours[key] == pytest.approx(official[key], abs=TOLERANCE), (ours[key], official[key])


def test_metametric_rates_and_ade_match_waymo(both):
    ours, official = both
    assert ours["evaluated_ids"] == sorted(official["evaluated_ids"])
    assert ours["metametric"] == pytest.approx(official["metametric"], abs=TOLERANCE)
    for key in ("simulated_collision_rate", "simulated_offroad_rate", "simulated_traffic_light_violation_rate"):
        assert ours[key] == pytest.approx(official[key], abs=TOLERANCE), key
    for key in ("average_displacement_error", "min_average_displacement_error"):
        assert ours[key] == pytest.approx(official[key], abs=1e-3), key
