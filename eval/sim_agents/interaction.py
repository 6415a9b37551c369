"""Interaction features: distance to the nearest object, collision, time to collision (WOSAC definitions).

Inputs are one joint scene: ``xy [N, T, 2]`` box centres (world frame, m),
``heading [N, T]`` rad, ``length / width [N, T]`` m, ``valid [N, T]``, and
``evaluated [E]`` the indices of the scored objects.  Outputs are ``[E, T]``.

**Distance to the nearest object** (m).  Boxes are rectangles with rounded
corners: each box is shrunk on every side by ``s = 0.7 * min(l, w) / 2``
(the corner-rounding factor 0.7) to its *core*; the signed distance between
two rounded boxes is the signed distance between their cores minus
``s_a + s_b``.  The signed distance between two convex polygons is the
distance between them when they are apart, and minus the smallest
translation that separates them when they overlap (the signed distance from
the origin to the Minkowski difference ``A - B``).  For each evaluated object
it is the minimum over every other object valid at the same step (itself and
invalid objects excluded; 1e10 when there is none).

**Collision** at a step: that distance is below 0.

**Time to collision** (s), for a *following* situation only: with the
evaluated object's frame (x forward), for every other valid box ``o``:
``long = x_o - l_e/2 - (l_o/2 |cos d| + w_o/2 |sin d|)`` (free space from
the front bumper to ``o``'s nearest corner; ``d = |h_o - h_e|``, not
wrapped), ``lat = |y_o| - w_e/2 - (l_o/2 |sin d| + w_o/2 |cos d|)``.  ``o`` is
followed if ``long > 0``, ``d <= 75 deg``, ``lat < 0`` and (``lat < -0.5 m``
or ``d <= 10 deg``).  With the nearest followed box (smallest ``long``) and
the speeds ``v`` from :func:`~.kinematics.kinematic_features` (planar,
central difference): ``ttc = min(long / (v_e - v_o), 5)`` when
``v_e > v_o``, else 5 s (also when nothing is followed or a speed is NaN).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from mad_sim.eval.sim_agents.kinematics import kinematic_features

CORNER_ROUNDING = 0.7
LARGE = 1e10
MAX_TTC = 5.0
MAX_HEADING_DIFF = np.radians(75.0)
MAX_HEADING_DIFF_SMALL_OVERLAP = np.radians(10.0)
SMALL_OVERLAP = 0.5


def _corners(xy: np.ndarray, heading: np.ndarray, length: np.ndarray, width: np.ndarray) -> np.ndarray:
    """``[..., 4, 2]`` corners, counter-clockwise."""
    c, s = np.cos(heading)[..., None], np.sin(heading)[..., None]
    lx = (0.5 * length)[..., None] * np.array([1.0, -1.0, -1.0, 1.0])
    ly = (0.5 * width)[..., None] * np.array([1.0, 1.0, -1.0, -1.0])
    return np.stack([c * lx - s * ly, s * lx + c * ly], -1) + xy[..., None, :]


def polygon_signed_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed distance ``[...]`` between convex quadrilaterals ``a, b [..., 4, 2]`` (corners in order).

    Apart: the smallest vertex-to-edge distance either way.  Overlapping (no
    edge normal of either box separates them): the largest gap along the four
    edge normals, which is negative (minus the penetration depth).
    """
    gaps = []
    for poly in (a, b):
        for k in range(2):
            e = poly[..., k + 1, :] - poly[..., k, :]
            n = np.stack([-e[..., 1], e[..., 0]], -1)
            n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
            pa = (a * n[..., None, :]).sum(-1)
            pb = (b * n[..., None, :]).sum(-1)
            gaps.append(np.maximum(pb.min(-1) - pa.max(-1), pa.min(-1) - pb.max(-1)))
    gap = np.max(np.stack(gaps, -1), -1)
    d = np.full(gap.shape, np.inf)
    for p, q in ((a, b), (b, a)):
        for k in range(4):
            s0, s1 = q[..., k, :], q[..., (k + 1) % 4, :]
            seg = s1 - s0
            den = np.maximum((seg**2).sum(-1), 1e-12)[..., None]
            rel = p - s0[..., None, :]
            t = np.clip((rel * seg[..., None, :]).sum(-1) / den, 0.0, 1.0)
            dist = np.linalg.norm(rel - t[..., None] * seg[..., None, :], axis=-1).min(-1)
            d = np.minimum(d, dist)
    return np.where(gap > 0, d, gap)


