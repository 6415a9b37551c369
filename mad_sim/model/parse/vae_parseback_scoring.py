"""Parse-back through the VAE, scoring: what the log says each clip frame holds, and how a parse compares.

The protocol is :mod:`mad_sim.model.parse.vae_parseback`'s.

**Scoring per frame** (:func:`score_frame`).  A vehicle is *visible* when
its skeleton owns at least ``min_pixels`` (6) pixels of the clean frame
(:func:`~mad_sim.render.draw.agent_id_mask`, occlusion included).
Detections are the tracked vehicles the parser reports visible (their fit)
and the entering detections typed vehicle.  The gate is ``gate_m + gate_frac
* range`` (2 m + 10 %).  A tracked detection is a true positive when its own
vehicle is visible and the fit lies within the gate of the log, *ignored*
when it is within the gate but its vehicle is not visible (too few pixels),
else a false positive; entering detections are then matched greedily
(nearest first) to visible vehicles not yet found, within the gate; those
left are ignored when within the gate of a valid vehicle that is not
visible, else false positives.  **Recall** = found / visible; **precision**
= true / (true + false) detections; position error (ground, metres) and
heading error (degrees) over found vehicles; the *tracking* error is the
error of the position the closed loop would use (the fit, or the prediction
where no fit was found) over visible tracked vehicles, ungated.  Bands
(:data:`BANDS`) are ground range from the camera to the logged position
(detections that match nothing: their own position).

**Lane lines.**  The map alone is rendered with the same camera (traffic
lights off); its lit pixels (max channel > :data:`LIT`: lane centrelines
and their dots, road lines, road edges) not owned by an agent in the clean
frame are the clean frame's line pixels; one is *kept* when a lit pixel of
the decoded frame lies within 1 px (3x3).  Each pixel is banded by the
ground range of its ray's hit with the flat ground ``z = 0``
(:func:`pixel_ground_range`; pixels at or above the horizon have none and
count in ``all`` only).  On clean frames this is 1 by construction.  Its
counterpart, *line precision*, is the share of the decoded frame's lit
pixels (more than 2 px from any agent pixel of the clean frame) that lie
within 1 px of a line pixel: a bright blur near the horizon "keeps" every
far line but scores low here.  (The same lit threshold and 1-px radius as
:func:`mad_sim.model.evaluation.vae_metrics.line_metrics`, which ``parse/``
may not import: it sits in ``training/``, and it has no per-band or
map-only mask.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from mad_sim.data.scenario import ObjectType, Scenario, Trajectory
from mad_sim.model.parse.results import ParseResult
from mad_sim.render.camera import Camera
from mad_sim.render.draw import AgentPoses, PoseStyle, agent_id_mask
from mad_sim.render.pose import PoseRenderer, travelled_distance
from mad_sim.render.skeleton import walking_phase

BANDS: tuple[tuple[float, float], ...] = ((0.0, 15.0), (15.0, 30.0), (30.0, 50.0), (50.0, np.inf))
"""Distance bands, ground range from the camera (metres)."""
LIT = 60.0
"""A pixel is lit when its max channel exceeds this (as in :mod:`mad_sim.model.evaluation.vae_metrics`)."""
LINE_KINDS = ("lane", "road_line", "road_edge")


def band_name(lo: float, hi: float) -> str:
    return f"{lo:.0f}-{hi:.0f} m" if np.isfinite(hi) else f"{lo:.0f}+ m"


def band_index(ranges: np.ndarray, bands: Sequence[tuple[float, float]] = BANDS) -> np.ndarray:
    """``[...]`` int: the band of each range (metres), -1 for NaN / negative / beyond the last band."""
    r = np.asarray(ranges, np.float64)
    out = np.full(r.shape, -1, np.int64)
    with np.errstate(invalid="ignore"):
        for i, (lo, hi) in enumerate(bands):
            out[(r >= lo) & (r < hi)] = i
    return out


def pixel_ground_range(camera: Camera) -> np.ndarray:
    """``[H, W]`` ground range (metres) from the camera to where each pixel's ray meets ``z = 0`` (NaN: none)."""
    v, u = np.mgrid[0 : camera.height, 0 : camera.width].astype(np.float64)
    p = camera.backproject_ground(np.stack([u, v], -1), 0.0)
    c = camera.position
    return np.hypot(p[..., 0] - c[0], p[..., 1] - c[1])


