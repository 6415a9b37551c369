"""Agent skeletons: the 3-D keypoints and coloured edges the pose video draws.

Every skeleton is built in the agent's *body frame* (x forward, y left, z up,
metres, origin on the ground below the box centre) from the box size, then
placed with :func:`place`.  Shapes: ``n`` agents, ``K`` keypoints, ``E`` edges.

* Vehicles (:data:`VEHICLE`): a car-keypoint wireframe, 20 keypoints (lower
  body ring, beltline ring, roof ring, 4 wheel contacts, 2 headlights, 2 tail
  lights) and 28 edges.  Edge ``e`` has the hue ``e / 28`` of the colour
  wheel, identical for every car, so a model can learn which edge is which.
* Pedestrians (:data:`PEDESTRIAN`): the 18 OpenPose (COCO) joints
  ``nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist,
  r-hip, r-knee, r-ankle, l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear``
  with OpenPose's 17 drawn limbs and limb/joint colours.  Arms and legs swing
  with a walking phase (radians), amplitude growing with speed up to 1.4 m/s.
* Cyclists (:data:`CYCLIST`): a bicycle (two hexagonal wheels, frame,
  handlebar) and a rider, in three fixed pastel colours (white wheels,
  lavender frame, pink rider); no dots on the wheel rims.
* Anything else (:data:`OTHER`): a plain grey 3-D box (12 edges).

Colours are RGB tuples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple, cast

import cv2
import numpy as np

from mad_sim.data.scenario import ObjectType

Color = Tuple[int, int, int]


def hue_cycle(n: int, offset: float = 0.0) -> np.ndarray:
    """[n, 3] uint8 RGB colours at hues ``(i + offset) / n`` of the wheel, full saturation and value."""
    hue = ((np.arange(n) + offset) / n * 180.0).astype(np.uint8)
    hsv = np.stack([hue, np.full(n, 255, np.uint8), np.full(n, 255, np.uint8)], -1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


@dataclass(frozen=True, eq=False)
class SkeletonSpec:
    """The drawing recipe of one agent class.

    Attributes:
      name: class name.
      edges: [E, 2] int keypoint index pairs.
      edge_colors: [E, 3] uint8 RGB.
      dot_colors: [K, 3] uint8 RGB colour of each keypoint's dot; black (0, 0, 0) means
        "no dot" for that keypoint.
    """

    name: str
    edges: np.ndarray
    edge_colors: np.ndarray
    dot_colors: np.ndarray

    @property
    def has_dot(self) -> np.ndarray:
        """[K] bool: the keypoint is drawn as a dot (its dot colour is not black)."""
        return cast(np.ndarray, self.dot_colors.any(1))  # [K, 3] colours: always an array

    @property
    def num_keypoints(self) -> int:
        return int(self.dot_colors.shape[0])

    def edge_groups(self) -> List[Tuple[Color, np.ndarray]]:
        """Edges grouped by colour: ``[(rgb, edge indices)]`` (one draw call each)."""
        return _groups(self.edge_colors)

    def dot_groups(self) -> List[Tuple[Color, np.ndarray]]:
        """Keypoints grouped by dot colour: ``[(rgb, keypoint indices)]`` (keypoints without a dot left out)."""
        return [(c, k) for c, k in _groups(self.dot_colors) if c != (0, 0, 0)]


def _groups(colors: np.ndarray) -> List[Tuple[Color, np.ndarray]]:
    uniq, inverse = np.unique(colors, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return [(cast(Color, tuple(int(c) for c in uniq[g])), np.flatnonzero(inverse == g)) for g in range(len(uniq))]


# --- vehicles ------------------------------------------------------------------------
# Normalised keypoints (x / length, y / width, z / height) of a car.
_CAR_KP = np.array(
    [
        [0.50, 0.50, 0.25],
        [0.50, -0.50, 0.25],
        [-0.50, -0.50, 0.25],
        [-0.50, 0.50, 0.25],  # 0-3 lower ring FL FR RR RL
        [0.50, 0.50, 0.55],
        [0.50, -0.50, 0.55],
        [-0.50, -0.50, 0.55],
        [-0.50, 0.50, 0.55],  # 4-7 beltline ring
        [0.15, 0.42, 1.00],
        [0.15, -0.42, 1.00],
        [-0.35, -0.42, 1.00],
        [-0.35, 0.42, 1.00],  # 8-11 roof ring
        [0.32, 0.50, 0.00],
        [0.32, -0.50, 0.00],
        [-0.32, -0.50, 0.00],
        [-0.32, 0.50, 0.00],  # 12-15 wheel contacts
        [0.50, 0.33, 0.42],
        [0.50, -0.33, 0.42],  # 16-17 headlights L R
        [-0.50, -0.33, 0.42],
        [-0.50, 0.33, 0.42],  # 18-19 tail lights R L
    ]
)
_CAR_EDGES = np.array(
    [
        [0, 1],
        [1, 2],
        [2, 3],
        [3, 0],  # lower ring
        [4, 5],
        [5, 6],
        [6, 7],
        [7, 4],  # beltline ring
        [0, 4],
        [1, 5],
        [2, 6],
        [3, 7],  # lower pillars
        [8, 9],
        [9, 10],
        [10, 11],
        [11, 8],  # roof ring
        [4, 8],
        [5, 9],
        [6, 10],
        [7, 11],  # roof pillars
        [12, 13],
        [14, 15],  # axles
        [12, 0],
        [13, 1],
        [14, 2],
        [15, 3],  # wheel struts
        [16, 17],
        [18, 19],  # light bars
    ]
)

VEHICLE = SkeletonSpec(
    name="vehicle",
    edges=_CAR_EDGES,
    edge_colors=hue_cycle(len(_CAR_EDGES)),
    dot_colors=np.concatenate([np.full((16, 3), 255, np.uint8), np.array([[255, 255, 160]] * 2 + [[255, 40, 40]] * 2, np.uint8)]),
)


def vehicle_keypoints(size: np.ndarray) -> np.ndarray:
    """[n, 20, 3] body-frame car keypoints from box sizes ``[n, 3]`` (length, width, height)."""
    return _scaled(_CAR_KP, size)


# --- generic box -----------------------------------------------------------------------
_BOX_KP = np.array([[sx * 0.5, sy * 0.5, z] for z in (0.0, 1.0) for sx, sy in ((1, 1), (1, -1), (-1, -1), (-1, 1))])
_BOX_EDGES = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]])
OTHER = SkeletonSpec(
    name="other", edges=_BOX_EDGES, edge_colors=np.full((12, 3), 150, np.uint8), dot_colors=np.full((8, 3), 150, np.uint8)
)


def box_keypoints(size: np.ndarray) -> np.ndarray:
    """[n, 8, 3] body-frame box corners (bottom ring then top ring)."""
    return _scaled(_BOX_KP, size)


def _scaled(unit: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``unit[None] * size[:, None, :]``: [n, K, 3] keypoints from [K, 3] normalised ones and [n, 3] sizes.

    Filled one coordinate at a time (numpy's broadcast over the 3-long last axis is ~3x slower);
    the same products, so the same bits.
    """
    size = np.asarray(size, np.float64).reshape(-1, 3)
    out = np.empty((size.shape[0],) + unit.shape)
    for c in range(3):
        np.multiply(size[:, c : c + 1], unit[:, c], out=out[:, :, c])
    return out


