"""Rasterising agents: the pure drawing function the pose video is made of.

The frame is a pure function of ``(camera, agent poses, sizes, types,
walking phases, style)``: nothing random, nothing cached that changes the
pixels.  Parsing (render-and-compare) relies on that, and uses the public
pieces here: :func:`project_agents` (per-agent clipped pixel segments and
depth), :func:`draw_agents`, :func:`render_agent` (one agent's skeleton
alone) and :func:`agent_id_mask` (which agent owns each pixel).

Agent poses are given in the camera's *vehicle* frame (x forward, y left,
z up, metres, ground at z = 0 below the viewpoint).

Painter's order is exact per agent: agents are drawn from the farthest
(camera depth of the box centre) to the nearest, each agent's edges in
skeleton order and then its keypoint dots, so a near agent's pixels always
cover a far agent's.  OpenCV would need one call per colour *and* per depth
layer for that, so skeletons are rasterised here with numpy instead
(:mod:`mad_sim.render.splat`): every segment of every agent of every frame
in one vectorised pass, pixels written in painter order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Optional

import numpy as np

from mad_sim.errors import RenderError
from mad_sim.render.camera import Camera
from mad_sim.render.skeleton import SPECS, SkeletonSpec, class_of, keypoints_for, place
from mad_sim.render.splat import Strokes, splat

if TYPE_CHECKING:
    import numpy.typing as npt


@dataclass(frozen=True)
class PoseStyle:
    """Line widths, colours and ranges of the pose video (pixels, RGB, metres).

    ``line_px`` / ``dot_px`` of 0 mean "from the resolution": lines
    ``max(1, round(width / 256))`` pixels wide, keypoint dots one pixel wider
    than lines from 256 pixels up.  Below 256 pixels agents get no keypoint
    dots (a dot as thin as a line is invisible, and a thicker one swamps the
    few-pixel skeletons of distant agents); lane dots are always drawn.
    """

    line_px: int = 0
    dot_px: int = 0
    max_range_m: float = 100.0
    lane_rgb: tuple = (255, 255, 255)
    road_line_rgb: tuple = (150, 150, 150)
    road_edge_rgb: tuple = (90, 90, 90)
    crosswalk_rgb: tuple = (60, 60, 60)
    lane_dot_spacing_m: float = 4.0
    lane_dot_range_m: float = 40.0
    draw_crosswalks: bool = True
    draw_traffic_lights: bool = True

    def line_width(self, width: int) -> int:
        return self.line_px or max(1, int(round(width / 256)))

    def dot_width(self, width: int) -> int:
        """Keypoint dot width in pixels (see :meth:`agent_dots` for whether agents get dots)."""
        return self.dot_px or (self.line_width(width) + (1 if width >= 256 else 0))

    def agent_dots(self, width: int) -> bool:
        """Whether agent skeletons get keypoint dots: with an explicit ``dot_px`` or from 256 px wide."""
        return bool(self.dot_px) or width >= 256

    def agent_dot_width(self, width: int) -> int:
        """Dot width the agent rasteriser uses: :meth:`dot_width`, or 0 (no dots)."""
        return self.dot_width(width) if self.agent_dots(width) else 0


@dataclass(init=False)
class AgentPoses:
    """Agents to draw, in the camera's vehicle frame.

    Attributes:
      xyz: [n, 3] float64 box centres, metres.
      heading: [n] float64 yaw, radians CCW from the vehicle x axis.
      size: [n, 3] float64 (length, width, height), metres, all > 0.
      types: [n] int :class:`~mad_sim.data.scenario.ObjectType`.
      phase: [n] float64 gait / pedalling phase, radians (pedestrians, cyclists).
      speed: [n] float64 m/s (sets the pedestrians' limb swing).
      ids: [n] int64 labels (track indices) used by :func:`agent_id_mask`.
      frame: [n] int64 which frame of a batch the agent belongs to (0 for one frame).

    The constructor takes array-likes and stores arrays of the shapes above; ``phase`` and ``speed``
    default to 0, ``ids`` to ``arange(n)``, ``frame`` to 0.
    """

    xyz: np.ndarray
    heading: np.ndarray
    size: np.ndarray
    types: np.ndarray
    phase: np.ndarray
    speed: np.ndarray
    ids: np.ndarray
    frame: np.ndarray

    def __init__(
        self,
        xyz: npt.ArrayLike,
        heading: npt.ArrayLike,
        size: npt.ArrayLike,
        types: npt.ArrayLike,
        phase: Optional[npt.ArrayLike] = None,
        speed: Optional[npt.ArrayLike] = None,
        ids: Optional[npt.ArrayLike] = None,
        frame: Optional[npt.ArrayLike] = None,
    ) -> None:
        self.xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
        n = self.xyz.shape[0]
        self.heading = np.asarray(heading, np.float64).reshape(n)
        self.size = np.asarray(size, np.float64).reshape(n, 3)
        self.types = np.asarray(types).reshape(n)
        self.phase = np.zeros(n) if phase is None else np.asarray(phase, np.float64).reshape(n)
        self.speed = np.zeros(n) if speed is None else np.asarray(speed, np.float64).reshape(n)
        self.ids = np.arange(n) if ids is None else np.asarray(ids, np.int64).reshape(n)
        self.frame = np.zeros(n, np.int64) if frame is None else np.asarray(frame, np.int64).reshape(n)

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def check(self, where: str = "agents") -> None:
        """Raise RenderError naming the first agent with a non-finite pose or a non-positive size."""
        # Fast path: one finite total means every value is finite (any NaN / inf makes the sum non-finite;
        # a finite-but-huge overflow only sends us to the exact per-agent test below).
        with np.errstate(over="ignore", invalid="ignore"):
            total = self.xyz.sum() + self.heading.sum() + self.phase.sum() + self.speed.sum() + self.size.sum()
        if np.isfinite(total) and (self.size.size == 0 or self.size.min() > 0):
            return
        bad = ~np.isfinite(self.xyz).all(1) | ~np.isfinite(self.heading) | ~np.isfinite(self.phase) | ~np.isfinite(self.speed)
        if bad.any():
            i = int(np.argmax(bad))
            raise RenderError(f"{where}: agent {int(self.ids[i])} (frame {int(self.frame[i])}) has a non-finite pose")
        bad = ~(np.isfinite(self.size).all(1) & (self.size > 0).all(1))
        if bad.any():
            i = int(np.argmax(bad))
            raise RenderError(
                f"{where}: agent {int(self.ids[i])} (frame {int(self.frame[i])}) has box size "
                f"{self.size[i].tolist()} (every dimension must be finite and > 0)"
            )

    def take(self, index: np.ndarray) -> "AgentPoses":
        return AgentPoses(
            self.xyz[index],
            self.heading[index],
            self.size[index],
            self.types[index],
            self.phase[index],
            self.speed[index],
            self.ids[index],
            self.frame[index],
        )


@dataclass
class ClassGeometry:
    """Projected skeletons of the visible agents of one class.

    Attributes:
      spec: the class's :class:`~mad_sim.render.skeleton.SkeletonSpec`.
      agent: [m] int, index into the :class:`AgentPoses` the geometry was built from.
      seg_a, seg_b: [m, E, 2] float64 clipped edge endpoints, pixels.
      seg_keep: [m, E] bool, the edge has a visible part.
      dots: [m, K, 2] float64 keypoint pixels.
      dot_keep: [m, K] bool, the keypoint has a dot, is in front of the camera and inside the image.
    """

    spec: SkeletonSpec
    agent: np.ndarray
    seg_a: np.ndarray
    seg_b: np.ndarray
    seg_keep: np.ndarray
    dots: np.ndarray
    dot_keep: np.ndarray


@dataclass
class AgentGeometry:
    """Everything needed to draw a set of agents (see :func:`project_agents`).

    Attributes:
      classes: one :class:`ClassGeometry` per class with visible agents.
      depth: [n] float64 camera depth of every agent's box centre (metres).
      visible: [n] bool, at least one edge of the agent is on screen.
      bbox: [n, 4] float64 screen box ``(u0, v0, u1, v1)`` of the visible parts (zeros if not visible).
      frame: [n] int64 frame of each agent.
    """

    classes: List[ClassGeometry]
    depth: np.ndarray
    visible: np.ndarray
    bbox: np.ndarray
    frame: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def painter_order(self) -> np.ndarray:
        """Indices of the visible agents in drawing order: by frame, then farthest first (ties by index)."""
        vis = np.flatnonzero(self.visible)
        return vis[np.lexsort((vis, -self.depth[vis], self.frame[vis]))]


def _reduce_axis1(op: np.ufunc, x: np.ndarray) -> np.ndarray:
    """``op.reduce(x, axis=1)`` for x [m, K, 2] as K - 1 elementwise calls on [m, 2] slices.

    Exact (min / max involve no rounding) and much faster than numpy's strided axis-1 reduction
    of a short middle axis when m is large (a batch of frames); small inputs use the plain reduction.
    """
    if x.shape[0] < 256:  # few agents (one frame): the per-call overhead of the slice loop dominates
        return op.reduce(x, axis=1)
    out = x[:, 0].copy()
    for j in range(1, x.shape[1]):
        op(out, x[:, j], out=out)
    return out


def project_agents(camera: Camera, agents: AgentPoses, max_range_m: float = 100.0) -> AgentGeometry:
    """Project every agent's skeleton and clip it to the view frustum.

    Agents farther than ``max_range_m`` from the camera (ground distance) or
    entirely behind it are culled.  Raises RenderError for non-finite poses
    or empty boxes.
    """
    agents.check()
    n = len(agents)
    visible = np.zeros(n, bool)
    bbox = np.zeros((n, 4))
    classes: List[ClassGeometry] = []
    centers = camera.to_camera(agents.xyz) if n else np.zeros((0, 3))
    depth = centers[:, 2]
    if n:
        cam = camera.position
        sz = agents.size
        # Bounding sphere of the box (the skeletons stay inside their boxes, give or take a limb).
        reach = 0.55 * np.sqrt(sz[:, 0] * sz[:, 0] + sz[:, 1] * sz[:, 1] + sz[:, 2] * sz[:, 2])
        dx, dy = agents.xyz[:, 0] - cam[0], agents.xyz[:, 1] - cam[1]
        lim = max_range_m + reach
        near_enough = (dx * dx + dy * dy <= lim * lim) & camera.sphere_visible(centers, reach)
        cls = class_of(agents.types)
        for c, spec in enumerate(SPECS):
            idx = np.flatnonzero((cls == c) & near_enough)
            if idx.size == 0:
                continue
            kp = place(
                keypoints_for(spec, agents.size[idx], agents.phase[idx], agents.speed[idx]),
                agents.xyz[idx],
                agents.heading[idx],
                agents.size[idx, 2],
            )
            kc = camera.to_camera(kp)  # [m, K, 3]
            m, k = kc.shape[:2]
            e0, e1 = spec.edges[:, 0], spec.edges[:, 1]
            front = kc[..., 2] > camera.near
            # Agents whose keypoints are all inside the frustum need no clipping: edges join projected keypoints.
            whole = camera.in_frustum(kc.reshape(-1, 3)).reshape(m, k).all(1)
            part = np.flatnonzero(~whole)
            if part.size:
                kcp = np.take(kc, part, axis=0)
                a, b, kp_keep = camera.clip_segments(np.take(kcp, e0, axis=1), np.take(kcp, e1, axis=1))
                # Only a clipped agent can lose every edge: drop those before projecting anything.
                seen = kp_keep.any(1)
                if not seen.all():
                    rows = np.ones(m, bool)
                    rows[part[~seen]] = False
                    if not rows.any():
                        continue
                    part = (np.cumsum(rows) - 1)[part[seen]]
                    a, b, kp_keep = a[seen], b[seen], kp_keep[seen]
                    idx, kc, front = idx[rows], kc[rows], front[rows]
            uvk = camera.project_camera(np.where(front[..., None], kc, 1.0))  # [m, K, 2]
            # np.take: same values as uvk[:, e0], without fancy indexing's slow path for trailing axes.
            ua, ub = np.take(uvk, e0, axis=1), np.take(uvk, e1, axis=1)
            keep = np.ones(ua.shape[:2], bool)
            lo, hi = _reduce_axis1(np.minimum, uvk), _reduce_axis1(np.maximum, uvk)
            if part.size:
                ua[part] = camera.project_camera(np.where(kp_keep[..., None], a, 1.0))
                ub[part] = camera.project_camera(np.where(kp_keep[..., None], b, 1.0))
                keep[part] = kp_keep
                k3 = kp_keep[..., None]
                lo[part] = _reduce_axis1(np.minimum, np.minimum(np.where(k3, ua[part], np.inf), np.where(k3, ub[part], np.inf)))
                hi[part] = _reduce_axis1(np.maximum, np.maximum(np.where(k3, ua[part], -np.inf), np.where(k3, ub[part], -np.inf)))
            dots = uvk
            dot_keep = front & camera.in_image(dots) & spec.has_dot[None, :]
            bbox[idx] = np.concatenate([lo, hi], 1)
            visible[idx] = True
            classes.append(ClassGeometry(spec, idx, ua, ub, keep, dots, dot_keep))
    return AgentGeometry(classes, depth, visible, bbox, agents.frame.copy())


def _take_rgb(rgb: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``rgb[index]`` for [S, 3] uint8 colours via ``np.take`` (numpy's fancy row gather of 3-byte rows is
    several times slower)."""
    return np.take(np.ascontiguousarray(rgb, np.uint8), index, axis=0)


def agent_strokes(geo: AgentGeometry, ids: np.ndarray, line_px: int, dot_px: int) -> Strokes:
    """Every visible edge and dot as a :class:`Strokes` list in painter order.

    Order key: frame, then agent rank (farthest first), then edges before
    dots, then edge / keypoint index.  ``label`` of each stroke is the agent's id.
    """
    n = geo.depth.shape[0]
    rank = np.zeros(n, np.int64)
    order = geo.painter_order()
    rank[order] = np.arange(order.size)
    parts = []
    # Each part holds its strokes grouped by agent (edge / keypoint index ascending within an agent), so
    # painter order only needs the per-agent blocks sorted: (rank, edges before dots).  Blocks are
    # [block key, start in the concatenated parts, length].
    blocks = []
    offset = 0
    for cg in geo.classes:
        spec = cg.spec
        m, e = cg.seg_keep.shape
        k = cg.dots.shape[1]
        r = rank[cg.agent]
        # Flat indices into the [m, E] / [m, K] tables (one 1-D gather instead of a 2-D fancy index).
        flat = np.flatnonzero(cg.seg_keep)
        ai, ei = np.divmod(flat, e)
        parts.append(
            (
                cg.agent[ai],
                r[ai] * 256 + ei,
                np.take(cg.seg_a.reshape(-1, 2), flat, axis=0),
                np.take(cg.seg_b.reshape(-1, 2), flat, axis=0),
                _take_rgb(spec.edge_colors, ei),
                np.full(ai.size, line_px),
            )
        )
        count = np.bincount(ai, minlength=m)
        blocks.append((r * 2, offset + np.cumsum(count) - count, count))
        offset += ai.size
        flat = np.flatnonzero(cg.dot_keep) if dot_px > 0 else np.zeros(0, np.int64)
        ai, ki = np.divmod(flat, k)
        p = np.take(cg.dots.reshape(-1, 2), flat, axis=0)
        parts.append((cg.agent[ai], r[ai] * 256 + 128 + ki, p, p, _take_rgb(spec.dot_colors, ki), np.full(ai.size, dot_px)))
        count = np.bincount(ai, minlength=m)
        blocks.append((r * 2 + 1, offset + np.cumsum(count) - count, count))
        offset += ai.size
    if not parts:
        return Strokes.empty()
    agent = np.concatenate([p[0] for p in parts])
    if all(geo.visible[cg.agent].all() for cg in geo.classes):
        # Visible agents have distinct ranks: sorting the few blocks gives the same order as sorting every
        # stroke by its key, at a fraction of the cost.
        bkey, bstart, blen = (np.concatenate([b[j] for b in blocks]) for j in range(3))
        bo = np.argsort(bkey, kind="stable")
        bstart, blen = bstart[bo], blen[bo]
        s = np.arange(offset) + np.repeat(bstart - (np.cumsum(blen) - blen), blen)
    else:
        s = np.argsort(np.concatenate([p[1] for p in parts]), kind="stable")
    agent = agent[s]
    return Strokes(
        frame=geo.frame[agent],
        a=np.take(np.concatenate([p[2] for p in parts]), s, axis=0),
        b=np.take(np.concatenate([p[3] for p in parts]), s, axis=0),
        color=_take_rgb(np.concatenate([p[4] for p in parts]), s),
        width=np.concatenate([p[5] for p in parts])[s],
        label=ids[agent],
    )


def draw_agents(
    image: np.ndarray,
    camera: Camera,
    agents: AgentPoses,
    style: Optional[PoseStyle] = None,
    geometry: Optional[AgentGeometry] = None,
) -> AgentGeometry:
    """Draw the agents' skeletons into ``image`` (modified in place), back to front.

    ``image`` is [H, W, 3] uint8, or [F, H, W, 3] when ``agents.frame`` indexes
    a batch of frames.  Returns the :class:`AgentGeometry` used (pass
    ``geometry`` to reuse one).
    """
    style = style or PoseStyle()
    geo = geometry or project_agents(camera, agents, style.max_range_m)
    st = agent_strokes(geo, agents.ids, style.line_width(camera.width), style.agent_dot_width(camera.width))
    splat(image if image.ndim == 4 else image[None], st, colors=True)
    return geo


def render_agent(
    camera: Camera,
    xyz: np.ndarray,
    heading: float,
    size: np.ndarray,
    object_type: int,
    phase: float = 0.0,
    speed: float = 0.0,
    style: Optional[PoseStyle] = None,
) -> np.ndarray:
    """One agent's skeleton alone on black: [H, W, 3] uint8 (pose in the camera's vehicle frame)."""
    img = np.zeros((camera.height, camera.width, 3), np.uint8)
    draw_agents(
        img,
        camera,
        AgentPoses(
            np.asarray(xyz, np.float64)[None], [heading], np.asarray(size, np.float64)[None], [object_type], [phase], [speed]
        ),
        style,
    )
    return img


def agent_id_mask(
    camera: Camera, agents: AgentPoses, style: Optional[PoseStyle] = None, geometry: Optional[AgentGeometry] = None
) -> np.ndarray:
    """[H, W] int32: the ``ids`` of the agent whose skeleton owns each pixel, -1 for none.

    The same strokes, widths and painter order as :func:`draw_agents`, so
    ``mask >= 0`` is exactly where the agents' pixels of the frame are.
    Batches (``agents.frame``) give [F, H, W].
    """
    style = style or PoseStyle()
    geo = geometry or project_agents(camera, agents, style.max_range_m)
    st = agent_strokes(geo, agents.ids, style.line_width(camera.width), style.agent_dot_width(camera.width))
    frames = int(agents.frame.max()) + 1 if len(agents) else 1
    mask = np.full((frames, camera.height, camera.width), -1, np.int32)
    splat(mask, st, colors=False)
    return mask if frames > 1 else mask[0]
