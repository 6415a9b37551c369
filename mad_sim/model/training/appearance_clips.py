"""Paired RGB / pose clips for the appearance adapter, cached on disk as uint8 ``.npy`` + a manifest.

Sources:

* **camera videos** (the dashcam video in ``shared/data/video``): every
  frame goes through a :class:`~mad_sim.model.appearance.pose_extract.PoseExtractor`
  (classical by default) in order, so tracking sees the full frame rate;
  the video is then resampled to the simulator's rate (``spec.fps``, 10 Hz)
  at ``spec.phases`` sub-frame offsets (source frame
  ``round(phase_offset + k fps_src / fps)``), and cut into windows of
  ``spec.frames`` frames.  With ``spec.mirror`` the horizontally mirrored
  video is a second source, *re-extracted* (mirroring a pose frame would
  swap the hue of the wireframes' left and right edges, which carry meaning).
* **stills**: single camera images (dashcam stills, via the same extractor)
  and Waymo perception frames (pose frame exactly from the 3-D labels,
  :func:`~mad_sim.model.appearance.pose_extract.waymo_pose_pair`), stored as 1-frame pairs.

Held-out split: the last ``heldout_fraction`` of each video's *time* is
``eval`` (windows entirely inside it, stride ``eval_stride``, unmirrored,
phase 0); ``train`` windows lie entirely before it.  No frame of an eval
window is ever in a train window.

Cache folder (name: hash of the spec and the sources' paths, sizes and
mtimes): ``rgb.npy``/``pose.npy`` ``[K, F, H, W, 3]``, ``still_rgb.npy``/
``still_pose.npy`` ``[S, H, W, 3]`` and ``manifest.json`` (written last: a
folder with a manifest is complete).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm.auto import tqdm

from mad_sim.data.camera_files import read_image, read_video
from mad_sim.errors import ConfigError, DataError, DataNotFoundError
from mad_sim.io import atomic_path, write_text_atomic
from mad_sim.model.appearance.pose_extract import extract_pose_video, get_extractor, resize_frames, waymo_pose_pair

log = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]
CACHE_VERSION = 1


@dataclass(frozen=True)
class AppearanceClipSpec:
    """Geometry and sampling of the paired clips.

    Attributes:
      frames: frames per clip (8k + 1 for the LTX VAE).
      width, height: pixels (multiples of 32).
      fps: output frame rate (the simulator's 10 Hz).
      stride: output frames between two train windows.
      eval_stride: output frames between two held-out windows.
      heldout_fraction: final fraction of each video's duration held out.
      phases: temporal resampling offsets per video (1 = none).
      mirror: add the mirrored video (re-extracted) as a train source.
      extractor: registered pose extractor name.
    """

    frames: int = 17
    width: int = 128
    height: int = 128
    fps: float = 10.0
    stride: int = 4
    eval_stride: int = 2
    heldout_fraction: float = 0.25
    phases: int = 2
    mirror: bool = True
    extractor: str = "classical"

    def __post_init__(self) -> None:
        if self.frames < 1 or (self.frames - 1) % 8:
            raise ConfigError(f"appearance clips: frames={self.frames} must be 8k+1 (1, 9, 17...)")
        for name in ("width", "height"):
            if getattr(self, name) < 32 or getattr(self, name) % 32:
                raise ConfigError(f"appearance clips: {name}={getattr(self, name)} must be a positive multiple of 32")
        if not 0.0 <= self.heldout_fraction < 1.0 or self.stride < 1 or self.eval_stride < 1 or self.phases < 1:
            raise ConfigError("appearance clips: need 0 <= heldout_fraction < 1 and stride, eval_stride, phases >= 1")


def default_cache_root() -> Path:
    """``$MAD_SIM_CACHE/appearance`` or ``~/.cache/mad-sim/appearance`` (outside the repo)."""
    root = os.environ.get("MAD_SIM_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "mad-sim") / "appearance"


def _fingerprint(paths: Sequence[PathLike]) -> List[dict]:
    out = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise DataNotFoundError("appearance source file not found", path=str(p))
        st = p.stat()
        out.append({"path": str(p.resolve()), "size": st.st_size, "mtime": int(st.st_mtime)})
    return out


def resample_indices(num_src: int, fps_src: float, fps: float, offset: float) -> np.ndarray:
    """Source frame indices of a ``fps`` resampling starting ``offset`` source frames in."""
    step = fps_src / fps
    n = int(np.floor((num_src - 1 - offset) / step)) + 1
    return np.clip(np.round(offset + step * np.arange(max(n, 0))).astype(np.int64), 0, num_src - 1)


def plan_windows(num_out: int, spec: AppearanceClipSpec) -> Tuple[List[int], List[int]]:
    """Start indices ``(train, eval)`` of windows over ``num_out`` output frames (see module doc)."""
    cut = int(np.floor(num_out * (1.0 - spec.heldout_fraction)))
    train = list(range(0, cut - spec.frames + 1, spec.stride))
    held = list(range(cut, num_out - spec.frames + 1, spec.eval_stride)) if spec.heldout_fraction > 0 else []
    return train, held


def _video_pairs(path: Path, spec: AppearanceClipSpec, progress: bool) -> Tuple[List[np.ndarray], List[np.ndarray], List[dict]]:
    frames, fps_src = read_video(path)
    if fps_src <= 0:
        raise DataError("video has no frame rate in its metadata", path=str(path))
    rgb_all, pose_all, entries = [], [], []
    variants = [(False, frames)] + ([(True, frames[:, :, ::-1])] if spec.mirror else [])
    for mirrored, video in variants:
        pose_src = extract_pose_video(np.ascontiguousarray(video), get_extractor(spec.extractor), spec.width, spec.height)
        rgb_src = resize_frames(video, spec.width, spec.height)
        for phase in range(spec.phases):
            offset = phase * (fps_src / spec.fps) / spec.phases
            idx = resample_indices(len(frames), fps_src, spec.fps, offset)
            train, held = plan_windows(len(idx), spec)
            splits = [("train", s) for s in train]
            if not mirrored and phase == 0:
                splits += [("eval", s) for s in held]
            for split, s in splits:
                src = idx[s : s + spec.frames]
                rgb_all.append(rgb_src[src])
                pose_all.append(pose_src[src])
                entries.append(
                    {
                        "split": split,
                        "source": str(path),
                        "mirrored": mirrored,
                        "phase": phase,
                        "start_frame": int(src[0]),
                        "source_frames": src.tolist(),
                        "time_s": round(float(src[0]) / fps_src, 3),
                    }
                )
    log.info("%s: %d clips (%d held out)", path.name, len(entries), sum(e["split"] == "eval" for e in entries))
    return rgb_all, pose_all, entries


def build_appearance_clips(
    videos: Sequence[PathLike] = (),
    stills: Sequence[PathLike] = (),
    waymo_frames: Sequence[PathLike] = (),
    spec: Optional[AppearanceClipSpec] = None,
    cache_root: Optional[PathLike] = None,
    *,
    progress: bool = True,
) -> Path:
    """Build (or reuse) the paired clip cache; returns its folder.

    Args:
      videos: camera video files (clips are cut from them).
      stills: camera image files (1-frame pairs through the extractor).
      waymo_frames: Waymo perception TFRecords (1-frame pairs, FRONT camera, pose from the labels).
      spec: clip geometry and sampling.
      cache_root: parent folder (default :func:`default_cache_root`).
    """
    spec = spec or AppearanceClipSpec()
    if not (videos or stills or waymo_frames):
        raise ConfigError("build_appearance_clips: give at least one video, still or Waymo frame file")
    sources = {"videos": _fingerprint(videos), "stills": _fingerprint(stills), "waymo": _fingerprint(waymo_frames)}
    key = hashlib.sha256(
        json.dumps({"v": CACHE_VERSION, "spec": asdict(spec), "sources": sources}, sort_keys=True).encode()
    ).hexdigest()[:16]
    folder = Path(cache_root) if cache_root is not None else default_cache_root()
    folder = folder / key
    if (folder / "manifest.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rgb, pose, entries = [], [], []
    for path in tqdm([Path(v) for v in videos], desc="appearance clips", disable=not progress):
        r, p, e = _video_pairs(path, spec, progress)
        rgb += r
        pose += p
        entries += e
    still_rgb: List[np.ndarray] = []
    still_pose: List[np.ndarray] = []
    still_entries: List[Dict[str, Any]] = []
    for path in (Path(s) for s in stills):
        img = read_image(path)
        still_rgb.append(resize_frames(img[None], spec.width, spec.height)[0])
        still_pose.append(extract_pose_video(img[None], get_extractor(spec.extractor), spec.width, spec.height)[0])
        still_entries.append({"split": "train", "source": str(path), "kind": "still"})
    from mad_sim.data.waymo_frame import read_frames

    for path in (Path(w) for w in waymo_frames):
        for k, frame in enumerate(read_frames(path)):
            w_rgb, w_pose, _ = waymo_pose_pair(frame, "FRONT", spec.width, spec.height)
            still_rgb.append(w_rgb)
            still_pose.append(w_pose)
            still_entries.append({"split": "train", "source": str(path), "kind": "waymo", "record": k})
    shape = (spec.frames, spec.height, spec.width, 3)
    arrays = {
        "rgb": np.stack(rgb) if rgb else np.zeros((0,) + shape, np.uint8),
        "pose": np.stack(pose) if pose else np.zeros((0,) + shape, np.uint8),
        "still_rgb": np.stack(still_rgb) if still_rgb else np.zeros((0,) + shape[1:], np.uint8),
        "still_pose": np.stack(still_pose) if still_pose else np.zeros((0,) + shape[1:], np.uint8),
    }
    for name, arr in arrays.items():
        with atomic_path(folder / f"{name}.npy") as tmp:
            np.save(tmp, arr.astype(np.uint8, copy=False))
    manifest = {
        "version": CACHE_VERSION,
        "spec": asdict(spec),
        "sources": sources,
        "clips": [{"index": k, **e} for k, e in enumerate(entries)],
        "stills": [{"index": k, **e} for k, e in enumerate(still_entries)],
    }
    write_text_atomic(folder / "manifest.json", json.dumps(manifest, indent=1))
    log.info("appearance clip cache built: %s (%d clips, %d stills)", folder, len(entries), len(still_entries))
    return folder


class AppearanceClips:
    """Read access to a built cache (memory-mapped).

    Attributes:
      spec: the :class:`AppearanceClipSpec`.
      clips / stills: manifest entries.
      rgb, pose: ``[K, F, H, W, 3]`` uint8; still_rgb, still_pose: ``[S, H, W, 3]`` uint8.
    """

    def __init__(self, folder: PathLike) -> None:
        self.folder = Path(folder)
        path = self.folder / "manifest.json"
        if not path.is_file():
            raise DataNotFoundError(
                "no manifest.json: the appearance clip cache is missing or incomplete; build it with build_appearance_clips()",
                path=str(self.folder),
            )
        try:
            manifest = json.loads(path.read_text())
            self.spec = AppearanceClipSpec(**manifest["spec"])
            self.clips: List[dict] = manifest["clips"]
            self.stills: List[dict] = manifest["stills"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"corrupt manifest ({exc})", path=str(path)) from exc
        try:
            self.rgb: np.ndarray = np.load(self.folder / "rgb.npy", mmap_mode="r")
            self.pose: np.ndarray = np.load(self.folder / "pose.npy", mmap_mode="r")
            self.still_rgb: np.ndarray = np.load(self.folder / "still_rgb.npy", mmap_mode="r")
            self.still_pose: np.ndarray = np.load(self.folder / "still_pose.npy", mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(f"clip arrays unreadable ({exc})", path=str(self.folder)) from exc
        want = (len(self.clips), self.spec.frames, self.spec.height, self.spec.width, 3)
        for name in ("rgb", "pose"):
            if getattr(self, name).shape != want:
                raise DataError(f"{name}.npy has shape {getattr(self, name).shape}, manifest says {want}", path=str(self.folder))

    def __len__(self) -> int:
        return len(self.clips)

    def indices(self, split: str) -> np.ndarray:
        """Clip indices of ``train`` or ``eval``."""
        return np.array([c["index"] for c in self.clips if c["split"] == split], np.int64)

    def batch(self, index: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(rgb, pose)`` ``[B, F, H, W, 3]`` uint8 of the given clips (copied out of the maps)."""
        index = np.asarray(index, np.int64)
        return np.asarray(self.rgb[index]), np.asarray(self.pose[index])


def shared_data_sources(root: Optional[PathLike] = None) -> dict:
    """The real files of the data root (``root``, default :func:`mad_sim.data.root.data_root`) as
    ``build_appearance_clips`` keyword arguments."""
    from mad_sim.data.root import data_root

    base = Path(root) if root else data_root()
    return {
        "videos": [base / "video" / "solidWhiteRight.mp4"],
        "stills": [base / "video" / "solidWhiteCurve.jpg", base / "video" / "solidYellowLeft.jpg"],
        "waymo_frames": [base / "womd" / "pvps_data_one_frame.tfrecord"],
    }
