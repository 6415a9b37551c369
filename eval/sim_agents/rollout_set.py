"""`SimRollouts`: one scenario's joint rollouts, and the checks that tie them to their log.

A rollout set holds ``R`` joint scenes of the same ``A`` objects over ``T``
future steps (step ``k`` = log step ``current_index + 1 + k``, 10 Hz), world
frame: ``xyz [R, A, T, 3]`` box centres in metres, ``heading [R, A, T]`` in
radians.  Every object is present at every step (as WOSAC requires of a
submission: an object that leaves the scene in simulation stays where it
was last).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from mad_sim.data.scenario import Scenario
from mad_sim.errors import SchemaError, ShapeError


@dataclass
class SimRollouts:
    """One scenario's rollouts (see the module docstring); ``info`` carries free-form provenance (policy, seeds)."""

    scenario_id: str
    object_ids: np.ndarray
    xyz: np.ndarray
    heading: np.ndarray
    info: Dict[str, object] = field(default_factory=dict)

    @property
    def num_rollouts(self) -> int:
        return int(self.xyz.shape[0])

    @property
    def num_objects(self) -> int:
        return int(self.xyz.shape[1])

    @property
    def num_steps(self) -> int:
        return int(self.xyz.shape[2])

    @property
    def xy(self) -> np.ndarray:
        """``[R, A, T, 2]`` view of the centres' x, y."""
        return self.xyz[..., :2]

    def check_shapes(self, source: Optional[str] = None) -> None:
        """ShapeError unless the arrays agree and are finite."""
        r, a, t = self.heading.shape if self.heading.ndim == 3 else (-1, -1, -1)
        if self.xyz.shape != (r, a, t, 3) or self.object_ids.shape != (a,):
            raise ShapeError(
                f"{source or self.scenario_id}: rollouts must be xyz [R, A, T, 3], heading [R, A, T], "
                f"object_ids [A]; got {self.xyz.shape}, {self.heading.shape}, {self.object_ids.shape}"
            )
        bad = ~(np.isfinite(self.xyz).all(-1) & np.isfinite(self.heading))
        if bad.any():
            ri, ai, ti = np.argwhere(bad)[0]
            raise ShapeError(
                f"{source or self.scenario_id}: rollout {ri}, object {int(self.object_ids[ai])}, "
                f"step {ti} is not finite (NaN or inf)"
            )


def sim_agent_rows(scenario: Scenario) -> np.ndarray:
    """Track indices of the objects WOSAC simulates: every object valid at ``current_index``."""
    return np.flatnonzero(scenario.tracks.valid[:, scenario.current_index])


def evaluated_ids(scenario: Scenario) -> np.ndarray:
    """Object ids WOSAC scores, sorted: the self-driving car and the ``tracks_to_predict``."""
    rows = {int(scenario.sdc_index)} | {int(i) for i in scenario.tracks_to_predict}
    return np.array(sorted(int(scenario.track_ids[i]) for i in rows), np.int64)


def check_rollouts(rollouts: SimRollouts, scenario: Scenario, source: Optional[str] = None) -> np.ndarray:
    """Check ``rollouts`` against their log; returns the track index of every rollout object ``[A]``.

    SchemaError when the rollouts are for another scenario, miss an object valid
    at the current step or hold one that is not; ShapeError for inconsistent
    shapes, non-finite values, or more steps than the log has after its
    current step.
    """
    src = source or scenario.source or scenario.scenario_id
    if rollouts.scenario_id != scenario.scenario_id:
        raise SchemaError(
            f"rollouts are for scenario {rollouts.scenario_id}, the log is {scenario.scenario_id}", path=src, field="scenario_id"
        )
    rollouts.check_shapes(src)
    index = {int(i): n for n, i in enumerate(scenario.track_ids)}
    need = {int(scenario.track_ids[i]) for i in sim_agent_rows(scenario)}
    have = [int(i) for i in rollouts.object_ids]
    if len(set(have)) != len(have):
        raise SchemaError("an object id appears twice in the rollouts", path=src, field="object_id")
    extra = sorted(set(have) - need)
    missing = sorted(need - set(have))
    if extra:
        raise SchemaError(
            f"objects {extra[:5]} are not valid at the current step of the log (not sim agents)", path=src, field="object_id"
        )
    if missing:
        raise SchemaError(
            f"sim agents {missing[:5]} (valid at the current step) are missing from the rollouts", path=src, field="object_id"
        )
    left = scenario.num_steps - 1 - scenario.current_index
    if rollouts.num_steps > left or rollouts.num_steps < 1:
        raise ShapeError(f"{src}: rollouts have {rollouts.num_steps} steps, the log has {left} after its current step")
    return np.array([index[i] for i in have], np.int64)
