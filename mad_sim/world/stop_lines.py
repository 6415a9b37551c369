"""Signals and stop signs for the IDM drivers: stop lines as standing obstacles.

A stop line on a driver's path (path arclength ``L``, m) acts as a standing
obstacle placed so that the driver stops with its front bumper
``stop_margin`` metres short of the line: with ``front`` the path arclength
of the front bumper, ``d = L - stop_margin - front`` is the distance left and
the IDM (:func:`~mad_sim.world.idm_law.idm_accel`) is evaluated with gap
``d + s0`` and approach rate ``dv = v`` (the obstacle stands still).

* Signals (:mod:`mad_sim.world.controls`, the log's state at the simulated
  step): in a stop state (STOP, ARROW_STOP, CAUTION, ARROW_CAUTION) the
  driver stops if the constant deceleration needed, ``v^2 / (2 d)``, is at
  most ``signal_decel``; otherwise (too close, the dilemma zone) it goes on.
  Once it has decided to stop (committed) it stays stopped until the state
  changes.
* Stop signs (and FLASHING_STOP): the driver stops at the line; once it has
  stood (speed below ``stop_speed``) within ``stop_reach`` metres of the stop
  position, that stop sign is served and the driver proceeds.

Served and committed lanes are kept per agent by the policy across calls
(tables ``agent -> set of lane indices``).
"""

from __future__ import annotations

from typing import Dict, Set

import numpy as np

from mad_sim.world.controls import SIGN_STATES, STOP_STATES, TrafficControls
from mad_sim.world.idm_law import IDMParams, idm_accel
from mad_sim.world.lanes import PathStore

__all__ = ["StopLines"]

_STATE_LOOKUP = 256  # signal states are int8 codes: lookup tables indexed by code + 128
_IS_STOP = np.zeros(_STATE_LOOKUP, bool)
_IS_STOP[np.asarray(STOP_STATES, np.int64) + 128] = True
_IS_SIGN = np.zeros(_STATE_LOOKUP, bool)
_IS_SIGN[np.asarray(SIGN_STATES, np.int64) + 128] = True


