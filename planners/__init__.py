"""Planners that propose K ego trajectories (installed as mad_sim.planners).

``make_planner(name, **settings)`` builds a planner by name from :data:`PLANNERS`
(a :class:`mad_sim.registry.Registry`): ``cv`` (alias ``constant_velocity``),
``idm``, ``expert`` and ``mad`` (the world model; its settings
:class:`~mad_sim.planners.mad.MADPlannerSettings`, validated: unknown keys and
wrong types are a ConfigError naming the key).  The scripted ones take their
constructor's keywords (``make_planner("cv", yaw_step=0.05)``).  A new planner
registers itself with ``PLANNERS.register(name, factory, settings=...)``.
:class:`RecedingHorizonDriver` drives ``MADDrive-v0`` with any of them.
"""

from __future__ import annotations

from typing import Any

from mad_sim.planners.base import Plan, Planner, PlanningContext, build_context, context_from_scenario
from mad_sim.planners.constant_velocity import ConstantVelocityPlanner
from mad_sim.planners.expert import ExpertPlanner
from mad_sim.planners.mad import MADPlannerSettings

from mad_sim.registry import Registry

PLANNERS: Registry[Planner] = Registry("planner")
"""Planner name -> factory (and settings dataclass)."""


def _idm(**kwargs: Any) -> Planner:
    from mad_sim.planners.idm import IDMPlanner

    return IDMPlanner(**kwargs)


def _mad(settings: MADPlannerSettings) -> Planner:
    from mad_sim.planners.mad import MADPlanner  # the world model's imagined futures (torch when built)

    return MADPlanner(settings)


PLANNERS.register("cv", ConstantVelocityPlanner)
PLANNERS.register("constant_velocity", ConstantVelocityPlanner)
PLANNERS.register("idm", _idm)
PLANNERS.register("expert", ExpertPlanner)
PLANNERS.register("mad", _mad, settings=MADPlannerSettings)


def make_planner(name: str, **settings: Any) -> Planner:
    """A planner by name with its settings (see the module doc); ConfigError for an unknown name or setting."""
    return PLANNERS.make(name, **settings)


__all__ = [
    "ConstantVelocityPlanner",
    "ExpertPlanner",
    "MADPlannerSettings",
    "Plan",
    "Planner",
    "PlanningContext",
    "PLANNERS",
    "build_context",
    "context_from_scenario",
    "make_planner",
]
