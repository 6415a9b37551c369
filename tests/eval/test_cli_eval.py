"""``mad-sim eval`` end to end (JSON shape, exit codes) and the closed-loop benchmark."""

import json

import pytest
from mad_sim.eval.closed_loop import ClosedLoopSettings, run_closed_loop

from mad_sim.cli import main


def test_open_loop_cli_json(tmp_path, womd_path, scenarionet_path, capsys):
    out = tmp_path / "ol.json"
    rc = main(
        [
            "eval",
            "open-loop",
            "--planner",
            "cv",
            "--data",
            str(womd_path),
            str(scenarionet_path),
            "--k",
            "6",
            "--horizon",
            "8",
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    doc = json.loads(out.read_text())
    agg = doc["aggregate"]
    assert set(["minADE", "minFDE", "miss_rate", "APD", "num_scenarios"]) <= set(agg)
    assert agg["num_scenarios"] == 2 and len(doc["scenarios"]) == 2
    assert {s["scenario_id"] for s in doc["scenarios"]} == {"ee519cf571686d19", "eb4b91b10ca94ff2"}
    assert "minADE" in capsys.readouterr().out


def test_expert_cli_and_plots(tmp_path, womd_path):
    out = tmp_path / "e.json"
    rc = main(
        [
            "eval",
            "open-loop",
            "--planner",
            "expert",
            "--data",
            str(womd_path),
            "--json",
            str(out),
            "--plots",
            str(tmp_path / "plots"),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert json.loads(out.read_text())["aggregate"]["minADE"] == 0.0
    assert (tmp_path / "plots" / "open-loop_metrics.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "ee519cf571686d19_expert.png").stat().st_size > 1000


def test_cli_bad_input(tmp_path, capsys):
    rc = main(["eval", "open-loop", "--data", str(tmp_path / "none*.tfrecord"), "--no-progress"])
    assert rc == 2 and "matches no file" in capsys.readouterr().err
    rc = main(["eval", "open-loop", "--planner", "oracle", "--data", str(tmp_path), "--no-progress"])
    assert rc == 2 and "unknown planner" in capsys.readouterr().err


def test_closed_loop(womd_path, scenarionet_path):
    res = run_closed_loop(
        [str(womd_path), str(scenarionet_path)],
        ["expert", "cv"],
        ClosedLoopSettings(agents="log", replan_every=1, horizon=20),
        progress=False,
    )
    expert = res["expert"]
    assert expert["aggregate"]["num_scenarios"] == 2
    assert expert["aggregate"]["collision_rate"] == 0.0 and expert["aggregate"]["offroad_rate"] == 0.0
    assert expert["aggregate"]["log_divergence"] < 0.5
    rows = {r["scenario_id"]: r for r in expert["scenarios"]}
    assert rows["ee519cf571686d19"]["steps"] == 80 and rows["ee519cf571686d19"]["progress"] > 15.0
    # driving straight at constant speed leaves the logged path (the log turns)
    assert res["cv"]["aggregate"]["log_divergence"] > expert["aggregate"]["log_divergence"]


def test_closed_loop_cli(tmp_path, womd_path):
    out = tmp_path / "cl.json"
    rc = main(
        [
            "eval",
            "closed-loop",
            "--planner",
            "idm",
            "--agents",
            "idm",
            "--data",
            str(womd_path),
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    agg = json.loads(out.read_text())["aggregate"]
    assert agg["num_scenarios"] == 1 and agg["progress"] > 5.0 and agg["steps_per_second"] > 0


@pytest.mark.slow
def test_sharded_over_two_processes_matches_serial(tmp_path, womd_path, womd_still_path, scenarionet_path):
    import os
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun") or str(__import__("pathlib").Path(sys.executable).parent / "torchrun")
    if not os.path.exists(torchrun):
        pytest.skip("torchrun not installed")
    data = [str(womd_path), str(womd_still_path), str(scenarionet_path)]
    out = tmp_path / "sharded.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            torchrun,
            "--nproc_per_node",
            "2",
            "-m",
            "mad_sim",
            "eval",
            "open-loop",
            "--planner",
            "cv",
            "--data",
            *data,
            "--json",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    serial = tmp_path / "serial.json"
    assert main(["eval", "open-loop", "--planner", "cv", "--data", *data, "--json", str(serial), "--no-progress"]) == 0
    a, b = json.loads(out.read_text()), json.loads(serial.read_text())
    assert a["aggregate"]["num_scenarios"] == 3
    assert a["aggregate"] == pytest.approx(b["aggregate"])
