"""Top-down (bird's-eye) view for people: the ego, its route, agents, signals and a scale bar.

The view is centred on the viewpoint agent with its heading pointing up.
A point ``(x, y)`` of the viewpoint's ego frame (x forward, y left, metres)
lands at pixel ``u = cu - y s``, ``v = cv - x s`` with ``s = min(W, H) /
(2 extent_m)`` pixels per metre and ``(cu, cv)`` the image centre
(``extent_m`` 30 m by default: a view 60 m across, about 4 px per metre at 256 px).

Drawn, back to front (colours in :data:`BEV_COLORS`):

- map: lane centre lines dim grey, road lines mid grey, road edges light
  grey, crosswalks dark grey (anti-aliased);
- the viewpoint's logged path from the present step on (its route), blue;
- traffic signals at the step: a bar across the controlled lane at its stop
  point, red (stop, arrow stop, flashing stop), yellow (caution, arrow
  caution, flashing caution), green (go, arrow go), grey (unknown);
- agents (crisp, exact colours): box footprints whose four sides take the
  colours of the car skeleton's lower ring (front side first) with a white
  heading tick from the centre to the front, pedestrians as OpenPose-coloured
  discs, cyclists in the cyclist colours, anything else grey;
- the viewpoint agent filled :data:`EGO_RGB` with a white heading arrow;
- a scale bar (5, 10, 20, 50 or 100 m, about a fifth of the width) with its length, bottom left.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union, cast

import cv2
import numpy as np

from mad_sim.data.scenario import ObjectType, SignalState
from mad_sim.errors import RenderError
from mad_sim.render.draw import PoseStyle
from mad_sim.render.map_layer import CROSSWALK, LANE, ROAD_EDGE, ROAD_LINE, map_geometry
from mad_sim.render.skeleton import CYCLIST_FRAME_RGB, CYCLIST_RIDER_RGB, OPENPOSE_COLORS, VEHICLE

_SHIFT = 4
EGO_RGB = (0, 190, 255)
"""Fill of the viewpoint agent."""
BEV_COLORS = {
    "lane": (70, 70, 70),
    "road_line": (130, 130, 130),
    "road_edge": (200, 200, 200),
    "crosswalk": (90, 90, 90),
    "route": (40, 100, 220),
    "scale": (255, 255, 255),
}
"""Map, route and scale-bar colours of the BEV (RGB)."""
_RED, _YELLOW, _GREEN, _GREY = (235, 40, 40), (245, 200, 0), (40, 210, 70), (130, 130, 130)
SIGNAL_RGB = {
    SignalState.UNKNOWN: _GREY,
    SignalState.ARROW_STOP: _RED,
    SignalState.STOP: _RED,
    SignalState.FLASHING_STOP: _RED,
    SignalState.ARROW_CAUTION: _YELLOW,
    SignalState.CAUTION: _YELLOW,
    SignalState.FLASHING_CAUTION: _YELLOW,
    SignalState.ARROW_GO: _GREEN,
    SignalState.GO: _GREEN,
}
"""Bar colour of each signal state."""
_SIGNAL_BY_CODE = {int(k): v for k, v in SIGNAL_RGB.items()}
SIGNAL_BAR_M = 3.6
"""Length of a signal's bar across its lane (m)."""
_SCALE_CHOICES_M = (5, 10, 20, 50, 100)


def _fx(p: np.ndarray) -> Sequence[np.ndarray]:
    """[S, k, 2] pixels as int32 fixed point; cv2 takes the array as S polylines (its stubs ask for a Sequence)."""
    return cast(Sequence[np.ndarray], np.rint(p * (1 << _SHIFT)).astype(np.int32))


