"""Where the env's scenarios come from: a procedural generator, or files drawn with the env's RNG.

A file spec (path, glob, directory or list) is expanded once.  Each reset
draws a file uniformly with the env's generator, then a record of it
uniformly (a file's record count is counted once and cached).  Recently used
scenarios are kept in a small cache, so resetting on the same log is cheap.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, Union

import numpy as np

from mad_sim.data.scenario import Scenario

if TYPE_CHECKING:
    from mad_sim.data.tfrecord import PathSpec

log = logging.getLogger(__name__)

ScenarioSpec = Union[str, os.PathLike, List[Union[str, os.PathLike]], Scenario, None]


class ScenarioSource:
    """Draws scenarios for resets: ``draw(rng, spec)``."""

    def __init__(self, procedural_kind: Optional[str] = None, cache_size: int = 4) -> None:
        self.procedural_kind = procedural_kind
        self.cache_size = cache_size
        self._paths: Dict[str, List[Path]] = {}
        self._counts: Dict[Path, int] = {}
        self._cache: "OrderedDict[Tuple[Path, int], Scenario]" = OrderedDict()

    def draw(self, rng: np.random.Generator, spec: ScenarioSpec) -> Scenario:
        if isinstance(spec, Scenario):
            return spec
        if spec is None:
            from mad_sim.data.procedural import generate_scenario

            return generate_scenario(rng, kind=self.procedural_kind)
        paths = self._expand(spec)
        path = paths[int(rng.integers(len(paths)))] if len(paths) > 1 else paths[0]
        count = self._count(path)
        index = int(rng.integers(count)) if count > 1 else 0
        return self._load(path, index)

    def _expand(self, spec: PathSpec) -> List[Path]:
        key = repr(spec)
        if key not in self._paths:
            from mad_sim.data.sources import scenario_files

            self._paths[key] = scenario_files(spec)
        return self._paths[key]

    def _count(self, path: Path) -> int:
        if path not in self._counts:
            from mad_sim.data.formats import scenario_count

            self._counts[path] = scenario_count(path)
        return self._counts[path]

    def _load(self, path: Path, index: int) -> Scenario:
        key = (path, index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        from mad_sim.data.sources import load_scenario

        log.debug("loading scenario %d of %s", index, path)
        scenario = load_scenario(path, index)
        self._cache[key] = scenario
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return scenario
