"""Rigid 2-D transforms between the world frame and an agent's ego frame.

The ego frame of a pose ``(x0, y0, yaw0)`` has its origin at ``(x0, y0)``,
x forward along ``yaw0`` and y to the left.  A world point ``p`` maps to

    p_ego = R(-yaw0) (p - [x0, y0])

and headings to ``yaw - yaw0`` (wrapped to (-pi, pi]).  Every function
broadcasts over leading dimensions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt


def wrap_angle(a: npt.ArrayLike) -> np.ndarray:
    """Wrap radians to (-pi, pi]."""
    return np.pi - np.mod(np.pi - np.asarray(a), 2 * np.pi)


def rotation(yaw: np.ndarray) -> np.ndarray:
    """[..., 2, 2] rotation matrices for CCW angles ``yaw``."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def world_to_ego(xy: np.ndarray, origin_xy: np.ndarray, origin_yaw: float | np.ndarray) -> np.ndarray:
    """Points ``[..., 2]`` (world) to the ego frame of ``(origin_xy, origin_yaw)``."""
    d = np.asarray(xy, dtype=np.float64) - origin_xy
    c, s = np.cos(origin_yaw), np.sin(origin_yaw)
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)


def ego_to_world(xy: np.ndarray, origin_xy: np.ndarray, origin_yaw: float | np.ndarray) -> np.ndarray:
    """Points ``[..., 2]`` (ego frame of ``(origin_xy, origin_yaw)``) to the world frame."""
    p = np.asarray(xy, dtype=np.float64)
    c, s = np.cos(origin_yaw), np.sin(origin_yaw)
    return np.stack([c * p[..., 0] - s * p[..., 1], s * p[..., 0] + c * p[..., 1]], -1) + origin_xy


def vectors_world_to_ego(v: np.ndarray, origin_yaw: float | np.ndarray) -> np.ndarray:
    """Free vectors ``[..., 2]`` (velocities) rotated into the ego frame."""
    return world_to_ego(v, np.zeros(2), origin_yaw)


def heading_world_to_ego(yaw: np.ndarray, origin_yaw: float | np.ndarray) -> np.ndarray:
    return wrap_angle(np.asarray(yaw) - origin_yaw)


def heading_ego_to_world(yaw: np.ndarray, origin_yaw: float | np.ndarray) -> np.ndarray:
    return wrap_angle(np.asarray(yaw) + origin_yaw)
