"""IDM lane paths: they reach the look-ahead beyond the lanes' end, follow lanes a map without a lane graph
leaves unconnected (Waymax), and take the lane an agent is really on at a fork."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.data.scenario import LaneInfo, MapKind, ObjectType, RoadMap, Scenario, TrafficLights, Trajectory
from mad_sim.world.geometry import overlap_matrix
from mad_sim.world.idm import IDM
from mad_sim.world.idm_law import IDMParams
from mad_sim.world.lanes import BEHIND_M, LaneGraph, PathStore
from mad_sim.world.state import WorldState
from tests.conftest import data_file


@functools.lru_cache(maxsize=None)
def _waymax(scene: str) -> Scenario:
    return load_scenario(str(data_file(f"corpus/waymax/waymax_scenario_{scene}.pkl")))


def _lane_map(polylines, exits=None, graph: bool = True) -> RoadMap:
    """Lanes ``polylines`` ([K, 2] each, m) as features 0.., with a lane graph (``exits``: lane -> exit lanes)
    or, ``graph=False``, none at all (``RoadMap.lanes`` empty, as Waymax gives)."""
    pts, offsets = [], [0]
    for pl in polylines:
        pts.append(np.column_stack([pl, np.zeros(len(pl))]))
        offsets.append(offsets[-1] + len(pl))
    m = len(polylines)
    lanes = {i: LaneInfo(exit_lanes=list((exits or {}).get(i, []))) for i in range(m)} if graph else {}
    return RoadMap(
        ids=np.arange(m, dtype=np.int64),
        kinds=np.full(m, MapKind.LANE, np.int8),
        subtypes=np.zeros(m, np.int8),
        offsets=np.array(offsets, np.int64),
        points=np.concatenate(pts),
        lanes=lanes,
    )


def _scene(roadmap: RoadMap, xy, heading, speed, num_steps: int = 2, history=None) -> WorldState:
    """Tracks holding the given states (4.5 x 1.8 m cars) from step ``len(history)`` (now) on; ``history``
    [H, N] headings (rad) of the steps before, at the same positions."""
    xy = np.asarray(xy, float)
    n, h0 = len(xy), 0 if history is None else len(history)
    tr = Trajectory.zeros(n, h0 + num_steps)
    tr.xyz[:, :, :2] = xy[:, None]
    tr.heading[:] = np.asarray(heading, float)[:, None]
    if history is not None:
        tr.heading[:, :h0] = np.asarray(history, float).T
    tr.velocity[:] = (np.asarray(speed, float)[:, None] * np.stack([np.cos(heading), np.sin(heading)], -1))[:, None]
    tr.size[:] = [4.5, 1.8, 1.6]
    tr.valid[:] = True
    sc = Scenario(
        scenario_id="hand",
        timestamps=np.arange(h0 + num_steps) * 0.1,
        current_index=h0,
        sdc_index=0,
        track_ids=np.arange(n),
        object_types=np.full(n, ObjectType.VEHICLE, np.int8),
        tracks=tr,
        roadmap=roadmap,
        traffic_lights=TrafficLights.empty(h0 + num_steps),
    )
    return WorldState.from_scenario(sc)


def _roll(policy: IDM, st: WorldState, ctrl: np.ndarray, steps: int) -> None:
    """Advance ``st`` in place, one call of one step each as the env does; uncontrolled agents held still."""
    sim = st.sim
    for _ in range(steps):
        out = policy.advance(st, ctrl, 1)
        t = st.timestep
        keep = ctrl & out.valid[:, 0]
        sim.xyz[:, t + 1] = np.where(keep[:, None], out.xyz[:, 0], sim.xyz[:, t])
        sim.heading[:, t + 1] = np.where(keep, out.heading[:, 0], sim.heading[:, t])
        sim.velocity[:, t + 1] = np.where(keep[:, None], out.velocity[:, 0], 0.0)
        sim.valid[:, t + 1] = keep | (~ctrl & sim.valid[:, t])
        st.timestep = t + 1


def _line(x0: float, x1: float, y: float = 0.0) -> np.ndarray:
    x = np.arange(x0, x1 + 0.25, 0.5)
    return np.column_stack([x, np.full_like(x, y)])


# ----------------------------------------------------------------------------- a lane that ends right ahead
@pytest.mark.parametrize("stepwise", [False, True])
def test_follower_brakes_for_an_obstacle_beyond_its_lane_end(stepwise):
    """The only lane ends 20 m ahead of a follower at 12 m/s; a car stands 35 m beyond that end on the same
    line.  The follower's path goes on straight past the lane's end, so it sees the car and stops behind it
    (it used to look for leaders on the lane only and drive through the car)."""
    rm = _lane_map([_line(0.0, 40.0)], exits={})
    st = _scene(rm, [[75.0, 0.0], [20.0, 0.0]], np.zeros(2), [0.0, 12.0], num_steps=121)
    ctrl = np.array([False, True])
    policy = IDM(IDMParams(desired_speed=12.0))
    if stepwise:
        _roll(policy, st, ctrl, 120)
        xy, vel = st.sim.xy[1, 1:], st.sim.velocity[1, 1:]
    else:
        out = policy.advance(st, ctrl, 120)
        xy, vel = out.xy[1], out.velocity[1]
    gap = 75.0 - xy[:, 0] - 4.5
    assert gap.min() > 0.5, f"drove into the car past the lane's end: gaps {np.round(gap[::10], 1)}"
    assert np.hypot(*vel[-1]) < 0.1 and gap[-1] < IDMParams().min_gap + 1.5  # stopped at about s0 behind it
    np.testing.assert_allclose(xy[:, 1], 0.0, atol=1e-9)  # straight on along the lane's end heading


def test_path_beyond_the_lane_end_starts_behind_the_agent_and_covers_the_lookahead():
    rm = _lane_map([_line(0.0, 40.0)], exits={})
    g = LaneGraph(rm)
    store = PathStore(g, 2, lambda a, m: None, extra=40.0)
    for agent, u in [(0, 35.0), (1, 70.0)]:  # on the lane near its end / 30 m past it
        s = store.build(agent, 0, u, 80.0)
        pts = store.points[agent, : store.nseg[agent] + 1]
        assert store.length[agent] - s >= 80.0 + 40.0 - 1e-9  # the look-ahead (and the extra) ahead of it
        np.testing.assert_allclose(pts[:, 1], 0.0, atol=1e-12)
        np.testing.assert_allclose(pts[0, 0], u - s, atol=1e-9)  # the path's start is s metres behind it
        assert BEHIND_M - 1.0 <= s <= BEHIND_M + 1e-9
        lane, u_back = store.lane_at(np.array([agent]), np.array([s]))
        assert lane[0] == 0 and u_back[0] == pytest.approx(u)


# ----------------------------------------------------------------------------- maps without a lane graph
def _arc(x0: float, radius: float, turn: float) -> np.ndarray:
    """A left turn starting at (x0, 0) heading +x: ``turn`` rad of a circle of ``radius`` m, 0.5 m vertices."""
    a = np.linspace(0.0, turn, int(radius * turn / 0.5) + 1)
    return np.column_stack([x0 + radius * np.sin(a), radius * (1.0 - np.cos(a))])


def test_lanes_without_a_graph_are_joined_where_one_starts_at_the_others_end():
    # a straight lane; a turn starting on its end; a lane 3.5 m over; one running back from its end
    lanes = [_line(0.0, 40.0), _arc(40.0, 40.0, np.pi / 2), _line(40.0, 80.0, y=3.5), _line(0.0, 40.0)[::-1]]
    g = LaneGraph(_lane_map(lanes, graph=False))
    assert g.exits[0] == [1]  # the arc starts on the end; the lane 3.5 m over and the reversed one do not join
    assert g.exits[1] == [] and g.inferred == [0, 1, 2, 3]
    g = LaneGraph(_lane_map(lanes, exits={}))  # the map's own lane graph (no exits) is kept as it is
    assert g.exits[0] == [] and g.inferred == []


def test_follower_on_a_map_without_lane_graph_follows_the_next_lane_to_a_leader_on_it():
    """Waymax-like map (no lane graph): a straight lane ends where a 90 degree left turn starts; a car stands
    on the turn.  The follower takes the turn (inferred exit) and stops behind the car."""
    arc = _arc(40.0, 40.0, np.pi / 2)
    rm = _lane_map([_line(0.0, 40.0), arc], graph=False)
    k = int(0.6 * (len(arc) - 1))
    h_car = float(np.arctan2(*(arc[k + 1] - arc[k])[::-1]))
    st = _scene(rm, [arc[k], [10.0, 0.0]], np.array([h_car, 0.0]), [0.0, 10.0], num_steps=151)
    _roll(IDM(IDMParams(desired_speed=10.0)), st, np.array([False, True]), 150)
    xy = st.sim.xy[1, 1:]
    r = np.hypot(xy[:, 0] - 40.0, xy[:, 1] - 40.0)
    on_arc = xy[:, 0] > 40.0
    assert on_arc.any()
    np.testing.assert_allclose(r[on_arc], 40.0, atol=0.05)  # on the turning lane, not straight on
    size = st.sim.size[:, 1:]
    for t in range(150):
        assert not overlap_matrix(
            st.sim.xy[:, t + 1], st.sim.heading[:, t + 1], size[:, t, 0], size[:, t, 1], np.ones(2, bool)
        ).any()
    assert np.hypot(*st.sim.velocity[1, -1]) < 0.1
    d = np.hypot(*(st.sim.xy[1, -1] - arc[k]))
    assert 4.5 < d < 4.5 + IDMParams().min_gap + 1.5  # stopped about s0 behind it


# ----------------------------------------------------------------------------- overlapping lanes at a fork
@pytest.mark.parametrize("turning,lane", [(False, 0), (True, 1)])
def test_agent_where_forked_lanes_still_overlap_takes_the_one_its_turning_follows(turning, lane):
    """Two lanes start at the origin, one straight on, one a left turn of 60 m radius; 3 m on they are 7.5 cm
    apart and the agent lies between them, the other lane nearer by 5 mm.  Holding its heading it takes the
    straight lane, turning left at the turn's curvature (its heading over the last 0.5 s at 10 m/s) the turn
    (it used to take the nearer one)."""
    rm = _lane_map([_line(0.0, 200.0), _arc(0.0, 60.0, np.pi / 2)], exits={})
    h = 0.025
    past = h - (10.0 / 60.0) * 0.1 * np.arange(5, 0, -1) if turning else np.full(5, h)
    y0 = 0.035 if turning else 0.04  # the nearest lane is the other one
    st = _scene(rm, [[3.0, y0]], np.array([h]), [10.0], history=past[:, None])
    policy = IDM()
    policy.advance(st, np.ones(1, bool), 1)
    assert policy._lane == {0: lane}


# ----------------------------------------------------------------------------- real Waymax scenes
@pytest.mark.parametrize(
    "scene,follower",
    [
        ("48b0814dee9301a0", 6),
        ("3b12225fb619f180", 0),
        ("3b12225fb619f180", 1),
        ("e71a3e9e66df7653", 11),
        ("641ead285b0c7516", 8),
    ],
)
def test_waymax_follower_stops_behind_the_stopped_sdc(scene, follower):
    """The reaction figure's followers (eval/reaction.py): from 1 s after the log's present step, the SDC stands
    still; the IDM follower behind it on its lane must stop behind it.  Their lanes end 0-14 m ahead of them
    or behind them (Waymax stores no lane graph), and at 641ead285b0c7516 track 8 sits where the SDC's lane
    and a lane forking left still overlap: they used to drive through the SDC or take the other lane past it."""
    s = _waymax(scene)
    t0 = s.current_index + 10
    st = WorldState.from_scenario(s, timestep=t0)
    ego = s.sdc_index
    st.sim.velocity[ego, t0] = 0.0
    now = st.at()
    h = float(now.heading[ego])
    fwd = np.array([np.cos(h), np.sin(h)])
    ahead0 = float((now.xy[ego] - now.xy[follower]) @ fwd)
    assert 10.0 < ahead0 < 40.0 and now.speed[follower] > 1.5  # a moving follower behind the SDC
    ctrl = np.ones(s.num_tracks, bool)
    ctrl[ego] = False
    steps = min(70, st.remaining_log_steps)
    _roll(IDM(), st, ctrl, steps)
    k = slice(t0 + 1, t0 + steps + 1)
    half = 0.5 * (now.size[follower, 0] + now.size[ego, 0])
    gap = (st.sim.xy[ego, k] - st.sim.xy[follower, k]) @ fwd - half
    lateral = (st.sim.xy[follower, k] - st.sim.xy[ego, k]) @ np.array([-fwd[1], fwd[0]])
    speed = np.hypot(*st.sim.velocity[follower, k].T)
    assert gap.min() > 0.5, f"the follower drove into / past the SDC: gaps {np.round(gap[::10], 1)}"
    assert np.abs(lateral[-1]) < 1.5, f"the follower left the SDC's lane: lateral {np.round(lateral[::10], 2)}"
    assert speed[-1] < 0.5, f"the follower did not stop: speeds {np.round(speed[::10], 2)}"
