"""Hand-made cases for each WOSAC feature and the histogram likelihood."""

import numpy as np
import pytest
from mad_sim.eval.sim_agents.config import WOSAC_2025, FeatureConfig
from mad_sim.eval.sim_agents.interaction import distance_to_nearest_object, polygon_signed_distance, time_to_collision
from mad_sim.eval.sim_agents.kinematics import kinematic_features, kinematic_validity
from mad_sim.eval.sim_agents.likelihood import histogram_log_likelihood, timeseries_log_likelihood
from mad_sim.eval.sim_agents.map_features import distance_to_road_edge, signed_distance_to_edges

from mad_sim.data.scenario import MapKind, RoadMap


def test_weights_sum_to_one():
    assert sum(c.weight for c in WOSAC_2025.values()) == pytest.approx(1.0)


def test_speed_profile():
    t = np.arange(20) * 0.1
    x = 3.0 * t + 0.5 * 2.0 * t**2  # v = 3 + 2 t, a = 2
    xyz = np.stack([x, np.zeros_like(x), np.zeros_like(x)], -1)
    heading = 0.3 * t  # 0.3 rad/s, no angular acceleration
    v, a, w, dw = kinematic_features(xyz, heading, 0.1)
    assert np.isnan(v[0]) and np.isnan(v[-1]) and np.isnan(a[:2]).all() and np.isnan(a[-2:]).all()
    np.testing.assert_allclose(v[1:-1], 3.0 + 2.0 * t[1:-1], atol=1e-9)
    np.testing.assert_allclose(a[2:-2], 2.0, atol=1e-6)
    np.testing.assert_allclose(w[1:-1], 0.3, atol=1e-9)
    np.testing.assert_allclose(dw[2:-2], 0.0, atol=1e-6)
    sv, av = kinematic_validity(np.ones(20, bool))
    assert not sv[0] and not sv[-1] and sv[1:-1].all() and av[2:-2].all() and not av[1]


def test_heading_wraps_across_pi():
    h = np.array([np.pi - 0.02, np.pi - 0.01, -np.pi, -np.pi + 0.01])
    w = kinematic_features(np.zeros((4, 3)), h, 0.1)[2]
    np.testing.assert_allclose(w[1:-1], 0.1, atol=1e-9)


def _boxes(*centres):
    xy = np.array(centres, float)[:, None, :]  # [N, 1, 2]
    n = len(centres)
    return xy, np.zeros((n, 1)), np.full((n, 1), 4.0), np.full((n, 1), 2.0), np.ones((n, 1), bool)


@pytest.mark.parametrize("other, expect", [((10.0, 0.0), 6.0), ((3.0, 0.0), -1.0), ((0.0, 5.0), 3.0)])
def test_distance_between_boxes(other, expect):
    xy, h, length, width, valid = _boxes((0.0, 0.0), other)
    d = distance_to_nearest_object(xy, h, length, width, valid, np.array([0]))
    assert d[0, 0] == pytest.approx(expect, abs=1e-9)


def test_rounded_corners_lengthen_diagonal_distance():
    xy, h, length, width, valid = _boxes((0.0, 0.0), (10.0, 10.0))
    d = distance_to_nearest_object(xy, h, length, width, valid, np.array([0]))[0, 0]
    # cores 2.6 x 0.6 (shrunk by 0.7 per side): corner to corner, minus both shrinks
    assert d == pytest.approx(np.hypot(10 - 2.6, 10 - 0.6) - 1.4, abs=1e-9)
    sharp = polygon_signed_distance(
        np.array([[2, 1], [-2, 1], [-2, -1], [2, -1.0]]), np.array([[12, 11], [8, 11], [8, 9], [12, 9.0]])
    )
    assert sharp == pytest.approx(10.0) and d > sharp


def test_invalid_and_self_are_ignored():
    xy, h, length, width, valid = _boxes((0.0, 0.0), (3.0, 0.0), (20.0, 0.0))
    valid[1] = False
    d = distance_to_nearest_object(xy, h, length, width, valid, np.array([0, 2]))
    assert d[0, 0] == pytest.approx(16.0) and d[1, 0] == pytest.approx(16.0)


