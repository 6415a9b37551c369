"""``mad-sim info FILE_OR_GLOB... [--json]``: summarise scenario files.

With ``--json`` it prints a JSON list, one object per scenario (see
:meth:`mad_sim.data.scenario.Scenario.summary`); without, a readable table.
Bad input ends with the one-line error of :mod:`mad_sim.errors` (exit 2).
"""

from __future__ import annotations

import argparse
import json
from typing import List

import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("info", help="summarise WOMD TFRecord / ScenarioNet scenario files",
                              description="Print a summary of every scenario in the given files, globs or directories.")
    p.add_argument("paths", nargs="+", metavar="FILE_OR_GLOB", help="WOMD .tfrecord or ScenarioNet .pkl files, globs, directories")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per scenario")
    p.set_defaults(func=run)


def _sdc_displacement(summary: dict) -> float:
    xy = [p for p in summary["sdc_xy"] if p is not None]
    return float(np.hypot(*np.subtract(xy[-1], xy[0]))) if len(xy) >= 2 else 0.0


def _table(summaries: List[dict], sources: List[str]) -> str:
    head = f"{'scenario_id':<18} {'tracks':>6} {'steps':>5} {'now':>4} {'sdc':>5} {'sdc_m':>7} {'predict':>7}  map features   source"
    lines = [head, "-" * len(head)]
    for s, src in zip(summaries, sources):
        feats = " ".join(f"{k}={v}" for k, v in s["map_features"].items() if v)
        lines.append(f"{s['scenario_id']:<18} {s['num_tracks']:>6} {s['num_steps']:>5} {s['current_index']:>4} {s['sdc_index']:>5} "
                     f"{_sdc_displacement(s):>7.1f} {len(s['tracks_to_predict']):>7}  {feats}   {src}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from mad_sim.data import load_scenarios

    summaries, sources = [], []
    for scenario in load_scenarios(args.paths):
        summaries.append(scenario.summary())
        sources.append(scenario.source)
    if args.json:
        print(json.dumps(summaries))
    else:
        print(_table(summaries, sources))
    return 0
