"""Entering agents: skeleton pixels no known agent explains, fitted by class templates.

After the known agents are fitted (:class:`~mad_sim.model.parse.parser.PoseParser`),
the *unexplained* skeleton pixels are the saturated pixels farther than two
pixels from every visible agent's rendered skeleton and outside the static
background (traffic-light poles).  They are grouped into blobs (8-connected
after a one-pixel dilation, so the edges of one skeleton join), largest
first, and each blob is explained by a template fit:

1. *Where.*  The blob's lowest pixel row is taken as ground contact: its
   centre pixel back-projected to the ground plane
   (:meth:`Camera.backproject_ground`) gives the near side of the agent.
2. *What and how.*  For each class template (a median WOMD car, pedestrian
   and cyclist box), candidate poses on a grid aligned with the viewing ray
   (along: 0 .. one box length behind the contact point, across: +-1 m,
   heading: 12 directions; the hue-coded edges make front and back
   distinguishable) are scored by the chamfer cost of
   :mod:`mad_sim.model.parse.skeleton_fit` against distance maps of *this blob's
   pixels only*, then refined coarse to fine.
3. *Accept.*  The best pose of each class is rendered; the symmetric
   chamfer (model -> blob cost plus blob -> model mean distance) picks the
   class, and the detection is accepted when at least half of the samples
   and half of the blob's pixels are matched.  Its skeleton is then marked
   explained, and the next blob (possibly the rest of a blob that held two
   agents) is examined.

Known agents expected in view whose fit failed (*left*) and a detection of
the same class close to their prediction are one and the same agent whose
fit was lost: :func:`reconcile` gives them back their identity.

All poses in the camera's vehicle frame.  Nothing here imports torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mad_sim.data.scenario import ObjectType
from mad_sim.model.parse.cost_maps import CostMaps
from mad_sim.model.parse.pixels import explained_by
from mad_sim.model.parse.results import EnteredAgents
from mad_sim.model.parse.search import Level as SearchLevel
from mad_sim.model.parse.search import PoseSearch, grid_level, line
from mad_sim.model.parse.skeleton_fit import Scores, body_samples, template
from mad_sim.render.draw import AgentPoses, agent_id_mask, draw_agents
from mad_sim.render.skeleton import class_of

if TYPE_CHECKING:
    from mad_sim.model.parse.parser import PoseParser

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassTemplate:
    """A class hypothesis for a new agent: its type and box (median WOMD sizes, metres)."""

    object_type: int
    size: Tuple[float, float, float]


TEMPLATES: Tuple[ClassTemplate, ...] = (
    ClassTemplate(ObjectType.VEHICLE, (4.6, 2.0, 1.7)),
    ClassTemplate(ObjectType.PEDESTRIAN, (0.85, 0.85, 1.7)),
    ClassTemplate(ObjectType.CYCLIST, (1.8, 0.7, 1.7)),
)


@dataclass(frozen=True)
class DetectConfig:
    """Settings of the search for entering agents.

    Attributes:
      min_pixels: smallest blob (unexplained skeleton pixels) examined, at 128 pixels of
        image width; scaled by ``(width / 128) ** 2``.
      max_new: most detections per frame.
      min_inlier_frac: fraction of template samples matched (within ``inlier_px``) to accept.
      min_coverage: fraction of the blob's pixels within ``coverage_px`` of the fitted skeleton to accept.
      coverage_px: distance (pixels) at which a blob pixel counts as covered.
      yaw_steps: headings tried from scratch.
      max_range_m: contact points farther than this are not fitted (nothing resolvable).
      levels: coarse-to-fine refinement ``(step_xy m, n_xy, step_yaw deg, n_yaw)`` after the ray-aligned grid.
    """

    min_pixels: int = 5
    max_new: int = 16
    min_inlier_frac: float = 0.5
    min_coverage: float = 0.5
    coverage_px: float = 1.5
    yaw_steps: int = 12
    max_range_m: float = 80.0
    levels: Tuple[Tuple[float, int, float, int], ...] = ((0.5, 7, 5.0, 7), (0.2, 3, 2.0, 3), (0.08, 3, 0.8, 3))


def _components(mask: np.ndarray) -> Tuple[int, np.ndarray]:
    joined = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
    n, labels = cv2.connectedComponents(joined, connectivity=8)
    return n, np.where(mask, labels, 0)


def _contact(parser: "PoseParser", blob: np.ndarray) -> Optional[np.ndarray]:
    """Ground point [2] (vehicle frame) below the blob's lowest pixels, or None above the horizon / too far."""
    vs, us = np.nonzero(blob)
    low = vs >= vs.max() - 1
    uv = np.array([float(np.median(us[low])), float(vs.max()) + 0.5])
    g = parser.camera.backproject_ground(uv)
    if not np.isfinite(g).all():
        return None
    return g[:2]


