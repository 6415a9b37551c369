"""CameraMount: the pose camera's height, pitch and field of view."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mad_sim.errors import RenderError
from mad_sim.render.camera_mount import DASHCAM, CameraMount


def test_ground_row_follows_height_and_pitch():
    """Ground at range r shows at row cy + fy tan(atan(h / r) - pitch) (the module's formula)."""
    mount = CameraMount(hfov_deg=90.0, mount_height=12.0, pitch_deg=35.0)
    cam = mount.camera(128, 128)
    for r in (5.0, 15.0, 30.0, 50.0):
        (uv, ok) = cam.project(np.array([[r, 0.0, 0.0]]))
        want = cam.cy + cam.fy * math.tan(math.atan(12.0 / r) - math.radians(35.0))
        assert ok[0] and abs(uv[0, 1] - want) < 1e-6 and abs(uv[0, 0] - cam.cx) < 1e-6


def test_elevated_mount_spreads_the_first_50_m_over_the_frame():
    rows = {}
    for name, mount in (("dashcam", DASHCAM), ("elevated", CameraMount(mount_height=12.0, pitch_deg=35.0))):
        cam = mount.camera(128, 128)
        uv, _ = cam.project(np.array([[5.0, 0.0, 0.0], [50.0, 0.0, 0.0]]))
        rows[name] = uv[0, 1] - uv[1, 1]
    assert rows["dashcam"] < 20 and rows["elevated"] > 60  # 18.4 and 65.8 rows of 128


@pytest.mark.parametrize("kwargs", [dict(hfov_deg=0.0), dict(mount_height=0.0), dict(pitch_deg=90.0), dict(pitch_deg=-5.0)])
def test_bad_mount_is_refused(kwargs):
    with pytest.raises(RenderError, match="camera mount"):
        CameraMount(**kwargs)


def test_clip_renderer_uses_the_spec_mount():
    from mad_sim.data.procedural import generate_scenario
    from mad_sim.model.training.clips import ClipRef, ClipRenderer, ClipSpec

    scenario = generate_scenario(np.random.default_rng(3))
    ref = ClipRef(int(scenario.sdc_index), 0, True)
    low = ClipRenderer(ClipSpec()).render(scenario, ref, 0)[0]
    high = ClipRenderer(ClipSpec(camera_height=12.0, camera_pitch_deg=35.0)).render(scenario, ref, 0)[0]
    lit_rows = lambda video: np.flatnonzero(video.max(axis=(0, 2, 3)) > 0)  # noqa: E731
    assert np.ptp(lit_rows(high)) > np.ptp(lit_rows(low)) or lit_rows(high).min() < lit_rows(low).min()
    assert not np.array_equal(low, high)
