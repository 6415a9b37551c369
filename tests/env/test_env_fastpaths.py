"""The env's cached map structures and one-point road-edge probe equal the generic computations exactly."""

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.data.procedural import generate_scenario
from mad_sim.envs.local_map import LocalMap, MapIndex, crop_roadmap
from mad_sim.envs.offroad import RoadEdgeProbe
from mad_sim.world.geometry import map_segments, road_edge_distance


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
    for k, p in enumerate(path):
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
