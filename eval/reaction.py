"""Reaction to a braking ego: do the simulated agents behind it slow down, and do those ahead keep to their log?

**Protocol** (per scene and agent policy one ``MADDrive-v0`` episode, ``action="bicycle"``, no
termination, seed ``settings.seed``).  Steps are 0.1 s; ``t_c`` is the log's ``current_index``, the
*onset* ``t0 = t_c + follow_steps``, the last step ``t1 = t_c + episode_steps`` (or the log's end).

- The ego follows its log until ``t0``: each step the bicycle control that lands on the next
  logged position (:func:`~mad_sim.world.dynamics.bicycle_inverse` from the simulated state).
- From ``t0`` it brakes at ``brake_accel`` (m/s^2, negative) until it stands
  (the last step takes exactly the speed left, so it never reverses), then
  holds 0.  Curvature (1/m): ``"path"`` the log's curvature at the nearest
  logged ego position (so it stays on its lane on a bend), or ``"zero"``.
- ``control=True``: each policy also runs with an ego that follows its log to ``t1``, which
  separates the reaction to the braking from the policy's own departure from the log;
  ``reseed=True`` (with ``control``) runs the control once more with seed + 1.

**Who is scored** (:func:`classify`, from the LOG at ``t0``, so every policy
is scored on the same agents; vehicles and cyclists moving at least
``min_speed`` m/s): in the ego frame at ``t0`` (x forward, y left, metres),
agents with ``|y| <= lateral_m`` and heading within ``heading_deg`` of the
ego's are *followers* when ``-range_m <= x < 0`` and *leaders* when
``0 < x <= range_m``.  A scene is usable when the ego moves at least
``min_ego_speed`` m/s at ``t0`` and has a follower or a leader.

**Figures** (:func:`score`, on the simulated trajectory; an agent is scored
when it is valid at ``t0`` and ``t1``):

- follower gap ``g(t) = s_ego(t) - s_f(t)`` (m): centre positions projected
  on the ego's LOGGED path (:func:`ego_path`, extended straight at both ends;
  :func:`along_path`), so the gap follows the lane through a bend and does not
  depend on the braking ego's heading; negative once the follower is past the
  ego.  ``gap_change = g(t1) - g(t0)`` (negative: the gap shrank), ``min_gap``
  over ``[t0, t1]``, ``speed_change = v(t1) - v(t0)`` (m/s), ``lateral_end``
  its offset from that path at ``t1`` (m, left positive: a follower that took
  another lane shows here); with a control run,
  ``reaction = gap_change - gap_change(control)`` (for a policy that ignores
  the ego exactly minus the arclength the braking cost the ego).
- leaders: ``displacement_log`` the mean distance (m) to their logged
  positions over the valid steps of ``(t0, t1]``; with a control run,
  ``displacement_control`` the same to the control run's positions, and with
  ``reseed`` ``displacement_reseed`` between the two control runs: the spread
  a sampled policy (``mad``) shows with no braking at all, to read
  ``displacement_control`` against (0 for the scripted policies).
- ``agents="mad"``: per agent the share of its valid steps in ``(t0, t1]``
  that the model drove (``info["learned_agents"]``); the rest were driven by
  the fallback scripted policy (``agent_options["fallback"]``, IDM by default).

:func:`aggregate` pairs every policy's followers with the same followers under
``log`` replay: ``gap_ratio = mean gap_change(policy) / mean gap_change(log)``
(1: no reaction, 0: the gap kept) and ``gap_vs_log = mean gap_change(policy) -
mean gap_change(log)`` (m, positive: the gap shrank less than under log replay);
with control runs also ``reaction_vs_log = mean reaction(policy) - mean
reaction(log)`` (m: how much of the ego's lost distance the followers gave
back by slowing, free of the policy's own drift from the log; 0: none).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mad_sim.data.frames import world_to_ego, wrap_angle
from mad_sim.data.scenario import DT, ObjectType, Scenario, Trajectory
from mad_sim.errors import ConfigError, DataError

POLICIES = ("log", "idm", "constant_velocity", "mad")
"""The agent policies the figure compares (``log`` is the reference the others are paired with)."""


@dataclass
class ReactionSettings:
    """The protocol of the module doc: ``follow_steps`` / ``episode_steps`` (0.1 s steps), ``brake_accel`` m/s^2,
    ``lateral_m`` / ``range_m`` m (ego frame), ``heading_deg`` deg, ``min_speed`` / ``min_ego_speed`` m/s."""

    follow_steps: int = 10
    episode_steps: int = 48
    brake_accel: float = -6.0
    curvature: str = "path"
    lateral_m: float = 2.0
    range_m: float = 40.0
    heading_deg: float = 30.0
    min_speed: float = 1.0
    min_ego_speed: float = 2.0
    control: bool = False
    reseed: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.follow_steps < self.episode_steps:
            raise ConfigError(f"reaction: need 0 <= follow_steps={self.follow_steps} < episode_steps={self.episode_steps}")
        if not self.brake_accel < 0:
            raise ConfigError(f"reaction: brake_accel={self.brake_accel} m/s^2 must be negative")
        if self.curvature not in ("path", "zero"):
            raise ConfigError(f"reaction: curvature={self.curvature!r} must be 'path' or 'zero'")
        for name in ("lateral_m", "range_m", "heading_deg"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"reaction: {name}={getattr(self, name)} must be positive")


@dataclass
class Episode:
    """One simulated episode: ``sim`` the simulated trajectory ``[N, T]`` (world frame), onset ``t0`` and last
    step ``t1`` (indices into T), ``learned`` ``[T, N]`` bool (True where the model drove that agent to that
    step; None for scripted policies), ``collision_steps`` ego overlap steps in ``(t0, t1]``."""

    scenario: Scenario
    ego: int
    sim: Trajectory
    t0: int
    t1: int
    learned: Optional[np.ndarray]
    collision_steps: int


class BrakingEgo:
    """The ego's bicycle actions (normalised ``[accel, curvature]``): follow the log, then brake (module doc)."""

    def __init__(self, settings: ReactionSettings, brake: bool = True) -> None:
        self.settings, self.brake = settings, brake

    def reset(self, env: Any) -> None:
        """Bind to a freshly reset env (``env.unwrapped`` of ``MADDrive-v0``) and read the logged ego path."""
        from mad_sim.world.dynamics import expert_actions

        self.env = env.unwrapped
        s = self.env.state
        self.start = int(s.timestep)
        log, e = s.log, s.ego_index
        exp = expert_actions(log, t0=self.start)
        self.path_valid = log.valid[e, self.start : self.start + exp.curvature.shape[1]] & exp.valid[e]
        self.path_xy = log.xy[e, self.start : self.start + exp.curvature.shape[1]]
        self.path_curv = exp.curvature[e]

    def controls(self) -> Tuple[float, float]:
        """(accel m/s^2, curvature 1/m) for the step from the present one."""
        from mad_sim.world.dynamics import bicycle_inverse

        s = self.env.state
        t, e = s.timestep, s.ego_index
        xy, yaw = s.sim.xy[e, t].astype(np.float64), float(s.sim.heading[e, t])
        v = float(np.dot(s.sim.velocity[e, t], [np.cos(yaw), np.sin(yaw)]))
        if not self.brake or t - self.start < self.settings.follow_steps:
            if t + 1 >= s.log.num_steps or not s.log.valid[e, t + 1]:
                return 0.0, 0.0
            a, k = bicycle_inverse(np.stack([xy, s.log.xy[e, t + 1]]), np.full(2, yaw), np.full(2, v))
            return float(a[0]), float(k[0])
        accel = max(self.settings.brake_accel, -v / DT) if v > 0 else 0.0
        curv = 0.0
        if self.settings.curvature == "path" and self.path_valid.any():
            d = np.hypot(*(self.path_xy - xy).T)
            curv = float(self.path_curv[np.argmin(np.where(self.path_valid, d, np.inf))])
        return accel, curv

    def act(self) -> np.ndarray:
        """The normalised bicycle action ``[2]`` float32 in ``[-1, 1]``."""
        a, k = self.controls()
        c = self.env.config
        return np.clip(np.array([a / c.max_accel, k / c.max_curvature]), -1.0, 1.0).astype(np.float32)