def render_bev(
    state,
    size: Union[int, Tuple[int, int]] = 256,
    extent_m: float = 30.0,
    viewpoint: Optional[int] = None,
    t: Optional[int] = None,
    style: Optional[PoseStyle] = None,
) -> np.ndarray:
    """[H, W, 3] uint8 top-down view of a :class:`~mad_sim.world.state.WorldState`.

    Args:
      state: the world state (its simulated trajectory is drawn).
      size: ``S`` for S x S pixels or ``(W, H)``.
      extent_m: metres from the centre to the nearest image border.
      viewpoint: track index at the centre (default: the state's ego).
      t: step (default: the present step).
    """
    w, h = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    if w < 1 or h < 1 or not extent_m > 0:
        raise RenderError(f"BEV needs a positive size and extent, got {w}x{h}, {extent_m} m")
    st = style or PoseStyle()
    sc = state.scenario
    tr = state.sim
    k = state.timestep if t is None else int(t)
    vp = state.ego_index if viewpoint is None else int(viewpoint)
    src = sc.source or sc.scenario_id
    if not 0 <= vp < tr.num_objects or not 0 <= k < tr.num_steps or not tr.valid[vp, k]:
        raise RenderError(f"{src}: BEV viewpoint track {vp} is not valid at step {k}")
    o_xy, yaw = tr.xyz[vp, k, :2], float(tr.heading[vp, k])
    if not (np.isfinite(o_xy).all() and np.isfinite(yaw)):
        raise RenderError(f"{src}: BEV viewpoint track {vp} has a non-finite pose at step {k}")
    s = min(w, h) / (2.0 * extent_m)
    c, sn = np.cos(yaw), np.sin(yaw)
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])

    def to_px(xy: np.ndarray) -> np.ndarray:
        d = xy[..., :2] - o_xy
        ex, ey = c * d[..., 0] + sn * d[..., 1], -sn * d[..., 0] + c * d[..., 1]
        return np.stack([centre[0] - ey * s, centre[1] - ex * s], -1)

    img = np.zeros((h, w, 3), np.uint8)
    lw = max(1, int(round(min(w, h) / 256)))
    geo = map_geometry(sc.roadmap, st.lane_dot_spacing_m)
    if len(geo.seg_a):
        pa, pb = to_px(geo.seg_a), to_px(geo.seg_b)
        lim = 4.0 * max(w, h)
        ok = (np.abs(pa - centre) < lim).all(1) & (np.abs(pb - centre) < lim).all(1)
        colors = {
            CROSSWALK: BEV_COLORS["crosswalk"],
            ROAD_EDGE: BEV_COLORS["road_edge"],
            ROAD_LINE: BEV_COLORS["road_line"],
            LANE: BEV_COLORS["lane"],
        }
        for g in (CROSSWALK, LANE, ROAD_LINE, ROAD_EDGE):
            sel = ok & (geo.seg_group == g)
            if sel.any():
                cv2.polylines(img, _fx(np.stack([pa[sel], pb[sel]], 1)), False, colors[g], lw, cv2.LINE_AA, _SHIFT)
    _draw_route(img, state, vp, k, to_px, lw)
    _draw_signals(img, sc, k, to_px, s, lw)

    valid = tr.valid[:, k]
    idx = np.flatnonzero(valid)
    xyz, hd, sz = tr.xyz[idx, k], tr.heading[idx, k], tr.size[idx, k].astype(np.float64)
    bad = ~(np.isfinite(xyz).all(1) & np.isfinite(hd) & np.isfinite(sz).all(1) & (sz > 0).all(1))
    if bad.any():
        raise RenderError(f"{src}: agent {int(idx[np.argmax(bad)])} has a non-finite pose or empty box at step {k}")
    types = sc.object_types[idx]
    # Footprint corners: front-left, front-right, rear-right, rear-left (the car skeleton's lower ring).
    half_l, half_w = sz[:, 0:1] / 2, sz[:, 1:2] / 2
    local = np.stack(
        [np.concatenate([half_l, half_l, -half_l, -half_l], 1), np.concatenate([half_w, -half_w, -half_w, half_w], 1)], -1
    )
    ch, sh = np.cos(hd)[:, None], np.sin(hd)[:, None]
    world = np.stack(
        [xyz[:, None, 0] + ch * local[..., 0] - sh * local[..., 1], xyz[:, None, 1] + sh * local[..., 0] + ch * local[..., 1]], -1
    )
    px = to_px(world)  # [n, 4, 2]
    mid = to_px(xyz[:, :2])
    front = to_px(xyz[:, :2] + np.stack([np.cos(hd), np.sin(hd)], -1) * sz[:, 0:1] / 2)
    on = ((px > -2 * w) & (px < 3 * max(w, h))).all((1, 2))
    is_ego = idx == vp
    boxy = on & (types != ObjectType.PEDESTRIAN) & ~is_ego
    veh = boxy & (types == ObjectType.VEHICLE)
    cyc = boxy & (types == ObjectType.CYCLIST)
    other = boxy & ~veh & ~cyc
    for e in range(4):
        if veh.any():
            seg = np.stack([px[veh, e], px[veh, (e + 1) % 4]], 1)
            cv2.polylines(img, _fx(seg), False, tuple(int(v) for v in VEHICLE.edge_colors[e]), lw, cv2.LINE_8, _SHIFT)
    for sel, rgb in ((cyc, CYCLIST_FRAME_RGB), (other, (150, 150, 150))):
        if sel.any():
            cv2.polylines(img, _fx(px[sel]), True, rgb, lw, cv2.LINE_8, _SHIFT)
    heads = veh | cyc | other
    if heads.any():
        cv2.polylines(img, _fx(np.stack([mid[heads], front[heads]], 1)), False, (255, 255, 255), lw, cv2.LINE_8, _SHIFT)
    ped = on & (types == ObjectType.PEDESTRIAN)
    if ped.any():
        r = max(2, int(round(0.4 * s)))
        cv2.polylines(
            img,
            _fx(np.stack([mid[ped], mid[ped]], 1)),
            False,
            tuple(int(v) for v in OPENPOSE_COLORS[1]),
            2 * r,
            cv2.LINE_8,
            _SHIFT,
        )
        cv2.polylines(
            img,
            _fx(np.stack([mid[ped], front[ped] + (front[ped] - mid[ped])], 1)),
            False,
            CYCLIST_RIDER_RGB,
            lw,
            cv2.LINE_8,
            _SHIFT,
        )
    ego_rows = np.flatnonzero(is_ego)
    if ego_rows.size:  # the viewpoint: filled, outlined, and an arrow from its centre past its front
        j = int(ego_rows[0])
        cv2.fillPoly(img, _fx(px[j : j + 1]), EGO_RGB, cv2.LINE_AA, _SHIFT)
        cv2.polylines(img, _fx(px[j : j + 1]), True, (255, 255, 255), lw, cv2.LINE_AA, _SHIFT)
        tip = mid[j] + 1.6 * (front[j] - mid[j])
        cv2.arrowedLine(img, _pt(mid[j]), _pt(tip), (255, 255, 255), lw + 1, cv2.LINE_AA, _SHIFT, 0.35)
    _draw_scale_bar(img, s)
    return img


