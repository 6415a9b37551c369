"""When lane odometry may claim a frame's pose: readability of a frame, quality of a registration.

:func:`~mad_sim.model.parse.odometry.track_ego_motion` always returns a pose for
every frame (NaN-free), but only a pose *measured* by an acceptable
registration is flagged valid.  Two checks decide it:

* **Readable frame** (:func:`readable`): at least ``min_points`` map pixels
  back-project onto the ground within range (an all-black frame, or colour
  noise, whose every pixel is near a saturated one, has none), and no more
  than ``max_map_fraction`` of the image is map paint.  Pose frames draw the
  map as thin lines on black (1.5-5 % of the pixels at 128 x 128 on the WOMD
  logs); a frame that is mostly "paint" (grey noise: ~80 %) makes every
  chamfer distance small whatever the motion, so it measures nothing.
* **Good registration** (:func:`fit_quality`, :func:`acceptable`): at the
  chosen pose, both frames' ground points are transferred into the other
  frame (each reference, both directions); of those landing inside the
  image (``overlap``, at least ``min_overlap``), the mean distance to the
  other frame's map pixels of their class (``residual_px``, pixels, each
  capped at ``tau``) must be at most ``max_residual_px`` and the share
  within ``inlier_px`` pixels (``inliers / overlap``) at least
  ``min_inlier_fraction``.

Measured at 128 x 128 on the WOMD log (four 33-frame clips, lag-12
references, ``tau`` 3.2 px, inliers within 1 px): clean rendered frames
have residual 0.2-0.6 px and inlier share 0.8-1.0; frames degraded like
generated ones (noise, blur, 1 px jitter, dropped pixels;
:func:`~mad_sim.model.evaluation.parse.degrade`) 1.0-1.7 px (1.9-2.1 on the 3 of
132 frames where the track had drifted) and 0.27-0.66; a frame of another
scene spliced into a clip 1.87-2.17 px and 0.22-0.34.  The residual
separates them (default 1.75 px); the inlier share is a backstop (0.2).
Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from mad_sim.errors import ConfigError
from mad_sim.model.parse.odometry_ground import FrameData, compose, inverse, transfer_distances
from mad_sim.render.camera import Camera


@dataclass(frozen=True)
class ValidityConfig:
    """Thresholds of the validity checks (see the module docstring).

    Attributes:
      min_points: ground points (map pixels back-projected within range) a readable frame has at least.
      max_map_fraction: share of the image's pixels that may be map paint, in (0, 1].
      inlier_px: a transferred point within this many pixels of its class is an inlier.
      max_residual_px: mean distance (pixels) of the transferred points an accepted registration has at most.
      min_inlier_fraction: share of inliers among the transferred points an accepted registration has at least.
      min_overlap: transferred points (all references, both directions) that must land inside the image.
    """

    min_points: int = 40
    max_map_fraction: float = 0.25
    inlier_px: float = 1.0
    max_residual_px: float = 1.75
    min_inlier_fraction: float = 0.2
    min_overlap: int = 40

    def __post_init__(self) -> None:
        if (
            self.min_points < 1
            or self.min_overlap < 1
            or not 0 < self.max_map_fraction <= 1
            or not self.inlier_px > 0
            or not self.max_residual_px > 0
            or not 0 <= self.min_inlier_fraction <= 1
        ):
            raise ConfigError(
                f"ValidityConfig: min_points={self.min_points} and min_overlap={self.min_overlap} "
                f"must be >= 1, max_map_fraction={self.max_map_fraction} in (0, 1], inlier_px="
                f"{self.inlier_px} and max_residual_px={self.max_residual_px} > 0, "
                f"min_inlier_fraction={self.min_inlier_fraction} in [0, 1]"
            )


@dataclass(frozen=True)
class FitQuality:
    """How well a registration explains both frames.

    Attributes:
      residual_px: mean distance (pixels, each capped at ``tau``) of the transferred points inside the image.
      inliers: transferred points within ``inlier_px`` of their class.
      overlap: transferred points inside the image (all references, both directions).
    """

    residual_px: float
    inliers: int
    overlap: int

    @property
    def inlier_fraction(self) -> float:
        return self.inliers / self.overlap if self.overlap else 0.0


def readable(data: FrameData, cfg: ValidityConfig) -> bool:
    """Whether a frame's map can be registered at all (enough ground points, not mostly paint)."""
    return data.ground_points >= cfg.min_points and data.map_fraction <= cfg.max_map_fraction


def fit_quality(
    camera: Camera, refs: List[Tuple[FrameData, np.ndarray]], cur: FrameData, pose: np.ndarray, tau: float, inlier_px: float
) -> FitQuality:
    """:class:`FitQuality` of ``cur`` at ``pose [3]`` against ``refs`` (``(frame data, pose [3])``, common frame)."""
    parts = []
    for data, ref_pose in refs:
        rel = compose(inverse(np.asarray(ref_pose, np.float64)), np.asarray(pose, np.float64))[None]
        if data.points.shape[0]:
            parts.append(transfer_distances(camera, data, cur, rel)[0])
        if cur.points.shape[0]:
            parts.append(transfer_distances(camera, cur, data, inverse(rel))[0])
    d = np.concatenate(parts) if parts else np.zeros(0)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return FitQuality(float(tau), 0, 0)
    return FitQuality(float(np.minimum(d, tau).mean()), int((d <= inlier_px).sum()), int(d.size))


def acceptable(q: FitQuality, cfg: ValidityConfig) -> bool:
    """Whether a registration of :class:`FitQuality` ``q`` passes the thresholds of ``cfg``."""
    return q.overlap >= cfg.min_overlap and q.residual_px <= cfg.max_residual_px and q.inlier_fraction >= cfg.min_inlier_fraction


__all__ = ["FitQuality", "ValidityConfig", "acceptable", "fit_quality", "readable"]
