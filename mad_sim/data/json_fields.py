"""Field access for JSON scene files: required keys, finite numbers, point series, with errors that name the field."""

from __future__ import annotations

import math
from operator import itemgetter
from typing import Any

import numpy as np

from mad_sim.errors import SchemaError

_XY = itemgetter("x", "y")
_XYZ = itemgetter("x", "y", "z")


class JsonFields:
    """Typed access to the fields of a parsed JSON document; every failure is a SchemaError naming the file and field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, message: str, field: str) -> SchemaError:
        return SchemaError(message, path=self.source, field=field)

    def get(self, d: Any, key: str, field: str) -> Any:
        if not isinstance(d, dict):
            raise self.fail(f"expected an object, found {type(d).__name__}", field)
        if key not in d:
            raise self.fail("missing key", f"{field}.{key}" if field else key)
        return d[key]

    def number(self, value: Any, field: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(f"expected a finite number, found {value!r}", field)
        return float(value)

    def series(self, value: Any, field: str, dims: int, dtype: Any = np.float64) -> np.ndarray:
        """[K, dims] from a list of {x, y[, z]} dicts, a dict of lists, or a list of lists; missing z -> 0."""
        try:
            if isinstance(value, dict):
                cols = [np.asarray(value[k], dtype) for k in "xyz"[:dims] if k in value or k != "z"]
                if len({c.shape for c in cols}) != 1 or cols[0].ndim != 1:
                    raise self.fail(f"x / y lists differ in shape {[c.shape for c in cols]}", field)
                out = np.stack(cols, -1)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                if dims == 3 and "z" in value[0]:
                    try:
                        out = np.asarray(list(map(_XYZ, value)), dtype)
                    except KeyError:  # z on some points only: the others are at 0
                        out = np.asarray([(p["x"], p["y"], p.get("z", 0.0)) for p in value], dtype)
                else:
                    out = np.asarray(list(map(_XY, value)), dtype)
            else:
                out = np.asarray(value, dtype)
        except (KeyError, TypeError, ValueError) as exc:
            raise self.fail(self._first_bad_point(value, dims) or f"not a list of points ({exc})", field) from None
        if out.ndim == 1 and out.size == 0:
            out = out.reshape(0, dims)
        if out.ndim != 2 or out.shape[1] not in (2, 3) or out.shape[1] > dims:
            raise self.fail(f"shape {out.shape}, expected [K, {dims}] points", field)
        if out.shape[1] < dims:
            out = np.concatenate([out, np.zeros((len(out), dims - out.shape[1]), dtype)], 1)
        return out

    @staticmethod
    def _first_bad_point(value: Any, dims: int) -> str | None:
        if not isinstance(value, (list, dict)):
            return f"expected a list of points, found {type(value).__name__}"
        pts = [value] if isinstance(value, dict) else value
        bad = next(
            (
                i
                for i, p in enumerate(pts)
                if isinstance(p, dict)
                and not all(isinstance(p.get(k), (int, float, list)) and not isinstance(p.get(k), bool) for k in "xy")
            ),
            None,
        )
        return None if bad is None else f"point {bad} lacks a numeric x or y: {pts[bad]!r:.80}"
