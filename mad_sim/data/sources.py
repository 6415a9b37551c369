"""Scenario sources: stream :class:`~mad_sim.data.scenario.Scenario` objects from files.

``load_scenarios`` accepts a path, a glob pattern, a directory, or a list of
those, and dispatches every file by its content (with the suffix as a hint):

* a pickle (first byte ``0x80``, or suffix ``.pkl`` / ``.pickle``) is a
  ScenarioNet scenario, read through the allow-list unpickler;
* anything else is a TFRecord file of WOMD ``Scenario`` records.

Scenarios are produced one at a time (a TFRecord file is never read whole).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

from mad_sim.data.scenario import Scenario
from mad_sim.data.tfrecord import PathSpec, expand_paths, iter_records
from mad_sim.data.womd import parse_scenario_bytes, scenario_from_bytes
from mad_sim.errors import DataNotFoundError

log = logging.getLogger(__name__)

SCENARIO_PATTERNS = ("*.tfrecord*", "*.pkl", "*.pickle")
"""File patterns a directory argument expands to."""

_PICKLE_SUFFIXES = (".pkl", ".pickle")


def is_pickle_file(path: Path) -> bool:
    """True when ``path`` holds a pickle (protocol >= 2 starts with 0x80) or is named like one."""
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        return True
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"


def scenarios_in_file(path: Path) -> Iterator[Scenario]:
    """Every scenario in one file (a TFRecord may hold many, a pickle holds one)."""
    name = os.fspath(path)
    if not path.is_file():
        raise DataNotFoundError("no such file", path=name)
    if is_pickle_file(path):
        from mad_sim.data.scenarionet import load_scenarionet
        yield load_scenarionet(path)
        return
    for index, payload in enumerate(iter_records(path)):
        yield scenario_from_bytes(payload, name, index)


def check_scenario_files(spec: PathSpec) -> list:
    """Expand ``spec`` and check, cheaply, that every file holds scenarios; return the paths.

    For each TFRecord file only the first record is read and parsed as a WOMD
    ``Scenario`` proto (no conversion: about a millisecond), so a glob that
    also matches, say, a perception ``Frame`` file fails before a long
    evaluation starts instead of when it reaches that file.  Pickles are
    recognised by their first byte.  Raises the :mod:`mad_sim.errors` class
    naming the file (and record 0).
    """
    paths = expand_paths(spec, SCENARIO_PATTERNS)
    for path in paths:
        if is_pickle_file(path):
            continue
        for payload in iter_records(path):
            parse_scenario_bytes(payload, os.fspath(path), 0)
            break
    return paths


def load_scenarios(spec: PathSpec) -> Iterator[Scenario]:
    """Stream scenarios from a path, glob, directory, or list of those (in that order).

    Raises DataNotFoundError for paths / patterns that match nothing (before
    reading anything), and the :mod:`mad_sim.errors` class of the first bad
    record (naming its file and record index) when it is reached.
    """
    paths = expand_paths(spec, SCENARIO_PATTERNS)
    for path in paths:
        log.debug("reading scenarios from %s", path)
        yield from scenarios_in_file(path)


def load_scenario(path: PathSpec, index: int = 0) -> Scenario:
    """The ``index``-th scenario (zero-based) of ``path``; DataNotFoundError if there are fewer."""
    if index < 0:
        raise DataNotFoundError(f"scenario index {index} is negative", path=os.fspath(path) if isinstance(path, (str, os.PathLike)) else None)
    count = 0
    for scenario in load_scenarios(path):
        if count == index:
            return scenario
        count += 1
    where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else ", ".join(map(os.fspath, path))
    raise DataNotFoundError(f"holds {count} scenario(s), index {index} requested", path=where)
