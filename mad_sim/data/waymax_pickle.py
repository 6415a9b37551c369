"""Reading pickled Waymax ``SimulatorState`` objects without waymax or jax, safely.

A Waymax state pickle (``pickle.dump(state)`` of a ``waymax.datatypes``
``SimulatorState``, as GPUDrive ships them) references exactly these globals
(listed with :mod:`pickletools` over the 38 files of ``corpus/waymax``):

* the chex dataclasses ``waymax.datatypes.simulator_state.SimulatorState``,
  ``waymax.datatypes.object_state.Trajectory`` / ``ObjectMetadata``,
  ``waymax.datatypes.roadgraph.RoadgraphPoints`` and
  ``waymax.datatypes.traffic_lights.TrafficLights``, each pickled as
  ``NEWOBJ`` (no arguments) + ``BUILD`` with a ``{field: value}`` dict;
  ``waymax.datatypes.route.Paths`` (the optional ``sdc_paths``, ``None`` in
  every corpus file) is allowed too;
* ``jax._src.array._reconstruct_array(fun, args, arr_state, aval_state)``,
  how a ``jax.Array`` pickles itself: ``fun(*args)`` is
  ``numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b"b")``, the
  empty array that ``ndarray.__setstate__(arr_state)`` then fills;
  ``aval_state`` (``weak_type``, ``named_shape``) is jax metadata, dropped;
* ``numpy.ndarray``, ``numpy.dtype``, ``numpy.core.multiarray._reconstruct``
  (the base allow-list of :mod:`mad_sim.data.scenarionet`).

:class:`WaymaxUnpickler` extends the base :class:`SafeUnpickler` with these:
the dataclasses become :class:`WaymaxRecord` instances (plain attribute
records carrying the Waymax class name, no Waymax code), jax arrays become
numpy arrays.  Any other global raises
:class:`~mad_sim.errors.UnsafePickleError` naming the file and the global,
before anything is imported or called.

:func:`is_waymax_pickle` tells a Waymax pickle from other pickles by its first
global reference, without unpickling.
"""

from __future__ import annotations

import os
import pickle
import pickletools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from mad_sim.data.safe_pickle import ALLOWED_GLOBALS, SafeUnpickler, safe_load
from mad_sim.data.tfrecord import PathLike
from mad_sim.errors import (
    UnsafePickleError,
)

try:  # numpy >= 2 moved the pickling helpers to numpy._core
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

__all__ = ["WAYMAX_CLASSES", "WaymaxRecord", "WaymaxUnpickler", "is_waymax_pickle", "load_waymax_state"]

WAYMAX_CLASSES: dict[tuple[str, str], tuple[str, ...]] = {
    ("waymax.datatypes.simulator_state", "SimulatorState"): (
        "sim_trajectory",
        "log_trajectory",
        "log_traffic_light",
        "object_metadata",
        "timestep",
        "sdc_paths",
        "roadgraph_points",
    ),
    ("waymax.datatypes.object_state", "Trajectory"): (
        "x",
        "y",
        "z",
        "vel_x",
        "vel_y",
        "yaw",
        "valid",
        "timestamp_micros",
        "length",
        "width",
        "height",
    ),
    ("waymax.datatypes.object_state", "ObjectMetadata"): (
        "ids",
        "object_types",
        "is_sdc",
        "is_modeled",
        "is_valid",
        "objects_of_interest",
        "is_controlled",
    ),
    ("waymax.datatypes.roadgraph", "RoadgraphPoints"): ("x", "y", "z", "dir_x", "dir_y", "dir_z", "types", "ids", "valid"),
    ("waymax.datatypes.traffic_lights", "TrafficLights"): ("x", "y", "z", "state", "lane_ids", "valid"),
    ("waymax.datatypes.route", "Paths"): ("x", "y", "z", "ids", "valid", "arc_length", "on_route"),
}
"""The Waymax dataclasses a pickle may hold, with their fields in declaration order (waymax/datatypes/*.py)."""


if TYPE_CHECKING:  # typing.Self is Python >= 3.11 (we support 3.10): imported for type checkers only
    from typing_extensions import Self


class WaymaxRecord:
    """A plain record standing in for one Waymax dataclass instance (no Waymax code behind it).

    ``waymax_class`` is the dataclass's name (``"Trajectory"``...); the fields
    are ordinary attributes.  Accepts what a pickle can hand a class: ``NEWOBJ``
    / ``REDUCE`` arguments (positional ones in the dataclass's field order,
    keywords by name) and a ``BUILD`` state (a dict, or a ``(dict, slots)`` pair).
    """

    waymax_class: str = "WaymaxRecord"
    fields: tuple[str, ...] = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:  # NEWOBJ calls cls.__new__(cls, *args)
        obj = super().__new__(cls)
        obj._fill(args, kwargs)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls cls(*args): the same fields again
        self._fill(args, kwargs)

    def _fill(self, args: tuple, kwargs: dict) -> None:
        if len(args) > len(self.fields):
            raise pickle.UnpicklingError(f"{self.waymax_class} takes at most {len(self.fields)} fields, got {len(args)}")
        self._update(dict(zip(self.fields, args)))
        self._update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:
            for part in state:
                if part is not None:
                    self._update(part)
        else:
            self._update(state)

    def _update(self, values: Any) -> None:
        if not isinstance(values, dict):
            raise pickle.UnpicklingError(f"{self.waymax_class} state is a {type(values).__name__}, not a dict")
        for key in values:
            if not isinstance(key, str) or key.startswith("_") or key in ("waymax_class", "fields"):
                raise pickle.UnpicklingError(f"{self.waymax_class} state has an invalid field name {key!r}")
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"<{self.waymax_class} {sorted(self.__dict__)}>"


