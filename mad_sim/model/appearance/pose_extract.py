"""Pose videos from camera video: the :class:`PoseExtractor` interface, its registry, and drawing.

The appearance adapter learns "pose video -> camera video" from *paired*
clips, so every training camera video needs its pose video.  A pose
extractor turns camera frames into :class:`PoseDetections` (source-image
pixels); :func:`draw_detections` lifts them to 3-D and has the pose
renderer itself draw them (:meth:`~mad_sim.render.pose.PoseRenderer.render_view`:
painted markings as grey road lines, the ego lane's centre as a white lane
line with vertex dots, vehicles as the hue-cycling 3-D car wireframe), plus
people as OpenPose stick figures, aligned pixel for pixel with the camera
frame resized to the output size.

Built in: ``"classical"`` (:class:`ClassicalExtractor`, lanes and vehicles by
edges / Hough / tracking, see :mod:`mad_sim.data.dashcam`).  A learned
detector (an OpenPifPaf / DWPose-style person model, a lane network, a car
detector) plugs in with::

    class MyExtractor:
        name = "mine"
        def reset(self) -> None: ...
        def detect(self, frame: np.ndarray) -> PoseDetections: ...

    register_extractor("mine", MyExtractor)
    video = extract_pose_video(frames, get_extractor("mine"), 128, 128)

Lifting to 3-D.  The pose renderer draws *3-D* geometry through a camera;
to draw a dashcam's detections the same way, the dashcam's camera is
estimated per frame from the two tracked ego-lane boundaries
(:class:`GroundCamera`): their vanishing point gives the horizon row (pitch)
and the camera's yaw to the road; for a pinhole at height ``h`` over a flat
road, a ground line at lateral offset ``X`` projects to
``(u - u_vp) / (v - v_vp) = X fy / (h fx)``, so the lane width ``w`` fixes
``h = w / (s_r - s_l)`` with ``s = du/dv (fy/fx)`` of the right and left
boundary.  The focal length is not observable from one lane and is assumed
from a horizontal field of view (``hfov_deg``, 60 degrees by default).
Lane pixels are lifted to the ground plane (lane-centre dots every
``style.lane_dot_spacing_m`` metres, like map lanes), vehicle boxes become 3-D
boxes standing on the ground at the box's bottom edge, facing along the road.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Protocol, Tuple, runtime_checkable

import cv2
import numpy as np

from mad_sim.data.camera_files import check_rgb_frame
from mad_sim.data.dashcam import DashcamExtractor, LaneConfig
from mad_sim.data.scenario import ObjectType
from mad_sim.errors import ConfigError, RenderError, ShapeError
from mad_sim.render import skeleton as sk
from mad_sim.render.camera import Camera
from mad_sim.render.draw import AgentPoses, PoseStyle
from mad_sim.render.map_layer import LANE, ROAD_LINE, MapGeometry
from mad_sim.render.pose import PoseRenderer

log = logging.getLogger(__name__)

_IDENTITY_3X4 = np.eye(4)[:3]


# --- detections ------------------------------------------------------------------------
@dataclass
class PoseDetections:
    """What an extractor found in one frame, in source-image pixels ``(u, v)``.

    Attributes:
      image_size: (width, height) of the source frame.
      lanes: list of ``[K, 2]`` float polylines of lane markings on the road.
      vehicles: [V, 4] float boxes ``(u0, v0, u1, v1)``.
      persons: [P, 18, 3] float OpenPose COCO-18 joints ``(u, v, confidence)``
        (confidence 0 = joint not seen).
      ego_lane: optional ``(left [K, 2], right [K, 2])``: the ego lane's two
        boundaries, which calibrate the ground-plane camera (:class:`GroundCamera`).
    """

    image_size: Tuple[int, int]
    lanes: List[np.ndarray] = field(default_factory=list)
    vehicles: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    persons: np.ndarray = field(default_factory=lambda: np.zeros((0, 18, 3), np.float32))
    ego_lane: Optional[Tuple[np.ndarray, np.ndarray]] = None


@runtime_checkable
class PoseExtractor(Protocol):
    """Camera frames -> :class:`PoseDetections`, one frame at a time, in video order.

    ``reset()`` is called before each new video (extractors may track over frames).
    """

    name: str

    def reset(self) -> None: ...

    def detect(self, frame: np.ndarray) -> PoseDetections: ...


_REGISTRY: Dict[str, Callable[..., PoseExtractor]] = {}


def register_extractor(name: str, factory: Callable[..., PoseExtractor], *, overwrite: bool = False) -> None:
    """Make ``get_extractor(name, **kwargs)`` build ``factory(**kwargs)``."""
    if not name or not isinstance(name, str):
        raise ConfigError(f"pose extractor name must be a non-empty string, got {name!r}")
    if name in _REGISTRY and not overwrite:
        raise ConfigError(f"pose extractor {name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[name] = factory


def available_extractors() -> List[str]:
    return sorted(_REGISTRY)


def get_extractor(name: str = "classical", **kwargs) -> PoseExtractor:
    """Build a registered extractor; unknown names raise :class:`ConfigError` listing the known ones."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown pose extractor {name!r} (registered: {', '.join(available_extractors())})")
    ext = _REGISTRY[name](**kwargs)
    if not isinstance(ext, PoseExtractor):
        raise ConfigError(f"pose extractor {name!r}: factory returned {type(ext).__name__}, which lacks name/reset/detect")
    return ext


