"""The static map as drawable 3-D segments, and its rasterisation.

A :class:`MapGeometry` is built once per :class:`~mad_sim.data.scenario.RoadMap`
(world frame): every lane centreline, road line and road edge is simplified
with Douglas-Peucker (``cv2.approxPolyDP``, tolerance ``SIMPLIFY_M``; a
pinhole camera maps straight 3-D segments to straight image segments, so
nothing is lost beyond the tolerance) and cut into segments; crosswalk
polygons become closed rings.  Lanes also get vertex dots resampled every
``dot_spacing_m`` metres of arc length, which move through the image as the
camera moves and so carry the ego's odometry.

Drawing order (back to front): crosswalks, road edges, road lines, lanes,
lane dots, traffic-light poles; agents are drawn after the map.

:func:`draw_map` works on a whole clip at once: a coarse ground-plane cull
per (frame, segment) pair in cache-sized frame blocks, then the camera
transform, frustum clip and projection of the surviving pairs as contiguous
coordinate columns, then one ``cv2.polylines`` call per (frame, style) with
consecutive segments that share an endpoint chained into polylines
(:func:`chain_segments`; same pixels, far fewer arrays for OpenCV to convert).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from mad_sim.data.scenario import MapKind, RoadMap, SignalState
from mad_sim.render.camera import Camera, apply_affine

SHIFT = 4
"""Sub-pixel bits passed to OpenCV (coordinates are multiplied by 16)."""


def _fixed(uv: np.ndarray) -> np.ndarray:
    """Float pixels to OpenCV fixed-point int32 (``SHIFT`` fractional bits)."""
    return np.rint(uv * float(1 << SHIFT)).astype(np.int32)


COARSE_BLOCK = 1 << 15
"""(frame, item) pairs per block of the map's coarse view cull (cache-sized temporaries)."""

SIMPLIFY_M = 0.05
"""Douglas-Peucker tolerance (metres) for map polylines."""

LANE, ROAD_LINE, ROAD_EDGE, CROSSWALK = 0, 1, 2, 3
_KIND_GROUP = {MapKind.LANE: LANE, MapKind.ROAD_LINE: ROAD_LINE, MapKind.ROAD_EDGE: ROAD_EDGE}

LIGHT_RGB: Dict[int, Tuple[int, int, int]] = {
    SignalState.ARROW_STOP: (255, 0, 0),
    SignalState.STOP: (255, 0, 0),
    SignalState.FLASHING_STOP: (255, 0, 0),
    SignalState.ARROW_CAUTION: (255, 200, 0),
    SignalState.CAUTION: (255, 200, 0),
    SignalState.FLASHING_CAUTION: (255, 200, 0),
    SignalState.ARROW_GO: (0, 255, 0),
    SignalState.GO: (0, 255, 0),
}
"""Pole colour per traffic-signal state (UNKNOWN is not drawn)."""
LIGHT_POLE_M = 2.5
"""Height (metres) of the vertical segment drawn at a signal's stop point."""


