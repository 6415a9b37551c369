"""Ego odometry from rendered pose videos of the real WOMD logs (mad_sim.model.odometry)."""

from __future__ import annotations

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.errors import ShapeError
from mad_sim.model.odometry import compose, estimate_ego_motion, inverse, trajectory_in_first_frame
from mad_sim.render.pose import PoseRenderer


def _run(path, t0: int, frames: int, width: int = 128):
    sc = load_scenario(path)
    r = PoseRenderer(width, width)
    e = sc.sdc_index
    video = r.render_scenario(sc, e, t0, t0 + frames)
    est = estimate_ego_motion(video, r.camera)
    gt = trajectory_in_first_frame(sc.tracks.xy[e, t0:t0 + frames], sc.tracks.heading[e, t0:t0 + frames])
    return est, gt


@pytest.mark.parametrize("t0, ade_max", [(10, 0.5), (40, 1.2)])
def test_moving_sdc_ade(womd_path, t0, ade_max):
    """The SDC drives ~9 m in 33 frames; the recovered trajectory stays close to the log."""
    est, gt = _run(womd_path, t0, 33)
    err = np.hypot(*(est[:, :2] - gt[:, :2]).T)
    travelled = np.hypot(*gt[-1, :2])
    assert travelled > 7.0
    assert err.mean() < ade_max
    assert est[-1, 0] > 0.6 * gt[-1, 0]
    # Zero motion would be off by the whole distance: the estimate must be far better than standing still.
    assert err.mean() < 0.25 * np.hypot(*gt[:, :2].T).mean()


def test_standing_ego_stays_put(womd_still_path):
    est, gt = _run(womd_still_path, 10, 17)
    assert np.abs(gt[:, :2]).max() < 0.2
    assert np.hypot(*est[:, :2].T).max() < 0.5
    assert np.abs(est[:, 2]).max() < np.radians(2.0)


def test_se2_round_trip():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(10, 3))
    b = rng.normal(size=(10, 3))
    np.testing.assert_allclose(compose(inverse(a), compose(a, b)), b, atol=1e-9)
    np.testing.assert_allclose(compose(a, inverse(a)), np.zeros((10, 3)), atol=1e-9)


def test_bad_video_shape():
    cam = PoseRenderer(64, 64).camera
    with pytest.raises(ShapeError, match="frames"):
        estimate_ego_motion(np.zeros((3, 64, 64), np.uint8), cam)
    with pytest.raises(ShapeError, match="camera"):
        estimate_ego_motion(np.zeros((3, 32, 32, 3), np.uint8), cam)
    assert estimate_ego_motion(np.zeros((1, 64, 64, 3), np.uint8), cam).shape == (1, 3)