class ClassicalExtractor:
    """Lanes + vehicles by classical vision (:class:`mad_sim.data.dashcam.DashcamExtractor`); no persons."""

    name = "classical"

    def __init__(self, config: Optional[LaneConfig] = None, detect_vehicles: bool = True) -> None:
        self._ex = DashcamExtractor(config or LaneConfig(), detect_vehicles=detect_vehicles)

    def reset(self) -> None:
        self._ex.reset()

    def detect(self, frame: np.ndarray) -> PoseDetections:
        d = self._ex.update(frame)
        lanes = [d.lanes[k] for k in range(2) if d.lane_valid[k]]
        ego = (d.lanes[0], d.lanes[1]) if d.lane_valid.all() else None
        return PoseDetections(image_size=d.image_size, lanes=lanes, vehicles=d.vehicles, ego_lane=ego)


register_extractor("classical", ClassicalExtractor)


# --- the ground-plane camera ---------------------------------------------------------------
def _line_through(p: np.ndarray) -> Tuple[float, float]:
    """Least-squares ``u = a v + b`` through polyline points ``[K, 2]``."""
    a, b = np.polyfit(p[:, 1], p[:, 0], 1)
    return float(a), float(b)


@dataclass
class GroundCamera:
    """Estimates a dashcam's camera from the ego lane, smoothed over frames (see module doc).

    Attributes:
      hfov_deg: assumed horizontal field of view (the focal length is not observable).
      lane_width_m: assumed ego-lane width (US highways: 3.7 m).
      default_height_m, default_horizon: used until the first frame with both boundaries
        (horizon as a fraction of the image height).
      ema: smoothing of horizon, vanishing column and height per frame.
    """

    hfov_deg: float = 60.0
    lane_width_m: float = 3.7
    default_height_m: float = 1.3
    default_horizon: float = 0.58
    ema: float = 0.2
    _state: Optional[np.ndarray] = None  # (u_vp, v_vp, height)

    def reset(self) -> None:
        self._state = None

    def update(self, det: PoseDetections) -> Camera:
        """Refine the estimate with one frame's ego lane; return the camera at source resolution."""
        w, h = det.image_size
        fx = (w / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)
        est = None
        if det.ego_lane is not None:
            (al, bl), (ar, br) = (_line_through(np.asarray(p, np.float64)) for p in det.ego_lane)
            if ar - al > 1e-3:
                v_vp = (bl - br) / (ar - al)
                u_vp = al * v_vp + bl
                height = self.lane_width_m / (ar - al)
                if 0.2 * h < v_vp < 0.8 * h and 0.5 < height < 4.0:
                    est = np.array([u_vp, v_vp, height])
        if est is not None:
            self._state = est if self._state is None else (1 - self.ema) * self._state + self.ema * est
        state = (
            self._state if self._state is not None else np.array([(w - 1) / 2.0, self.default_horizon * h, self.default_height_m])
        )
        return self.camera(w, h, fx, *state)

    @staticmethod
    def camera(w: int, h: int, f: float, u_vp: float, v_vp: float, height: float) -> Camera:
        """Camera at ``height`` whose road-direction vanishing point is pixel ``(u_vp, v_vp)``.

        The vehicle frame is aligned with the road (x along the lane), so lanes are ``y = const``.
        """
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        # the road direction in camera coordinates (x right, y down, z forward)
        d = np.array([(u_vp - cx) / f, (v_vp - cy) / f, 1.0])
        x_v = d / np.linalg.norm(d)  # vehicle +x (forward) seen from the camera
        z_v = np.cross(x_v, np.array([1.0, 0.0, 0.0]))  # vehicle up: perpendicular to forward and camera x (no roll)
        z_v = -z_v / np.linalg.norm(z_v) if z_v[1] > 0 else z_v / np.linalg.norm(z_v)
        y_v = np.cross(z_v, x_v)
        r_cam_from_vehicle = np.stack([x_v, y_v, z_v], 1)  # columns: vehicle axes in camera coords
        m = np.eye(4)
        m[:3, :3] = r_cam_from_vehicle.T  # camera -> vehicle rotation
        m[:3, 3] = (0.0, 0.0, height)
        return Camera(width=w, height=h, fx=f, fy=f, cx=cx, cy=cy, cam_to_vehicle=m)


