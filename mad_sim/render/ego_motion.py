"""The ego-motion video: the ego's own motion drawn as a video (MAD's ego control).

The camera sits inside a large sphere (radius 500 m, centred where the
camera starts) textured with a checkerboard of random colours (64 x 32
cells in longitude x latitude, colours from ``numpy.random.default_rng(42)``,
every other cell black).  Each pixel shows the texture where its ray meets
the sphere (vectorised ray-sphere intersection, then one ``cv2.remap``), so
*rotation* moves the texture across the image while *translation* barely
does (the sphere is far).  500 dust particles are placed by back-projecting
random pixels to 15 m depth; they stay fixed in the world, and every frame
each is drawn as a line (RGB (255, 255, 200), 5 px thick) from where it
appeared in the previous frame to where it appears now, so translation makes
them streak (radially away from the focus of expansion when driving
forward).  A particle that leaves the image (or gets behind the camera) is
respawned at a new random pixel, 15 m deep, and drawn as a dot.  These are
the paper's values; all are parameters.

Poses are ``(x, y, yaw)`` of the ego in the world frame (metres, radians);
the camera is :meth:`Camera.default_front` mounted on the ego.  The same
``seed`` always gives the same frames.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import cv2
import numpy as np

from mad_sim.data.scenario import DT
from mad_sim.errors import RenderError
from mad_sim.render.camera import Camera


def checker_texture(cols: int = 64, rows: int = 32, cell_px: int = 16, seed: int = 42) -> np.ndarray:
    """[rows * cell_px, cols * cell_px, 3] uint8 equirectangular checkerboard of random colours.

    Cell ``(i, j)`` (latitude row ``i`` from the north pole, longitude
    column ``j`` from -pi) has colour ``rng.integers(0, 256, (rows, cols, 3))[i, j]``
    with ``rng = default_rng(seed)``, or black when ``i + j`` is odd.
    """
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (rows, cols, 3)).astype(np.uint8)
    ii, jj = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    cells[(ii + jj) % 2 == 1] = 0
    return np.repeat(np.repeat(cells, cell_px, 0), cell_px, 1)


def poses_from_actions(
    initial_speed: float, actions: np.ndarray, initial_pose: Tuple[float, float, float] = (0.0, 0.0, 0.0), dt: float = DT
) -> np.ndarray:
    """[F + 1, 3] poses ``(x, y, yaw)`` from ``actions`` [F, 2] ``(accel m/s^2, curvature 1/m)``.

    Integrates :func:`mad_sim.world.dynamics.bicycle_step` from
    ``initial_pose`` at ``initial_speed`` (m/s); row 0 is the initial pose.
    """
    from mad_sim.world.dynamics import bicycle_step

    acts = np.asarray(actions, np.float64)
    if acts.ndim != 2 or acts.shape[1] != 2:
        raise RenderError(f"actions must be [F, 2] (accel, curvature), got shape {acts.shape}")
    if not np.isfinite(acts).all() or not math.isfinite(initial_speed):
        raise RenderError("actions / initial speed must be finite")
    xy = np.asarray(initial_pose[:2], np.float64)
    yaw: Union[np.float64, np.ndarray] = np.float64(initial_pose[2])  # then [] arrays from bicycle_step
    v: Union[np.float64, np.ndarray] = np.float64(initial_speed)
    out = [np.array([xy[0], xy[1], yaw])]
    for a, k in acts:
        xy, yaw, v = bicycle_step(xy, yaw, v, a, k, dt)
        out.append(np.array([xy[0], xy[1], float(yaw)]))
    return np.stack(out)


class EgoMotionRenderer:
    """Sphere-and-dust ego-motion frames.

    Args:
      width, height: frame size in pixels (ignored when ``camera`` is given).
      seed: seeds the dust particles (placement and respawns).
      camera: the camera in the ego's vehicle frame (default front camera, 90 degrees).
      num_particles, dust_depth_m, dust_rgb, thickness: the dust (paper: 500, 15 m, (255, 255, 200), 5 px
        at 768 x 512).  ``thickness=None`` scales the paper's 5 px with the width,
        ``max(1, round(5 * width / 768))``, so small frames are not buried in dust
        (1 px at 128 x 128; exactly 5 px at 768 wide).
      sphere_radius_m: radius of the textured sphere (paper: 500).
      texture_seed, cells: the checkerboard (paper: seed 42, 64 x 32 cells).
      cell_px: texture pixels per cell (sampling resolution of the texture).
    """

    def __init__(
        self,
        width: int = 128,
        height: int = 128,
        seed: int = 0,
        camera: Optional[Camera] = None,
        num_particles: int = 500,
        dust_depth_m: float = 15.0,
        dust_rgb: Tuple[int, int, int] = (255, 255, 200),
        thickness: Optional[int] = None,
        sphere_radius_m: float = 500.0,
        texture_seed: int = 42,
        cells: Tuple[int, int] = (64, 32),
        cell_px: int = 16,
    ) -> None:
        self.camera = camera if camera is not None else Camera.default_front(width, height)
        if thickness is None:
            thickness = max(1, int(round(5 * self.camera.width / 768)))
        if num_particles < 0 or thickness < 1 or dust_depth_m <= 0 or sphere_radius_m <= 0:
            raise RenderError("num_particles >= 0, thickness >= 1, dust depth > 0 and sphere radius > 0 are required")
        self.seed = seed
        self.num_particles = int(num_particles)
        self.dust_depth_m = float(dust_depth_m)
        self.dust_rgb = tuple(int(c) for c in dust_rgb)
        self.thickness = int(thickness)
        self.radius = float(sphere_radius_m)
        self.texture = checker_texture(cells[0], cells[1], cell_px, texture_seed)
        cam = self.camera
        # Pixel rays in the vehicle frame ([H*W, 3]); the camera's orientation on the vehicle is fixed.
        # float32 halves the cost of the per-pixel trigonometry; texture lookups need far less precision.
        self._rays = (cam.pixel_rays().reshape(-1, 3) @ cam.cam_to_vehicle[:3, :3].T).astype(np.float32)
        self._rays_t = np.ascontiguousarray(self._rays.T)
        self.last_dust: Optional[np.ndarray] = None
        self.last_respawned: Optional[np.ndarray] = None

    @property
    def width(self) -> int:
        return self.camera.width

    @property
    def height(self) -> int:
        return self.camera.height

    # --- public API ---------------------------------------------------------------------
    def render(self, poses_xy_yaw: np.ndarray) -> np.ndarray:
        """[F, H, W, 3] uint8 frames for ego poses ``[F, 3]`` (world ``x, y`` metres, ``yaw`` radians).

        After the call, ``last_dust`` holds the dust segments [F, P, 2, 2]
        (previous and current pixel of every particle) and ``last_respawned``
        [F, P] bool which of them were (re)spawned that frame (drawn as dots).
        """
        poses = self._check(poses_xy_yaw)
        frames = self.render_sphere(poses)
        if self.num_particles:
            self._draw_dust(frames, poses)
        return frames

    def from_actions(
        self,
        initial_speed: float,
        actions: np.ndarray,
        initial_pose: Tuple[float, float, float] = (0.0, 0.0, 0.0),
        dt: float = DT,
    ) -> np.ndarray:
        """[F + 1, H, W, 3] frames for ``actions`` [F, 2] (accel, curvature) through the bicycle model.

        Frame 0 is the initial pose, frame ``k`` the pose after ``k`` actions
        (see :func:`poses_from_actions`).
        """
        return self.render(poses_from_actions(initial_speed, actions, initial_pose, dt))

    def render_sphere(self, poses_xy_yaw: np.ndarray) -> np.ndarray:
        """[F, H, W, 3] uint8: the textured sphere alone (no dust).

        The sphere is centred on the first pose's camera.  For a ray from
        the camera offset ``o`` (relative to the centre) in unit direction
        ``d``, the hit is ``q = o + s d`` with
        ``s = -o.d + sqrt((o.d)^2 - |o|^2 + R^2)``; the texture is read at
        longitude ``atan2(q_y, q_x)`` and latitude ``asin(q_z / R)``.
        """
        poses = self._check(poses_xy_yaw)
        th, tw = self.texture.shape[:2]
        centre = self._camera_positions(poses[:1])[0]
        out = np.empty((len(poses), self.height, self.width, 3), np.uint8)
        for f, (pose, cam_pos) in enumerate(zip(poses, self._camera_positions(poses))):
            c, s = np.float32(math.cos(pose[2])), np.float32(math.sin(pose[2]))
            rx, ry, rz = self._rays_t
            dx, dy = c * rx - s * ry, s * rx + c * ry
            o = (cam_pos - centre).astype(np.float32)
            od = o[0] * dx + o[1] * dy + o[2] * rz
            dist = np.sqrt(od * od + np.float32(self.radius**2 - float(o @ o))) - od
            qx, qy, qz = o[0] + dist * dx, o[1] + dist * dy, o[2] + dist * rz
            lon = np.arctan2(qy, qx)
            lat = np.arcsin(np.clip(qz * np.float32(1.0 / self.radius), -1.0, 1.0))
            map_x = (lon * np.float32(tw / (2 * np.pi)) + np.float32(tw / 2 - 0.5)).reshape(self.height, self.width)
            map_y = (lat * np.float32(-th / np.pi) + np.float32(th / 2 - 0.5)).reshape(self.height, self.width)
            out[f] = cv2.remap(self.texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        return out

    # --- internals ----------------------------------------------------------------------
    def _check(self, poses_xy_yaw: np.ndarray) -> np.ndarray:
        poses = np.asarray(poses_xy_yaw, np.float64)
        if poses.ndim != 2 or poses.shape[1] != 3 or poses.shape[0] == 0:
            raise RenderError(f"ego poses must be [F, 3] (x, y, yaw) with F >= 1, got shape {poses.shape}")
        bad = ~np.isfinite(poses).all(1)
        if bad.any():
            raise RenderError(f"ego pose {int(np.argmax(bad))} is not finite: {poses[np.argmax(bad)].tolist()}")
        return poses

    def _camera_positions(self, poses: np.ndarray) -> np.ndarray:
        """[F, 3] world positions of the camera centre (the ego's ground point plus the mount offset)."""
        m = self.camera.position
        c, s = np.cos(poses[:, 2]), np.sin(poses[:, 2])
        return np.stack([poses[:, 0] + c * m[0] - s * m[1], poses[:, 1] + s * m[0] + c * m[1], np.full(len(poses), m[2])], -1)

    def _world_to_camera(self, pose: np.ndarray, points: np.ndarray) -> np.ndarray:
        c, s = math.cos(pose[2]), math.sin(pose[2])
        d = points - np.array([pose[0], pose[1], 0.0])
        veh = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], -1)
        return self.camera.to_camera(veh)

    def _spawn(self, rng: np.random.Generator, pose: np.ndarray, count: int) -> Tuple[np.ndarray, np.ndarray]:
        """``count`` particles at uniformly random pixels, ``dust_depth_m`` deep: (world points, pixels)."""
        uv = np.stack([rng.uniform(-0.5, self.width - 0.5, count), rng.uniform(-0.5, self.height - 0.5, count)], -1)
        veh = self.camera.backproject(uv, np.full(count, self.dust_depth_m))
        c, s = math.cos(pose[2]), math.sin(pose[2])
        world = np.stack([pose[0] + c * veh[:, 0] - s * veh[:, 1], pose[1] + s * veh[:, 0] + c * veh[:, 1], veh[:, 2]], -1)
        return world, uv

    def _draw_dust(self, frames: np.ndarray, poses: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        p = self.num_particles
        pts, prev = self._spawn(rng, poses[0], p)
        segs = np.zeros((len(poses), p, 2, 2))
        respawned = np.zeros((len(poses), p), bool)
        respawned[0] = True
        segs[0, :, 0] = segs[0, :, 1] = prev
        cam = self.camera
        for f in range(1, len(poses)):
            pc = self._world_to_camera(poses[f], pts)
            front = pc[:, 2] > cam.near
            uv = cam.project_camera(np.where(front[:, None], pc, 1.0))
            gone = ~front | ~cam.in_image(uv)
            if gone.any():
                new_pts, new_uv = self._spawn(rng, poses[f], int(gone.sum()))
                pts[gone] = new_pts
                uv[gone] = new_uv
                prev[gone] = new_uv
            segs[f, :, 0], segs[f, :, 1] = prev, uv
            respawned[f] = gone
            prev = uv
        shift = 4
        # Anti-aliased thick streaks as in the paper; 1-2 px lines stay crisp (AA would fade them).
        line_type = cv2.LINE_AA if self.thickness >= 3 else cv2.LINE_8
        fixed = np.rint(segs * (1 << shift)).astype(np.int32)
        for f in range(len(poses)):
            cv2.polylines(frames[f], fixed[f], False, self.dust_rgb, self.thickness, line_type, shift)
        self.last_dust = segs
        self.last_respawned = respawned
