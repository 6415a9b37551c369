"""Scripted traffic: log replay, constant velocity, lane-following IDM."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.data.scenario import LaneInfo, MapKind, ObjectType, RoadMap, Scenario, TrafficLights, Trajectory
from mad_sim.errors import ShapeError
from mad_sim.world.geometry import overlap_matrix
from mad_sim.world.idm import IDM
from mad_sim.world.idm_law import IDMParams, idm_accel
from mad_sim.world.road_distance import road_edge_distance
from mad_sim.world.state import WorldState
from mad_sim.world.traffic import ConstantVelocity, LogReplay, TrafficPolicy


@functools.lru_cache(maxsize=None)
def _scenario(path: str):
    return load_scenario(path)


def _lane_map(polylines, exits=None) -> RoadMap:
    pts, offsets = [], [0]
    for pl in polylines:
        pts.append(np.column_stack([pl, np.zeros(len(pl))]))
        offsets.append(offsets[-1] + len(pl))
    m = len(polylines)
    lanes = {i: LaneInfo(exit_lanes=list((exits or {}).get(i, []))) for i in range(m)}
    return RoadMap(
        ids=np.arange(m, dtype=np.int64),
        kinds=np.full(m, MapKind.LANE, np.int8),
        subtypes=np.zeros(m, np.int8),
        offsets=np.array(offsets, np.int64),
        points=np.concatenate(pts),
        lanes=lanes,
    )


def _scene(roadmap: RoadMap, xy, heading, speed, num_steps: int = 2) -> WorldState:
    """A scenario whose tracks hold the given states (step 0 = now), every track a 4.5 x 1.8 m car."""
    xy = np.asarray(xy, float)
    n = len(xy)
    tr = Trajectory.zeros(n, num_steps)
    tr.xyz[:, :, :2] = xy[:, None]
    tr.heading[:] = np.asarray(heading, float)[:, None]
    tr.velocity[:] = (np.asarray(speed, float)[:, None] * np.stack([np.cos(heading), np.sin(heading)], -1))[:, None]
    tr.size[:] = [4.5, 1.8, 1.6]
    tr.valid[:] = True
    sc = Scenario(
        scenario_id="hand",
        timestamps=np.arange(num_steps) * 0.1,
        current_index=0,
        sdc_index=0,
        track_ids=np.arange(n),
        object_types=np.full(n, ObjectType.VEHICLE, np.int8),
        tracks=tr,
        roadmap=roadmap,
        traffic_lights=TrafficLights.empty(num_steps),
    )
    return WorldState.from_scenario(sc)


def _straight(length=2000.0):
    x = np.arange(0.0, length + 1, 5.0)
    return _lane_map([np.column_stack([x, np.zeros_like(x)])])


# ----------------------------------------------------------------------------- log / constant velocity
def test_log_replay_is_the_log(womd_path):
    s = _scenario(str(womd_path))
    st = WorldState.from_scenario(s)
    ctrl = np.ones(s.num_tracks, bool)
    out = LogReplay().advance(st, ctrl, 5)
    np.testing.assert_array_equal(out.xyz, s.tracks.xyz[:, 11:16])
    np.testing.assert_array_equal(out.valid, s.tracks.valid[:, 11:16])
    late = WorldState.from_scenario(s, timestep=88)
    out = LogReplay().advance(late, ctrl, 5)
    assert out.valid[:, 2:].sum() == 0 and out.valid[:, :2].sum() == s.tracks.valid[:, 89:91].sum()
    assert isinstance(LogReplay(), TrafficPolicy) and isinstance(IDM(), TrafficPolicy)
    with pytest.raises(ShapeError):
        LogReplay().advance(st, ctrl[:-1], 5)


def test_constant_velocity_hand_case():
    st = _scene(_straight(), [[0.0, 0.0], [10.0, 5.0]], np.array([0.0, np.pi / 2]), [10.0, 2.0])
    out = ConstantVelocity().advance(st, np.ones(2, bool), 10)
    np.testing.assert_allclose(out.xy[0, :, 0], np.arange(1, 11) * 1.0)
    np.testing.assert_allclose(out.xy[1, -1], [10.0, 7.0], atol=1e-12)
    np.testing.assert_allclose(out.heading[1], np.pi / 2)


# ----------------------------------------------------------------------------- IDM
def test_idm_accel_formula():
    p = IDMParams(max_accel=1.0, comfort_decel=1.0, time_headway=1.0, min_gap=2.0, exponent=4.0)
    # free road at half the desired speed: a (1 - 1/16)
    assert idm_accel(np.array(5.0), np.array(10.0), np.array(np.inf), np.array(0.0), p) == pytest.approx(15 / 16)
    # s* = 2 + 5 * 1 + 5 * 1 / 2 = 9.5 at a gap of 19: a (1 - 1/16 - 1/4)
    assert idm_accel(np.array(5.0), np.array(10.0), np.array(19.0), np.array(1.0), p) == pytest.approx(1 - 1 / 16 - 0.25)


def test_idm_free_road_reaches_desired_speed():
    st = _scene(_straight(), [[0.0, 0.4]], np.array([0.0]), [5.0])
    out = IDM(IDMParams(desired_speed=15.0)).advance(st, np.ones(1, bool), 600)
    speed = np.hypot(*out.velocity[0].T)
    assert np.all(np.diff(speed) >= -1e-9)  # accelerates monotonically
    assert 14.5 < speed[-1] <= 15.0
    assert np.all(speed <= 5.0 + 1.5 * 0.1 * np.arange(1, 601) + 1e-9)  # never faster than a_max = 1.5 m/s^2 allows
    np.testing.assert_allclose(out.xy[0, :, 1], 0.0, atol=1e-9)  # on the lane centre
    np.testing.assert_allclose(out.heading[0], 0.0, atol=1e-12)


def test_idm_follower_stops_behind_stopped_leader_without_collision():
    # follower at 15 m/s (controlled), a stopped car 120 m ahead, 0.3 m off the lane centre (not controlled)
    st = _scene(_straight(), [[0.0, 0.0], [120.0, 0.3]], np.array([0.0, 0.0]), [15.0, 0.0])
    params = IDMParams(desired_speed=15.0)
    out = IDM(params).advance(st, np.array([True, False]), 300)
    gap = out.xy[1, :, 0] - out.xy[0, :, 0] - 4.5
    assert gap.min() > 0.0
    for k in range(0, 300, 10):
        assert not overlap_matrix(out.xy[:, k], out.heading[:, k], out.size[:, k, 0], out.size[:, k, 1], out.valid[:, k]).any()
    speed = np.hypot(*out.velocity[0].T)
    assert speed[-1] < 0.05  # stopped
    assert params.min_gap - 0.5 < gap[-1] < params.min_gap + 1.5  # at about the IDM's standstill gap
    np.testing.assert_allclose(out.xy[1, :, 0], 120.0)  # not controlled: held at its (zero) velocity
    # a car in the next lane (3.5 m over) is not a leader: the follower passes it at full speed
    st = _scene(_straight(), [[0.0, 0.0], [60.0, 3.5]], np.array([0.0, 0.0]), [15.0, 0.0])
    out = IDM(params).advance(st, np.array([True, False]), 100)
    assert np.hypot(*out.velocity[0].T).min() > 14.9


def test_idm_fork_choice_deterministic_and_seeded():
    x = np.arange(0.0, 101.0, 5.0)
    main = np.column_stack([x, np.zeros_like(x)])
    straight = np.column_stack([x + 100.0, np.zeros_like(x)])
    ang = np.linspace(0, np.pi / 2, 21)
    left = np.column_stack([100 + 30 * np.sin(ang), 30 - 30 * np.cos(ang)])
    rm = _lane_map([main, straight, left], exits={0: [2, 1]})
    st = _scene(rm, [[80.0, 0.0]], np.array([0.0]), [10.0])
    out = IDM(IDMParams(desired_speed=10.0)).advance(st, np.ones(1, bool), 60)
    np.testing.assert_allclose(out.xy[0, -1, 1], 0.0, atol=1e-9)  # straightest exit
    ends = set()
    for seed in range(8):
        a = IDM(IDMParams(desired_speed=10.0), rng=np.random.default_rng(seed)).advance(st, np.ones(1, bool), 60)
        b = IDM(IDMParams(desired_speed=10.0), rng=np.random.default_rng(seed)).advance(st, np.ones(1, bool), 60)
        np.testing.assert_array_equal(a.xy, b.xy)
        ends.add(bool(a.xy[0, -1, 1] > 1.0))
    assert ends == {True, False}


def test_idm_on_real_log_keeps_vehicles_on_road_and_apart(womd_path):
    s = _scenario(str(womd_path))
    st = WorldState.from_scenario(s)
    ctrl = np.ones(s.num_tracks, bool)
    ctrl[s.sdc_index] = False
    policy = IDM()
    out = policy.advance(st, ctrl, 50)
    veh = (s.object_types == ObjectType.VEHICLE) & st.at().valid
    lane_driven = np.array(sorted(policy._lane))
    assert lane_driven.size >= 5
    moved = np.hypot(*(out.xy[lane_driven, -1] - st.at().xy[lane_driven]).T)
    assert (moved > 5.0).sum() >= 5
    d = road_edge_distance(out.xy[lane_driven].reshape(-1, 2), s.roadmap)
    assert (d < 0).mean() > 0.95
    t0 = overlap_matrix(st.at().xy, st.at().heading, st.at().size[:, 0], st.at().size[:, 1], veh)
    for k in range(0, 50, 5):
        m = overlap_matrix(out.xy[:, k], out.heading[:, k], out.size[:, k, 0], out.size[:, k, 1], out.valid[:, k] & veh)
        new = m & ~t0
        new[s.sdc_index] = False  # the ego is not simulated here (it holds still at constant velocity)
        new[:, s.sdc_index] = False
        assert not new.any(), f"step {k}: {np.argwhere(new)[:3]}"


def _roll(policy, st: WorldState, ctrl: np.ndarray, steps: int) -> None:
    """Advance ``st`` in place ``steps`` steps of one call each, as the env does: the controlled agents as
    ``policy`` moves them, the others held where they are (velocity kept as a value, not integrated)."""
    sim = st.sim
    for _ in range(steps):
        out = policy.advance(st, ctrl, 1)
        t = st.timestep
        keep = ctrl & out.valid[:, 0]
        sim.xyz[:, t + 1] = np.where(keep[:, None], out.xyz[:, 0], sim.xyz[:, t])
        sim.heading[:, t + 1] = np.where(keep, out.heading[:, 0], sim.heading[:, t])
        sim.velocity[:, t + 1] = np.where(keep[:, None], out.velocity[:, 0], sim.velocity[:, t])
        sim.valid[:, t + 1] = keep | (~ctrl & sim.valid[:, t])
        st.timestep = t + 1


def test_idm_brakes_for_a_stopped_leader_on_a_real_scene_without_lanes_near():
    """Waymax scene 9735b4f3c0dbf35f: the 20000-point roadgraph cap left only 2 lane features, 120-250 m
    from every vehicle, so no vehicle matches a lane.  Track 0 drives at 15.6 m/s about 41 m behind the
    SDC (track 4) on the same heading; with the SDC standing still it must brake to a stop behind it
    (it used to keep its velocity and drive through), and the parked cars must stay parked."""
    from tests.conftest import data_file

    s = _scenario(str(data_file("corpus/waymax/waymax_scenario_9735b4f3c0dbf35f.pkl")))
    st = WorldState.from_scenario(s)
    t0, ego, follower = st.timestep, s.sdc_index, 0
    assert ego == 4
    now = st.at()
    ahead = now.xy[ego] - now.xy[follower]
    h = now.heading[follower]
    assert abs(ahead @ [np.cos(h), np.sin(h)] - 41.3) < 0.5 and abs(ahead @ [-np.sin(h), np.cos(h)]) < 1.0
    assert 15.0 < now.speed[follower] < 16.0
    parked = np.flatnonzero(now.valid & (now.speed < 0.1) & (s.object_types == ObjectType.VEHICLE))
    assert parked.size >= 8
    st.sim.velocity[ego, t0] = 0.0  # the SDC stands still where it is
    ctrl = np.ones(s.num_tracks, bool)
    ctrl[ego] = False
    _roll(IDM(), st, ctrl, 80)  # step by step, as the env calls it, to the end of the log (8 s)
    k = slice(t0 + 1, t0 + 81)
    speed_a = np.hypot(*st.sim.velocity[follower, k].T)
    gap_a = (st.sim.xyz[ego, k, :2] - st.sim.xyz[follower, k, :2]) @ [np.cos(h), np.sin(h)]
    gap_a -= 0.5 * (now.size[follower, 0] + now.size[ego, 0])
    assert speed_a[9] < 12.0, f"the follower does not brake: speeds {np.round(speed_a[::10], 2)}"
    assert speed_a[-1] < 0.5, f"the follower never stopped: speeds {np.round(speed_a[::10], 2)}"
    assert gap_a.min() > 1.0, f"the follower ran into the stopped SDC: gaps {np.round(gap_a[::10], 2)}"
    assert gap_a[-1] < IDMParams().min_gap + 2.0  # it closed up to about the IDM's standstill gap
    assert np.diff(np.r_[now.speed[follower], speed_a]).min() > -IDMParams().max_decel * 0.1 - 1e-4  # at most max_decel
    np.testing.assert_allclose(st.at().xy[parked], now.xy[parked], atol=1e-9)  # parked cars are not started


def test_idm_off_lane_drives_straight_at_its_speed_and_brakes_for_leaders():
    # no lane anywhere (an empty map): a mover at 12 m/s with a stopped car 100 m ahead on its heading, a second
    # mover at 8 m/s on a free line, a parked car and a car creeping at 0.5 m/s (below off_lane_min_speed)
    h = np.array([0.3, 0.3, 0.0, 0.0, 1.0])
    d = np.array([np.cos(0.3), np.sin(0.3)])
    xy = [[0.0, 0.0], 100.0 * d, [0.0, 50.0], [0.0, -40.0], [30.0, -30.0]]
    st = _scene(RoadMap.empty(), xy, h, [12.0, 0.0, 8.0, 0.0, 0.5], num_steps=2)
    policy = IDM()
    out = policy.advance(st, np.array([True, False, True, True, True]), 600)  # 60 s in one call
    speed = np.hypot(*out.velocity.transpose(2, 0, 1))
    gap = (out.xy[1] - out.xy[0]) @ d - 4.5
    assert speed[0, -1] < 0.05 and 1.0 < gap.min() and gap[-1] < IDMParams().min_gap + 1.0  # stopped behind it
    assert np.all(np.diff(speed[0]) <= 1e-9)  # never faster than its own speed
    np.testing.assert_allclose(speed[2], 8.0)  # free line: its speed kept...
    np.testing.assert_allclose(out.xy[2, -1], [480.0, 50.0], atol=1e-6)  # ...along its heading
    np.testing.assert_allclose(out.heading[[0, 2]], np.repeat(h[[0, 2], None], 600, 1), atol=1e-9)
    np.testing.assert_allclose(out.xy[3], np.broadcast_to([0.0, -40.0], (600, 2)))  # parked: not started
    np.testing.assert_allclose(out.xy[4, -1], np.array([30.0, -30.0]) + 0.5 * 60.0 * np.array([np.cos(1.0), np.sin(1.0)]))
    assert policy._lane == {}
    # with off_lane_min_speed = inf every agent on no lane keeps its velocity (the former behaviour)
    cv = IDM(IDMParams(off_lane_min_speed=np.inf)).advance(st, np.array([True, False, True, True, True]), 50)
    np.testing.assert_allclose(np.hypot(*cv.velocity[0].T), 12.0)
    # step by step (as the env calls it) the straight paths are extended as the agents go: the same motion
    st = _scene(RoadMap.empty(), xy, h, [12.0, 0.0, 8.0, 0.0, 0.5], num_steps=301)
    policy = IDM()
    _roll(policy, st, np.array([True, False, True, True, True]), 300)
    assert policy.path_builds >= 8  # three movers, each path rebuilt after about 60 m
    np.testing.assert_allclose(st.sim.xyz[2, 1:, :2], out.xy[2, :300], atol=1e-6)
    np.testing.assert_allclose(st.sim.xyz[0, 1:, :2], out.xy[0, :300], atol=1e-6)
