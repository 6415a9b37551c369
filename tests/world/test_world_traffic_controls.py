"""IDM traffic controls: red / green signals on a procedural intersection, a stop sign on a hand-made map,
and step-by-step (env-style) calls against one long call."""

from __future__ import annotations

import dataclasses

import numpy as np

from mad_sim.data.procedural import generate_scenario
from mad_sim.data.scenario import LaneInfo, MapKind, ObjectType, RoadMap, Scenario, SignalState, TrafficLights, Trajectory
from mad_sim.world.geometry import project_to_polyline
from mad_sim.world.idm import IDM
from mad_sim.world.idm_law import IDMParams
from mad_sim.world.state import WorldState


def _red_leader(sc: Scenario):
    """(lane polyline, stop arclength, vehicle index, half length): the vehicle nearest ahead of a red stop line."""
    tl = sc.traffic_lights
    rm = sc.roadmap
    index_of = {int(i): m for m, i in enumerate(rm.ids)}
    t0 = sc.current_index
    for slot in np.flatnonzero(tl.valid[t0] & (tl.states[t0] == SignalState.STOP)):
        pl = rm.polyline(index_of[int(tl.lane_ids[t0, slot])])[:, :2]
        u_stop = float(project_to_polyline(tl.stop_points[t0, slot, :2], pl)[0])
        best = None
        for i in np.flatnonzero(sc.tracks.valid[:, t0] & (sc.object_types == ObjectType.VEHICLE)):
            u, lat = project_to_polyline(sc.tracks.xy[i, t0], pl)
            if abs(lat) < 1.0 and 8.0 < u_stop - u < 60.0 and (best is None or u > best[0]):
                best = (float(u), int(i))
        if best is not None:
            return pl, u_stop, best[1], 0.5 * float(sc.tracks.size[best[1], t0, 0])
    raise AssertionError("no vehicle approaching a red signal")


def _with_green_from(sc: Scenario, step: int) -> Scenario:
    tl = sc.traffic_lights
    states = tl.states.copy()
    states[step:] = SignalState.GO
    return dataclasses.replace(sc, traffic_lights=dataclasses.replace(tl, states=states))


def test_idm_stops_at_red_signal_and_proceeds_on_green():
    sc = generate_scenario(np.random.default_rng(1), kind="intersection")
    pl, u_stop, car, half = _red_leader(sc)
    ctrl = np.ones(sc.num_tracks, bool)
    steps = 80
    st = WorldState.from_scenario(sc)
    red = IDM().advance(st, ctrl, steps)
    front = project_to_polyline(red.xy[car], pl)[0] + half
    p = IDMParams()
    assert front.max() <= u_stop - p.stop_margin + 0.3  # never past its stopping point
    assert front[-1] > u_stop - p.stop_margin - 1.5  # ... and stopped close to it
    assert np.hypot(*red.velocity[car, -1]) < 0.1
    # without traffic controls the same car runs the red light
    free = IDM(IDMParams(traffic_controls=False)).advance(st, ctrl, steps)
    assert project_to_polyline(free.xy[car, -1], pl)[0] + half > u_stop + 5.0
    # the light turns green at log step 60 (5 s in): stopped before, through the junction after
    green = _with_green_from(sc, sc.current_index + 50)
    out = IDM().advance(WorldState.from_scenario(green), ctrl, steps)
    front_g = project_to_polyline(out.xy[car], pl)[0] + half
    speed = np.hypot(*out.velocity[car].T)
    np.testing.assert_allclose(front_g[:45], front[:45], atol=1e-9)  # same approach while red
    assert speed[48] < 0.25 and front_g[48] <= u_stop
    assert front_g[-1] > u_stop + 2.0 and speed[-1] > 2.0


def _stop_sign_map() -> RoadMap:
    x = np.arange(0.0, 401.0, 5.0)
    lane = np.column_stack([x, np.zeros_like(x), np.zeros_like(x)])
    sign = np.array([[150.0, -3.0, 0.0]])
    return RoadMap(
        ids=np.array([10, 20], np.int64),
        kinds=np.array([MapKind.LANE, MapKind.STOP_SIGN], np.int8),
        subtypes=np.zeros(2, np.int8),
        offsets=np.array([0, len(lane), len(lane) + 1], np.int64),
        points=np.concatenate([lane, sign]),
        lanes={10: LaneInfo(speed_limit_mph=25.0)},
        stop_sign_lanes={20: [10]},
    )


