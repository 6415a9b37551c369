"""Where a viewpoint's pose camera sits on its vehicle: field of view, height, downward pitch.

A :class:`CameraMount` is the part of a camera that a model preset chooses
(:meth:`camera` adds the frame size).  The dashcam mount (1.6 m, level, 90
degrees) matches real driving video; an elevated, pitched mount spreads the
ground of the first 50 m over most of the frame instead of a thin band at the
horizon, so small frames keep vehicles readable.  With height ``h`` and pitch
``p`` the ground at range ``r`` appears ``atan(h / r) - p`` below the optical
axis, i.e. at image row ``cy + fy * tan(atan(h / r) - p)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mad_sim.errors import RenderError
from mad_sim.render.camera import Camera


@dataclass(frozen=True)
class CameraMount:
    """A forward-looking camera on the viewpoint vehicle (vehicle frame: x forward, z up).

    Attributes:
      hfov_deg: horizontal field of view, degrees, in (0, 180).
      mount_height: height above the vehicle's reference point (its box centre's z), metres, > 0.
      pitch_deg: downward tilt of the optical axis, degrees, in [0, 90).
      forward: position along the vehicle's x axis, metres.
    """

    hfov_deg: float = 90.0
    mount_height: float = 1.6
    pitch_deg: float = 0.0
    forward: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.hfov_deg < 180.0 or self.mount_height <= 0.0 or not 0.0 <= self.pitch_deg < 90.0:
            raise RenderError(
                f"camera mount needs hfov in (0, 180), height > 0 and pitch in [0, 90): got "
                f"hfov={self.hfov_deg}, height={self.mount_height}, pitch={self.pitch_deg}"
            )

    def camera(self, width: int, height: int) -> Camera:
        """The :class:`Camera` of this mount at ``width`` x ``height`` pixels (principal point at the centre)."""
        return Camera.default_front(
            width, height, hfov_deg=self.hfov_deg, mount_height=self.mount_height, forward=self.forward, pitch_deg=self.pitch_deg
        )


DASHCAM = CameraMount()
"""1.6 m, level, 90 degrees: the mount of every pose video so far, and of real dashcam footage."""
