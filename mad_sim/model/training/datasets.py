"""Clip datasets: rendered once, cached on disk as uint8 ``.npy`` + a JSON manifest.

A cache folder holds

- ``pose.npy``: ``[K, F, H, W, 3]`` uint8, the pose videos of all clips;
- ``ego.npy``: ``[K, F, H, W, 3]`` uint8, their ego-motion videos;
- ``boxes.npy`` (only with the box option, :class:`BoxClipConfig`):
  ``[K, F_future, H, W, 3]`` uint8, the box video of each clip's controlled
  agents over its future frames (black when the clip has none), the agents'
  track indices in the manifest (``box_agents``, slot order);
- ``manifest.json``: the clip spec, the sources, and per clip its split
  (``train``/``eval``), source file (or ``procedural``), scenario id,
  viewpoint track index, first step ``t0``, present step, whether the
  viewpoint moves, and the seeds used; with counterfactual clips
  (:class:`~mad_sim.model.training.counterfactual.CounterfactualConfig`)
  also ``counterfactual``: None for a log clip, else the record it is
  re-rendered from (its twin's index, seed, action offsets, IDM or not).

The arrays are plain ``.npy`` files opened memory-mapped, so a run reads only
the clips it samples and several processes share the page cache. They are
written under temporary names and renamed, and the manifest is written last:
a folder with a manifest is complete. The folder's name is a hash of the spec
and the sources, so changing either builds a new cache and never mixes clips. The box option
and counterfactual options enter the hash only when enabled: caches without them keep their names.

Sources (:class:`SourceConfig`): a scenario file/glob (any format
:func:`mad_sim.data.load_scenarios` reads), a split of the real-scene corpus
(``kind: corpus``, ``path: train`` or ``val``; :mod:`mad_sim.data.corpus`), or
``procedural`` scenes from :func:`mad_sim.data.procedural.generate_scenario`
with seeds ``seed, seed + 1, ...``. Each source belongs to one split; hold a
real log out as ``eval`` to measure on scenes never trained on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm.auto import tqdm

from mad_sim.data.scenario import Scenario
from mad_sim.errors import ConfigError, DataError, DataNotFoundError
from mad_sim.io import atomic_path, write_text_atomic
from mad_sim.model.training.clips import ClipRef, ClipRenderer, ClipSpec, plan_clips
from mad_sim.model.training.counterfactual import CounterfactualConfig, counterfactual_scenario, with_counterfactuals

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
CACHE_VERSION = 1


def default_cache_root() -> Path:
    """``$MAD_SIM_CACHE/clips`` or ``~/.cache/mad-sim/clips`` (outside the repo)."""
    root = os.environ.get("MAD_SIM_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "mad-sim") / "clips"


@dataclass
class SourceConfig:
    """One source of scenarios.

    Attributes:
      kind: ``file`` (``path`` is a file or glob), ``corpus`` (``path`` is a
        corpus split: ``train`` or ``val``) or ``procedural``.
      path: scenario file(s), for ``file``. Relative paths are resolved
        against the data root (``$MAD_SIM_DATA`` or ``../shared/data`` beside
        the checkout) when they exist there, else against the cwd.
      split: ``train`` or ``eval``. The corpus's ``val`` scenes may only feed
        ``eval``: training on them would void every validation figure.
      count: number of procedural scenes.
      seed: first procedural seed; also seeds viewpoint choice.
      scene_kind: procedural layout (``straight``/``curve``/``intersection``);
        empty = the generator's random choice.
      t_range: optional ``[first, last)`` steps the clips must lie in.
      max_clips: keep at most this many clips of the source (0 = all).
    """

    kind: Literal["file", "corpus", "procedural"] = "file"
    path: str = ""
    split: Literal["train", "eval"] = "train"
    count: int = 0
    seed: int = 0
    scene_kind: str = ""
    t_range: Optional[List[int]] = None
    max_clips: int = 0

    def __post_init__(self) -> None:
        if self.kind == "corpus":
            if self.path not in ("train", "val"):
                raise ConfigError(f"data.sources: kind 'corpus' needs path 'train' or 'val', not {self.path!r}")
            if self.path == "val" and self.split == "train":
                raise ConfigError("data.sources: the corpus's val scenes cannot be a train source (split: eval)")


@dataclass
class BoxClipConfig:
    """Box videos for object control (the ``data.boxes`` block).

    Attributes:
      enabled: render a box video per clip (``boxes.npy``).
      max_agents: each clip controls ``n ~ U{1..max_agents}`` vehicles (fewer
        if fewer are visible over the whole future).
      min_pixels: a controlled agent's box covers at least this many pixels
        in every future frame.
    """

    enabled: bool = False
    max_agents: int = 3
    min_pixels: int = 8

    def __post_init__(self) -> None:
        max_slots = 8  # mad_sim.model.object_control.MAX_SLOTS (not imported: it pulls in torch)
        if not 1 <= self.max_agents <= max_slots or self.min_pixels < 1:
            raise ConfigError(
                f"data.boxes: max_agents={self.max_agents} must lie in [1, {max_slots}] and min_pixels={self.min_pixels} be >= 1"
            )


@dataclass
class DatasetConfig:
    """The clip spec and sources of a dataset (the ``data:`` block of a train config)."""

    spec: Dict[str, Union[int, float]] = field(default_factory=dict)
    sources: List[SourceConfig] = field(default_factory=list)
    cache_dir: str = ""
    boxes: BoxClipConfig = field(default_factory=BoxClipConfig)
    counterfactual: CounterfactualConfig = field(default_factory=CounterfactualConfig)

    def clip_spec(self) -> ClipSpec:
        try:
            return ClipSpec(**self.spec)
        except TypeError as exc:
            raise ConfigError(f"data.spec: {exc}") from exc


def data_root() -> Path:
    """``$MAD_SIM_DATA``, else ``../shared/data`` beside the checkout (:func:`mad_sim.data.corpus.data_root`)."""
    from mad_sim.data.corpus import data_root as root

    return root()


def _resolve(path: str) -> str:
    """Absolute paths as given; relative ones against :func:`data_root` when the file is there, else the cwd."""
    p = Path(os.path.expanduser(path))
    if p.is_absolute():
        return str(p)
    under_root = data_root() / p
    if under_root.exists() or any(under_root.parent.glob(under_root.name)):
        return str(under_root)
    return str(p)


def iter_source_scenarios(src: SourceConfig, index: int) -> Iterator[Tuple[Scenario, int]]:
    """Yield ``(scenario, seed)`` of one source (``seed`` seeds its clip choices)."""
    if src.kind == "procedural":
        from mad_sim.data.procedural import generate_scenario

        for k in range(src.count):
            seed = src.seed + k
            kwargs = {"kind": src.scene_kind} if src.scene_kind else {}
            yield generate_scenario(np.random.default_rng(seed), **kwargs), seed
        return
    from mad_sim.data import load_scenarios

    if src.kind == "corpus":
        for k, scenario in enumerate(load_scenarios(f"corpus:{src.path}")):
            yield scenario, src.seed * 1000 + k
        return
    if not src.path:
        raise ConfigError(f"data.sources[{index}]: kind 'file' needs a path")
    for k, scenario in enumerate(load_scenarios(_resolve(src.path))):
        yield scenario, src.seed * 1000 + k


def source_label(src: SourceConfig) -> str:
    """A clip's ``source`` in the manifest: the file spec, ``corpus:<split>`` or ``procedural``."""
    if src.kind == "file":
        return src.path
    return f"corpus:{src.path}" if src.kind == "corpus" else "procedural"


