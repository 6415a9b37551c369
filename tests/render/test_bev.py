"""Top-down debug view: geometry lands where the ego-frame mapping says."""

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.data.frames import world_to_ego
from mad_sim.data.scenario import ObjectType
from mad_sim.errors import RenderError
from mad_sim.render.bev import render_bev
from mad_sim.render.skeleton import VEHICLE
from mad_sim.world.state import WorldState


def test_bev_places_ego_and_vehicles(womd_path):
    sc = load_scenario(womd_path)
    state = WorldState.from_scenario(sc)
    size, extent = 256, 40.0
    img = render_bev(state, size=size, extent_m=extent)
    assert img.shape == (size, size, 3)
    centre = img[122:135, 122:135].reshape(-1, 3)
    assert ((centre == 80).all(1)).sum() >= 20, "the ego is filled dark grey at the centre"
    t = sc.current_index
    cars = np.flatnonzero(state.sim.valid[:, t] & (sc.object_types == ObjectType.VEHICLE))
    cars = cars[cars != sc.sdc_index]
    ego = world_to_ego(state.sim.xy[cars, t], state.sim.xy[sc.sdc_index, t], state.sim.heading[sc.sdc_index, t])
    s = size / (2 * extent)
    u = (size - 1) / 2 - ego[:, 1] * s
    v = (size - 1) / 2 - ego[:, 0] * s
    inside = (u > 10) & (u < size - 10) & (v > 10) & (v < size - 10)
    assert inside.sum() >= 5
    ring = {tuple(int(x) for x in c) for c in VEHICLE.edge_colors[:4]}
    hits = 0
    for uu, vv in zip(u[inside], v[inside]):
        patch = img[int(vv) - 6:int(vv) + 7, int(uu) - 6:int(uu) + 7].reshape(-1, 3)
        hits += any(tuple(int(x) for x in p) in ring for p in patch)
    assert hits >= 0.9 * inside.sum()


def test_bev_bad_viewpoint(womd_path):
    sc = load_scenario(womd_path)
    state = WorldState.from_scenario(sc)
    bad = int(np.flatnonzero(~state.sim.valid[:, sc.current_index])[0])
    with pytest.raises(RenderError):
        render_bev(state, viewpoint=bad)
    with pytest.raises(RenderError):
        render_bev(state, size=0)
