"""Parse-back accuracy on logged scenes: render the log, parse it with a perturbed prior, compare with the log.

Protocol (one scenario, one viewpoint, steps ``t``):

1. Render the log at step ``t`` from the viewpoint's camera
   (:class:`~mad_sim.render.pose.PoseRenderer`), optionally degraded like a
   generated frame (:func:`degrade`: Gaussian noise, blur, a small shift,
   dropped pixels).
2. The prior is the log at ``t - 1`` with every agent's position moved by a
   uniform random offset in ``[-pos_noise, pos_noise]`` metres per axis and
   its heading by ``[-yaw_noise, yaw_noise]``; a fraction ``hide_frac`` of the
   agents that are *visible* at ``t`` is removed from the prior (they must
   come back as entering agents).
3. :meth:`PoseParser.parse`; then per visible, known agent the ground
   position error against the log at ``t``, and per hidden agent whether an
   entering detection lies within the match gate ``gate_m + gate_frac * range``.

An agent is *visible* when its skeleton owns at least ``min_pixels`` pixels
of the clean frame (:func:`~mad_sim.render.draw.agent_id_mask`, which
accounts for occlusion).  Distance bands are ground range from the camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

import cv2
import numpy as np

from mad_sim.data.scenario import Scenario
from mad_sim.model.parse.parser import PoseParser
from mad_sim.model.parse.results import background_mask, ego_pose_of, lights_at
from mad_sim.render.draw import AgentPoses, agent_id_mask
from mad_sim.render.pose import PoseRenderer
from mad_sim.world.state import AgentStates, WorldState

BANDS: Tuple[Tuple[float, float], ...] = ((0.0, 20.0), (20.0, 40.0), (40.0, np.inf))


def degrade(
    frame: np.ndarray, rng: np.random.Generator, noise: float = 8.0, blur: bool = True, max_shift: int = 1, drop: float = 0.05
) -> np.ndarray:
    """A clean pose frame made to look generated: blur (3x3 Gaussian), shift, Gaussian noise, dropped pixels."""
    img: np.ndarray = frame.astype(np.float32)
    if blur:
        img = cv2.GaussianBlur(img, (3, 3), 0.6)
        # Re-normalise stroke brightness the way a generator keeps strokes bright.
        img = np.minimum(img * 1.6, 255.0)
    if max_shift:
        dx, dy = rng.integers(-max_shift, max_shift + 1, 2)
        img = np.roll(img, (int(dy), int(dx)), axis=(0, 1))
    img = img + rng.normal(0.0, noise, img.shape).astype(np.float32)
    if drop > 0:
        img[rng.random(img.shape[:2]) < drop] = 0.0
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass
class ParseEval:
    """Collected comparisons.

    Attributes:
      errors: [V] ground position errors (metres) of visible known agents.
      prior_errors: [V] the same errors of the constant-velocity prediction from the perturbed prior.
      radial, lateral: [V] absolute error components along / across the camera ray (metres).
      ranges: [V] their ranges from the camera (metres).
      yaw_errors: [V] absolute heading errors (radians) of visible known vehicles (NaN for others).
      found: [V] bool, the parser reported them visible.
      hidden_found: [Hd] bool, a hidden agent was matched by a detection.
      detections: total entering detections; true_detections: those matching a hidden agent.
      left_false: visible known agents wrongly reported as left.
    """

    errors: List[float] = field(default_factory=list)
    prior_errors: List[float] = field(default_factory=list)
    radial: List[float] = field(default_factory=list)
    lateral: List[float] = field(default_factory=list)
    ranges: List[float] = field(default_factory=list)
    yaw_errors: List[float] = field(default_factory=list)
    found: List[bool] = field(default_factory=list)
    hidden_found: List[bool] = field(default_factory=list)
    detections: int = 0
    true_detections: int = 0
    left_false: int = 0
    frames: int = 0

    def band_stats(self, only_found: bool = True, which: str = "errors") -> Dict[str, Dict[str, float]]:
        """Per band: count, median and 90th-percentile of ``which`` (errors, prior_errors, radial, lateral; metres)."""
        e, r, f = np.array(getattr(self, which)), np.array(self.ranges), np.array(self.found, bool)
        out: Dict[str, Dict[str, float]] = {}
        for lo, hi in BANDS:
            m = (r >= lo) & (r < hi)
            if only_found:
                m &= f
            name = f"{lo:.0f}-{hi:.0f} m" if np.isfinite(hi) else f"{lo:.0f}+ m"
            out[name] = {
                "n": int(m.sum()),
                "median": float(np.median(e[m])) if m.any() else float("nan"),
                "p90": float(np.percentile(e[m], 90)) if m.any() else float("nan"),
            }
        return out

    @property
    def recall(self) -> float:
        return float(np.mean(self.hidden_found)) if self.hidden_found else float("nan")

    @property
    def precision(self) -> float:
        return self.true_detections / self.detections if self.detections else float("nan")

    @property
    def found_rate(self) -> float:
        return float(np.mean(self.found)) if self.found else float("nan")


def visible_agents(renderer: PoseRenderer, state: WorldState, min_pixels: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(rows, pixels)``: agents whose skeletons own at least ``min_pixels`` pixels of the frame at the state's step."""
    a = state.at()
    w2v = ego_pose_of(state)
    rows = np.flatnonzero(a.valid)
    rows = rows[rows != state.ego_index]
    yaw = float(np.arctan2(w2v[0, 1], w2v[0, 0]))
    ap = AgentPoses(a.xyz[rows] @ w2v[:, :3].T + w2v[:, 3], a.heading[rows] - yaw, a.size[rows], a.types[rows], ids=rows)
    mask = agent_id_mask(renderer.camera, ap, renderer.style)
    ids, cnt = np.unique(mask[mask >= 0], return_counts=True)
    keep = cnt >= min_pixels
    return ids[keep], cnt[keep]


