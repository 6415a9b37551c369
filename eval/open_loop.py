"""Open-loop planning evaluation on logs (the MAD paper's minADE@K / APD@K protocol).

For each scenario, at t0 = ``current_index`` (and, with ``stride``, every
``stride`` steps after it while a full horizon of log remains), a planner
proposes K ego trajectories from the log's history; they are scored against
the logged future in the ego frame at t0 with :mod:`mad_sim.eval.metrics`,
masking invalid log steps.  With ``tracks_to_predict=True`` each of the
scenario's ``tracks_to_predict`` is also evaluated as if it were the ego.

Scenarios are streamed (never all in memory): the main process reads raw
records, ``workers`` local processes parse and evaluate them, and under
``accelerate launch`` or ``torchrun`` (``WORLD_SIZE`` > 1) record ``i`` goes to
process ``i % WORLD_SIZE`` and the rows are gathered on every process with
accelerate (:mod:`mad_sim.eval.sharding`; checked with two CPU processes).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
from mad_sim.eval import metrics as M
from mad_sim.eval.sharding import distributed_rank, gather_rows
from mad_sim.planners import make_planner
from mad_sim.planners.base import Planner, context_from_scenario

from mad_sim.data.frames import heading_world_to_ego
from mad_sim.data.scenario import DT, Scenario

log = logging.getLogger(__name__)

METRIC_KEYS = ("minADE", "minFDE", "miss_rate", "miss_3s", "miss_5s", "miss_8s", "APD", "APD_flat", "valid_proposals")
"""Per-row values averaged by :func:`aggregate`.  ``valid_proposals`` is what the planner reports in
``Plan.info`` (the MAD planner: model samples with readable odometry among the K; the rest are marked
constant-velocity fallbacks); None for planners that do not report it."""


@dataclass
class OpenLoopSettings:
    planner: str = "cv"
    k: int = 6
    horizon_s: float = 8.0
    history: int = 11
    stride: Optional[int] = None  # steps between sliding windows (None: only current_index)
    tracks_to_predict: bool = False

    @property
    def horizon(self) -> int:
        return int(round(self.horizon_s / DT))


def evaluate_scenario(scenario: Scenario, planner: Planner, settings: OpenLoopSettings) -> List[Dict[str, Any]]:
    """One row per (t0, target) of ``scenario``: ids, the metrics of :data:`METRIC_KEYS`, ``plan_seconds``,
    and ``fallback_proposals`` when the planner marks fallbacks in ``Plan.info`` (else None)."""
    f = settings.horizon
    t0s = [scenario.current_index]
    if settings.stride:
        t0s = list(range(scenario.current_index, scenario.num_steps - f, settings.stride)) or t0s
    targets = [int(scenario.sdc_index)]
    if settings.tracks_to_predict:
        targets += [int(i) for i in scenario.tracks_to_predict if int(i) != scenario.sdc_index]
    rows = []
    log_tracks = scenario.tracks
    for t0 in t0s:
        for target in targets:
            if not log_tracks.valid[target, t0]:
                log.info("%s: track %d invalid at step %d, skipped", scenario.scenario_id, target, t0)
                continue
            ctx = context_from_scenario(scenario, t0, target, settings.history, horizon=f)
            start = time.perf_counter()
            plan = planner.plan(ctx, settings.k, f)
            seconds = time.perf_counter() - start
            n = min(f, scenario.num_steps - t0 - 1)
            heading = np.zeros(f)
            heading[:n] = heading_world_to_ego(log_tracks.heading[target, t0 + 1 : t0 + 1 + n], ctx.origin_yaw)
            m = M.trajectory_metrics(
                plan.xy[None], ctx.future_xy[None], ctx.future_valid[None], heading[None], np.array([abs(ctx.speed)])
            )
            row: Dict[str, Any] = {
                "scenario_id": scenario.scenario_id,
                "t0": int(t0),
                "track": target,
                "is_sdc": target == scenario.sdc_index,
                "valid_steps": int(ctx.future_valid.sum()),
                "minADE": float(m.min_ade[0]),
                "minFDE": float(m.min_fde[0]),
                "miss_rate": float(m.miss_rate()[0]),
                "miss_3s": float(m.miss[0, 0]),
                "miss_5s": float(m.miss[0, 1]),
                "miss_8s": float(m.miss[0, 2]),
                "APD": float(m.apd[0]),
                "APD_flat": float(m.apd_flat[0]),
                "plan_seconds": seconds,
                "valid_proposals": _int_or_none(plan.info.get("valid_proposals")),
                "fallback_proposals": _int_or_none(sum(plan.info["fallback"])) if "fallback" in plan.info else None,
            }
            rows.append(row)
    return rows


def _int_or_none(v: Any) -> Optional[int]:
    return None if v is None else int(v)


def aggregate(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Means over rows of every metric (NaN entries, i.e. unscored, are left out of the mean)."""
    out: Dict[str, Any] = {}
    for key in METRIC_KEYS:
        vals = np.array([np.nan if r.get(key) is None else r[key] for r in rows], np.float64)
        vals = vals[np.isfinite(vals)]
        out[key] = float(vals.mean()) if vals.size else None
    out["num_scenarios"] = len({r["scenario_id"] for r in rows})
    out["num_samples"] = len(rows)
    return out