def onset_index(scenario: Scenario, settings: ReactionSettings) -> int:
    """``t0 = current_index + follow_steps``; DataError when the log is too short to brake in."""
    t0 = scenario.current_index + settings.follow_steps
    if t0 + 1 >= scenario.num_steps:
        raise DataError(f"log has {scenario.num_steps} steps, no room to brake after step {t0}", path=scenario.source)
    return t0


def classify(scenario: Scenario, ego: int, settings: ReactionSettings) -> Tuple[np.ndarray, np.ndarray, float]:
    """``(followers [F], leaders [L], ego speed m/s)`` at the onset, from the log (module doc); track indices."""
    t0 = onset_index(scenario, settings)
    log = scenario.tracks
    if not log.valid[ego, t0]:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), float("nan")
    yaw = float(log.heading[ego, t0])
    rel = world_to_ego(log.xy[:, t0], log.xy[ego, t0], yaw)
    kind = np.isin(scenario.object_types, [ObjectType.VEHICLE, ObjectType.CYCLIST])
    aligned = np.abs(wrap_angle(log.heading[:, t0] - yaw)) <= np.radians(settings.heading_deg)
    ok = log.valid[:, t0] & kind & aligned & (np.abs(rel[:, 1]) <= settings.lateral_m)
    ok &= log.speed[:, t0] >= settings.min_speed
    ok[ego] = False
    x = rel[:, 0]
    followers = np.flatnonzero(ok & (x < 0) & (x >= -settings.range_m))
    leaders = np.flatnonzero(ok & (x > 0) & (x <= settings.range_m))
    return followers, leaders, float(log.speed[ego, t0])


