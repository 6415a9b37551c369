"""Render-and-compare scoring of skeleton poses against a pose frame (vectorised over candidates).

A skeleton of class ``spec`` (:mod:`mad_sim.render.skeleton`) is represented
by fixed *samples*: ``n`` points along the interior of every edge (fractions
in ``[0.15, 0.85]``, away from the vertex dots that cover the edge ends) plus
every keypoint that is drawn as a dot.  Each sample carries the palette
colour its pixel has in the frame (:mod:`mad_sim.model.parse.pixels`).

The cost of a pose is the chamfer distance model -> frame::

    c_s = alpha * D_colour(s)(u_s, v_s) + (1 - alpha) * D_generic(u_s, v_s)   (observed samples)
    c_s = unobserved_cost * tau                                              (outside the image,
                                                                               behind the camera, or
                                                                               under a nearer agent)
    cost = mean_s c_s  (+ a quadratic prior on the offset from the prediction)

with ``D`` the truncated (``tau``) distance maps.  The colour term pins each
edge to its own hue (so yaw, including front / back, is observable); the
generic term keeps tiny far skeletons, whose edges merge into a few pixels,
scoreable.  Occlusion is by depth order: a sample falls "under a nearer
agent" when the occluder-depth map (camera depth of the nearest other agent
owning that pixel, widened by one pixel) is more than ``occlusion_margin_m``
nearer than the agent itself.

All poses are in the camera's *vehicle frame* (x forward, y left, z up,
metres, ground at z = 0).  Shapes: ``B`` agents, ``C`` candidates per agent,
``S`` samples per skeleton.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Tuple

import numpy as np

from mad_sim.model.parse.pixels import GENERIC, PixelMaps, dot_colour_index, edge_colour_index
from mad_sim.render.camera import Camera
from mad_sim.render.skeleton import SPECS, SkeletonSpec, keypoints_for


@dataclass(frozen=True)
class SampleTemplate:
    """Where a skeleton's samples sit on its keypoints.

    Attributes:
      k0, k1: [S] int keypoint pair per sample (equal for dots).
      frac: [S] float position between them.
      colour: [S] int palette index of the sample's expected colour.
    """

    k0: np.ndarray
    k1: np.ndarray
    frac: np.ndarray
    colour: np.ndarray

    @property
    def size(self) -> int:
        return int(self.k0.shape[0])


@lru_cache(maxsize=None)
def template(class_index: int, per_edge: int) -> SampleTemplate:
    """The :class:`SampleTemplate` of ``SPECS[class_index]`` with ``per_edge`` samples on every edge."""
    spec: SkeletonSpec = SPECS[class_index]
    e = spec.edges.shape[0]
    f = np.linspace(0.15, 0.85, per_edge) if per_edge > 1 else np.array([0.5])
    k0 = np.repeat(spec.edges[:, 0], per_edge)
    k1 = np.repeat(spec.edges[:, 1], per_edge)
    frac = np.tile(f, e)
    col = np.repeat(edge_colour_index(spec), per_edge)
    dots = dot_colour_index(spec)
    dk = np.flatnonzero(dots >= 0)
    return SampleTemplate(
        np.concatenate([k0, dk]),
        np.concatenate([k1, dk]),
        np.concatenate([frac, np.zeros(dk.size)]),
        np.concatenate([col, dots[dk]]),
    )


def body_samples(class_index: int, size: np.ndarray, per_edge: int) -> np.ndarray:
    """[B, S, 3] body-frame sample points (x forward, y left, z up from the ground) for box sizes ``[B, 3]``.

    Pedestrians and cyclists are taken at gait phase 0 with no limb swing (the
    phase is not part of an agent's state).
    """
    spec = SPECS[class_index]
    tpl = template(class_index, per_edge)
    size = np.asarray(size, np.float64).reshape(-1, 3)
    zeros = np.zeros(size.shape[0])
    kp = keypoints_for(spec, size, zeros, zeros)
    f = tpl.frac[None, :, None]
    return kp[:, tpl.k0] * (1.0 - f) + kp[:, tpl.k1] * f


@dataclass(frozen=True)
class ScoreParams:
    """Weights of the pose cost (see the module docstring).

    Attributes:
      alpha: weight of the per-colour chamfer term (the rest goes to the generic term).
      unobserved_cost: cost of an unobserved sample, as a fraction of ``tau``.
      inlier_px: a sample whose generic (any skeleton colour) distance is at most this is an inlier.
      occlusion_margin_m: an occluder must be this much nearer (camera depth, metres).
      sigma_xy_m, sigma_yaw: scales of the prior on the offset from the prediction.
      prior_weight: weight of that prior, in units of ``tau``.
    """

    alpha: float = 0.6
    unobserved_cost: float = 0.5
    inlier_px: float = 1.0
    occlusion_margin_m: float = 1.0
    sigma_xy_m: float = 3.0
    sigma_yaw: float = np.radians(30.0)
    prior_weight: float = 0.05


@dataclass
class Scores:
    """Per-candidate results, arrays ``[B, C]``.

    Attributes:
      cost: total cost (chamfer mean + prior), pixels.
      residual: mean combined distance of the observed samples, pixels (``tau`` if none).
      observed: number of observed samples.
      inliers: number of observed samples within ``inlier_px``.
    """

    cost: np.ndarray
    residual: np.ndarray
    observed: np.ndarray
    inliers: np.ndarray


def project_samples(
    camera: Camera, body: np.ndarray, pose: np.ndarray, z_centre: np.ndarray, height: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """Place body samples at candidate poses and project them.

    Args:
      body: [B, S, 3] body-frame samples.
      pose: [B, C, 3] candidate ``(x, y, yaw)`` in the vehicle frame.
      z_centre, height: [B] box-centre height and box height (the body frame's ground is ``z_centre - height / 2``).

    Returns:
      ``(uv [B, C, S, 2], depth [B, C, S])``; ``uv`` is NaN where ``depth <= camera.near``.
    """
    c = np.cos(pose[..., 2])[..., None]
    s = np.sin(pose[..., 2])[..., None]
    bx, by, bz = body[:, None, :, 0], body[:, None, :, 1], body[:, None, :, 2]
    px = c * bx - s * by + pose[..., 0:1]
    py = s * bx + c * by + pose[..., 1:2]
    pz = np.broadcast_to(bz + (z_centre - 0.5 * height)[:, None, None], px.shape)
    r, t = camera.vehicle_to_cam
    cx = r[0, 0] * px + r[0, 1] * py + r[0, 2] * pz + t[0]
    cy = r[1, 0] * px + r[1, 1] * py + r[1, 2] * pz + t[1]
    cz = r[2, 0] * px + r[2, 1] * py + r[2, 2] * pz + t[2]
    front = cz > camera.near
    safe = np.where(front, cz, 1.0)
    uv = camera.project_camera(np.stack([cx, cy, safe], -1))
    uv[~front] = np.nan
    return uv, cz


def score(
    camera: Camera,
    maps: PixelMaps,
    class_index: int,
    body: np.ndarray,
    colour: np.ndarray,
    pose: np.ndarray,
    z_centre: np.ndarray,
    height: np.ndarray,
    own_depth: np.ndarray,
    occluder_depth: np.ndarray | None,
    prediction: np.ndarray | None,
    params: ScoreParams,
) -> Scores:
    """Score candidate poses ``[B, C, 3]`` of ``B`` agents of one class (see the module docstring).

    Args:
      body: [B, S, 3] body samples; colour: [S] palette indices.
      own_depth: [B] camera depth of each agent (for the occlusion test).
      occluder_depth: [H, W] float32 depth of the nearest agent owning each pixel (inf: none), or None.
      prediction: [B, 3] predicted poses for the prior term, or None for no prior.
    """
    tau = maps.tau
    uv, _ = project_samples(camera, body, pose, z_centre, height)
    idx = np.broadcast_to(colour[None, None, :], uv.shape[:-1])
    d_col = maps.lookup(idx, uv)
    d_gen = maps.lookup(np.full(uv.shape[:-1], GENERIC), uv)
    obs = np.isfinite(d_col)
    if occluder_depth is not None:
        h, w = occluder_depth.shape
        ui = np.clip(np.rint(np.nan_to_num(uv[..., 0], nan=0.0)), 0, w - 1).astype(np.int64)
        vi = np.clip(np.rint(np.nan_to_num(uv[..., 1], nan=0.0)), 0, h - 1).astype(np.int64)
        occ = occluder_depth[vi, ui] < (own_depth - params.occlusion_margin_m)[:, None, None]
        obs &= ~occ
    comb = params.alpha * d_col + (1.0 - params.alpha) * d_gen
    comb = np.where(obs, comb, np.float32(0.0))
    n_obs = obs.sum(-1)
    total = comb.sum(-1) + (obs.shape[-1] - n_obs) * params.unobserved_cost * tau
    cost = total / obs.shape[-1]
    residual = np.where(n_obs > 0, comb.sum(-1) / np.maximum(n_obs, 1), tau)
    # An inlier lands on (or next to) skeleton pixels; its exact colour is left to the cost, since small
    # skeletons overdraw most of their own edges.
    inliers = (obs & (d_gen <= params.inlier_px)).sum(-1)
    if prediction is not None:
        dxy = pose[..., :2] - prediction[:, None, :2]
        dyaw = np.angle(np.exp(1j * (pose[..., 2] - prediction[:, None, 2])))
        cost = cost + params.prior_weight * tau * ((dxy**2).sum(-1) / params.sigma_xy_m**2 + dyaw**2 / params.sigma_yaw**2)
    return Scores(cost=cost, residual=residual, observed=n_obs, inliers=inliers)


def grid(step_xy: float, n_xy: int, step_yaw: float, n_yaw: int) -> np.ndarray:
    """[n_xy * n_xy * n_yaw, 3] offsets ``(dx, dy, dyaw)`` of a centred search grid (n odd keeps 0 in it)."""
    a = (np.arange(n_xy) - (n_xy - 1) / 2.0) * step_xy
    b = (np.arange(n_yaw) - (n_yaw - 1) / 2.0) * step_yaw
    dx, dy, dz = np.meshgrid(a, a, b, indexing="ij")
    return np.stack([dx.ravel(), dy.ravel(), dz.ravel()], -1)


def radial_grid(
    centre: np.ndarray,
    step_along: float,
    n_along: int,
    step_across: float,
    n_across: int,
    yaws: np.ndarray,
    camera_xy: np.ndarray,
) -> np.ndarray:
    """[B, n_along * n_across * len(yaws), 3] candidates around ``centre [B, 2]`` aligned with the viewing ray.

    ``along`` runs along the ray from the camera (depth is what a single
    image knows least), ``across`` perpendicular to it; ``yaws`` are absolute
    headings (vehicle frame).
    """
    ray = centre - camera_xy
    ray = ray / np.maximum(np.linalg.norm(ray, axis=-1, keepdims=True), 1e-9)
    perp = np.stack([-ray[:, 1], ray[:, 0]], -1)
    a = (np.arange(n_along) - (n_along - 1) / 2.0) * step_along
    b = (np.arange(n_across) - (n_across - 1) / 2.0) * step_across
    aa, bb, yy = np.meshgrid(a, b, yaws, indexing="ij")
    aa, bb, yy = aa.ravel(), bb.ravel(), yy.ravel()
    xy = centre[:, None] + aa[None, :, None] * ray[:, None] + bb[None, :, None] * perp[:, None]
    return np.concatenate([xy, np.broadcast_to(yy[None, :, None], xy.shape[:2] + (1,))], -1)
