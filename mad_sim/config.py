"""YAML configs validated into dataclasses.

One way to turn a mapping into a config object: :func:`from_dict`.  It walks
the dataclass's fields, recurses into nested dataclasses, checks scalar types
(ints are accepted where floats are expected, nothing else is coerced) and
rejects unknown keys with a :class:`~mad_sim.errors.ConfigError` that names the
key, its dotted path and the file it came from::

    @dataclass
    class Optim:
        lr: float = 2e-4

    @dataclass
    class Train:
        steps: int = 100
        optim: Optim = field(default_factory=Optim)

    cfg = load_config("configs/train/motion.yaml", Train)

A field typed as a union of config classes (``task: Union[MotionTask, AppearanceTask]``)
is built as the first member that accepts its mapping, unless the class says
which one: a classmethod ``config_member(name, data) -> type | None`` returns
the member for field ``name`` given the whole raw mapping ``data`` (e.g. by its
``stage`` key; None falls back to trying the members in order).  Either way an
unknown key is a ConfigError that names it.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Type, TypeVar, Union

import yaml

from mad_sim.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")  # config classes are dataclasses


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _check_value(value: Any, tp: Any, where: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for arg in args:
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_value(value, arg, where, source)
            except ConfigError as exc:  # try the next member of the union
                errors.append(f"{_type_name(arg)}: {exc}")
        raise ConfigError(f"{source}: key {where!r}: {value!r} does not match {tp} ({'; '.join(errors)})")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{source}: key {where!r}: {value!r} is not one of {list(args)}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):  # a type hint names a class, never an instance
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: key {where!r}: expected a mapping, got {type(value).__name__}")
        return from_dict(value, tp, source=source, prefix=where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: key {where!r}: expected a list, got {type(value).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{source}: key {where!r}: expected {len(args)} items, got {len(value)}")
            return tuple(_check_value(v, a, f"{where}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        out = [_check_value(v, item_tp, f"{where}[{i}]", source) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: key {where!r}: expected a mapping, got {type(value).__name__}")
        kt, vt = args if args else (Any, Any)
        return {_check_value(k, kt, where, source): _check_value(v, vt, f"{where}.{k}", source) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: key {where!r}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: key {where!r}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: key {where!r}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: key {where!r}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{source}: key {where!r}: expected {_type_name(tp)}, got {value!r}")
    return value


def _member(tp: Any, chosen: Optional[type]) -> Any:
    """``chosen`` (a member of the union ``tp``, from the class's ``config_member``) in place of ``tp``."""
    if chosen is None:
        return tp
    if chosen is not tp and chosen not in typing.get_args(tp):
        raise TypeError(f"config_member chose {_type_name(chosen)}, which is not a member of {tp}")
    return chosen


def from_dict(data: Mapping[str, Any], cls: Type[T], *, source: str = "<dict>", prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in known]
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise ConfigError(f"{source}: unknown config key {where!r} (known keys: {', '.join(sorted(known))})")
    choose = getattr(cls, "config_member", None)
    kwargs = {}
    for name, value in data.items():
        where = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _check_value(value, _member(hints[name], choose(name, data) if choose else None), where, source)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def to_dict(obj: Any) -> dict:
    """The inverse of :func:`from_dict` (tuples become lists so YAML stays plain)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(obj).items()}


def read_yaml(path: Union[str, os.PathLike]) -> dict:
    """Read a YAML mapping; a missing file or a syntax error is a ConfigError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(path: Union[str, os.PathLike], cls: Type[T], overrides: Optional[Mapping[str, Any]] = None) -> T:
    """Load YAML ``path`` into ``cls``; ``overrides`` (e.g. keyword arguments) win over the file."""
    data = read_yaml(path)
    if overrides:
        data = {**data, **overrides}
    return from_dict(data, cls, source=str(path))
