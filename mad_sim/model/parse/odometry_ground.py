"""Ground points of a pose frame's static map, and their transfer into another frame (lane odometry's geometry).

A pose frame's map pixels (white lanes, grey road lines / edges /
crosswalks; :func:`~mad_sim.model.parse.pixels.map_pixels`) back-project
through the known camera onto the ground plane ``z = 0`` of the vehicle frame
(x forward, y left, metres).  :func:`transfer_distances` moves one frame's
ground points into another frame by a planar motion and measures, in pixels,
how far each lands from the other frame's map pixels of its class (the
truncated distance maps, bilinear): the chamfer residual both the
registration cost and the validity checks of :mod:`mad_sim.model.parse.odometry_validity`
are built on.

SE(2) poses are ``[..., 3]`` ``(x, y, yaw)`` arrays, metres and radians.
Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mad_sim.model.parse.pixels import PixelThresholds, bilinear, map_pixels, truncated_distance_map
from mad_sim.render.camera import Camera


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SE(2) composition ``a (+) b`` of poses ``[..., 3]``: ``b`` expressed in ``a``'s frame, returned in ``a``'s parent."""
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    return np.stack(
        [
            a[..., 0] + c * b[..., 0] - s * b[..., 1],
            a[..., 1] + s * b[..., 0] + c * b[..., 1],
            np.angle(np.exp(1j * (a[..., 2] + b[..., 2]))),
        ],
        -1,
    )


def inverse(a: np.ndarray) -> np.ndarray:
    """SE(2) inverse of poses ``[..., 3]``."""
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    return np.stack([-(c * a[..., 0] + s * a[..., 1]), s * a[..., 0] - c * a[..., 1], -a[..., 2]], -1)


@dataclass
class FrameData:
    """The static map of one pose frame on the ground.

    Attributes:
      points: [P, 2] ground points (vehicle frame of the frame, metres), evenly subsampled to ``max_points``.
      cls: [P] int64 class of each point: 0 lane (white), 1 grey.
      dist: [2, H, W] float32 truncated distance (pixels) to the nearest lane / grey pixel.
      map_fraction: share of the image's pixels that are map paint (lane or grey), in [0, 1].
      ground_points: ground points found before subsampling (within range), a count.
    """

    points: np.ndarray
    cls: np.ndarray
    dist: np.ndarray
    map_fraction: float
    ground_points: int


def frame_data(
    frame: np.ndarray, camera: Camera, max_range_m: float, max_points: int, tau: float, pixels: PixelThresholds | None = None
) -> FrameData:
    """:class:`FrameData` of an ``[H, W, 3]`` uint8 pose frame drawn by ``camera``.

    Ground points farther than ``max_range_m`` from the camera, and pixels at or above
    the horizon, are dropped; ``tau`` (pixels) truncates the distance maps.
    """
    lane, grey = map_pixels(frame, pixels or PixelThresholds())
    dist = np.stack([truncated_distance_map(lane, tau), truncated_distance_map(grey, tau)])
    pts, cls = [], []
    for k, m in enumerate((lane, grey)):
        v, u = np.nonzero(m)
        if u.size == 0:
            continue
        g = camera.backproject_ground(np.stack([u, v], -1).astype(np.float64))
        rel = g[:, :2] - camera.position[:2]
        ok = np.isfinite(g).all(1) & (np.hypot(rel[:, 0], rel[:, 1]) <= max_range_m)
        pts.append(g[ok, :2])
        cls.append(np.full(int(ok.sum()), k, np.int64))
    points = np.concatenate(pts) if pts else np.zeros((0, 2))
    cl = np.concatenate(cls) if cls else np.zeros(0, np.int64)
    found = int(points.shape[0])
    if found > max_points:
        keep = np.linspace(0, found - 1, max_points).astype(np.int64)
        points, cl = points[keep], cl[keep]
    return FrameData(points, cl, dist, float((lane | grey).mean()), found)


def transfer_distances(camera: Camera, src: FrameData, dst: FrameData, motion: np.ndarray) -> np.ndarray:
    """[C, P] distance (pixels, <= tau) of each of ``src``'s ground points to ``dst``'s map pixels of its class.

    ``motion [C, 3]`` is ``dst``'s pose in ``src``'s frame; a point ``p`` of ``src`` is
    seen from ``dst`` at ``R(-dyaw) (p - [dx, dy])`` and projected with ``camera``.
    NaN where the point leaves ``dst``'s image (or goes behind the camera).
    """
    c, s = np.cos(motion[:, 2])[:, None], np.sin(motion[:, 2])[:, None]
    dx = src.points[None, :, 0] - motion[:, 0:1]
    dy = src.points[None, :, 1] - motion[:, 1:2]
    x = c * dx + s * dy
    y = -s * dx + c * dy
    uv, _ = camera.project(np.stack([x, y, np.zeros_like(x)], -1))
    return bilinear(dst.dist, np.broadcast_to(src.cls[None], x.shape), uv)


def transfer_cost(
    camera: Camera, src: FrameData, dst: FrameData, motion: np.ndarray, tau: float, grey_weight: float
) -> np.ndarray:
    """[C] weighted mean of :func:`transfer_distances` (pixels); points leaving the image cost ``tau / 2``,
    grey points weigh ``grey_weight`` against the lanes' 1; ``tau / 2`` when ``src`` has no points."""
    if src.points.shape[0] == 0:
        return np.full(motion.shape[0], 0.5 * tau)
    d = transfer_distances(camera, src, dst, motion)
    d = np.where(np.isfinite(d), d, 0.5 * tau)
    w = np.where(src.cls == 0, 1.0, grey_weight)[None]
    return (d * w).sum(1) / w.sum()


__all__ = ["FrameData", "compose", "frame_data", "inverse", "transfer_cost", "transfer_distances"]
