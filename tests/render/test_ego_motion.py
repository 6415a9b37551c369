"""Ego-motion video: rotation moves the sphere texture, translation makes the dust streak radially."""

import math

import cv2
import numpy as np
import pytest

from mad_sim.errors import RenderError
from mad_sim.render.ego_motion import EgoMotionRenderer, checker_texture, poses_from_actions


def _gray(f):
    return cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float64)


def test_texture_is_the_papers_checkerboard():
    tex = checker_texture(64, 32, cell_px=4, seed=42)
    assert tex.shape == (128, 256, 3)
    cells = tex[::4, ::4]
    ii, jj = np.meshgrid(np.arange(32), np.arange(64), indexing="ij")
    assert not cells[(ii + jj) % 2 == 1].any()
    expect = np.random.default_rng(42).integers(0, 256, (32, 64, 3)).astype(np.uint8)
    np.testing.assert_array_equal(cells[(ii + jj) % 2 == 0], expect[(ii + jj) % 2 == 0])


def test_pure_yaw_shifts_texture_by_fx_tan_dyaw():
    r = EgoMotionRenderer(256, 128, num_particles=0)
    dyaw = 0.04
    frames = r.render(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, dyaw]]))
    win = (slice(40, 88), slice(96, 160))  # central window
    (du, dv), _ = cv2.phaseCorrelate(_gray(frames[0])[win], _gray(frames[1])[win])
    expected = r.camera.fx * math.tan(dyaw)  # turning left moves the scene right
    assert du == pytest.approx(expected, rel=0.1), (du, expected)
    assert abs(dv) < 0.5


def test_pure_yaw_dust_moves_with_rotation_only():
    r = EgoMotionRenderer(128, 128, num_particles=200, seed=3)
    dyaw = 0.03
    r.render(np.array([[5.0, 2.0, 0.3], [5.0, 2.0, 0.3 + dyaw]]))
    seg, spawned = r.last_dust[1], r.last_respawned[1]
    old, new = seg[~spawned, 0], seg[~spawned, 1]
    # The rotational flow: rotate each old pixel's ray about the camera's vertical axis, reproject.
    cam = r.camera
    x = (old[:, 0] - cam.cx) / cam.fx
    y = (old[:, 1] - cam.cy) / cam.fy
    c, s = math.cos(dyaw), math.sin(dyaw)
    xr, zr = c * x + s, -s * x + c  # camera turns left by dyaw: the scene turns right
    expect = np.stack([cam.fx * xr / zr + cam.cx, cam.fy * y / zr + cam.cy], -1)
    np.testing.assert_allclose(new, expect, atol=1e-6)


def test_forward_translation_streaks_radially_and_keeps_texture_still():
    r = EgoMotionRenderer(128, 128, num_particles=300, seed=1)
    poses = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    r.render(poses)
    seg, spawned = r.last_dust[1], r.last_respawned[1]
    centre = np.array([r.camera.cx, r.camera.cy])
    a = seg[~spawned, 0] - centre
    d = seg[~spawned, 1] - seg[~spawned, 0]
    big = np.linalg.norm(a, axis=1) > 5
    a, d = a[big], d[big]
    cos = (a * d).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(d, axis=1))
    assert len(cos) > 100 and cos.min() > 0.999, "streaks point away from the focus of expansion"
    # Streak length grows with the distance from the focus of expansion: |d| = |a| * dz / (z - dz).
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), np.linalg.norm(a, axis=1) * 1.0 / 14.0, rtol=1e-6)
    # The sphere barely moves under translation, but clearly does under rotation.
    sphere = EgoMotionRenderer(128, 128, num_particles=0)
    still = sphere.render(poses)
    turned = sphere.render(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.05]]))
    d_trans = np.abs(_gray(still[1]) - _gray(still[0])).mean()
    d_rot = np.abs(_gray(turned[1]) - _gray(turned[0])).mean()
    assert d_trans < 0.05 * d_rot, (d_trans, d_rot)


def test_deterministic_for_a_seed_and_respawns():
    poses = poses_from_actions(12.0, np.tile([[0.5, 0.02]], (15, 1)))
    a = EgoMotionRenderer(96, 64, seed=7).render(poses)
    b = EgoMotionRenderer(96, 64, seed=7).render(poses)
    c = EgoMotionRenderer(96, 64, seed=8).render(poses)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    r = EgoMotionRenderer(96, 64, seed=7)
    r.render(poses)
    assert r.last_respawned[1:].any(), "driving 12 m/s for 1.5 s must push dust out of view"
    assert r.last_dust.shape == (16, 500, 2, 2)


def test_from_actions_uses_the_bicycle_model():
    r = EgoMotionRenderer(64, 64, seed=0)
    frames = r.from_actions(10.0, np.zeros((5, 2)))
    assert frames.shape == (6, 64, 64, 3)
    poses = poses_from_actions(10.0, np.zeros((5, 2)))
    np.testing.assert_allclose(poses[:, 0], np.arange(6) * 1.0, atol=1e-9)
    np.testing.assert_allclose(poses[:, 1:], 0.0, atol=1e-12)
    turn = poses_from_actions(10.0, np.tile([[0.0, 0.1]], (5, 1)))
    assert turn[-1, 2] > 0.3  # curvature 0.1 1/m for 5 m turns ~0.5 rad left
    np.testing.assert_array_equal(EgoMotionRenderer(64, 64, seed=0).render(poses), frames)


def test_bad_poses_raise():
    r = EgoMotionRenderer(32, 32)
    with pytest.raises(RenderError):
        r.render(np.array([[0.0, 0.0, np.nan]]))
    with pytest.raises(RenderError):
        r.render(np.zeros((3, 2)))
    with pytest.raises(RenderError):
        r.from_actions(5.0, np.array([[np.inf, 0.0]]))
