"""`mad-sim eval sim-agents` in several processes gives the one-process result: ``--workers 2`` and
``accelerate launch --multi_gpu --num_processes 2`` (two real CPU processes, gloo) on three scenes.

``accelerate launch --cpu --num_processes 2`` is not used: accelerate 1.16's ``--cpu`` takes its simple
launcher, which starts ONE process unless ``--mpirun_hostfile`` is given (no ``WORLD_SIZE`` is set);
``--multi_gpu`` starts the processes through torchrun, and the runner's ``PartialState(cpu=True)``
keeps them on the CPU with gloo, GPU or not.  The test checks that two processes really ran
(``meta.num_processes``).

Three scenes over two processes shard unevenly (process 0 scores scenes 0 and 2, process 1 scene 1), so
the gathered rows are only in the one-process order if the runner puts them back in stream order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._torchrun import free_port
from tests.conftest import data_file

SCENES = (
    "womd/motion_data_one_scenario.tfrecord",
    "corpus/gpudrive/gd_tfrecord-00000-of-01000_402.json",
    "corpus/gpudrive/gd_tfrecord-00031-of-01000_45.json",
)


def _args(out: Path) -> list:
    return [
        "eval",
        "sim-agents",
        "--no-progress",
        "--agents",
        "log,constant_velocity,idm",
        "--data",
        *[str(data_file(s)) for s in SCENES],
        "--rollouts",
        "2",
        "--horizon",
        "2",
        "--probe",
        "brake",
        "--json",
        str(out),
    ]


def _run(cmd: list) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(Path(cmd[cmd.index("--json") + 1]).read_text())


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict:
    return _run([sys.executable, "-m", "mad_sim", *_args(tmp_path_factory.mktemp("one") / "r.json")])


def test_workers_2_equals_one_process(one_process, tmp_path) -> None:
    doc = _run([sys.executable, "-m", "mad_sim", *_args(tmp_path / "r.json"), "--workers", "2"])
    assert doc["meta"]["workers"] == 2 and one_process["meta"]["workers"] == 1
    assert doc["policies"] == one_process["policies"]


def test_accelerate_launch_2_processes_equals_one_process(one_process, tmp_path) -> None:
    launcher = Path(sys.executable).with_name("accelerate")
    if not launcher.exists():
        pytest.skip(f"no accelerate launcher beside {sys.executable}")
    doc = _run(
        [
            str(launcher),
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            str(free_port()),
            "-m",
            "mad_sim",
            *_args(tmp_path / "r.json"),
        ]
    )
    assert doc["meta"]["num_processes"] == 2 and one_process["meta"]["num_processes"] == 1
    assert doc["policies"] == one_process["policies"]
    ids = [r["scenario_id"] for r in doc["policies"]["log"]["scenarios"]]
    assert len(ids) == 3 and ids == [r["scenario_id"] for r in one_process["policies"]["log"]["scenarios"]]
