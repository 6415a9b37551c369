"""``mad-sim convert``: every supported format written as WOMD TFRecords reads back as the same Scenario."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mad_sim.cli import main
from mad_sim.cli.convert import plan_files, safe_name
from mad_sim.data import load_scenario, load_scenarios
from mad_sim.errors import ConfigError
from tests.conftest import data_file
from tests.data.scene_compare import assert_same_scenario

ONE_OF_EACH = [
    "womd/womd_scenario_input.tfrecord",
    "scenarionet/sd_waymo_v1.2_eb4b91b10ca94ff2.pkl",
    "corpus/waymax/",
    "corpus/gpudrive/gd_tfrecord-00031-of-01000_45.json",
    "corpus/nocturne/noc_state_test.json",
    "corpus/metadrive_waymo_20s/",
    "corpus/nuscenes/",
]


def _first_file(relative: str) -> Path:
    if not relative.endswith("/"):
        return data_file(relative)
    folder = data_file("README.md").parent / relative
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if not files:
        pytest.skip(f"{folder} is empty")
    return files[0]


@pytest.mark.parametrize("relative", ONE_OF_EACH)
def test_convert_reads_back_the_same_scenario(relative: str, tmp_path: Path, capsys):
    src = _first_file(relative)
    assert main(["convert", str(src), "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["scenes"], summary["files"]) == (1, 1)
    (written,) = sorted(tmp_path.glob("*.tfrecord"))
    original = load_scenario(src)
    back = load_scenario(written)
    assert written.name == f"{safe_name(original.scenario_id)}.tfrecord"
    assert_same_scenario(original, back)


def test_convert_shards_mixed_formats(tmp_path: Path, capsys):
    inputs = [
        str(data_file("womd/womd_scenario_input.tfrecord")),
        str(data_file("scenarionet/sd_waymo_v1.2_eb4b91b10ca94ff2.pkl")),
        str(data_file("corpus/nocturne/noc_example_scenario.json")),
    ]
    assert main(["convert", *inputs, "--out", str(tmp_path), "--shards", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == 2
    shards = sorted(tmp_path.iterdir())
    assert [p.name for p in shards] == ["scenarios.tfrecord-00000-of-00002", "scenarios.tfrecord-00001-of-00002"]
    ids = [s.scenario_id for s in load_scenarios(str(tmp_path))]
    assert sorted(ids) == sorted(s.scenario_id for s in load_scenarios(inputs))


def test_plan_files_keeps_names_unique_and_safe():
    assert plan_files(["a/b", "a/b", "", "x"], 0) == ["a_b.tfrecord", "a_b-1.tfrecord", "scene.tfrecord", "x.tfrecord"]
    with pytest.raises(ConfigError):
        plan_files(["a"], -1)


def test_bad_input_writes_nothing(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"objects": [{"position": [')
    out = tmp_path / "out"
    good = data_file("womd/womd_scenario_input.tfrecord")
    proc = subprocess.run(
        [sys.executable, "-m", "mad_sim", "convert", str(good), str(bad), "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.json" in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()
