"""Fast grid search of skeleton poses: separable exact projection on padded cost maps.

:func:`mad_sim.model.parse.skeleton_fit.score` scores any candidate poses
``[B, C, 3]`` exactly, but builds every sample's 3D point, camera point and
two bilinear lookups per candidate.  The parser's searches have more
structure than that, and this module uses it:

* **Separable candidates.**  A search level around a centre pose
  ``(x, y, psi)`` tries every yaw offset ``psi_j`` (``Y`` of them) with every
  position offset ``d_k`` (``X``, per agent).  With ``M = K R_vc`` (the
  intrinsics times the vehicle -> camera rotation, whose third row gives
  the camera depth) and ``Q`` a body sample rotated by the centre's yaw, the
  homogeneous pixel of sample ``s`` is exactly::

      n(j, k, s) = cos(psi_j) M [Qx, Qy, 0] + sin(psi_j) M [-Qy, Qx, 0]      (per agent, yaw, sample)
                   + M [0, 0, Qz]
                   + M [x + d_kx, y + d_ky, 0] + K t_vc                       (per agent, position)

  so each ``[B, Y, X, S]`` element costs one add per coordinate and a
  division: ``u = n_0 / n_2``, ``v = n_1 / n_2`` (pinhole; a distorting
  camera falls back to :meth:`Camera.project_camera`).
* **One combined, padded map per colour.**  The cost of an observed sample
  is ``alpha D_colour + (1 - alpha) D_generic`` (both truncated at ``tau``,
  :mod:`mad_sim.model.parse.pixels`), so the two maps are blended once per
  frame (:class:`~mad_sim.model.parse.cost_maps.CostMaps`).  The maps carry a border of ``PAD`` pixels
  holding the unobserved cost ``unobserved_cost * tau``: a sample outside
  the image (or behind the camera, sent there) is clamped into the border
  and costs exactly what :func:`score` charges an unobserved sample, with
  no mask.
* **Integer or bilinear lookups.**  Coarse levels round samples to the
  nearest pixel (one gather); fine levels interpolate bilinearly (four).
* **Occlusion** as in :func:`score`: a sample whose (rounded) pixel belongs
  to an agent more than ``occlusion_margin_m`` nearer costs the unobserved
  cost; checked only for agents with a nearer occluder somewhere in the frame.

The cost of a candidate is the mean sample cost plus the quadratic prior of
:class:`~mad_sim.model.parse.skeleton_fit.ScoreParams` (separable too: position
part ``[B, X]`` plus yaw part ``[B, Y]``), identical to :func:`score`'s
``cost`` up to bilinear blending with the border within one pixel of the
image edge.  Poses are in the camera's *vehicle frame* (x forward, y left,
z up, metres, ground at z = 0).  Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from mad_sim.model.parse.cost_maps import PAD, CostMaps, Occlusion
from mad_sim.model.parse.skeleton_fit import ScoreParams, Scores
from mad_sim.render.camera import Camera


@dataclass(frozen=True)
class Level:
    """One search level: yaw offsets ``[Y]`` (radians) and position offsets ``[X, 2]`` (metres) around the
    current best pose, all combinations tried; ``bilinear`` lookups (fine) or nearest-pixel ones (coarse)."""

    yaw: np.ndarray
    xy: np.ndarray
    bilinear: bool

    @property
    def size(self) -> int:
        return int(self.yaw.size * self.xy.shape[0])


def square(step: float, n: int) -> np.ndarray:
    """[n * n, 2] centred square grid of position offsets (n odd keeps 0 in it)."""
    a = (np.arange(n) - (n - 1) / 2.0) * step
    dx, dy = np.meshgrid(a, a, indexing="ij")
    return np.stack([dx.ravel(), dy.ravel()], -1)


def line(step: float, n: int) -> np.ndarray:
    """[n] centred offsets."""
    return (np.arange(n) - (n - 1) / 2.0) * step


def grid_level(step_xy: float, n_xy: int, step_yaw_deg: float, n_yaw: int, bilinear: bool = True) -> Level:
    """The :class:`Level` of a ``(step_xy m, n_xy, step_yaw deg, n_yaw)`` grid (as in :func:`skeleton_fit.grid`)."""
    return Level(line(np.radians(step_yaw_deg), n_yaw), square(step_xy, n_xy), bilinear)


class PoseSearch:
    """Grid search of one class's agents on one frame's :class:`CostMaps` (see the module docstring).

    Args:
      camera: the pose camera (vehicle frame).
      cmaps: the frame's cost maps.
      colour: [S] palette index of each body sample.
      body: [B, S, 3] body-frame samples (x forward, y left, z up from the box's bottom).
      z_ground: [B] height of each box's bottom (vehicle frame), metres.
      own_depth: [B] camera depth of each agent (for occlusion), metres.
      prediction: [B, 3] predicted poses, centre of the quadratic prior (None: no prior).
      params: cost weights; tau: truncation, pixels.
      occlusion: padded occluder depths, or None.
      chunk: bound on ``B * Y * X * S`` evaluated at once.
    """

    def __init__(
        self,
        camera: Camera,
        cmaps: CostMaps,
        colour: np.ndarray,
        body: np.ndarray,
        z_ground: np.ndarray,
        own_depth: np.ndarray,
        prediction: Optional[np.ndarray],
        params: ScoreParams,
        tau: float,
        occlusion: Optional[Occlusion] = None,
        chunk: int = 1_500_000,
    ) -> None:
        self.camera = camera
        self.cmaps = cmaps
        self.body = np.asarray(body, np.float64)
        self.z_ground = np.asarray(z_ground, np.float64)
        self.pred = None if prediction is None else np.asarray(prediction, np.float64)
        self.params = params
        self.tau = float(tau)
        self.chunk = int(chunk)
        ms, rs = cmaps.stride
        self.base = (cmaps.slot[np.asarray(colour, np.int64)] * ms).astype(np.int32)  # [S]
        r, t = camera.vehicle_to_cam
        if camera._has_distortion:
            k = np.eye(3)
        else:
            k = np.array([[camera.fx, 0.0, camera.cx + PAD], [0.0, camera.fy, camera.cy + PAD], [0.0, 0.0, 1.0]])
        self.m = k @ r
        self.m0 = k @ t
        self.occ: Optional[Occlusion] = None
        self.thr = np.zeros(0, np.float32)
        if occlusion is not None:
            thr = (np.asarray(own_depth, np.float64) - params.occlusion_margin_m).astype(np.float32)
            if np.isfinite(occlusion.depth).any() and (thr > occlusion.depth.min()).any():
                self.occ, self.thr = occlusion, thr

    # ------------------------------------------------------------------------------------------
    def _parts(self, rows: slice, centre: np.ndarray, level: Level) -> Tuple[np.ndarray, np.ndarray]:
        """``(rot [b, 3, Y, S], trans [b, 3, X])`` homogeneous-pixel parts (see the module docstring)."""
        body = self.body[rows]
        c, s = np.cos(centre[:, 2])[:, None], np.sin(centre[:, 2])[:, None]
        qx = c * body[..., 0] - s * body[..., 1]
        qy = s * body[..., 0] + c * body[..., 1]
        qz = body[..., 2] + self.z_ground[rows, None]
        m = self.m
        # [b, 3, S] parts of the rotation: cos-, sin- and constant terms.
        a = m[None, :, 0, None] * qx[:, None] + m[None, :, 1, None] * qy[:, None]
        bb = -m[None, :, 0, None] * qy[:, None] + m[None, :, 1, None] * qx[:, None]
        z = m[None, :, 2, None] * qz[:, None]
        cy, sy = np.cos(level.yaw), np.sin(level.yaw)
        rot = (cy[None, None, :, None] * a[:, :, None] + sy[None, None, :, None] * bb[:, :, None] + z[:, :, None]).astype(
            np.float32
        )
        px = centre[:, 0:1] + level.xy[None, :, 0]
        py = centre[:, 1:2] + level.xy[None, :, 1]
        trans = (m[None, :, 0, None] * px[:, None] + m[None, :, 1, None] * py[:, None] + self.m0[None, :, None]).astype(
            np.float32
        )
        return rot, trans

    def _pixels(self, rot: np.ndarray, trans: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Padded pixel coordinates ``(u, v)`` [b, Y, X, S] float32; samples behind the camera sent off-image."""
        n = [rot[:, k, :, None, :] + trans[:, k, None, :, None] for k in range(3)]
        near = np.float32(self.camera.near)
        if not self.camera._has_distortion and rot[:, 2].min() + trans[:, 2].min() > near:
            inv = np.float32(1.0) / n[2]  # every sample in front of the camera
            return n[0] * inv, n[1] * inv
        behind = n[2] <= near
        if self.camera._has_distortion:
            cam = np.stack([n[0], n[1], np.where(behind, np.float32(1.0), n[2])], -1).astype(np.float64)
            uv = self.camera.project_camera(cam).astype(np.float32) + np.float32(PAD)
            u, v = uv[..., 0], uv[..., 1]
        else:
            inv = np.float32(1.0) / np.where(behind, np.float32(1.0), n[2])
            u = n[0] * inv
            v = n[1] * inv
        if behind.any():
            u[behind] = -1.0e4
        return u, v

    def _may_be_occluded(self, rows: slice, centre: np.ndarray, level: Level) -> np.ndarray:
        """[b] bool: agents for which some candidate of the level could land on a nearer agent's pixels.

        The level's reach (largest position offset plus the largest yaw offset
        times the body's radius) is turned into pixels at the agent's depth;
        if the occluder map min-filtered over that radius is nowhere nearer
        than the agent under its samples at ``centre``, no candidate is occluded.
        """
        b = centre.shape[0]
        if self.occ is None:
            return np.zeros(b, bool)
        body = self.body[rows]
        radius = np.sqrt((body[..., :2] ** 2).sum(-1)).max(-1)
        reach = np.sqrt((level.xy**2).sum(-1)).max() + np.abs(level.yaw).max() * radius
        depth = np.maximum(self.thr[rows] + self.params.occlusion_margin_m, self.camera.near)
        px = np.ceil(max(self.camera.fx, self.camera.fy) * reach / depth) + 2
        rot, trans = self._parts(rows, centre, Level(np.zeros(1), np.zeros((1, 2)), False))
        u, v = self._pixels(rot, trans)
        hp, wp = self.cmaps.comb.shape[1:]
        ui = np.clip(u[:, 0, 0] + 0.5, 0, wp - 1).astype(np.int64)
        vi = np.clip(v[:, 0, 0] + 0.5, 0, hp - 1).astype(np.int64)
        out = np.ones(b, bool)
        for r in np.unique(px):
            sel = np.flatnonzero(px == r)
            if r > Occlusion.RADII[-1]:
                continue
            m = self.occ.near(int(r))
            out[sel] = (m[vi[sel], ui[sel]] < self.thr[rows][sel, None]).any(-1)
        return out

    def _hidden_at_centre(self, rows: slice, centre: np.ndarray) -> np.ndarray:
        """[b, S] bool: samples on a nearer agent's pixels (nearest pixel) at the poses ``centre [b, 3]``."""
        rot, trans = self._parts(rows, centre, Level(np.zeros(1), np.zeros((1, 2)), False))
        u, v = self._pixels(rot, trans)
        hp, wp = self.cmaps.comb.shape[1:]
        ui = np.clip(u[:, 0, 0] + 0.5, 0, wp - 1).astype(np.int64)
        vi = np.clip(v[:, 0, 0] + 0.5, 0, hp - 1).astype(np.int64)
        occ = self.occ
        assert occ is not None  # asked for on levels with an occluder map only
        return occ.depth[vi, ui] < self.thr[rows, None]

    def _costs(self, rows: slice, centre: np.ndarray, level: Level) -> np.ndarray:
        """[b, Y, X] mean sample cost of the level's candidates around ``centre [b, 3]`` (prior not included)."""
        base = self.base
        occluded: Union[np.ndarray, slice]
        if level.bilinear and self.occ is not None:
            # Fine levels move a sample by a pixel or two, and the occluder map is already widened by
            # one: a sample hidden at the level's centre is taken as hidden for all its candidates
            # (its cost is then the same constant for every candidate, so it cannot sway the choice).
            hidden = self._hidden_at_centre(rows, centre)
            base = np.where(hidden, np.int32(self.cmaps.unobserved_slot * self.cmaps.stride[0]), self.base[None]).astype(
                np.int32
            )[:, None, None, :]
            occluded = np.zeros(0, np.int64)
        else:
            occluded = np.flatnonzero(self._may_be_occluded(rows, centre, level))
        if 2 * occluded.size > centre.shape[0]:
            occluded = slice(None)  # most agents: test them all rather than copy a subset
        rot, trans = self._parts(rows, centre, level)
        u, v = self._pixels(rot, trans)
        cm = self.cmaps
        flat = cm.comb.reshape(-1)
        _, rs = cm.stride
        hp, wp = cm.comb.shape[1:]
        if level.bilinear:
            np.clip(u, 0.0, wp - 2, out=u)
            np.clip(v, 0.0, hp - 2, out=v)
            uf = np.floor(u)
            vf = np.floor(v)
            fu = u - uf
            fv = v - vf
            pix = vf.astype(np.int32) * rs + uf.astype(np.int32)
            idx = pix + base
            top = flat[idx]
            top += (flat[idx + 1] - top) * fu
            idx += rs
            bot = flat[idx]
            bot += (flat[idx + 1] - bot) * fu
            val = top + (bot - top) * fv
            if not isinstance(occluded, np.ndarray) or occluded.size:
                # The nearest pixel, as skeleton_fit.score tests it.
                pix = pix[occluded] + (fu[occluded] >= 0.5) + (fv[occluded] >= 0.5) * np.int32(rs)
        else:
            u += np.float32(0.5)
            v += np.float32(0.5)
            np.clip(u, 0.0, wp - 1, out=u)
            np.clip(v, 0.0, hp - 1, out=v)
            pix = v.astype(np.int32) * rs + u.astype(np.int32)
            val = flat[pix + self.base]
            pix = pix[occluded]
        occ = self.occ  # agents are occluded (a slice, or a non-empty index) only with an occluder map
        if not isinstance(occluded, np.ndarray):
            assert occ is not None
            hidden = occ.depth.reshape(-1)[pix] < self.thr[rows, None, None, None]
            val[hidden] = np.float32(cm.unobserved)
        elif occluded.size:
            assert occ is not None
            hidden = occ.depth.reshape(-1)[pix] < self.thr[rows][occluded, None, None, None]
            val[occluded] = np.where(hidden, np.float32(cm.unobserved), val[occluded])
        return val.sum(-1, dtype=np.float32) / np.float32(val.shape[-1])

    def _prior(self, rows: slice, centre: np.ndarray, level: Level) -> Tuple[np.ndarray, np.ndarray]:
        if self.pred is None:
            return np.zeros((centre.shape[0], level.xy.shape[0])), np.zeros((centre.shape[0], level.yaw.size))
        p = self.params
        w = p.prior_weight * self.tau
        pred = self.pred[rows]
        dxy = centre[:, None, :2] + level.xy[None] - pred[:, None, :2]
        dyaw = np.angle(np.exp(1j * (centre[:, 2:3] + level.yaw[None] - pred[:, 2:3])))
        return w * (dxy**2).sum(-1) / p.sigma_xy_m**2, w * dyaw**2 / p.sigma_yaw**2

    def costs(self, centre: np.ndarray, level: Level) -> np.ndarray:
        """[B, Y, X] total cost (mean sample cost + prior) of the level's candidates around ``centre [B, 3]``."""
        b = centre.shape[0]
        per = max(1, self.chunk // max(1, level.size * self.body.shape[1]))
        out = np.empty((b, level.yaw.size, level.xy.shape[0]))
        for i in range(0, b, per):
            rows = slice(i, min(i + per, b))
            px, py = self._prior(rows, centre[rows], level)
            out[rows] = self._costs(rows, centre[rows], level) + px[:, None, :] + py[:, :, None]
        return out

    def step(self, centre: np.ndarray, level: Level) -> np.ndarray:
        """[B, 3] best candidate of the level around ``centre [B, 3]``."""
        cost = self.costs(centre, level)
        b = centre.shape[0]
        k = np.argmin(cost.reshape(b, -1), 1)
        j, i = np.divmod(k, level.xy.shape[0])
        out = centre.copy()
        out[:, :2] += level.xy[i]
        out[:, 2] += level.yaw[j]
        return out

    def evaluate(self, pose: np.ndarray) -> Scores:
        """Exact :class:`~mad_sim.model.parse.skeleton_fit.Scores` (arrays ``[B, 1]``) of one pose ``[B, 3]`` per agent.

        The same numbers as :func:`~mad_sim.model.parse.skeleton_fit.score`: a
        sample is observed when it projects inside ``[0, W-1] x [0, H-1]``, in
        front of the camera and not under a nearer agent; ``residual`` is the
        mean combined distance of the observed samples (``tau`` if none) and
        ``inliers`` counts observed samples whose generic distance is at most ``inlier_px``.
        """
        pose = np.asarray(pose, np.float64)
        b = pose.shape[0]
        zero = Level(np.zeros(1), np.zeros((1, 2)), True)
        rows = slice(0, b)
        rot, trans = self._parts(rows, pose, zero)
        u, v = self._pixels(rot, trans)
        u, v = u[:, 0, 0], v[:, 0, 0]
        cm = self.cmaps
        _, rs = cm.stride
        inside = (u >= PAD) & (u <= PAD + cm.width - 1) & (v >= PAD) & (v <= PAD + cm.height - 1)
        uc = np.where(inside, u, np.float32(PAD))
        vc = np.where(inside, v, np.float32(PAD))
        u0, v0 = uc.astype(np.int32), vc.astype(np.int32)
        fu, fv = uc - u0, vc - v0
        idx = v0 * rs + u0

        def bil(flat: np.ndarray, i: np.ndarray) -> np.ndarray:
            top = flat[i] * (1 - fu) + flat[i + 1] * fu
            bot = flat[i + rs] * (1 - fu) + flat[i + rs + 1] * fu
            return top * (1 - fv) + bot * fv

        comb = bil(cm.comb.reshape(-1), idx + self.base)
        d_gen = bil(cm.gen.reshape(-1), idx)
        obs = inside
        if self.occ is not None:
            pix = (vc + np.float32(0.5)).astype(np.int32) * rs + (uc + np.float32(0.5)).astype(np.int32)
            obs = obs & ~(self.occ.depth.reshape(-1)[pix] < self.thr[:, None])
        n_s = obs.shape[-1]
        comb = np.where(obs, comb, np.float32(0.0))
        n_obs = obs.sum(-1)
        csum = comb.sum(-1, dtype=np.float64)
        cost = (csum + (n_s - n_obs) * cm.unobserved) / n_s
        residual = np.where(n_obs > 0, csum / np.maximum(n_obs, 1), cm.tau)
        inliers = (obs & (d_gen <= self.params.inlier_px)).sum(-1)
        px, py = self._prior(rows, pose, zero)
        cost = cost + px[:, 0] + py[:, 0]
        return Scores(cost=cost[:, None], residual=residual[:, None], observed=n_obs[:, None], inliers=inliers[:, None])

    def run(self, start: np.ndarray, levels: Sequence[Level]) -> np.ndarray:
        """[B, 3] best pose after the levels, each centred on the previous best."""
        cur = np.asarray(start, np.float64).copy()
        for level in levels:
            cur = self.step(cur, level)
        return cur


__all__ = ["CostMaps", "Level", "Occlusion", "PAD", "PoseSearch", "grid_level", "line", "square"]