# --- pedestrians (OpenPose COCO-18) -----------------------------------------------------------
OPENPOSE_JOINTS = (
    "nose",
    "neck",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_hip",
    "l_knee",
    "l_ankle",
    "r_eye",
    "l_eye",
    "r_ear",
    "l_ear",
)
# OpenPose's limb sequence (0-based joints) and its 18-colour palette, as its body-pose drawing uses them.
OPENPOSE_LIMBS = np.array(
    [
        [1, 2],
        [1, 5],
        [2, 3],
        [3, 4],
        [5, 6],
        [6, 7],
        [1, 8],
        [8, 9],
        [9, 10],
        [1, 11],
        [11, 12],
        [12, 13],
        [1, 0],
        [0, 14],
        [14, 16],
        [0, 15],
        [15, 17],
    ]
)
OPENPOSE_COLORS = np.array(
    [
        [255, 0, 0],
        [255, 85, 0],
        [255, 170, 0],
        [255, 255, 0],
        [170, 255, 0],
        [85, 255, 0],
        [0, 255, 0],
        [0, 255, 85],
        [0, 255, 170],
        [0, 255, 255],
        [0, 170, 255],
        [0, 85, 255],
        [0, 0, 255],
        [85, 0, 255],
        [170, 0, 255],
        [255, 0, 255],
        [255, 0, 170],
        [255, 0, 85],
    ],
    np.uint8,
)
PEDESTRIAN = SkeletonSpec(name="pedestrian", edges=OPENPOSE_LIMBS, edge_colors=OPENPOSE_COLORS[:17], dot_colors=OPENPOSE_COLORS)

WALK_SPEED = 1.4
"""Speed (m/s) at which the limb swing reaches its full amplitude."""
STRIDE = 1.4
"""Metres walked per gait cycle (one full swing of both legs)."""


