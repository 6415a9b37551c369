"""Counterfactual ego clips: the future rendered along an ego path that is not the log's.

In a log clip the viewpoint's future is implied by its past, so the
ego-motion video teaches the motion adapter nothing. A *counterfactual* clip
keeps the context (steps ``t0 .. present``, all agents as logged) and replaces
the viewpoint's future ``present + 1 .. present + future_frames`` by a bicycle
rollout whose actions are the log's plus a sampled offset (brake, accelerate,
steer), within the action limits. The pose video is rendered from that camera
path and the ego-motion video drawn from it. The other agents follow their
logs, or (procedural scenes by default, real ones optionally) are re-simulated
by the IDM of :mod:`mad_sim.world.idm` reacting to the counterfactual ego, so
the model can also learn that agents react to the ego (leaders are not
affected, followers slow behind a braking ego).

Ego rollout (world frame; metres, seconds, m/s, m/s^2, 1/m)
------------------------------------------------------------
Let ``S = future_frames`` and ``dt = 0.1 s``. The log's actions over the
future, ``a*_t, k*_t`` (``t = 0 .. S-1``, step ``present + t -> present + t + 1``),
come from :func:`~mad_sim.world.dynamics.expert_actions` (closed-loop bicycle
inverse from the present state; its rollout ``v*_t`` hits every logged
position). With per-step offsets ``da_t`` (m/s^2) and ``dk_t`` (1/m) the
target speed is the logged profile shifted by the integrated offset,
``v_ref_t = v*_t + dt sum_{j<t} da_j``, and each step applies::

    a_t = clip(a*_t + da_t + (v_ref_t - v_t) / dt),   k_t = clip(k*_t + dk_t)

through :meth:`~mad_sim.world.action_limits.BicycleLimits.clip` (acceleration,
curvature and speed bounds: braking stops the car, it never reverses) and
:func:`~mad_sim.world.dynamics.bicycle_step`. Without clipping the feedback
term is zero and the actions are exactly ``a* + da``; after a clip (a stop,
the acceleration bound) it makes the speed rejoin the shifted profile instead
of drifting from it. The logged speed noise stays in ``a*``.

The bicycle state differs from the log's box pose (its heading is the
direction of travel, the log's a box fit, up to 0.17 rad apart on WOMD), so
the counterfactual is added to the log as a *difference* of two rollouts of
the same law: ``F`` with zero offsets and ``C`` with the sampled ones::

    xy = xy_log + (xy_C - xy_F),   yaw = yaw_log + wrap(yaw_C - yaw_F),   vel = vel_log + (vel_C - vel_F)

so a zero offset reproduces the log bit for bit (``C`` and ``F`` are the same
floating-point operations), and the log's pose noise is kept in both kinds of
clip (the model cannot tell them apart by the smoothness of the camera path).
``z`` and the box size stay the log's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np

from mad_sim.data.frames import wrap_angle
from mad_sim.data.scenario import DT, ObjectType, Scenario, Trajectory
from mad_sim.errors import ConfigError, DataError
from mad_sim.model.training.clips import ClipRef, ClipSpec
from mad_sim.world.dynamics import BicycleLimits, bicycle_step, expert_actions

log = logging.getLogger(__name__)

PlanItem = Tuple[Scenario, ClipRef, dict]
IDM_AGENTS = ("procedural", "all", "none")
_KEY = "data.counterfactual"


@dataclass
class CounterfactualConfig:
    """Counterfactual ego clips (the ``data.counterfactual`` block); see the module docstring.

    Attributes:
      enabled: add counterfactual clips to the cache (off: the cache is exactly today's).
      fraction: share of a source's clips that are counterfactual, in ``[0, 0.5)``
        (log clips stay the majority): ``round(n_log * fraction / (1 - fraction))``
        log clips get a counterfactual twin (same context, another future), fewer
        if fewer are eligible.
      accel_offset: ``[lo, hi]`` m/s^2, each segment's acceleration offset ~ U(lo, hi).
      curvature_offset: ``[lo, hi]`` 1/m, each segment's curvature offset ~ U(lo, hi)
        (positive turns left; 0.02 at 10 m/s over 1.7 s moves the ego ~2.9 m sideways).
      segments: the future is cut into this many equal spans, each with its own
        constant offsets (1 = one constant offset over the whole future).
      idm_agents: which scenes' other vehicles and cyclists are re-simulated by
        the IDM reacting to the counterfactual ego: ``procedural`` (default),
        ``all`` (also real logs) or ``none`` (they always follow their logs).
      splits: splits whose clips get twins (default only ``train``: held-out
        figures stay those of the logs).
      moving_only: only clips whose viewpoint moves get twins.
      seed: base of every counterfactual draw (which clips, their offsets).
      limits: overrides of :class:`~mad_sim.world.action_limits.BicycleLimits`
        (``min_accel``, ``max_accel``, ``max_curvature``, ``min_speed``, ``max_speed``).
    """

    enabled: bool = False
    fraction: float = 0.25
    accel_offset: Tuple[float, float] = (-4.0, 2.0)
    curvature_offset: Tuple[float, float] = (-0.02, 0.02)
    segments: int = 1
    idm_agents: Literal["procedural", "all", "none"] = "procedural"
    splits: List[str] = field(default_factory=lambda: ["train"])
    moving_only: bool = True
    seed: int = 0
    limits: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.accel_offset = _pair("accel_offset", self.accel_offset)
        self.curvature_offset = _pair("curvature_offset", self.curvature_offset)
        if not 0.0 <= self.fraction < 0.5:
            raise ConfigError(f"{_KEY}.fraction={self.fraction} must lie in [0, 0.5): log clips stay the majority")
        if isinstance(self.segments, bool) or not isinstance(self.segments, int) or self.segments < 1:
            raise ConfigError(f"{_KEY}.segments={self.segments!r} must be an integer >= 1")
        if self.idm_agents not in IDM_AGENTS:
            raise ConfigError(f"{_KEY}.idm_agents={self.idm_agents!r} must be one of {list(IDM_AGENTS)}")
        bad = [s for s in self.splits if s not in ("train", "eval")]
        if bad:
            raise ConfigError(f"{_KEY}.splits: {bad[0]!r} is not a split (train, eval)")
        lim = self.bicycle_limits()
        if not (lim.min_accel <= self.accel_offset[0] and self.accel_offset[1] <= lim.max_accel):
            raise ConfigError(
                f"{_KEY}.accel_offset={list(self.accel_offset)} must lie within the acceleration limits "
                f"[{lim.min_accel}, {lim.max_accel}] m/s^2"
            )
        if not (-lim.max_curvature <= self.curvature_offset[0] and self.curvature_offset[1] <= lim.max_curvature):
            raise ConfigError(
                f"{_KEY}.curvature_offset={list(self.curvature_offset)} must lie within the curvature limit "
                f"+-{lim.max_curvature} 1/m"
            )

    def bicycle_limits(self) -> BicycleLimits:
        """The action limits of the rollout (defaults of :class:`BicycleLimits` with ``limits`` applied)."""
        try:
            return BicycleLimits(**self.limits)
        except TypeError as exc:
            names = ", ".join(f.name for f in dataclasses.fields(BicycleLimits))
            raise ConfigError(f"{_KEY}.limits: {exc} (known: {names})") from None


def _pair(name: str, value: Sequence[float]) -> Tuple[float, float]:
    vals = tuple(value)
    if len(vals) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        raise ConfigError(f"{_KEY}.{name}={value!r} must be two numbers [lo, hi]")
    lo, hi = float(vals[0]), float(vals[1])
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ConfigError(f"{_KEY}.{name}={[lo, hi]} must be finite with lo <= hi")
    return lo, hi


# ----------------------------------------------------------------------------- sampling
def offset_seed(cfg: CounterfactualConfig, entry: dict) -> List[int]:
    """The seed sequence of one clip's offset draw (from its twin's manifest entry)."""
    return [int(cfg.seed), int(entry["seed"]), int(entry["viewpoint"]), int(entry["t0"]), 3]


def sample_offsets(cfg: CounterfactualConfig, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """``(accel [segments] m/s^2, curvature [segments] 1/m)``: one uniform draw per segment."""
    da = rng.uniform(*cfg.accel_offset, size=cfg.segments)
    dk = rng.uniform(*cfg.curvature_offset, size=cfg.segments)
    return da, dk


def per_step(values: Sequence[float], steps: int) -> np.ndarray:
    """Piecewise-constant [steps] array: ``len(values)`` equal spans (the last ones one step shorter)."""
    v = np.asarray(values, np.float64)
    if v.ndim != 1 or v.size < 1 or v.size > steps:
        raise ConfigError(f"{_KEY}: {v.size} offset segments for {steps} future steps (need 1..{steps})")
    return v[(np.arange(steps) * v.size) // steps]


# ----------------------------------------------------------------------------- ego rollout
@dataclass(frozen=True)
class EgoFuture:
    """The viewpoint's counterfactual future, steps ``present + 1 .. present + S`` (world frame).

    Attributes:
      xy: [S, 2] m.  heading: [S] rad.  velocity: [S, 2] m/s (the fields written into the track).
      speed: [S + 1] m/s, the bicycle speed of the counterfactual rollout (index 0: the present).
      accel, curvature: [S] m/s^2, 1/m, the clipped actions it applied.
    """

    xy: np.ndarray
    heading: np.ndarray
    velocity: np.ndarray
    speed: np.ndarray
    accel: np.ndarray
    curvature: np.ndarray


def _tracked_rollout(
    xy0: np.ndarray,
    h0: float,
    v_star: np.ndarray,
    a_star: np.ndarray,
    k_star: np.ndarray,
    da: np.ndarray,
    dk: np.ndarray,
    limits: BicycleLimits,
    dt: float,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The module docstring's law from ``(xy0 [2], h0, v_star[0])``; returns xy [S+1, 2], yaw, v [S+1], a, k [S]."""
    steps = a_star.shape[0]
    v_ref = v_star[:steps] + dt * np.concatenate([[0.0], np.cumsum(da)[:-1]])
    xy, yaw, v = np.empty((steps + 1, 2)), np.empty(steps + 1), np.empty(steps + 1)
    acc, cur = np.empty(steps), np.empty(steps)
    xy[0], yaw[0], v[0] = xy0, h0, v_star[0]
    for t in range(steps):
        a_want = np.asarray(a_star[t] + da[t] + (v_ref[t] - v[t]) / dt)
        c = limits.clip(a_want, np.asarray(k_star[t] + dk[t]), v[t], dt)
        acc[t], cur[t] = c.accel, c.curvature
        xy[t + 1], yaw[t + 1], v[t + 1] = bicycle_step(xy[t], yaw[t], v[t], acc[t], cur[t], dt)
    return xy, yaw, v, acc, cur


