"""``mad-sim eval open-loop|closed-loop``: score planners on logs.

    mad-sim eval open-loop --planner cv --data 'logs/*.tfrecord' --k 6 --horizon 8 --json out.json
    mad-sim eval closed-loop --planner idm --agents log --data 'logs/*.tfrecord' --json out.json

``--planner`` takes a comma-separated list to compare planners in one run.
Under ``accelerate launch`` the scenarios are sharded across processes and
rank 0 writes the gathered result.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="open-loop (minADE/APD) or closed-loop planner evaluation")
    sub = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    for mode in ("open-loop", "closed-loop"):
        q = sub.add_parser(mode, help=f"{mode} evaluation")
        q.add_argument(
            "--planner",
            default="idm" if mode == "closed-loop" else "cv",
            help="planner name(s), comma-separated: cv, idm, expert",
        )
        q.add_argument("--data", required=True, nargs="+", help="scenario files, globs or directories")
        q.add_argument("--json", dest="json_out", help="write the results here")
        q.add_argument("--plots", help="folder for BEV plots (open loop) and metric bars")
        q.add_argument("--workers", type=int, default=1, help="local worker processes")
        q.add_argument("--k", type=int, default=6, help="trajectories per plan")
        q.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        if mode == "open-loop":
            q.add_argument("--horizon", type=float, default=8.0, help="seconds of future scored")
            q.add_argument("--stride", type=int, default=None, help="steps between sliding windows (default: t0 only)")
            q.add_argument("--tracks-to-predict", action="store_true", help="also score tracks_to_predict as egos")
        else:
            q.add_argument("--agents", default="log", help="agent policy: log, idm, constant_velocity")
            q.add_argument("--action", default="trajectory", choices=["trajectory", "bicycle", "delta"])
            q.add_argument("--replan-every", type=int, default=5, help="env steps between replans")
            q.add_argument("--plan-horizon", type=int, default=30, help="planned steps")
        q.set_defaults(func=run)
    from mad_sim.cli import eval_sim_agents

    eval_sim_agents.add_parser(sub, eval_sim_agents.run)


def validate(args: argparse.Namespace) -> list[str]:
    """Check every option (planners, agents, numbers, the data's files and first scene) before any
    progress bar starts: bad input ends with one line, no bar around it.  Returns the planner names."""
    from mad_sim.errors import ConfigError
    from mad_sim.eval.open_loop import iter_jobs, job_scenario
    from mad_sim.planners import PLANNERS

    planners = [p.strip() for p in args.planner.split(",") if p.strip()]
    if not planners:
        raise ConfigError(f"--planner: no planner named in {args.planner!r}")
    for name in planners:
        PLANNERS.entry(name, "--planner: ")
    for flag, value in (("--k", args.k), ("--workers", args.workers)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    if args.mode == "open-loop":
        if not args.horizon > 0:
            raise ConfigError(f"--horizon must be > 0 seconds, got {args.horizon}")
        if args.stride is not None and args.stride < 1:
            raise ConfigError(f"--stride must be >= 1, got {args.stride}")
    else:
        from mad_sim.envs.agents import agent_settings
        from mad_sim.envs.config import make_config

        for flag, value in (("--replan-every", args.replan_every), ("--plan-horizon", args.plan_horizon)):
            if value < 1:
                raise ConfigError(f"{flag} must be >= 1, got {value}")
        agent_settings(make_config(agents=args.agents, action=args.action))
    data = args.data if len(args.data) > 1 else args.data[0]
    first = next(iter_jobs(data), None)  # the files exist and the first scene reads
    if first is None:
        raise ConfigError(f"--data {' '.join(args.data)}: no scenario in these files")
    job_scenario(first)
    return planners


def run(args: argparse.Namespace) -> int:
    from mad_sim.eval import report
    from mad_sim.eval.open_loop import distributed_rank

    planners = validate(args)
    data = args.data if len(args.data) > 1 else args.data[0]
    if args.mode == "open-loop":
        from mad_sim.eval.open_loop import OpenLoopSettings, run_open_loop

        settings = OpenLoopSettings(
            planner=planners[0], k=args.k, horizon_s=args.horizon, stride=args.stride, tracks_to_predict=args.tracks_to_predict
        )
        results = run_open_loop(data, planners, settings, workers=args.workers, progress=not args.no_progress)
        keys = ["minADE", "minFDE", "miss_rate", "APD", "APD_flat", "valid_proposals", "num_scenarios"]
        meta = {
            "mode": "open-loop",
            "k": args.k,
            "horizon_s": args.horizon,
            "stride": args.stride,
            "APD": "mean over pairs of the per-step L2 averaged over time",
            "APD_flat": "mean over pairs of the L2 norm of the flattened [T*2] trajectories",
        }
    else:
        from mad_sim.eval.closed_loop import ClosedLoopSettings, run_closed_loop

        settings = ClosedLoopSettings(
            planner=planners[0],
            agents=args.agents,
            action=args.action,
            k=args.k,
            horizon=args.plan_horizon,
            replan_every=args.replan_every,
        )
        results = run_closed_loop(data, planners, settings, workers=args.workers, progress=not args.no_progress)
        keys = [
            "collision_rate",
            "offroad_rate",
            "progress",
            "log_divergence",
            "comfort_jerk",
            "steps_per_second",
            "num_scenarios",
        ]
        meta = {"mode": "closed-loop", "agents": args.agents, "action": args.action, "k": args.k}
    rank, _ = distributed_rank()
    if rank != 0:
        return 0
    print(report.table(results, keys))
    doc = report.results_document(results, meta)
    if args.json_out:
        report.write_json(args.json_out, doc)
        print(f"wrote {args.json_out}")
    if args.plots:
        out = Path(args.plots)
        report.plot_metric_bars(results, [k for k in keys if k != "num_scenarios"], out / f"{args.mode}_metrics.png")
        if args.mode == "open-loop":
            report.plot_scenarios(data, planners, args.k, int(round(args.horizon * 10)), out)
        print(f"wrote plots to {out}")
    return 0
