"""An allow-list unpickler for pickles from outside (ScenarioNet, MetaDrive, Waymax).

Pickle can run arbitrary code, so such files are loaded by
:class:`SafeUnpickler`, which resolves only :data:`ALLOWED_GLOBALS` (numpy
arrays, dtypes and scalars, ``collections.defaultdict`` / ``OrderedDict``,
builtin containers and scalars, and MetaDrive's ``ScenarioDescription``, a
``dict`` subclass that is read as a plain ``dict``).  Anything else raises
:class:`~mad_sim.errors.UnsafePickleError` before it is imported or called.

:mod:`mad_sim.data.scenarionet` re-exports every name here.
"""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from mad_sim.data.tfrecord import PathLike
from mad_sim.errors import (
    CorruptRecordError,
    DataNotFoundError,
    TruncatedRecordError,
    UnsafePickleError,
)

try:  # numpy >= 2 moved the pickling helpers to numpy._core
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

_BUILTINS = ("int", "float", "complex", "bool", "str", "bytes", "bytearray", "list", "tuple", "dict", "set",
             "frozenset", "slice", "range")

ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    **{("builtins", n): getattr(builtins, n) for n in _BUILTINS},
    **{("__builtin__", n): getattr(builtins, n) for n in _BUILTINS},  # protocol-2 pickles from Python 2
    ("collections", "defaultdict"): collections.defaultdict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    # MetaDrive <= 0.3 pickled its scenario dicts as this dict subclass (no extra state): read it as a dict.
    ("metadrive.scenario.scenario_description", "ScenarioDescription"): dict,
}
"""``(module, name)`` pairs a pickle may reference, and what they resolve to."""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (nothing is imported)."""

    def __init__(self, file: io.BufferedIOBase, source: str = "<pickle>") -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refused global {module}.{name} (only numpy arrays and builtins are allowed)",
                                    path=self.source, record=0) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused persistent id", path=self.source, record=0)


def safe_load(path: PathLike, unpickler: "type[SafeUnpickler] | None" = None, what: str = "pickle") -> Any:
    """Unpickle ``path`` with ``unpickler`` (default :class:`SafeUnpickler`); every failure is a :mod:`mad_sim.errors` class.

    Raises DataNotFoundError (no file), UnsafePickleError (a global off the
    allow-list), TruncatedRecordError (empty, or ends early),
    CorruptRecordError (anything else unreadable; the message says ``what``
    the file should have been).
    """
    cls = unpickler or SafeUnpickler
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise DataNotFoundError("no such file", path=name)
    with open(name, "rb") as f:
        if not f.read(1):
            raise TruncatedRecordError("empty file: no pickle", path=name, record=0)
        f.seek(0)
        try:
            return cls(f, name).load()
        except UnsafePickleError:
            raise
        except EOFError:
            raise TruncatedRecordError("pickle ends early", path=name, record=0) from None
        except pickle.UnpicklingError as exc:
            if "truncated" in str(exc):  # how the C unpickler reports a cut inside a protocol-4 frame
                raise TruncatedRecordError(f"pickle ends early ({exc})", path=name, record=0) from None
            raise CorruptRecordError(f"not a readable {what} (UnpicklingError: {exc})", path=name, record=0) from None
        except Exception as exc:  # noqa: BLE001 - a malformed pickle can raise almost anything
            raise CorruptRecordError(f"not a readable {what} ({type(exc).__name__}: {exc})", path=name, record=0) from None
