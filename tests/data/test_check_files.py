"""A glob that matches a non-scenario file fails up front, before any evaluation work."""

import shutil

import pytest

from mad_sim.data.sources import check_scenario_files
from mad_sim.errors import SchemaError


def test_mixed_folder_fails_before_reading_scenarios(tmp_path, womd_path, frame_path, scenarionet_path):
    shutil.copy(womd_path, tmp_path / "a.tfrecord")
    shutil.copy(scenarionet_path, tmp_path / "b.pkl")
    assert len(check_scenario_files(str(tmp_path / "*"))) == 2
    shutil.copy(frame_path, tmp_path / "c.tfrecord")
    with pytest.raises(SchemaError, match=r"c\.tfrecord, record 0"):
        check_scenario_files(str(tmp_path / "*"))


def test_open_loop_fails_fast_on_a_frame_file(tmp_path, womd_path, frame_path):
    from mad_sim.eval.open_loop import iter_jobs

    with pytest.raises(SchemaError, match="pvps_data_one_frame"):
        next(iter_jobs([str(womd_path), str(frame_path)]))