def counterfactual_ego(
    tracks: Trajectory,
    viewpoint: int,
    present: int,
    accel_offset: np.ndarray,
    curvature_offset: np.ndarray,
    limits: Optional[BicycleLimits] = None,
    dt: float = DT,
) -> EgoFuture:
    """Roll the viewpoint forward from ``present`` with the log's actions plus per-step offsets.

    Args:
      tracks: the log ``[N, T]``; the viewpoint must be valid on ``present .. present + S``.
      accel_offset, curvature_offset: [S] per-step offsets (m/s^2, 1/m); ``S`` future steps.
      limits: the action limits (default :class:`BicycleLimits`).

    Raises:
      DataError: the viewpoint is not valid over the window or it runs past the log.
    """
    da = np.asarray(accel_offset, np.float64)
    dk = np.asarray(curvature_offset, np.float64)
    steps = da.shape[0]
    window = slice(present, present + steps + 1)
    if dk.shape != (steps,) or present + steps >= tracks.num_steps or not tracks.valid[viewpoint, window].all():
        raise DataError(f"counterfactual: track {viewpoint} is not valid on steps {present}..{present + steps}")
    one = tracks.take(np.array([viewpoint]))
    ea = expert_actions(one, present, present + steps, dt)
    _, _, v_star = ea.rollout(dt)
    lim = limits or BicycleLimits()
    args = (ea.xy0[0], float(ea.heading0[0]), v_star[0], ea.accel[0], ea.curvature[0])
    f_xy, f_yaw, f_v, _, _ = _tracked_rollout(*args, np.zeros(steps), np.zeros(steps), lim, dt)
    c_xy, c_yaw, c_v, acc, cur = _tracked_rollout(*args, da, dk, lim, dt)
    dyaw = wrap_angle(c_yaw[1:] - f_yaw[1:])
    log_h = tracks.heading[viewpoint, present + 1 : present + steps + 1].astype(np.float64)
    heading = np.where(dyaw == 0.0, log_h, wrap_angle(log_h + dyaw))

    def vel(v: np.ndarray, yaw: np.ndarray) -> np.ndarray:
        return v[1:, None] * np.stack([np.cos(yaw[1:]), np.sin(yaw[1:])], -1)

    future = slice(present + 1, present + steps + 1)
    return EgoFuture(
        xy=tracks.xy[viewpoint, future].astype(np.float64) + (c_xy[1:] - f_xy[1:]),
        heading=heading,
        velocity=tracks.velocity[viewpoint, future].astype(np.float64) + (vel(c_v, c_yaw) - vel(f_v, f_yaw)),
        speed=c_v,
        accel=acc,
        curvature=cur,
    )


