"""Closed-loop benchmark: drive a planner in ``MADDrive-v0`` over scenarios.

Per scenario (ego = the SDC, from ``current_index`` to the end of the log or
the first collision / offroad): ``collision`` and ``offroad`` (0/1: did the
episode end that way), ``progress`` (m along the logged route),
``log_divergence`` (mean metres from the logged ego position over the valid
log steps), ``comfort_jerk`` (mean |jerk|, m/s^3), ``steps`` and
``steps_per_second`` (env + planner, wall clock).  Aggregates are means over
scenarios; ``collision_rate`` / ``offroad_rate`` are the fractions of
scenarios.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Tuple

import numpy as np
from mad_sim.eval.open_loop import collect_rows, job_scenario
from mad_sim.planners import make_planner
from mad_sim.planners.adapter import RecedingHorizonDriver

log = logging.getLogger(__name__)


@dataclass
class ClosedLoopSettings:
    planner: str = "idm"
    agents: str = "log"
    action: str = "trajectory"
    k: int = 6
    horizon: int = 30
    replan_every: int = 5
    seed: int = 0


def drive_scenario(scenario: Any, settings: ClosedLoopSettings, planner_name: str) -> Dict[str, Any]:
    """Run one episode on ``scenario``; returns the row described in the module docstring."""
    import gymnasium as gym

    import mad_sim  # noqa: F401

    env = gym.make(
        "MADDrive-v0", agents=settings.agents, action=settings.action, terminate_on_route_completion=False
    ).unwrapped  # to the end of the log, as documented
    driver = RecedingHorizonDriver(
        make_planner(planner_name), k=settings.k, horizon=settings.horizon, replan_every=settings.replan_every
    )
    env.reset(seed=settings.seed, options={"scenario": scenario})
    driver.reset()
    start = time.perf_counter()
    infos = []
    term = False
    while True:
        _, _, term, trunc, info = env.step(driver.act(env))
        infos.append(info)
        if term or trunc:
            break
    wall = time.perf_counter() - start
    env.close()
    div = np.array([np.nan if i["log_divergence"] is None else i["log_divergence"] for i in infos], np.float64)
    jerk = np.abs([i["jerk"] for i in infos])
    return {
        "scenario_id": scenario.scenario_id,
        "steps": len(infos),
        "collision": float(infos[-1]["collision"]),
        "offroad": float(infos[-1]["offroad"]),
        "terminated": bool(term),
        "progress": float(infos[-1]["route_progress"]),
        "log_divergence": float(np.nanmean(div)) if np.isfinite(div).any() else None,
        "comfort_jerk": float(jerk.mean()),
        "steps_per_second": len(infos) / max(wall, 1e-9),
    }


def aggregate_closed_loop(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    def mean(key: str) -> Any:
        v = np.array([r[key] for r in rows if r[key] is not None], np.float64)
        return float(v.mean()) if v.size else None

    return {
        "collision_rate": mean("collision"),
        "offroad_rate": mean("offroad"),
        "progress": mean("progress"),
        "log_divergence": mean("log_divergence"),
        "comfort_jerk": mean("comfort_jerk"),
        "steps_per_second": mean("steps_per_second"),
        "num_scenarios": len(rows),
    }


def _run_job(args: Tuple[Any, Tuple[str, ...], ClosedLoopSettings]) -> Dict[str, List[Dict[str, Any]]]:
    job, planners, settings = args
    scenario = job_scenario(job)
    return {n: [drive_scenario(scenario, settings, n)] for n in planners}


def run_closed_loop(
    spec: Any, planners: Iterable[str], settings: ClosedLoopSettings, workers: int = 1, progress: bool = True
) -> Dict[str, Dict[str, Any]]:
    """``{planner: {"aggregate", "scenarios"}}`` over every scenario of ``spec`` (streamed, sharded like open loop)."""
    names = tuple(planners)
    rows = collect_rows(spec, names, _run_job, settings, workers, progress, label="closed-loop")
    return {n: {"aggregate": aggregate_closed_loop(rows[n]), "scenarios": rows[n]} for n in names}
