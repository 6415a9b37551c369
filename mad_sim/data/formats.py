"""Scene file formats: tell a file's format from its content, and read the scenes of one file.

=================  ===============================================  ============================
format             recognised by                                    reader
=================  ===============================================  ============================
``womd``           a TFRecord header whose length CRC checks out    :mod:`.womd` (many per file)
``scenarionet``    a pickle (first byte ``0x80``) of plain dicts    :mod:`.scenarionet`
``waymax``         a pickle whose first global is ``waymax.*``      :mod:`.waymax`
``scene_json``     a JSON object (first non-blank byte ``{``)       :mod:`.gpudrive_json`
=================  ===============================================  ============================

Anything else goes to the TFRecord reader, whose errors say what is wrong
with the framing (truncated length, bad CRC).  The suffix is only a
tie-breaker (``.pkl`` / ``.json`` with an unrecognised head).  Path specs
(globs, folders, corpus splits) are :mod:`.sources`' business.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator, List, Literal

from mad_sim.data.scenario import Scenario
from mad_sim.data.tfrecord import iter_records, masked_crc32c
from mad_sim.data.womd import parse_scenario_bytes, scenario_from_bytes
from mad_sim.errors import DataNotFoundError, SchemaError

log = logging.getLogger(__name__)

SceneFormat = Literal["womd", "scenarionet", "waymax", "scene_json"]

SCENARIO_PATTERNS = ("*.tfrecord*", "*.pkl", "*.pickle", "*.json")
"""File patterns a directory argument expands to."""

_PICKLE_SUFFIXES = (".pkl", ".pickle")
_HEAD_BYTES = 64


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(_HEAD_BYTES)


def _is_tfrecord_head(head: bytes) -> bool:
    """True when ``head`` starts with a TFRecord length whose masked CRC32C matches (a 1-in-2^32 accident otherwise)."""
    return len(head) >= 12 and masked_crc32c(head[:8]) == int.from_bytes(head[8:12], "little")


def files_under(folder: Path) -> List[Path]:
    """Every non-hidden file under ``folder`` (recursively) matching :data:`SCENARIO_PATTERNS`, sorted by path."""
    return sorted(
        p
        for p in Path(folder).rglob("*")
        if p.is_file() and not p.name.startswith(".") and any(p.match(pat) for pat in SCENARIO_PATTERNS)
    )


def scene_format(path: Path) -> SceneFormat:
    """Which reader ``path`` needs, decided from its first bytes (see the module docstring)."""
    if not path.is_file():
        raise DataNotFoundError("no such file", path=os.fspath(path))
    head = _head(path)
    if _is_tfrecord_head(head):
        return "womd"
    if head[:1] == b"\x80" or path.suffix.lower() in _PICKLE_SUFFIXES:
        from mad_sim.data.waymax_pickle import is_waymax_pickle

        return "waymax" if is_waymax_pickle(path) else "scenarionet"
    if head.lstrip()[:1] == b"{" or path.suffix.lower() == ".json":
        return "scene_json"
    return "womd"


def is_single_scene_file(path: Path) -> bool:
    """True for formats that hold exactly one scene per file (every format but WOMD TFRecords)."""
    return scene_format(path) != "womd"


def _read_one(path: Path, fmt: SceneFormat, skip_index: bool) -> Iterator[Scenario]:
    if fmt == "scenarionet":
        from mad_sim.data.scenarionet import load_scenarionet

        yield load_scenarionet(path)
    elif fmt == "waymax":
        from mad_sim.data.waymax import load_waymax

        yield load_waymax(path)
    else:
        from mad_sim.data.gpudrive_json import looks_like_scene_json, read_json, scene_from_json

        obj = read_json(path)
        if skip_index and not looks_like_scene_json(obj):
            log.info("skipping %s: a JSON file that holds no scene", path)
            return
        yield scene_from_json(obj, os.fspath(path))


def scenarios_in_file(path: Path, skip_index: bool = False) -> Iterator[Scenario]:
    """Every scenario in one file (a TFRecord may hold many, every other format holds one).

    ``skip_index``: a JSON file that holds no scene (a file index) yields
    nothing instead of raising SchemaError (for files a folder or glob found).
    """
    name = os.fspath(path)
    fmt = scene_format(path)
    if fmt != "womd":
        yield from _read_one(path, fmt, skip_index)
        return
    for index, payload in enumerate(iter_records(path)):
        yield scenario_from_bytes(payload, name, index)


def is_index_json(path: Path) -> bool:
    """True for a JSON file that holds no scene (it is read whole: JSON has no cheaper test)."""
    import json

    from mad_sim.data.gpudrive_json import looks_like_scene_json

    try:
        with open(path, "rb") as f:
            obj = json.load(f)
    except (ValueError, UnicodeDecodeError):
        return False  # not valid JSON: kept, so that reading it raises the reader's error
    return not looks_like_scene_json(obj)


def scenario_count(path: Path) -> int:
    """Number of scenarios in one file (TFRecord records are counted without CRC checks)."""
    if is_single_scene_file(path):
        return 1
    return sum(1 for _ in iter_records(path, check_crc=False))


def holds_scenes(path: Path) -> bool:
    """False for JSON file indexes and for TFRecords whose first record is not a WOMD ``Scenario``."""
    fmt = scene_format(path)
    if fmt == "scene_json":
        return not is_index_json(path)
    if fmt == "womd":
        for payload in iter_records(path):
            try:
                parse_scenario_bytes(payload, os.fspath(path), 0)
            except SchemaError:
                return False
            break
    return True
