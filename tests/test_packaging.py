"""setup.cfg declares every package and its data: an install is quiet and ships the weights (defect 5)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIRS = {
    "mad_sim": ROOT / "mad_sim",
    "mad_sim.envs": ROOT / "envs",
    "mad_sim.planners": ROOT / "planners",
    "mad_sim.eval": ROOT / "eval",
}


def _options() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _source_packages() -> set[str]:
    """Every folder holding Python modules or shipped files, as a package name (package_dir mapping applied)."""
    out = set()
    for name, folder in DIRS.items():
        for d in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
            if "__pycache__" in d.parts or not any(f.is_file() for f in d.iterdir()):
                continue
            rel = d.relative_to(folder)
            if name == "mad_sim" and rel.parts and rel.parts[0] in ("envs", "planners", "eval"):
                continue
            out.add(".".join([name, *rel.parts]))
    return out


def test_every_package_is_declared():
    declared = set(_options()["options"]["packages"].split())
    assert _source_packages() <= declared, sorted(_source_packages() - declared)
    data = _options()["options.package_data"]
    assert "*.safetensors" in data["mad_sim.weights"]


def test_build_is_quiet_and_ships_the_weights(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.safetensors")  # weights: empty stand-ins, same names
    for folder in ("mad_sim", "envs", "planners", "eval"):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    for w in (ROOT / "mad_sim" / "weights").glob("*.safetensors"):
        (src / "mad_sim" / "weights" / w.name).write_bytes(b"")
    out = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py", "-d", str(tmp_path / "build")],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONWARNINGS="default"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "absent from the `packages`" not in out.stderr and "Package would be ignored" not in out.stderr, out.stderr
    built = tmp_path / "build" / "mad_sim"
    shipped = sorted(p.name for p in (ROOT / "mad_sim" / "weights").iterdir() if p.is_file())
    assert sorted(p.name for p in (built / "weights").iterdir()) == shipped
    assert (built / "eval" / "sim_agents" / "__init__.py").is_file() and (built / "data" / "proto" / "map.proto").is_file()
