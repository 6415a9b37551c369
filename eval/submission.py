"""Waymo Sim Agents submissions (``SimAgentsChallengeSubmission`` binproto) as arrays, and their metrics.

A submission holds, per scenario, R joint rollouts ("joint scenes") of A
objects over 80 future steps (8 s at 10 Hz, i.e. steps ``current_index + 1 ...``
of the log).  :func:`rollout_metrics` treats the R rollouts as R predictions
per object and scores them against the log with :mod:`mad_sim.eval.metrics`
(world frame; the metrics are invariant to the frame).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Union

import numpy as np

from mad_sim.data.scenario import DT, Scenario
from mad_sim.errors import DataNotFoundError, SchemaError
from mad_sim.eval import metrics as M


@dataclass
class ScenarioRollouts:
    """One scenario's rollouts: ``xy [R, A, T, 2]``, ``heading [R, A, T]`` (world frame), ``object_ids [A]``."""

    scenario_id: str
    object_ids: np.ndarray
    xy: np.ndarray
    heading: np.ndarray

    @property
    def num_rollouts(self) -> int:
        return int(self.xy.shape[0])


def read_submission(path: Union[str, os.PathLike]) -> List[ScenarioRollouts]:
    """Parse a submission file; SchemaError names the scenario / rollout / object at fault."""
    from google.protobuf.message import DecodeError

    from mad_sim.data.proto import sim_agents_submission_pb2 as pb

    p = os.fspath(path)
    if not os.path.isfile(p):
        raise DataNotFoundError("no such file", path=p)
    msg = pb.SimAgentsChallengeSubmission()
    try:
        with open(p, "rb") as f:
            msg.ParseFromString(f.read())
    except DecodeError as exc:
        raise SchemaError(f"not a SimAgentsChallengeSubmission ({exc})", path=p) from None
    out = []
    for si, sr in enumerate(msg.scenario_rollouts):
        if not sr.joint_scenes:
            raise SchemaError(f"scenario {sr.scenario_id!r} has no rollouts", path=p, record=si, field="joint_scenes")
        ids0 = [t.object_id for t in sr.joint_scenes[0].simulated_trajectories]
        steps = len(sr.joint_scenes[0].simulated_trajectories[0].center_x) if ids0 else 0
        xy = np.zeros((len(sr.joint_scenes), len(ids0), steps, 2))
        heading = np.zeros((len(sr.joint_scenes), len(ids0), steps))
        for r, scene in enumerate(sr.joint_scenes):
            ids = [t.object_id for t in scene.simulated_trajectories]
            if ids != ids0:
                raise SchemaError(f"rollout {r} lists other objects than rollout 0", path=p, record=si,
                                  field="simulated_trajectories.object_id")
            for a, traj in enumerate(scene.simulated_trajectories):
                if not (len(traj.center_x) == len(traj.center_y) == len(traj.heading) == steps):
                    raise SchemaError(f"rollout {r}, object {traj.object_id}: {len(traj.center_x)} steps, expected {steps}",
                                      path=p, record=si, field="center_x")
                xy[r, a, :, 0] = traj.center_x
                xy[r, a, :, 1] = traj.center_y
                heading[r, a] = traj.heading
        if not (np.isfinite(xy).all() and np.isfinite(heading).all()):
            raise SchemaError("a rollout holds a non-finite coordinate", path=p, record=si, field="center_x")
        out.append(ScenarioRollouts(sr.scenario_id, np.asarray(ids0, np.int64), xy, heading))
    return out


def rollout_metrics(rollouts: ScenarioRollouts, scenario: Scenario) -> Dict[str, object]:
    """Per-object and mean minADE / minFDE / miss rate / APD with K = R rollouts.

    Ground truth: the log's positions at steps ``current_index + 1 ... + T``;
    objects whose id is not in the log raise SchemaError.
    """
    if rollouts.scenario_id != scenario.scenario_id:
        raise SchemaError(f"rollouts are for scenario {rollouts.scenario_id}, the log is {scenario.scenario_id}",
                          path=scenario.source, field="scenario_id")
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

    return {"scenario_id": scenario.scenario_id, "num_objects": int(len(rows)), "k": rollouts.num_rollouts,
            "minADE": mean(m.min_ade), "minFDE": mean(m.min_fde), "miss_rate": mean(m.miss_rate()),
            "APD": mean(m.apd), "APD_flat": mean(m.apd_flat),
            "per_object": {"object_id": rollouts.object_ids.tolist(), "minADE": m.min_ade.tolist(),
                           "APD": m.apd.tolist()}}