# --- drawing -------------------------------------------------------------------------------
def _resample_ground(points: np.ndarray, spacing: float) -> np.ndarray:
    """Resample a ground polyline ``[K, 3]`` every ``spacing`` metres (keeps both ends)."""
    seg = np.linalg.norm(np.diff(points[:, :2], axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return points[:1]
    q = np.append(np.arange(0.0, s[-1], spacing), s[-1])
    return np.stack([np.interp(q, s, points[:, i]) for i in range(3)], -1)


def draw_persons_2d(img: np.ndarray, joints: np.ndarray, scale: Tuple[float, float], style: PoseStyle) -> None:
    """Draw OpenPose COCO-18 joints ``[P, 18, 3]`` (source pixels, confidence) with OpenPose's colours (in place)."""
    lw, dw = style.line_width(img.shape[1]), style.dot_width(img.shape[1])
    for person in np.asarray(joints, np.float64):
        uv = np.round(person[:, :2] * np.array(scale)).astype(np.int32)
        seen = person[:, 2] > 0
        for e, (i, j) in enumerate(sk.OPENPOSE_LIMBS):
            if seen[i] and seen[j]:
                cv2.polylines(img, [uv[[i, j]]], False, tuple(int(x) for x in sk.OPENPOSE_COLORS[e]), lw, cv2.LINE_8)
        for k in np.flatnonzero(seen):
            cv2.polylines(img, [uv[[k, k]]], False, tuple(int(x) for x in sk.OPENPOSE_COLORS[k]), dw, cv2.LINE_8)


def lift_vehicles(boxes: np.ndarray, camera: Camera, length_m: float = 4.5) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image boxes ``[V, 4]`` -> 3-D boxes (centre ``[n, 3]``, heading ``[n]``, size ``[n, 3]``), vehicle frame.

    The box's bottom-centre pixel is the middle of the car's rear bottom edge on
    the ground; width and height follow from the box size at that depth
    (clipped to car-like 1.5-2.3 m and 1.2-2.6 m); length is assumed.  Boxes
    whose bottom edge is at or above the horizon are dropped.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        z = np.zeros((0, 3))
        return z, np.zeros(0), z
    bottom = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], -1)
    ground = camera.backproject_ground(bottom)
    ok = np.isfinite(ground).all(-1)
    ground, boxes = ground[ok], boxes[ok]
    depth = camera.to_camera(ground)[:, 2]
    width = np.clip((boxes[:, 2] - boxes[:, 0]) * depth / camera.fx, 1.5, 2.3)
    height = np.clip((boxes[:, 3] - boxes[:, 1]) * depth / camera.fy, 1.2, 2.6)
    center = ground.copy()
    center[:, 0] += length_m / 2
    center[:, 2] = height / 2
    size = np.stack([np.full(len(width), length_m), width, height], -1)
    return center, np.zeros(len(center)), size