def _fit_template(
    parser: "PoseParser", cmaps: CostMaps, tpl_cls: ClassTemplate, contact: np.ndarray, config: "DetectConfig"
) -> Tuple[np.ndarray, Scores]:
    """Best pose [3] (vehicle frame) of one class template around a contact point, with its scores."""
    c = int(class_of(np.array([tpl_cls.object_type]))[0])
    size = np.array([tpl_cls.size], np.float64)
    cam_xy = parser.camera.position[:2]
    length = float(max(size[0, 0], size[0, 1]))
    # Along the ray: from the contact point to one box length behind it (the centre sits half a box away).
    n_along, n_across = 9, 5
    ray = (contact - cam_xy) / max(float(np.linalg.norm(contact - cam_xy)), 1e-6)
    centre = contact + 0.5 * length * ray
    perp = np.array([-ray[1], ray[0]])
    a = line(length / (n_along - 1), n_along)
    b = line(0.5, n_across)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    offsets = aa.ravel()[:, None] * ray[None] + bb.ravel()[:, None] * perp[None]
    yaws = np.arange(config.yaw_steps) * (2 * np.pi / config.yaw_steps)

    def searcher(per_edge: int) -> PoseSearch:
        return PoseSearch(
            parser.camera,
            cmaps,
            template(c, per_edge).colour,
            body_samples(c, size, per_edge),
            np.zeros(1),
            np.zeros(1),
            None,
            parser.config.score,
            parser.tau,
        )

    # The wide levels (the ray-aligned grid and the first refinement) with the parser's coarse sampling
    # and nearest-pixel lookups, the rest bilinear with the full sampling.
    coarse = searcher(parser.config.coarse_per_edge)
    fine = searcher(parser.config.per_edge)
    best = np.array([[centre[0], centre[1], 0.0]])
    best = coarse.run(best, [SearchLevel(yaws, offsets, bilinear=False), grid_level(*config.levels[0], bilinear=False)])
    best = fine.run(best, [grid_level(*lv) for lv in config.levels[1:]])
    return best[0], fine.evaluate(best)


def _agent(pose: np.ndarray, tc: ClassTemplate) -> AgentPoses:
    size = np.array([tc.size], np.float64)
    return AgentPoses(np.array([[pose[0], pose[1], 0.5 * size[0, 2]]]), [pose[2]], size, [tc.object_type])


