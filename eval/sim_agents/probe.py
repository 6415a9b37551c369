"""The reaction probe: do agents behind the ego react when it brakes hard?

Followers: vehicles valid at the current step whose centre is behind the
ego (ego-frame ``x < 0``, within 50 m), in its lane (``|y| < 2`` m) and
heading the same way (within 30 deg).  For each rollout pair (the same seed
with the ego on its log and with the ego braking, :mod:`.rollouts`) and
follower: ``gap`` = distance between the centres along the ego's heading
minus half of both lengths (m, bumper to bumper), at every step.

Per scenario and policy: ``followers``; ``min_gap_log_ego`` / ``min_gap_brake``
(mean over followers and rollouts of the smallest gap, m);
``speed_drop_brake`` / ``speed_drop_log_ego`` (mean drop of the follower's
speed from the current step to its lowest, m/s) and ``rear_end_rate``
(fraction of follower rollouts whose gap goes below 0 under the brake).
Log replay is the reference that does not react.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from mad_sim.data.scenario import DT, ObjectType, Scenario
from mad_sim.eval.sim_agents.rollout_set import SimRollouts


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
    ok = ((scenario.object_types[rows] == int(ObjectType.VEHICLE)) & (x < 0) & (x > -50) & (np.abs(y) < 2.0)
          & (dh < np.radians(30)) & (rows != e))
    return np.flatnonzero(ok)


def _gaps_and_speeds(scenario: Scenario, ro: SimRollouts, fol: np.ndarray) -> tuple:
    ids = [int(i) for i in ro.object_ids]
    ego = ids.index(int(scenario.track_ids[scenario.sdc_index]))
    length = {int(i): float(scenario.tracks.size[n, scenario.current_index, 0]) for n, i in enumerate(scenario.track_ids)}
    h = ro.heading[:, ego]  # [R, T]
    rel = ro.xy[:, ego][:, None] - ro.xy[:, fol]  # [R, F, T, 2]
    along = rel[..., 0] * np.cos(h)[:, None] + rel[..., 1] * np.sin(h)[:, None]
    half = 0.5 * (length[ids[ego]] + np.array([length[ids[f]] for f in fol]))
    gap = along - half[None, :, None]
    xy0 = scenario.tracks.xy[[int(np.flatnonzero(scenario.track_ids == ids[f])[0]) for f in fol], scenario.current_index]
    path = np.concatenate([np.broadcast_to(xy0[None, :, None], (ro.num_rollouts, len(fol), 1, 2)), ro.xy[:, fol]], 2)
    speed = np.hypot(*np.diff(path, axis=2).transpose(3, 0, 1, 2)) / DT  # [R, F, T]
    return gap, speed


def probe_row(scenario: Scenario, normal: SimRollouts, braking: SimRollouts) -> Dict[str, Any]:
    """The probe's per-scenario values for one policy (module docstring)."""
    fol = followers(scenario, normal.object_ids)
    row: Dict[str, Any] = {"scenario_id": scenario.scenario_id, "followers": int(len(fol))}
    if not len(fol):
        return row | {"min_gap_log_ego": None, "min_gap_brake": None, "speed_drop_log_ego": None,
                      "speed_drop_brake": None, "rear_end_rate": None}
    g_n, v_n = _gaps_and_speeds(scenario, normal, fol)
    g_b, v_b = _gaps_and_speeds(scenario, braking, fol)
    row["min_gap_log_ego"] = float(g_n.min(-1).mean())
    row["min_gap_brake"] = float(g_b.min(-1).mean())
    row["speed_drop_log_ego"] = float((v_n[..., 0] - v_n.min(-1)).mean())
    row["speed_drop_brake"] = float((v_b[..., 0] - v_b.min(-1)).mean())
    row["rear_end_rate"] = float((g_b.min(-1) < 0).mean())
    return row


PROBE_KEYS = ("followers", "min_gap_log_ego", "min_gap_brake", "speed_drop_log_ego", "speed_drop_brake", "rear_end_rate")
