"""The env's cached map structures and one-point road-edge probe equal the generic computations exactly."""

import numpy as np
import pytest
from mad_sim.envs.local_map import LocalMap, MapIndex, crop_roadmap
from mad_sim.envs.offroad import RoadEdgeProbe

from mad_sim.data import load_scenario
from mad_sim.data.procedural import generate_scenario
from mad_sim.data.scenario import MapKind
from mad_sim.world.road_distance import map_segments, road_edge_distance


def _walk(rng: np.random.Generator, start: np.ndarray, steps: int, step_m: float) -> np.ndarray:
    """A wandering path [steps, 2]: heading drifts, 0.1-``step_m`` m per step."""
    h = np.cumsum(rng.normal(0.0, 0.15, steps)) + rng.uniform(-np.pi, np.pi)
    d = rng.uniform(0.1, step_m, steps)
    return start + np.cumsum(np.stack([d * np.cos(h), d * np.sin(h)], -1), 0)


@pytest.mark.parametrize("which", ["womd", "scenarionet", "procedural"])
def test_index_crop_and_probe_equal_generic(which, womd_path, scenarionet_path):
    if which == "procedural":
        sc = generate_scenario(np.random.default_rng(3), kind="intersection")
    else:
        sc = load_scenario(womd_path if which == "womd" else scenarionet_path)
    rm = sc.roadmap
    index = MapIndex.build(rm, 2.0)
    start = sc.tracks.xy[sc.sdc_index, sc.current_index]
    local = LocalMap(rm, index.points, radius=55.0, refresh=10.0, index=index)
    probe = RoadEdgeProbe(local)
    path = _walk(np.random.default_rng(0), start, 400, 0.8)
    got, want = [], []
    crops_checked = 0
    for p in path:
        gen = local.generation
        local.update(p)
        if local.generation != gen and crops_checked < 4:  # a fresh crop equals the generic one
            crops_checked += 1
            ref = crop_roadmap(rm, local.center, 55.0)
            np.testing.assert_array_equal(local.roadmap.ids, ref.ids)
            np.testing.assert_array_equal(local.roadmap.points, ref.points)
            np.testing.assert_array_equal(local.roadmap.offsets, ref.offsets)
            a, b = local.segments, map_segments(ref)
            for f in ("edge_a", "edge_b", "lane_a", "lane_b"):
                np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        got.append(probe.signed(p))
        want.append(float(road_edge_distance(p[None], local.roadmap)[0]))
    np.testing.assert_array_equal(got, want)  # bit-identical, not approximately equal
    assert crops_checked >= 2
    assert probe.full_queries < len(path) / 3  # the window answers most queries
    # the walk goes both on and off the road on the real logs
    if which != "procedural":
        assert min(want) < 0 < max(want)


def test_scalar_bicycle_step_is_bit_identical_to_the_array_version():
    from mad_sim.envs.actions import bicycle_step_scalar

    from mad_sim.world.dynamics import bicycle_step

    rng = np.random.default_rng(1)
    n = 2000
    xy = rng.uniform(-5000, 5000, (n, 2))
    h, v = rng.uniform(-np.pi, np.pi, n), rng.uniform(-3, 30, n)
    a, k = rng.uniform(-6, 6, n), rng.uniform(-0.3, 0.3, n)
    ref_xy, ref_h, ref_v = bicycle_step(xy, h, v, a, k)
    got = [bicycle_step_scalar(*xy[i], h[i], v[i], a[i], k[i]) for i in range(n)]
    np.testing.assert_array_equal(np.array([g[0] for g in got]), ref_xy)
    np.testing.assert_array_equal(np.array([g[1] for g in got]), ref_h)
    np.testing.assert_array_equal(np.array([g[2] for g in got]), ref_v)


def test_observation_features_match_a_direct_computation(womd_path):
    """Agent / road-graph rows against the ego-frame transform of mad_sim.data.frames, to float32 precision."""
    from mad_sim.envs.observation import RoadgraphPoints, agent_features, roadgraph_features

    from mad_sim.data.frames import world_to_ego

    sc = load_scenario(womd_path)
    t, ego = sc.current_index, sc.sdc_index
    tr = sc.tracks
    xy, yaw = tr.xy[ego, t], float(tr.heading[ego, t])
    feats, mask = agent_features(
        tr.xy[:, t], tr.heading[:, t], tr.velocity[:, t], tr.size[:, t], sc.object_types, tr.valid[:, t], ego, xy, yaw, 16, 60.0
    )
    assert mask.sum() == 16
    d = np.hypot(*(tr.xy[:, t] - xy).T)
    d[~tr.valid[:, t]] = np.inf
    d[ego] = np.inf
    near = np.argsort(d, kind="stable")[:16]
    np.testing.assert_allclose(feats[:, :2], world_to_ego(tr.xy[near, t], xy, yaw), atol=1e-4)
    np.testing.assert_allclose(feats[:, 8], sc.object_types[near] == 1)
    pts = RoadgraphPoints.from_roadmap(sc.roadmap, 2.0)
    rows, rmask = roadgraph_features(pts, xy, yaw, 128, 50.0)
    dp = np.hypot(*(pts.xy - xy).T)
    order = np.argsort(dp, kind="stable")[:128]
    np.testing.assert_allclose(rows[:, :2], world_to_ego(pts.xy[order], xy, yaw), atol=1e-4)
    np.testing.assert_array_equal(rows[:, 4:].argmax(1), np.searchsorted([int(k) for k in MapKind], pts.kinds[order]))
    assert rmask.sum() == 128