class StopLines:
    """Stop lines on the drivers' paths, kept by :class:`mad_sim.world.idm.IDM` while the paths are unchanged.

    Per driver and lane slot on its path (``[D, J]``): the stop line's path arclength (m), whether it
    is a signal (its state column in ``controls``, -1: none) or a stop sign, and the served / committed
    flags, read from the policy's tables ``served`` / ``committed`` (agent -> lanes) at construction
    and carried from step to step (and call to call) in arrays.  Per log step the signal states of
    the slots are looked up once, at construction (``[T, D, J]`` tables), so a step reads one row.
    :meth:`commit` writes the flags back: ``served`` is updated in place and the new committed table
    is returned.
    """

    def __init__(
        self,
        params: IDMParams,
        controls: TrafficControls,
        drivers: np.ndarray,
        store: PathStore,
        served: Dict[int, Set[int]],
        committed: Dict[int, Set[int]],
    ) -> None:
        p = self.p = params
        self.controls = controls
        lanes = store.lanes[drivers]
        has = lanes >= 0
        ln = np.where(has, lanes, 0)
        self.drivers, self.lanes = drivers, lanes
        col = np.where(has, controls.signal_col[ln], -1)
        sig_s = store.lane_s0[drivers] + controls.signal_u[ln]
        sign_s = np.where(has, store.lane_s0[drivers] + controls.sign_u[ln], np.nan)
        self.any = bool((col >= 0).any() or np.isfinite(sign_s).any())
        self.served = self._flags(served)
        self.committed = self._flags(committed)
        self._sign_active = np.zeros(lanes.shape, bool)
        self._sign_line = sign_s
        if not self.any:
            return
        self._sig_s = sig_s
        self._sig_m = sig_s - p.stop_margin  # path arclength of the stop position of a signal's line
        states = controls.states  # [T, C]
        is_sig = col >= 0
        if states.shape[1] and is_sig.any():
            code = states[:, np.maximum(col, 0)].astype(np.int64) + 128  # [T, D, J]
            self._red = is_sig & _IS_STOP[code]
            flashing = is_sig & _IS_SIGN[code]
        else:
            self._red = np.zeros((1,) + lanes.shape, bool)
            flashing = np.zeros((1,) + lanes.shape, bool)
        self._signals = bool(self._red.any())  # some slot is in a stop state at some step
        # stop-sign lines per step: the stop signs, and signals in FLASHING_STOP
        fin = np.isfinite(sign_s)
        if flashing.any():
            line = np.where(fin, sign_s, np.where(flashing, sig_s, np.nan))
        else:
            line = sign_s[None]
        self._line = line
        self._line_fin = np.isfinite(line)
        self._line_m = line - p.stop_margin
        self._signs = bool(self._line_fin.any())
        self._steps = states.shape[0]

    def _flags(self, table: Dict[int, Set[int]]) -> np.ndarray:
        """[D, J] bool: lane slot (d, j) is in ``table[driver d]``."""
        if not (self.any and table):
            return np.zeros(self.lanes.shape, bool)
        pairs = np.array([(a, m) for a, lanes in table.items() for m in lanes], np.int64).reshape(-1, 2)
        width = int(max(pairs[:, 1].max(), self.lanes.max(), 0)) + 2  # codes agent * width + lane + 1 (-1 -> 0)
        codes = pairs[:, 0] * width + pairs[:, 1] + 1
        mine = self.drivers[:, None].astype(np.int64) * width + self.lanes + 1
        return np.isin(mine, codes) & (self.lanes >= 0)

    def _row(self, table: np.ndarray, t: int) -> np.ndarray:
        """Row of a ``[T, D, J]`` table at log step ``t`` (clipped to the log; a one-row table holds for all)."""
        return table[0] if table.shape[0] == 1 else table[min(max(int(t), 0), self._steps - 1)]

    def accel(self, t: int, front: np.ndarray, v: np.ndarray, v0: np.ndarray) -> np.ndarray:
        """[D] IDM acceleration (m/s^2) towards the nearest active stop line (inf where none).

        ``t``: log step whose signal states apply; ``front``: [D] m, path arclength of the front
        bumpers; ``v`` / ``v0``: [D] m/s, speeds and desired speeds.
        """
        out = np.full(front.shape, np.inf)
        if not self.any:
            return out
        p = self.p
        f = front[:, None]
        d = None
        if self._signals:
            dist_sig = self._sig_m - f
            red = self._row(self._red, t) & (self._sig_s > f)
            comfy = v[:, None] ** 2 <= 2.0 * p.signal_decel * np.maximum(dist_sig, 0.0)
            stop_sig = red & (self.committed | comfy) & (dist_sig < p.lookahead)
            self.committed = stop_sig | (self.committed & red)
            d = np.where(stop_sig, dist_sig, np.inf)
        elif self.committed.any():
            self.committed = np.zeros(self.lanes.shape, bool)  # no slot is ever red: nothing stays committed
        if self._signs:
            line = self._row(self._line, t)
            dist_sign = self._row(self._line_m, t) - f
            self._sign_active = self._row(self._line_fin, t) & ~self.served & (line > f - 0.5) & (dist_sign < p.lookahead)
            self._sign_line = line
            ds = np.where(self._sign_active, dist_sign, np.inf)
            d = ds if d is None else np.minimum(d, ds)
        if d is None:
            return out
        d = d.min(1)
        has = np.isfinite(d)
        if has.any():
            out[has] = idm_accel(v[has], v0[has], np.maximum(d[has], 0.0) + p.min_gap, v[has], p)
        return out

    def after_move(self, front: np.ndarray, v: np.ndarray) -> None:
        """Mark stop signs served where the driver now stands at the line (``front`` [D] m, ``v`` [D] m/s)."""
        if not self.any or not self._sign_active.any():
            return
        p = self.p
        remaining = self._sign_line - p.stop_margin - front[:, None]
        standing = (v[:, None] < p.stop_speed) & (remaining <= p.stop_reach)
        self.served |= self._sign_active & standing

    def commit(self, served: Dict[int, Set[int]], committed: Dict[int, Set[int]]) -> Dict[int, Set[int]]:
        """Add the served flags to the ``served`` table (in place); return the committed table to keep
        (``committed``, the table as it was, without any stop line on the paths)."""
        if not self.any:
            return committed
        for i, m in zip(self.drivers[np.nonzero(self.served)[0]].tolist(), self.lanes[self.served].tolist()):
            served.setdefault(i, set()).add(m)
        out: Dict[int, Set[int]] = {}
        for i, m in zip(self.drivers[np.nonzero(self.committed)[0]].tolist(), self.lanes[self.committed].tolist()):
            out.setdefault(i, set()).add(m)
        return out
