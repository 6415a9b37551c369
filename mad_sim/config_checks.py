"""Checks shared by the config dataclasses' ``__post_init__`` (env options, learned-agent settings).

Each raises :class:`~mad_sim.errors.ConfigError` whose message starts with
``where`` (the config's name) and names the offending key and value.
Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any, Iterable

from mad_sim.errors import ConfigError


def require_frames_8k1(where: str, name: str, n: int, minimum: int = 1) -> None:
    """``n`` must be ``8k + 1 >= minimum`` (the LTX VAE compresses time 8x after the first frame)."""
    if n < minimum or (n - 1) % 8:
        raise ConfigError(f"{where}key {name!r}: must be 8k+1 >= {minimum} (9, 17, 25...: the VAE's time grid), got {n}")


def require_positive(where: str, obj: Any, names: Iterable[str]) -> None:
    """Every attribute ``names`` of ``obj`` must be > 0."""
    for name in names:
        if not getattr(obj, name) > 0:
            raise ConfigError(f"{where}key {name!r}: must be > 0, got {getattr(obj, name)!r}")


def require_choice(where: str, name: str, value: Any, choices: Iterable[Any]) -> None:
    """``value`` must be one of ``choices``."""
    options = list(choices)
    if value not in options:
        raise ConfigError(f"{where}key {name!r}: {value!r} is not one of {options}")


__all__ = ["require_choice", "require_frames_8k1", "require_positive"]
