"""Planners that propose K ego trajectories (installed as mad_sim.planners).

``make_planner(name)`` builds ``cv`` / ``constant_velocity``, ``idm`` or
``expert``; :class:`RecedingHorizonDriver` drives ``MADDrive-v0`` with any of them.
"""

from __future__ import annotations

from mad_sim.errors import ConfigError
from mad_sim.planners.base import Plan, Planner, PlanningContext, build_context, context_from_scenario
from mad_sim.planners.constant_velocity import ConstantVelocityPlanner
from mad_sim.planners.expert import ExpertPlanner

PLANNERS = ("cv", "idm", "expert", "mad")


def make_planner(name: str) -> Planner:
    """A planner by name: ``cv`` (alias ``constant_velocity``), ``idm``, ``expert``, ``mad``."""
    if name in ("cv", "constant_velocity"):
        return ConstantVelocityPlanner()
    if name == "idm":
        from mad_sim.planners.idm import IDMPlanner

        return IDMPlanner()
    if name == "expert":
        return ExpertPlanner()
    if name == "mad":  # the world model's imagined futures (imports torch only when asked for)
        from mad_sim.planners.mad import MADPlanner

        return MADPlanner()
    raise ConfigError(f"unknown planner {name!r} (known: {', '.join(PLANNERS)})")


__all__ = ["ConstantVelocityPlanner", "ExpertPlanner", "Plan", "Planner", "PlanningContext", "PLANNERS",
           "build_context", "context_from_scenario", "make_planner"]