def usable(followers: np.ndarray, leaders: np.ndarray, ego_speed: float, settings: ReactionSettings) -> bool:
    """True when the ego moves at the onset (``>= min_ego_speed``) and has a follower or a leader."""
    return bool(ego_speed >= settings.min_ego_speed and (len(followers) or len(leaders)))


def run_episode(
    scenario: Scenario,
    agents: str,
    settings: ReactionSettings,
    agent_options: Optional[Dict[str, Any]] = None,
    brake: bool = True,
) -> Episode:
    """Drive ``scenario`` with the :class:`BrakingEgo` (``brake=False``: the control, log-following ego)."""
    import gymnasium as gym

    import mad_sim  # noqa: F401  (registers MADDrive-v0)

    opts = dict(agent_options or {}) if agents == "mad" else {}
    flags = dict.fromkeys(("terminate_on_collision", "terminate_on_offroad", "terminate_on_route_completion"), False)
    env = gym.make("MADDrive-v0", agents=agents, action="bicycle", agent_options=opts, **flags)
    driver = BrakingEgo(settings, brake=brake)
    env.reset(seed=settings.seed, options={"scenario": scenario})
    base: Any = env.unwrapped
    driver.reset(env)
    t0 = onset_index(scenario, settings)
    n, t = base.state.num_agents, base.state.timestep
    learned = np.zeros((base.state.sim.num_steps, n), np.bool_) if agents == "mad" else None
    collisions = 0
    for _ in range(settings.episode_steps):
        _, _, term, trunc, info = env.step(driver.act())
        t = base.state.timestep
        if learned is not None:
            learned[t, info.get("learned_agents", [])] = True
        collisions += int(bool(info["collision"]) and t > t0)
        if term or trunc:
            break
    env.close()
    state = base.state.copy()
    return Episode(scenario, state.ego_index, state.sim, t0, int(t), learned, collisions)


def ego_path(scenario: Scenario, ego: int, extend_m: float) -> np.ndarray:
    """``[M, 2]`` world polyline (m): the ego's logged positions (all valid steps, repeated points dropped),
    extended straight by ``extend_m`` before its first and after its last point; DataError under 2 points."""
    log = scenario.tracks
    xy = log.xy[ego, log.valid[ego]].astype(np.float64)
    xy = xy[np.concatenate([[True], np.hypot(*np.diff(xy, axis=0).T) > 1e-2])] if len(xy) else xy
    if len(xy) < 2:
        raise DataError(f"ego track {ego} has no logged motion to measure gaps along", path=scenario.source)
    head, tail = (xy[0] - xy[1]) / np.hypot(*(xy[0] - xy[1])), (xy[-1] - xy[-2]) / np.hypot(*(xy[-1] - xy[-2]))
    return np.concatenate([[xy[0] + head * extend_m], xy, [xy[-1] + tail * extend_m]])