@dataclass(eq=False)
class MapGeometry:
    """Drawable map, world frame.

    Attributes:
      seg_a, seg_b: [S, 3] float64 segment endpoints, metres.
      seg_group: [S] int8, LANE / ROAD_LINE / ROAD_EDGE / CROSSWALK.
      dots: [D, 3] float64 lane vertex dots, metres.
    """

    seg_a: np.ndarray
    seg_b: np.ndarray
    seg_group: np.ndarray
    dots: np.ndarray

    @classmethod
    def from_roadmap(cls, roadmap: RoadMap, dot_spacing_m: float = 4.0) -> "MapGeometry":
        seg_a: List[np.ndarray] = []
        seg_b: List[np.ndarray] = []
        groups: List[np.ndarray] = []
        dots: List[np.ndarray] = []
        for m in range(roadmap.num_features):
            kind = int(roadmap.kinds[m])
            pts = roadmap.polyline(m)
            if len(pts) < 2 or not np.isfinite(pts).all():
                continue
            if kind == MapKind.CROSSWALK:
                ring = np.concatenate([pts, pts[:1]])
                seg_a.append(ring[:-1])
                seg_b.append(ring[1:])
                groups.append(np.full(len(pts), CROSSWALK, np.int8))
                continue
            if kind not in _KIND_GROUP:
                continue
            simple = _simplify(pts)
            seg_a.append(simple[:-1])
            seg_b.append(simple[1:])
            groups.append(np.full(len(simple) - 1, _KIND_GROUP[MapKind(kind)], np.int8))
            if kind == MapKind.LANE and dot_spacing_m > 0:
                dots.append(_resample(pts, dot_spacing_m))

        def cat(xs, shape):
            return np.concatenate(xs) if xs else np.zeros(shape)

        return cls(
            seg_a=cat(seg_a, (0, 3)),
            seg_b=cat(seg_b, (0, 3)),
            seg_group=cat(groups, (0,)).astype(np.int8),
            dots=cat(dots, (0, 3)),
        )

    def near(self, xy: np.ndarray, radius: float) -> "MapGeometry":
        """The part within ``radius`` metres (ground distance) of any of the points ``xy`` [P, 2]."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        lo, hi = xy.min(0) - radius, xy.max(0) + radius
        box_a = ((self.seg_a[:, :2] >= lo) & (self.seg_a[:, :2] <= hi)).all(1)
        box_b = ((self.seg_b[:, :2] >= lo) & (self.seg_b[:, :2] <= hi)).all(1)
        # A segment crossing the box with both ends outside it is kept too (conservative midpoint test).
        mid = 0.5 * (self.seg_a[:, :2] + self.seg_b[:, :2])
        half = 0.5 * np.linalg.norm(self.seg_a[:, :2] - self.seg_b[:, :2], axis=1)
        box_m = ((mid >= lo - half[:, None]) & (mid <= hi + half[:, None])).all(1)
        keep = box_a | box_b | box_m
        dkeep = ((self.dots[:, :2] >= lo) & (self.dots[:, :2] <= hi)).all(1)
        return MapGeometry(self.seg_a[keep], self.seg_b[keep], self.seg_group[keep], self.dots[dkeep])


def _simplify(pts: np.ndarray) -> np.ndarray:
    """Douglas-Peucker on the ground projection, keeping each retained vertex's own z."""
    xy = pts[:, :2]
    origin = xy[0]
    approx = cv2.approxPolyDP((xy - origin).astype(np.float32).reshape(-1, 1, 2), SIMPLIFY_M, False).reshape(-1, 2)
    # approxPolyDP returns a subset of its input in order; recover the indices to keep the z values.
    rel = (xy - origin).astype(np.float32)
    idx = []
    j = 0
    for p in approx:
        while j < len(rel) and not (rel[j, 0] == p[0] and rel[j, 1] == p[1]):
            j += 1
        idx.append(min(j, len(rel) - 1))
    if idx[-1] != len(pts) - 1:
        idx.append(len(pts) - 1)
    return pts[np.unique(idx)]


def _resample(pts: np.ndarray, spacing: float) -> np.ndarray:
    """Points every ``spacing`` metres of 2-D arc length along a polyline (the first vertex included)."""
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts[:, :2], axis=0), axis=1))])
    q = np.arange(0.0, s[-1] + 1e-9, spacing)
    return np.stack([np.interp(q, s, pts[:, k]) for k in range(3)], -1)


_CACHE: Dict[int, Tuple["weakref.ref[RoadMap]", float, MapGeometry]] = {}


def map_geometry(roadmap: RoadMap, dot_spacing_m: float = 4.0) -> MapGeometry:
    """:meth:`MapGeometry.from_roadmap`, cached per live RoadMap object (maps are never modified)."""
    key = id(roadmap)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is roadmap and hit[1] == dot_spacing_m:
        return hit[2]
    geo = MapGeometry.from_roadmap(roadmap, dot_spacing_m)
    for k in [k for k, v in _CACHE.items() if v[0]() is None]:
        del _CACHE[k]
    _CACHE[key] = (weakref.ref(roadmap), dot_spacing_m, geo)
    return geo


