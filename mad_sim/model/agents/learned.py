"""Learned agents: the MAD motion predictor drives the other agents of ``MADDrive-v0`` (``agents="mad"``).

**Receding horizon.**  At step ``t`` a prediction renders the last
``history_frames`` pose frames from the ego's camera (steps ``t - F_h + 1 ..
t``, cached, so each step is drawn once), the ego-motion video of the ego's
*intended* poses over ``t + 1 .. t + F`` (``F = future_frames``; rendered over
history + future exactly as training clips are, then the future part kept),
and asks the motion adapter for the ``F`` future pose frames.  The frames
are parsed back into agent states by render-and-compare
(:class:`~mad_sim.model.parse.parser.PoseParser`, frame by frame, each frame's
prior the previous frame's result, the camera placed at the ego's assumed
pose), and the first ``chunk`` of them become the agents' next ``chunk``
steps.

**The ego's intended motion.**  The env calls :meth:`LearnedAgents.observe_ego_action`
with the action of the step being taken (a hook in ``envs/drive.py``):
``trajectory`` actions give the waypoints themselves (extended at constant
velocity past their end); ``bicycle`` / ``delta`` actions are held constant
(the applied acceleration and curvature integrated by the bicycle model).
Without the hook the ego's last acceleration and curvature (from its
simulated history, :func:`~mad_sim.world.dynamics.bicycle_inverse`) are held.

**Early re-prediction and latency.**  Each step the newly intended poses
over the rest of the current chunk are compared with the ones the chunk was
predicted for; if they depart by more than ``tolerance_m`` anywhere (and at
least ``min_interval`` steps passed since the last prediction), the chunk is
dropped and a new one predicted *in the same step*, before the agents move.
So agents react to a changed ego action with 0 steps of latency when the
change moves the intended path by more than ``tolerance_m`` within the chunk,
and after at most ``chunk`` steps (0.1 s each) otherwise.

**No forecast without agents to drive.**  When a prediction is due but no
other valid agent is in the camera's view (within ``view_range_m``), no
forecast runs (``stats.skipped``): the fallback drives everyone for that step
and the check repeats the next step.  The agents' states of that step are
exactly what a forecast would have given (nobody in view is learned-driven
either way); later forecasts draw other noise seeds, since none was drawn.

**Who is learned-driven.**  At each prediction, agents that are controlled,
valid, and whose box centre projects into the camera image within
``view_range_m`` are *learned*; an agent stays learned while the parser keeps
it in view (``ParseResult.in_view``), and goes back to the fallback scripted
policy (``fallback``: ``idm``, ``log`` or ``constant_velocity``) from the
frame it leaves the view.  Where an agent is in view but its skeleton is not
found, the parser's constant-velocity prediction is used.
:attr:`LearnedAgents.learned` is the ``[N]`` mask of the step just served
(the env reports it in ``info["learned_agents"]``).

**Tracking** (``tracking=True``, the default).  Each parsed frame is a
measurement fused into a constant-velocity Kalman filter per agent
(:mod:`mad_sim.model.agents.tracking`), whose noise was measured: the tiny
model's frames parse back 2-3 m from the log, far worse than the 0.0-0.4 m a
constant-velocity prediction misses by over 1.6 s, so each frame moves an
agent a little and implausible fits are gated out.  :attr:`LearnedAgents.measured`
(``info["measured_agents"]``) marks the learned agents whose state this step
fused an accepted measurement; the other learned agents are carried by the
filter's prediction, i.e. constant velocity, and reports should say so.

**Randomness.**  Each prediction's noise seed is drawn from the policy's
``numpy.random.Generator``, which the env re-seeds at every reset (hook
:meth:`seed`), so seeded episodes are reproducible on one machine.

**Weights.**  :class:`LearnedAgentSettings.weights` ``"auto"`` uses the
shipped tiny weights once they exist in ``mad_sim/weights`` and a random
model (with a warning) until then.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Protocol, runtime_checkable

import numpy as np

from mad_sim.data.scenario import Trajectory
from mad_sim.errors import ConfigError, ShapeError
from mad_sim.model.agents.chunk import Chunk, LearnedStats, parse_chunk
from mad_sim.model.agents.ego_intent import intended_poses
from mad_sim.model.agents.predictor_service import ForecastRequest, PredictorService, shared_service
from mad_sim.model.agents.prior import render_prior
from mad_sim.model.agents.settings import FALLBACKS, LearnedAgentSettings
from mad_sim.world.state import WorldState

log = logging.getLogger(__name__)


@runtime_checkable
class _Resettable(Protocol):
    """A scripted fallback that keeps per-episode state (IDM's lane paths)."""

    def reset(self, state: Optional[WorldState] = None) -> None: ...


class LearnedAgents:
    """The ``TrafficPolicy`` of ``agents="mad"`` (see the module docstring).

    Args:
      settings: :class:`LearnedAgentSettings`.
      service: the (shared, batched) predictor; default :func:`shared_service` for the settings.
      rng: draws the noise seeds (re-seeded by the env through :meth:`seed`).
      action_adapter: the env's action adapter (turns an action into the next ego step), optional.
      action_kind: the env's action kind (``bicycle`` / ``trajectory`` / ``delta``).
    """

    def __init__(
        self,
        settings: Optional[LearnedAgentSettings] = None,
        service: Optional[PredictorService] = None,
        rng: Optional[np.random.Generator] = None,
        action_adapter: Any = None,
        action_kind: str = "bicycle",
    ) -> None:
        from mad_sim.model.parse.config import ParseConfig
        from mad_sim.model.parse.parser import PoseParser
        from mad_sim.render.ego_motion import EgoMotionRenderer
        from mad_sim.render.pose import PoseRenderer
        from mad_sim.world.scripted import make_scripted_policy

        self.settings = s = settings or LearnedAgentSettings()
        self.service = service or shared_service(
            s.preset, s.weights, s.lora, s.device, s.sampler_steps, s.threads, s.merge_lora, s.precision
        )
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.adapter = action_adapter
        self.action_kind = action_kind
        from mad_sim.model.presets import pose_camera

        self.renderer = PoseRenderer(camera=pose_camera(s.preset, s.size, s.size))
        self.camera = self.renderer.camera
        self.parser = PoseParser(renderer=self.renderer, config=ParseConfig(detect=s.detect_entering))
        self.ego_renderer = EgoMotionRenderer(s.size, s.size)
        self.fallback = make_scripted_policy(s.fallback)
        self.stats = LearnedStats()
        self.learned = np.zeros(0, bool)
        self.measured = np.zeros(0, bool)
        self._frames: Dict[int, np.ndarray] = {}
        self._chunk: Optional[Chunk] = None
        self._prepared_t: Optional[int] = None
        self._plan: Optional[np.ndarray] = None
        self._request: Optional[ForecastRequest] = None
        self._result: Optional[np.ndarray] = None
        self._scenario_key: Optional[int] = None
        self._idle = False

    # ------------------------------------------------------------------ env hooks
    def seed(self, rng: np.random.Generator) -> None:
        """Use the env's (freshly seeded) generator for the noise seeds."""
        self.rng = rng

    def reset(self, state: Optional[WorldState] = None) -> None:
        """A new episode from ``state``: caches, the chunk and the counters are dropped."""
        self._frames.clear()
        self._chunk = None
        self._prepared_t = None
        self._request = self._result = self._plan = None
        self._idle = False
        self.stats = LearnedStats()
        self.learned = np.zeros(0 if state is None else state.num_agents, bool)
        self.measured = self.learned.copy()
        if isinstance(self.fallback, _Resettable):
            self.fallback.reset(state)

    def observe_ego_action(self, state: WorldState, action: Any = None, ego_step: Any = None) -> None:
        """The env's hook, called with the action of the step about to be taken and its ego step."""
        self.prepare(state, action, ego_step)

    # ------------------------------------------------------------------ planning a prediction
    def prepare(self, state: WorldState, action: Any = None, next_step: Any = None) -> Optional[ForecastRequest]:
        """Decide whether step ``state.timestep`` needs a (re)prediction; its request, or None.

        Idempotent within a step (a vector env calls it before stepping, the env's hook again inside).
        """
        t = state.timestep
        if self._prepared_t == t:
            return self._request
        plan = self.intended_poses(state, action, next_step)
        c = self._chunk
        need = c is None or not 0 <= t + 1 - c.start < c.length
        if not need and t - c.t_pred >= self.settings.min_interval:
            col = t + 1 - c.start
            rest = c.ego_plan[col:]
            dev = float(np.max(np.hypot(*(plan[: len(rest), :2] - rest[:, :2]).T)))
            ego_now = state.sim.xy[state.ego_index, t]
            if col >= 1:
                dev = max(dev, float(np.hypot(*(ego_now - c.ego_plan[col - 1, :2]))))
            if dev > self.settings.tolerance_m:
                need = True
                self.stats.early += 1
                log.debug("step %d: ego departs %.2f m from the assumed motion, re-predicting", t, dev)
        self._prepared_t, self._plan, self._result = t, plan, None
        # Nobody the model could drive (no other valid agent in view): no forecast; the fallback drives
        # everyone this step and the question is asked again next step.
        self._idle = need and not self.in_view(state, self._others(state)).any()
        self._request = self._build_request(state, plan) if need and not self._idle else None
        return self._request

    @staticmethod
    def _others(state: WorldState) -> np.ndarray:
        """``[N]`` bool: valid agents at ``state.timestep`` other than the ego (candidates for learning)."""
        m = state.sim.valid[:, state.timestep].copy()
        m[state.ego_index] = False
        return m

    def accept(self, frames: np.ndarray) -> None:
        """Hand in the generated frames of the request :meth:`prepare` returned (a batched service ran it)."""
        self._result = frames

    def intended_poses(self, state: WorldState, action: Any = None, next_step: Any = None) -> np.ndarray:
        """``[F, 3]`` world ``(x, y, yaw)`` the ego intends at ``t + 1 .. t + F``.

        See :func:`~mad_sim.model.agents.ego_intent.intended_poses`.
        """
        return intended_poses(state, self.settings.future_frames, self.action_kind, self.adapter, action, next_step)

    def _history_frames(self, state: WorldState) -> np.ndarray:
        """``[F_h, H, W, 3]`` pose frames of steps ``t - F_h + 1 .. t`` (earliest valid one repeated before the ego's start)."""
        t, e = state.timestep, state.ego_index
        key = id(state.scenario)
        if key != self._scenario_key:
            self._frames.clear()
            self._scenario_key = key
        steps = np.arange(t - self.settings.history_frames + 1, t + 1)
        ok = (steps >= 0) & state.sim.valid[e, np.clip(steps, 0, None)]
        first = steps[ok][0] if ok.any() else t
        steps = np.where(ok, steps, first)
        for k in np.unique(steps):
            if int(k) not in self._frames:
                self._frames[int(k)] = self.renderer.render_state(state, t=int(k))
        for k in [k for k in self._frames if k < steps[0] or k > t]:
            del self._frames[k]
        return np.stack([self._frames[int(k)] for k in steps])

    def _build_request(self, state: WorldState, plan: np.ndarray) -> ForecastRequest:
        s = self.settings
        hist = self._history_frames(state)
        seed = int(self.rng.integers(2**31 - 1))
        ego = None
        if s.ego_conditioning:
            t, e = state.timestep, state.ego_index
            steps = np.clip(np.arange(t - s.history_frames + 1, t + 1), 0, None)
            past = np.concatenate([state.sim.xy[e, steps], state.sim.heading[e, steps, None]], 1)
            self.ego_renderer.seed = seed
            ego = self.ego_renderer.render(np.concatenate([past, plan], 0))[s.history_frames :]
        prior = render_prior(self.renderer, state, plan) if s.prior_strength < 1.0 else None
        return ForecastRequest(hist, ego, s.future_frames, seed, prior, s.prior_strength)

    # ------------------------------------------------------------------ parsing
    def in_view(self, state: WorldState, candidates: np.ndarray) -> np.ndarray:
        """``[N]`` bool: candidates whose box centre projects into the image within ``view_range_m``."""
        from mad_sim.model.parse.results import ego_pose_of

        t = state.timestep
        a = ego_pose_of(state, t)
        xyz = state.sim.xyz[:, t] @ a[:, :3].T + a[:, 3]
        uv, depth = self.camera.project(xyz)
        return candidates & self.camera.in_image(uv) & (depth < self.settings.view_range_m)

    def _parse(self, state: WorldState, controlled: np.ndarray, frames: np.ndarray, plan: np.ndarray) -> Chunk:
        """The agents in view among ``controlled``, parsed from ``frames`` along ``plan``
        (:func:`~mad_sim.model.agents.chunk.parse_chunk`)."""
        sel = np.flatnonzero(self.in_view(state, controlled & state.sim.valid[:, state.timestep]))
        return parse_chunk(self.parser, state, sel, frames, plan, self.settings, self.stats)

    def imagined_frame(self, t: int) -> Optional[np.ndarray]:
        """The generated pose frame ``[H, W, 3]`` uint8 the current chunk holds for step ``t`` (what the
        model imagined the ego's camera would see then), or None when no forecast covers ``t``."""
        c = self._chunk
        if c is None or c.frames is None or not 0 <= t - c.start < len(c.frames):
            return None
        return c.frames[t - c.start]

    def measured_mask(self, t: int) -> np.ndarray:
        """``[N]`` bool: agents whose state at step ``t`` fused an accepted parse of a generated frame
        (the rest of :attr:`learned` are held by the motion prior where the frame said nothing)."""
        c = self._chunk
        n = self.learned.shape[0]
        if c is None or c.measured is None or not 0 <= t - c.start < c.length:
            return np.zeros(n, bool)
        return c.measured[:, t - c.start].copy()

    # ------------------------------------------------------------------ TrafficPolicy
    def advance(self, state: WorldState, controlled: np.ndarray, num_steps: int) -> Trajectory:
        """The next ``num_steps`` states of all agents ``[N, num_steps]`` (see :class:`~mad_sim.world.traffic.TrafficPolicy`).

        With ``num_steps > 1`` the ego is assumed to follow its intended poses
        over the span (a scratch copy of the state is advanced).
        """
        c = np.asarray(controlled, bool)
        if c.shape != (state.num_agents,) or int(num_steps) < 1:
            raise ShapeError(f"controlled must be [{state.num_agents}] bool and num_steps >= 1, got {c.shape}, {num_steps}")
        if num_steps == 1:
            return self._one_step(state, c)
        scratch, cols = state.copy(), []
        for _ in range(int(num_steps)):
            if scratch.timestep + 1 >= scratch.sim.num_steps:
                cols.append(cols[-1])
                continue
            out = self._one_step(scratch, c)
            plan = self._plan
            e, t = scratch.ego_index, scratch.timestep
            out.xyz[e, 0, :2], out.heading[e, 0], out.valid[e, 0] = plan[0, :2], plan[0, 2], True
            out.xyz[e, 0, 2] = scratch.sim.xyz[e, t, 2]
            scratch.write_step(t + 1, out.xyz[:, 0], out.heading[:, 0], out.velocity[:, 0], out.valid[:, 0])
            scratch.timestep = t + 1
            cols.append(out)
        return Trajectory(
            **{k: np.concatenate([getattr(o, k) for o in cols], 1) for k in ("xyz", "heading", "velocity", "size", "valid")}
        )

    def _one_step(self, state: WorldState, controlled: np.ndarray) -> Trajectory:
        t = state.timestep
        request = self.prepare(state)
        if request is not None:
            frames = self._result if self._result is not None else self.service.forecast([request])[0]
            self._chunk = self._parse(state, controlled, frames, self._plan)
            self._chunk.frames = frames
            self._request = self._result = None
            self.stats.predictions += 1
        elif self._idle:
            n = state.num_agents
            self._chunk = Chunk(
                start=t + 1,
                t_pred=t,
                xyz=np.zeros((n, 1, 3)),
                heading=np.zeros((n, 1)),
                velocity=np.zeros((n, 1, 2)),
                learned=np.zeros((n, 1), bool),
                ego_plan=self._plan[:1].copy(),
            )
            self._idle = False
            self.stats.skipped += 1
        ch = self._chunk
        col = t + 1 - ch.start
        learned = ch.learned[:, col] & controlled & state.sim.valid[:, t]
        out = self.fallback.advance(state, controlled & ~learned, 1)
        out.xyz[learned, 0] = ch.xyz[learned, col]
        out.heading[learned, 0] = ch.heading[learned, col]
        out.velocity[learned, 0] = ch.velocity[learned, col]
        out.size[learned, 0] = state.sim.size[learned, t]
        out.valid[learned, 0] = True
        self.learned = learned
        self.measured = learned & (ch.measured[:, col] if ch.measured is not None else False)
        return out


def make_mad_policy(config: Any, rng: np.random.Generator, settings: Optional[LearnedAgentSettings] = None) -> LearnedAgents:
    """The agent-policy factory of ``agents="mad"``: ``factory(env_config, env_rng, settings)``.

    ``settings`` are the env's ``agent_options`` validated into :class:`LearnedAgentSettings`
    (``gym.make("MADDrive-v0", agents="mad", agent_options={"chunk": 8})``); None: the defaults.
    """
    s = settings if settings is not None else LearnedAgentSettings()
    if getattr(config, "agent_horizon", 1) != 1:
        raise ConfigError("agents='mad' chunks its own predictions (LearnedAgentSettings.chunk): leave agent_horizon at 1")
    return LearnedAgents(s, rng=rng, action_kind=config.action)


__all__ = ["FALLBACKS", "LearnedAgentSettings", "LearnedAgents", "LearnedStats", "make_mad_policy"]
