"""Pose frames back to agent states: :class:`PoseParser` (render-and-compare tracking).

A generated pose frame (black background, coloured skeletons, white lanes)
is turned back into agent states in three steps:

1. **Predict.**  Every known agent of the prior (the states one step
   earlier) is moved by constant velocity: ``xy + v dt``, heading kept.
2. **Fit (render and compare).**  Each predicted agent that the camera can
   see is fitted to the frame by scoring its own skeleton, drawn alone at
   candidate poses around the prediction, against the frame's pixels of each
   edge's colour (chamfer distance on truncated distance maps,
   :mod:`mad_sim.model.parse.skeleton_fit`).  The search is coarse to fine over
   ``(dx, dy, dyaw)`` grids (:class:`ParseConfig`), all agents and candidates
   of a class in one vectorised pass on per-frame combined cost maps
   (:mod:`mad_sim.model.parse.search`: separable exact projection, no
   per-candidate rasterisation); the verdicts use the exact scores.  Occlusion follows depth order: samples that fall on a
   nearer agent's pixels (rendered from the predictions, then again from the
   first-pass fits) are unobserved rather than wrong.
3. **Births and deaths.**  A known agent expected in view whose fitted
   skeleton still does not match (too few inlier samples) has *left*.
   Skeleton pixels that no fitted agent (nor the static background) explains
   are grouped into blobs and each is fitted by class templates from a
   ground-plane back-projection of its lowest pixels: those are *entered*
   agents (:mod:`mad_sim.model.parse.detect`).

Frames: the camera rides on the ego as in :class:`~mad_sim.render.pose.PoseRenderer`
(its *vehicle frame*: x forward, y left, z up, origin on the ground below the
ego's box centre).  ``ego_pose`` is the ``[3, 4]`` world -> vehicle affine of
the frame's time (:func:`~mad_sim.model.parse.results.ego_pose_of`, or :meth:`PoseRenderer.viewpoint_transform`);
with ``ego_pose=None`` the prior is already in that vehicle frame.  Results
are returned in the prior's frame.

Resolution sets accuracy: at 128 x 128 with the default 90-degree camera a
car 40 m away is 3 pixels wide and one pixel of ground contact is 13 m of
range, so far agents keep close to their prediction (the quadratic prior of
:class:`~mad_sim.model.parse.skeleton_fit.ScoreParams` decides where the image is
silent).  ``bench/bench_parse.py`` measures the errors by distance band.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from mad_sim.data.scenario import DT
from mad_sim.errors import ShapeError
from mad_sim.model.parse.config import ParseConfig
from mad_sim.model.parse.cost_maps import CostMaps, Occlusion
from mad_sim.model.parse.detect import detect_entering, reconcile
from mad_sim.model.parse.pixels import check_frame, colour_pixels, explained_by
from mad_sim.model.parse.results import EnteredAgents, ParseResult
from mad_sim.model.parse.search import Level as SearchLevel
from mad_sim.model.parse.search import PoseSearch, grid_level
from mad_sim.model.parse.skeleton_fit import Scores, body_samples, template
from mad_sim.render.camera import Camera
from mad_sim.render.draw import AgentPoses, PoseStyle, agent_id_mask, draw_agents, project_agents
from mad_sim.render.pose import PoseRenderer
from mad_sim.render.skeleton import class_of
from mad_sim.world.state import AgentStates

log = logging.getLogger(__name__)


def _check_affine(ego_pose: np.ndarray) -> Tuple[np.ndarray, np.ndarray, float]:
    a = np.asarray(ego_pose, np.float64)
    if a.shape != (3, 4) or not np.isfinite(a).all():
        raise ShapeError(f"ego_pose: expected a finite [3, 4] world -> vehicle affine, got shape {a.shape}")
    return a[:, :3], a[:, 3], float(np.arctan2(a[0, 1], a[0, 0]))


class PoseParser:
    """Turns pose frames back into agent states (see the module docstring).

    Args:
      camera: the pose camera (default: the renderer's).
      renderer: the :class:`PoseRenderer` whose drawing is being inverted
        (its style gives the range limit and line widths); default one around ``camera``.
      config: :class:`ParseConfig`.
    """

    def __init__(
        self, camera: Optional[Camera] = None, renderer: Optional[PoseRenderer] = None, config: Optional[ParseConfig] = None
    ) -> None:
        if renderer is None:
            renderer = PoseRenderer(camera=camera) if camera is not None else PoseRenderer()
        self.renderer = renderer
        self.camera = camera if camera is not None else renderer.camera
        self.style: PoseStyle = renderer.style
        self.config = config or ParseConfig()
        self.tau = self.config.tau(self.camera.width)

    # --- public API -----------------------------------------------------------------------------
    def parse(
        self,
        frame: np.ndarray,
        prior: AgentStates,
        ego_pose: Optional[np.ndarray] = None,
        dt: float = DT,
        background: Optional[np.ndarray] = None,
    ) -> ParseResult:
        """Parse one pose frame.

        Args:
          frame: [H, W, 3] uint8 RGB pose frame (the camera's size).
          prior: the known agents one step (``dt``) before the frame, world
            frame when ``ego_pose`` is given, else the camera's vehicle frame.
            Rows with ``valid`` False are ignored (returned unchanged, not in view).
          ego_pose: [3, 4] world -> vehicle affine of the camera's agent at the frame's time, or None.
          dt: seconds between the prior and the frame (0: the prior is already the prediction).
          background: optional [H, W] bool of pixels explained by the static
            scene (map, traffic lights), excluded from the search for entering
            agents; see :func:`~mad_sim.model.parse.results.background_mask`.
        """
        check_frame(frame, "PoseParser.parse frame")
        cam = self.camera
        if frame.shape[:2] != (cam.height, cam.width):
            raise ShapeError(
                f"PoseParser.parse frame: {frame.shape[1]}x{frame.shape[0]} does not match the camera's {cam.width}x{cam.height}"
            )
        xyz, heading, vel = self._to_vehicle(prior, ego_pose)
        n = xyz.shape[0]
        pred_xyz = xyz.copy()
        pred_xyz[:, :2] += vel * dt
        pred_yaw = heading.copy()
        size = np.asarray(prior.size, np.float64).reshape(n, 3)
        types = np.asarray(prior.types).reshape(n)
        ok = (
            np.asarray(prior.valid, bool).reshape(n)
            & np.isfinite(pred_xyz).all(1)
            & np.isfinite(pred_yaw)
            & np.isfinite(size).all(1)
            & (size > 0).all(1)
        )
        pixels, agent_px = colour_pixels(frame, self.config.pixels)
        cmaps = CostMaps.from_pixels(pixels, agent_px, self.tau, self.config.score)

        fit_xyz, fit_yaw = pred_xyz.copy(), pred_yaw.copy()
        in_view = np.zeros(n, bool)
        visible = np.zeros(n, bool)
        conf = np.zeros(n)
        resid = np.full(n, np.nan)
        coarse_ran = np.zeros(n, bool)
        act = np.flatnonzero(ok)
        small = np.zeros(0, bool)
        if act.size:
            agents = AgentPoses(pred_xyz[act], pred_yaw[act], size[act], types[act])
            geo = project_agents(cam, agents, self.style.max_range_m)
            occ = self._occluder_map(agents, geo)
            span = np.maximum(geo.bbox[:, 2] - geo.bbox[:, 0], geo.bbox[:, 3] - geo.bbox[:, 1])
            small = span[geo.visible] < self.config.small_agent_px
            act = act[geo.visible]
        if act.size:
            c = self.config
            pose0 = np.concatenate([pred_xyz[act, :2], pred_yaw[act, None]], 1)
            pose1 = pose0
            coarse = c.coarse_levels()
            if coarse:
                pre = self._evaluate(cmaps, act, pose0, pose0, pred_xyz, size, types, occ)
                easy = (
                    (pre.residual <= c.early_exit_px)
                    & (pre.observed >= c.min_observed)
                    & (pre.inliers >= c.early_exit_inliers * np.maximum(pre.observed, 1))
                )
                hard = np.flatnonzero(~easy)
                coarse_ran[act[hard]] = True
                if hard.size:
                    pose1 = pose0.copy()
                    pose1[hard] = self._search(
                        cmaps, act[hard], pose0[hard], pose0[hard], pred_xyz, size, types, occ, coarse, c.coarse_per_edge
                    )
            fine = tuple(grid_level(*lv) for lv in c.levels)
            pose1 = self._search(cmaps, act, pose1, pose0, pred_xyz, size, types, occ, fine, c.per_edge, small)
            occ = self.occluder_depth(np.concatenate([pose1[:, :2], pred_xyz[act, 2:]], 1), pose1[:, 2], size[act], types[act])
            pose2 = self._search(
                cmaps, act, pose1, pose0, pred_xyz, size, types, occ, (grid_level(*c.refine_level),), c.per_edge, small
            )
            final = self._evaluate(cmaps, act, pose2, pose0, pred_xyz, size, types, occ)
            at_pred = self._evaluate(cmaps, act, pose0, pose0, pred_xyz, size, types, occ)
            frac = final.inliers / np.maximum(final.observed, 1)
            seen = final.observed >= c.min_observed
            in_view[act] = at_pred.observed >= c.min_observed
            visible[act] = seen & (frac >= c.min_inlier_frac)
            conf[act] = np.where(seen, frac, 0.0)
            resid[act] = final.residual
            vis = visible[act]
            fit_xyz[act[vis], :2] = pose2[vis, :2]
            fit_yaw[act[vis]] = pose2[vis, 2]
        left = np.flatnonzero(in_view & ~visible)

        explained = self._explained(frame, fit_xyz[visible], fit_yaw[visible], size[visible], types[visible])
        entered = EnteredAgents.empty()
        if self.config.detect:
            entered, explained = detect_entering(self, frame, pixels, agent_px, explained, background)
            if len(entered) and left.size:
                entered = self._reconcile(
                    cmaps, entered, left, pred_xyz, pred_yaw, size, types, fit_xyz, fit_yaw, visible, conf, resid
                )
                left = np.flatnonzero(in_view & ~visible)

        out_vel = vel.copy()
        if dt > 0:
            out_vel[visible] = (fit_xyz[visible, :2] - xyz[visible, :2]) / dt
        fit_yaw = np.angle(np.exp(1j * fit_yaw))
        res_xyz, res_yaw, res_vel = self._from_vehicle(fit_xyz, fit_yaw, out_vel, ego_pose)
        p_xyz, p_yaw, _ = self._from_vehicle(pred_xyz, pred_yaw, vel, ego_pose)
        # Rows the parser did not touch come back exactly as given.
        keep = ~ok
        res_xyz[keep] = np.asarray(prior.xyz, np.float64)[keep]
        res_yaw[keep] = np.asarray(prior.heading, np.float64)[keep]
        res_vel[keep] = np.asarray(prior.velocity, np.float64)[keep]
        if len(entered):
            e_xyz, e_yaw, _ = self._from_vehicle(entered.xyz, entered.heading, np.zeros((len(entered), 2)), ego_pose)
            entered = EnteredAgents(
                e_xyz, e_yaw, entered.size, entered.types, entered.confidence, entered.residual, entered.pixels
            )
        return ParseResult(
            xyz=res_xyz,
            heading=res_yaw,
            velocity=res_vel,
            predicted_xyz=p_xyz,
            predicted_heading=p_yaw,
            in_view=in_view,
            visible=visible,
            confidence=conf,
            residual=resid,
            left=left,
            entered=entered,
            explained=explained,
            coarse=coarse_ran,
        )

    def occluder_depth(self, xyz: np.ndarray, yaw: np.ndarray, size: np.ndarray, types: np.ndarray) -> np.ndarray:
        """[H, W] float32 camera depth of the agent owning each pixel (inf: none), widened by one pixel (min filter)."""
        cam = self.camera
        if len(xyz) == 0:
            return np.full((cam.height, cam.width), np.inf, np.float32)
        return self._occluder_map(AgentPoses(xyz, yaw, size, types), None)

    def _occluder_map(self, agents: AgentPoses, geometry) -> np.ndarray:
        """:meth:`occluder_depth` of ``agents`` (their :func:`project_agents` geometry reused when given)."""
        cam = self.camera
        out = np.full((cam.height, cam.width), np.inf, np.float32)
        mask = agent_id_mask(cam, agents, self.style, geometry=geometry)
        depth = cam.to_camera(agents.xyz)[:, 2].astype(np.float32)
        own = mask >= 0
        out[own] = depth[mask[own]]
        return cv2.erode(out, np.ones((3, 3), np.uint8))

    # --- internals --------------------------------------------------------------------------------
    def _to_vehicle(self, prior: AgentStates, ego_pose: Optional[np.ndarray]):
        xyz = np.asarray(prior.xyz, np.float64).reshape(-1, 3)
        n = xyz.shape[0]
        heading = np.asarray(prior.heading, np.float64).reshape(n)
        vel = np.asarray(prior.velocity, np.float64).reshape(n, 2)
        if ego_pose is None:
            return xyz.copy(), heading.copy(), vel.copy()
        r, t, yaw = _check_affine(ego_pose)
        return xyz @ r.T + t, heading - yaw, vel @ r[:2, :2].T

    def _from_vehicle(self, xyz: np.ndarray, heading: np.ndarray, vel: np.ndarray, ego_pose: Optional[np.ndarray]):
        if ego_pose is None:
            return xyz.copy(), heading.copy(), vel.copy()
        r, t, yaw = _check_affine(ego_pose)
        return (xyz - t) @ r, np.angle(np.exp(1j * (heading + yaw))), vel @ r[:2, :2]

    def _groups(self, rows: np.ndarray, types: np.ndarray):
        cls = class_of(types[rows])
        for c in np.unique(cls):
            yield int(c), np.flatnonzero(cls == c)

    def _search(
        self,
        cmaps: CostMaps,
        act: np.ndarray,
        start: np.ndarray,
        pred: np.ndarray,
        pred_xyz: np.ndarray,
        size: np.ndarray,
        types: np.ndarray,
        occ: Optional[np.ndarray],
        levels: Sequence[SearchLevel],
        per_edge: int,
        small: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        """Grid search (:class:`~mad_sim.model.parse.search.PoseSearch`, one class at a time, all its agents
        at once); returns [len(act), 3] best ``(x, y, yaw)`` per agent.  Agents flagged ``small [len(act)]``
        are searched with ``config.small_per_edge`` samples per edge (if fewer than ``per_edge``)."""
        best = np.asarray(start, np.float64).copy()
        occlusion = Occlusion.build(occ) if occ is not None else None
        sparse = min(per_edge, self.config.small_per_edge)
        groups = []
        for c, sel in self._groups(act, types):
            if small is None or sparse == per_edge:
                groups.append((c, sel, per_edge))
            else:
                groups += [(c, g, k) for g, k in ((sel[~small[sel]], per_edge), (sel[small[sel]], sparse)) if g.size]
        for c, sel, per_edge in groups:
            ps = self._searcher(cmaps, c, act[sel], pred[sel], pred_xyz, size, occlusion, per_edge)
            best[sel] = ps.run(best[sel], levels)
        return best

    def _evaluate(
        self,
        cmaps: CostMaps,
        act: np.ndarray,
        pose: np.ndarray,
        pred: np.ndarray,
        pred_xyz: np.ndarray,
        size: np.ndarray,
        types: np.ndarray,
        occ: Optional[np.ndarray],
    ) -> Scores:
        """Exact scores ``[len(act)]`` of one pose per agent (``per_edge`` samples; see :meth:`PoseSearch.evaluate`)."""
        out = Scores(np.zeros(act.size), np.zeros(act.size), np.zeros(act.size, np.int64), np.zeros(act.size, np.int64))
        occlusion = Occlusion.build(occ) if occ is not None else None
        for c, sel in self._groups(act, types):
            sc = self._searcher(cmaps, c, act[sel], pred[sel], pred_xyz, size, occlusion, self.config.per_edge).evaluate(
                pose[sel]
            )
            out.cost[sel], out.residual[sel] = sc.cost[:, 0], sc.residual[:, 0]
            out.observed[sel], out.inliers[sel] = sc.observed[:, 0], sc.inliers[:, 0]
        return out

    def _searcher(
        self,
        cmaps: CostMaps,
        c: int,
        rows: np.ndarray,
        pred: np.ndarray,
        pred_xyz: np.ndarray,
        size: np.ndarray,
        occlusion: Optional[Occlusion],
        per_edge: int,
    ) -> PoseSearch:
        """A :class:`PoseSearch` over agents ``rows`` of class ``c`` (predictions ``pred [len(rows), 3]``)."""
        cam = self.camera
        tpl = template(c, per_edge)
        body = body_samples(c, size[rows], per_edge)
        depth = cam.to_camera(pred_xyz[rows])[:, 2]
        return PoseSearch(
            cam,
            cmaps,
            tpl.colour,
            body,
            pred_xyz[rows, 2] - 0.5 * size[rows, 2],
            depth,
            pred,
            self.config.score,
            self.tau,
            occlusion,
            self.config.chunk,
        )

    def _reconcile(
        self,
        cmaps: CostMaps,
        entered: EnteredAgents,
        left: np.ndarray,
        pred_xyz: np.ndarray,
        pred_yaw: np.ndarray,
        size: np.ndarray,
        types: np.ndarray,
        fit_xyz: np.ndarray,
        fit_yaw: np.ndarray,
        visible: np.ndarray,
        conf: np.ndarray,
        resid: np.ndarray,
    ) -> EnteredAgents:
        """Give lost agents their identity back when a detection of their class lies near their prediction.

        The matched agent is refitted with its own box from the detection's pose
        (the fine search levels); arrays are updated in place and the remaining
        detections returned.
        """
        pairs = reconcile(left, pred_xyz[:, :2], types, entered, self.camera.position[:2])
        if not pairs:
            return entered
        rows = np.array([p[0] for p in pairs])
        js = np.array([p[1] for p in pairs])
        start = np.concatenate([entered.xyz[js, :2], entered.heading[js, None]], 1)
        pred = np.concatenate([pred_xyz[rows, :2], pred_yaw[rows, None]], 1)
        pose = self._search(
            cmaps,
            rows,
            start,
            pred,
            pred_xyz,
            size,
            types,
            None,
            tuple(grid_level(*lv) for lv in self.config.levels),
            self.config.per_edge,
        )
        ev = self._evaluate(cmaps, rows, pose, pred, pred_xyz, size, types, None)
        fit_xyz[rows, :2] = pose[:, :2]
        fit_yaw[rows] = pose[:, 2]
        visible[rows] = True
        conf[rows] = ev.inliers / np.maximum(ev.observed, 1)
        resid[rows] = ev.residual
        keep = np.setdiff1d(np.arange(len(entered)), js)
        return EnteredAgents(
            entered.xyz[keep],
            entered.heading[keep],
            entered.size[keep],
            entered.types[keep],
            entered.confidence[keep],
            entered.residual[keep],
            entered.pixels[keep],
        )

    def _explained(self, frame: np.ndarray, xyz: np.ndarray, yaw: np.ndarray, size: np.ndarray, types: np.ndarray) -> np.ndarray:
        """[H, W] bool: frame skeleton pixels the given agents' rendered skeletons explain (colour and place)."""
        cam = self.camera
        if len(xyz) == 0:
            return np.zeros((cam.height, cam.width), bool)
        rendered = np.zeros((cam.height, cam.width, 3), np.uint8)
        draw_agents(rendered, cam, AgentPoses(xyz, yaw, size, types), self.style)
        return explained_by(frame, rendered, 1, self.config.pixels)


__all__ = ["PoseParser"]
