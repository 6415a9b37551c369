"""The reaction probe: do agents behind the ego react when it brakes hard?

Followers: vehicles valid at the current step whose centre is behind the
ego (ego-frame ``x < 0``, within 50 m), in its lane (``|y| < 2`` m) and
heading the same way (within 30 deg).  For each rollout pair (the same seed
with the ego on its log and with the ego braking, :mod:`.rollouts`) and
follower, at every step, in the ego's frame of that step: ``gap`` = the
distance between the centres along the ego's heading minus half of both
lengths (m, bumper to bumper) and ``lateral`` = the follower centre's
sideways offset (m).

Per scenario and policy: ``status`` (``"ok"``; ``"no_followers"``: nothing
to measure, every value is None; ``"ego_still"``: the ego moves under
``0.5`` m/s at the current step, so braking changes nothing and the values
are reported but left out of the aggregate), ``ego_speed`` (m/s, current
step), ``followers``; ``min_gap_log_ego`` / ``min_gap_brake`` (mean over
followers and rollouts of the smallest gap at steps where the follower is
still in the ego's lane, ``|lateral| < 2`` m, clipped at 0 = contact; None
where no follower stays in the lane); ``speed_drop_log_ego`` /
``speed_drop_brake`` (mean drop of the follower's speed from its first
simulated step to its lowest, m/s), ``reaction_speed_drop`` (their
difference: how much more the followers slow because the ego brakes) and
``rear_end_rate`` (fraction of follower rollouts that run into the braking
ego: at some step ``gap < 0`` while the follower overlaps the ego
sideways, ``|lateral| < (w_ego + w_follower) / 2``).  Log replay is the
reference that does not react.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
from mad_sim.eval.sim_agents.rollout_set import SimRollouts

from mad_sim.data.scenario import DT, ObjectType, Scenario

LANE_HALF_WIDTH = 2.0
STILL_SPEED = 0.5
PROBE_KEYS = (
    "min_gap_log_ego",
    "min_gap_brake",
    "speed_drop_log_ego",
    "speed_drop_brake",
    "reaction_speed_drop",
    "rear_end_rate",
)
"""The per-scenario values the aggregate averages (follower-weighted, over ``status == "ok"`` scenarios)."""


def followers(scenario: Scenario, object_ids: np.ndarray) -> np.ndarray:
    """Positions in ``object_ids`` of the ego's followers (module docstring)."""
    tr, e, t0 = scenario.tracks, scenario.sdc_index, scenario.current_index
    index = {int(i): n for n, i in enumerate(scenario.track_ids)}
    rows = np.array([index[int(i)] for i in object_ids])
    h = tr.heading[e, t0]
    rel = tr.xy[rows, t0] - tr.xy[e, t0]
    x = rel[:, 0] * np.cos(h) + rel[:, 1] * np.sin(h)
    y = -rel[:, 0] * np.sin(h) + rel[:, 1] * np.cos(h)
    dh = np.abs((tr.heading[rows, t0] - h + np.pi) % (2 * np.pi) - np.pi)
    ok = (
        (scenario.object_types[rows] == int(ObjectType.VEHICLE))
        & (x < 0)
        & (x > -50)
        & (np.abs(y) < LANE_HALF_WIDTH)
        & (dh < np.radians(30))
        & (rows != e)
    )
    return np.flatnonzero(ok)


def ego_speed(scenario: Scenario) -> float:
    """The logged ego's speed at the current step (m/s)."""
    return float(np.hypot(*scenario.tracks.velocity[scenario.sdc_index, scenario.current_index]))


