"""mad_sim.registry: one registry style for agent policies, planners and training stages."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mad_sim.errors import ConfigError
from mad_sim.registry import Registry


@dataclass
class Knobs:
    size: int = 64
    name: str = "x"

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"size={self.size} must be >= 1")


def test_settings_are_validated_into_the_dataclass():
    reg: Registry[tuple] = Registry("widget")
    reg.register("w", lambda prefix, s: (prefix, s), settings=Knobs)
    assert reg.make("w", "p", size=3) == ("p", Knobs(size=3))
    assert reg.make("w", "p") == ("p", Knobs())
    assert reg.settings("w", Knobs(size=5)) == Knobs(size=5)  # an instance passes as it is
    with pytest.raises(ConfigError, match="unknown config key 'sise'"):
        reg.make("w", "p", sise=3)
    with pytest.raises(ConfigError, match="size.*expected an integer"):
        reg.make("w", "p", size="big")
    with pytest.raises(ConfigError, match="size=0"):
        reg.make("w", "p", size=0)


def test_plain_factories_get_checked_keywords():
    reg: Registry[dict] = Registry("widget")
    reg.register("plain", lambda a=1, b=2: {"a": a, "b": b})
    assert reg.make("plain", b=5) == {"a": 1, "b": 5}
    with pytest.raises(ConfigError, match="widget 'plain'.*c"):
        reg.make("plain", c=1)
    with pytest.raises(ConfigError, match="takes no settings"):
        reg.settings("plain", {"a": 1})


def test_names_and_conflicts():
    reg: Registry[int] = Registry("widget")
    f = lambda: 1  # noqa: E731
    reg.register("b", f)
    reg.register("a", f)
    reg.register("a", f)  # the same factory again: fine
    assert reg.names() == ["a", "b"] and "a" in reg and list(reg) == ["a", "b"]
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("a", lambda: 2)
    reg.register("a", lambda: 2, overwrite=True)
    assert reg.make("a") == 2
    with pytest.raises(ConfigError, match=r"key 'k': unknown widget 'zz' \(known: a, b\)"):
        reg.entry("zz", "key 'k': ")
    with pytest.raises(ConfigError, match="must be a dataclass"):
        reg.register("c", f, settings=int)


def test_the_three_registries_share_the_style():
    from mad_sim.envs.agents import AGENT_POLICIES
    from mad_sim.planners import PLANNERS, MADPlannerSettings

    from mad_sim.cli.train import STAGES, TRAINING_STAGES
    from mad_sim.model.agents.settings import LearnedAgentSettings

    assert {"log", "idm", "constant_velocity", "mad"} <= set(AGENT_POLICIES.names())
    assert AGENT_POLICIES.entry("mad").settings is LearnedAgentSettings
    assert {"cv", "idm", "expert", "mad"} <= set(PLANNERS.names())
    assert PLANNERS.entry("mad").settings is MADPlannerSettings
    assert set(STAGES) == {"vae", "base", "motion", "appearance"} == set(TRAINING_STAGES.names())
    for reg in (AGENT_POLICIES, PLANNERS, TRAINING_STAGES):
        assert isinstance(reg, Registry)
