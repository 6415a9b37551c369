"""Benchmark: read + convert the 257-track WOMD scenario vs the official parse.

    python bench/bench_scenario_read.py [--repeats 20] [--file PATH]

Prints the median wall time of
  (a) mad-sim: TFRecord read (CRC checked) + parse with our proto + convert to
      the numpy ``Scenario`` (what ``load_scenario`` does),
  (b) the official ``waymo_open_dataset`` ``scenario_pb2`` parse of the same
      bytes (no conversion; the lower bound any reader pays),
  (c) the official parse + pulling every track state into numpy the obvious way,
and the ratios a/b and a/c.  The official protos are looked up (or installed
with --no-deps) in $MAD_SIM_WAYMO_PROTOS or ~/.cache/mad-sim/waymo-protos.
Nothing is asserted: figures only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mad_sim.data.root import data_root

REPO = Path(__file__).resolve().parents[1]
DEFAULT = data_root() / "womd" / "womd_scenario_input.tfrecord"
PROTOS = Path(os.environ.get("MAD_SIM_WAYMO_PROTOS", Path.home() / ".cache" / "mad-sim" / "waymo-protos"))


def official_scenario_pb2():
    if not (PROTOS / "waymo_open_dataset" / "protos" / "scenario_pb2.py").is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(PROTOS),
                "waymo-open-dataset-tf-2-12-0==1.6.7",
            ],
            check=True,
        )
    sys.path.append(str(PROTOS))
    from waymo_open_dataset.protos import scenario_pb2

    return scenario_pb2


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--file", type=Path, default=DEFAULT)
    args = ap.parse_args()
    from mad_sim.model.cpu_paths import describe  # the CPU fast paths this machine gets

    print(f"machine: {describe()}", flush=True)

    from mad_sim.data import load_scenario
    from mad_sim.data.proto import scenario_pb2 as ours_pb2
    from mad_sim.data.tfrecord import iter_records

    payload = next(iter_records(args.file))
    official = official_scenario_pb2()

    def ours():
        return load_scenario(args.file)

    def ours_parse_only():
        return ours_pb2.Scenario.FromString(payload)

    def official_parse():
        return official.Scenario.FromString(payload)

    def official_parse_numpy():
        msg = official.Scenario.FromString(payload)
        xyz = np.array([[(s.center_x, s.center_y, s.center_z) for s in t.states] for t in msg.tracks])
        other = np.array(
            [
                [(s.length, s.width, s.height, s.heading, s.velocity_x, s.velocity_y, s.valid) for s in t.states]
                for t in msg.tracks
            ]
        )
        return xyz, other

    s = ours()
    print(
        f"file: {args.file} ({len(payload) / 1e6:.2f} MB payload), {s.num_tracks} tracks x {s.num_steps} steps, "
        f"{s.roadmap.num_features} map features, {s.roadmap.points.shape[0]} map points"
    )
    a = timeit(ours, args.repeats)
    p = timeit(ours_parse_only, args.repeats)
    b = timeit(official_parse, args.repeats)
    c = timeit(official_parse_numpy, args.repeats)
    print(f"(a) mad-sim load_scenario (read + CRC + parse + convert): {a * 1e3:8.2f} ms")
    print(f"    of which our proto parse alone:                      {p * 1e3:8.2f} ms")
    print(f"(b) official scenario_pb2 parse only:                    {b * 1e3:8.2f} ms")
    print(f"(c) official parse + tracks to numpy (naive):            {c * 1e3:8.2f} ms")
    print(f"ratio a/b = {a / b:.1f}x   ratio a/c = {a / c:.2f}x")


if __name__ == "__main__":
    main()
