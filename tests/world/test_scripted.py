"""Scripted traffic policies by name (the env's ``agents=`` and the learned agents' fallback)."""

from __future__ import annotations

import pytest

from mad_sim.errors import ConfigError
from mad_sim.world.idm import IDM
from mad_sim.world.scripted import SCRIPTED_POLICIES, make_scripted_policy
from mad_sim.world.traffic import ConstantVelocity, LogReplay, TrafficPolicy


def test_each_name_builds_its_policy() -> None:
    expected = {"log": LogReplay, "constant_velocity": ConstantVelocity, "idm": IDM}
    assert set(SCRIPTED_POLICIES) == set(expected)
    for name, cls in expected.items():
        a, b = make_scripted_policy(name), make_scripted_policy(name)
        assert type(a) is cls and isinstance(a, TrafficPolicy)
        assert a is not b  # a fresh policy each time: IDM keeps per-scenario state


def test_unknown_name_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="'IDM'.*constant_velocity, idm, log"):
        make_scripted_policy("IDM")