# ----------------------------------------------------------------------------- the scene
def resimulate_agents(scenario: Scenario, viewpoint: int, present: int, steps: int) -> Trajectory:
    """Tracks of ``scenario`` with its other vehicles / cyclists re-simulated by IDM over the future.

    The vehicles and cyclists valid at ``present`` (but the viewpoint) are
    driven by :class:`~mad_sim.world.idm.IDM` (default parameters, straightest
    exit at forks: deterministic) one step at a time, each step seeing the
    viewpoint where ``scenario.tracks`` puts it (the counterfactual future, as
    an obstacle it does not move). Everything else (the viewpoint,
    pedestrians, agents appearing later) keeps its track. Steps outside
    ``present + 1 .. present + steps`` are unchanged. Returns a new [N, T] Trajectory.
    """
    from mad_sim.world.idm import IDM
    from mad_sim.world.state import WorldState

    tr = scenario.tracks
    state = WorldState.from_scenario(scenario, ego_index=viewpoint, timestep=present)
    controlled = tr.valid[:, present] & np.isin(scenario.object_types, [ObjectType.VEHICLE, ObjectType.CYCLIST])
    controlled[viewpoint] = False
    policy = IDM()
    for t in range(present, present + steps):
        out = policy.advance(state, controlled, 1)
        xyz, heading, vel = tr.xyz[:, t + 1].copy(), tr.heading[:, t + 1].copy(), tr.velocity[:, t + 1].copy()
        valid, size = tr.valid[:, t + 1].copy(), tr.size[:, t + 1].copy()
        xyz[controlled], heading[controlled] = out.xyz[controlled, 0], out.heading[controlled, 0]
        vel[controlled], valid[controlled] = out.velocity[controlled, 0], out.valid[controlled, 0]
        size[controlled] = tr.size[controlled, present]  # a driven agent keeps its box where its log ends
        state.write_step(t + 1, xyz, heading, vel, valid, size)
        state.timestep = t + 1
    new = tr.copy()
    future = slice(present + 1, present + steps + 1)
    for name in ("xyz", "heading", "velocity", "size", "valid"):
        getattr(new, name)[:, future] = getattr(state.sim, name)[:, future]
    return new


