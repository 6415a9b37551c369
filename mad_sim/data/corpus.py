"""The real-scene corpus: an index over every scene under the data root, split by scene.

The data root is ``$MAD_SIM_DATA``, else ``../shared/data`` beside the
checkout (:func:`mad_sim.data.root.data_root`).  :func:`build_index` walks it
(recursively), keeps every file that holds scenes in a format :mod:`.sources`
reads (TFRecords of other messages, such as perception ``Frame`` files, and
JSON file indexes are skipped), reads each scene once and records a
:class:`CorpusEntry`.  The index is cached as JSON under
``~/.cache/mad-sim/corpus`` keyed by the files' paths, sizes and modification
times, so it is rebuilt only when the data changes.

Split (train / val), **by scene**: windows of one scene never land on both
sides, and a scene stored in two formats counts as one (duplicates are found
by content, :func:`duplicate_groups`).  Each group of duplicates gets the
uniform number ``u = sha256(group key) / 2**256`` and goes to validation when
``u < VAL_SHARE[stratum]``, where the stratum is ``(dataset, has_sdc)``.  A
hash threshold (not a rank) keeps the split of every existing scene stable
when scenes are added.  The WOMD scenes with a logged SDC get the largest
share, so that planner figures on validation rest on at least 20 of them.

Split names accepted by :func:`split_files` / ``load_scenarios("corpus:NAME")``:
``train``, ``val`` (alias ``validation``) and ``all``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from mad_sim.data.formats import files_under, holds_scenes, scenarios_in_file, scene_format
from mad_sim.data.root import data_root
from mad_sim.data.scenario import DT, ObjectType, Scenario
from mad_sim.errors import DataError, DataNotFoundError
from mad_sim.io import write_text_atomic

log = logging.getLogger(__name__)

VAL_SHARE: Dict[Tuple[str, bool], float] = {
    ("womd", True): 0.45,
    ("womd", False): 0.15,
    ("nuscenes", True): 0.2,
    ("nuscenes", False): 0.2,
}
"""Probability that a scene group of a ``(dataset, has_sdc)`` stratum is validation (others: 0.2)."""

DEFAULT_VAL_SHARE = 0.2
INDEX_VERSION = 1
"""Bumped whenever the entry layout or the split rule changes (it invalidates caches)."""

SPLITS = ("train", "val", "all")


@dataclass(frozen=True)
class CorpusEntry:
    """One scene of the corpus.

    Attributes:
      key: ``"<path>#<record>"``, the path relative to the data root.
      path: the file, relative to the data root.
      record: the scene's index in its file (TFRecords hold many; others 0).
      scene_id: the scenario id the reader gave.
      format: the :data:`~mad_sim.data.sources.SceneFormat`.
      collection: the file's folder relative to the root (``corpus/waymax``, ``womd``...).
      dataset: ``womd`` or ``nuscenes`` (from the scene's content, see :func:`dataset_of`).
      num_steps: steps at 10 Hz.
      duration_s: seconds from the first to the last step (``(num_steps - 1) * 0.1``).
      current_index: the present step.
      num_tracks: tracks in the scene.
      agents: valid-at-some-step tracks by label (``VEHICLE``, ``PEDESTRIAN``, ``TRAFFIC_CONE``...).
      has_sdc: the file names a self-driving car (False where the reader chose one).
      group: the key of the duplicate group (its smallest key; equal to ``key`` when unique).
      split: ``train`` or ``val``.
    """

    key: str
    path: str
    record: int
    scene_id: str
    format: str
    collection: str
    dataset: str
    num_steps: int
    duration_s: float
    current_index: int
    num_tracks: int
    agents: Dict[str, int] = field(default_factory=dict)
    has_sdc: bool = True
    group: str = ""
    split: str = "train"


def dataset_of(scenario: Scenario) -> str:
    """``nuscenes`` when the SDC track's id or the scene's labels are nuScenes-like, else ``womd``.

    nuScenes scenes in ScenarioNet form name their ego ``"ego"`` and carry
    object classes WOMD has not (traffic cones, barriers); every other scene of
    the corpus is a WOMD log.
    """
    labels = set(scenario.labels().tolist())
    if labels & {"TRAFFIC_CONE", "TRAFFIC_BARRIER", "BARRIER"}:
        return "nuscenes"
    return "nuscenes" if "nuscenes" in scenario.scenario_id.lower() or "scene-" in scenario.scenario_id else "womd"


def scene_positions(scenario: Scenario, every: int = 10, decimals: int = 1) -> set:
    """Rounded ``(x, y)`` of every valid vehicle every ``every`` steps: the content signature of a scene."""
    veh = scenario.object_types == ObjectType.VEHICLE
    xy = scenario.tracks.xy[veh][:, ::every]
    valid = scenario.tracks.valid[veh][:, ::every]
    pts = np.round(xy[valid], decimals)
    return set(map(tuple, pts.tolist()))


def duplicate_groups(keys: Sequence[str], signatures: Sequence[set], min_shared: int = 5) -> Dict[str, str]:
    """Group scenes that share at least ``min_shared`` rounded vehicle positions; ``{key: group key}``.

    The same log exported by two simulators keeps its float positions, so its
    vehicles coincide to 0.1 m; two different logs share that many positions
    only by accident.  Groups are closed under sharing (union-find) and named
    by their smallest key.
    """
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owners: Dict[tuple, List[int]] = {}
    for i, sig in enumerate(signatures):
        for p in sig:
            owners.setdefault(p, []).append(i)
    shared: Counter = Counter()
    for idx in owners.values():
        if 1 < len(idx) <= 8:  # a point shared by many scenes is a map landmark, not a duplicate
            for a in range(len(idx)):
                for b in range(a + 1, len(idx)):
                    shared[(idx[a], idx[b])] += 1
    for (a, b), n in shared.items():
        if n >= min_shared:
            parent[find(a)] = find(b)
    groups: Dict[int, List[int]] = {}
    for i in range(len(keys)):
        groups.setdefault(find(i), []).append(i)
    out: Dict[str, str] = {}
    for members in groups.values():
        name = min(keys[i] for i in members)
        for i in members:
            out[keys[i]] = name
    return out


def split_of(group: str, dataset: str, has_sdc: bool) -> str:
    """``val`` when ``sha256(group) / 2**256 < VAL_SHARE[(dataset, has_sdc)]``, else ``train``."""
    u = int.from_bytes(hashlib.sha256(group.encode()).digest(), "big") / 2.0**256
    return "val" if u < VAL_SHARE.get((dataset, has_sdc), DEFAULT_VAL_SHARE) else "train"


def _entry(scenario: Scenario, root: Path, path: Path, record: int, fmt: str) -> CorpusEntry:
    rel = path.relative_to(root).as_posix()
    seen = scenario.tracks.valid.any(1)
    agents = Counter(scenario.labels()[seen].tolist())
    return CorpusEntry(
        key=f"{rel}#{record}",
        path=rel,
        record=record,
        scene_id=scenario.scenario_id,
        format=fmt,
        collection=Path(rel).parent.as_posix(),
        dataset=dataset_of(scenario),
        num_steps=scenario.num_steps,
        duration_s=round((scenario.num_steps - 1) * DT, 3),
        current_index=int(scenario.current_index),
        num_tracks=scenario.num_tracks,
        agents=dict(sorted(agents.items())),
        has_sdc=scenario.sdc_logged,
    )


def _fingerprint(root: Path, files: Iterable[Path]) -> str:
    h = hashlib.sha256(f"v{INDEX_VERSION}|{root.resolve()}".encode())
    for p in files:
        st = p.stat()
        h.update(f"|{p.relative_to(root).as_posix()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _cache_dir() -> Path:
    env = os.environ.get("MAD_SIM_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "mad-sim") / "corpus"


def _scan(root: Path, files: Sequence[Path]) -> Tuple[List[CorpusEntry], List[set]]:
    from tqdm import tqdm

    entries: List[CorpusEntry] = []
    sigs: List[set] = []
    for path in tqdm(files, desc="indexing scenes", disable=not log.isEnabledFor(logging.INFO), leave=False):
        fmt = scene_format(path)
        if fmt == "womd" and not holds_scenes(path):  # a TFRecord of other messages (a perception Frame file)
            log.info("corpus: skipping %s (holds no scene)", path)
            continue
        for record, scenario in enumerate(scenarios_in_file(path, skip_index=True)):
            entries.append(_entry(scenario, root, path, record, fmt))
            sigs.append(scene_positions(scenario))
    return entries, sigs


def build_index(root: Optional[Path] = None, use_cache: bool = True) -> List[CorpusEntry]:
    """The :class:`CorpusEntry` of every scene under ``root`` (default :func:`data_root`), split assigned.

    DataNotFoundError when the root is missing or holds no scene; a file that
    claims a scene format but is corrupt raises its reader's error.
    """
    root = Path(root) if root is not None else data_root()
    if not root.is_dir():
        raise DataNotFoundError("the data root does not exist (set MAD_SIM_DATA)", path=os.fspath(root))
    files = files_under(root)
    cache = _cache_dir() / f"index-{_fingerprint(root, files)}.json"
    if use_cache and cache.is_file():
        return [CorpusEntry(**e) for e in json.loads(cache.read_text())["entries"]]
    entries, sigs = _scan(root, files)
    if not entries:
        raise DataNotFoundError("holds no scene", path=os.fspath(root))
    groups = duplicate_groups([e.key for e in entries], sigs)
    # Every member of a group takes the stratum of the group's first member, so a group never straddles.
    first: Dict[str, CorpusEntry] = {}
    for e in entries:
        first.setdefault(groups[e.key], e)
    out = [
        dataclasses.replace(
            e, group=groups[e.key], split=split_of(groups[e.key], first[groups[e.key]].dataset, first[groups[e.key]].has_sdc)
        )
        for e in entries
    ]
    if use_cache:
        write_text_atomic(
            cache,
            json.dumps({"version": INDEX_VERSION, "root": os.fspath(root), "entries": [dataclasses.asdict(e) for e in out]}),
        )
    return out


def select(entries: Sequence[CorpusEntry], split: str) -> List[CorpusEntry]:
    """The entries of ``split`` (``train``, ``val`` / ``validation`` or ``all``); DataError for another name."""
    name = "val" if split == "validation" else split
    if name not in SPLITS:
        raise DataNotFoundError(f"unknown corpus split {split!r} (known: train, val, all)", path=f"corpus:{split}")
    return list(entries) if name == "all" else [e for e in entries if e.split == name]


def split_files(split: str, root: Optional[Path] = None) -> List[Path]:
    """The files holding the scenes of ``split``, in index order, each once.

    A TFRecord of several scenes split across both sides cannot be handed out
    as a file; the corpus's TFRecords hold one scene each, and a file whose
    scenes straddle the split is refused with a DataError naming it.
    """
    root = Path(root) if root is not None else data_root()
    entries = build_index(root)
    chosen = select(entries, split)
    by_file: Dict[str, set] = {}
    for e in entries:
        by_file.setdefault(e.path, set()).add(e.split)
    out: List[Path] = []
    for e in chosen:
        if split != "all" and len(by_file[e.path]) > 1:
            raise DataError(f"its scenes lie on both sides of the corpus split; corpus:{split} cannot name it", path=e.path)
        p = root / e.path
        if not out or out[-1] != p:
            out.append(p)
    if not out:
        raise DataNotFoundError(f"corpus split {split!r} holds no scene", path=os.fspath(root))
    return out


def aggregate(entries: Sequence[CorpusEntry]) -> Dict[str, object]:
    """Totals of ``entries``: scenes, hours of driving, agents by label, per split / dataset / format."""
    agents: Counter = Counter()
    for e in entries:
        agents.update(e.agents)
    return {
        "scenes": len(entries),
        "hours": round(sum(e.duration_s for e in entries) / 3600.0, 3),
        "agents": dict(sorted(agents.items())),
        "with_sdc": sum(e.has_sdc for e in entries),
        "by_split": dict(sorted(Counter(e.split for e in entries).items())),
        "by_dataset": dict(sorted(Counter(e.dataset for e in entries).items())),
        "by_format": dict(sorted(Counter(e.format for e in entries).items())),
        "duplicate_groups": sum(1 for g, n in Counter(e.group for e in entries).items() if n > 1),
        "val_womd_with_sdc": sum(e.split == "val" and e.dataset == "womd" and e.has_sdc for e in entries),
    }
