"""Metric functions against hand-computed cases."""

import numpy as np
import pytest
from mad_sim.eval import metrics as M

from mad_sim.errors import ShapeError


def _line(v, t=80, y=0.0):
    """[T, 2] straight line along +x at v m/s sampled at 0.1 s from t0 + 0.1."""
    s = v * 0.1 * np.arange(1, t + 1)
    return np.stack([s, np.full(t, y)], -1)


def test_min_ade_fde_hand_case():
    gt = np.array([[[0, 0], [1, 0], [2, 0]]], float)
    pred = np.array(
        [
            [
                [[0, 1], [1, 1], [2, 1]],  # 1 m off every step: ADE 1, FDE 1
                [[0, 0], [1, 0], [2, 3]],
            ]
        ],
        float,
    )  # ADE 1, FDE 3
    valid = np.ones((1, 3), bool)
    ade, best = M.min_ade(pred, gt, valid)
    assert ade[0] == pytest.approx(1.0)
    assert M.min_fde(pred, gt, valid)[0] == pytest.approx(1.0)
    # mask the last step: mode 1 becomes exact, FDE at step 1
    valid[0, 2] = False
    ade, best = M.min_ade(pred, gt, valid)
    assert ade[0] == pytest.approx(0.0) and best[0] == 1
    assert M.min_fde(pred, gt, valid)[0] == pytest.approx(0.0)


def test_no_valid_step_is_nan():
    pred = np.zeros((1, 2, 3, 2))
    gt = np.zeros((1, 3, 2))
    valid = np.zeros((1, 3), bool)
    assert np.isnan(M.min_ade(pred, gt, valid)[0][0])
    assert np.isnan(M.min_fde(pred, gt, valid)[0])


def test_apd_hand_case():
    # three constant offsets 0, 3, 4 in y: pair distances 3, 4, 1 -> mean 8/3
    base = _line(5.0, t=4)
    pred = np.stack([base, base + [0, 3], base + [0, 4]])[None]
    assert M.apd(pred)[0] == pytest.approx(8 / 3)
    # flattened: per pair sqrt(T) * d with T = 4 -> 2 * 8/3
    assert M.apd_flat(pred)[0] == pytest.approx(2 * 8 / 3)
    assert np.isnan(M.apd(pred[:, :1])[0])


def test_speed_scale():
    assert M.speed_scale(np.array([0.0, 1.4, 6.2, 11.0, 30.0])) == pytest.approx([0.5, 0.5, 0.75, 1.0, 1.0])


def test_waymo_miss_steps():
    assert M.waymo_miss_steps() == ((29, 1.0, 2.0), (49, 1.8, 3.6), (79, 3.0, 6.0))


def test_miss_rate_thresholds_rotate_with_heading():
    # ground truth heading north (+y); a 1.5 m error along x is LATERAL
    gt = np.stack([np.zeros(80), 0.1 * 12 * np.arange(1, 81)], -1)[None]
    heading = np.full((1, 80), np.pi / 2)
    valid = np.ones((1, 80), bool)
    fast = np.array([12.0])  # scale 1
    lateral = (gt + [1.5, 0.0])[:, None]
    miss = M.miss_at_steps(lateral, gt, valid, heading, fast, M.waymo_miss_steps())
    assert miss[0].tolist() == [1.0, 0.0, 0.0]  # > 1.0 at 3 s, <= 1.8 and 3.0 after
    longitudinal = (gt + [0.0, 1.5])[:, None]
    miss = M.miss_at_steps(longitudinal, gt, valid, heading, fast, M.waymo_miss_steps())
    assert miss[0].tolist() == [0.0, 0.0, 0.0]  # 1.5 <= 2.0 longitudinal
    slow = np.array([0.5])  # scale 0.5: lon threshold 1.0 m at 3 s, 1.8 m at 5 s
    miss = M.miss_at_steps(longitudinal, gt, valid, heading, slow, M.waymo_miss_steps())
    assert miss[0].tolist() == [1.0, 0.0, 0.0]
    valid[0, 49] = False
    miss = M.miss_at_steps(longitudinal, gt, valid, heading, slow, M.waymo_miss_steps())
    assert np.isnan(miss[0, 1])
    # a second, perfect mode turns every miss into a hit
    two = np.concatenate([lateral, gt[:, None]], 1)
    assert M.miss_at_steps(two, gt, np.ones((1, 80), bool), heading, fast, M.waymo_miss_steps())[0].tolist() == [0, 0, 0]


def test_trajectory_metrics_rigid_invariance():
    rng = np.random.default_rng(0)
    gt = _line(8.0)[None] + rng.normal(0, 0.1, (1, 80, 2))
    pred = gt[:, None] + rng.normal(0, 1.0, (1, 6, 80, 2))
    valid = np.ones((1, 80), bool)
    heading = np.zeros((1, 80))
    a = M.trajectory_metrics(pred, gt, valid, heading, np.array([8.0]))
    th = 0.7
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    b = M.trajectory_metrics(pred @ R.T + 5, gt @ R.T + 5, valid, heading + th, np.array([8.0]))
    for name in ("min_ade", "min_fde", "apd", "apd_flat"):
        assert getattr(a, name) == pytest.approx(getattr(b, name))
    assert np.array_equal(a.miss, b.miss)


def test_shape_errors():
    with pytest.raises(ShapeError):
        M.min_ade(np.zeros((2, 3, 2)), np.zeros((2, 2)), np.ones(2, bool))
    with pytest.raises(ShapeError):
        M.min_ade(np.zeros((1, 2, 3, 2)), np.full((1, 3, 2), np.nan), np.ones((1, 3), bool))