def evaluate_parse(
    scenario: Scenario,
    steps: Iterable[int],
    parser: PoseParser,
    rng: np.random.Generator,
    pos_noise: float = 1.0,
    yaw_noise: float = np.radians(10.0),
    hide_frac: float = 0.2,
    min_pixels: int = 6,
    degrade_frames: bool = False,
    gate_m: float = 2.0,
    gate_frac: float = 0.1,
    viewpoint: Optional[int] = None,
    result: Optional[ParseEval] = None,
) -> ParseEval:
    """Run the protocol of the module docstring over ``steps`` (each needs ``step - 1 >= 0``)."""
    out = result or ParseEval()
    renderer = parser.renderer
    vp = scenario.sdc_index if viewpoint is None else int(viewpoint)
    for t in steps:
        state = WorldState.from_scenario(scenario, ego_index=vp, timestep=int(t))
        frame = renderer.render_state(state)
        if degrade_frames:
            frame = degrade(frame, rng)
        vis, _ = visible_agents(renderer, state, min_pixels)
        prev = state.at(int(t) - 1)
        now = state.at()
        valid = prev.valid & now.valid
        valid[vp] = False
        n = valid.size
        xyz = prev.xyz.copy()
        xyz[:, :2] += rng.uniform(-pos_noise, pos_noise, (n, 2))
        heading = prev.heading + rng.uniform(-yaw_noise, yaw_noise, n)
        vis = vis[valid[vis]]
        hidden = vis[rng.random(vis.size) < hide_frac]
        pvalid = valid.copy()
        pvalid[hidden] = False
        prior = AgentStates(
            xyz=xyz, heading=heading, velocity=prev.velocity.copy(), size=prev.size.copy(), valid=pvalid, types=prev.types
        )
        w2v = ego_pose_of(state)
        bg = background_mask(renderer, w2v, scenario.roadmap, lights_at(scenario, int(t)))
        res = parser.parse(frame, prior, w2v, background=bg)
        cam_w = (np.linalg.inv(np.vstack([w2v, [0, 0, 0, 1]])) @ np.append(renderer.camera.position, 1.0))[:2]
        known = vis[~np.isin(vis, hidden)]
        err = np.hypot(*(res.xyz[known, :2] - now.xyz[known, :2]).T)
        rng_m = np.hypot(*(now.xyz[known, :2] - cam_w).T)
        yerr = np.abs(np.angle(np.exp(1j * (res.heading[known] - now.heading[known]))))
        yerr = np.where(prev.types[known] == 1, yerr, np.nan)
        out.errors += err.tolist()
        out.prior_errors += np.hypot(*(res.predicted_xyz[known, :2] - now.xyz[known, :2]).T).tolist()
        ray = now.xyz[known, :2] - cam_w
        ray /= np.maximum(np.linalg.norm(ray, axis=1, keepdims=True), 1e-9)
        dv = res.xyz[known, :2] - now.xyz[known, :2]
        out.radial += np.abs((dv * ray).sum(1)).tolist()
        out.lateral += np.abs(dv[:, 0] * ray[:, 1] - dv[:, 1] * ray[:, 0]).tolist()
        out.ranges += rng_m.tolist()
        out.yaw_errors += yerr.tolist()
        out.found += res.visible[known].tolist()
        out.left_false += int(np.isin(res.left, known).sum())
        out.frames += 1
        # Detections against hidden agents (each hidden agent and each detection matched once).
        det = res.entered.xyz[:, :2]
        out.detections += len(det)
        if hidden.size:
            h_xy = now.xyz[hidden, :2]
            h_rng = np.hypot(*(h_xy - cam_w).T)
            d = np.linalg.norm(h_xy[:, None] - det[None], axis=-1) if len(det) else np.zeros((hidden.size, 0))
            d = np.where(d <= (gate_m + gate_frac * h_rng)[:, None], d, np.inf)
            matched = np.zeros(hidden.size, bool)
            while d.size and np.isfinite(d).any():
                i, j = np.unravel_index(int(np.argmin(d)), d.shape)
                matched[i] = True
                out.true_detections += 1
                d[i, :] = np.inf
                d[:, j] = np.inf
            out.hidden_found += matched.tolist()
    return out
