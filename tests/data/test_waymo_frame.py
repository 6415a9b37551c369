"""Perception Frame reader on the real frame: images, calibration, labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mad_sim.data.tfrecord import iter_records, write_records
from mad_sim.data.waymo_frame import read_frames
from mad_sim.errors import CorruptRecordError, SchemaError


def _frame(frame_path):
    frames = list(read_frames(frame_path))
    assert len(frames) == 1
    return frames[0]


def test_cameras_and_calibration(frame_path):
    f = _frame(frame_path)
    assert list(f.cameras) == ["FRONT", "FRONT_LEFT", "SIDE_LEFT", "FRONT_RIGHT", "SIDE_RIGHT"]
    front = f.cameras["FRONT"]
    assert front.image.shape == (1280, 1920, 3) and front.image.dtype == np.uint8
    assert (front.width, front.height) == (1920, 1280)
    assert f.cameras["SIDE_LEFT"].image.shape == (886, 1920, 3)
    np.testing.assert_allclose(front.intrinsic[:4], [2044.508, 2044.508, 949.575, 633.242], atol=1e-3)
    np.testing.assert_allclose(front.extrinsic[3], [0, 0, 0, 1])
    np.testing.assert_allclose(front.extrinsic[:3, :3] @ front.extrinsic[:3, :3].T, np.eye(3), atol=1e-6)
    assert 1.0 < front.extrinsic[0, 3] < 2.0  # the front camera sits ~1.5 m ahead of the vehicle origin
    assert front.image.mean() > 20  # a real daylight image, not black


def test_labels_project_onto_their_2d_boxes(frame_path):
    f = _frame(frame_path)
    assert len(f.laser_labels) == 75
    assert sum(len(c.projected_labels) for c in f.cameras.values()) == 62
    front = f.cameras["FRONT"]
    index = {lid: k for k, lid in enumerate(f.laser_labels.ids)}
    inv = np.linalg.inv(front.extrinsic)
    fu, fv, cu, cv = front.intrinsic[:4]
    errors = []
    for k, lid in enumerate(front.projected_labels.ids):
        p = inv @ np.r_[f.laser_labels.center[index[lid.rsplit("_", 1)[0]]], 1.0]
        uv = np.array([cu - fu * p[1] / p[0], cv - fv * p[2] / p[0]])
        errors.append(np.linalg.norm(uv - front.projected_labels.center[k]))
    assert len(errors) == 12 and np.median(errors) < 5.0


def test_official_frame_fields_agree(frame_path, official_protos):
    f = _frame(frame_path)
    msg = official_protos.dataset_pb2.Frame.FromString(next(iter_records(frame_path)))
    assert f.context_name == msg.context.name and f.timestamp_micros == msg.timestamp_micros
    for c in msg.context.camera_calibrations:
        view = next(v for v in f.cameras.values() if v.camera_id == c.name)
        np.testing.assert_array_equal(view.intrinsic, list(c.intrinsic))
        np.testing.assert_array_equal(view.extrinsic.ravel(), list(c.extrinsic.transform))
    labels = msg.laser_labels
    np.testing.assert_array_equal(f.laser_labels.center, [[lb.box.center_x, lb.box.center_y, lb.box.center_z] for lb in labels])
    np.testing.assert_array_equal(f.laser_labels.size, [[lb.box.length, lb.box.width, lb.box.height] for lb in labels])
    assert f.laser_labels.types.tolist() == [lb.type for lb in labels]


def test_scenario_file_is_not_a_frame(womd_path):
    with pytest.raises(SchemaError, match="record 0") as err:
        next(read_frames(womd_path))
    assert str(womd_path) in str(err.value)


def test_broken_jpeg(frame_path, tmp_path: Path):
    from mad_sim.data.proto import dataset_pb2

    msg = dataset_pb2.Frame.FromString(next(iter_records(frame_path)))
    msg.images[1].image = msg.images[1].image[:100]
    bad = tmp_path / "bad.tfrecord"
    write_records(bad, [msg.SerializeToString()])
    with pytest.raises(CorruptRecordError, match=r"images\[1\]"):
        next(read_frames(bad))
    # Without decoding, the raw bytes come through.
    f = next(read_frames(bad, decode_images=False))
    assert f.cameras["FRONT_LEFT"].image is None and len(f.cameras["FRONT_LEFT"].jpeg) == 100