def test_time_to_collision_follower():
    t = np.arange(5) * 0.1
    xy = np.stack([np.stack([10 * t, 0 * t], -1), np.stack([20 + 5 * t, 0 * t], -1)])  # [2, T, 2]
    h, length, width, valid = np.zeros((2, 5)), np.full((2, 5), 4.0), np.full((2, 5), 2.0), np.ones((2, 5), bool)
    ttc = time_to_collision(xy, h, length, width, valid, np.array([0, 1]))
    # gap front bumper to rear bumper 16 m at t=0, closing at 5 m/s; the leader follows nobody
    np.testing.assert_allclose(ttc[0, 1:-1], (16 - 5 * t[1:-1]) / 5.0, atol=1e-9)
    assert ttc[0, 0] == 5.0 and ttc[0, -1] == 5.0  # no speed at the ends
    np.testing.assert_allclose(ttc[1], 5.0)
    h[1] = np.radians(80)  # crossing, not following
    assert (time_to_collision(xy, h, length, width, valid, np.array([0]))[0] == 5.0).all()


def _edge_map():
    # one road edge along +x: the road is on its left (y > 0)
    pts = np.array([[-100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [100.0, 0.0, 0.0]])
    return RoadMap(
        ids=np.array([7]),
        kinds=np.array([int(MapKind.ROAD_EDGE)], np.int8),
        subtypes=np.zeros(1, np.int8),
        offsets=np.array([0, 3]),
        points=pts,
    )


def test_box_crossing_road_edge():
    rm = _edge_map()
    ys = np.array([5.0, 0.5, -5.0])
    xyz = np.stack([np.zeros(3), ys, np.zeros(3)], -1)
    size = np.tile([4.0, 2.0, 1.5], (3, 1))
    d = distance_to_road_edge(xyz, np.zeros(3), size, np.ones(3, bool), rm)
    np.testing.assert_allclose(d, [-4.0, 0.5, 6.0], atol=1e-9)
    assert list(d > 0) == [False, True, True]
    assert distance_to_road_edge(xyz[:1], np.zeros(1), size[:1], np.zeros(1, bool), rm)[0] == -1e10


def test_edge_sign_beyond_segment_end():
    rm = _edge_map()
    # past the polyline's end on the road side and on the other side
    d = signed_distance_to_edges(np.array([[103.0, 4.0, 0.0], [103.0, -4.0, 0.0]]), rm)
    np.testing.assert_allclose(d, [-5.0, 5.0], atol=1e-9)


def test_histogram_likelihood_by_hand():
    cfg = FeatureConfig("histogram", 1.0, 0.0, 10.0, 5, 0.1, True)
    sim = np.array([[1.0, 1.5, 1.9, 7.0]])  # bins 0, 0, 0, 3
    ll = histogram_log_likelihood(cfg, np.array([[1.2, 7.5, 9.9, 50.0]]), sim)
    total = 4 + 5 * 0.1
    np.testing.assert_allclose(np.exp(ll[0]), [3.1 / total, 1.1 / total, 0.1 / total, 0.1 / total])
    bern = histogram_log_likelihood(FeatureConfig("bernoulli", 1.0), np.array([[True]]), np.array([[True, False, False]]))
    assert np.exp(bern[0, 0]) == pytest.approx((1 + 0.001) / (3 + 0.002))


def test_independent_timesteps_pool_all_steps():
    cfg = FeatureConfig("histogram", 1.0, 0.0, 10.0, 10, 0.1, True)
    sim = np.zeros((2, 1, 3))
    sim[:, 0, 2] = 9.5  # the last step sits in the top bin in every rollout
    ll = timeseries_log_likelihood(cfg, np.array([[0.5, 0.5, 0.5]]), sim)
    np.testing.assert_allclose(np.exp(ll), (4 + 0.1) / (6 + 1.0))
    per_step = timeseries_log_likelihood(
        FeatureConfig("histogram", 1.0, 0.0, 10.0, 10, 0.1, False), np.array([[0.5, 0.5, 0.5]]), sim
    )
    np.testing.assert_allclose(np.exp(per_step[0]), [2.1 / 3.0, 2.1 / 3.0, 0.1 / 3.0])