def _pt(p: np.ndarray) -> Tuple[int, int]:
    q = np.rint(np.asarray(p) * (1 << _SHIFT)).astype(np.int64)
    return int(q[0]), int(q[1])


def _draw_route(img: np.ndarray, state, vp: int, k: int, to_px, lw: int) -> None:
    """The viewpoint's logged positions from step ``k`` on, as a polyline."""
    log = state.log
    if vp >= log.num_objects or k >= log.num_steps:
        return
    ok = log.valid[vp, k:]
    pts = log.xy[vp, k:][ok]
    if len(pts) < 2:
        return
    px = to_px(pts)
    cv2.polylines(img, [np.rint(px * (1 << _SHIFT)).astype(np.int32)], False, BEV_COLORS["route"], lw + 1, cv2.LINE_AA, _SHIFT)


def _draw_signals(img: np.ndarray, sc, k: int, to_px, s: float, lw: int) -> None:
    """A bar across each signal-controlled lane at its stop point, coloured by the state at step ``k``."""
    tl = sc.traffic_lights
    if tl.valid.size == 0:
        return
    t = min(max(k, 0), tl.valid.shape[0] - 1)
    slots = np.flatnonzero(tl.valid[t])
    if slots.size == 0:
        return
    rm = sc.roadmap
    index = {int(i): m for m, i in enumerate(rm.ids)}
    thick = max(2, int(round(0.8 * s)))
    for slot in slots:
        stop = np.asarray(tl.stop_points[t, slot, :2], np.float64)
        m = index.get(int(tl.lane_ids[t, slot]))
        direction = np.array([1.0, 0.0])
        if m is not None:
            line = rm.polyline(m)[:, :2]
            if len(line) > 1:
                seg = np.diff(line, axis=0)
                i = int(np.argmin(np.linalg.norm(line[:-1] + 0.5 * seg - stop, axis=-1)))
                n = float(np.hypot(*seg[i]))
                direction = seg[i] / n if n > 1e-9 else direction
        across = np.array([-direction[1], direction[0]]) * (SIGNAL_BAR_M / 2)
        a, b = to_px(np.stack([stop - across, stop + across]))
        color = _SIGNAL_BY_CODE.get(int(tl.states[t, slot]), _GREY)
        cv2.line(img, _pt(a), _pt(b), color, thick, cv2.LINE_AA, _SHIFT)


def _draw_scale_bar(img: np.ndarray, s: float) -> None:
    """A bar of a round length (about a fifth of the width) with its label, bottom left."""
    h, w = img.shape[:2]
    length = min(_SCALE_CHOICES_M, key=lambda m: abs(m * s - 0.2 * w))
    px = length * s
    x0, y0 = 0.04 * w, h - 0.05 * h
    lw = max(1, int(round(w / 256)))
    col = BEV_COLORS["scale"]
    cv2.line(img, _pt(np.array([x0, y0])), _pt(np.array([x0 + px, y0])), col, lw + 1, cv2.LINE_AA, _SHIFT)
    for x in (x0, x0 + px):
        cv2.line(img, _pt(np.array([x, y0 - 0.015 * h])), _pt(np.array([x, y0 + 0.015 * h])), col, lw, cv2.LINE_AA, _SHIFT)
    scale = 0.35 * w / 256
    cv2.putText(
        img, f"{length} m", (int(x0 + px + 0.02 * w), int(y0 + 0.015 * h)), cv2.FONT_HERSHEY_SIMPLEX, scale, col, 1, cv2.LINE_AA
    )