def clip_agents(renderer: PoseRenderer, scenario: Scenario, seat: int, steps: np.ndarray) -> AgentPoses:
    """The agents of frames ``steps`` in the seat's vehicle frames, as :meth:`PoseRenderer.render_scenario` draws them
    (``ids`` = track rows, ``frame`` = index into ``steps``)."""
    tr = scenario.tracks
    w2v = renderer.viewpoint_transforms(tr, seat, steps, scenario.source)
    present = tr.valid[:, steps].T.copy()
    present[:, seat] = False
    fi, ai = np.nonzero(present)
    ti = steps[fi]
    r, t = w2v[:, :, :3], w2v[:, :, 3]
    xyz = np.einsum("nij,nj->ni", r[fi], tr.xyz[ai, ti]) + t[fi]
    yaw = np.arctan2(r[:, 0, 1], r[:, 0, 0])
    types = scenario.object_types[ai]
    walker = (types == ObjectType.PEDESTRIAN) | (types == ObjectType.CYCLIST)
    phase = np.zeros(ai.size)
    if walker.any():
        rows = np.unique(ai[walker])
        dist = travelled_distance(tr, rows)
        phase[walker] = walking_phase(dist[np.searchsorted(rows, ai[walker]), ti[walker]])
    return AgentPoses(
        xyz=xyz,
        heading=tr.heading[ai, ti] - yaw[fi],
        size=tr.size[ai, ti],
        types=types,
        phase=phase,
        speed=np.hypot(tr.velocity[ai, ti, 0], tr.velocity[ai, ti, 1]),
        ids=ai,
        frame=fi,
    )


def agent_masks(renderer: PoseRenderer, agents: AgentPoses, frames: int) -> np.ndarray:
    """``[frames, H, W]`` int32 track row owning each pixel (-1: none)."""
    cam = renderer.camera
    out = np.full((frames, cam.height, cam.width), -1, np.int32)
    if len(agents):
        m = agent_id_mask(cam, agents, renderer.style)
        m = m[None] if m.ndim == 2 else m
        out[: m.shape[0]] = m
    return out


def map_frames(renderer: PoseRenderer, scenario: Scenario, seat: int, t0: int, frames: int) -> np.ndarray:
    """``[frames, H, W, 3]`` the map alone (no agents, no traffic lights) from the seat over ``t0 .. t0 + frames - 1``."""
    tr = scenario.tracks
    valid = np.zeros_like(tr.valid)
    valid[seat] = tr.valid[seat]
    bare = dataclasses.replace(scenario, tracks=Trajectory(tr.xyz, tr.heading, tr.velocity, tr.size, valid))
    r = PoseRenderer(camera=renderer.camera, style=dataclasses.replace(renderer.style, draw_traffic_lights=False))
    return r.render_scenario(bare, seat, t0, t0 + frames)


def line_kinds(map_only: np.ndarray, style: PoseStyle) -> np.ndarray:
    """``[F, H, W]`` int8: index into :data:`LINE_KINDS` of each lit map pixel (nearest style grey), -1 unlit."""
    mx = map_only.max(-1).astype(np.float32)
    greys = np.array([max(style.lane_rgb), max(style.road_line_rgb), max(style.road_edge_rgb)], np.float32)
    kind = np.abs(mx[..., None] - greys).argmin(-1).astype(np.int8)
    return np.where(mx > LIT, kind, np.int8(-1))


@dataclass
class Samples:
    """What one frame source (clean or decoded) gave, pooled over clips.

    Vehicles (one entry per visible vehicle per frame): ``range`` (m), ``found``, ``err`` (m, NaN unless
    found), ``yaw_err`` (rad), ``in_prior`` (in the parse's prior at all: for the closed loop, tracked from the
    anchor), ``tracked`` (still tracked at this frame), ``track_err`` (m, NaN unless tracked), ``prior_err`` (m, the
    parser's constant-velocity prediction from its prior, NaN unless tracked: the no-image baseline).
    Detections (ignored ones left out): ``det_range`` (m), ``det_true``.
    Lane lines: ``lane_total`` / ``lane_kept`` ``[len(BANDS) + 1]`` pixel counts per band (last: all), and
    ``kind_total`` / ``kind_kept`` ``[3]`` per :data:`LINE_KINDS` within the last finite band;
    ``lit_total`` / ``lit_on_line``: the frames' lit pixels more than 2 px from an agent pixel of the clean frame,
    and those within 1 px of a line pixel (line precision: a smear that lights everything keeps every line).
    """

    range: list[float] = field(default_factory=list)
    found: list[bool] = field(default_factory=list)
    err: list[float] = field(default_factory=list)
    yaw_err: list[float] = field(default_factory=list)
    in_prior: list[bool] = field(default_factory=list)
    tracked: list[bool] = field(default_factory=list)
    track_err: list[float] = field(default_factory=list)
    prior_err: list[float] = field(default_factory=list)
    det_range: list[float] = field(default_factory=list)
    det_true: list[bool] = field(default_factory=list)
    lane_total: np.ndarray = field(default_factory=lambda: np.zeros(len(BANDS) + 1, np.int64))
    lane_kept: np.ndarray = field(default_factory=lambda: np.zeros(len(BANDS) + 1, np.int64))
    lit_total: np.ndarray = field(default_factory=lambda: np.zeros(len(BANDS) + 1, np.int64))
    lit_on_line: np.ndarray = field(default_factory=lambda: np.zeros(len(BANDS) + 1, np.int64))
    kind_total: np.ndarray = field(default_factory=lambda: np.zeros(len(LINE_KINDS), np.int64))
    kind_kept: np.ndarray = field(default_factory=lambda: np.zeros(len(LINE_KINDS), np.int64))
    frames: int = 0