def distance_to_nearest_object(
    xy: np.ndarray, heading: np.ndarray, length: np.ndarray, width: np.ndarray, valid: np.ndarray, evaluated: np.ndarray
) -> np.ndarray:
    """``[E, T]`` signed distance (m) from each evaluated box to the nearest other valid box (module docstring).

    Only pairs whose centres are close enough to matter are measured exactly:
    a pair is skipped when a lower bound of its distance (centre distance
    minus both circumradii) exceeds an upper bound of the minimum (the
    nearest centre distance: a rounded box holds its centre) or 45 m (beyond
    the histogram's 40 m top); a skipped pair counts as that lower bound.
    """
    n, t = valid.shape
    e_idx = np.asarray(evaluated, np.int64)
    shrink = CORNER_ROUNDING * np.minimum(length, width) / 2.0  # [N, T]
    core = _corners(xy, heading, length - 2 * shrink, width - 2 * shrink)  # [N, T, 4, 2]
    radius = 0.5 * np.hypot(length, width)
    centre = np.linalg.norm(xy[e_idx][:, None] - xy[None], axis=-1)  # [E, N, T]
    ok = valid[e_idx][:, None] & valid[None]
    ok[np.arange(len(e_idx)), e_idx] = False
    centre = np.where(ok, centre, np.inf)
    reach = radius[e_idx][:, None] + radius[None]
    upper = np.min(centre, axis=1, keepdims=True)
    cand = ok & (centre - reach <= np.minimum(upper, 45.0))
    out = np.full((len(e_idx), n, t), LARGE)
    ei, oi, ti = np.nonzero(cand)
    if ei.size:
        dist = polygon_signed_distance(core[e_idx[ei], ti], core[oi, ti])
        out[ei, oi, ti] = dist - shrink[e_idx[ei], ti] - shrink[oi, ti]
    # pairs not measured are further than the nearest measured one (or than the histogram's range)
    far = ok & ~cand
    out[far] = centre[far] - reach[far]
    return out.min(1)


def time_to_collision(
    xy: np.ndarray,
    heading: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
    valid: np.ndarray,
    evaluated: np.ndarray,
    dt: float = 0.1,
) -> np.ndarray:
    """``[E, T]`` time to collision (s) with the object each evaluated box follows (module docstring)."""
    e_idx = np.asarray(evaluated, np.int64)
    xyz = np.concatenate([xy, np.zeros(xy.shape[:-1] + (1,))], -1)
    speed = kinematic_features(xyz, heading, dt)[0]  # [N, T]
    he = heading[e_idx][:, None]  # [E, 1, T]
    d = np.abs(heading[None] - he)  # [E, N, T]
    cd, sd = np.abs(np.cos(d)), np.abs(np.sin(d))
    lo, wo = length[None] / 2.0, width[None] / 2.0
    long_off = lo * cd + wo * sd
    lat_off = lo * sd + wo * cd
    rel = xy[None] - xy[e_idx][:, None]  # [E, N, T, 2]
    c, s = np.cos(he), np.sin(he)
    rx = rel[..., 0] * c + rel[..., 1] * s
    ry = -rel[..., 0] * s + rel[..., 1] * c
    long = rx - length[e_idx][:, None] / 2.0 - long_off
    lat = np.abs(ry) - width[e_idx][:, None] / 2.0 - lat_off
    follow = (long > 0) & (d <= MAX_HEADING_DIFF) & (lat < 0) & ((lat < -SMALL_OVERLAP) | (d <= MAX_HEADING_DIFF_SMALL_OVERLAP))
    follow &= valid[None]
    masked = long + np.where(follow, 0.0, LARGE)
    j = np.argmin(masked, axis=1)  # [E, T]
    dist = np.take_along_axis(masked, j[:, None], 1)[:, 0]
    v_ahead = speed[j, np.arange(speed.shape[1])[None, :]]
    rel_v = speed[e_idx] - v_ahead
    with np.errstate(invalid="ignore", divide="ignore"):
        ttc = np.where(rel_v > 0, np.minimum(dist / np.where(rel_v > 0, rel_v, 1.0), MAX_TTC), MAX_TTC)
    return ttc


def interaction_features(
    xy: np.ndarray,
    heading: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
    valid: np.ndarray,
    evaluated: np.ndarray,
    dt: float = 0.1,
) -> Tuple[np.ndarray, np.ndarray]:
    """``(distance_to_nearest_object [E, T], time_to_collision [E, T])`` of one joint scene."""
    return (
        distance_to_nearest_object(xy, heading, length, width, valid, evaluated),
        time_to_collision(xy, heading, length, width, valid, evaluated, dt),
    )