def _gaps_and_speeds(scenario: Scenario, ro: SimRollouts, fol: np.ndarray) -> tuple:
    """``(gap, lateral, overlap_width, speed)``: ``[R, F, T]`` m, m, ``[F]`` m, ``[R, F, T]`` m/s."""
    ids = [int(i) for i in ro.object_ids]
    ego = ids.index(int(scenario.track_ids[scenario.sdc_index]))
    index = {int(i): n for n, i in enumerate(scenario.track_ids)}
    size = scenario.tracks.size[:, scenario.current_index]
    fol_rows = np.array([index[ids[f]] for f in fol])
    e_row = index[ids[ego]]
    h = ro.heading[:, ego]  # [R, T]
    rel = ro.xy[:, ego][:, None] - ro.xy[:, fol]  # [R, F, T, 2]: ego minus follower
    c, s = np.cos(h)[:, None], np.sin(h)[:, None]
    along = rel[..., 0] * c + rel[..., 1] * s
    lateral = -rel[..., 0] * s + rel[..., 1] * c
    gap = along - 0.5 * (size[e_row, 0] + size[fol_rows, 0])[None, :, None]
    overlap = 0.5 * (size[e_row, 1] + size[fol_rows, 1])
    xy0 = scenario.tracks.xy[fol_rows, scenario.current_index]
    path = np.concatenate([np.broadcast_to(xy0[None, :, None], (ro.num_rollouts, len(fol), 1, 2)), ro.xy[:, fol]], 2)
    speed = np.hypot(*np.diff(path, axis=2).transpose(3, 0, 1, 2)) / DT
    return gap, lateral, overlap, speed


def _min_in_lane_gap(gap: np.ndarray, lateral: np.ndarray) -> float | None:
    in_lane = np.abs(lateral) < LANE_HALF_WIDTH
    m = np.where(in_lane, gap, np.inf).min(-1)  # [R, F]
    m = m[np.isfinite(m)]
    return float(np.maximum(m, 0.0).mean()) if m.size else None


def probe_row(scenario: Scenario, normal: SimRollouts, braking: SimRollouts) -> Dict[str, Any]:
    """The probe's per-scenario values for one policy (module docstring)."""
    fol = followers(scenario, normal.object_ids)
    v0 = ego_speed(scenario)
    row: Dict[str, Any] = {"scenario_id": scenario.scenario_id, "ego_speed": v0, "followers": int(len(fol))}
    if not len(fol):
        return row | {"status": "no_followers"} | {k: None for k in PROBE_KEYS}
    row["status"] = "ok" if v0 >= STILL_SPEED else "ego_still"
    g_n, lat_n, _, v_n = _gaps_and_speeds(scenario, normal, fol)
    g_b, lat_b, overlap, v_b = _gaps_and_speeds(scenario, braking, fol)
    row["min_gap_log_ego"] = _min_in_lane_gap(g_n, lat_n)
    row["min_gap_brake"] = _min_in_lane_gap(g_b, lat_b)
    row["speed_drop_log_ego"] = float((v_n[..., 0] - v_n.min(-1)).mean())
    row["speed_drop_brake"] = float((v_b[..., 0] - v_b.min(-1)).mean())
    row["reaction_speed_drop"] = row["speed_drop_brake"] - row["speed_drop_log_ego"]
    row["rear_end_rate"] = float(((g_b < 0) & (np.abs(lat_b) < overlap[None, :, None])).any(-1).mean())
    return row


def probe_aggregate(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Counts of scenarios by status, and follower-weighted means of :data:`PROBE_KEYS` over the ``"ok"`` ones
    (None where no scenario is ``"ok"``, or none has the value)."""
    ok = [r for r in rows if r["status"] == "ok"]
    agg: Dict[str, Any] = {
        "scenarios": len(rows),
        "scenarios_probed": len(ok),
        "scenarios_without_followers": sum(r["status"] == "no_followers" for r in rows),
        "scenarios_ego_still": sum(r["status"] == "ego_still" for r in rows),
        "followers": int(sum(r["followers"] for r in ok)),
    }
    for k in PROBE_KEYS:
        have = [r for r in ok if r[k] is not None]
        agg[k] = float(np.average([r[k] for r in have], weights=[r["followers"] for r in have])) if have else None
    return agg