def _record_class(name: str, fields: tuple[str, ...]) -> type:
    return type(name, (WaymaxRecord,), {"waymax_class": name, "fields": fields, "__module__": __name__})


_RECORDS: dict[tuple[str, str], type] = {key: _record_class(key[1], fields) for key, fields in WAYMAX_CLASSES.items()}


def _reconstruct_array(fun: Any, args: Any, arr_state: Any, aval_state: Any = None) -> np.ndarray:
    """numpy stand-in for ``jax._src.array._reconstruct_array``: the array jax would put on a device.

    Only numpy's own reconstruction (``_reconstruct(ndarray, ...)``) is accepted as ``fun``, and the
    result must be a plain numeric array (jax has no object arrays).
    """
    if fun is not _multiarray._reconstruct or not isinstance(args, tuple) or not args or args[0] is not np.ndarray:
        raise pickle.UnpicklingError("jax array is not rebuilt by numpy.core.multiarray._reconstruct(numpy.ndarray, ...)")
    arr = cast(np.ndarray, fun(*args))
    arr.__setstate__(arr_state)
    if arr.dtype.hasobject:
        raise pickle.UnpicklingError(f"jax array of dtype {arr.dtype} (object arrays are not jax arrays)")
    return arr


WAYMAX_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    **ALLOWED_GLOBALS,
    **_RECORDS,
    ("jax._src.array", "_reconstruct_array"): _reconstruct_array,
}
"""``(module, name)`` pairs a Waymax pickle may reference: the base allow-list, the dataclasses, the jax array."""


class WaymaxUnpickler(SafeUnpickler):
    """:class:`SafeUnpickler` that also resolves :data:`WAYMAX_GLOBALS` (nothing is imported)."""

    def find_class(self, module: str, name: str) -> Any:
        found = WAYMAX_GLOBALS.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"refused global {module}.{name} (only Waymax datatypes, jax/numpy arrays and builtins are allowed)",
                path=self.source,
                record=0,
            )
        return found


def load_waymax_state(path: PathLike) -> Any:
    """Unpickle ``path`` with :class:`WaymaxUnpickler`: a :class:`WaymaxRecord` tree of numpy arrays.

    Raises DataNotFoundError (no file), UnsafePickleError (a global off the allow-list),
    TruncatedRecordError (empty, or ends early), CorruptRecordError (anything else unreadable).
    """
    return safe_load(path, WaymaxUnpickler, "Waymax pickle")


_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_NO_PUSH_OPS = {"PROTO", "FRAME", "MEMOIZE", *_PUT_OPS}
SNIFF_MAX_OPCODES = 10_000
""":func:`is_waymax_pickle` gives up (False) when no global appears within this many opcodes."""


def first_global(path: PathLike) -> tuple[str, str] | None:
    """``(module, name)`` of the first GLOBAL / STACK_GLOBAL of the pickle in ``path``, or None.

    Scans opcodes with :func:`pickletools.genops` (nothing is unpickled); for STACK_GLOBAL the
    module and name are the two values pushed before it, strings or memo fetches of strings.
    None for a file that is not a pickle, holds no global in its first :data:`SNIFF_MAX_OPCODES`
    opcodes, or whose STACK_GLOBAL operands are not known strings.
    """
    memo: dict[Any, Any] = {}
    pushed: list = []  # values pushed by the opcodes seen (a string, or None for anything else)
    try:
        with open(os.fspath(path), "rb") as f:
            for count, (op, arg, _pos) in enumerate(pickletools.genops(f)):
                if count >= SNIFF_MAX_OPCODES:
                    return None
                name = op.name
                if name == "GLOBAL":
                    module, _, attr = str(arg).partition(" ")
                    return module, attr
                if name == "STACK_GLOBAL":
                    if len(pushed) < 2 or not isinstance(pushed[-2], str) or not isinstance(pushed[-1], str):
                        return None
                    return pushed[-2], pushed[-1]
                if name == "MEMOIZE":
                    memo[len(memo)] = pushed[-1] if pushed else None
                elif name in _PUT_OPS:
                    memo[arg] = pushed[-1] if pushed else None
                elif name in _STRING_OPS:
                    pushed.append(arg if isinstance(arg, str) else None)
                elif name in _GET_OPS:
                    pushed.append(memo.get(arg))
                elif name not in _NO_PUSH_OPS:
                    pushed.append(None)
                del pushed[:-2]  # only the last two matter
    except Exception:  # noqa: BLE001  (not a pickle: genops raises ValueError on a bad opcode, others on odd operands)
        return None
    return None


def is_waymax_pickle(path: PathLike) -> bool:
    """True when the first global the pickle in ``path`` references lives in a ``waymax.`` module.

    Cheap and content-based: only the opcodes up to that first global are read (see
    :func:`first_global`); the file is never unpickled.
    """
    ref = first_global(path)
    return ref is not None and ref[0].startswith("waymax.")
