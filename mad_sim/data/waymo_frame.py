"""Waymo perception ``Frame`` reader: camera images, calibrations and box labels.

Reads TFRecords of ``waymo.open_dataset.Frame`` records through our own
wire-compatible subset schema (:mod:`mad_sim.data.proto.dataset_pb2`); lidar
range images are skipped.  Frames used by the model as real RGB references
(first frames, appearance training) come from here.

Frames and units:

* *vehicle* frame: x forward, y left, z up, metres (Waymo's convention);
* ``CameraView.extrinsic``: 4x4 camera -> vehicle transform; Waymo's camera
  frame has x forward (along the optical axis), y left, z up, so a vehicle
  point ``p`` projects as ``q = inv(extrinsic) @ p`` and ``u = c_u - f_u q_y / q_x``,
  ``v = c_v - f_v q_z / q_x`` (before distortion);
* ``CameraView.intrinsic``: ``[f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3]`` pixels;
* 3D laser labels: box centre, (length, width, height), heading about +z, all
  in the vehicle frame; 2D labels: pixel centre and (length along u, width along v).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional

import cv2
import numpy as np
from google.protobuf.message import DecodeError

from mad_sim.data.proto import dataset_pb2
from mad_sim.data.tfrecord import PathSpec, read_records
from mad_sim.errors import CorruptRecordError, SchemaError

log = logging.getLogger(__name__)

CAMERA_NAMES = {v.number: v.name for v in dataset_pb2.CameraName.Name.DESCRIPTOR.values}
"""Waymo camera id -> name (``1: "FRONT"``, ...)."""
LABEL_TYPES = {v.number: v.name for v in dataset_pb2.Label.Type.DESCRIPTOR.values}
"""Waymo label type id -> name (``1: "TYPE_VEHICLE"``, ...)."""


@dataclass
class Boxes3D:
    """K 3D boxes in the vehicle frame.

    Attributes:
      center: [K, 3] float64 metres.  size: [K, 3] float64 (length, width, height).
      heading: [K] float64 radians about +z.  types: [K] int8 Label.Type.
      speed: [K, 2] float64 m/s (metadata speed_x, speed_y).  ids: K label ids.
    """

    center: np.ndarray
    size: np.ndarray
    heading: np.ndarray
    types: np.ndarray
    speed: np.ndarray
    ids: List[str]

    def __len__(self) -> int:
        return int(self.types.shape[0])


@dataclass
class Boxes2D:
    """K axis-aligned image boxes, pixels.

    Attributes:
      center: [K, 2] float64 (u, v).  size: [K, 2] float64 (extent along u, along v).
      types: [K] int8 Label.Type.  ids: K label ids (``<laser id>_<CAMERA>`` for projected labels).
    """

    center: np.ndarray
    size: np.ndarray
    types: np.ndarray
    ids: List[str]

    def __len__(self) -> int:
        return int(self.types.shape[0])


@dataclass
class CameraView:
    """One camera of a frame.

    Attributes:
      name: ``"FRONT"``, ``"FRONT_LEFT"``, ...; camera_id: its Waymo id.
      image: [H, W, 3] uint8 RGB (None when images are not decoded); jpeg: the raw bytes.
      intrinsic: [9] float64; extrinsic: [4, 4] float64 camera -> vehicle.
      width, height: calibrated image size, pixels.
      projected_labels: laser boxes projected into this image; camera_labels: boxes drawn on the image.
    """

    name: str
    camera_id: int
    image: Optional[np.ndarray]
    jpeg: bytes
    intrinsic: np.ndarray
    extrinsic: np.ndarray
    width: int
    height: int
    projected_labels: Boxes2D
    camera_labels: Boxes2D


@dataclass
class PerceptionFrame:
    """One perception frame: cameras (keyed by name), 3D labels and the vehicle pose.

    Attributes:
      context_name: the segment's name; timestamp_micros: frame time.
      pose: [4, 4] float64 vehicle -> world.
      cameras: camera name -> :class:`CameraView`, in the order of the file's images.
      laser_labels: :class:`Boxes3D` in the vehicle frame.
    """

    context_name: str
    timestamp_micros: int
    pose: np.ndarray
    cameras: Dict[str, CameraView] = field(default_factory=dict)
    laser_labels: Optional[Boxes3D] = None


def _matrix(values, path: str, record: int, name: str) -> np.ndarray:
    arr = np.asarray(values, np.float64)
    if arr.size == 0:
        return np.eye(4)
    if arr.size != 16:
        raise SchemaError(f"{arr.size} numbers, expected 16 (a 4x4 transform)", path=path, record=record, field=name)
    return arr.reshape(4, 4)


def _boxes3d(labels) -> Boxes3D:
    b = [
        (
            lb.box.center_x,
            lb.box.center_y,
            lb.box.center_z,
            lb.box.length,
            lb.box.width,
            lb.box.height,
            lb.box.heading,
            lb.metadata.speed_x,
            lb.metadata.speed_y,
        )
        for lb in labels
    ]
    a = np.asarray(b, np.float64).reshape(-1, 9)
    return Boxes3D(
        center=a[:, 0:3],
        size=a[:, 3:6],
        heading=a[:, 6],
        speed=a[:, 7:9],
        types=np.asarray([lb.type for lb in labels], np.int8),
        ids=[lb.id for lb in labels],
    )


def _boxes2d(labels) -> Boxes2D:
    a = np.asarray([(lb.box.center_x, lb.box.center_y, lb.box.length, lb.box.width) for lb in labels], np.float64).reshape(-1, 4)
    return Boxes2D(
        center=a[:, :2], size=a[:, 2:], types=np.asarray([lb.type for lb in labels], np.int8), ids=[lb.id for lb in labels]
    )


def decode_jpeg(data: bytes, path: str = "<memory>", record: int = 0, field_name: str = "image") -> np.ndarray:
    """JPEG bytes -> [H, W, 3] uint8 RGB; CorruptRecordError if they do not decode."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise CorruptRecordError("camera image does not decode as JPEG", path=path, record=record, field=field_name)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def frame_from_bytes(payload: bytes, path: str = "<memory>", record: int = 0, decode_images: bool = True) -> PerceptionFrame:
    """Parse one serialized ``Frame``; SchemaError if the record is another message type."""
    msg = dataset_pb2.Frame()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise SchemaError(f"not a serialized Waymo perception Frame ({exc})", path=path, record=record) from None
    if not msg.images or not msg.context.camera_calibrations:
        raise SchemaError(
            "not a Waymo perception Frame: no camera images / calibrations (another message type?)", path=path, record=record
        )
    calib = {c.name: c for c in msg.context.camera_calibrations}
    projected = {c.name: c.labels for c in msg.projected_lidar_labels}
    drawn = {c.name: c.labels for c in msg.camera_labels}
    cameras: Dict[str, CameraView] = {}
    for k, image in enumerate(msg.images):
        name = CAMERA_NAMES.get(image.name, f"CAMERA_{image.name}")
        c = calib.get(image.name)
        if c is None:
            raise SchemaError(f"camera {name} has no calibration", path=path, record=record, field="context.camera_calibrations")
        intrinsic = np.asarray(c.intrinsic, np.float64)
        if intrinsic.shape != (9,):
            raise SchemaError(
                f"{intrinsic.size} intrinsics for camera {name}, expected 9",
                path=path,
                record=record,
                field="context.camera_calibrations.intrinsic",
            )
        cameras[name] = CameraView(
            name=name,
            camera_id=int(image.name),
            image=decode_jpeg(image.image, path, record, f"images[{k}].image") if decode_images else None,
            jpeg=bytes(image.image),
            intrinsic=intrinsic,
            extrinsic=_matrix(c.extrinsic.transform, path, record, "context.camera_calibrations.extrinsic"),
            width=int(c.width),
            height=int(c.height),
            projected_labels=_boxes2d(projected.get(image.name, [])),
            camera_labels=_boxes2d(drawn.get(image.name, [])),
        )
    return PerceptionFrame(
        context_name=msg.context.name,
        timestamp_micros=int(msg.timestamp_micros),
        pose=_matrix(msg.pose.transform, path, record, "pose"),
        cameras=cameras,
        laser_labels=_boxes3d(msg.laser_labels),
    )


def read_frames(path: PathSpec, decode_images: bool = True) -> Iterator[PerceptionFrame]:
    """Stream :class:`PerceptionFrame` objects from TFRecord files / globs / directories."""
    for file, index, payload in read_records(path):
        yield frame_from_bytes(payload, os.fspath(file), index, decode_images)
