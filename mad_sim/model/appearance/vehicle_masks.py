"""The vehicle boxes of paired appearance clips: boxes, masks and pose frames without the vehicles.

The classical pose extraction
(:class:`~mad_sim.model.appearance.pose_extract.ClassicalExtractor`) is re-run
over a clip's source video (mirrored when the clip is), in order, exactly as
:func:`~mad_sim.model.training.appearance_clips.build_appearance_clips` ran it;
for each source frame it keeps the vehicle boxes (source pixels ``(u0, v0, u1,
v1)``) and draws the pose frame twice through the same ground camera: with the
vehicles (equal to the cached pose frame) and without them (the same lanes,
skeletons erased).  Boxes are scaled per axis to the clip's ``W x H`` and
rasterised, grown by ``pad`` pixels, into masks ``[F, H, W]`` bool.

Used by the VAE stage (its loss up-weights the vehicle pixels,
:func:`clip_vehicle_masks`) and by
:mod:`mad_sim.model.evaluation.appearance_vehicles` (:func:`vehicle_clips`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from mad_sim.errors import ShapeError

PathLike = Union[str, os.PathLike]


@dataclass
class VehicleClip:
    """One paired clip with its vehicle boxes.

    Attributes:
      index: the clip's index in its :class:`~mad_sim.model.training.appearance_clips.AppearanceClips`.
      rgb, pose, pose_without: ``[F, H, W, 3]`` uint8: camera frames, pose frames, pose frames
        with the vehicle skeletons erased.
      masks: ``[F, H, W]`` bool: pixels inside a (padded) vehicle box.
      boxes: per frame, ``[V, 4]`` float32 boxes ``(u0, v0, u1, v1)`` in clip pixels.
    """

    index: int
    rgb: np.ndarray
    pose: np.ndarray
    pose_without: np.ndarray
    masks: np.ndarray
    boxes: List[np.ndarray]


def box_mask(boxes: np.ndarray, width: int, height: int, pad: int = 1) -> np.ndarray:
    """``[height, width]`` bool: pixels whose centre lies in a box ``[V, 4]`` (clip pixels) grown by ``pad``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    m = np.zeros((height, width), bool)
    for u0, v0, u1, v1 in boxes:
        c0, c1 = int(np.floor(u0 - 0.5)) - pad + 1, int(np.ceil(u1 - 0.5)) + pad
        r0, r1 = int(np.floor(v0 - 0.5)) - pad + 1, int(np.ceil(v1 - 0.5)) + pad
        m[max(r0, 0) : max(min(r1, height), 0), max(c0, 0) : max(min(c1, width), 0)] = True
    return m


def source_vehicle_tracks(
    path: PathLike,
    width: int,
    height: int,
    mirrored: bool = False,
    extractor: str = "classical",
    pad: int = 1,
    with_poses: bool = True,
) -> Dict[str, Any]:
    """Run the pose extraction over a whole camera video; per source frame: boxes, masks and pose frames.

    Returns ``{"boxes": [N] list of [V, 4] (clip pixels), "masks": [N, height, width] bool}`` and, with
    ``with_poses``, ``"pose"`` / ``"pose_without"``: ``[N, height, width, 3]`` uint8 (see module doc).
    """
    from mad_sim.data.camera_files import read_video
    from mad_sim.model.appearance.pose_extract import GroundCamera, PoseDetections, draw_detections, get_extractor

    frames, _ = read_video(path)
    if mirrored:
        frames = frames[:, :, ::-1]
    ext, ground = get_extractor(extractor), GroundCamera()
    ext.reset()
    ground.reset()
    n = len(frames)
    boxes, masks = [], np.zeros((n, height, width), bool)
    pose = np.zeros((n, height, width, 3), np.uint8) if with_poses else None
    pose_without = np.zeros_like(pose) if with_poses else None
    for i in range(n):
        det = ext.detect(np.ascontiguousarray(frames[i]))
        cam = ground.update(det)
        sw, sh = det.image_size
        b = np.asarray(det.vehicles, np.float32).reshape(-1, 4) * np.array([width / sw, height / sh] * 2, np.float32)
        boxes.append(b)
        masks[i] = box_mask(b, width, height, pad)
        if pose is not None and pose_without is not None:  # with_poses
            pose[i] = draw_detections(det, cam, width, height)
            bare = PoseDetections(
                image_size=det.image_size,
                lanes=det.lanes,
                vehicles=np.zeros((0, 4), np.float32),
                ego_lane=det.ego_lane,
                persons=det.persons,
            )
            pose_without[i] = draw_detections(bare, cam, width, height)
    return {"boxes": boxes, "masks": masks, "pose": pose, "pose_without": pose_without}


def vehicle_clips(clips, split: str = "eval", pad: int = 1, max_clips: Optional[int] = None) -> List[VehicleClip]:
    """The video clips of ``split`` of an :class:`~mad_sim.model.training.appearance_clips.AppearanceClips` with their boxes.

    Checks that the re-drawn pose frames equal the cached ones (the boxes are the skeletons' boxes).
    """
    spec = clips.spec
    chosen = [c for c in clips.clips if c["split"] == split and "source_frames" in c][:max_clips]
    tracks: Dict[Tuple[str, bool], dict] = {}
    out = []
    for c in chosen:
        key = (c["source"], bool(c["mirrored"]))
        if key not in tracks:
            tracks[key] = source_vehicle_tracks(c["source"], spec.width, spec.height, key[1], spec.extractor, pad)
        t, src = tracks[key], np.asarray(c["source_frames"], np.int64)
        rgb, pose = clips.batch(np.array([c["index"]]))
        if not np.array_equal(t["pose"][src], pose[0]):
            raise ShapeError(
                f"clip {c['index']} ({c['source']}): re-extracted pose frames differ from the cached ones; rebuild the clip cache"
            )
        out.append(
            VehicleClip(int(c["index"]), rgb[0], pose[0], t["pose_without"][src], t["masks"][src], [t["boxes"][k] for k in src])
        )
    return out


def clip_vehicle_masks(clips, pad: int = 1) -> np.ndarray:
    """``[K, F, H, W]`` bool vehicle-box masks of every video clip of a clip cache (zeros for stills-only entries)."""
    spec = clips.spec
    out = np.zeros((len(clips), spec.frames, spec.height, spec.width), bool)
    tracks: Dict[Tuple[str, bool], np.ndarray] = {}
    for c in clips.clips:
        if "source_frames" not in c:
            continue
        key = (c["source"], bool(c["mirrored"]))
        if key not in tracks:
            tracks[key] = source_vehicle_tracks(
                c["source"], spec.width, spec.height, key[1], spec.extractor, pad, with_poses=False
            )["masks"]
        out[c["index"]] = tracks[key][np.asarray(c["source_frames"], np.int64)]
    return out
