"""Lint, format and types are part of the build: ``ruff check .``, ``ruff format --check .`` and ``mypy`` report nothing.

Both run from the repo root as ``python -m ...`` subprocesses with the
configuration in ``pyproject.toml`` (``[tool.ruff]``; ``[tool.mypy]``, whose
``files`` list is the set kept type-clean), so the test checks exactly what a
developer runs by hand.  A tool that is not installed skips the test with the
reason, except under ``CI=true``, where it is a failure (the ``dev`` extra
installs both).  mypy keeps its cache in ``.mypy_cache``: a few seconds once
warm, longer on a fresh clone.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        msg = f"{module} is not installed (it is in the dev extra: pip install -e .[dev])"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: lint and type checks are required)")
        pytest.skip(msg)


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True, timeout=900)


def test_ruff_reports_nothing() -> None:
    _require("ruff")
    out = _run("ruff", "check", ".")
    if out.returncode != 0:
        pytest.fail(f"ruff check . (exit {out.returncode}):\n{out.stdout}{out.stderr}", pytrace=False)


def test_mypy_reports_nothing() -> None:
    _require("mypy")
    out = _run("mypy")
    if out.returncode != 0:
        pytest.fail(
            f"mypy (exit {out.returncode}; files from [tool.mypy] in pyproject.toml):\n{out.stdout}{out.stderr}", pytrace=False
        )


def test_ruff_format_reports_nothing() -> None:
    _require("ruff")
    out = _run("ruff", "format", "--check", ".")
    if out.returncode != 0:
        pytest.fail(
            f"ruff format --check . (exit {out.returncode}; run `ruff format .`):\n{out.stdout}{out.stderr}", pytrace=False
        )
