""":func:`mad_sim.config.from_dict` on a field typed as a union of config classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import pytest

from mad_sim.config import from_dict
from mad_sim.errors import ConfigError


@dataclass
class Cat:
    lives: int = 9


@dataclass
class Dog:
    bark: bool = True


@dataclass
class InOrder:
    pet: Union[Cat, Dog] = field(default_factory=Cat)


@dataclass
class ByKind:
    kind: str = "cat"
    pet: Union[Cat, Dog] = field(default_factory=Cat)

    @classmethod
    def config_member(cls, name: str, data: Mapping[str, Any]) -> Optional[type]:
        return {"cat": Cat, "dog": Dog}.get(data.get("kind", cls.kind)) if name == "pet" else None


def test_union_members_are_tried_in_order() -> None:
    assert from_dict({"pet": {"lives": 3}}, InOrder).pet == Cat(3)
    assert from_dict({"pet": {"bark": False}}, InOrder).pet == Dog(False)
    assert from_dict({"pet": {}}, InOrder).pet == Cat()  # the first that accepts


def test_a_key_no_member_knows_is_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'pet\.purr'"):
        from_dict({"pet": {"purr": 1}}, InOrder, source="x.yaml")


def test_the_class_chooses_the_member() -> None:
    assert from_dict({"kind": "dog", "pet": {}}, ByKind).pet == Dog()
    assert from_dict({"pet": {}, "kind": "dog"}, ByKind).pet == Dog()  # key order does not matter
    assert from_dict({"pet": {}}, ByKind).pet == Cat()
    with pytest.raises(ConfigError, match=r"unknown config key 'pet\.lives'"):
        from_dict({"kind": "dog", "pet": {"lives": 3}}, ByKind)  # a Cat key is no Dog key