def lane_centre(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The ego lane's centre line ``[K, 3]`` between its two ground boundaries (matched by arclength fraction)."""

    def at(pl: np.ndarray, q: np.ndarray) -> np.ndarray:
        s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pl[:, :2], axis=0), axis=1))])
        return np.stack([np.interp(q * s[-1], s, pl[:, i]) for i in range(3)], -1)

    q = np.linspace(0.0, 1.0, max(len(left), len(right)))
    return 0.5 * (at(left, q) + at(right, q))


def _lift_polyline(camera: Camera, pl: np.ndarray, max_range_m: float) -> np.ndarray:
    pts = camera.backproject_ground(np.asarray(pl, np.float64))
    ok = np.isfinite(pts).all(-1)
    ok[ok] = np.hypot(pts[ok, 0], pts[ok, 1]) < max_range_m
    return pts[ok]


def detections_geometry(det: PoseDetections, camera: Camera, style: PoseStyle) -> Tuple[MapGeometry, AgentPoses]:
    """Lift one frame's detections to the ground: a :class:`MapGeometry` and :class:`AgentPoses` (vehicle frame).

    Painted markings become road lines, the ego lane's centre line (midway
    between its boundaries) a lane with vertex dots every
    ``style.lane_dot_spacing_m``, vehicle boxes cars (:func:`lift_vehicles`).
    """
    lines = [g for g in (_lift_polyline(camera, pl, style.max_range_m) for pl in det.lanes) if len(g) >= 2]
    groups = [np.full(len(g) - 1, ROAD_LINE, np.int8) for g in lines]
    seg_a = [g[:-1] for g in lines]
    seg_b = [g[1:] for g in lines]
    dots = np.zeros((0, 3))
    if det.ego_lane is not None:
        left, right = (_lift_polyline(camera, pl, style.max_range_m) for pl in det.ego_lane)
        if len(left) >= 2 and len(right) >= 2:
            centre = lane_centre(left, right)
            seg_a.append(centre[:-1])
            seg_b.append(centre[1:])
            groups.append(np.full(len(centre) - 1, LANE, np.int8))
            dots = _resample_ground(centre, style.lane_dot_spacing_m)

    def cat(xs, shape):
        return np.concatenate(xs) if xs else np.zeros(shape)

    geo = MapGeometry(seg_a=cat(seg_a, (0, 3)), seg_b=cat(seg_b, (0, 3)), seg_group=cat(groups, (0,)).astype(np.int8), dots=dots)
    center, heading, size = lift_vehicles(det.vehicles, camera)
    agents = AgentPoses(center, heading, size, np.full(len(center), int(ObjectType.VEHICLE)))
    return geo, agents


def draw_detections(
    det: PoseDetections, camera: Camera, width: int, height: int, style: Optional[PoseStyle] = None
) -> np.ndarray:
    """One pose frame ``[height, width, 3]`` uint8 of ``det`` (source pixels) through ``camera`` (source size).

    The lifted geometry (:func:`detections_geometry`) is drawn by the pose
    renderer itself (:meth:`mad_sim.render.pose.PoseRenderer.render_view`),
    so lines, dots, colours and painter's order are the simulator's; persons
    (2-D joints only) are drawn after, with OpenPose's colours.  The output is
    the source view resized to ``width x height`` (per-axis scaling, like
    ``cv2.resize`` of the camera frame), so it lines up with the resized RGB frame.
    """
    style = style or PoseStyle()
    w, h = det.image_size
    if (camera.width, camera.height) != (w, h):
        raise RenderError(f"camera is {camera.width}x{camera.height} but the detections are for {w}x{h} frames")
    geo, agents = detections_geometry(det, camera, style)
    renderer = PoseRenderer(camera=camera.resized(width, height), style=style)
    img = renderer.render_view(_IDENTITY_3X4, agents, geo=geo)
    if len(det.persons):
        draw_persons_2d(img, det.persons, (width / w, height / h), style)
    return img


