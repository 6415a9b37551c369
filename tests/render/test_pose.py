"""Pose renderer: pixels where projected geometry must be, painter's order, determinism, bad input."""

import dataclasses

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.data.scenario import ObjectType, RoadMap
from mad_sim.errors import RenderError
from mad_sim.render.camera import Camera
from mad_sim.render.draw import AgentPoses, agent_id_mask, project_agents, render_agent
from mad_sim.render.map_layer import LANE, map_geometry
from mad_sim.render.pose import PoseRenderer, world_to_vehicle
from mad_sim.render.skeleton import OPENPOSE_COLORS, VEHICLE, pedestrian_keypoints
from mad_sim.world.state import WorldState


@pytest.fixture(scope="module")
def scenario():
    from tests.conftest import data_file

    return load_scenario(data_file("womd/womd_scenario_input.tfrecord"))


def _sdc_view(scenario, t):
    tr = scenario.tracks
    i = scenario.sdc_index
    return world_to_vehicle(tr.xyz[i, t], float(tr.heading[i, t]), float(tr.size[i, t, 2]))


def test_sdc_frame_shows_lanes_where_they_project(scenario):
    t = scenario.current_index
    r = PoseRenderer(128, 128)
    frame = r.render_scenario(scenario, scenario.sdc_index, t, t + 1)[0]
    m = _sdc_view(scenario, t)
    geo = map_geometry(scenario.roadmap)
    # Lane vertices 5-30 m ahead (ground distance), projected with the same camera.
    lanes = np.concatenate([geo.seg_a[geo.seg_group == LANE], geo.seg_b[geo.seg_group == LANE]])
    veh = lanes @ m[:, :3].T + m[:, 3]
    near = (veh[:, 0] > 5) & (np.hypot(veh[:, 0], veh[:, 1]) < 30)
    uv, _ = r.camera.project(veh[near])
    uv = uv[r.camera.in_image(uv)]
    assert len(uv) >= 10, "the SDC should see lane vertices ahead"
    px = frame[np.rint(uv[:, 1]).astype(int), np.rint(uv[:, 0]).astype(int)]
    # Lane pixels are white (agents may cover a few).
    white = (px == 255).all(1)
    assert white.mean() > 0.9, white.mean()
    # Most of the frame is black background.
    assert (frame.max(-1) == 0).mean() > 0.8


def test_sdc_frame_shows_vehicles_with_skeleton_colours(scenario):
    t = scenario.current_index
    r = PoseRenderer(128, 128)
    frame = r.render_scenario(scenario, scenario.sdc_index, t, t + 1)[0]
    geo = r.last_geometry
    vis = np.flatnonzero(geo.visible)
    assert len(vis) >= 2
    # Rebuild the agents exactly as the renderer did and compare the id mask with the frame.
    tr = scenario.tracks
    m = _sdc_view(scenario, t)
    idx = np.flatnonzero(tr.valid[:, t] & (np.arange(scenario.num_tracks) != scenario.sdc_index))
    yaw = tr.heading[scenario.sdc_index, t]
    agents = AgentPoses(
        tr.xyz[idx, t] @ m[:, :3].T + m[:, 3],
        tr.heading[idx, t] - yaw,
        tr.size[idx, t],
        scenario.object_types[idx],
        ids=idx,
        speed=np.hypot(tr.velocity[idx, t, 0], tr.velocity[idx, t, 1]),
    )
    mask = agent_id_mask(r.camera, agents)
    owned = mask >= 0
    assert owned.sum() > 20
    # Every agent pixel of the mask is coloured in the frame with a skeleton colour.
    palette = {tuple(c) for c in np.concatenate([VEHICLE.edge_colors, VEHICLE.dot_colors, OPENPOSE_COLORS])}
    colours = {tuple(c) for c in frame[owned]}
    assert colours <= palette | {(255, 255, 255)}
    assert len(colours & {tuple(c) for c in VEHICLE.edge_colors}) >= 5
    # The box centre of each visible vehicle projects inside the screen box of its own pixels.
    for i in set(np.unique(mask[owned])):
        ys, xs = np.nonzero(mask == i)
        k = int(np.flatnonzero(idx == i)[0])
        uv, _ = r.camera.project(agents.xyz[k])
        if r.camera.in_image(uv):
            assert xs.min() - 1 <= uv[0] <= xs.max() + 1 and ys.min() - 1 <= uv[1] <= ys.max() + 1


def test_render_agent_extent_matches_projected_keypoints():
    cam = Camera.default_front(256, 256)
    img = render_agent(cam, [12.0, 1.0, 0.8], 0.4, [4.6, 1.9, 1.6], ObjectType.VEHICLE)
    ys, xs = np.nonzero(img.max(-1))
    geo = project_agents(cam, AgentPoses([[12.0, 1.0, 0.8]], [0.4], [[4.6, 1.9, 1.6]], [ObjectType.VEHICLE]))
    u0, v0, u1, v1 = geo.bbox[0]
    lw = 1  # round(256 / 256)
    assert abs(xs.min() - u0) <= lw + 1 and abs(xs.max() - u1) <= lw + 1
    assert abs(ys.min() - v0) <= lw + 1 and abs(ys.max() - v1) <= lw + 1


def test_painter_order_near_covers_far():
    cam = Camera.default_front(128, 128)
    agents = AgentPoses(
        [[20.0, 0.0, 0.8], [8.0, 0.0, 0.8]], [1.2, 0.2], [[4.5, 1.9, 1.6]] * 2, [ObjectType.VEHICLE] * 2, ids=[7, 3]
    )
    mask = agent_id_mask(cam, agents)
    far_alone = agent_id_mask(cam, agents.take([0]))
    near_alone = agent_id_mask(cam, agents.take([1]))
    both = (far_alone >= 0) & (near_alone >= 0)
    assert both.sum() > 0, "the test needs overlapping skeletons"
    assert (mask[both] == 3).all()
    # Order of the input does not matter: depth decides.
    swapped = agent_id_mask(cam, agents.take([1, 0]))
    np.testing.assert_array_equal(swapped, mask)


