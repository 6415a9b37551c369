"""``mad-sim info INPUT... [--json]``: summarise scenario files of every supported format; ``--system``: the machine.

Inputs are files, globs, folders (mixing formats) or ``corpus:train|val|all``.
With ``--json`` it prints one JSON object: ``scenes``, a list with one object
per scenario (:meth:`mad_sim.data.scenario.Scenario.summary` plus ``format``,
``source``, ``duration_s``, ``agents`` by label and ``sdc_logged``), and
``aggregate`` (scenes, hours of driving, agents by label, scenes per format).
Without, a readable table and the aggregate line.  Bad input ends with the
one-line error of :mod:`mad_sim.errors` (exit 2).

``--system`` (or no INPUT) reports the machine instead: CPU, torch threads and
which CPU fast paths this machine gets (``precision="auto"``'s choice of
bfloat16 or float32, the oneDNN Conv3d swap; :mod:`mad_sim.model.cpu_paths`),
as a ``system`` object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any, Dict, List

import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info",
        help="summarise scenario files (WOMD, ScenarioNet, Waymax, GPUDrive/Nocturne)",
        description="Print a summary of every scenario in the given files, globs, folders or corpus splits.",
    )
    p.add_argument(
        "paths", nargs="*", metavar="INPUT", help="scene files (.tfrecord, .pkl, .json), globs, folders, or corpus:train|val|all"
    )
    p.add_argument("--json", action="store_true", help="print a JSON object {scenes: [...], aggregate: {...}}")
    p.add_argument(
        "--system",
        action="store_true",
        help="report the machine: CPU, torch threads, precision='auto' and the oneDNN Conv3d swap choices",
    )
    p.set_defaults(func=run)


def _sdc_displacement(summary: dict) -> float:
    xy = [p for p in summary["sdc_xy"] if p is not None]
    return float(np.hypot(*np.subtract(xy[-1], xy[0]))) if len(xy) >= 2 else 0.0


def _table(summaries: List[dict]) -> str:
    head = (
        f"{'scenario_id':<22} {'format':<11} {'tracks':>6} {'steps':>5} {'now':>4} {'sdc':>5} {'sdc_m':>7} "
        f"{'predict':>7}  map features   source"
    )
    lines = [head, "-" * len(head)]
    for s in summaries:
        feats = " ".join(f"{k}={v}" for k, v in s["map_features"].items() if v)
        sdc = f"{s['sdc_index']}" + ("" if s["sdc_logged"] else "*")
        lines.append(
            f"{s['scenario_id']:<22} {s['format']:<11} {s['num_tracks']:>6} {s['num_steps']:>5} "
            f"{s['current_index']:>4} {sdc:>5} {_sdc_displacement(s):>7.1f} {len(s['tracks_to_predict']):>7}  "
            f"{feats}   {s['source']}"
        )
    if any(not s["sdc_logged"] for s in summaries):
        lines.append("* no SDC in the file: the reader chose one (any valid vehicle can be the ego)")
    return "\n".join(lines)


def aggregate(summaries: List[dict]) -> Dict[str, Any]:
    """Scenes, hours of driving ((steps - 1) x 0.1 s each), agents by label, scenes per format, SDC count."""
    agents: Counter = Counter()
    for s in summaries:
        agents.update(s["agents"])
    return {
        "scenes": len(summaries),
        "hours": round(sum(s["duration_s"] for s in summaries) / 3600.0, 3),
        "agents": dict(sorted(agents.items())),
        "by_format": dict(sorted(Counter(s["format"] for s in summaries).items())),
        "with_logged_sdc": sum(bool(s["sdc_logged"]) for s in summaries),
    }


def run(args: argparse.Namespace) -> int:
    if not args.paths or (args.system and not args.json):
        from mad_sim.model.cpu_paths import describe, system_info

        print(json.dumps({"system": system_info()}) if args.json else f"system: {describe()}")
        if not args.paths:
            return 0
    from mad_sim.data.scenario import DT
    from mad_sim.data.sources import iter_scenes

    summaries = []
    for scenario, fmt in iter_scenes(args.paths):
        s = scenario.summary()
        seen = scenario.tracks.valid.any(1)
        s.update(
            format=fmt,
            source=scenario.source,
            duration_s=round((scenario.num_steps - 1) * DT, 3),
            agents=dict(sorted(Counter(scenario.labels()[seen].tolist()).items())),
            sdc_logged=scenario.sdc_logged,
        )
        summaries.append(s)
    total = aggregate(summaries)
    if args.json:
        doc: Dict[str, Any] = {"scenes": summaries, "aggregate": total}
        if args.system:
            from mad_sim.model.cpu_paths import system_info

            doc["system"] = system_info()
        print(json.dumps(doc))
    else:
        print(_table(summaries))
        print(
            f"{total['scenes']} scene(s), {total['hours']:.3f} h of driving, agents "
            + ", ".join(f"{k}={v}" for k, v in total["agents"].items())
        )
    return 0