def draw_map(
    images: np.ndarray,
    camera: Camera,
    world_to_vehicle: np.ndarray,
    geo: MapGeometry,
    colors: Dict[int, Tuple[int, int, int]],
    line_px: int,
    dot_px: int,
    edge_px: int,
    max_range_m: float,
    dot_range_m: float,
    draw_crosswalks: bool = True,
    lights: Optional[List[Optional[Tuple[np.ndarray, np.ndarray]]]] = None,
) -> None:
    """Draw the map into a batch of frames (in place), vectorised over frames.

    Args:
      images: [F, H, W, 3] uint8 (or one [H, W, 3] frame).
      world_to_vehicle: [F, 3, 4] (or [3, 4]) affines taking world points to
        each frame's camera vehicle frame.
      geo: the map (world frame).
      colors: RGB per group (LANE, ROAD_LINE, ROAD_EDGE, CROSSWALK).
      line_px, dot_px, edge_px: widths of map lines, lane dots and road edges (light poles are
        ``line_px + 1`` wide).
      max_range_m: segments whose ends are both farther than this (ground
        distance from the camera) are skipped.
      dot_range_m: lane dots farther than this are skipped (far dots merge into noise).
      lights: per frame, ``(stop_points [L, 3] world, states [L])`` or None.

    Within a frame the groups are drawn crosswalks, road edges, road lines,
    lanes, lane dots, light poles (one ``cv2.polylines`` call each).
    """
    if images.ndim == 3:
        images = images[None]
        world_to_vehicle = np.asarray(world_to_vehicle)[None]
        lights = [lights] if lights is not None and not isinstance(lights, list) else lights
    frames = images.shape[0]
    r = world_to_vehicle[:, :, :3]
    t = world_to_vehicle[:, :, 3]
    rc, tc = camera.vehicle_to_cam
    segs_a, segs_b, keys = [], [], []
    order = (CROSSWALK, ROAD_EDGE, ROAD_LINE, LANE) if draw_crosswalks else (ROAD_EDGE, ROAD_LINE, LANE)
    rank = np.full(4, -1)
    rank[list(order)] = np.arange(len(order))
    style_list: List[Tuple[Tuple[int, int, int], int]] = [(colors[g], edge_px if g == ROAD_EDGE else line_px) for g in order]
    # World -> camera per frame as [F, 12] rows (3x3 rotation then translation), applied elementwise
    # (no BLAS on tiny matrices).
    m_r = np.einsum("ij,fjk->fik", rc, r)
    m_t = np.einsum("ij,fj->fi", rc, t) + tc
    rows = np.concatenate([m_r.reshape(-1, 9), m_t], 1)
    cam_pos = camera.position
    # Ground-plane viewing wedge of the camera (for a coarse cull before the exact frustum clip).
    axis = camera.cam_to_vehicle[:3, 2]
    level = abs(axis[2]) < 0.5
    fwd = axis[:2] / max(np.hypot(axis[0], axis[1]), 1e-9)
    tan_h = max(abs(camera._bounds[0]), abs(camera._bounds[1]))

    def coarse(mid: np.ndarray, half: np.ndarray, radius: float) -> Tuple[np.ndarray, np.ndarray]:
        """(frame, item) index pairs of world points ``mid`` [S, 3] (with extent ``half``) near the view.

        Pairs come frame by frame (items ascending within a frame).  Frames are processed in blocks of
        about ``COARSE_BLOCK`` pairs, so the [frames, S] temporaries stay cache-sized.
        """
        step = max(1, COARSE_BLOCK // max(1, mid.shape[0]))
        if step >= frames:
            return coarse_block(mid, half, radius, 0, frames)
        parts = [coarse_block(mid, half, radius, f0, min(f0 + step, frames)) for f0 in range(0, frames, step)]
        return np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts])

    def coarse_block(mid: np.ndarray, half: np.ndarray, radius: float, f0: int, f1: int) -> Tuple[np.ndarray, np.ndarray]:
        x, y = mid[None, :, 0], mid[None, :, 1]
        rb, tb = r[f0:f1], t[f0:f1]
        # In-place forms of the [F, S] expressions, keeping their evaluation order (same rounding).
        gx = rb[:, 0, 0:1] * x
        gx += rb[:, 0, 1:2] * y
        gx += tb[:, 0:1] - cam_pos[0]
        gy = rb[:, 1, 0:1] * x
        gy += rb[:, 1, 1:2] * y
        gy += tb[:, 1:2] - cam_pos[1]
        lim = radius + half
        d2 = gx * gx
        d2 += gy * gy
        ok = d2 <= (lim * lim)[None, :]
        if level:
            along = gx * fwd[0]
            along += gy * fwd[1]
            across = gy * fwd[0]
            across -= gx * fwd[1]
            np.abs(across, out=across)
            slack = half[None, :] + 2.0
            ok &= along > -slack
            np.maximum(along, 0.0, out=along)
            along *= tan_h
            along += slack
            ok &= across <= along
        fi, si = np.nonzero(ok)
        if f0:
            fi += f0
        return fi, si

    # The per-frame rows as 12 contiguous columns: pairs come out of ``coarse`` frame by frame, so each
    # pair's row is a repeat of its frame's (no strided [P, 12] gather).
    cols = np.ascontiguousarray(rows.T)

    def frame_rows(fi: np.ndarray) -> np.ndarray:
        """[12, P] the rows of frames ``fi`` (ascending) as contiguous columns."""
        return np.repeat(cols, np.bincount(fi, minlength=frames), axis=1)

    def to_cam(xyz: Tuple[np.ndarray, np.ndarray, np.ndarray], m: np.ndarray) -> Tuple[np.ndarray, ...]:
        """Camera-frame coordinates ``(x, y, z)`` [P] of world points ``xyz`` [P] with per-point rows ``m``."""
        x, y, z = xyz
        return tuple(m[3 * i] * x + m[3 * i + 1] * y + m[3 * i + 2] * z + m[9 + i] for i in range(3))

    def columns(p: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        return p[:, 0].copy(), p[:, 1].copy(), p[:, 2].copy()

    if len(geo.seg_a):
        use = np.flatnonzero(rank[geo.seg_group] >= 0)
        sa, sb = geo.seg_a[use], geo.seg_b[use]
        mid = 0.5 * (sa + sb)
        half = 0.5 * np.hypot(sb[:, 0] - sa[:, 0], sb[:, 1] - sa[:, 1])
        fi, si = coarse(mid, half, max_range_m)
        m = frame_rows(fi)
        segs_a.append(to_cam(tuple(c[si] for c in columns(sa)), m))
        segs_b.append(to_cam(tuple(c[si] for c in columns(sb)), m))
        keys.append(fi * 16 + rank[geo.seg_group[use[si]]])
    if len(geo.dots) and dot_px > 0:
        fi, si = coarse(geo.dots, np.zeros(len(geo.dots)), dot_range_m)
        p = to_cam(tuple(c[si] for c in columns(geo.dots)), frame_rows(fi))
        segs_a.append(p)
        segs_b.append(p)
        keys.append(fi * 16 + len(style_list))
    style_list.append((colors[LANE], dot_px))
    if lights is not None:
        pole_px = line_px + 1
        for rgb in LIGHT_RGB.values():
            if (rgb, pole_px) not in style_list:
                style_list.append((rgb, pole_px))
        for f, lt in enumerate(lights):
            if lt is None or not len(lt[0]):
                continue
            base = apply_affine(apply_affine(lt[0], r[f], t[f]), rc, tc)
            known = np.array([int(x) in LIGHT_RGB for x in lt[1]], bool)
            if not known.any():
                continue
            base = base[known]
            segs_a.append(columns(base))
            segs_b.append(columns(base + rc[:, 2] * LIGHT_POLE_M))  # the vehicle's up axis seen from the camera
            keys.append(f * 16 + np.array([style_list.index((LIGHT_RGB[int(x)], pole_px)) for x in lt[1][known]]))
    if not keys:
        return
    ax, ay, az = (np.concatenate([c[k] for c in segs_a]) for k in range(3))
    bx, by, bz = (np.concatenate([c[k] for c in segs_b]) for k in range(3))
    key = np.concatenate(keys)
    ac, bc, keep = camera.clip_segments_xyz((ax, ay, az), (bx, by, bz))
    # Kept segments in draw-call order (stable: within a call they keep their order) in one gather.
    kept = np.flatnonzero(keep)
    if not kept.size:
        return
    s = kept[np.argsort(key[kept], kind="stable")]
    key = key[s]
    pts = np.empty((s.size, 2, 2), np.int32)
    for j, end in enumerate((ac, bc)):
        for i, uv in enumerate(camera.project_xyz(end[0][s], end[1][s], end[2][s])):
            pts[:, j, i] = _fixed(uv)
    lines, line_key = chain_segments(pts, key)
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(line_key)) + 1, [line_key.size]]).tolist()
    for i0, i1 in zip(cuts[:-1], cuts[1:]):
        f, g = divmod(int(line_key[i0]), 16)
        if f < frames:
            rgb, width = style_list[g]
            cv2.polylines(images[f], lines[i0:i1], False, rgb, width, cv2.LINE_8, SHIFT)


