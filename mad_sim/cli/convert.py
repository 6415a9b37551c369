"""``mad-sim convert INPUT... --out DIR [--shards N]``: write any supported scenes as WOMD Scenario TFRecords.

Every input (files, globs, folders, ``corpus:SPLIT``, mixing formats) is read
with :func:`mad_sim.data.load_scenarios` and written with
:func:`mad_sim.data.womd.write_scenarios`, so tools that read WOMD can read
GPUDrive, Nocturne, Waymax and ScenarioNet scenes.  By default each scene gets
its own file ``DIR/<scenario_id>.tfrecord`` (a numbered suffix keeps ids
unique); ``--shards N`` writes ``DIR/scenarios.tfrecord-0000k-of-0000N``
instead, scenes dealt round-robin.  Every file is written atomically, and
nothing is written before every input has been read and checked, so a bad
input leaves ``DIR`` as it was.  Prints a JSON summary (scenes, files, out).

What a WOMD ``Scenario`` cannot hold is lost on the way: source class labels
beyond the WOMD object types (a nuScenes ``TRAFFIC_CONE`` becomes
``TYPE_OTHER``) and whether the SDC was logged or chosen by the reader.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Dict, List

from mad_sim.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="write scenes of any supported format as WOMD Scenario TFRecords",
        description="Read scenes (WOMD, ScenarioNet, Waymax, GPUDrive/Nocturne JSON; files, "
        "globs, folders, corpus:SPLIT) and write WOMD Scenario TFRecords.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="scene files, globs, folders or corpus:train|val|all")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--shards", type=int, default=0, help="write N sharded files instead of one file per scene")
    p.set_defaults(func=run)


def safe_name(scenario_id: str) -> str:
    """A file-name stem for a scenario id: ``[A-Za-z0-9._-]`` only, never empty."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", scenario_id).strip("._")
    return stem or "scene"


def plan_files(scenario_ids: List[str], shards: int) -> List[str]:
    """The output file name of each scene (same order): one per scene, or ``shards`` round-robin shards."""
    if shards < 0:
        raise ConfigError(f"--shards must be >= 0, got {shards}")
    if shards:
        return [f"scenarios.tfrecord-{k % shards:05d}-of-{shards:05d}" for k in range(len(scenario_ids))]
    seen: Dict[str, int] = {}
    out = []
    for sid in scenario_ids:
        stem = safe_name(sid)
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        out.append(f"{stem}.tfrecord" if n == 0 else f"{stem}-{n}.tfrecord")
    return out


def run(args: argparse.Namespace) -> int:
    from mad_sim.data import load_scenarios
    from mad_sim.data.womd import write_scenarios

    scenarios = list(load_scenarios(args.inputs))  # read and check everything before writing anything
    names = plan_files([s.scenario_id for s in scenarios], args.shards)
    out = Path(args.out)
    by_file: Dict[str, list] = {}
    for name, scenario in zip(names, scenarios):
        by_file.setdefault(name, []).append(scenario)
    for name, group in by_file.items():
        write_scenarios(out / name, group)
    print(json.dumps({"scenes": len(scenarios), "files": len(by_file), "out": str(out)}))
    return 0