def counterfactual_scenario(
    scenario: Scenario, ref: ClipRef, spec: ClipSpec, record: Dict[str, Any], cfg: CounterfactualConfig
) -> Scenario:
    """The scene of one counterfactual clip, from its manifest record (``accel_offset``, ``curvature_offset``
    per segment, ``idm``): the viewpoint's future replaced by :func:`counterfactual_ego`, the other agents
    re-simulated by :func:`resimulate_agents` when ``record["idm"]``. Context steps are the log's."""
    present, steps = ref.t0 + spec.present, spec.future_frames
    ego = counterfactual_ego(
        scenario.tracks,
        ref.viewpoint,
        present,
        per_step(record["accel_offset"], steps),
        per_step(record["curvature_offset"], steps),
        cfg.bicycle_limits(),
    )
    tracks = scenario.tracks.copy()
    future = slice(present + 1, present + steps + 1)
    tracks.xyz[ref.viewpoint, future, :2] = ego.xy
    tracks.heading[ref.viewpoint, future] = ego.heading
    tracks.velocity[ref.viewpoint, future] = ego.velocity
    out = dataclasses.replace(scenario, tracks=tracks)
    if record.get("idm"):
        out = dataclasses.replace(out, tracks=resimulate_agents(out, ref.viewpoint, present, steps))
    return out


