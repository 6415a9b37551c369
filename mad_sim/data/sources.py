"""Scenario sources: stream :class:`~mad_sim.data.scenario.Scenario` objects from files.

``load_scenarios`` accepts a path, a glob pattern, a directory, a corpus split
(``corpus:train``, ``corpus:val``, ``corpus:all``; see :mod:`.corpus`) or a
list of those, and reads every file in the format its **content** shows
(:func:`mad_sim.data.formats.scene_format`: WOMD TFRecords, ScenarioNet and
Waymax pickles, GPUDrive / Nocturne JSON).  A directory or glob expands
to the files matching :data:`SCENARIO_PATTERNS`; JSON files found that way
which hold no scene (Nocturne's ``valid_files.json`` index) are skipped with
a log line, while a non-scene file named explicitly is an error.

Scenarios are produced one at a time (a TFRecord file is never read whole).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator, List, Tuple

from mad_sim.data.formats import (
    SCENARIO_PATTERNS,
    SceneFormat,
    files_under,
    is_index_json,
    is_single_scene_file,
    scenarios_in_file,
    scene_format,
)
from mad_sim.data.scenario import Scenario
from mad_sim.data.tfrecord import PathSpec, expand_paths, iter_records
from mad_sim.data.womd import parse_scenario_bytes
from mad_sim.errors import DataNotFoundError

log = logging.getLogger(__name__)

CORPUS_PREFIX = "corpus:"
"""A path spec item ``corpus:SPLIT`` names a split of the real-scene corpus (:mod:`.corpus`)."""


def _expand(item: str) -> List[Path]:
    folder = Path(item)
    return files_under(folder) if folder.is_dir() else expand_paths(item, SCENARIO_PATTERNS)


def _expand_items(spec: PathSpec) -> List[Tuple[str, List[Tuple[Path, bool]]]]:
    """Each item of ``spec`` with its files and, per file, whether it was found (folder, glob, corpus) or named."""
    items: List[str] = [os.fspath(spec)] if isinstance(spec, (str, os.PathLike)) else [os.fspath(s) for s in spec]
    if not items:
        raise DataNotFoundError("no input path given")
    out: List[Tuple[str, List[Tuple[Path, bool]]]] = []
    for item in items:
        if item.startswith(CORPUS_PREFIX):
            from mad_sim.data.corpus import split_files

            out.append((item, [(p, True) for p in split_files(item[len(CORPUS_PREFIX) :])]))
            continue
        found = not Path(item).is_file()
        out.append((item, [(p, found) for p in _expand(item)]))
    return out


def scenario_files(spec: PathSpec) -> List[Path]:
    """Expand ``spec`` into scenario files, in order.

    ``corpus:SPLIT`` items expand to that split's files (:func:`mad_sim.data.corpus.split_files`).
    A directory expands to the files under it, recursively, that match
    :data:`~mad_sim.data.formats.SCENARIO_PATTERNS`, sorted by path.  JSON
    files that a directory or glob matched but that hold no scene (file
    indexes) are dropped (logged; JSON has no cheaper test than reading the
    file); DataNotFoundError when an item leaves nothing.
    """
    out: List[Path] = []
    for item, files in _expand_items(spec):
        kept = [p for p, found in files if not (found and p.suffix.lower() == ".json" and is_index_json(p))]
        if not kept:
            raise DataNotFoundError("holds no scene file", path=item)
        out.extend(kept)
    return out


def check_scenario_files(spec: PathSpec) -> List[Path]:
    """Expand ``spec`` and check, cheaply, that every file holds scenarios; return the paths.

    For each TFRecord file only the first record is read and parsed as a WOMD
    ``Scenario`` proto (no conversion: about a millisecond), so a glob that
    also matches, say, a perception ``Frame`` file fails before a long
    evaluation starts instead of when it reaches that file.  Pickles and JSON
    files are recognised by their first bytes.  Raises the
    :mod:`mad_sim.errors` class naming the file (and record 0).
    """
    paths = scenario_files(spec)
    for path in paths:
        if is_single_scene_file(path):
            continue
        for payload in iter_records(path):
            parse_scenario_bytes(payload, os.fspath(path), 0)
            break
    return paths


def iter_scenes(spec: PathSpec) -> Iterator[Tuple[Scenario, SceneFormat]]:
    """``(scenario, format of its file)`` for every scene of ``spec``; see :func:`load_scenarios`."""
    for item, files in _expand_items(spec):
        count = 0
        for path, found in files:
            log.debug("reading scenarios from %s", path)
            fmt = scene_format(path)
            for scenario in scenarios_in_file(path, skip_index=found):
                count += 1
                yield scenario, fmt
        if count == 0:
            raise DataNotFoundError("holds no scene file", path=item)


def load_scenarios(spec: PathSpec) -> Iterator[Scenario]:
    """Stream scenarios from a path, glob, directory, corpus split, or list of those (in that order).

    Raises DataNotFoundError for paths / patterns that match nothing (before
    reading anything) or for an item whose files hold no scene (when it is
    reached), and the :mod:`mad_sim.errors` class of the first bad record
    (naming its file and record index) when it is reached.  Every file is read
    once: a JSON file index found in a folder is recognised while reading it.
    """
    for scenario, _ in iter_scenes(spec):
        yield scenario


def load_scenario(path: PathSpec, index: int = 0) -> Scenario:
    """The ``index``-th scenario (zero-based) of ``path``; DataNotFoundError if there are fewer."""
    if index < 0:
        raise DataNotFoundError(
            f"scenario index {index} is negative", path=os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
        )
    count = 0
    for scenario in load_scenarios(path):
        if count == index:
            return scenario
        count += 1
    where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else ", ".join([os.fspath(p) for p in path])
    raise DataNotFoundError(f"holds {count} scenario(s), index {index} requested", path=where)