def _grow(mask: np.ndarray, radius: int) -> np.ndarray:
    k = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return np.stack([cv2.dilate(m, k) for m in mask.astype(np.uint8)]).astype(bool)


def _count(total: np.ndarray, mask: np.ndarray, band: np.ndarray) -> None:
    """Add per-band pixel counts of ``mask`` to ``total [len(BANDS) + 1]`` (last: all pixels)."""
    nb = len(BANDS)
    total[:nb] += np.bincount(band[mask & (band >= 0)], minlength=nb)[:nb]
    total[nb] += int(mask.sum())


def add_lanes(s: Samples, kinds: np.ndarray, owned: np.ndarray, decoded: np.ndarray, ground_band: np.ndarray) -> None:
    """Count line pixels (``kinds >= 0`` and not ``owned`` by an agent) and those ``decoded`` keeps (module doc);
    and the decoded frame's lit pixels more than 2 px from any agent pixel, and those within 1 px of a line."""
    px = (kinds >= 0) & ~owned
    lit = np.asarray(decoded).max(-1) > LIT
    kept = px & _grow(lit, 1)
    b = np.broadcast_to(ground_band, px.shape)
    _count(s.lane_total, px, b)
    _count(s.lane_kept, kept, b)
    free = lit & ~_grow(owned, 2)
    _count(s.lit_total, free, b)
    _count(s.lit_on_line, free & _grow(kinds >= 0, 1), b)
    near = (b >= 0) & (b < len(BANDS) - 1)
    s.kind_total += np.bincount(kinds[px & near], minlength=len(LINE_KINDS))[: len(LINE_KINDS)]
    s.kind_kept += np.bincount(kinds[kept & near], minlength=len(LINE_KINDS))[: len(LINE_KINDS)]


def _wrap(a: np.ndarray) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * np.asarray(a, np.float64))))


