"""Simulate a scenario's future with an agent policy: ``R`` seeded rollouts as :class:`~.rollout_set.SimRollouts`.

From the log's ``current_index`` every object moves by the policy (through
:class:`mad_sim.envs.agents.AgentStream`, one step per call, as in
``MADDrive-v0``) except the ego (the log's self-driving car), which follows
``ego``:

- ``log``: its logged future (WOSAC's setting);
- ``brake``: the reaction probe: from the current step it brakes at
  ``brake_decel`` m/s^2 along its logged path until it stands;
- a planner name (``expert``, ``idm``, ``cv``, ...): the planner's most
  probable trajectory, replanned every ``replan_every`` steps from the
  simulated state and followed exactly.

Rollout ``r`` draws from ``numpy.random.default_rng([seed, r])`` (the
policy's generator).  Policies known to be deterministic (``log``,
``constant_velocity``, ``idm``) with a deterministic ego are simulated once
and the result is repeated ``R`` times (``info["deterministic"]``).  The
learned agents are told the ego's next second as ``trajectory`` waypoints.
An object the policy marks invalid (it left the log) stays where it was
last, as a submission needs every object at every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from mad_sim.eval.sim_agents.rollout_set import SimRollouts, sim_agent_rows

from mad_sim.data.frames import world_to_ego
from mad_sim.data.scenario import DT, Scenario
from mad_sim.errors import ConfigError, ShapeError
from mad_sim.world.state import WorldState

DETERMINISTIC_POLICIES = frozenset({"log", "constant_velocity", "idm"})
DETERMINISTIC_EGOS = frozenset({"log", "brake", "expert", "cv", "constant_velocity", "idm"})


@dataclass
class RolloutSettings:
    """``rollouts`` per policy, ``horizon_s`` seconds simulated (10 Hz), the ``ego`` mode, ``seed``,
    ``brake_decel`` (m/s^2, the probe's braking), ``replan_every`` (steps, planner egos)."""

    rollouts: int = 32
    horizon_s: float = 8.0
    ego: str = "log"
    seed: int = 0
    brake_decel: float = 6.0
    replan_every: int = 5

    @property
    def horizon(self) -> int:
        return int(round(self.horizon_s / DT))


def _path_positions(scenario: Scenario, s: np.ndarray) -> tuple:
    """World ``(xy [K, 2], heading [K])`` at arclengths ``s`` along the ego's logged path from the current step
    (straight on along the last heading past its end)."""
    tr, e, t0 = scenario.tracks, scenario.sdc_index, scenario.current_index
    ok = tr.valid[e, t0:]
    pts = tr.xy[e, t0:][ok]
    seg = np.hypot(*np.diff(pts, axis=0).T) if len(pts) > 1 else np.zeros(0)
    keep = np.concatenate([[True], seg > 1e-3])
    pts = pts[keep]
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))]) if len(pts) > 1 else np.zeros(1)
    h0 = float(tr.heading[e, t0])
    if len(pts) < 2:
        d = np.array([np.cos(h0), np.sin(h0)])
        return pts[0] + s[:, None] * d, np.full(len(s), h0)
    seg_h = np.arctan2(*np.diff(pts, axis=0)[:, ::-1].T)
    i = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(pts) - 2)
    u = (s - cum[i])[:, None]
    d = np.stack([np.cos(seg_h[i]), np.sin(seg_h[i])], -1)
    return pts[i] + u * d, seg_h[i]


def brake_profile(v0: float, decel: float, steps: int) -> np.ndarray:
    """``[steps]`` distance travelled (m) at ``dt, 2 dt, ...`` braking from ``v0`` at ``decel`` until standing."""
    t = (np.arange(steps) + 1.0) * DT
    t_stop = max(v0, 0.0) / decel
    tt = np.minimum(t, t_stop)
    return max(v0, 0.0) * tt - 0.5 * decel * tt**2


