"""Benchmark: scenes per second read for every scene format, against the TFRecord reader in the same run.

    python bench/bench_formats.py [--repeats 3] [--root DATA_ROOT]

For every collection of the corpus (the folders under the data root that
hold scenes: ``womd``, ``scenarionet``, ``corpus/waymax``, ``corpus/gpudrive``,
...), the scenes are read with :func:`mad_sim.data.load_scenarios` from their
native files, and the same scenes, converted once to WOMD TFRecords in a
temporary folder (``mad-sim convert``'s writer), are read again with the
TFRecord reader.  Printed per collection: scenes, MB on disk (native and as
TFRecord), best-of-``repeats`` wall seconds, scenes/s for both, and the ratio
native / TFRecord (above 1: the native format reads slower).  The machine's
load average is printed with the figures.  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List


def best_of(fn: Callable[[], int], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--root", type=Path, default=None, help="data root (default $MAD_SIM_DATA or ../shared/data)")
    args = ap.parse_args()
    from mad_sim.model.cpu_paths import describe  # the CPU fast paths this machine gets

    print(f"machine: {describe()}", flush=True)

    from mad_sim.data import load_scenarios
    from mad_sim.data.corpus import build_index, data_root
    from mad_sim.data.womd import write_scenarios

    root = args.root or data_root()
    entries = build_index(root)
    by_collection: Dict[str, List[Path]] = defaultdict(list)
    for e in entries:
        p = root / e.path
        if p not in by_collection[e.collection]:
            by_collection[e.collection].append(p)

    print(f"load average {os.getloadavg()[0]:.2f}; best of {args.repeats}")
    print(
        f"{'collection':<28} {'format':<11} {'scenes':>6} {'MB':>7} {'MB wr':>7} {'native s':>9} {'tfrec s':>8} "
        f"{'native/s':>9} {'tfrec/s':>8} {'ratio':>6}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for collection, files in sorted(by_collection.items()):
            scenes = list(load_scenarios(files))
            womd = Path(tmp) / f"{collection.replace('/', '_')}.tfrecord"
            write_scenarios(womd, scenes)
            fmt = next(e.format for e in entries if e.collection == collection)
            native_s = best_of(lambda files=files: sum(1 for _ in load_scenarios(files)), args.repeats)
            tfrec_s = best_of(lambda womd=womd: sum(1 for _ in load_scenarios(womd)), args.repeats)
            mb = sum(p.stat().st_size for p in files) / 1e6
            n = len(scenes)
            print(
                f"{collection:<28} {fmt:<11} {n:>6} {mb:>7.1f} {womd.stat().st_size / 1e6:>7.1f} {native_s:>9.3f} "
                f"{tfrec_s:>8.3f} {n / native_s:>9.1f} {n / tfrec_s:>8.1f} {native_s / tfrec_s:>6.2f}"
            )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
