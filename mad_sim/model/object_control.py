"""Object control: a bounding-box trajectory video for chosen agents, as a condition of the motion adapter.

The authors' "conditional forecaster": besides the pose history (and the ego's
motion), the motion adapter reads a *box video* spanning the forecast, in
which each controlled agent's 3-D box is drawn where it should be.  Like
every MAD condition it is a video, VAE-encoded and prepended as clean tokens
(``Condition(kind="boxes")``, aligned with the target: frame offset 0).

Drawing (:func:`render_box_video`): black background; controlled agent slot
``k`` (0-based, at most :data:`MAX_SLOTS`) is the filled convex hull of its
projected box corners in the flat colour :func:`slot_colors` ``[k]`` (hues
evenly spaced), with a white outline, nearer agents over farther ones.
Boxes are in the camera's vehicle frame, like the pose renderer's agents;
:func:`box_video_from_trajectory` moves a logged / simulated
:class:`~mad_sim.data.scenario.Trajectory` into the viewpoint's frame at each
step exactly as :class:`~mad_sim.render.pose.PoseRenderer` does, so box and
pose videos line up pixel for pixel.

Measuring (:func:`follow_iou`): for each frame and controlled agent, the
screen box of its drawn hull is compared (IoU) with the screen box of the
coloured (skeleton, not grey/white map) pose pixels of the forecast inside that hull dilated by ``margin_px``.
A forecast whose agent sits where the boxes say scores near 1; one whose
agent went elsewhere scores low.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from mad_sim.data.scenario import Trajectory
from mad_sim.errors import RenderError, ShapeError
from mad_sim.model.conditioning import Condition, uint8_to_video
from mad_sim.render.camera import Camera
from mad_sim.render.pose import world_to_vehicle
from mad_sim.render.skeleton import box_keypoints, hue_cycle, place

MAX_SLOTS = 8
"""Controlled agents per video (each gets its own colour)."""


Indices = Union[Sequence[int], np.ndarray]
"""Track or step indices: a sequence of ints or an int array."""


def slot_colors(n: int = MAX_SLOTS) -> np.ndarray:
    """[n, 3] uint8 RGB: the flat fill colour of controlled-agent slot ``k`` (hue ``k / n``)."""
    return hue_cycle(n, offset=0.5)


def render_box_video(camera: Camera, xyz: np.ndarray, heading: np.ndarray, size: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Box video ``[F, H, W, 3]`` uint8 of ``n`` controlled agents (vehicle frame of the camera, per frame).

    Args:
      xyz: [F, n, 3] box centres, metres; heading: [F, n] radians; size: [n, 3] or [F, n, 3]
        (length, width, height); valid: [F, n] bool (invalid boxes are not drawn).
    """
    xyz = np.asarray(xyz, np.float64)
    if xyz.ndim != 3 or xyz.shape[-1] != 3:
        raise ShapeError(f"box centres must be [F, n, 3], got {xyz.shape}")
    f, n, _ = xyz.shape
    if n > MAX_SLOTS:
        raise ShapeError(f"{n} controlled agents; at most {MAX_SLOTS} fit the box video's colour slots")
    heading = np.asarray(heading, np.float64).reshape(f, n)
    size = np.broadcast_to(np.asarray(size, np.float64), (f, n, 3))
    valid = np.asarray(valid, bool).reshape(f, n)
    if not (np.isfinite(xyz[valid]).all() and np.isfinite(heading[valid]).all() and (size[valid] > 0).all()):
        raise RenderError("box video: a valid controlled agent has a non-finite pose or a non-positive size")
    colors = slot_colors()
    out = np.zeros((f, camera.height, camera.width, 3), np.uint8)
    for k in range(f):
        idx = np.flatnonzero(valid[k])
        if idx.size == 0:
            continue
        corners = place(box_keypoints(size[k, idx]), xyz[k, idx], heading[k, idx], size[k, idx, 2])  # [m, 8, 3]
        depth = camera.to_camera(xyz[k, idx])[:, 2]
        for j in np.argsort(-depth):
            uv, d = camera.project(corners[j])
            if not np.isfinite(uv).all():  # partly behind the camera: draw only fully visible boxes
                continue
            hull = cv2.convexHull(np.round(uv).astype(np.int32))
            c = tuple(int(x) for x in colors[idx[j]])
            cv2.fillConvexPoly(out[k], hull, c, cv2.LINE_8)
            cv2.polylines(out[k], [hull], True, (255, 255, 255), 1, cv2.LINE_8)
    return out


