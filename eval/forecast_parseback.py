"""Forecast parse-back on real scenes: do the learned agents' parsed futures land where the log went?

The measurement of issue 14, from the SDC's seat, on scenes never trained on.  For every scene and
context step ``t`` (``ParsebackProtocol.steps``) whose log holds the SDC over ``t .. t + F``
(``F = future_frames``, 17 for tiny), the state is :meth:`WorldState.from_scenario(scenario,
timestep=t) <mad_sim.world.state.WorldState.from_scenario>` (log replay up to ``t``) and the ego plan
the logged SDC poses ``(x, y, heading)`` at ``t + 1 .. t + F`` (world frame, metres, radians): the
intended motion the agents condition on (ego-motion video) and the camera path they parse along.

**Sources**, each parsed into agent states exactly as in closed loop:

- ``model``: :class:`~mad_sim.model.agents.learned.LearnedAgents` builds its own request
  (``_build_request(state, plan)``: pose history, ego-motion video, a noise seed from its
  generator), ``service.forecast`` runs it, ``_parse`` turns the frames into agent states;
- ``cv_parsed``: the constant-velocity future of the agents valid at ``t`` (``x_t + v_t k dt``,
  heading and size held; the ego on the plan) drawn by the agents' own pose renderer, same ``_parse``;
- ``cv_raw``: those constant-velocity positions themselves (no render, no parse);
- ``log_parsed``: the logged future drawn and parsed the same way: the parser's ceiling here;
- ``vae_log``: the logged future drawn, encoded and decoded by the model's own VAE, then parsed:
  the representation's ceiling (a perfect motion model through this VAE); only when the agents'
  service holds a model (``service.predictor.model.backbone``).

**Scored agents**: vehicles (``ObjectType.VEHICLE``, not the ego) valid at ``t``, within ``radius_m``
of the ego and in the agents' view (:meth:`LearnedAgents.in_view`: the ones they would drive); at
horizon ``k`` (0.1 s steps) an agent counts when the log holds it at ``t + k``.  *Found*: the parse
kept it learned-driven at ``t + k`` (``cv_raw``: always); *fit*: found and its skeleton fitted in
that very frame (a skeleton not found keeps the parser's constant-velocity prediction); *matched*:
found and within ``gate_m`` (2 m) of the log.  **Recall** = matched / counted; **error** = distance
(m) between the parsed and the logged box centre (x, y), over found agents.

Noise seeds: each context re-seeds the agents' generator from ``(protocol.seed, scene index, t)``.
Lives in ``eval`` (not ``model.evaluation``, which may not import ``model.agents``: ``tests/test_layering.py``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mad_sim.data.scenario import ObjectType, Scenario
from mad_sim.errors import ConfigError
from mad_sim.model.agents.prior import constant_velocity_future, logged_future, render_future
from mad_sim.world.state import WorldState

log = logging.getLogger(__name__)

SOURCES = ("model", "cv_parsed", "cv_raw", "log_parsed", "vae_log")
"""The futures scored, in report order (module docstring)."""


@dataclass
class ParsebackProtocol:
    """What is measured.

    Attributes:
      steps: context steps ``t`` per scene (a step whose log lacks the SDC over ``t .. t + F`` is skipped).
      horizons: steps ``k`` after ``t`` scored (0.1 s each; each <= the agents' ``chunk``).
      radius_m: vehicles farther than this from the ego at ``t`` are not scored.
      gate_m: a found agent within this distance of its logged position is matched.
      seed: seeds the learned agents' noise seeds (with the scene index and ``t``).
      moving_mps: the ``moving`` summary keeps the vehicles at least this fast (m/s) at ``t`` in the log.
    """

    steps: Tuple[int, ...] = (10, 30, 50)
    horizons: Tuple[int, ...] = (5, 10, 16)
    radius_m: float = 30.0
    gate_m: float = 2.0
    seed: int = 0
    moving_mps: float = 1.0

    def __post_init__(self) -> None:
        self.steps, self.horizons = tuple(int(s) for s in self.steps), tuple(int(k) for k in self.horizons)
        if not self.steps or min(self.steps) < 0:
            raise ConfigError(f"forecast parse-back: steps {self.steps} must be non-negative and not empty")
        if not self.horizons or min(self.horizons) < 1:
            raise ConfigError(f"forecast parse-back: horizons {self.horizons} must be >= 1 and not empty")
        if self.radius_m <= 0 or self.gate_m <= 0:
            raise ConfigError(f"forecast parse-back: radius_m={self.radius_m} and gate_m={self.gate_m} must be > 0")


@dataclass
class SourceFuture:
    """One source's future of the scored agents of a context.

    Attributes:
      xy: ``[A, K, 2]`` x, y (world frame, metres) at the protocol's horizons (meaningless where not ``found``).
      found: ``[A, K]`` bool, the parse kept the agent learned-driven at ``t + k``.
      fit: ``[A, K]`` bool, found and its skeleton fitted in that very frame (where the parser does not
        find it, ``_parse`` keeps it learned-driven on the parser's constant-velocity prediction).
      fitted / lost: the parser's per-frame fits found / lost over the whole chunk (all agents it tracked).
      seconds: wall seconds to produce and parse this future.
    """

    xy: np.ndarray
    found: np.ndarray
    fit: np.ndarray
    fitted: int = 0
    lost: int = 0
    seconds: float = 0.0


@dataclass
class ContextResult:
    """One scene at one context step ``t``.

    Attributes:
      agents: ``[A]`` track indices of the scored vehicles.
      log_xy: ``[A, K, 2]`` logged x, y (world frame, metres) at ``t + k``; ``log_valid`` ``[A, K]`` bool.
      speed: ``[A]`` logged speed (m/s) at ``t``.
      futures: per source name, its :class:`SourceFuture`.
    """

    scene: str
    t: int
    agents: np.ndarray
    log_xy: np.ndarray
    log_valid: np.ndarray
    speed: np.ndarray
    futures: Dict[str, SourceFuture] = field(default_factory=dict)

    def errors(self, source: str) -> np.ndarray:
        """``[A, K]`` metres between the source's and the logged x, y (NaN where not found or not logged)."""
        f = self.futures[source]
        d = np.hypot(*np.moveaxis(f.xy - self.log_xy, -1, 0))
        return np.where(f.found & self.log_valid, d, np.nan)


class _Recorder:
    """Stands in for the agents' parser during one ``_parse`` and keeps every :class:`ParseResult` it returns."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.results: List[Any] = []

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        r = self.parser.parse(*args, **kwargs)
        self.results.append(r)
        return r

    def __getattr__(self, name: str) -> Any:
        return getattr(self.parser, name)


def scored_agents(agents: Any, state: WorldState, radius_m: float) -> np.ndarray:
    """``[A]`` track indices: vehicles other than the ego valid at ``t``, within ``radius_m`` of it and in view."""
    t, e = state.timestep, state.ego_index
    valid = state.sim.valid[:, t].copy()
    valid[e] = False
    near = np.hypot(*(state.sim.xy[:, t] - state.sim.xy[e, t]).T) <= radius_m
    vehicle = state.scenario.object_types == int(ObjectType.VEHICLE)
    return np.flatnonzero(agents.in_view(state, valid & near & vehicle))


def logged_plan(scenario: Scenario, ego: int, t: int, frames: int) -> np.ndarray:
    """``[F, 3]`` world ``(x, y, heading)`` of track ``ego`` at ``t + 1 .. t + F`` from the log."""
    tr = scenario.tracks
    s = slice(t + 1, t + 1 + frames)
    return np.concatenate([tr.xy[ego, s], tr.heading[ego, s, None]], 1).astype(np.float64)


def measure_context(
    agents: Any, scenario: Scenario, t: int, protocol: ParsebackProtocol, scene: str = ""
) -> Optional[ContextResult]:
    """Score every source at context step ``t`` of ``scenario`` (module docstring); None if nothing to score.

    None when the log lacks the SDC over ``t .. t + F`` or no vehicle qualifies (logged at debug level).
    """
    f, c, e = agents.settings.future_frames, agents.settings.chunk, scenario.sdc_index
    name = scene or scenario.scenario_id
    if t + f >= scenario.num_steps or not scenario.tracks.valid[e, t : t + f + 1].all():
        log.debug("%s t=%d: the log lacks the SDC over t .. t + %d, skipped", name, t, f)
        return None
    state = WorldState.from_scenario(scenario, ego_index=e, timestep=t)
    agents.reset(state)
    sel = scored_agents(agents, state, protocol.radius_m)
    if sel.size == 0:
        log.debug("%s t=%d: no vehicle within %.0f m in view, skipped", name, t, protocol.radius_m)
        return None
    plan = logged_plan(scenario, e, t, f)
    ks = np.asarray(protocol.horizons)
    tr = scenario.tracks
    speed = np.hypot(*tr.velocity[sel, t].T)
    res = ContextResult(name, t, sel, tr.xy[sel][:, t + ks].astype(np.float64), tr.valid[sel][:, t + ks], speed)
    controlled = state.sim.valid[:, t] & (np.arange(state.num_agents) != e)
    tracked = np.flatnonzero(agents.in_view(state, controlled))  # the rows _parse hands the parser, in order
    rows = np.searchsorted(tracked, sel)
    col = ks - 1

    def parsed(frames: np.ndarray, t0: float) -> SourceFuture:
        before = (agents.stats.fitted, agents.stats.lost)
        recorder = _Recorder(agents.parser)
        agents.parser = recorder
        try:
            chunk = agents._parse(state, controlled, frames, plan)
        finally:
            agents.parser = recorder.parser
        visible = np.zeros((sel.size, c), bool)
        for j, r in enumerate(recorder.results):
            visible[:, j] = np.asarray(r.visible, bool)[rows]
        found = chunk.learned[sel][:, col]
        return SourceFuture(
            xy=chunk.xyz[sel][:, col, :2],
            found=found,
            fit=found & visible[:, col],
            fitted=agents.stats.fitted - before[0],
            lost=agents.stats.lost - before[1],
            seconds=time.perf_counter() - t0,
        )

    t0 = time.perf_counter()
    request = agents._build_request(state, plan)
    res.futures["model"] = parsed(agents.service.forecast([request])[0], t0)
    t0 = time.perf_counter()
    cv = constant_velocity_future(state, plan[:c])
    res.futures["cv_parsed"] = parsed(render_future(agents.renderer, state, cv, c), t0)
    every = np.ones((sel.size, ks.size), bool)
    res.futures["cv_raw"] = SourceFuture(xy=cv.xy[sel][:, t + ks], found=every, fit=every)
    t0 = time.perf_counter()
    log_frames = render_future(agents.renderer, state, logged_future(state, plan[:c]), c)
    res.futures["log_parsed"] = parsed(log_frames, t0)
    backbone = getattr(getattr(getattr(agents.service, "predictor", None), "model", None), "backbone", None)
    if backbone is not None:
        t0 = time.perf_counter()
        res.futures["vae_log"] = parsed(vae_roundtrip(backbone, log_frames), t0)
    return res


def vae_roundtrip(backbone: Any, frames: np.ndarray) -> np.ndarray:
    """``[F, H, W, 3]`` uint8 frames encoded and decoded by ``backbone``'s VAE (posterior mean), same shape.

    The clip is padded with its last frame to the VAE's ``tk + 1`` frames and cut back after decoding.
    """
    import torch

    from mad_sim.model.conditioning import uint8_to_video, video_to_uint8

    f, tr = len(frames), int(backbone.temporal_ratio)
    pad = (-(f - 1)) % tr
    clip = np.concatenate([frames, np.repeat(frames[-1:], pad, 0)]) if pad else frames
    with torch.no_grad():
        video = uint8_to_video(torch.from_numpy(np.ascontiguousarray(clip))[None]).to(backbone.device, backbone.dtype)
        out = backbone.decode_latents(backbone.encode_video(video)).float().clamp(-1.0, 1.0)
    return video_to_uint8(out.cpu())[0, :f].numpy()


def _stats(errors: np.ndarray, fit: np.ndarray, counted: np.ndarray, gate_m: float) -> Dict[str, Any]:
    found, n = np.isfinite(errors) & counted, int(counted.sum())
    e, close = errors[found], found & (np.nan_to_num(errors, nan=np.inf) <= gate_m)
    matched, fit_matched = int(close.sum()), int((close & fit).sum())
    return {
        "counted": n,
        "found": int(found.sum()),
        "fit": int((found & fit).sum()),
        "matched": matched,
        "fit_matched": fit_matched,
        "recall": matched / n if n else float("nan"),
        "fit_recall": fit_matched / n if n else float("nan"),
        "median_m": float(np.median(e)) if e.size else float("nan"),
        "p90_m": float(np.percentile(e, 90)) if e.size else float("nan"),
    }


def summarize(
    results: Sequence[ContextResult], protocol: ParsebackProtocol, min_speed: float = 0.0
) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """``{source: {str(k): {counted, found, fit, matched, fit_matched, recall, fit_recall, median_m, p90_m}}}``.

    Pooled over contexts; ``recall = matched / counted``, ``fit_recall = fit_matched / counted`` (matched
    agents whose skeleton was fitted in that frame); the error percentiles are over found agents.  Only
    agents at least ``min_speed`` (m/s) fast at ``t`` count.
    """
    out: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for source in SOURCES:
        rows = [r for r in results if source in r.futures]
        if not rows:
            continue
        err = np.concatenate([r.errors(source) for r in rows])
        fit = np.concatenate([r.futures[source].fit for r in rows])
        counted = np.concatenate([r.log_valid & (r.speed >= min_speed)[:, None] for r in rows])
        out[source] = {
            str(k): _stats(err[:, i], fit[:, i], counted[:, i], protocol.gate_m) for i, k in enumerate(protocol.horizons)
        }
    return out


def measure(
    scenarios: Sequence[Scenario],
    settings: Any = None,
    protocol: Optional[ParsebackProtocol] = None,
    agents: Any = None,
    progress: bool = True,
) -> Tuple[Dict[str, Any], List[ContextResult]]:
    """The forecast parse-back report over ``scenarios`` (module docstring), a JSON-ready dict, and its contexts.

    Args:
      scenarios: real scenes (the SDC is the ego).
      settings: :class:`~mad_sim.model.agents.settings.LearnedAgentSettings` (default ones); ignored with ``agents``.
      protocol: :class:`ParsebackProtocol` (default one).
      agents: a ready :class:`~mad_sim.model.agents.learned.LearnedAgents` (default: built from ``settings``).

    Raises:
      ConfigError: a horizon beyond the agents' ``chunk`` (the parse covers ``chunk`` steps only).
    """
    from tqdm import tqdm

    from mad_sim.model.agents.learned import LearnedAgents

    p = protocol or ParsebackProtocol()
    la = agents if agents is not None else LearnedAgents(settings)
    s = la.settings
    if max(p.horizons) > s.chunk:
        raise ConfigError(f"forecast parse-back: horizon {max(p.horizons)} is beyond the learned agents' chunk={s.chunk}")
    start = time.perf_counter()
    results: List[ContextResult] = []
    skipped: List[Dict[str, Any]] = []
    jobs = [(i, sc, t) for i, sc in enumerate(scenarios) for t in p.steps]
    for i, sc, t in tqdm(jobs, desc="forecast parse-back", unit="context", disable=not progress):
        la.seed(np.random.default_rng([p.seed, i, t]))
        r = measure_context(la, sc, t, p, scene=sc.scenario_id or f"scene{i}")
        if r is None:
            skipped.append({"scene": sc.scenario_id, "t": t})
        else:
            results.append(r)
    log.info("forecast parse-back: %d contexts scored, %d skipped", len(results), len(skipped))
    contexts = []
    for r in results:
        row: Dict[str, Any] = {"scene": r.scene, "t": r.t, "agents": r.agents.tolist(), "sources": {}}
        for src, fut in r.futures.items():
            err = r.errors(src)
            row["sources"][src] = {
                "found": (fut.found & r.log_valid).sum(0).tolist(),
                "fit": (fut.fit & r.log_valid).sum(0).tolist(),
                "matched": (err <= p.gate_m).sum(0).tolist(),
                "counted": r.log_valid.sum(0).tolist(),
                "median_m": [float(np.nanmedian(c)) if np.isfinite(c).any() else float("nan") for c in err.T],
                "fitted": fut.fitted,
                "lost": fut.lost,
                "seconds": fut.seconds,
            }
        contexts.append(row)
    parsed = [src for src in SOURCES if src != "cv_raw" and all(src in r.futures for r in results)]
    parser = {src: {k: int(sum(getattr(r.futures[src], k) for r in results)) for k in ("fitted", "lost")} for src in parsed}
    return {
        "protocol": asdict(p),
        "settings": asdict(s),
        "weights": getattr(la.service, "weights_info", ""),
        "sampler_steps": getattr(la.service, "steps", None),
        "scenes": [sc.scenario_id for sc in scenarios],
        "num_contexts": len(results),
        "skipped": skipped,
        "summary": summarize(results, p),
        "summary_moving": summarize(results, p, p.moving_mps),
        "parser": parser,
        "seconds": {
            "total": time.perf_counter() - start,
            **{src: float(sum(r.futures[src].seconds for r in results if src in r.futures)) for src in SOURCES},
        },
        "contexts": contexts,
    }, results


__all__ = [
    "SOURCES",
    "ContextResult",
    "ParsebackProtocol",
    "SourceFuture",
    "logged_plan",
    "measure",
    "measure_context",
    "scored_agents",
    "summarize",
    "vae_roundtrip",
]
