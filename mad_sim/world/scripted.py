"""The scripted traffic policies by the names configs use.

``log`` (:class:`~mad_sim.world.traffic.LogReplay`), ``constant_velocity``
(:class:`~mad_sim.world.traffic.ConstantVelocity`) and ``idm``
(:class:`~mad_sim.world.idm.IDM`, default parameters): what the env's
``agents=`` key and the learned agents' ``fallback`` accept.
"""

from __future__ import annotations

from typing import Callable, Dict

from mad_sim.errors import ConfigError
from mad_sim.world.idm import IDM
from mad_sim.world.traffic import ConstantVelocity, LogReplay, TrafficPolicy

SCRIPTED_POLICIES: Dict[str, Callable[[], TrafficPolicy]] = {
    "log": LogReplay,
    "constant_velocity": ConstantVelocity,
    "idm": IDM,
}

__all__ = ["SCRIPTED_POLICIES", "make_scripted_policy"]


def make_scripted_policy(name: str) -> TrafficPolicy:
    """A new policy called ``name``; ConfigError names the known ones otherwise."""
    try:
        return SCRIPTED_POLICIES[name]()
    except KeyError:
        raise ConfigError(f"unknown scripted traffic policy {name!r} (known: {', '.join(sorted(SCRIPTED_POLICIES))})") from None
