"""Fixtures of the data tests: the official Waymo protos as a reference.

``official_protos`` finds, or installs, ``waymo-open-dataset-tf-2-12-0==1.6.7``
with ``--no-deps`` into a cache folder outside the project venv
(``$MAD_SIM_WAYMO_PROTOS``, default ``~/.cache/mad-sim/waymo-protos``): its
generated ``*_pb2`` modules need only ``protobuf``.  If pip cannot reach PyPI
the tests that need it skip, except under ``CI=true`` where that fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

WAYMO_PACKAGE = "waymo-open-dataset-tf-2-12-0==1.6.7"


def _protos_dir() -> Path:
    env = os.environ.get("MAD_SIM_WAYMO_PROTOS")
    return Path(env) if env else Path.home() / ".cache" / "mad-sim" / "waymo-protos"


@pytest.fixture(scope="session")
def official_protos() -> SimpleNamespace:
    """The official ``scenario_pb2``, ``dataset_pb2`` and ``sim_agents_submission_pb2`` modules."""
    target = _protos_dir()
    marker = target / "waymo_open_dataset" / "protos" / "scenario_pb2.py"
    if not marker.is_file():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), WAYMO_PACKAGE],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0 or not marker.is_file():
            msg = f"could not install {WAYMO_PACKAGE} into {target}: {proc.stderr.strip()[-500:]}"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(msg)
            pytest.skip(msg)
    if str(target) not in sys.path:
        sys.path.append(str(target))  # appended: it must never shadow a package of the venv
    from waymo_open_dataset import dataset_pb2
    from waymo_open_dataset.protos import scenario_pb2, sim_agents_submission_pb2

    return SimpleNamespace(
        scenario_pb2=scenario_pb2, dataset_pb2=dataset_pb2, sim_agents_submission_pb2=sim_agents_submission_pb2
    )