def chain_segments(pts: np.ndarray, key: np.ndarray) -> Tuple[List[np.ndarray], np.ndarray]:
    """Join consecutive segments that share an endpoint into polylines.

    Args:
      pts: [S, 2, 2] int32 fixed-point segment endpoints ``(a, b)``, grouped by ``key``.
      key: [S] int draw-call key (frame * 16 + style) of each segment.

    Returns:
      ``(lines, line_key)``: the polylines as a list of [k, 2] int32 vertex arrays (``k >= 2``) in the
      segments' order, and [len(lines)] their keys.  Segment ``i + 1`` continues segment ``i``'s polyline
      when ``b_i == a_{i+1}`` exactly and both have the same key.

    ``cv2.polylines`` draws a polyline as its segments one by one (a thick segment's round caps at both
    ends of the first segment and at the far end of each later one, so every joint still gets its cap),
    all in one colour: the pixels are exactly those of the separate segments, while OpenCV's per-array
    conversion cost is paid once per polyline instead of once per segment (4x fewer arrays on the
    WOMD clip).
    """
    n = key.shape[0]
    if n == 0:
        return [], key[:0]
    # Each (x, y) int32 pair viewed as one int64, so vertices compare and move as single items.
    packed = np.ascontiguousarray(pts, np.int32).reshape(n, 4).view(np.int64)  # [S, 2]: a, b
    a, b = packed[:, 0], packed[:, 1]
    last = np.empty(n, bool)  # segment ends its polyline: its b is a vertex too
    np.not_equal(b[:-1], a[1:], out=last[:-1])
    last[:-1] |= key[:-1] != key[1:]
    last[-1] = True
    ends = np.flatnonzero(last)
    pos_a = np.arange(n) + (np.cumsum(last) - last)  # index of each segment's a in the vertex list
    verts = np.empty(n + ends.size, np.int64)
    verts[pos_a] = a
    verts[pos_a[ends] + 1] = b[ends]
    verts = verts.view(np.int32).reshape(-1, 2)
    starts = np.concatenate([[0], ends[:-1] + 1])
    bounds = pos_a[starts].tolist() + [verts.shape[0]]
    lines = [verts[i0:i1] for i0, i1 in zip(bounds[:-1], bounds[1:])]
    return lines, key[starts]
