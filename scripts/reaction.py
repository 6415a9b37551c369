"""Reaction figure (issue 14): the ego follows its log for 1 s, then brakes hard; do followers slow, leaders hold?

    python scripts/reaction.py [--data SPEC ...] [--agents log,idm,constant_velocity,mad] [--control [--reseed]]
                               [--lateral 2.0] [--range 40] [--follow-steps 10] [--episode-steps 48]
                               [--weights auto] [--threads 1] [--mad-option KEY=VALUE ...] [--scan-only]
                               [--out reaction.json]

Protocol, classification and figures: :mod:`mad_sim.eval.reaction`.  ``--data``
takes any ``load_scenarios`` spec (default: the six validation Waymax scenes).
Prints the scan (followers / leaders per scene at the onset, from the log, and
whether the scene is used), then one row per agent policy:

- ``fol`` / ``lead``: followers / leaders scored;
- ``gap chg m``: mean change of the follower's gap to the ego (along the ego's
  logged path) over the braking span (negative: it shrank); ``gap-log m``: that
  minus the same followers' change under log replay (positive: shrank less);
  ``ratio``: policy / log (1: no reaction, 0: gap kept); ``min gap m``: mean
  smallest gap (negative: past the ego); ``fol dv m/s``: mean speed change;
- ``react m`` (``--control``): gap change with braking minus without;
  ``react-log m``: that minus log replay's (0: no reaction at all); ``|lat| m``:
  mean |offset| of the followers from the ego's logged path at the end;
- ``lead dev log m``: leaders' mean distance to their log; ``lead dev ctl m``
  (``--control``): to the same policy's run without braking; ``lead dev reseed m``
  (``--control --reseed``): between two runs without braking, seeds s and s + 1
  (the sampling spread to read ``lead dev ctl`` against);
- ``fol model`` / ``lead model`` (``mad``): agent-steps of the braking span the
  model drove / all valid ones (the rest: the fallback scripted policy).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from typing import Any, Dict, List

from mad_sim.data.root import waymax_validation_files

COLUMNS = [
    ("gap chg m", "gap_change"),
    ("gap-log m", "gap_vs_log"),
    ("ratio", "gap_ratio"),
    ("min gap m", "min_gap"),
    ("fol dv m/s", "follower_speed_change"),
    ("react m", "reaction"),
    ("react-log m", "reaction_vs_log"),
    ("|lat| m", "follower_lateral_end"),
    ("lead dev log m", "leader_displacement_log"),
    ("lead dev ctl m", "leader_displacement_control"),
    ("lead dev reseed m", "leader_displacement_reseed"),
]
"""Table columns: (header, key of the policy's aggregate), printed with two decimals (``-`` where it does not apply)."""


def format_table(result: Dict[str, Any]) -> str:
    """One row per agent policy of ``result["aggregate"]`` (see the module docstring for the columns)."""

    def share(s: Any) -> str:
        return "-" if s is None else f"{s['learned_steps']}/{s['valid_steps']}"

    rows = [["agents", "scenes", "fol", "lead"] + [h for h, _ in COLUMNS] + ["fol model", "lead model"]]
    for p, a in result["aggregate"].items():
        cells = ["-" if a.get(k) is None else f"{a[k]:.2f}" for _, k in COLUMNS]
        rows.append([p, str(a["scenes"]), str(a["followers"]), str(a["leaders"])] + cells)
        rows[-1] += [share(a["follower_learned"]), share(a["leader_learned"])]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)


def _options(items: List[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--mad-option {item!r}: expected KEY=VALUE")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    val = waymax_validation_files()
    ap.add_argument("--data", nargs="+", default=val, help="scenario spec(s); default the six validation scenes")
    ap.add_argument("--agents", default="log,idm,constant_velocity,mad")
    ap.add_argument("--control", action="store_true", help="also run every policy with a log-following ego (no braking)")
    ap.add_argument("--reseed", action="store_true", help="with --control: the control once more with seed + 1")
    ap.add_argument("--lateral", type=float, default=2.0, help="m, |y| in the ego frame of followers / leaders")
    ap.add_argument("--range", type=float, default=40.0, help="m, how far behind / ahead")
    ap.add_argument("--heading", type=float, default=30.0, help="deg, heading difference to the ego at most")
    ap.add_argument("--follow-steps", type=int, default=10, help="steps (0.1 s) on the log before braking")
    ap.add_argument("--episode-steps", type=int, default=48)
    ap.add_argument("--brake", type=float, default=-6.0, help="m/s^2")
    ap.add_argument("--curvature", choices=("path", "zero"), default="path")
    ap.add_argument("--min-ego-speed", type=float, default=2.0, help="m/s at the onset for a scene to be used")
    ap.add_argument("--weights", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mad-option", action="append", default=[], help="extra agent_options of agents=mad, KEY=VALUE")
    ap.add_argument("--scan-only", action="store_true")
    ap.add_argument("--out", default=None, help="write the whole result as JSON here")
    args = ap.parse_args(argv)

    from mad_sim.eval.open_loop import json_safe
    from mad_sim.eval.reaction import ReactionSettings, classify, run_reaction, usable

    from mad_sim.data.sources import load_scenarios
    from mad_sim.io import write_text_atomic

    settings = ReactionSettings(
        follow_steps=args.follow_steps,
        episode_steps=args.episode_steps,
        brake_accel=args.brake,
        curvature=args.curvature,
        lateral_m=args.lateral,
        range_m=args.range,
        heading_deg=args.heading,
        min_ego_speed=args.min_ego_speed,
        control=args.control,
        reseed=args.reseed,
    )
    scenarios = list(load_scenarios(args.data))
    if args.scan_only:
        for sc in scenarios:
            f, lead, v = classify(sc, sc.sdc_index, settings)
            print(
                f"{sc.scenario_id}: followers {f.tolist()} leaders {lead.tolist()} ego {v:.1f} m/s "
                f"{'used' if usable(f, lead, v, settings) else 'not used'}"
            )
        return 0
    policies = args.agents.split(",")
    options = {"weights": args.weights, "threads": args.threads, **_options(args.mad_option)}
    if "mad" in policies:
        import torch

        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result = run_reaction(scenarios, policies, settings, options, progress=lambda m: print(m, file=sys.stderr, flush=True))
    wall = time.perf_counter() - start
    print(
        f"reaction: brake {settings.brake_accel} m/s^2 from step {settings.follow_steps} to {settings.episode_steps}, "
        f"{len(scenarios)} scenes scanned, {wall:.0f} s"
    )
    for row in result["scan"]:
        print(
            f"  {row['scene']}: followers {row['followers']} leaders {row['leaders']} ego {row['ego_speed']:.1f} m/s "
            f"{'used' if row['usable'] else 'not used'}"
        )
    print(format_table(result))
    if args.out:
        result["meta"] = {"argv": sys.argv[1:] if argv is None else argv, "agent_options": options, "wall_s": wall}
        write_text_atomic(args.out, json.dumps(json_safe(result), indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
