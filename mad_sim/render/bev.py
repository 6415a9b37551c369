"""Top-down (bird's-eye) debug view for people, in the pose video's colours.

The view is centred on the viewpoint agent with its heading pointing up.
A point ``(x, y)`` of the viewpoint's ego frame (x forward, y left, metres)
lands at pixel ``u = cu - y s``, ``v = cv - x s`` with ``s = min(W, H) /
(2 extent_m)`` pixels per metre and ``(cu, cv)`` the image centre.

Map: lanes white, road lines / edges / crosswalks grey (as in the pose
video, anti-aliased).  Agents (crisp, exact colours): box footprints whose four sides take the colours of the car
skeleton's lower ring (front side first), a line from the centre to the
front, pedestrians as OpenPose-coloured discs, cyclists in the cyclist
colours, anything else grey; the viewpoint agent is filled dark grey.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union, cast

import cv2
import numpy as np

from mad_sim.data.scenario import ObjectType
from mad_sim.errors import RenderError
from mad_sim.render.draw import PoseStyle
from mad_sim.render.map_layer import CROSSWALK, LANE, ROAD_EDGE, ROAD_LINE, map_geometry
from mad_sim.render.skeleton import CYCLIST_FRAME_RGB, CYCLIST_RIDER_RGB, OPENPOSE_COLORS, VEHICLE

_SHIFT = 4


def _fx(p: np.ndarray) -> Sequence[np.ndarray]:
    """[S, k, 2] pixels as int32 fixed point; cv2 takes the array as S polylines (its stubs ask for a Sequence)."""
    return cast(Sequence[np.ndarray], np.rint(p * (1 << _SHIFT)).astype(np.int32))


def render_bev(state, size: Union[int, Tuple[int, int]] = 256, extent_m: float = 50.0,
               viewpoint: Optional[int] = None, t: Optional[int] = None,
               style: Optional[PoseStyle] = None) -> np.ndarray:
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
        colors = {CROSSWALK: st.crosswalk_rgb, ROAD_EDGE: st.road_edge_rgb, ROAD_LINE: st.road_line_rgb,
                  LANE: st.lane_rgb}
        for g in (CROSSWALK, ROAD_EDGE, ROAD_LINE, LANE):
            sel = ok & (geo.seg_group == g)
            if sel.any():
                cv2.polylines(img, _fx(np.stack([pa[sel], pb[sel]], 1)), False, colors[g], lw, cv2.LINE_AA, _SHIFT)
    if len(geo.dots):
        d = to_px(geo.dots)
        d = d[((d >= 0) & (d < [w, h])).all(1)]
        if len(d):
            cv2.polylines(img, _fx(np.stack([d, d], 1)), False, st.lane_rgb, lw + 1, cv2.LINE_8, _SHIFT)

    valid = tr.valid[:, k]
    idx = np.flatnonzero(valid)
    xyz, hd, sz = tr.xyz[idx, k], tr.heading[idx, k], tr.size[idx, k].astype(np.float64)
    bad = ~(np.isfinite(xyz).all(1) & np.isfinite(hd) & np.isfinite(sz).all(1) & (sz > 0).all(1))
    if bad.any():
        raise RenderError(f"{src}: agent {int(idx[np.argmax(bad)])} has a non-finite pose or empty box at step {k}")
    types = sc.object_types[idx]
    # Footprint corners: front-left, front-right, rear-right, rear-left (the car skeleton's lower ring).
    half_l, half_w = sz[:, 0:1] / 2, sz[:, 1:2] / 2
    local = np.stack([np.concatenate([half_l, half_l, -half_l, -half_l], 1),
                      np.concatenate([half_w, -half_w, -half_w, half_w], 1)], -1)
    ch, sh = np.cos(hd)[:, None], np.sin(hd)[:, None]
    world = np.stack([xyz[:, None, 0] + ch * local[..., 0] - sh * local[..., 1],
                      xyz[:, None, 1] + sh * local[..., 0] + ch * local[..., 1]], -1)
    px = to_px(world)  # [n, 4, 2]
    mid = to_px(xyz[:, :2])
    front = to_px(xyz[:, :2] + np.stack([np.cos(hd), np.sin(hd)], -1) * sz[:, 0:1] / 2)
    on = ((px > -2 * w) & (px < 3 * max(w, h))).all((1, 2))
    is_ego = idx == vp
    if (on & is_ego).any():
        cv2.fillPoly(img, _fx(px[on & is_ego]), (80, 80, 80), cv2.LINE_AA, _SHIFT)
    boxy = on & (types != ObjectType.PEDESTRIAN)
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
        cv2.polylines(img, _fx(np.stack([mid[heads], front[heads]], 1)), False, (255, 255, 255), lw, cv2.LINE_8,
                      _SHIFT)
    ped = on & (types == ObjectType.PEDESTRIAN)
    if ped.any():
        r = max(2, int(round(0.4 * s)))
        cv2.polylines(img, _fx(np.stack([mid[ped], mid[ped]], 1)), False, tuple(int(v) for v in OPENPOSE_COLORS[1]),
                      2 * r, cv2.LINE_8, _SHIFT)
        cv2.polylines(img, _fx(np.stack([mid[ped], front[ped] + (front[ped] - mid[ped])], 1)), False,
                      CYCLIST_RIDER_RGB, lw, cv2.LINE_8, _SHIFT)
    return img