def _coverage(
    parser: "PoseParser", pose: np.ndarray, tpl_cls: ClassTemplate, blob: np.ndarray, cover_px: float, tau: float
) -> Tuple[float, float, np.ndarray]:
    """(fraction of blob pixels within ``cover_px`` of the rendered skeleton, their mean distance, skeleton mask)."""
    mask = agent_id_mask(parser.camera, _agent(pose, tpl_cls), parser.style) >= 0
    if not mask.any():
        return 0.0, tau, mask
    d = cv2.distanceTransform(np.where(mask, 0, 255).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    db = np.minimum(d[blob], tau)
    return float((db <= cover_px).mean()), float(db.mean()), mask


def detect_entering(
    parser: "PoseParser",
    frame: np.ndarray,
    pixels: Sequence[np.ndarray],
    agent: np.ndarray,
    explained: np.ndarray,
    background: Optional[np.ndarray],
    config: DetectConfig = DetectConfig(),
) -> Tuple["EnteredAgents", np.ndarray]:
    """Find agents in the unexplained skeleton pixels (see the module docstring).

    ``pixels`` and ``agent`` are the frame's colour classes
    (:func:`~mad_sim.model.parse.pixels.colour_pixels`: flat pixel indices per
    palette colour, [H, W] bool saturated mask).

    Returns ``(entered, explained)``: the detections (vehicle frame) and the
    explained-pixel mask grown by their skeletons.
    """
    h, w = explained.shape
    min_px = max(3, int(round(config.min_pixels * (w / 128.0) ** 2)))
    explained = explained.copy()
    tried = np.zeros_like(explained)
    blocked = background if background is not None else np.zeros_like(explained)
    found: List[Tuple[np.ndarray, ClassTemplate, float, float, int]] = []
    cam_xy = parser.camera.position[:2]
    while len(found) < config.max_new:
        free = agent & ~explained & ~blocked & ~tried
        n, labels = _components(free)
        if n <= 1:
            break
        counts = np.bincount(labels.ravel(), minlength=n)
        counts[0] = 0
        k = int(np.argmax(counts))
        if counts[k] < min_px:
            break
        blob = labels == k
        contact = _contact(parser, blob)
        if contact is None or np.hypot(*(contact - cam_xy)) > config.max_range_m:
            tried |= blob
            continue
        # Distance maps of this blob's pixels only (other skeletons must not attract the template).
        grown = cv2.dilate(blob.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        keep = (grown & ~explained & ~blocked).reshape(-1)
        bpix = [p[keep[p]] for p in pixels]
        bmaps = CostMaps.from_pixels(bpix, agent & keep.reshape(agent.shape), parser.tau, parser.config.score)
        best = None
        for tc in TEMPLATES:
            pose, sc = _fit_template(parser, bmaps, tc, contact, config)
            frac = float(sc.inliers[0, 0]) / max(int(sc.observed[0, 0]), 1)
            cover, back, mask = _coverage(parser, pose, tc, blob, config.coverage_px, parser.tau)
            sym = float(sc.residual[0, 0]) + back
            ok = (
                frac >= config.min_inlier_frac
                and cover >= config.min_coverage
                and sc.observed[0, 0] >= parser.config.min_observed
            )
            if ok and (best is None or sym < best[0]):
                best = (sym, pose, tc, frac, float(sc.residual[0, 0]), mask)
        if best is None:
            tried |= blob
            continue
        _, pose, tc, frac, res, mask = best
        rendered = np.zeros(frame.shape, np.uint8)
        draw_agents(rendered, parser.camera, _agent(pose, tc), parser.style)
        near = explained_by(frame, rendered, 1, parser.config.pixels)
        newly = int((near & ~explained & blob).sum())
        explained |= near
        # Whatever of the blob the detection leaves is examined again, but only once.
        tried |= blob & ~near
        found.append((pose, tc, frac, res, newly))
    if not found:
        return EnteredAgents.empty(), explained
    pose = np.array([f[0] for f in found])
    size = np.array([f[1].size for f in found], np.float64)
    xyz = np.concatenate([pose[:, :2], 0.5 * size[:, 2:3]], 1)
    return EnteredAgents(
        xyz=xyz,
        heading=pose[:, 2],
        size=size,
        types=np.array([f[1].object_type for f in found], np.int8),
        confidence=np.array([f[2] for f in found]),
        residual=np.array([f[3] for f in found]),
        pixels=np.array([f[4] for f in found], np.int64),
    ), explained


def reconcile(
    left: np.ndarray,
    pred_xy: np.ndarray,
    types: np.ndarray,
    entered: "EnteredAgents",
    camera_xy: np.ndarray,
    gate_m: float = 3.0,
    gate_frac: float = 0.1,
) -> List[Tuple[int, int]]:
    """Pairs ``(known row, entered index)``: a lost agent re-found as a detection of its class near its prediction.

    The gate is ``gate_m + gate_frac * range`` metres (range from the camera,
    vehicle frame); each detection and each agent is used at most once,
    closest pairs first.
    """
    if len(left) == 0 or len(entered) == 0:
        return []
    d = np.linalg.norm(pred_xy[left][:, None] - entered.xyz[None, :, :2], axis=-1)
    rng = np.linalg.norm(pred_xy[left] - camera_xy, axis=-1)
    same = class_of(types[left])[:, None] == class_of(entered.types)[None]
    d = np.where(same & (d <= gate_m + gate_frac * rng[:, None]), d, np.inf)
    pairs: List[Tuple[int, int]] = []
    while np.isfinite(d).any():
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        pairs.append((int(left[i]), int(j)))
        d[i, :] = np.inf
        d[:, j] = np.inf
    return pairs
