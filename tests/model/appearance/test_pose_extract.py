"""Dashcam pose extraction on the real Udacity dashcam video and stills."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mad_sim.data.camera_files import read_image, read_video
from mad_sim.data.dashcam import DashcamExtractor
from mad_sim.errors import ConfigError, DataError, DataNotFoundError, ShapeError
from mad_sim.model.appearance.pose_extract import (
    GroundCamera,
    PoseDetections,
    available_extractors,
    draw_detections,
    extract_pose_video,
    get_extractor,
    register_extractor,
    resize_frames,
)
from tests.conftest import data_file


@pytest.fixture(scope="module")
def video():
    frames, fps = read_video(data_file("video/solidWhiteRight.mp4"))
    return frames, fps


@pytest.fixture(scope="module")
def detections(video):
    return DashcamExtractor().run(video[0])


def test_read_video_shape(video):
    frames, fps = video
    assert frames.shape == (221, 540, 960, 3) and frames.dtype == np.uint8
    assert fps == pytest.approx(25.0)


def test_lanes_tracked_and_placed(detections):
    valid = np.array([d.lane_valid for d in detections])
    assert valid.mean() > 0.97
    bottom_u = np.array([d.lanes[:, 0, 0] for d in detections])  # [F, 2] at the bottom row
    # the ego lane's solid right line and dashed left line (checked by eye on the frames)
    assert np.all((bottom_u[:, 0] > 100) & (bottom_u[:, 0] < 260)), bottom_u[:, 0].min()
    assert np.all((bottom_u[:, 1] > 760) & (bottom_u[:, 1] < 920)), bottom_u[:, 1].max()
    # tracked: no frame-to-frame jump beyond 15 px at the bottom row
    assert np.abs(np.diff(bottom_u, axis=0)).max() < 15.0
    # both boundaries converge toward a vanishing point near the image centre
    top_gap = np.array([d.lanes[1, -1, 0] - d.lanes[0, -1, 0] for d in detections])
    assert np.all(top_gap > 0) and np.median(top_gap) < 150


def test_lane_pixels_are_on_markings(video, detections):
    frames, _ = video
    hits = []
    for i in (0, 50, 100, 150, 200):
        grey = cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY)
        bright = cv2.dilate((grey > 170).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        right = detections[i].lanes[1]  # the solid white line: every vertex must be on paint
        u, v = np.round(right[:, 0]).astype(int), np.round(right[:, 1]).astype(int)
        hits.append(bright[v, u].mean())
    assert np.mean(hits) > 0.8, hits


def test_vehicles_found_where_cars_are(detections):
    # frame 120: the grey sedan in the left lane, boxed by hand on the frame (source pixels)
    hand = np.array([0.0, 290.0, 150.0, 385.0])
    boxes = detections[120].vehicles
    lt = np.maximum(boxes[:, :2], hand[:2])
    rb = np.minimum(boxes[:, 2:], hand[2:])
    inter = np.prod(np.clip(rb - lt, 0, None), 1)
    union = np.prod(boxes[:, 2:] - boxes[:, :2], 1) + np.prod(hand[2:] - hand[:2]) - inter
    assert (inter / union).max() > 0.5
    # nothing above the horizon or on the ego lane's near road
    for d in detections:
        assert np.all(d.vehicles[:, 3] > 270) and np.all(d.vehicles[:, 3] < 420)


@pytest.mark.parametrize("name", ["solidWhiteCurve.jpg", "solidYellowLeft.jpg"])
def test_stills_both_boundaries(name):
    image = read_image(data_file(f"video/{name}"))
    d = DashcamExtractor().update(image)
    assert d.lane_valid.all()
    assert d.lanes[0, 0, 0] < 300 and d.lanes[1, 0, 0] > 700


def test_ground_camera_is_plausible(video):
    frames, _ = video
    ex, ground = get_extractor("classical"), GroundCamera()
    for f in frames[:30]:
        cam = ground.update(ex.detect(f))
    u_vp, v_vp, height = ground._state
    assert 1.0 < height < 1.6  # a car's dashcam
    assert 290 < v_vp < 330 and 440 < u_vp < 520
    # the road straight ahead projects onto the vanishing point
    uv, _ = cam.project(np.array([[500.0, 0.0, 0.0]]))
    assert np.allclose(uv[0], [u_vp, v_vp], atol=3.0)


def test_pose_video_aligns_with_rgb(video):
    frames, _ = video
    sub = frames[:40]
    pose = extract_pose_video(sub, width=128, height=128)
    rgb = resize_frames(sub, 128, 128)
    assert pose.shape == (40, 128, 128, 3) and pose.dtype == np.uint8
    lit = pose.max(-1) > 0
    assert 0.005 < lit.mean() < 0.15
    # grey painted-line pixels of the pose frames sit on bright paint of the RGB frames
    line = np.all(pose == 150, -1)
    bright = np.stack(
        [cv2.dilate((cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) > 150).astype(np.uint8), np.ones((3, 3), np.uint8)) for f in rgb]
    ).astype(bool)
    assert line.sum() > 500 and bright[line].mean() > 0.6
    # coloured wireframe pixels (cars) appear in the frames where cars were tracked
    colour = (pose.max(-1).astype(int) - pose.min(-1)) > 100
    assert colour[30:].any()


def test_registry_and_learned_extractor_plugs_in():
    assert "classical" in available_extractors()
    with pytest.raises(ConfigError, match="unknown pose extractor 'nope'"):
        get_extractor("nope")
    with pytest.raises(ConfigError, match="already registered"):
        register_extractor("classical", object)

    class OnePerson:
        name = "one-person"

        def reset(self) -> None:
            pass

        def detect(self, frame: np.ndarray) -> PoseDetections:
            joints = np.zeros((1, 18, 3))
            joints[0, :, 0] = np.linspace(40, 60, 18)
            joints[0, :, 1] = np.linspace(20, 90, 18)
            joints[0, :, 2] = 1.0
            return PoseDetections(image_size=(frame.shape[1], frame.shape[0]), persons=joints)

    register_extractor("one-person", OnePerson, overwrite=True)
    frames = np.zeros((2, 100, 100, 3), np.uint8)
    pose = extract_pose_video(frames, get_extractor("one-person"), 64, 64)
    # OpenPose's red neck-to-right-shoulder limb colour is present
    assert np.any(np.all(pose[0] == [255, 0, 0], -1))
    with pytest.raises(ConfigError, match="lacks"):
        register_extractor("broken", lambda: object(), overwrite=True)
        get_extractor("broken")


def test_bad_inputs(tmp_path):
    with pytest.raises(DataNotFoundError):
        read_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(DataError, match="junk.mp4"):
        read_video(junk)
    with pytest.raises(ShapeError, match="uint8"):
        extract_pose_video(np.zeros((2, 64, 64, 3), np.float32))
    with pytest.raises(ShapeError, match="differs"):
        ex = DashcamExtractor()
        ex.update(np.zeros((64, 64, 3), np.uint8))
        ex.update(np.zeros((64, 96, 3), np.uint8))
    det = PoseDetections(image_size=(100, 50))
    with pytest.raises(Exception, match="camera is"):
        draw_detections(det, GroundCamera().update(PoseDetections(image_size=(80, 50))), 64, 64)


def test_waymo_pose_frame_matches_projected_labels(frame_path):
    from mad_sim.data.waymo_frame import read_frames
    from mad_sim.model.appearance.pose_extract import waymo_agents, waymo_pose_pair
    from mad_sim.render.draw import agent_id_mask

    frame = next(read_frames(frame_path))
    w, h = 192, 128
    rgb, pose, cam = waymo_pose_pair(frame, "FRONT", w, h)
    assert rgb.shape == pose.shape == (h, w, 3)
    agents = waymo_agents(frame.laser_labels)
    assert len(agents) == 37 + 12 + 1  # vehicles + pedestrians + cyclist; the 25 signs are not agents
    ids = agent_id_mask(cam, agents)
    view = frame.cameras["FRONT"]
    sx, sy = w / view.width, h / view.height
    index = {lid: k for k, lid in enumerate(frame.laser_labels.ids)}
    checked = 0
    for c, s, lid in zip(view.projected_labels.center, view.projected_labels.size, view.projected_labels.ids):
        k = index[lid.rsplit("_", 1)[0]]
        pix = np.argwhere(ids == k)
        if len(pix) < 5:
            continue
        u0, u1 = (c[0] - s[0] / 2) * sx - 2, (c[0] + s[0] / 2) * sx + 2
        v0, v1 = (c[1] - s[1] / 2) * sy - 2, (c[1] + s[1] / 2) * sy + 2
        inside = (pix[:, 1] >= u0) & (pix[:, 1] <= u1) & (pix[:, 0] >= v0) & (pix[:, 0] <= v1)
        assert inside.mean() > 0.9, (lid, inside.mean())
        checked += 1
    assert checked >= 5
    with pytest.raises(ConfigError, match="no camera 'REAR'"):
        waymo_pose_pair(frame, "REAR")