def boxes_in_viewpoint(
    traj: Trajectory, viewpoint: int, agents: np.ndarray, steps: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``agents``' boxes in ``viewpoint``'s vehicle frame at each step: ``(xyz [F, n, 3] m, heading [F, n] rad,
    size [F, n, 3] m)`` (non-positive sizes replaced by 1 m), as the pose renderer places agents."""
    if not traj.valid[viewpoint, steps].all():
        raise RenderError(f"box video: viewpoint track {viewpoint} is not valid at every step of {steps.tolist()}")
    xyz = np.zeros((len(steps), len(agents), 3))
    heading = np.zeros((len(steps), len(agents)))
    for i, t in enumerate(steps):
        m = world_to_vehicle(traj.xyz[viewpoint, t], float(traj.heading[viewpoint, t]), float(traj.size[viewpoint, t, 2]))
        xyz[i] = traj.xyz[agents, t] @ m[:, :3].T + m[:, 3]
        heading[i] = traj.heading[agents, t] - traj.heading[viewpoint, t]
    size = np.asarray(traj.size[agents][:, steps].transpose(1, 0, 2), np.float64)
    return xyz, heading, np.where(size > 0, size, 1.0)


def box_video_from_trajectory(traj: Trajectory, viewpoint: int, agents: Indices, steps: Indices, camera: Camera) -> np.ndarray:
    """Box video of ``agents`` (track indices, slot order) over ``steps``, seen from ``viewpoint``'s camera."""
    step_idx = np.asarray(steps, np.int64)
    agent_idx = np.asarray(agents, np.int64)
    if agent_idx.size == 0:
        raise ShapeError("box video: no controlled agent given")
    xyz, heading, size = boxes_in_viewpoint(traj, viewpoint, agent_idx, step_idx)
    return render_box_video(camera, xyz, heading, size, traj.valid[agent_idx][:, step_idx].T)


def _may_cover(camera: Camera, xyz: np.ndarray, heading: np.ndarray, size: np.ndarray, min_pixels: int) -> np.ndarray:
    """[n] bool: boxes that *may* cover ``min_pixels`` in every frame (necessary, not sufficient).

    A box is drawn only when all 8 corners are in front of the camera, and its
    filled hull lies inside its corners' pixel bounding box, so a box whose
    bounding box clipped to the image (plus one pixel of rasterisation slack
    each side) is smaller than ``min_pixels`` cannot qualify.
    """
    f, n, _ = xyz.shape
    corners = place(
        box_keypoints(size.reshape(-1, 3)), xyz.reshape(-1, 3), heading.reshape(-1), size.reshape(-1, 3)[:, 2]
    ).reshape(f, n, 8, 3)
    uv, _ = camera.project(corners)
    finite = np.isfinite(uv).all(axis=(-1, -2))  # [F, n]
    uv = np.where(np.isfinite(uv), uv, 0.0)
    lo = np.clip(uv.min(-2), -1.0, [camera.width, camera.height])
    hi = np.clip(uv.max(-2), -1.0, [camera.width, camera.height])
    area = np.prod(hi - lo + 2.0, axis=-1)
    return (finite & (area >= min_pixels)).all(0)


def box_condition(box_video: np.ndarray, device: torch.device | str = "cpu") -> Condition:
    """``Condition(kind="boxes")`` from a box video ``[F, H, W, 3]`` (or ``[B, F, H, W, 3]``) uint8."""
    v = torch.from_numpy(np.ascontiguousarray(box_video))
    if v.ndim == 4:
        v = v.unsqueeze(0)
    return Condition(uint8_to_video(v).to(device), "boxes")


def _screen_box(mask: np.ndarray) -> Tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def follow_iou(pose_video: np.ndarray, box_video: np.ndarray, num_agents: int, margin_px: int = 4) -> float:
    """Mean IoU between the controlled agents' drawn boxes and the forecast's pose pixels near them (module doc).

    Frames where an agent's box is not drawn are skipped; an agent with no pose
    pixel near its box scores 0 in that frame.
    """
    pose_video, box_video = np.asarray(pose_video), np.asarray(box_video)
    if pose_video.shape != box_video.shape or pose_video.ndim != 4:
        raise ShapeError(f"follow_iou: pose {pose_video.shape} and box {box_video.shape} videos must match, [F, H, W, 3]")
    colors = slot_colors()[:num_agents]
    kernel = np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8)
    scores = []
    for pose, boxes in zip(pose_video, box_video):
        lit = (pose.max(-1).astype(np.int16) - pose.min(-1)) > 60  # skeleton colours, not grey/white map lines
        for c in colors:
            region = np.all(boxes == c, -1)
            if region.sum() < 4:
                continue
            near = lit & cv2.dilate(region.astype(np.uint8), kernel).astype(bool)
            if not near.any():
                scores.append(0.0)
                continue
            a, b = _screen_box(region), _screen_box(near)
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            scores.append(inter / union)
    return float(np.mean(scores)) if scores else float("nan")


