"""Top-down debug view: geometry lands where the ego-frame mapping says."""

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.data.frames import world_to_ego
from mad_sim.data.scenario import ObjectType
from mad_sim.errors import RenderError
from mad_sim.render.bev import BEV_COLORS, EGO_RGB, SIGNAL_RGB, render_bev
from mad_sim.render.skeleton import VEHICLE
from mad_sim.world.state import WorldState


def test_bev_places_ego_and_vehicles(womd_path):
    sc = load_scenario(womd_path)
    state = WorldState.from_scenario(sc)
    size, extent = 256, 40.0
    img = render_bev(state, size=size, extent_m=extent)
    assert img.shape == (size, size, 3)
    centre = img[122:135, 122:135].reshape(-1, 3)
    assert ((centre == EGO_RGB).all(1)).sum() >= 20, "the ego is filled in its own colour at the centre"
    assert ((centre == 255).all(1)).sum() >= 5, "with a white heading arrow"
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
        patch = img[int(vv) - 6 : int(vv) + 7, int(uu) - 6 : int(uu) + 7].reshape(-1, 3)
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


def test_bev_signals_route_and_scale_bar(womd_still_path):
    """The still-ego log has 12 signalled lanes: bars in their state colours at the stop points."""
    sc = load_scenario(womd_still_path)
    state = WorldState.from_scenario(sc)
    size, extent = 256, 30.0
    img = render_bev(state, size=size, extent_m=extent)
    t = sc.current_index
    tl = sc.traffic_lights
    s = size / (2 * extent)
    seen = 0
    for slot in np.flatnonzero(tl.valid[t]):
        p = world_to_ego(tl.stop_points[t, slot, None, :2], state.sim.xy[sc.sdc_index, t], state.sim.heading[sc.sdc_index, t])[0]
        u, v = (size - 1) / 2 - p[1] * s, (size - 1) / 2 - p[0] * s
        if not (4 < u < size - 4 and 4 < v < size - 4):
            continue
        patch = img[int(v) - 3 : int(v) + 4, int(u) - 3 : int(u) + 4].reshape(-1, 3)
        want = SIGNAL_RGB[int(tl.states[t, slot])]
        seen += any(tuple(int(x) for x in q) == want for q in patch)
    assert seen >= 3
    assert (img.reshape(-1, 3) == BEV_COLORS["route"]).all(1).sum() == 0  # the logged ego never moves: no route
    corner = img[int(0.9 * size) :, : size // 2].reshape(-1, 3)
    assert (corner == 255).all(1).sum() > 30, "the scale bar and its label, bottom left"


def test_bev_draws_the_route(womd_path):
    sc = load_scenario(womd_path)
    img = render_bev(WorldState.from_scenario(sc), size=256)
    assert (img.reshape(-1, 3) == BEV_COLORS["route"]).all(1).sum() > 50
