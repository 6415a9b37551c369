"""Shared fixtures.

Real data lives in ``../shared/data`` beside the checkout (or wherever
``MAD_SIM_DATA`` points).  Tests that need it use the ``shared_data`` fixture
or :func:`data_file`: when the data is missing they skip with the reason,
except under ``CI=true``, where a missing file is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mad_sim.data.root import data_root

REPO = Path(__file__).resolve().parents[1]
__all__ = ["REPO", "data_file", "data_root"]


def data_file(relative: str) -> Path:
    """Path of a file under the shared data folder; skip (or fail under CI) if it is missing."""
    path = data_root() / relative
    if not path.is_file():
        msg = f"shared data file {path} is missing"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: data is required)")
        pytest.skip(msg)
    return path


@pytest.fixture
def womd_path() -> Path:
    return data_file("womd/womd_scenario_input.tfrecord")


@pytest.fixture
def womd_still_path() -> Path:
    return data_file("womd/motion_data_one_scenario.tfrecord")


@pytest.fixture
def scenarionet_path() -> Path:
    return data_file("scenarionet/sd_waymo_v1.2_eb4b91b10ca94ff2.pkl")


@pytest.fixture
def frame_path() -> Path:
    return data_file("womd/pvps_data_one_frame.tfrecord")


@pytest.fixture
def submission_path() -> Path:
    return data_file("womd/test_submission.binproto")


@pytest.fixture
def dashcam_path() -> Path:
    return data_file("video/solidWhiteRight.mp4")