# --- the conditional-forecaster training task (history + boxes -> future) -------------------------
def choose_controlled_agents(
    traj: Trajectory,
    types: np.ndarray,
    viewpoint: int,
    steps: Indices,
    camera: Camera,
    rng: np.random.Generator,
    max_agents: int = 2,
    min_pixels: int = 8,
) -> np.ndarray:
    """Track indices (slot order) of up to ``max_agents`` vehicles to control over ``steps``, drawn by ``rng``.

    Candidates: vehicles other than the viewpoint, valid at every step, whose
    box alone fills at least ``min_pixels`` pixels of ``camera``'s image with
    its slot colour (outline excluded) in every frame (so each controlled
    agent is actually shown by its box video and :func:`follow_iou` can find it).
    Returns an empty array when there is none.
    """
    from mad_sim.data.scenario import ObjectType

    step_idx = np.asarray(steps, np.int64)
    ok = (np.asarray(types) == ObjectType.VEHICLE) & traj.valid[:, step_idx].all(1)
    ok[viewpoint] = False
    cand = np.flatnonzero(ok)
    if cand.size:  # cheap geometric pre-filter; the exact pixel count below decides
        cand = cand[_may_cover(camera, *boxes_in_viewpoint(traj, viewpoint, cand, step_idx), min_pixels)]
    keep: List[int] = []
    for a in cand:
        video = box_video_from_trajectory(traj, viewpoint, [int(a)], step_idx, camera)
        c = slot_colors()[0]  # fill pixels (not the white outline), channel by channel: a reduction over
        fill = (video[..., 0] == c[0]) & (video[..., 1] == c[1]) & (video[..., 2] == c[2])  # the size-3 axis is slow
        if np.count_nonzero(fill, axis=(1, 2)).min() >= min_pixels:
            keep.append(int(a))
    chosen = np.asarray(keep, np.int64)
    return rng.permutation(chosen)[:max_agents] if chosen.size else chosen


def boxes_task_loss(
    model,
    pose_history: np.ndarray,
    future_pose: np.ndarray,
    box_video: np.ndarray,
    generator: torch.Generator | None = None,
    ego_motion: np.ndarray | None = None,
    sigmas: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Flow-matching loss of the *conditional forecaster* task: future pose video given history + boxes.

    The training-task hook for object control (a motion-adapter task next to
    "history" and "history + ego motion"): the target is the future pose
    video ``[B, F, H, W, 3]`` uint8; conditions are the pose history
    ``[B, F_h, H, W, 3]`` (``pose_history``, before the target), the box video
    of the controlled agents over the target's span (``boxes``, offset 0,
    :func:`box_video_from_trajectory` on the logged future) and optionally the
    ego-motion video (``ego_motion``).  Differentiable w.r.t. the active adapter of
    ``model`` (a :class:`~mad_sim.model.mad.MADModel`).
    """

    def video(x: np.ndarray, what: str) -> torch.Tensor:
        x = np.asarray(x)
        if x.dtype != np.uint8 or x.ndim != 5 or x.shape[-1] != 3:
            raise ShapeError(f"boxes task: {what} must be uint8 [B, F, H, W, 3], got {x.dtype} {x.shape}")
        return uint8_to_video(torch.from_numpy(np.ascontiguousarray(x))).to(model.backbone.device)

    target = video(future_pose, "future pose video")
    boxes = video(box_video, "box video")
    if boxes.shape != target.shape:
        raise ShapeError(f"boxes task: box video {tuple(boxes.shape)} must span the target {tuple(target.shape)}")
    conds = [Condition(video(pose_history, "pose history"), "pose_history"), Condition(boxes, "boxes")]
    if ego_motion is not None:
        conds.append(Condition(video(ego_motion, "ego-motion video"), "ego_motion"))
    return model.training_loss(target, conds, None, generator, sigmas=sigmas, noise=noise)
