"""Boxes, all-pairs overlap, signed road-edge distance and polylines."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mad_sim.data import load_scenario
from mad_sim.data.scenario import MapKind, ObjectType, RoadMap
from mad_sim.world.geometry import box_corners, interpolate_polyline, overlap_matrix, polyline_arclength, project_to_polyline
from mad_sim.world.road_distance import map_segments, road_edge_distance, road_edge_distance_details


@functools.lru_cache(maxsize=None)
def _scenario(path: str):
    return load_scenario(path)


# ----------------------------------------------------------------------------- boxes
def test_box_corners_hand_case():
    c = box_corners(np.array([10.0, 5.0]), np.array(np.pi / 2), np.array(4.0), np.array(2.0))
    # heading +y: front-right is (+1, +2) from the centre, front-left (-1, +2), rear-left (-1, -2), rear-right (+1, -2)
    np.testing.assert_allclose(c, [[11, 7], [9, 7], [9, 3], [11, 3]], atol=1e-12)
    batch = box_corners(np.zeros((3, 7, 2)), np.zeros((3, 7)), np.ones((3, 7)), np.ones((3, 7)))
    assert batch.shape == (3, 7, 4, 2)


def _clip_area(subject: np.ndarray, clip: np.ndarray) -> float:
    """Area of the intersection of two convex CCW polygons (Sutherland-Hodgman), the independent reference."""
    poly = [tuple(p) for p in subject]
    for i in range(len(clip)):
        a, b = clip[i], clip[(i + 1) % len(clip)]
        inside = lambda p, a=a, b=b: (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) >= 0  # noqa: E731
        out = []
        for j in range(len(poly)):
            p, q = np.array(poly[j]), np.array(poly[(j + 1) % len(poly)])
            if inside(q):
                if not inside(p):
                    out.append(_line_hit(p, q, a, b))
                out.append(tuple(q))
            elif inside(p):
                out.append(_line_hit(p, q, a, b))
        poly = out
        if not poly:
            return 0.0
    x, y = np.array(poly).T
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _line_hit(p, q, a, b):
    d1, d2 = q - p, b - a
    t = ((a[0] - p[0]) * d2[1] - (a[1] - p[1]) * d2[0]) / (d1[0] * d2[1] - d1[1] * d2[0])
    return tuple(p + t * d1)


def _gap(c1: np.ndarray, c2: np.ndarray) -> float:
    """Smallest corner-to-edge distance between two polygons (their distance when they are disjoint)."""
    best = np.inf
    for pa, pb in ((c1, c2), (c2, c1)):
        for p in pa:
            for i in range(4):
                a, b = pb[i], pb[(i + 1) % 4]
                t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0, 1)
                best = min(best, float(np.hypot(*(p - a - t * (b - a)))))
    return best


box = st.tuples(st.floats(-6, 6), st.floats(-6, 6), st.floats(-np.pi, np.pi), st.floats(0.3, 6), st.floats(0.3, 3))


@settings(max_examples=300, deadline=None)
@given(b1=box, b2=box)
def test_overlap_matches_polygon_clipping(b1, b2):
    boxes = np.array([b1, b2])
    corners = box_corners(boxes[:, :2], boxes[:, 2], boxes[:, 3], boxes[:, 4])
    with np.errstate(divide="ignore", invalid="ignore"):  # parallel edges in the reference: skipped below
        area = _clip_area(corners[0], corners[1])
    assume(np.isfinite(area))
    disjoint = area == 0.0 and _gap(corners[0], corners[1]) > 1e-6
    assume(area > 1e-6 or disjoint)  # skip touching within rounding
    m = overlap_matrix(boxes[:, :2], boxes[:, 2], boxes[:, 3], boxes[:, 4], np.ones(2, bool))
    assert m[0, 1] == m[1, 0] == (area > 1e-6)


def test_overlap_matrix_all_pairs_against_reference():
    rng = np.random.default_rng(7)
    n = 40
    xy = rng.uniform(-15, 15, (n, 2))
    h = rng.uniform(-np.pi, np.pi, n)
    length, width = rng.uniform(1, 5, n), rng.uniform(0.5, 2.5, n)
    valid = rng.random(n) > 0.1
    m = overlap_matrix(xy, h, length, width, valid)
    corners = box_corners(xy, h, length, width)
    ref = np.zeros((n, n), bool)
    for i in range(n):
        for j in range(n):
            if i != j and valid[i] and valid[j]:
                ref[i, j] = _clip_area(corners[i], corners[j]) > 1e-9
    np.testing.assert_array_equal(m, ref)
    assert 5 < ref.sum() < n * n / 2  # the draw has both overlapping and free pairs
    assert not m.diagonal().any() and (m == m.T).all()


def test_overlap_hand_cases():
    # two cars side by side 2.0 m apart (widths 1.8): free; 1.7 m apart: overlap; end to end touching: free
    xy = np.array([[0.0, 0.0], [0.0, 2.0], [0.0, -1.7], [4.5, 0.0]])
    m = overlap_matrix(xy, np.zeros(4), np.full(4, 4.5), np.full(4, 1.8))
    assert not m[0, 1] and m[0, 2] and not m[0, 3]
    # rotated by 45 degrees the corner of a 2x2 box reaches sqrt(2)
    m = overlap_matrix(np.array([[0.0, 0.0], [2.3, 0.0]]), np.array([np.pi / 4, 0.0]), np.array([2.0, 2.0]), np.array([2.0, 2.0]))
    assert m[0, 1]  # 1.414 + 1 > 2.3
    m = overlap_matrix(np.array([[0.0, 0.0], [2.5, 0.0]]), np.array([np.pi / 4, 0.0]), np.array([2.0, 2.0]), np.array([2.0, 2.0]))
    assert not m[0, 1]


def test_logged_vehicles_rarely_overlap(womd_path):
    """In a real log, vehicles at the current step do not collide (a few parked boxes may touch)."""
    s = _scenario(str(womd_path))
    t = s.current_index
    tr = s.tracks
    veh = (s.object_types == ObjectType.VEHICLE) & tr.valid[:, t]
    m = overlap_matrix(tr.xy[:, t], tr.heading[:, t], tr.size[:, t, 0], tr.size[:, t, 1], veh)
    assert m.shape == (s.num_tracks, s.num_tracks)
    assert not m[s.sdc_index].any()
    assert m.sum() / 2 <= 0.02 * veh.sum()


# ----------------------------------------------------------------------------- road edges
def _roadmap(features) -> RoadMap:
    """A RoadMap from (kind, [[x, y], ...]) pairs."""
    pts, offsets, kinds = [], [0], []
    for kind, poly in features:
        poly = np.asarray(poly, float)
        pts.append(np.column_stack([poly, np.zeros(len(poly))]))
        offsets.append(offsets[-1] + len(poly))
        kinds.append(int(kind))
    m = len(kinds)
    return RoadMap(
        ids=np.arange(m, dtype=np.int64),
        kinds=np.array(kinds, np.int8),
        subtypes=np.zeros(m, np.int8),
        offsets=np.array(offsets, np.int64),
        points=np.concatenate(pts),
    )


def _divided_road() -> RoadMap:
    """Two carriageways along x in [-50, 50]: y in [1, 8] and [-8, -1], a median in between.

    Each has two lanes (centres at |y| = 2.75 and 6.25).  Edges: the outer ones
    at |y| = 8 and the median's two at |y| = 1.  Edge directions are chosen
    arbitrarily (the method must not depend on them).
    """
    x = np.linspace(-50, 50, 21)
    line = lambda y: np.column_stack([x, np.full_like(x, y)])  # noqa: E731
    return _roadmap(
        [
            (MapKind.LANE, line(2.75)),
            (MapKind.LANE, line(6.25)),
            (MapKind.LANE, line(-2.75)[::-1]),
            (MapKind.LANE, line(-6.25)[::-1]),
            (MapKind.ROAD_EDGE, line(8.0)),
            (MapKind.ROAD_EDGE, line(1.0)[::-1]),
            (MapKind.ROAD_EDGE, line(-1.0)),
            (MapKind.ROAD_EDGE, line(-8.0)),
            (MapKind.ROAD_LINE, line(4.5)),
        ]
    )


def test_signed_distance_on_hand_made_map():
    rm = _divided_road()
    pts = np.array(
        [
            [0.0, 4.5],
            [10.0, 7.5],
            [-3.0, 2.0],
            [0.0, 9.0],
            [0.0, 20.0],
            [0.0, 0.0],
            [0.0, 0.7],
            [5.0, -5.0],
            [0.0, -8.5],
            [70.0, 4.5],
        ]
    )
    d = road_edge_distance(pts, rm)
    expect = [-3.5, -0.5, -1.0, 1.0, 12.0, 1.0, 0.3, -3.0, 0.5]
    np.testing.assert_allclose(d[:9], expect, atol=1e-9)
    # documented limit: past the end of the mapped road no edge is in the way, so the point counts as on
    # the road (the road is taken to continue), at the distance of the nearest edge end
    assert d[9] == pytest.approx(-np.hypot(20.0, 3.5))
    det = road_edge_distance_details(pts, rm)
    np.testing.assert_array_equal(det.crosses_edge, np.array(expect + [-1]) > 0)
    assert det.lane_distance[0] == pytest.approx(1.75)


def test_signed_distance_without_edges_uses_lane_corridors():
    x = np.linspace(0, 100, 11)
    rm = _roadmap([(MapKind.LANE, np.column_stack([x, np.zeros_like(x)]))])
    d = road_edge_distance(np.array([[50.0, 0.0], [50.0, 1.0], [50.0, -4.0]]), rm, lane_half_width=1.8)
    np.testing.assert_allclose(d, [-1.8, -0.8, 2.2])


def test_signed_distance_without_lanes_uses_edge_orientation():
    x = np.linspace(0, 100, 11)
    # WOMD convention: the road lies to the left of an edge's direction
    rm = _roadmap([(MapKind.ROAD_EDGE, np.column_stack([x, np.zeros_like(x)]))])
    d = road_edge_distance(np.array([[50.0, 3.0], [50.0, -2.0]]), rm)
    np.testing.assert_allclose(d, [-3.0, 2.0])


def test_signed_distance_on_real_map(womd_path, womd_still_path):
    s = _scenario(str(womd_path))
    sdc = s.tracks.xy[s.sdc_index][s.tracks.valid[s.sdc_index]]
    d = road_edge_distance(sdc, s.roadmap)
    assert (d < 0).all()  # the SDC stays on the road, 1.5-3.5 m from the kerb
    assert -4.0 < d.min() and d.max() < -1.0
    # moving vehicles drive on the road; in the other log parked cars stand in parking lots (off the road)
    for scenario in (s, _scenario(str(womd_still_path))):
        tr = scenario.tracks
        veh = scenario.object_types == ObjectType.VEHICLE
        moving = veh[:, None] & tr.valid & (tr.speed > 5.0)
        d = road_edge_distance(tr.xy[moving], scenario.roadmap)
        assert (d < 0).mean() > 0.97
    still = _scenario(str(womd_still_path))
    tr = still.tracks
    parked = (still.object_types == ObjectType.VEHICLE) & tr.valid.all(1) & (tr.speed.max(1) < 0.2)
    off = road_edge_distance(tr.xy[parked, 0], still.roadmap) > 0
    assert 0 < off.sum() < parked.sum()


def test_map_segments_cover_the_map(womd_path):
    s = _scenario(str(womd_path))
    segs = map_segments(s.roadmap)
    assert map_segments(s.roadmap) is segs  # cached
    lanes = s.roadmap.select([MapKind.LANE])
    edges = s.roadmap.select([MapKind.ROAD_EDGE])
    n_pts = np.diff(s.roadmap.offsets)
    assert segs.lane_a.shape[0] == (n_pts[lanes] - 1).sum()
    assert segs.edge_a.shape[0] == (n_pts[edges] - 1).sum()
    # lane_s0 restarts at 0 on each lane and grows by segment lengths
    m = lanes[3]
    sel = segs.lane_feature == m
    np.testing.assert_allclose(segs.lane_s0[sel], polyline_arclength(s.roadmap.polyline(m))[:-1], atol=1e-9)


# ----------------------------------------------------------------------------- polylines
def test_polyline_arclength_projection_interpolation():
    pl = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 10.0]])
    np.testing.assert_allclose(polyline_arclength(pl), [0, 5, 11])
    s, lat = project_to_polyline(np.array([[3.0, 7.0], [4.0, 7.0], [0.0, 8.0], [-3.0, -4.0], [3.0, 12.0]]), pl)
    np.testing.assert_allclose(s, [8.0, 8.0, 9.0, -5.0, 13.0])  # extrapolated before the start / past the end
    np.testing.assert_allclose(lat, [0.0, -1.0, 3.0, 0.0, 0.0], atol=1e-12)  # left of travel is positive
    xy, h = interpolate_polyline(pl, np.array([2.5, 8.0, 12.0, -1.0]))
    np.testing.assert_allclose(xy, [[1.5, 2.0], [3.0, 7.0], [3.0, 11.0], [-0.6, -0.8]], atol=1e-12)
    np.testing.assert_allclose(h, [np.arctan2(4, 3), np.pi / 2, np.pi / 2, np.arctan2(4, 3)])


def test_project_inverts_interpolate_on_real_lane(womd_path):
    s = _scenario(str(womd_path))
    lane = s.roadmap.polyline(s.roadmap.select([MapKind.LANE])[0])[:, :2]
    length = polyline_arclength(lane)[-1]
    q = np.linspace(0.0, length, 57)
    xy, _ = interpolate_polyline(lane, q)
    s2, lat = project_to_polyline(xy, lane)
    np.testing.assert_allclose(s2, q, atol=1e-6)
    np.testing.assert_allclose(lat, 0.0, atol=1e-6)