class _Ego:
    """The ego's next state each step (world frame), by mode (module docstring)."""

    def __init__(self, scenario: Scenario, settings: RolloutSettings) -> None:
        self.scenario, self.settings = scenario, settings
        self.mode = settings.ego
        t0, e, tr = scenario.current_index, scenario.sdc_index, scenario.tracks
        self.t0 = t0
        if self.mode == "brake":
            v0 = float(np.dot(tr.velocity[e, t0], [np.cos(tr.heading[e, t0]), np.sin(tr.heading[e, t0])]))
            s = brake_profile(v0, settings.brake_decel, settings.horizon + 10)
            self.xy, self.h = _path_positions(scenario, s)
            self.v = np.maximum(v0 - settings.brake_decel * (np.arange(len(s)) + 1) * DT, 0.0)
        elif self.mode not in ("log",):
            from mad_sim.planners import make_planner

            self.planner = make_planner(self.mode)
            self._plan_t = -1

    def next(self, state: WorldState) -> tuple:
        """``(xy [2], heading, speed, waypoints [10, 2] ego frame)`` of step ``state.timestep + 1``."""
        t, e = state.timestep, state.ego_index
        k = t + 1 - self.t0 - 1
        tr = self.scenario.tracks
        if self.mode == "log":
            idx = np.arange(t + 1, t + 12)
            idx = np.minimum(idx, tr.num_steps - 1)
            ok = tr.valid[e, idx]
            xy = np.where(ok[:, None], tr.xy[e, idx], np.nan)
            # hold the last valid position where the log has none
            for j in range(len(idx)):
                if not ok[j]:
                    xy[j] = xy[j - 1] if j else state.sim.xy[e, t]
            h = np.where(ok, tr.heading[e, idx], state.sim.heading[e, t])
            v = np.where(ok, tr.speed[e, idx], 0.0)
            wp = xy[:10]
            return xy[0], float(h[0]), float(v[0]), world_to_ego(wp, state.sim.xy[e, t], float(state.sim.heading[e, t]))
        if self.mode == "brake":
            wp = self.xy[k : k + 10]
            return (
                self.xy[k],
                float(self.h[k]),
                float(self.v[k]),
                world_to_ego(wp, state.sim.xy[e, t], float(state.sim.heading[e, t])),
            )
        return self._planned(state)

    def _planned(self, state: WorldState) -> tuple:
        from mad_sim.planners.base import build_context

        from mad_sim.data.frames import ego_to_world, heading_ego_to_world

        t, e = state.timestep, state.ego_index
        if self._plan_t < 0 or t - self._plan_t >= self.settings.replan_every:
            ctx = build_context(
                state.sim,
                self.scenario.object_types,
                state.roadmap,
                t,
                e,
                11,
                log=state.log,
                horizon=30,
                source=self.scenario.source or self.scenario.scenario_id,
            )
            plan = self.planner.plan(ctx, 1, 30)
            b = plan.best
            self._xy = ego_to_world(plan.xy[b], ctx.origin_xy, ctx.origin_yaw)
            self._h = heading_ego_to_world(plan.heading[b], ctx.origin_yaw)
            self._plan_t = t
        i = t - self._plan_t
        xy = self._xy[min(i, len(self._xy) - 1)]
        prev = state.sim.xy[e, t]
        speed = float(np.hypot(*(xy - prev))) / DT
        wp = self._xy[i : i + 10]
        return xy, float(self._h[min(i, len(self._h) - 1)]), speed, world_to_ego(wp, prev, float(state.sim.heading[e, t]))


