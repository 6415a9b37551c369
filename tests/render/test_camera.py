"""Camera model: projection, frames, clipping, ground back-projection."""

import math

import numpy as np
import pytest

from mad_sim.errors import RenderError
from mad_sim.render.camera import Camera


def test_default_front_projects_known_points():
    cam = Camera.default_front(128, 128, hfov_deg=90.0, mount_height=1.6)
    assert cam.fx == pytest.approx(64.0)
    # A point straight ahead at camera height lands on the principal point.
    uv, depth = cam.project(np.array([[10.0, 0.0, 1.6]]))
    np.testing.assert_allclose(uv[0], [63.5, 63.5])
    assert depth[0] == pytest.approx(10.0)
    # 45 degrees to the left (y = +x) lands on the left image border; ground 10 m ahead below centre.
    uv, _ = cam.project(np.array([[10.0, 10.0, 1.6], [10.0, 0.0, 0.0]]))
    assert uv[0, 0] == pytest.approx(63.5 - 64.0)
    assert uv[1, 1] == pytest.approx(63.5 + 64.0 * 1.6 / 10.0)
    # Behind the camera: NaN pixels (documented).
    uv, depth = cam.project(np.array([[-5.0, 0.0, 1.0]]))
    assert np.isnan(uv).all() and depth[0] < 0


def test_aspect_ratio_and_pitch():
    cam = Camera.default_front(768, 512, hfov_deg=90.0)
    assert cam.fx == cam.fy == pytest.approx(384.0)
    assert cam.hfov_deg == pytest.approx(90.0, abs=1e-6)
    down = Camera.default_front(128, 128, pitch_deg=10.0)
    uv, _ = down.project(np.array([[20.0, 0.0, 1.6]]))
    # Tilting the camera down moves a level point up in the image by fx * tan(10 deg).
    assert uv[0, 1] == pytest.approx(63.5 - 64.0 * math.tan(math.radians(10.0)), abs=1e-6)


def test_backproject_ground_roundtrip_and_horizon():
    cam = Camera.default_front(256, 128, hfov_deg=80.0, pitch_deg=5.0)
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(3, 60, 200), rng.uniform(-15, 15, 200), np.zeros(200)], -1)
    uv, depth = cam.project(pts)
    ok = cam.in_image(uv)
    back = cam.backproject_ground(uv[ok])
    np.testing.assert_allclose(back, pts[ok], atol=1e-9)
    # Pixels above the horizon have no ground point.
    top = cam.backproject_ground(np.array([[128.0, 0.0]]))
    assert np.isnan(top).all()


def test_clip_segments_near_plane_and_frustum():
    cam = Camera.default_front(128, 128)
    # A segment from behind the camera to 10 m ahead, on the optical axis: clipped to start at the near plane.
    a = cam.to_camera(np.array([[-5.0, 0.0, 1.6]]))
    b = cam.to_camera(np.array([[10.0, 0.0, 1.6]]))
    ca, cb, keep = cam.clip_segments(a, b)
    assert keep[0]
    assert ca[0, 2] == pytest.approx(cam.near)
    np.testing.assert_allclose(cb[0], b[0])
    # Entirely behind, or entirely off to the side: dropped.
    a2 = cam.to_camera(np.array([[-5.0, 0.0, 1.6], [10.0, 30.0, 1.6]]))
    b2 = cam.to_camera(np.array([[-1.0, 0.0, 1.6], [20.0, 40.0, 1.6]]))
    assert not cam.clip_segments(a2, b2)[2].any()
    # Projected clipped endpoints stay inside the image plus the guard band.
    ua, ub, keep = cam.project_segments(np.array([[1.0, -50.0, 0.0]]), np.array([[80.0, 50.0, 0.0]]))
    assert keep[0]
    for uv in (ua[0], ub[0]):
        assert -0.5 - cam.guard_px - 1e-6 <= uv[0] <= 127.5 + cam.guard_px + 1e-6


def test_from_waymo_axes():
    # Identity extrinsic: the Waymo camera looks along vehicle +x with y left, z up.
    intr = np.array([1000.0, 1000.0, 960.0, 640.0, 0, 0, 0, 0, 0])
    cam = Camera.from_waymo(intr, np.eye(4), 1920, 1280)
    uv, depth = cam.project(np.array([[10.0, 1.0, 2.0]]))
    # u = c_u - f_u y / x, v = c_v - f_v z / x (Waymo's pinhole convention).
    np.testing.assert_allclose(uv[0], [960.0 - 100.0, 640.0 - 200.0])
    assert depth[0] == pytest.approx(10.0)


def test_bad_cameras_raise():
    with pytest.raises(RenderError):
        Camera.default_front(128, 128, hfov_deg=180.0)
    with pytest.raises(RenderError):
        Camera(width=0, height=10, fx=1, fy=1, cx=0, cy=0)
    with pytest.raises(RenderError):
        Camera(width=10, height=10, fx=float("nan"), fy=1, cx=0, cy=0)