def extract_pose_video(
    frames: np.ndarray,
    extractor: Optional[PoseExtractor] = None,
    width: int = 128,
    height: int = 128,
    *,
    ground: Optional[GroundCamera] = None,
    style: Optional[PoseStyle] = None,
) -> np.ndarray:
    """Pose video ``[F, height, width, 3]`` uint8 of camera frames ``[F, H, W, 3]`` uint8 (in order)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.dtype != np.uint8 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ShapeError(f"camera video: expected [F, H, W, 3] uint8 with F >= 1, got {frames.dtype} {frames.shape}")
    extractor = extractor or get_extractor("classical")
    ground = ground or GroundCamera()
    extractor.reset()
    ground.reset()
    out = np.zeros((len(frames), height, width, 3), np.uint8)
    for i, frame in enumerate(frames):
        det = extractor.detect(check_rgb_frame(frame, f"camera frame {i}"))
        out[i] = draw_detections(det, ground.update(det), width, height, style)
    return out


def resize_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Camera frames ``[F, H, W, 3]`` uint8 resized to ``[F, height, width, 3]`` (area filter)."""
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])


# --- Waymo perception frames: the pose frame exactly from the 3-D labels -------------------
WAYMO_LABEL_TO_OBJECT = {1: ObjectType.VEHICLE, 2: ObjectType.PEDESTRIAN, 4: ObjectType.CYCLIST}
"""Waymo ``Label.Type`` -> :class:`ObjectType`; signs (3) and unknowns (0) are not agents and are not drawn."""


def waymo_agents(boxes) -> AgentPoses:
    """A frame's 3-D laser labels (:class:`mad_sim.data.waymo_frame.Boxes3D`, vehicle frame) as :class:`AgentPoses`.

    Speed (metadata ``speed_x, speed_y``, m/s) sets the pedestrians' limb swing;
    their gait phase is unknown from one frame and drawn at 0.
    """
    keep = np.isin(boxes.types, list(WAYMO_LABEL_TO_OBJECT))
    types = np.array([int(WAYMO_LABEL_TO_OBJECT[int(t)]) for t in boxes.types[keep]], np.int64)
    return AgentPoses(
        boxes.center[keep],
        boxes.heading[keep],
        boxes.size[keep],
        types,
        speed=np.hypot(boxes.speed[keep, 0], boxes.speed[keep, 1]),
        ids=np.flatnonzero(keep),
    )


def waymo_pose_pair(
    frame, camera: str = "FRONT", width: int = 128, height: int = 128, style: Optional[PoseStyle] = None
) -> Tuple[np.ndarray, np.ndarray, Camera]:
    """The camera image and its pose frame from a :class:`~mad_sim.data.waymo_frame.PerceptionFrame`.

    The pose frame draws the frame's 3-D labels through the camera's own
    calibration (intrinsics with distortion, extrinsic), resized per axis to
    ``width x height`` like the RGB image, so the two line up exactly.

    Returns:
      ``(rgb [height, width, 3] uint8, pose [height, width, 3] uint8, camera at width x height)``.
    """
    if camera not in frame.cameras:
        raise ConfigError(f"perception frame {frame.context_name!r} has no camera {camera!r} (it has {', '.join(frame.cameras)})")
    view = frame.cameras[camera]
    if view.image is None:
        raise ShapeError(f"camera {camera}: the image was not decoded (read_frames(..., decode_images=True))")
    cam = Camera.from_waymo(view.intrinsic, view.extrinsic, view.width, view.height).resized(width, height)
    pose = PoseRenderer(camera=cam, style=style).render_view(_IDENTITY_3X4, waymo_agents(frame.laser_labels))
    rgb = cv2.resize(check_rgb_frame(view.image, f"camera {camera} image"), (width, height), interpolation=cv2.INTER_AREA)
    return rgb, pose, cam
