"""``SimAgentsChallengeSubmission`` files (binary protobuf, the schema of ``mad_sim/data/proto/sim_agents_submission.proto``).

A submission holds, per scenario, ``R`` joint scenes of simulated
trajectories: per object ``center_x / center_y / center_z / heading``, one
entry per future step (80 for WOSAC: steps ``current_index + 1 ...`` at
10 Hz), world frame, metres and radians.  :func:`read_submission` turns one
into :class:`~.rollout_set.SimRollouts` (checking that every rollout lists
the same objects and every trajectory has the same, finite length);
:func:`write_submission` writes rollouts back out, so Waymo's own scorer can
read what mad-sim simulated.

A benchmark run exports one submission per policy the way Waymo's are made:
shards ``NAME.binproto-00000-of-00003`` of at most ``SCENARIOS_PER_SHARD``
scenarios each (:func:`write_submission_shards`).  They are assembled from
per-scenario part files without holding all rollouts in memory: a protobuf
message's serialization concatenated with another's parses as the merge of
the two (repeated ``scenario_rollouts`` appended), so a shard is the header
(type, method name, authors, description) followed by the parts' bytes.
:func:`read_submission` reads a list of shard files as one submission.
"""

from __future__ import annotations

import os
import shutil
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np
from mad_sim.eval.sim_agents.rollout_set import SimRollouts

from mad_sim.errors import DataNotFoundError, SchemaError
from mad_sim.io import atomic_path, write_bytes_atomic

PathLike = Union[str, "os.PathLike[str]"]


def _parse(path: PathLike):  # type: ignore[no-untyped-def]
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
    if not msg.scenario_rollouts:
        raise SchemaError("not a SimAgentsChallengeSubmission (no scenario_rollouts)", path=p, field="scenario_rollouts")
    return msg


SCENARIOS_PER_SHARD = 64
"""Scenarios per exported shard file (about 2 MB per scenario of 50 objects x 32 rollouts x 80 steps)."""


def read_submission(path: Union[PathLike, Sequence[PathLike]]) -> List[SimRollouts]:
    """Every scenario's rollouts in the file (or in every file of a list of shards, in order);
    SchemaError names the scenario / rollout / object at fault."""
    if not isinstance(path, (str, os.PathLike)):
        return [ro for one in path for ro in read_submission(one)]
    p = os.fspath(path)
    out = []
    for si, sr in enumerate(_parse(p).scenario_rollouts):
        if not sr.joint_scenes:
            raise SchemaError(f"scenario {sr.scenario_id!r} has no rollouts", path=p, record=si, field="joint_scenes")
        ids0 = [t.object_id for t in sr.joint_scenes[0].simulated_trajectories]
        if not ids0:
            raise SchemaError(
                f"scenario {sr.scenario_id!r}: rollout 0 has no objects", path=p, record=si, field="simulated_trajectories"
            )
        steps = len(sr.joint_scenes[0].simulated_trajectories[0].center_x)
        r, a = len(sr.joint_scenes), len(ids0)
        xyz = np.zeros((r, a, steps, 3))
        heading = np.zeros((r, a, steps))
        for ri, scene in enumerate(sr.joint_scenes):
            ids = [t.object_id for t in scene.simulated_trajectories]
            if ids != ids0:
                raise SchemaError(
                    f"scenario {sr.scenario_id!r}: rollout {ri} lists other objects than rollout 0",
                    path=p,
                    record=si,
                    field="simulated_trajectories.object_id",
                )
            for ai, traj in enumerate(scene.simulated_trajectories):
                n = {len(traj.center_x), len(traj.center_y), len(traj.heading)}
                nz = len(traj.center_z)
                if n != {steps} or nz not in (0, steps):
                    raise SchemaError(
                        f"scenario {sr.scenario_id!r}: rollout {ri}, object {traj.object_id}: "
                        f"{len(traj.center_x)} steps, expected {steps}",
                        path=p,
                        record=si,
                        field="center_x",
                    )
                xyz[ri, ai, :, 0] = traj.center_x
                xyz[ri, ai, :, 1] = traj.center_y
                if nz:
                    xyz[ri, ai, :, 2] = traj.center_z
                heading[ri, ai] = traj.heading
        bad = ~(np.isfinite(xyz).all(-1) & np.isfinite(heading))
        if bad.any():
            ri, ai, ti = np.argwhere(bad)[0]
            raise SchemaError(
                f"scenario {sr.scenario_id!r}: rollout {ri}, object {ids0[ai]}, step {ti} is not finite",
                path=p,
                record=si,
                field="center_x",
            )
        out.append(SimRollouts(sr.scenario_id, np.asarray(ids0, np.int64), xyz, heading))
    return out