def _one_car(roadmap: RoadMap, x0: float, v: float, num_steps: int) -> WorldState:
    tr = Trajectory.zeros(1, num_steps)
    tr.xyz[0, :, 0] = x0
    tr.velocity[0, :, 0] = v
    tr.size[:] = [4.0, 1.8, 1.5]
    tr.valid[:] = True
    sc = Scenario(
        scenario_id="stop-sign",
        timestamps=np.arange(num_steps) * 0.1,
        current_index=0,
        sdc_index=0,
        track_ids=np.arange(1),
        object_types=np.array([ObjectType.VEHICLE], np.int8),
        tracks=tr,
        roadmap=roadmap,
        traffic_lights=TrafficLights.empty(num_steps),
    )
    return WorldState.from_scenario(sc)


def _step_by_step(policy: IDM, st: WorldState, steps: int) -> np.ndarray:
    """Env-style stepping: one-step calls, each result written into the state. Returns x [steps]."""
    xs = []
    for _ in range(steps):
        o = policy.advance(st, np.ones(1, bool), 1)
        t = st.timestep
        st.write_step(t + 1, o.xyz[:, 0], o.heading[:, 0], o.velocity[:, 0], o.valid[:, 0])
        st.timestep = t + 1
        xs.append(float(o.xy[0, 0, 0]))
    return np.array(xs)


def test_idm_stop_sign_stop_then_proceed():
    rm = _stop_sign_map()
    p = IDMParams(desired_speed=10.0)
    steps = 300
    out = IDM(p).advance(_one_car(rm, 0.0, 10.0, 2), np.ones(1, bool), steps)
    x = out.xy[0, :, 0]
    speed = np.hypot(*out.velocity[0].T)
    front = x + 2.0
    stop_at = 150.0 - p.stop_margin
    k = int(np.argmin(np.where(np.abs(front - stop_at) < p.stop_reach, speed, np.inf)))
    assert speed[k] < p.stop_speed and abs(front[k] - stop_at) < p.stop_reach  # came to a stop at the line
    assert front[: k + 1].max() <= stop_at + 0.3  # not past it before stopping
    assert x[-1] > 200.0 and speed[-1] > 9.0  # then drove on
    # without controls: no stop at all
    free = IDM(dataclasses.replace(p, traffic_controls=False)).advance(_one_car(rm, 0.0, 10.0, 2), np.ones(1, bool), steps)
    assert np.hypot(*free.velocity[0].T).min() > 9.9
    # env-style one-step calls (tracked paths, served sign kept across calls) give the same motion
    xs = _step_by_step(IDM(p), _one_car(rm, 0.0, 10.0, steps + 1), steps)
    np.testing.assert_allclose(xs, x, atol=1e-6)


def test_idm_tracks_its_agents_across_calls_on_a_real_log(womd_path):
    """One-step calls reuse paths (few rebuilds) and stay close to one long call on the real 257-track log."""
    from mad_sim.data import load_scenario

    sc = load_scenario(womd_path)
    ctrl = np.ones(sc.num_tracks, bool)
    ctrl[sc.sdc_index] = False
    policy = IDM()
    st = WorldState.from_scenario(sc)
    for _ in range(20):
        o = policy.advance(st, ctrl, 1)
        t = st.timestep
        keep = ~ctrl
        xyz = np.where(keep[:, None], st.sim.xyz[:, t], o.xyz[:, 0])
        st.write_step(
            t + 1,
            xyz,
            np.where(keep, st.sim.heading[:, t], o.heading[:, 0]),
            np.where(keep[:, None], st.sim.velocity[:, t], o.velocity[:, 0]),
            st.sim.valid[:, t],
        )
        st.timestep = t + 1
    driven = len(policy._lane)
    assert driven >= 5
    assert policy.path_builds < driven + 20 * 3  # built once per agent, rarely again