def score_frame(
    s: Samples,
    scenario: Scenario,
    seat: int,
    step: int,
    cam_xy: np.ndarray,
    pixels: np.ndarray,
    rows: np.ndarray,
    res: ParseResult,
    alive: np.ndarray,
    min_pixels: int = 6,
    gate_m: float = 2.0,
    gate_frac: float = 0.1,
) -> None:
    """Score one parsed frame against the log (module doc) into ``s``.

    Args:
      cam_xy: [2] the camera's world position; pixels: [N] skeleton pixels of each track in the clean frame.
      rows: [K] track rows of the parse's prior; res: its result; alive: [K] still tracked after this frame.
      min_pixels: pixels for a vehicle to be visible; gate_m, gate_frac: the match gate ``gate_m + gate_frac * range``.
    """
    tr, types = scenario.tracks, scenario.object_types
    veh = (types == ObjectType.VEHICLE) & tr.valid[:, step]
    veh[seat] = False
    xy, hd = tr.xyz[:, step, :2], tr.heading[:, step]
    rng_m = np.hypot(*(xy - cam_xy).T)
    gate = gate_m + gate_frac * rng_m
    vis = veh & (pixels >= min_pixels)
    found = np.zeros(len(veh), bool)
    err = np.full(len(veh), np.nan)
    yerr = np.full(len(veh), np.nan)
    # Tracked vehicles the parser reports visible.
    k = np.flatnonzero(res.visible & alive & (types[rows] == ObjectType.VEHICLE))
    kr = rows[k]
    e = np.where(tr.valid[kr, step], np.hypot(*(res.xyz[k, :2] - xy[kr]).T), np.inf)
    ok = e <= gate[kr]
    tp = ok & vis[kr]
    found[kr[tp]], err[kr[tp]] = True, e[tp]
    yerr[kr[tp]] = _wrap(res.heading[k[tp]] - hd[kr[tp]])
    s.det_range += rng_m[kr[tp]].tolist() + np.hypot(*(res.xyz[k[~ok], :2] - cam_xy).T).tolist()
    s.det_true += [True] * int(tp.sum()) + [False] * int((~ok).sum())
    # Entering detections of vehicles: nearest first against the visible vehicles not yet found.
    ent = res.entered
    ev = np.flatnonzero(ent.types == ObjectType.VEHICLE)
    g = np.flatnonzero(vis & ~found)
    if ev.size:
        exy = ent.xyz[ev, :2]
        d = np.linalg.norm(xy[g][:, None] - exy[None], axis=-1)
        d = np.where(d <= gate[g][:, None], d, np.inf)
        used = np.zeros(ev.size, bool)
        while d.size and np.isfinite(d).any():
            i, j = np.unravel_index(int(np.argmin(d)), d.shape)
            r = g[i]
            found[r], err[r], yerr[r] = True, d[i, j], _wrap(ent.heading[ev[j]] - hd[r])
            used[j] = True
            s.det_range.append(float(rng_m[r]))
            s.det_true.append(True)
            d[i, :], d[:, j] = np.inf, np.inf
        rest = exy[~used]
        quiet = np.flatnonzero(veh & ~vis)
        near = (
            (np.linalg.norm(xy[quiet][:, None] - rest[None], axis=-1) <= gate[quiet][:, None]).any(0)
            if quiet.size
            else np.zeros(len(rest), bool)
        )
        s.det_range += np.hypot(*(rest[~near] - cam_xy).T).tolist()
        s.det_true += [False] * int((~near).sum())
    # The tracked set's positions (fit or prediction), what the closed loop would use.
    t_err = np.full(len(veh), np.nan)
    a = np.flatnonzero(alive)
    t_err[rows[a]] = np.hypot(*(res.xyz[a, :2] - xy[rows[a]]).T)
    p_err = np.full(len(veh), np.nan)
    p_err[rows[a]] = np.hypot(*(res.predicted_xyz[a, :2] - xy[rows[a]]).T)
    tracked = ~np.isnan(t_err)
    v = np.flatnonzero(vis)
    s.range += rng_m[v].tolist()
    s.found += found[v].tolist()
    s.err += err[v].tolist()
    s.yaw_err += yerr[v].tolist()
    s.in_prior += np.isin(v, rows).tolist()
    s.tracked += tracked[v].tolist()
    s.track_err += t_err[v].tolist()
    s.prior_err += p_err[v].tolist()
    s.frames += 1


@dataclass
class ClipTruth:
    """Per clip: ``pixels [F, N]`` skeleton pixels per track, ``owned [F, H, W]`` agent pixels,
    ``kinds [F, H, W]`` line kind of map pixels, ``cam_xy [F, 2]`` camera world positions."""

    pixels: np.ndarray
    owned: np.ndarray
    kinds: np.ndarray
    cam_xy: np.ndarray


def clip_truth(renderer: PoseRenderer, scenario: Scenario, seat: int, t0: int, frames: int) -> ClipTruth:
    steps = np.arange(t0, t0 + frames)
    n = scenario.num_tracks
    masks = agent_masks(renderer, clip_agents(renderer, scenario, seat, steps), frames)
    own = masks >= 0
    f_idx = np.broadcast_to(np.arange(frames)[:, None, None], masks.shape)
    pixels = np.bincount(f_idx[own] * n + masks[own], minlength=frames * n).reshape(frames, n)
    kinds = line_kinds(map_frames(renderer, scenario, seat, t0, frames), renderer.style)
    w2v = renderer.viewpoint_transforms(scenario.tracks, seat, steps, scenario.source)
    # camera world position: R^T (p - t) per frame
    cam_v = renderer.camera.position
    cam_w = np.einsum("fji,fj->fi", w2v[:, :, :3], cam_v[None] - w2v[:, :, 3])
    return ClipTruth(pixels, own, kinds, cam_w[:, :2])


__all__ = [
    "BANDS",
    "LINE_KINDS",
    "LIT",
    "ClipTruth",
    "Samples",
    "add_lanes",
    "agent_masks",
    "band_index",
    "band_name",
    "clip_agents",
    "clip_truth",
    "line_kinds",
    "map_frames",
    "pixel_ground_range",
    "score_frame",
]