def submission_bytes(
    rollouts: Iterable[SimRollouts],
    method_name: str = "mad-sim",
    authors: Sequence[str] = (),
    description: Optional[str] = None,
    header: bool = True,
) -> bytes:
    """The serialized submission of ``rollouts`` (``submission_type = SIM_AGENTS_SUBMISSION``);
    ``header=False``: the ``scenario_rollouts`` only (a part for :func:`write_submission_shards`)."""
    from mad_sim.data.proto import sim_agents_submission_pb2 as pb

    msg = pb.SimAgentsChallengeSubmission()
    if header:
        msg.submission_type = pb.SimAgentsChallengeSubmission.SIM_AGENTS_SUBMISSION
        msg.unique_method_name = method_name
        msg.authors.extend(authors)
        if description:
            msg.description = description
    for ro in rollouts:
        ro.check_shapes()
        sr = msg.scenario_rollouts.add(scenario_id=ro.scenario_id)
        for r in range(ro.num_rollouts):
            scene = sr.joint_scenes.add()
            for a, oid in enumerate(ro.object_ids):
                scene.simulated_trajectories.add(
                    object_id=int(oid),
                    center_x=ro.xyz[r, a, :, 0].tolist(),
                    center_y=ro.xyz[r, a, :, 1].tolist(),
                    center_z=ro.xyz[r, a, :, 2].tolist(),
                    heading=ro.heading[r, a].tolist(),
                )
    return msg.SerializeToString()


def write_submission(path: PathLike, rollouts: Iterable[SimRollouts], **kwargs: object) -> None:
    """Write ``rollouts`` as a submission file (atomically); keywords as :func:`submission_bytes`."""
    write_bytes_atomic(path, submission_bytes(rollouts, **kwargs))  # type: ignore[arg-type]


def write_submission_part(path: PathLike, rollouts: SimRollouts) -> None:
    """One scenario's rollouts as a headerless part file for :func:`write_submission_shards`."""
    write_bytes_atomic(path, submission_bytes([rollouts], header=False))


def write_submission_shards(
    out_dir: PathLike,
    name: str,
    parts: Sequence[PathLike],
    per_shard: int = SCENARIOS_PER_SHARD,
    method_name: Optional[str] = None,
    authors: Sequence[str] = (),
    description: Optional[str] = None,
) -> List[str]:
    """Assemble the part files (in order) into ``OUT_DIR/NAME.binproto-KKKKK-of-NNNNN`` shards of at most
    ``per_shard`` scenarios; returns the shard paths.  The parts are left in place."""
    if per_shard < 1:
        raise SchemaError(f"per_shard must be positive, got {per_shard}", path=os.fspath(out_dir))
    head = submission_bytes([], method_name=method_name or name, authors=authors, description=description)
    groups = [list(parts[i : i + per_shard]) for i in range(0, len(parts), per_shard)]
    paths = []
    for k, group in enumerate(groups):
        path = os.path.join(os.fspath(out_dir), f"{name}.binproto-{k:05d}-of-{len(groups):05d}")
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            out.write(head)
            for part in group:
                with open(os.fspath(part), "rb") as f:
                    shutil.copyfileobj(f, out)
        paths.append(path)
    return paths
