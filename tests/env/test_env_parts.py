"""Env building blocks: action adapters, road-graph resampling, map crop (route and reward: test_env_reward.py)."""

import numpy as np
import pytest
from mad_sim.envs.actions import BicycleAdapter, DeltaAdapter, TrajectoryAdapter
from mad_sim.envs.config import EnvConfig
from mad_sim.envs.local_map import crop_roadmap
from mad_sim.envs.observation import RoadgraphPoints, roadgraph_features

from mad_sim.data import load_scenario
from mad_sim.data.scenario import MapKind
from mad_sim.world.road_distance import road_edge_distance


def test_bicycle_scaling():
    a = BicycleAdapter(EnvConfig())
    out = a.step(np.zeros(2), 0.0, 10.0, np.array([0.5, 0.0]))
    assert out.accel == 3.0 and out.speed == pytest.approx(10.3)
    assert out.xy == pytest.approx([1.03, 0.0])
    out = a.step(np.zeros(2), 0.0, 10.0, np.array([0.0, 1.0]))
    assert out.curvature == pytest.approx(0.3) and out.heading == pytest.approx(0.3 * 1.0)


def test_trajectory_tracker_follows_a_circle():
    cfg = EnvConfig(action="trajectory")
    ad = TrajectoryAdapter(cfg)
    r, v = 20.0, 8.0
    xy, yaw, speed = np.array([0.0, -r]), 0.0, v
    for _ in range(60):  # 6 s around a left circle centred on the origin
        theta0 = np.arctan2(xy[1], xy[0])
        thetas = theta0 + v * 0.1 * np.arange(1, 11) / r
        wp_world = r * np.stack([np.cos(thetas), np.sin(thetas)], -1)
        c, s = np.cos(yaw), np.sin(yaw)
        d = wp_world - xy
        wp = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], -1)
        out = ad.step(xy, yaw, speed, wp)
        xy, yaw, speed = out.xy, out.heading, out.speed
    assert abs(np.hypot(*xy) - r) < 0.5 and abs(speed - v) < 0.3


def test_delta_adapter():
    ad = DeltaAdapter(EnvConfig(action="delta"))
    out = ad.step(np.array([1.0, 1.0]), np.pi / 2, 0.0, np.array([0.25, 0.0, 0.5]))
    assert out.xy == pytest.approx([1.0, 2.0])  # 1 m forward along +y
    assert out.heading == pytest.approx(np.pi / 2 + 0.15)
    assert out.speed == pytest.approx(10.0)


def test_roadgraph_resampling_and_crop(womd_path):
    sc = load_scenario(womd_path)
    rm = sc.roadmap
    pts = RoadgraphPoints.from_roadmap(rm, spacing=2.0)
    assert 0 < len(pts.xy) < len(rm.points)
    norms = np.linalg.norm(pts.direction, axis=-1)
    assert np.all((np.abs(norms - 1) < 1e-9) | (norms == 0))
    # every kept lane point lies on the original polyline set
    assert set(np.unique(pts.kinds)) <= {int(k) for k in MapKind}
    centre = sc.tracks.xy[sc.sdc_index, sc.current_index]
    crop = crop_roadmap(rm, centre, 55.0)
    assert 0 < crop.num_features < rm.num_features
    probe = centre + np.random.default_rng(0).uniform(-40, 40, (64, 2))
    probe = probe[np.linalg.norm(probe - centre, axis=-1) < 35]
    assert road_edge_distance(probe, crop) == pytest.approx(road_edge_distance(probe, rm))
    feats, mask = roadgraph_features(pts, centre, 0.0, 64, 50.0)
    d = np.hypot(feats[:, 0], feats[:, 1])
    assert mask.sum() == 64 and np.all(np.diff(d) >= 0) and d.max() <= 50.0
