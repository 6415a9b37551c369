"""The camera model against a real Waymo perception frame and its own calibration."""

import os
from pathlib import Path

import cv2
import numpy as np

from mad_sim.data.waymo_frame import read_frames
from mad_sim.render.camera import Camera
from mad_sim.render.skeleton import box_keypoints, place

_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)]


def _iou(lo1, hi1, lo2, hi2):
    inter = np.prod(np.clip(np.minimum(hi1, hi2) - np.maximum(lo1, lo2), 0, None), -1)
    return inter / (np.prod(hi1 - lo1, -1) + np.prod(hi2 - lo2, -1) - inter)


def test_laser_boxes_project_onto_the_front_image(frame_path, tmp_path):
    frame = next(read_frames(frame_path))
    view = frame.cameras["FRONT"]
    cam = Camera.from_waymo(view.intrinsic, view.extrinsic, view.width, view.height)
    boxes = frame.laser_labels
    assert len(boxes) == 75
    corners = place(box_keypoints(boxes.size), boxes.center, boxes.heading, boxes.size[:, 2])  # [75, 8, 3]
    uv, depth = cam.project(corners)
    # Match to the frame's own projected labels (ids "<laser id>_FRONT") and compare 2-D boxes.
    index = {lid: j for j, lid in enumerate(view.projected_labels.ids)}
    size = np.array([view.width, view.height], float)
    ious = []
    for k, lid in enumerate(boxes.ids):
        j = index.get(f"{lid}_FRONT")
        if j is None or not (depth[k] > cam.near).all():
            continue
        lo, hi = np.clip(uv[k].min(0), 0, size), np.clip(uv[k].max(0), 0, size)
        c, s = view.projected_labels.center[j], view.projected_labels.size[j]
        ious.append(_iou(lo, hi, c - s / 2, c + s / 2))
    assert len(ious) >= 10
    assert np.mean(ious) > 0.97 and np.min(ious) > 0.9, ious
    # Overlay for a person to look at: frustum-clipped wireframes (green) on the real image, the frame's
    # own projected labels in red.
    img = cv2.cvtColor(view.image, cv2.COLOR_RGB2BGR)
    e = np.array(_EDGES)
    ua, ub, keep = cam.project_segments(corners[:, e[:, 0]], corners[:, e[:, 1]])
    assert keep.any(1).sum() >= 12
    pts = np.rint(np.stack([ua[keep], ub[keep]], 1) * 16).astype(np.int32)
    cv2.polylines(img, pts, False, (0, 255, 0), 3, cv2.LINE_AA, 4)
    for j in range(len(view.projected_labels)):
        c, s = view.projected_labels.center[j], view.projected_labels.size[j]
        cv2.rectangle(img, tuple(np.rint(c - s / 2).astype(int)), tuple(np.rint(c + s / 2).astype(int)), (0, 0, 255), 2)
    out = Path(os.environ.get("MAD_SIM_OVERLAY_DIR", tmp_path)) / "waymo_front_overlay.jpg"
    out.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(out), img)