def simulate_once(
    scenario: Scenario, policy: str, settings: RolloutSettings, rng: np.random.Generator, config: Any = None
) -> WorldState:
    """One closed-loop rollout of ``horizon`` steps; returns the final :class:`WorldState` (``sim`` holds it)."""
    from mad_sim.envs.agents import AgentStream, make_agent_policy
    from mad_sim.envs.config import make_config

    cfg = config if config is not None else make_config(agents=policy, action="trajectory")
    state = WorldState.from_scenario(scenario)
    if state.remaining_log_steps < settings.horizon:
        raise ShapeError(
            f"{scenario.source or scenario.scenario_id}: {settings.horizon} steps asked, the log has "
            f"{state.remaining_log_steps} after its current step"
        )
    stream = AgentStream(make_agent_policy(policy, cfg, rng), 1)
    stream.reset(state, rng)
    ego = _Ego(scenario, settings)
    e = state.ego_index
    controlled = np.ones(state.num_agents, bool)
    controlled[e] = False
    for _ in range(settings.horizon):
        t = state.timestep
        xy, h, v, wp = ego.next(state)
        stream.observe(state, wp, None)
        agents = stream.next_step(state, controlled)
        sim = state.sim
        valid = agents.valid[:, 0]
        grow = valid & ~sim.valid[:, t]
        state.write_step(t + 1, agents.xyz[:, 0], agents.heading[:, 0], agents.velocity[:, 0], valid)
        if grow.any():
            sim.size[grow, t + 1] = agents.size[grow, 0]
        z = scenario.tracks.xyz[e, t + 1, 2] if ego.mode == "log" and scenario.tracks.valid[e, t + 1] else sim.xyz[e, t, 2]
        sim.xyz[e, t + 1] = (xy[0], xy[1], z)
        sim.heading[e, t + 1] = h
        sim.velocity[e, t + 1] = (v * np.cos(h), v * np.sin(h))
        sim.valid[e, t + 1] = True
        state.timestep = t + 1
    return state


def _held(state: WorldState, rows: np.ndarray, t0: int, steps: int) -> tuple:
    """``(xyz [A, T, 3], heading [A, T])`` of ``rows`` after ``t0``, invalid steps holding the last valid state."""
    sim = state.sim
    xyz = sim.xyz[rows, t0 : t0 + 1 + steps].copy()
    heading = sim.heading[rows, t0 : t0 + 1 + steps].copy()
    valid = sim.valid[rows, t0 : t0 + 1 + steps]
    for k in range(1, steps + 1):
        bad = ~valid[:, k]
        xyz[bad, k] = xyz[bad, k - 1]
        heading[bad, k] = heading[bad, k - 1]
    return xyz[:, 1:], heading[:, 1:]


def simulate(scenario: Scenario, policy: str, settings: RolloutSettings, config: Any = None) -> SimRollouts:
    """``settings.rollouts`` rollouts of ``policy`` (module docstring); ConfigError for an unknown policy or ego."""
    from mad_sim.envs.agents import agent_policy_names

    if policy not in agent_policy_names():
        raise ConfigError(f"--agents: unknown agent policy {policy!r} (known: {', '.join(agent_policy_names())})")
    if settings.rollouts < 1 or settings.horizon < 1:
        raise ConfigError(f"--rollouts and --horizon must be positive, got {settings.rollouts}, {settings.horizon_s}")
    rows = sim_agent_rows(scenario)
    t0, t = scenario.current_index, settings.horizon
    deterministic = policy in DETERMINISTIC_POLICIES and settings.ego in DETERMINISTIC_EGOS
    runs = 1 if deterministic else settings.rollouts
    xyz = np.zeros((runs, len(rows), t, 3))
    heading = np.zeros((runs, len(rows), t))
    for r in range(runs):
        state = simulate_once(scenario, policy, settings, np.random.default_rng([settings.seed, r]), config)
        xyz[r], heading[r] = _held(state, rows, t0, t)
    if deterministic:
        xyz = np.repeat(xyz, settings.rollouts, 0)
        heading = np.repeat(heading, settings.rollouts, 0)
    return SimRollouts(
        scenario.scenario_id,
        scenario.track_ids[rows].astype(np.int64),
        xyz,
        heading,
        info={"policy": policy, "ego": settings.ego, "seed": settings.seed, "deterministic": deterministic},
    )


def ego_mode_check(ego: Optional[str]) -> str:
    """``ego`` if it is ``log``, ``brake`` or a planner name; ConfigError otherwise."""
    name = ego or "log"
    if name in ("log", "brake"):
        return name
    from mad_sim.planners import make_planner

    try:
        make_planner(name)
    except Exception as exc:  # the planner registry's own error names the known ones
        raise ConfigError(f"--ego: {exc}") from None
    return name