def along_path(path: np.ndarray, xy: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Arclength ``s`` [K] (m from the path's start) and signed lateral offset [K] (m, left positive) of the
    points ``xy`` [K, 2] (world) projected on their nearest segment of ``path`` [M, 2]."""
    a, ab = path[:-1], np.diff(path, axis=0)
    seg = np.hypot(ab[:, 0], ab[:, 1])
    rel = xy[:, None, :] - a[None]
    t = np.clip((rel * ab[None]).sum(-1) / (seg * seg)[None], 0.0, 1.0)
    off = rel - t[..., None] * ab[None]
    j = np.argmin(np.hypot(off[..., 0], off[..., 1]), axis=1)
    k = np.arange(len(xy))
    cross = (ab[j, 0] * rel[k, j, 1] - ab[j, 1] * rel[k, j, 0]) / seg[j]
    return np.concatenate([[0.0], np.cumsum(seg)])[j] + t[k, j] * seg[j], cross


def _gap(path: np.ndarray, sim: Trajectory, ego: int, agent: int, t: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Gap (m, ego's arclength minus the agent's along ``path``) and the agent's lateral offset (m) at steps ``t``."""
    s_e, _ = along_path(path, sim.xy[ego, t])
    s_a, lat = along_path(path, sim.xy[agent, t])
    return s_e - s_a, lat


def _dist(x: Trajectory, y: Trajectory, a: int, steps: np.ndarray) -> Optional[float]:
    """Mean distance (m) between agent ``a`` in ``x`` and in ``y`` over the ``steps`` where both are valid."""
    ok = steps[x.valid[a, steps] & y.valid[a, steps]]
    return float(np.mean(np.hypot(*(x.xy[a, ok] - y.xy[a, ok]).T))) if len(ok) else None


def score(
    ep: Episode, followers: np.ndarray, leaders: np.ndarray, control: Optional[Episode] = None, reseed: Optional[Episode] = None
) -> Dict[str, Any]:
    """Per-agent rows of one episode: ``{"followers": [...], "leaders": [...], "ego": {...}}`` (module doc);
    ``reseed``: the control run again with seed + 1 (the leaders' sampling-noise floor)."""
    sim, log, e, t0, t1 = ep.sim, ep.scenario.tracks, ep.ego, ep.t0, ep.t1
    span = np.arange(t0, t1 + 1)
    path = ego_path(ep.scenario, e, extend_m=200.0)
    after = span[1:]

    def share(a: int) -> Dict[str, Any]:
        if ep.learned is None:
            return {}
        steps = after[sim.valid[a, after]]
        return {"learned_steps": int(ep.learned[steps, a].sum()), "valid_steps": int(len(steps))}

    rows_f = []
    for a in map(int, followers):
        if not (sim.valid[a, t0] and sim.valid[a, t1]):
            continue
        gap, lat = _gap(path, sim, e, a, span)
        row = dict(track=a, gap0=float(gap[0]), lateral_end=float(lat[-1]), gap_change=float(gap[-1] - gap[0]), **share(a))
        row.update(min_gap=float(np.min(gap[sim.valid[a, span]])), speed_change=float(sim.speed[a, t1] - sim.speed[a, t0]))
        if control is not None and control.sim.valid[a, t0] and control.sim.valid[a, t1]:
            g, _ = _gap(path, control.sim, e, a, np.array([t0, t1]))
            row["reaction"] = row["gap_change"] - float(g[1] - g[0])
        rows_f.append(row)
    rows_l = []
    for a in map(int, leaders):
        if not (sim.valid[a, t0] and sim.valid[a, t1]):
            continue
        row = dict(track=a, displacement_log=_dist(sim, log, a, after), speed_change=float(sim.speed[a, t1] - sim.speed[a, t0]))
        if control is not None:
            row["displacement_control"] = _dist(sim, control.sim, a, after)
        if control is not None and reseed is not None:
            row["displacement_reseed"] = _dist(control.sim, reseed.sim, a, after)
        rows_l.append({**row, **share(a)})
    travel = [float(np.sum(np.hypot(*np.diff(x.xy[e, span], axis=0).T))) for x in (sim, log)]
    ego = dict(speed0=float(sim.speed[e, t0]), speed1=float(sim.speed[e, t1]), travel_m=travel[0], log_travel_m=travel[1])
    ego.update(collision_steps=ep.collision_steps, t0=t0, t1=t1)
    return {"followers": rows_f, "leaders": rows_l, "ego": ego}


def _mean(rows: Sequence[Dict[str, Any]], key: str) -> Optional[float]:
    v = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(v)) if v else None


def _share(rows: Sequence[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if not rows or "valid_steps" not in rows[0]:
        return None
    learned, total = sum(r["learned_steps"] for r in rows), sum(r["valid_steps"] for r in rows)
    return {"learned_steps": learned, "valid_steps": total, "share": learned / total if total else None}


def aggregate(scenes: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    """Per policy, from ``{policy: [score(...) + {"scene": id}, ...]}``: the means of the module doc."""
    keyed = {p: {(s["scene"], r["track"]): r for s in rows for r in s["followers"]} for p, rows in scenes.items()}
    out: Dict[str, Dict[str, Any]] = {}
    for p, rows in scenes.items():
        fol = [r for s in rows for r in s["followers"]]
        lead = [r for s in rows for r in s["leaders"]]
        agg: Dict[str, Any] = {
            "scenes": len(rows),
            "followers": len(fol),
            "leaders": len(lead),
            "gap_change": _mean(fol, "gap_change"),
            "min_gap": _mean(fol, "min_gap"),
            "follower_speed_change": _mean(fol, "speed_change"),
            "reaction": _mean(fol, "reaction"),
            "follower_lateral_end": float(np.mean([abs(r["lateral_end"]) for r in fol])) if fol else None,
            "leader_displacement_log": _mean(lead, "displacement_log"),
            "leader_displacement_control": _mean(lead, "displacement_control"),
            "leader_displacement_reseed": _mean(lead, "displacement_reseed"),
            "leader_speed_change": _mean(lead, "speed_change"),
            "ego_collision_steps": int(sum(s["ego"]["collision_steps"] for s in rows)),
            "follower_learned": _share(fol),
            "leader_learned": _share(lead),
        }
        if "log" in keyed:
            ref_rows = keyed["log"]
            pairs = [(r["gap_change"], ref_rows[k]["gap_change"]) for k, r in keyed[p].items() if k in ref_rows]
            if pairs:
                mine, ref = np.mean([a for a, _ in pairs]), np.mean([b for _, b in pairs])
                agg["paired_followers"] = len(pairs)
                agg["gap_vs_log"] = float(mine - ref)
                agg["gap_ratio"] = float(mine / ref) if abs(ref) > 1e-9 else None
            both = [(r, ref_rows[k]) for k, r in keyed[p].items() if k in ref_rows]
            react = [r["reaction"] - q["reaction"] for r, q in both if "reaction" in r and "reaction" in q]
            agg["reaction_vs_log"] = float(np.mean(react)) if react else None
        out[p] = agg
    return out


def run_reaction(
    scenarios: Sequence[Scenario],
    policies: Sequence[str] = POLICIES,
    settings: Optional[ReactionSettings] = None,
    agent_options: Optional[Dict[str, Any]] = None,
    progress: Any = None,
) -> Dict[str, Any]:
    """The whole figure: scan ``scenarios``, run every policy on the usable ones, score and aggregate.

    Returns ``{"settings", "scan": [per scene: id, source, followers, leaders, ego_speed, usable],
    "scenes": {policy: [score rows + scene id]}, "aggregate": {policy: means}}``.  ``progress``:
    optional ``callable(str)`` told about each episode.
    """
    settings = settings or ReactionSettings()
    scan, picked = [], []
    for sc in scenarios:
        fol, lead, v = classify(sc, sc.sdc_index, settings)
        ok = usable(fol, lead, v, settings)
        scan.append(dict(scene=sc.scenario_id, source=str(sc.source), followers=fol.tolist(), leaders=lead.tolist()))
        scan[-1].update(ego_speed=v, usable=ok)
        if ok:
            picked.append((sc, fol, lead))
    scenes: Dict[str, List[Dict[str, Any]]] = {}
    for p in policies:
        scenes[p] = []
        for sc, fol, lead in picked:
            if progress:
                progress(f"{p}: {sc.scenario_id}")
            ep = run_episode(sc, p, settings, agent_options)
            ctl = run_episode(sc, p, settings, agent_options, brake=False) if settings.control else None
            alt = settings.control and settings.reseed
            alt_ep = run_episode(sc, p, replace(settings, seed=settings.seed + 1), agent_options, brake=False) if alt else None
            scenes[p].append({"scene": sc.scenario_id, **score(ep, fol, lead, ctl, alt_ep)})
    return {"settings": asdict(settings), "scan": scan, "scenes": scenes, "aggregate": aggregate(scenes)}