def cache_key(
    spec: ClipSpec,
    sources: Sequence[SourceConfig],
    boxes: Optional[BoxClipConfig] = None,
    counterfactual: Optional[CounterfactualConfig] = None,
) -> str:
    """16 hex digits of sha256 over version, spec, sources (and the box / counterfactual options only when enabled)."""
    spec_d = asdict(spec)
    for name, default in (("camera_height", 1.6), ("camera_pitch_deg", 0.0), ("camera_hfov_deg", 90.0)):
        if spec_d[name] == default:  # the dashcam mount stays out of the key: caches made before the field keep their names
            del spec_d[name]
    content: Dict[str, object] = {"v": CACHE_VERSION, "spec": spec_d, "sources": [asdict(s) for s in sources]}
    corpus_splits = sorted({s.path for s in sources if s.kind == "corpus"})
    if corpus_splits:  # the scenes of a split change with the data: they enter the key, not just its name
        from mad_sim.data.corpus import build_index, select

        entries = build_index()
        content["corpus"] = {name: [e.key for e in select(entries, name)] for name in corpus_splits}
    if boxes is not None and boxes.enabled:
        content["boxes"] = asdict(boxes)
    if counterfactual is not None and counterfactual.enabled:
        content["counterfactual"] = asdict(counterfactual)
    blob = json.dumps(content, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def box_seed(entry: dict) -> List[int]:
    """The seed sequence of one clip's controlled-agent draw (from its manifest entry)."""
    return [int(entry["seed"]), int(entry["viewpoint"]), int(entry["t0"]), 2]


def build_clip_cache(
    spec: ClipSpec,
    sources: Sequence[SourceConfig],
    cache_root: Optional[PathLike] = None,
    *,
    rebuild: bool = False,
    progress: bool = True,
    boxes: Optional[BoxClipConfig] = None,
    counterfactual: Optional[CounterfactualConfig] = None,
) -> Path:
    """Render every clip of ``sources`` once into a cache folder; return the folder.

    An existing complete cache with the same spec and sources is reused
    unless ``rebuild``. With ``boxes`` enabled, each clip also gets its box
    video (:meth:`~mad_sim.model.training.clips.ClipRenderer.render_boxes`, drawn by
    ``numpy.random.default_rng(box_seed(entry))``). With ``counterfactual``
    enabled, counterfactual twins of some clips are appended after the log clips
    (:func:`~mad_sim.model.training.counterfactual.with_counterfactuals`) and
    rendered from their modified scenes.

    Raises:
      DataError: a source yields no clip at all (e.g. no vehicle is valid over
        a whole window), naming the source.
    """
    root = Path(cache_root) if cache_root else default_cache_root()
    with_boxes = boxes is not None and boxes.enabled
    with_cf = counterfactual is not None and counterfactual.enabled
    folder = root / cache_key(spec, sources, boxes, counterfactual)
    if (folder / "manifest.json").is_file() and not rebuild:
        log.info("clip cache hit: %s", folder)
        return folder
    folder.mkdir(parents=True, exist_ok=True)

    plan: List[Tuple[Scenario, ClipRef, dict]] = []
    for i, src in enumerate(sources):
        n_before = len(plan)
        for scenario, seed in iter_source_scenarios(src, i):
            rng = np.random.default_rng([seed, i])
            t_range = tuple(src.t_range) if src.t_range else None
            for ref in plan_clips(scenario, spec, rng, t_range):
                plan.append(
                    (
                        scenario,
                        ref,
                        {
                            "split": src.split,
                            "source": source_label(src),
                            "source_index": i,
                            "scenario_id": scenario.scenario_id,
                            "viewpoint": ref.viewpoint,
                            "is_sdc": ref.viewpoint == scenario.sdc_index,
                            "t0": ref.t0,
                            "present": ref.t0 + spec.present,
                            "moving": ref.moving,
                            "seed": seed,
                        },
                    )
                )
        if src.max_clips and len(plan) - n_before > src.max_clips:
            rng = np.random.default_rng([src.seed, i, 7])
            keep = np.sort(rng.choice(len(plan) - n_before, src.max_clips, replace=False))
            plan = plan[:n_before] + [plan[n_before + k] for k in keep]
        if len(plan) == n_before:
            raise DataError(
                f"source {i} ({src.kind} {src.path or src.count}) gave no clip: no vehicle is valid "
                f"over a whole {spec.total_frames}-step window",
                path=src.path or None,
            )
    if with_cf:
        plan = with_counterfactuals(plan, counterfactual, spec)

    shape = (len(plan), spec.total_frames, spec.height, spec.width, 3)
    renderer = ClipRenderer(spec)
    box_shape = (len(plan), spec.future_frames, spec.height, spec.width, 3)
    with ExitStack() as stack:
        pose_tmp = stack.enter_context(atomic_path(folder / "pose.npy"))
        ego_tmp = stack.enter_context(atomic_path(folder / "ego.npy"))
        pose_mm = np.lib.format.open_memmap(pose_tmp, mode="w+", dtype=np.uint8, shape=shape)
        ego_mm = np.lib.format.open_memmap(ego_tmp, mode="w+", dtype=np.uint8, shape=shape)
        box_mm = None
        if with_boxes:
            box_tmp = stack.enter_context(atomic_path(folder / "boxes.npy"))
            box_mm = np.lib.format.open_memmap(box_tmp, mode="w+", dtype=np.uint8, shape=box_shape)
        entries = []
        for k, (scenario, ref, entry) in enumerate(tqdm(plan, desc="rendering clips", disable=not progress)):
            ego_seed = int(np.random.default_rng([entry["seed"], ref.viewpoint, ref.t0]).integers(2**31))
            if with_cf and entry["counterfactual"] is not None:  # same ego seed as its twin: one texture per context
                scenario = counterfactual_scenario(scenario, ref, spec, entry["counterfactual"], counterfactual)
            pose_mm[k], ego_mm[k] = renderer.render(scenario, ref, ego_seed)
            entry = {"index": k, **entry, "ego_seed": ego_seed}
            if box_mm is not None:
                box_mm[k], agents = renderer.render_boxes(
                    scenario, ref, np.random.default_rng(box_seed(entry)), boxes.max_agents, boxes.min_pixels
                )
                entry["box_agents"] = [int(a) for a in agents]
            entries.append(entry)
        for mm in (pose_mm, ego_mm, box_mm):
            if mm is not None:
                mm.flush()
        del pose_mm, ego_mm, box_mm
    manifest = {
        "version": CACHE_VERSION,
        "spec": asdict(spec),
        "sources": [asdict(s) for s in sources],
        "num_clips": len(plan),
        "clips": entries,
    }
    if with_boxes:
        manifest["boxes"] = asdict(boxes)
    if with_cf:
        manifest["counterfactual"] = asdict(counterfactual)
    write_text_atomic(folder / "manifest.json", json.dumps(manifest, indent=1))
    log.info("clip cache built: %s (%d clips)", folder, len(plan))
    return folder


class ClipCache:
    """Read access to a built cache folder (memory-mapped).

    Attributes:
      spec: the :class:`ClipSpec` of the clips.
      clips: the manifest entries (list of dicts).
      pose, ego: ``[K, F, H, W, 3]`` uint8 memory maps.
      boxes: ``[K, F_future, H, W, 3]`` uint8 memory map of the box videos, or
        None for a cache built without them.
      box_options: the :class:`BoxClipConfig` they were built with (None without).
      is_counterfactual: [K] bool, which clips are counterfactual (all False without).
    """

    def __init__(self, folder: PathLike) -> None:
        self.folder = Path(folder)
        manifest_path = self.folder / "manifest.json"
        if not manifest_path.is_file():
            raise DataNotFoundError(
                "no manifest.json: the clip cache is missing or was never completed; "
                "build it with `mad-sim train ... ` or build_clip_cache()",
                path=str(self.folder),
            )
        try:
            manifest = json.loads(manifest_path.read_text())
            self.spec = ClipSpec(**manifest["spec"])
            self.clips: List[dict] = manifest["clips"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"corrupt manifest ({exc})", path=str(manifest_path)) from exc
        try:
            self.pose = np.load(self.folder / "pose.npy", mmap_mode="r")
            self.ego = np.load(self.folder / "ego.npy", mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(f"clip arrays unreadable ({exc})", path=str(self.folder)) from exc
        want = (len(self.clips), self.spec.total_frames, self.spec.height, self.spec.width, 3)
        for name, arr in (("pose", self.pose), ("ego", self.ego)):
            if arr.shape != want:
                raise DataError(f"{name}.npy has shape {arr.shape}, manifest says {want}", path=str(self.folder))
        self.boxes: Optional[np.ndarray] = None
        self.box_options: Optional[BoxClipConfig] = None
        self.num_box_agents = np.zeros(len(self.clips), np.int64)
        self.is_counterfactual = np.array([bool(c.get("counterfactual")) for c in self.clips], bool)
        if "boxes" in manifest:
            try:
                self.box_options = BoxClipConfig(**manifest["boxes"])
                self.boxes = np.load(self.folder / "boxes.npy", mmap_mode="r")
                agents = [c["box_agents"] for c in self.clips]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DataError(f"box videos unreadable ({exc!r})", path=str(self.folder / "boxes.npy")) from exc
            want_b = (len(self.clips), self.spec.future_frames, self.spec.height, self.spec.width, 3)
            if self.boxes.shape != want_b:
                raise DataError(f"boxes.npy has shape {self.boxes.shape}, manifest says {want_b}", path=str(self.folder))
            self.num_box_agents = np.array([len(a) for a in agents], np.int64)

    def __len__(self) -> int:
        return len(self.clips)

    def indices(self, split: str, moving_only: bool = False) -> np.ndarray:
        """Clip indices of a split (``train``/``eval``)."""
        return np.array(
            [c["index"] for c in self.clips if c["split"] == split and (c["moving"] or not moving_only)], dtype=np.int64
        )

    def batch(self, index: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(pose, ego)`` of the given clips, ``[B, F, H, W, 3]`` uint8 (copied out of the map)."""
        index = np.asarray(index, dtype=np.int64)
        return np.asarray(self.pose[index]), np.asarray(self.ego[index])

    def box_batch(self, index: np.ndarray) -> np.ndarray:
        """Box videos of the given clips, ``[B, F_future, H, W, 3]`` uint8 (DataError if the cache has none)."""
        if self.boxes is None:
            raise DataError("this clip cache holds no box videos: build it with data.boxes.enabled: true", path=str(self.folder))
        return np.asarray(self.boxes[np.asarray(index, dtype=np.int64)])

    def box_indices(self, split: str) -> np.ndarray:
        """Clips of a split that have at least one controlled agent (empty for a cache without boxes)."""
        if self.boxes is None:
            return np.zeros(0, np.int64)
        idx = self.indices(split)
        return idx[self.num_box_agents[idx] > 0]


def open_dataset(cfg: DatasetConfig, *, progress: bool = True) -> ClipCache:
    """Build (or reuse) the cache of ``cfg`` and open it."""
    if not cfg.sources:
        raise ConfigError("data.sources is empty: list at least one scenario file or a procedural source")
    root = Path(os.path.expanduser(cfg.cache_dir)) if cfg.cache_dir else None
    cf = cfg.counterfactual
    return ClipCache(build_clip_cache(cfg.clip_spec(), cfg.sources, root, progress=progress, boxes=cfg.boxes, counterfactual=cf))