# ----------------------------------------------------------------------------- planning
def with_counterfactuals(plan: List[PlanItem], cfg: CounterfactualConfig, spec: ClipSpec) -> List[PlanItem]:
    """The clip plan with counterfactual twins appended (log clips first, in their order, unchanged).

    Every log entry gets ``counterfactual: None``; each twin is its log clip's
    item with ``counterfactual`` a record: ``of`` (the twin's index in the plan),
    ``seed`` (:func:`offset_seed`), ``accel_offset`` / ``curvature_offset`` (per
    segment) and ``idm`` (its other agents re-simulated). Twins are drawn per
    source (``source_index``) by ``default_rng([cfg.seed, source_index, 11])``
    among its eligible clips (split in ``cfg.splits``, moving if ``moving_only``).
    ConfigError if ``cfg.segments`` exceeds ``spec.future_frames``.
    """
    if cfg.segments > spec.future_frames:
        raise ConfigError(f"{_KEY}.segments={cfg.segments} exceeds the {spec.future_frames} future frames of a clip")
    out: List[PlanItem] = [(s, r, {**e, "counterfactual": None}) for s, r, e in plan]
    by_source: Dict[int, List[int]] = defaultdict(list)
    for k, (_, _, e) in enumerate(plan):
        if e["split"] in cfg.splits:
            by_source[int(e["source_index"])].append(k)
    for i in sorted(by_source):
        ks = by_source[i]
        eligible = [k for k in ks if plan[k][1].moving or not cfg.moving_only]
        want = int(round(len(ks) * cfg.fraction / (1.0 - cfg.fraction)))
        if want > len(eligible):
            log.warning("source %d: %d counterfactual clips wanted, %d eligible", i, want, len(eligible))
        n = min(want, len(eligible))
        pick = np.sort(np.random.default_rng([cfg.seed, i, 11]).choice(len(eligible), n, replace=False))
        for j in pick:
            k = eligible[int(j)]
            scenario, ref, entry = plan[k]
            seed = offset_seed(cfg, entry)
            da, dk = sample_offsets(cfg, np.random.default_rng(seed))
            idm = cfg.idm_agents == "all" or (cfg.idm_agents == "procedural" and entry["source"] == "procedural")
            record = {"of": k, "seed": seed, "accel_offset": da.tolist(), "curvature_offset": dk.tolist(), "idm": idm}
            out.append((scenario, ref, {**entry, "counterfactual": record}))
    return out
