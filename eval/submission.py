"""Waymo Sim Agents submissions (``SimAgentsChallengeSubmission`` binproto) as arrays, and their metrics.

A submission holds, per scenario, R joint rollouts ("joint scenes") of A
objects over 80 future steps (8 s at 10 Hz, i.e. steps ``current_index + 1 ...``
of the log).  :func:`rollout_metrics` treats the R rollouts as R predictions
per object and scores them against the log with :mod:`mad_sim.eval.metrics`
(world frame; the metrics are invariant to the frame).  The WOSAC realism
metrics of the same rollouts are :mod:`mad_sim.eval.sim_agents`.
"""

from __future__ import annotations

import os
from typing import Dict, List, Union

import numpy as np
from mad_sim.eval import metrics as M
from mad_sim.eval.sim_agents.rollout_set import SimRollouts
from mad_sim.eval.sim_agents.submission_io import read_submission as _read

from mad_sim.data.scenario import DT, Scenario
from mad_sim.errors import SchemaError

ScenarioRollouts = SimRollouts
"""One scenario's rollouts (``xy`` / ``xyz``, ``heading``, ``object_ids``).

See :class:`~mad_sim.eval.sim_agents.rollout_set.SimRollouts`."""


def read_submission(path: Union[str, os.PathLike]) -> List[SimRollouts]:
    """Parse a submission file; see :func:`mad_sim.eval.sim_agents.submission_io.read_submission`."""
    return _read(path)


def rollout_metrics(rollouts: SimRollouts, scenario: Scenario) -> Dict[str, object]:
    """Per-object and mean minADE / minFDE / miss rate / APD with K = R rollouts.

    Ground truth: the log's positions at steps ``current_index + 1 ... + T``;
    objects whose id is not in the log raise SchemaError.
    """
    if rollouts.scenario_id != scenario.scenario_id:
        raise SchemaError(
            f"rollouts are for scenario {rollouts.scenario_id}, the log is {scenario.scenario_id}",
            path=scenario.source,
            field="scenario_id",
        )
    index = {int(i): n for n, i in enumerate(scenario.track_ids)}
    missing = [int(i) for i in rollouts.object_ids if int(i) not in index]
    if missing:
        raise SchemaError(f"object ids {missing[:5]} are not tracks of the log", path=scenario.source, field="object_id")
    rows = np.array([index[int(i)] for i in rollouts.object_ids])
    t = rollouts.xy.shape[2]
    t0 = scenario.current_index
    fut = slice(t0 + 1, t0 + 1 + t)
    tracks = scenario.tracks
    gt = tracks.xy[rows, fut]
    valid = tracks.valid[rows, fut]
    pred = np.transpose(rollouts.xy, (1, 0, 2, 3))  # [A, R, T, 2]
    speed = np.where(tracks.valid[rows, t0], tracks.speed[rows, t0], 0.0)
    m = M.trajectory_metrics(pred, np.where(valid[..., None], gt, 0.0), valid, tracks.heading[rows, fut], speed, DT)

    def mean(x: np.ndarray) -> float:
        x = x[np.isfinite(x)]
        return float(x.mean()) if x.size else float("nan")

    return {
        "scenario_id": scenario.scenario_id,
        "num_objects": int(len(rows)),
        "k": rollouts.num_rollouts,
        "minADE": mean(m.min_ade),
        "minFDE": mean(m.min_fde),
        "miss_rate": mean(m.miss_rate()),
        "APD": mean(m.apd),
        "APD_flat": mean(m.apd_flat),
        "per_object": {"object_id": rollouts.object_ids.tolist(), "minADE": m.min_ade.tolist(), "APD": m.apd.tolist()},
    }
