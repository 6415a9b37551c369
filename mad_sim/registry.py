"""`Registry`: things made by name (agent policies, planners, training stages), one style for all.

Each entry is a factory and, optionally, the settings dataclass it takes::

    PLANNERS = Registry("planner")
    PLANNERS.register("mad", make_mad_planner, settings=MADPlannerSettings)
    PLANNERS.make("mad", weights="random", size=64)   # make_mad_planner(MADPlannerSettings(weights="random", size=64))

``make(name, *args, **options)`` validates ``options`` into the entry's
settings dataclass (:func:`mad_sim.config.from_dict`: unknown keys and wrong
types are a :class:`~mad_sim.errors.ConfigError` naming the key) and calls
``factory(*args, settings)``; an entry without a settings class is called as
``factory(*args, **options)`` after checking the keywords against its
signature.  Unknown names are a ConfigError listing the known ones.

Nothing here imports torch: factories import what they build when called.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generic, Iterator, List, Mapping, Optional, TypeVar

from mad_sim.config import from_dict
from mad_sim.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: ``factory`` builds it; ``settings`` is the dataclass of its options (or None)."""

    name: str
    factory: Callable[..., T]
    settings: Optional[type] = None


class Registry(Generic[T]):
    """Name -> :class:`Entry`; ``kind`` words the errors (``unknown planner 'x' (known: ...)``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: Dict[str, Entry[T]] = {}

    def register(self, name: str, factory: Callable[..., T], *, settings: Optional[type] = None, overwrite: bool = False) -> None:
        """Make ``name`` build with ``factory``; ConfigError if taken by another factory (unless ``overwrite``)."""
        if settings is not None and not dataclasses.is_dataclass(settings):
            raise ConfigError(f"{self.kind} {name!r}: settings must be a dataclass, got {settings!r}")
        old = self._entries.get(name)
        if old is not None and not overwrite and (old.factory is not factory or old.settings is not settings):
            raise ConfigError(f"{self.kind} {name!r} is already registered (pass overwrite=True to replace it)")
        self._entries[name] = Entry(name, factory, settings)

    def names(self) -> List[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def entry(self, name: str, what: str = "") -> Entry[T]:
        """The entry of ``name``; ConfigError naming the known ones otherwise (``what`` prefixes it, e.g. a key)."""
        if name not in self._entries:
            raise ConfigError(f"{what}unknown {self.kind} {name!r} (known: {', '.join(self.names())})")
        return self._entries[name]

    def settings(self, name: str, options: Any = None, source: str = "") -> Any:
        """``options`` (a mapping, or already an instance of the settings class) validated into the settings
        of ``name``; None for an entry without settings (then ``options`` must be empty)."""
        e = self.entry(name)
        src = source or f"{self.kind} {name!r} settings"
        if e.settings is None:
            if options:
                raise ConfigError(f"{src}: {self.kind} {name!r} takes no settings, got {sorted(dict(options))}")
            return None
        if isinstance(options, e.settings):
            return options
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError(f"{src}: expected a mapping or {e.settings.__name__}, got {type(options).__name__}")
        return from_dict(dict(options or {}), e.settings, source=src)

    def make(self, name: str, *args: Any, **options: Any) -> T:
        """Build ``name`` (see the module doc)."""
        e = self.entry(name)
        if e.settings is not None:
            return e.factory(*args, self.settings(name, options))
        if options:
            try:
                inspect.signature(e.factory).bind(*args, **options)
            except TypeError as exc:
                raise ConfigError(f"{self.kind} {name!r}: {exc}") from None
        return e.factory(*args, **options)


__all__ = ["Entry", "Registry"]
