"""Run the benchmark over a stream of scenarios: local worker processes, ``accelerate launch`` shards, one result.

Scenarios are streamed (:func:`mad_sim.eval.open_loop.iter_jobs`: raw
records are read one at a time and parsed where they are scored, never all
in memory).  Under ``accelerate launch`` / ``torchrun`` (``WORLD_SIZE`` > 1)
scenario ``i`` goes to process ``i % num_processes`` and every process's rows
are collected, through :mod:`mad_sim.eval.sharding` (accelerate's
``PartialState`` and ``gather_object``) as in the open-loop evaluator;
``workers`` > 1 spreads a process's scenarios over that many local processes
(spawned).  The gathered
rows are put back in stream order (process ``p``'s ``k``-th scenario is the
stream's ``p + k * num_processes``-th), so every sharding gives the result
of one process.  A tqdm bar counts rollouts, with the scenarios done in its
postfix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mad_sim.eval.open_loop import Job, iter_jobs, job_scenario
from mad_sim.eval.sharding import distributed_rank, gather_list, wait_for_everyone
from mad_sim.eval.sim_agents.likelihood import aggregate
from mad_sim.eval.sim_agents.probe import probe_aggregate, probe_row
from mad_sim.eval.sim_agents.rollouts import RolloutSettings, simulate
from mad_sim.eval.sim_agents.scoring import score_rollouts


@dataclass
class BenchSettings:
    """What to run per scenario: ``rollout`` settings, the ``probe`` (None or ``"brake"``) and an
    ``export_dir`` for the rollouts: one submission per policy, ``DIR/POLICY.binproto-KKKKK-of-NNNNN``
    shards (:func:`~.submission_io.write_submission_shards`), assembled by process 0 from the per-scenario
    parts every process writes to ``DIR/.parts/POLICY/`` (removed afterwards; several machines need
    ``DIR`` on a shared file system)."""

    rollout: RolloutSettings
    probe: Optional[str] = None
    export_dir: Optional[str] = None


def run_scenario(scenario: Any, policies: Sequence[str], settings: BenchSettings) -> Dict[str, Dict[str, Any]]:
    """``{policy: {"row": metrics row, "probe": probe row | None}}`` for one scenario."""
    from dataclasses import replace

    out: Dict[str, Dict[str, Any]] = {}
    for name in policies:
        ro = simulate(scenario, name, settings.rollout)
        row = score_rollouts(scenario, ro)
        row["deterministic"] = bool(ro.info.get("deterministic"))
        probe = None
        if settings.probe == "brake":
            braking = simulate(scenario, name, replace(settings.rollout, ego="brake"))
            probe = probe_row(scenario, ro, braking)
        if settings.export_dir:
            from mad_sim.eval.sim_agents.submission_io import write_submission_part

            write_submission_part(_part_path(settings.export_dir, name, scenario.scenario_id), ro)
        out[name] = {"row": row, "probe": probe}
    return out


def _part_path(export_dir: str, policy: str, scenario_id: str) -> Path:
    return Path(export_dir) / ".parts" / policy / f"{scenario_id}.binproto"


def export_submissions(results: Dict[str, Dict[str, Any]], export_dir: str) -> Dict[str, List[str]]:
    """``{policy: shard paths}``: every policy's parts, in the results' scenario order, as one sharded
    submission (method name ``mad-sim-POLICY``); the parts folder is removed."""
    import shutil

    from mad_sim.eval.sim_agents.submission_io import write_submission_shards

    out = {}
    for name, res in results.items():
        parts = [_part_path(export_dir, name, r["scenario_id"]) for r in res["scenarios"]]
        out[name] = write_submission_shards(export_dir, name, parts, method_name=f"mad-sim-{name}")
    shutil.rmtree(Path(export_dir) / ".parts", ignore_errors=True)
    return out


def _job(args: Tuple[Job, Tuple[str, ...], BenchSettings]) -> Dict[str, Dict[str, Any]]:
    job, policies, settings = args
    return run_scenario(job_scenario(job), policies, settings)


def run_sim_agents(
    spec: Any, policies: Sequence[str], settings: BenchSettings, workers: int = 1, progress: bool = True
) -> Dict[str, Dict[str, Any]]:
    """``{policy: {"aggregate", "scenarios", "probe"?}}`` over every scenario of ``spec`` (module docstring)."""
    from tqdm import tqdm

    names = tuple(policies)
    rank, world = distributed_rank()
    jobs = ((job, names, settings) for job in iter_jobs(spec, rank, world))
    per = settings.rollout.rollouts * len(names) * (2 if settings.probe else 1)
    bar = tqdm(desc=f"sim-agents {','.join(names)}", unit="rollout", disable=not progress)
    parts: List[Tuple[int, Dict[str, Dict[str, Any]]]] = []

    def done(out: Dict[str, Dict[str, Any]]) -> None:
        parts.append((rank + len(parts) * world, out))
        bar.update(per)
        bar.set_postfix(scenarios=len(parts))

    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for out in pool.imap(_job, jobs, chunksize=1):
                done(out)
    else:
        for args in jobs:
            done(_job(args))
    bar.close()
    parts = gather_list(parts)
    results = collect([p for _, p in sorted(parts, key=lambda ip: ip[0])], names, bool(settings.probe))
    if settings.export_dir and rank == 0:
        export_submissions(results, settings.export_dir)
    wait_for_everyone()  # no process leaves before the shards are written
    return results


def collect(parts: List[Dict[str, Dict[str, Any]]], names: Sequence[str], probe: bool) -> Dict[str, Dict[str, Any]]:
    """Per-policy aggregate and rows from the per-scenario outputs of :func:`run_scenario`."""
    out: Dict[str, Dict[str, Any]] = {}
    for n in names:
        rows = [p[n]["row"] for p in parts]
        res: Dict[str, Any] = {"aggregate": aggregate(rows), "scenarios": rows}
        if probe:
            prow = [p[n]["probe"] for p in parts if p[n]["probe"] is not None]
            res["probe"] = {"aggregate": probe_aggregate(prow), "scenarios": prow}
        out[n] = res
    return out
