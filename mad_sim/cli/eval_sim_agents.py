"""``mad-sim eval sim-agents``: WOSAC realism metrics of agent policies (or of a submission file).

    mad-sim eval sim-agents --agents log,constant_velocity,idm --data corpus:val --rollouts 32 --horizon 8 \\
        --json out.json [--plots DIR] [--workers N] [--probe brake] [--export DIR]
    mad-sim eval sim-agents --submission rollouts.binproto[-*-of-*] --data scenario.tfrecord --json out.json

Under ``accelerate launch`` the scenarios are sharded across processes and rank 0 writes the gathered result
(in the one-process order).  Two local CPU processes: ``accelerate launch --multi_gpu --num_processes 2 -m
mad_sim eval sim-agents ...`` (or ``torchrun --nproc_per_node 2``); the processes stay on the CPU (gloo).
``accelerate launch --cpu --num_processes 2`` starts ONE process (accelerate's simple launcher, which
needs ``--mpirun_hostfile`` for more).
"""

from __future__ import annotations

import argparse
from typing import Any, Dict


def add_parser(sub: Any, run: Any) -> None:
    q = sub.add_parser("sim-agents", help="WOSAC sim-agent realism metrics of agent policies")
    q.add_argument("--agents", default="log,constant_velocity,idm", help="agent policies, comma-separated")
    q.add_argument("--data", required=True, nargs="+", help="scenario files, globs, directories or corpus:SPLIT")
    q.add_argument("--rollouts", type=int, default=32, help="rollouts per scenario and policy")
    q.add_argument("--horizon", type=float, default=8.0, help="seconds simulated (10 Hz)")
    q.add_argument("--ego", default="log", help="the ego: log (WOSAC), or a planner name (expert, idm, cv)")
    q.add_argument("--seed", type=int, default=0, help="rollout r draws from default_rng([seed, r])")
    q.add_argument("--probe", choices=["brake"], help="also run every rollout with the ego braking hard")
    q.add_argument(
        "--submission", nargs="+", help="score this SimAgentsChallengeSubmission (or these shards of one) instead of simulating"
    )
    q.add_argument(
        "--export",
        help="write each policy's rollouts as one submission, DIR/POLICY.binproto-KKKKK-of-NNNNN shards of at most 64 scenarios",
    )
    q.add_argument("--json", dest="json_out", help="write the results here")
    q.add_argument("--plots", help="folder for the likelihood bars and a BEV of rollouts vs log")
    q.add_argument("--workers", type=int, default=1, help="local worker processes")
    q.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    q.set_defaults(func=run)


def _score_submission(args: argparse.Namespace, data: Any) -> Dict[str, Dict[str, Any]]:
    from mad_sim.data.sources import load_scenarios
    from mad_sim.errors import SchemaError
    from mad_sim.eval.sim_agents.likelihood import aggregate
    from mad_sim.eval.sim_agents.scoring import score_rollouts
    from mad_sim.eval.sim_agents.submission_io import read_submission

    todo = {r.scenario_id: r for r in read_submission(args.submission)}
    where = args.submission[0] if len(args.submission) == 1 else f"{args.submission[0]} (+{len(args.submission) - 1})"
    rows = []
    for scenario in load_scenarios(data):
        if scenario.scenario_id in todo:
            rows.append(score_rollouts(scenario, todo.pop(scenario.scenario_id)))
    if todo:
        raise SchemaError(
            f"the submission holds scenarios {sorted(todo)[:3]} that --data does not", path=where, field="scenario_id"
        )
    return {"submission": {"aggregate": aggregate(rows), "scenarios": rows}}


def run(args: argparse.Namespace) -> int:
    from mad_sim.errors import ConfigError
    from mad_sim.eval.open_loop import distributed_rank
    from mad_sim.eval.sim_agents import report
    from mad_sim.eval.sim_agents.rollouts import RolloutSettings, ego_mode_check
    from mad_sim.eval.sim_agents.runner import BenchSettings, run_sim_agents

    data = args.data if len(args.data) > 1 else args.data[0]
    if args.rollouts < 1 or not args.horizon > 0 or args.workers < 1:
        raise ConfigError("--rollouts, --horizon and --workers must be positive")
    settings = RolloutSettings(rollouts=args.rollouts, horizon_s=args.horizon, ego=ego_mode_check(args.ego), seed=args.seed)
    if args.submission:
        results = _score_submission(args, data)
    else:
        from mad_sim.envs.agents import agent_policy_names

        names = [a.strip() for a in args.agents.split(",") if a.strip()]
        unknown = [a for a in names if a not in agent_policy_names()]
        if not names or unknown:
            raise ConfigError(
                f"--agents: unknown agent policy {unknown[0] if unknown else args.agents!r} "
                f"(known: {', '.join(agent_policy_names())})"
            )
        results = run_sim_agents(
            data, names, BenchSettings(settings, args.probe, args.export), args.workers, progress=not args.no_progress
        )
    rank, world = distributed_rank()
    if rank != 0:
        return 0
    print(report.table(results))
    if args.probe and not args.submission:
        print("reaction probe (ego brakes at 6 m/s^2 from the current step; followers in its lane):")
        print(report.table(results, report.PROBE_TABLE_KEYS, part="probe"))
        print(report.probe_notes(results))
    if args.json_out:
        from mad_sim.eval.report import write_json

        meta = {
            "mode": "sim-agents",
            "config": "wosac2025",
            "rollouts": args.rollouts,
            "horizon_s": args.horizon,
            "ego": settings.ego,
            "seed": args.seed,
            "probe": args.probe,
            "submission": args.submission,
            "num_processes": world,
            "workers": args.workers,
        }
        write_json(args.json_out, report.document(results, meta))
        print(f"wrote {args.json_out}")
    if args.plots:
        if args.submission:
            report.plot_likelihood_bars(results, f"{args.plots}/sim_agents_likelihoods.png")
        else:
            report.write_plots(results, data, args.plots, settings)
        print(f"wrote plots to {args.plots}")
    return 0
