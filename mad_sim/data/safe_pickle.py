"""An allow-list unpickler for pickles from outside (ScenarioNet, MetaDrive, Waymax).

Pickle can run arbitrary code, so such files are loaded by
:class:`SafeUnpickler`, which resolves only :data:`ALLOWED_GLOBALS` (numpy
arrays, dtypes and scalars, ``collections.defaultdict`` / ``OrderedDict``,
builtin containers and scalars, and MetaDrive's ``ScenarioDescription``, a
``dict`` subclass that is read as a plain ``dict``).  Anything else raises
:class:`~mad_sim.errors.UnsafePickleError` before it is imported or called.

:mod:`mad_sim.data.scenarionet` re-exports every name here.

A corrupted length can make the C unpickler ask for terabytes.  For the
``BYTEARRAY8`` opcode CPython (3.11 at least) then prints a spurious
``SystemError: deallocated bytearray object has exported buffers`` to stderr
before raising the MemoryError: ``PyByteArray_FromStringAndSize`` creates the
object, the buffer allocation fails, and the half-built object is released
while its ``ob_exports`` field is still uninitialised memory (it is set only
after a successful allocation), which the deallocator reads as buffers still
exported.  No buffer exists, so there is none to release: the report, which
CPython sends through ``sys.excepthook``, is held back during the load and
dropped when the load failed with that MemoryError (:func:`_load_quietly`);
any other report is passed on.  The file is still refused with
:class:`~mad_sim.errors.CorruptRecordError`.
"""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import sys
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

_BUILTINS = (
    "int",
    "float",
    "complex",
    "bool",
    "str",
    "bytes",
    "bytearray",
    "list",
    "tuple",
    "dict",
    "set",
    "frozenset",
    "slice",
    "range",
)

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
            raise UnsafePickleError(
                f"refused global {module}.{name} (only numpy arrays and builtins are allowed)", path=self.source, record=0
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused persistent id", path=self.source, record=0)


SPURIOUS_BYTEARRAY_REPORT = "deallocated bytearray object has exported buffers"
"""What CPython reports when a ``bytearray`` whose buffer could not be allocated is released (module doc)."""

_LAST_EXCEPTION = ("last_type", "last_value", "last_traceback", "last_exc")
"""The ``sys`` attributes ``PyErr_Print`` sets (``last_exc`` from Python 3.12)."""


def _load_quietly(unpickler: pickle.Unpickler) -> Any:
    """``unpickler.load()`` without CPython's spurious bytearray report on a failed allocation (module doc).

    While the load runs, ``sys.excepthook`` (which ``PyErr_Print`` calls) only records what it is given.
    Afterwards: when the load raised MemoryError, the spurious SystemError reports are dropped and the
    ``sys.last_*`` values they set are put back; every other report goes to the previous hook, in order.
    """
    held: list[tuple[Any, Any, Any]] = []
    previous = sys.excepthook
    last = {name: getattr(sys, name) for name in _LAST_EXCEPTION if hasattr(sys, name)}

    def hold(kind: Any, value: Any, tb: Any) -> None:
        held.append((kind, value, tb))

    sys.excepthook = hold
    out_of_memory = False
    try:
        return unpickler.load()
    except MemoryError:
        out_of_memory = True
        raise
    finally:
        if sys.excepthook is hold:
            sys.excepthook = previous
        passed = [h for h in held if not (out_of_memory and h[0] is SystemError and str(h[1]) == SPURIOUS_BYTEARRAY_REPORT)]
        if len(passed) < len(held):
            for name in _LAST_EXCEPTION:
                if name in last:
                    setattr(sys, name, last[name])
                elif hasattr(sys, name):
                    delattr(sys, name)
        for kind, value, tb in passed:
            previous(kind, value, tb)


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
            return _load_quietly(cls(f, name))
        except UnsafePickleError:
            raise
        except MemoryError:
            raise CorruptRecordError(
                f"not a readable {what} (a length field asks for more memory than there is: MemoryError)", path=name, record=0
            ) from None
        except EOFError:
            raise TruncatedRecordError("pickle ends early", path=name, record=0) from None
        except pickle.UnpicklingError as exc:
            if "truncated" in str(exc):  # how the C unpickler reports a cut inside a protocol-4 frame
                raise TruncatedRecordError(f"pickle ends early ({exc})", path=name, record=0) from None
            raise CorruptRecordError(f"not a readable {what} (UnpicklingError: {exc})", path=name, record=0) from None
        except Exception as exc:  # noqa: BLE001 - a malformed pickle can raise almost anything
            raise CorruptRecordError(f"not a readable {what} ({type(exc).__name__}: {exc})", path=name, record=0) from None
