"""The renderer's fast paths give exactly what the plain forms they replace give (bit for bit).

Each test runs a fast path and the plain computation side by side on the
WOMD clip's real geometry and asserts bit equality: chained map polylines
vs one segment per polyline, column-wise affine / clip / projection vs the
[..., 3] forms, splat passes of any size, and the all-valid shortcut of
``AgentPoses.check``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.errors import RenderError
from mad_sim.render.camera import Camera, apply_affine
from mad_sim.render.draw import AgentPoses, agent_strokes
from mad_sim.render.map_layer import SHIFT, chain_segments, map_geometry
from mad_sim.render.pose import PoseRenderer
from mad_sim.render.splat import splat


@pytest.fixture(scope="module")
def scenario():
    from tests.conftest import data_file

    return load_scenario(data_file("womd/womd_scenario_input.tfrecord"))


def _map_segments_cam(scenario, camera: Camera, t: int):
    """World map segments seen from the SDC at step ``t``, in the camera frame: (a [S, 3], b [S, 3])."""
    r = PoseRenderer(camera=camera)
    m = r.viewpoint_transform(scenario.tracks, scenario.sdc_index, t)
    geo = map_geometry(scenario.roadmap)
    near = geo.near(scenario.tracks.xyz[scenario.sdc_index, t : t + 1, :2], 60.0)
    a = camera.to_camera(apply_affine(near.seg_a, m[:, :3], m[:, 3]))
    b = camera.to_camera(apply_affine(near.seg_b, m[:, :3], m[:, 3]))
    return a, b


def _clipped_fixed(camera: Camera, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ac, bc, keep = camera.clip_segments(a, b)
    uv = np.stack([camera.project_camera(ac[keep]), camera.project_camera(bc[keep])], 1)
    return np.rint(uv * (1 << SHIFT)).astype(np.int32)


@pytest.mark.parametrize("width", [1, 3])
def test_chained_polylines_draw_the_same_pixels_as_lone_segments(scenario, width):
    cam = Camera.default_front(128, 128)
    pts = _clipped_fixed(cam, *_map_segments_cam(scenario, cam, scenario.current_index))
    assert len(pts) > 200
    # Two draw calls' worth of keys: the chain must break where the key changes.
    key = np.where(np.arange(len(pts)) < len(pts) // 2, 5, 7)
    lines, line_key = chain_segments(pts, key)
    assert len(lines) < len(pts) / 2  # consecutive map segments really do join up
    assert sum(len(v) - 1 for v in lines) == len(pts)  # every segment exactly once
    assert np.array_equal(np.unique(line_key), [5, 7])
    for k in (5, 7):
        lone = np.zeros((128, 128, 3), np.uint8)
        chained = np.zeros_like(lone)
        cv2.polylines(lone, pts[key == k], False, (255, 255, 255), width, cv2.LINE_8, SHIFT)
        cv2.polylines(chained, [v for v, lk in zip(lines, line_key) if lk == k], False, (255, 255, 255), width, cv2.LINE_8, SHIFT)
        assert lone.any() and np.array_equal(lone, chained)


def test_chain_segments_joins_only_shared_endpoints():
    p = np.array([[[0, 0], [16, 0]], [[16, 0], [32, 16]], [[40, 0], [48, 0]], [[48, 0], [48, 8]]], np.int32)
    lines, key = chain_segments(p, np.array([1, 1, 1, 2]))
    assert [v.tolist() for v in lines] == [[[0, 0], [16, 0], [32, 16]], [[40, 0], [48, 0]], [[48, 0], [48, 8]]]
    assert key.tolist() == [1, 1, 2]
    lines, key = chain_segments(np.zeros((0, 2, 2), np.int32), np.zeros(0, np.int64))
    assert lines == [] and key.size == 0


def test_column_affine_clip_and_projection_are_bit_identical(scenario):
    dist = Camera.from_waymo(
        np.array([1000.0, 1000.0, 480.0, 320.0, -0.3, 0.1, 1e-3, -2e-3, 0.01]),
        Camera.default_front(960, 640).cam_to_vehicle @ np.diag([1.0, 1.0, 1.0, 1.0]),
        960,
        640,
    )
    for cam in (Camera.default_front(128, 128), dist):
        a, b = _map_segments_cam(scenario, cam, scenario.current_index)
        # apply_affine's column path against the plain broadcast expression it replaces.
        rc, tc = cam.vehicle_to_cam
        pts = np.concatenate([a, b])
        plain = pts[..., 0:1] * rc[:, 0] + pts[..., 1:2] * rc[:, 1] + pts[..., 2:3] * rc[:, 2] + tc
        assert np.array_equal(apply_affine(pts, rc, tc), plain)
        ac, bc, keep = cam.clip_segments(a, b)
        cols_a, cols_b, keep2 = cam.clip_segments_xyz(tuple(a.T.copy()), tuple(b.T.copy()))
        assert np.array_equal(keep, keep2) and 0 < keep.sum() < keep.size  # some cut, some kept
        assert not np.array_equal(ac[keep], a[keep])  # some endpoints really were clipped
        assert np.array_equal(np.stack(cols_a, 1)[keep], ac[keep])
        assert np.array_equal(np.stack(cols_b, 1)[keep], bc[keep])
        u, v = cam.project_xyz(ac[keep, 0], ac[keep, 1], ac[keep, 2])
        assert np.array_equal(np.stack([u, v], 1), cam.project_camera(ac[keep]))


def test_splat_pass_size_does_not_change_pixels(scenario):
    r = PoseRenderer(128, 128)
    r.render_scenario(scenario, scenario.sdc_index, 0, 20)
    geo = r.last_geometry
    st = agent_strokes(geo, np.arange(len(geo.depth)), 1, 1)
    assert len(st) > 2000
    frames = []
    for max_samples in (1, 997, 1 << 16, 1 << 30):
        out = np.zeros((20, 128, 128, 3), np.uint8)
        splat(out, st, max_samples=max_samples)
        frames.append(out)
    assert frames[0].any()
    for f in frames[1:]:
        assert np.array_equal(f, frames[0])


def test_agent_check_shortcut_keeps_exact_errors():
    n = 50

    def agents(**change) -> AgentPoses:
        fields = dict(xyz=np.zeros((n, 3)), heading=np.zeros(n), size=np.ones((n, 3)), types=np.ones(n, int))
        return AgentPoses(**{**fields, **change})

    # Finite values whose total overflows must not be reported as non-finite.
    with np.errstate(over="ignore"):
        agents(xyz=np.full((n, 3), 1e307)).check()
    bad = agents()
    bad.xyz[17, 1] = np.nan
    with pytest.raises(RenderError, match="agent 17 .*non-finite"):
        bad.check()
    bad = agents()
    bad.size[9, 2] = 0.0
    with pytest.raises(RenderError, match="agent 9 .*box size"):
        bad.check()


def test_batched_viewpoint_transforms_match_per_step(scenario):
    r = PoseRenderer(128, 128)
    tr = scenario.tracks
    checked = 0
    for i in range(0, tr.valid.shape[0], 8):
        steps = np.flatnonzero(tr.valid[i])
        if steps.size:
            one = np.stack([r.viewpoint_transform(tr, i, int(t)) for t in steps])
            assert np.array_equal(r.viewpoint_transforms(tr, i, steps), one)
            checked += steps.size
    assert checked > 500
    gap = next(i for i in range(tr.valid.shape[0]) if tr.valid[i].any() and not tr.valid[i].all())
    bad = np.flatnonzero(~tr.valid[gap])[0]
    with pytest.raises(RenderError, match=f"viewpoint track {gap} is not valid at step {bad}"):
        r.viewpoint_transforms(tr, gap, np.arange(tr.valid.shape[1]), "womd")
    with pytest.raises(RenderError, match="outside"):
        r.viewpoint_transforms(tr, tr.valid.shape[0], np.arange(3))