def test_pedestrian_uses_openpose_colours_and_walks():
    cam = Camera.default_front(256, 256)
    a = render_agent(cam, [6.0, 0.0, 0.9], np.pi / 2, [0.6, 0.6, 1.8], ObjectType.PEDESTRIAN, phase=0.0, speed=1.4)
    b = render_agent(cam, [6.0, 0.0, 0.9], np.pi / 2, [0.6, 0.6, 1.8], ObjectType.PEDESTRIAN, phase=np.pi / 2, speed=1.4)
    colours = {tuple(c) for c in a[a.max(-1) > 0]}
    assert len(colours & {tuple(c) for c in OPENPOSE_COLORS}) >= 10
    assert (a != b).any(), "the gait phase must move the limbs"
    # The ankles of a standing figure are on the ground and its nose at ~0.91 of its height.
    kp = pedestrian_keypoints(np.array([[0.6, 0.6, 1.8]]), np.zeros(1), np.zeros(1))[0]
    assert kp[10, 2] == pytest.approx(0.0, abs=0.03) and kp[0, 2] == pytest.approx(0.91 * 1.8)


def test_render_state_matches_scenario_and_is_deterministic(scenario):
    r = PoseRenderer(128, 128)
    t = scenario.current_index
    state = WorldState.from_scenario(scenario)
    a = r.render_state(state)
    b = r.render_scenario(scenario, scenario.sdc_index, t, t + 1)[0]
    np.testing.assert_array_equal(a, b)
    clip = r.render_scenario(scenario, scenario.sdc_index, 0, 20)
    np.testing.assert_array_equal(clip[t], a)
    np.testing.assert_array_equal(PoseRenderer(128, 128).render_scenario(scenario, scenario.sdc_index, 0, 20), clip)


def test_any_vehicle_can_be_the_viewpoint(scenario):
    t = scenario.current_index
    cars = np.flatnonzero(scenario.tracks.valid[:, t] & (scenario.object_types == ObjectType.VEHICLE))
    other = int(cars[cars != scenario.sdc_index][0])
    r = PoseRenderer(96, 64)
    frames = r.render_scenario(scenario, other, t, t + 3)
    assert frames.shape == (3, 64, 96, 3)
    assert (frames != r.render_scenario(scenario, scenario.sdc_index, t, t + 3)).any()


def test_bad_input_raises_render_error(scenario):
    r = PoseRenderer(64, 64)
    t = scenario.current_index
    invalid = int(np.flatnonzero(~scenario.tracks.valid[:, t])[0])
    with pytest.raises(RenderError, match="not valid at step"):
        r.render_scenario(scenario, invalid, t, t + 1)
    with pytest.raises(RenderError):
        r.render_scenario(scenario, scenario.num_tracks + 3, t, t + 1)
    with pytest.raises(RenderError):
        r.render_scenario(scenario, scenario.sdc_index, 50, 200)
    state = WorldState.from_scenario(scenario)
    other = int(np.flatnonzero(state.sim.valid[:, t] & (np.arange(scenario.num_tracks) != scenario.sdc_index))[0])
    state.sim.xyz[other, t, 0] = np.nan
    with pytest.raises(RenderError, match=f"agent {other}"):
        r.render_state(state)
    state = WorldState.from_scenario(scenario)
    state.sim.size[other, t] = 0.0
    with pytest.raises(RenderError, match="box size"):
        r.render_state(state)
    state = WorldState.from_scenario(scenario)
    state.sim.heading[scenario.sdc_index, t] = np.inf
    with pytest.raises(RenderError, match="non-finite"):
        r.render_state(state)


def test_camera_looking_at_nothing_gives_black_frame(scenario):
    empty = dataclasses.replace(scenario, roadmap=RoadMap.empty())
    tr = empty.tracks.copy()
    t = scenario.current_index
    tr.valid[:, :] = False
    tr.valid[scenario.sdc_index, t] = True
    empty = dataclasses.replace(empty, tracks=tr)
    frame = PoseRenderer(64, 64).render_scenario(empty, scenario.sdc_index, t, t + 1)
    assert frame.shape == (1, 64, 64, 3) and not frame.any()


def test_traffic_light_poles_show_their_state(womd_still_path):
    from mad_sim.render.map_layer import LIGHT_POLE_M, LIGHT_RGB

    sc = load_scenario(womd_still_path)
    t = sc.current_index
    lights = sc.traffic_lights
    assert lights.valid[t].any()
    r = PoseRenderer(256, 256)
    frame = r.render_scenario(sc, sc.sdc_index, t, t + 1)[0]
    m = world_to_vehicle(
        sc.tracks.xyz[sc.sdc_index, t], float(sc.tracks.heading[sc.sdc_index, t]), float(sc.tracks.size[sc.sdc_index, t, 2])
    )
    v = lights.valid[t]
    stop, states = lights.stop_points[t][v], lights.states[t][v]
    mid = stop @ m[:, :3].T + m[:, 3] + [0.0, 0.0, 0.5 * LIGHT_POLE_M]
    uv, depth = r.camera.project(mid)
    seen = r.camera.in_image(uv) & np.array([int(s) in LIGHT_RGB for s in states])
    assert seen.sum() >= 1
    hits = [tuple(frame[int(round(y)), int(round(x))]) == LIGHT_RGB[int(s)] for (x, y), s in zip(uv[seen], states[seen])]
    assert np.mean(hits) >= 0.75, hits
