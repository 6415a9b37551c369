"""`WorldState`: the pose-space state of the simulator at one step.

Modelled on Waymax's ``SimulatorState``: the state holds the logged
trajectory (read-only), the *simulated* trajectory ``sim`` of the same shape
``[N, T]`` (history copied from the log, the future written step by step as
the simulation advances) and the current step index.  Stepping writes one
column, copying is a handful of array copies, and batching is stacking.

Coordinates are the log's world frame (see :mod:`mad_sim.data.frames` for the
ego frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from mad_sim.data.scenario import DT, RoadMap, Scenario, Trajectory
from mad_sim.errors import SchemaError


@dataclass
class AgentStates:
    """All agents at one step, arrays ``[N, ...]`` (world frame, SI units).

    Attributes:
      xyz: [N, 3] float64 box centres.
      heading: [N] float64 yaw, radians.
      velocity: [N, 2] float64 m/s.
      size: [N, 3] float32 (length, width, height).
      valid: [N] bool.
      types: [N] int8 :class:`~mad_sim.data.scenario.ObjectType`.
    """

    xyz: np.ndarray
    heading: np.ndarray
    velocity: np.ndarray
    size: np.ndarray
    valid: np.ndarray
    types: np.ndarray

    @property
    def xy(self) -> np.ndarray:
        return self.xyz[:, :2]

    @property
    def speed(self) -> np.ndarray:
        return np.hypot(self.velocity[:, 0], self.velocity[:, 1])


@dataclass
class WorldState:
    """The simulator's state.

    Attributes:
      scenario: the log it was seeded from (never modified).
      sim: the simulated :class:`Trajectory` ``[N, T]``; columns ``<= timestep``
        are the past and present, later columns are undefined (``valid`` False).
      timestep: index of the present step.
      ego_index: track index of the controlled agent.
    """

    scenario: Scenario
    sim: Trajectory
    timestep: int
    ego_index: int

    @classmethod
    def from_scenario(cls, scenario: Scenario, ego_index: Optional[int] = None, timestep: Optional[int] = None) -> "WorldState":
        """Seed from a log: history and present copied, the future left invalid.

        Raises SchemaError if the ego has no valid state at ``timestep``.
        """
        t = scenario.current_index if timestep is None else int(timestep)
        ego = scenario.sdc_index if ego_index is None else int(ego_index)
        if not 0 <= ego < scenario.num_tracks:
            raise SchemaError(f"ego track {ego} outside [0, {scenario.num_tracks})", path=scenario.source or scenario.scenario_id)
        if not 0 <= t < scenario.num_steps:
            raise SchemaError(f"step {t} outside [0, {scenario.num_steps})", path=scenario.source or scenario.scenario_id)
        if not scenario.tracks.valid[ego, t]:
            raise SchemaError(
                f"ego track {ego} has no valid state at step {t}",
                path=scenario.source or scenario.scenario_id,
                field="tracks.valid",
            )
        sim = scenario.tracks.copy()
        sim.valid[:, t + 1 :] = False
        return cls(scenario=scenario, sim=sim, timestep=t, ego_index=ego)

    # --- views -----------------------------------------------------------------
    @property
    def roadmap(self) -> RoadMap:
        return self.scenario.roadmap

    @property
    def log(self) -> Trajectory:
        return self.scenario.tracks

    @property
    def num_agents(self) -> int:
        return self.sim.num_objects

    @property
    def time_seconds(self) -> float:
        return float(self.timestep * DT)

    @property
    def remaining_log_steps(self) -> int:
        """Steps left before the log ends (the env truncates at 0)."""
        return self.scenario.num_steps - 1 - self.timestep

    def at(self, t: Optional[int] = None) -> AgentStates:
        """All agents at step ``t`` (default: now)."""
        k = self.timestep if t is None else t
        s = self.sim
        return AgentStates(
            xyz=s.xyz[:, k],
            heading=s.heading[:, k],
            velocity=s.velocity[:, k],
            size=s.size[:, k],
            valid=s.valid[:, k],
            types=self.scenario.object_types,
        )

    def ego(self, t: Optional[int] = None) -> AgentStates:
        """The ego alone at step ``t``, as a one-agent :class:`AgentStates`."""
        a = self.at(t)
        i = slice(self.ego_index, self.ego_index + 1)
        return AgentStates(a.xyz[i], a.heading[i], a.velocity[i], a.size[i], a.valid[i], a.types[i])

    def copy(self) -> "WorldState":
        """A deep copy of the mutable part (the scenario is shared, it is never written)."""
        return WorldState(scenario=self.scenario, sim=self.sim.copy(), timestep=self.timestep, ego_index=self.ego_index)

    def write_step(
        self,
        t: int,
        xyz: np.ndarray,
        heading: np.ndarray,
        velocity: np.ndarray,
        valid: np.ndarray,
        size: Optional[np.ndarray] = None,
    ) -> None:
        """Write the states of all agents at step ``t`` (arrays ``[N, ...]``)."""
        s = self.sim
        s.xyz[:, t] = xyz
        s.heading[:, t] = heading
        s.velocity[:, t] = velocity
        s.valid[:, t] = valid
        s.size[:, t] = s.size[:, t - 1] if size is None else size
