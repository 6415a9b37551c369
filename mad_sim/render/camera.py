"""Pinhole camera model: vehicle frame <-> OpenCV camera frame <-> pixels.

Frames:

* *vehicle*: x forward, y left, z up, metres; origin on the ground plane
  below the viewpoint agent's box centre (for the pose renderer) or the
  Waymo vehicle origin (for a real perception frame).
* *camera* (OpenCV): x right, y down, z forward along the optical axis.
* *pixels*: ``(u, v)`` with ``u`` to the right, ``v`` down; pixel ``(i, j)``
  has its centre at ``u = j, v = i`` (OpenCV's drawing convention).

Projection of a camera-frame point ``(x, y, z)`` with ``z > 0``::

    x' = x / z,  y' = y / z,  r2 = x'^2 + y'^2
    radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3
    x'' = x' radial + 2 p1 x' y' + p2 (r2 + 2 x'^2)
    y'' = y' radial + p1 (r2 + 2 y'^2) + 2 p2 x' y'
    u = fx x'' + cx,  v = fy y'' + cy

which is OpenCV's model and the one Waymo calibrations use (intrinsic
vector ``[f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3]``).

Segments are clipped against the view frustum (near plane plus the four
image-edge planes, widened by a guard margin) before projection, so line
drawing never receives points behind the camera or astronomically far
outside the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Tuple

import numpy as np

from mad_sim.errors import RenderError
from mad_sim.render.clip import clip_parameters


def apply_affine(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """``points [..., 3] @ rotation.T + translation`` with elementwise arithmetic.

    A 3x3 product done as nine multiply-adds: for long thin arrays this is
    as fast as BLAS and never spins up (or waits on) BLAS threads, whose cost
    swamps small products on a busy 2-core machine.
    """
    p = np.asarray(points, np.float64)
    r = np.asarray(rotation, np.float64)
    t = np.asarray(translation, np.float64)
    if p.size < 192 or t.shape != (3,) or p.shape[-1] != 3:
        x, y, z = p[..., 0:1], p[..., 1:2], p[..., 2:3]
        return x * r[:, 0] + y * r[:, 1] + z * r[:, 2] + translation
    # Many points: one output column at a time over the flattened points (long inner loops; the
    # broadcast form above runs numpy's inner loop over the 3-long last axis, ~6x slower).  The same
    # operations in the same order per element, so the same bits.
    flat = p.reshape(-1, 3)
    x, y, z = flat[:, 0], flat[:, 1], flat[:, 2]
    out = np.empty((flat.shape[0], 3))
    acc = np.empty(flat.shape[0])
    for i in range(3):
        o = out[:, i]
        np.multiply(x, r[i, 0], out=acc)
        np.multiply(y, r[i, 1], out=o)
        acc += o
        np.multiply(z, r[i, 2], out=o)
        acc += o
        np.add(acc, t[i], out=o)
    return out.reshape(p.shape)


# Waymo's camera frame (x forward, y left, z up) from OpenCV's (x right, y down, z forward).
_WAYMO_FROM_CV = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(eq=False)
class Camera:
    """A calibrated camera rigidly mounted on a vehicle.

    Attributes:
      width, height: image size in pixels.
      fx, fy, cx, cy: focal lengths and principal point, pixels.
      distortion: [5] float64 ``(k1, k2, p1, p2, k3)``; zeros for an ideal pinhole.
      cam_to_vehicle: [4, 4] float64 rigid transform taking OpenCV camera
        coordinates to vehicle coordinates (its translation is the camera's
        position in the vehicle frame).
      near: near-plane depth in metres; geometry closer than this is clipped.
      guard_px: how far outside the image (pixels) clipped segments may reach,
        so thick lines that cross the border are still drawn whole.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(5))
    cam_to_vehicle: np.ndarray = field(default_factory=lambda: np.eye(4))
    near: float = 0.2
    guard_px: float = 8.0

    def __post_init__(self) -> None:
        if (
            not (isinstance(self.width, (int, np.integer)) and isinstance(self.height, (int, np.integer)))
            or self.width < 1
            or self.height < 1
        ):
            raise RenderError(f"camera size must be positive integers, got {self.width}x{self.height}")
        vals = np.array([self.fx, self.fy, self.cx, self.cy, self.near], dtype=np.float64)
        if not np.isfinite(vals).all() or self.fx <= 0 or self.fy <= 0 or self.near <= 0:
            raise RenderError(
                f"camera intrinsics must be finite with positive focal lengths and near plane, got "
                f"fx={self.fx}, fy={self.fy}, cx={self.cx}, cy={self.cy}, near={self.near}"
            )
        self.distortion = np.asarray(self.distortion, np.float64).reshape(5)
        self.cam_to_vehicle = np.asarray(self.cam_to_vehicle, np.float64)
        if self.cam_to_vehicle.shape != (4, 4) or not np.isfinite(self.cam_to_vehicle).all():
            raise RenderError(f"cam_to_vehicle must be a finite 4x4 matrix, got shape {self.cam_to_vehicle.shape}")
        r = self.cam_to_vehicle[:3, :3]
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-6):
            raise RenderError("cam_to_vehicle rotation is not orthonormal")
        self.width, self.height = int(self.width), int(self.height)
        self.fx, self.fy, self.cx, self.cy = float(self.fx), float(self.fy), float(self.cx), float(self.cy)
        vehicle_to_cam = np.linalg.inv(self.cam_to_vehicle)
        self._r_vc = np.ascontiguousarray(vehicle_to_cam[:3, :3])
        self._t_vc = vehicle_to_cam[:3, 3].copy()
        self._has_distortion = bool(np.any(self.distortion != 0))
        self._planes = self._frustum_planes()

    # --- constructors -----------------------------------------------------------
    @classmethod
    def default_front(
        cls,
        width: int = 128,
        height: int = 128,
        hfov_deg: float = 90.0,
        mount_height: float = 1.6,
        forward: float = 0.0,
        pitch_deg: float = 0.0,
        near: float = 0.2,
    ) -> "Camera":
        """A forward-looking camera like a car's, square pixels, principal point at the image centre.

        Args:
          width, height: image size in pixels (the vertical field of view follows
            from the aspect ratio: ``vfov = 2 atan(tan(hfov / 2) * height / width)``).
          hfov_deg: horizontal field of view in degrees, in (0, 180).
          mount_height: camera height above the ground (vehicle z), metres.
          forward: camera position along the vehicle x axis, metres.
          pitch_deg: downward tilt of the optical axis, degrees (positive looks down).
          near: near-plane depth in metres.
        """
        if not 0.0 < hfov_deg < 180.0:
            raise RenderError(f"horizontal field of view must be in (0, 180) degrees, got {hfov_deg}")
        fx = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        p = math.radians(pitch_deg)
        c, s = math.cos(p), math.sin(p)
        m = np.eye(4)
        # Columns: the camera's x (right), y (down) and z (optical axis) in the vehicle frame.
        m[:3, 0] = (0.0, -1.0, 0.0)
        m[:3, 1] = (-s, 0.0, -c)
        m[:3, 2] = (c, 0.0, -s)
        m[:3, 3] = (forward, 0.0, mount_height)
        return cls(
            width=width, height=height, fx=fx, fy=fx, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0, cam_to_vehicle=m, near=near
        )

    @classmethod
    def from_waymo(cls, intrinsic: np.ndarray, extrinsic: np.ndarray, width: int, height: int, near: float = 0.2) -> "Camera":
        """A Waymo perception camera from its calibration.

        Args:
          intrinsic: [9] ``(f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3)``.
          extrinsic: [4, 4] camera -> vehicle transform, Waymo camera axes
            (x along the optical axis, y left, z up).
          width, height: image size in pixels.
        """
        k = np.asarray(intrinsic, np.float64).reshape(-1)
        if k.shape[0] != 9:
            raise RenderError(f"Waymo intrinsic needs 9 values, got {k.shape[0]}")
        ext = np.asarray(extrinsic, np.float64).reshape(4, 4)
        m = ext.copy()
        m[:3, :3] = ext[:3, :3] @ _WAYMO_FROM_CV
        return cls(
            width=int(width),
            height=int(height),
            fx=k[0],
            fy=k[1],
            cx=k[2],
            cy=k[3],
            distortion=k[[4, 5, 6, 7, 8]],
            cam_to_vehicle=m,
            near=near,
        )

    def resized(self, width: int, height: int) -> "Camera":
        """The same camera sampled at another resolution (intrinsics scaled per axis)."""
        sx, sy = width / self.width, height / self.height
        return Camera(
            width=width,
            height=height,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            distortion=self.distortion,
            cam_to_vehicle=self.cam_to_vehicle,
            near=self.near,
            guard_px=self.guard_px,
        )

    # --- properties --------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        """[3, 3] intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def position(self) -> np.ndarray:
        """[3] camera centre in the vehicle frame, metres."""
        return self.cam_to_vehicle[:3, 3].copy()

    @property
    def vehicle_to_cam(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(R [3, 3], t [3])`` with ``p_cam = R p_vehicle + t``."""
        return self._r_vc, self._t_vc

    @property
    def hfov_deg(self) -> float:
        """Horizontal field of view (ideal pinhole), degrees."""
        return math.degrees(math.atan((self.cx + 0.5) / self.fx) + math.atan((self.width - 0.5 - self.cx) / self.fx))

    # --- transforms --------------------------------------------------------------
    def to_camera(self, points_vehicle: np.ndarray) -> np.ndarray:
        """Vehicle-frame points ``[..., 3]`` to OpenCV camera coordinates ``[..., 3]``."""
        return apply_affine(points_vehicle, self._r_vc, self._t_vc)

    def to_vehicle(self, points_cam: np.ndarray) -> np.ndarray:
        """OpenCV camera coordinates ``[..., 3]`` to vehicle-frame points ``[..., 3]``."""
        return apply_affine(points_cam, self.cam_to_vehicle[:3, :3], self.cam_to_vehicle[:3, 3])

    def project_camera(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera-frame points ``[..., 3]`` (z > 0 assumed) to pixels ``[..., 2]`` (with distortion)."""
        p = np.asarray(points_cam, np.float64)
        return np.stack(self.project_xyz(p[..., 0], p[..., 1], p[..., 2]), -1)

    def project_xyz(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """:meth:`project_camera` for coordinates given as three arrays (any equal shape): ``(u, v)`` pixels.

        ``u = fx * d(x / z) + cx``, ``v = fy * d(y / z) + cy`` with ``d`` the lens distortion (identity
        for an ideal pinhole).
        """
        x = x / z
        y = y / z
        if self._has_distortion:
            k1, k2, p1, p2, k3 = self.distortion
            r2 = x * x + y * y
            radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
            x, y = (
                x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
                y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y,
            )
        return self.fx * x + self.cx, self.fy * y + self.cy

    def project(self, points_vehicle: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Vehicle-frame points ``[..., 3]`` to ``(uv [..., 2] pixels, depth [...] metres)``.

        ``depth`` is the camera-frame z.  Where ``depth <= near`` the point is
        behind or too close to the camera and ``uv`` is NaN (documented, so
        callers can test ``np.isfinite``).
        """
        pc = self.to_camera(points_vehicle)
        depth = pc[..., 2]
        front = depth > self.near
        safe = np.where(front[..., None], pc, 1.0)
        uv = self.project_camera(safe)
        uv[~front] = np.nan
        return uv, depth

    def in_image(self, uv: np.ndarray) -> np.ndarray:
        """[...] bool: pixel coordinates inside the image (NaN counts as outside)."""
        u, v = uv[..., 0], uv[..., 1]
        with np.errstate(invalid="ignore"):
            return (u >= -0.5) & (u < self.width - 0.5) & (v >= -0.5) & (v < self.height - 0.5)

    # --- rays -------------------------------------------------------------------
    def pixel_rays(self) -> np.ndarray:
        """[H, W, 3] float64 unit ray directions of every pixel centre, camera frame (ideal pinhole)."""
        u = np.arange(self.width, dtype=np.float64)
        v = np.arange(self.height, dtype=np.float64)
        uu, vv = np.meshgrid(u, v)
        d = np.stack([(uu - self.cx) / self.fx, (vv - self.cy) / self.fy, np.ones_like(uu)], -1)
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    def _normalized(self, uv: np.ndarray) -> np.ndarray:
        """Pixels ``[..., 2]`` to normalized image coordinates ``[..., 2]`` (distortion removed)."""
        uv = np.asarray(uv, np.float64)
        if not self._has_distortion:
            return np.stack([(uv[..., 0] - self.cx) / self.fx, (uv[..., 1] - self.cy) / self.fy], -1)
        import cv2

        flat = uv.reshape(-1, 1, 2)
        out = cv2.undistortPoints(flat, self.K, self.distortion)
        return out.reshape(uv.shape)

    def backproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Pixels ``[..., 2]`` at camera depth ``[...]`` (metres along z) to vehicle-frame points ``[..., 3]``."""
        n = self._normalized(uv)
        d = np.asarray(depth, np.float64)
        pc = np.stack([n[..., 0] * d, n[..., 1] * d, d * np.ones_like(n[..., 0])], -1)
        return self.to_vehicle(pc)

    def backproject_ground(self, uv: np.ndarray, ground_z: float = 0.0) -> np.ndarray:
        """Pixels ``[..., 2]`` to the vehicle-frame points ``[..., 3]`` where their rays meet ``z = ground_z``.

        The ray of pixel ``uv`` is ``c + s d`` (``c`` the camera centre, ``d``
        the pixel's direction in the vehicle frame); it meets the plane at
        ``s = (ground_z - c_z) / d_z``.  Pixels whose ray does not reach the
        plane in front of the camera (at or above the horizon) give NaN rows:
        that is the documented "no ground here" answer.
        """
        n = self._normalized(uv)
        d_cam = np.stack([n[..., 0], n[..., 1], np.ones_like(n[..., 0])], -1)
        d = apply_affine(d_cam, self.cam_to_vehicle[:3, :3], np.zeros(3))
        c = self.cam_to_vehicle[:3, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (ground_z - c[2]) / d[..., 2]
        hit = np.isfinite(s) & (s > 0)
        out = c + np.where(hit, s, np.nan)[..., None] * d
        return out

    # --- clipping ----------------------------------------------------------------
    def _frustum_planes(self) -> np.ndarray:
        """[5, 4] planes ``n . p + d >= 0`` (camera frame) bounding the visible volume plus the guard band."""
        g = self.guard_px
        # Widen the side planes further when the lens distorts, since they are placed for an ideal pinhole.
        slack = 0.15 if self._has_distortion else 0.0
        left = (-0.5 - g - self.cx) / self.fx - slack
        right = (self.width - 0.5 + g - self.cx) / self.fx + slack
        top = (-0.5 - g - self.cy) / self.fy - slack
        bottom = (self.height - 0.5 + g - self.cy) / self.fy + slack
        self._bounds = (left, right, top, bottom)
        # Lengths of the side planes' normals (their distances are scaled by these).
        self._plane_norms = np.array(
            [1.0, math.hypot(1.0, left), math.hypot(1.0, right), math.hypot(1.0, top), math.hypot(1.0, bottom)]
        )
        return np.array(
            [
                [0.0, 0.0, 1.0, -self.near],  # z >= near
                [1.0, 0.0, -left, 0.0],  # x / z >= left
                [-1.0, 0.0, right, 0.0],  # x / z <= right
                [0.0, 1.0, -top, 0.0],  # y / z >= top
                [0.0, -1.0, bottom, 0.0],  # y / z <= bottom
            ]
        )

    def _plane_distances(self, p: np.ndarray) -> Tuple[np.ndarray, ...]:
        """Five [S] arrays: signed (scaled) distances of camera-frame points [S, 3] to the frustum planes.

        Kept as separate 1-D arrays: combining them elementwise is much faster
        than reducing over a short trailing axis.
        """
        return self.plane_distances_xyz(p[:, 0], p[:, 1], p[:, 2])

    def plane_distances_xyz(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> Tuple[np.ndarray, ...]:
        """:meth:`_plane_distances` for coordinates given as three arrays of any (equal) shape."""
        left, right, top, bottom = self._bounds
        return (z - self.near, x - left * z, right * z - x, y - top * z, bottom * z - y)

    def sphere_visible(self, centers_cam: np.ndarray, radius: np.ndarray) -> np.ndarray:
        """[S] bool: spheres (camera-frame centres [S, 3], radii [S]) that may intersect the frustum.

        Conservative: a sphere is culled only when it lies entirely outside one plane.
        """
        d = self._plane_distances(centers_cam)
        r = np.asarray(radius, np.float64)
        ok = d[0] >= -r
        for k in range(1, 5):
            ok &= d[k] >= -r * self._plane_norms[k]
        return ok

    def in_frustum(self, points_cam: np.ndarray) -> np.ndarray:
        """[S] bool: camera-frame points [S, 3] inside the near plane and the guard-widened image planes."""
        d = self._plane_distances(points_cam)
        return (d[0] >= 0) & (d[1] >= 0) & (d[2] >= 0) & (d[3] >= 0) & (d[4] >= 0)

    def clip_segments(self, a_cam: np.ndarray, b_cam: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Clip camera-frame segments ``a -> b`` (``[..., 3]`` each) to the view frustum.

        Liang-Barsky on the five frustum planes: each plane ``n . p + e >= 0``
        shrinks the parameter interval ``[s0, s1]`` of ``p(s) = a + s (b - a)``.

        Returns:
          ``(a', b', keep)``: clipped endpoints ``[..., 3]`` and ``[...]`` bool,
          False where no part of the segment is visible (its endpoints are then
          left unchanged and meaningless).
        """
        a_in = np.asarray(a_cam, np.float64)
        b_in = np.asarray(b_cam, np.float64)
        shape = a_in.shape[:-1]
        a = a_in.reshape(-1, 3)
        b = b_in.reshape(-1, 3)
        keep, cross, s0, s1 = clip_parameters(self._plane_distances(a), self._plane_distances(b))
        out_a = a.copy()
        out_b = b.copy()
        if cross.size:
            pa, pb = a[cross], b[cross]
            d = pb - pa
            out_a[cross] = pa + s0[:, None] * d
            out_b[cross] = pa + s1[:, None] * d
        return out_a.reshape(a_in.shape), out_b.reshape(b_in.shape), keep.reshape(shape)

    def clip_segments_xyz(
        self, a: Tuple[np.ndarray, np.ndarray, np.ndarray], b: Tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> Tuple[Tuple[np.ndarray, ...], Tuple[np.ndarray, ...], np.ndarray]:
        """:meth:`clip_segments` for [S] coordinate arrays ``a = (x, y, z)``, ``b = (x, y, z)`` (camera frame).

        Same arithmetic, so the same bits; 1-D columns avoid strided ``[S, 3]`` access.  Returns
        ``(a', b', keep [S] bool)`` with ``a'``, ``b'`` new coordinate triples.
        """
        keep, cross, s0, s1 = clip_parameters(self.plane_distances_xyz(*a), self.plane_distances_xyz(*b))
        out_a, out_b = [c.copy() for c in a], [c.copy() for c in b]
        if cross.size:
            for k in range(3):
                pa = a[k][cross]
                d = b[k][cross] - pa
                out_a[k][cross] = pa + s0 * d
                out_b[k][cross] = pa + s1 * d
        return tuple(out_a), tuple(out_b), keep

    def project_segments(self, a_vehicle: np.ndarray, b_vehicle: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vehicle-frame segments ``[..., 3]`` to clipped pixel segments.

        Returns ``(uv_a [..., 2], uv_b [..., 2], keep [...])``; rows with
        ``keep`` False have no visible part (their uv are zeros).
        """
        a, b, keep = self.clip_segments(self.to_camera(a_vehicle), self.to_camera(b_vehicle))
        a = np.where(keep[..., None], a, 1.0)
        b = np.where(keep[..., None], b, 1.0)
        ua, ub = self.project_camera(a), self.project_camera(b)
        ua[~keep] = 0.0
        ub[~keep] = 0.0
        return ua, ub, keep