def walking_phase(distance: np.ndarray) -> np.ndarray:
    """Gait phase (radians) after walking ``distance`` metres: ``2 pi distance / STRIDE``."""
    return 2.0 * np.pi * np.asarray(distance, np.float64) / STRIDE


def pedestrian_keypoints(size: np.ndarray, phase: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """[n, 18, 3] body-frame OpenPose joints.

    Proportions are fractions of the box height ``h``; the body faces +x.
    Legs swing by ``0.45 a sin(phase)`` radians about the hips (left leg in
    anti-phase), arms by ``0.35 a sin(phase)`` opposite to the same-side leg,
    with ``a = min(speed / WALK_SPEED, 1)``; knees and elbows bend a little
    more when the limb is behind the body.
    """
    size = np.asarray(size, np.float64)
    h = size[:, 2][:, None]
    n = size.shape[0]
    a = np.clip(np.asarray(speed, np.float64) / WALK_SPEED, 0.0, 1.0)
    s = np.sin(np.asarray(phase, np.float64))
    leg_r, leg_l = 0.45 * a * s, -0.45 * a * s
    arm_r, arm_l = -0.35 * a * s, 0.35 * a * s

    def limb(root: np.ndarray, angle: np.ndarray, bend: np.ndarray, l1: float, l2: float) -> Tuple[np.ndarray, np.ndarray]:
        # Angles are measured from straight down, positive swinging forward (+x).
        mid = root + h * l1 * np.stack([np.sin(angle), np.zeros(n), -np.cos(angle)], -1)
        a2 = angle + bend
        end = mid + h * l2 * np.stack([np.sin(a2), np.zeros(n), -np.cos(a2)], -1)
        return mid, end

    def at(x: float, y: float, z: float) -> np.ndarray:
        return h * np.array([x, y, z])[None]

    kp = np.zeros((n, 18, 3))
    kp[:, 0] = at(0.06, 0.0, 0.91)[0]
    kp[:, 1] = at(0.0, 0.0, 0.82)[0]
    kp[:, 2] = at(0.0, -0.12, 0.80)[0]
    kp[:, 5] = at(0.0, 0.12, 0.80)[0]
    kp[:, 8] = at(0.0, -0.07, 0.50)[0]
    kp[:, 11] = at(0.0, 0.07, 0.50)[0]
    kp[:, 14] = at(0.05, -0.03, 0.94)[0]
    kp[:, 15] = at(0.05, 0.03, 0.94)[0]
    kp[:, 16] = at(0.0, -0.06, 0.92)[0]
    kp[:, 17] = at(0.0, 0.06, 0.92)[0]
    # Knees bend backwards (negative) when the leg trails; elbows bend forwards.
    kp[:, 9], kp[:, 10] = limb(kp[:, 8], leg_r, -0.5 * np.maximum(-leg_r, 0.0) - 0.05, 0.245, 0.245)
    kp[:, 12], kp[:, 13] = limb(kp[:, 11], leg_l, -0.5 * np.maximum(-leg_l, 0.0) - 0.05, 0.245, 0.245)
    kp[:, 3], kp[:, 4] = limb(kp[:, 2], arm_r, 0.3 + 0.3 * a, 0.17, 0.15)
    kp[:, 6], kp[:, 7] = limb(kp[:, 5], arm_l, 0.3 + 0.3 * a, 0.17, 0.15)
    return kp


# --- cyclists ---------------------------------------------------------------------------
_WHEEL = np.array([[np.cos(t), np.sin(t)] for t in np.linspace(0, 2 * np.pi, 6, endpoint=False)])
CYCLIST_WHEEL_RGB: Color = (255, 255, 255)
CYCLIST_FRAME_RGB: Color = (160, 160, 255)
CYCLIST_RIDER_RGB: Color = (255, 160, 200)

# Keypoints: 0-5 front wheel rim, 6-11 rear wheel rim, 12 front hub, 13 rear hub, 14 crank, 15 saddle,
# 16 head tube top, 17 handlebar, 18 hip, 19 shoulder, 20 head, 21 foot.
_CYC_EDGES = np.array(
    [[i, (i + 1) % 6] for i in range(6)]
    + [[6 + i, 6 + (i + 1) % 6] for i in range(6)]  # wheels (12)
    + [[12, 16], [16, 17], [16, 14], [14, 13], [13, 15], [15, 14], [15, 16]]  # frame (7)
    + [[15, 18], [18, 19], [19, 20], [19, 17], [18, 21]]  # rider (5)
)
CYCLIST = SkeletonSpec(
    name="cyclist",
    edges=_CYC_EDGES,
    edge_colors=np.array([CYCLIST_WHEEL_RGB] * 12 + [CYCLIST_FRAME_RGB] * 7 + [CYCLIST_RIDER_RGB] * 5, np.uint8),
    dot_colors=np.array([(0, 0, 0)] * 12 + [CYCLIST_WHEEL_RGB] * 2 + [CYCLIST_FRAME_RGB] * 4 + [CYCLIST_RIDER_RGB] * 4, np.uint8),
)


def cyclist_keypoints(size: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """[n, 22, 3] body-frame bicycle-and-rider keypoints.

    Wheel radius ``0.18 L`` with hubs at ``x = +-0.32 L``; the rider's height
    scales with the box height ``h``; the pedalling foot circles the crank
    with ``phase``.
    """
    size = np.asarray(size, np.float64)
    n = size.shape[0]
    length, h = size[:, 0:1], size[:, 2:3]
    r = 0.18 * length
    kp = np.zeros((n, 22, 3))
    for k, hub_x in enumerate((0.32, -0.32)):
        kp[:, 6 * k : 6 * k + 6, 0] = hub_x * length + r * _WHEEL[None, :, 0]
        kp[:, 6 * k : 6 * k + 6, 2] = r + r * _WHEEL[None, :, 1]
        kp[:, 12 + k, 0] = hub_x * length[:, 0]
        kp[:, 12 + k, 2] = r[:, 0]
    zero = np.zeros((n, 1))

    def pt(x: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.concatenate([x, zero, z], -1)

    kp[:, 14] = pt(0.0 * length, r)  # crank
    kp[:, 15] = pt(-0.12 * length, 0.45 * h)  # saddle
    kp[:, 16] = pt(0.22 * length, 0.48 * h)  # head tube top
    kp[:, 17] = pt(0.20 * length, 0.55 * h)  # handlebar
    kp[:, 18] = pt(-0.12 * length, 0.50 * h)  # hip
    kp[:, 19] = pt(0.05 * length, 0.80 * h)  # shoulder
    kp[:, 20] = pt(0.08 * length, 0.95 * h)  # head
    ph = np.asarray(phase, np.float64)[:, None]
    kp[:, 21] = pt(0.09 * length * np.cos(ph), r + 0.09 * length * np.sin(ph))  # foot on the pedal
    return kp


# --- dispatch ------------------------------------------------------------------------------
SPECS: Tuple[SkeletonSpec, ...] = (VEHICLE, PEDESTRIAN, CYCLIST, OTHER)
"""Drawing order of the classes inside one depth layer."""


def keypoints_for(spec: SkeletonSpec, size: np.ndarray, phase: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """[n, K, 3] body-frame keypoints of ``n`` agents of one class."""
    if spec is VEHICLE:
        return vehicle_keypoints(size)
    if spec is PEDESTRIAN:
        return pedestrian_keypoints(size, phase, speed)
    if spec is CYCLIST:
        return cyclist_keypoints(size, phase)
    return box_keypoints(size)


def spec_for(object_type: int) -> SkeletonSpec:
    """The :class:`SkeletonSpec` an :class:`~mad_sim.data.scenario.ObjectType` is drawn with."""
    return SPECS[int(class_of(np.array([object_type]))[0])]


def class_of(types: np.ndarray) -> np.ndarray:
    """[n] int index into :data:`SPECS` for object types ``[n]`` (unknown types draw as OTHER)."""
    t = np.asarray(types)
    out = np.full(t.shape, 3, np.int64)
    out[t == ObjectType.VEHICLE] = 0
    out[t == ObjectType.PEDESTRIAN] = 1
    out[t == ObjectType.CYCLIST] = 2
    return out


def place(keypoints_body: np.ndarray, center_xyz: np.ndarray, heading: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Body-frame keypoints ``[n, K, 3]`` to the parent frame (vehicle or world).

    ``p = R(heading) p_body[:2] + center_xy``, ``z = p_body_z + center_z - height / 2``
    (the box centre is half its height above the ground).
    """
    c = np.cos(heading)[:, None]
    s = np.sin(heading)[:, None]
    x, y, z = keypoints_body[..., 0], keypoints_body[..., 1], keypoints_body[..., 2]
    out = np.empty_like(keypoints_body)
    out[..., 0] = c * x - s * y + center_xyz[:, 0:1]
    out[..., 1] = s * x + c * y + center_xyz[:, 1:2]
    out[..., 2] = z + (center_xyz[:, 2:3] - 0.5 * np.asarray(height)[:, None])
    return out
