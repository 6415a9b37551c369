"""Traffic controls seen by scripted drivers: signalised stop lines and stop signs, per lane.

Built once per scenario from :class:`~mad_sim.data.scenario.TrafficLights`
(WOMD ``dynamic_map_states``, ``[T, L]`` slots whose lane may change from
step to step) and :attr:`RoadMap.stop_sign_lanes`:

* ``signal_col`` [M]: for every map feature, its column in ``states`` (-1:
  no signal); ``signal_u`` [M]: the stop point's arclength on that lane (m);
* ``states`` [T, C] int8 :class:`SignalState` of each signalised lane per
  step, a missing entry holding the last known state (UNKNOWN before any);
* ``sign_u`` [M]: arclength (m) of a stop sign's stop line on every lane it
  controls (NaN: none).  The stop sign's position (beside the road) is
  projected on the lane.

How drivers use them (see :class:`mad_sim.world.idm.IDM`): STOP,
ARROW_STOP, CAUTION and ARROW_CAUTION are *stop* states (a driver stops if
it can do so comfortably); FLASHING_STOP acts as a stop sign; GO, ARROW_GO,
FLASHING_CAUTION and UNKNOWN let drivers through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np

from mad_sim.data.scenario import Scenario, SignalState
from mad_sim.world.geometry import project_to_polyline
from mad_sim.world.lanes import LaneGraph

__all__ = ["TrafficControls", "STOP_STATES", "SIGN_STATES"]

STOP_STATES = np.array(
    [int(SignalState.STOP), int(SignalState.ARROW_STOP), int(SignalState.CAUTION), int(SignalState.ARROW_CAUTION)]
)
SIGN_STATES = np.array([int(SignalState.FLASHING_STOP)])


@dataclass
class TrafficControls:
    signal_col: np.ndarray
    signal_u: np.ndarray
    states: np.ndarray
    sign_u: np.ndarray

    @classmethod
    def build(cls, scenario: Scenario, graph: LaneGraph) -> "TrafficControls":
        rm = scenario.roadmap
        m = rm.num_features
        tl = scenario.traffic_lights
        t_steps = scenario.num_steps
        signal_col = np.full(m, -1, np.int64)
        signal_u = np.full(m, np.nan)
        lane_ids = np.asarray(tl.lane_ids)
        valid = np.asarray(tl.valid, bool)
        ids = np.unique(lane_ids[valid]) if valid.any() else np.zeros(0, np.int64)
        cols: Dict[int, int] = {}
        for lid in ids:
            f = graph.index_of.get(int(lid))
            if f is None or f not in graph.polylines:
                continue
            cols[int(lid)] = len(cols)
            signal_col[f] = cols[int(lid)]
            t, slot = np.argwhere(valid & (lane_ids == lid))[0]
            signal_u[f] = float(project_to_polyline(np.asarray(tl.stop_points[t, slot, :2], np.float64), graph.polylines[f])[0])
        states = np.full((t_steps, len(cols)), int(SignalState.UNKNOWN), np.int8)
        if cols:
            rows = min(t_steps, lane_ids.shape[0])
            for t in range(rows):  # a few steps x a few slots, once per scenario
                for slot in np.flatnonzero(valid[t]):
                    c = cols.get(int(lane_ids[t, slot]))
                    if c is not None:
                        states[t, c] = tl.states[t, slot]
            known = np.zeros((t_steps, len(cols)), bool)
            known[:rows] = valid_cols(lane_ids[:rows], valid[:rows], cols)
            idx = np.where(known, np.arange(t_steps)[:, None], 0)
            np.maximum.accumulate(idx, axis=0, out=idx)
            filled = states[idx, np.arange(len(cols))[None, :]]
            states = np.where(np.maximum.accumulate(known, axis=0), filled, int(SignalState.UNKNOWN)).astype(np.int8)
        sign_u = np.full(m, np.nan)
        for sign_id, lanes in rm.stop_sign_lanes.items():
            fs = graph.index_of.get(int(sign_id))
            if fs is None:
                continue
            pos = np.asarray(rm.polyline(fs)[:1, :2], np.float64)
            if pos.shape[0] == 0:
                continue
            for lid in lanes:
                f = graph.index_of.get(int(lid))
                if f is None or f not in graph.polylines or not np.isnan(sign_u[f]):
                    continue
                sign_u[f] = float(project_to_polyline(pos[0], graph.polylines[f])[0])
        return cls(signal_col=signal_col, signal_u=signal_u, states=states, sign_u=sign_u)

    def state_at(self, t: int) -> np.ndarray:
        """[C] signal states at step ``t`` (the last step's beyond the log)."""
        return self.states[min(max(int(t), 0), self.states.shape[0] - 1)]


def valid_cols(lane_ids: np.ndarray, valid: np.ndarray, cols: Dict[int, int]) -> np.ndarray:
    """[T, C] bool: whether signalised lane column c has an entry at step t."""
    out = np.zeros((lane_ids.shape[0], len(cols)), bool)
    for lid, c in cols.items():
        out[:, c] = (valid & (lane_ids == lid)).any(1)
    return out