# --------------------------------------------------------------------------- streaming
Job = Tuple[str, int, Optional[bytes]]


def iter_jobs(spec: Any, rank: int = 0, world_size: int = 1) -> Iterator[Job]:
    """``(path, record index, payload | None)`` for every scenario of ``spec``, this rank's share only."""
    from mad_sim.data.formats import is_single_scene_file
    from mad_sim.data.sources import check_scenario_files
    from mad_sim.data.tfrecord import iter_records

    i = 0
    for path in check_scenario_files(spec):
        if is_single_scene_file(path):
            if i % world_size == rank:
                yield (str(path), 0, None)
            i += 1
            continue
        for index, payload in enumerate(iter_records(path)):
            if i % world_size == rank:
                yield (str(path), index, payload)
            i += 1


def job_scenario(job: Job) -> Scenario:
    path, index, payload = job
    if payload is None:
        from mad_sim.data.sources import load_scenario

        return load_scenario(path)
    from mad_sim.data.womd import scenario_from_bytes

    return scenario_from_bytes(payload, path, index)


def _run_job(args: Tuple[Job, Tuple[str, ...], OpenLoopSettings]) -> Dict[str, List[Dict[str, Any]]]:
    job, planners, settings = args
    scenario = job_scenario(job)
    return {name: evaluate_scenario(scenario, make_planner(name), settings) for name in planners}


def collect_rows(
    spec: Any,
    names: Tuple[str, ...],
    run_job: Callable[[Tuple[Job, Tuple[str, ...], Any]], Dict[str, List[Dict[str, Any]]]],
    settings: Any,
    workers: int = 1,
    progress: bool = True,
    label: str = "eval",
) -> Dict[str, List[Dict[str, Any]]]:
    """Run ``run_job`` on every scenario of ``spec`` and gather the per-planner rows.

    The shared loop of the open- and closed-loop evaluators: scenarios are
    streamed (never all in memory), split across ``torchrun`` / ``accelerate
    launch`` ranks, optionally spread over ``workers`` local processes, and the
    rows of every rank are gathered into one result.  ``run_job`` must be a
    module-level function (it is pickled for the worker processes).
    """
    from tqdm import tqdm

    for n in names:
        make_planner(n)  # fail fast on an unknown name
    rank, world = distributed_rank()
    rows: Dict[str, List[Dict[str, Any]]] = {n: [] for n in names}
    jobs = ((job, names, settings) for job in iter_jobs(spec, rank, world))
    bar = tqdm(desc=f"{label} {','.join(names)}", unit="scenario", disable=not progress)
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            outs = pool.imap(run_job, jobs, chunksize=1)
            for out in outs:
                for n in names:
                    rows[n].extend(out[n])
                bar.update()
    else:
        for args in jobs:
            out = run_job(args)
            for n in names:
                rows[n].extend(out[n])
            bar.update()
    bar.close()
    return gather_rows(rows)


def run_open_loop(
    spec: Any, planners: Iterable[str], settings: OpenLoopSettings, workers: int = 1, progress: bool = True
) -> Dict[str, Dict[str, Any]]:
    """Evaluate ``planners`` on every scenario of ``spec``: ``{planner: {"aggregate", "scenarios"}}``."""
    names = tuple(planners)
    rows = collect_rows(spec, names, _run_job, settings, workers, progress, label="open-loop")
    return {n: {"aggregate": aggregate(rows[n]), "scenarios": rows[n]} for n in names}


def json_safe(obj: Any) -> Any:
    """Replace NaN / inf floats with None so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return json_safe(obj.item())
    return obj
