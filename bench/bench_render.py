"""Render throughput: pose frames/s (128x128, 768x512), ego-motion frames/s, BEV frames/s.

Run: ``python bench/bench_render.py [--repeats 5]``.  Prints figures and
ratios, never asserts.  Numbers are per *process CPU second* on one core
(BLAS threads pinned to 1 before numpy loads), best of ``--repeats`` runs,
so other jobs on the machine distort them less; wall-clock figures, the
median of the repeats and the 1-minute load average (start and end) are
printed beside them: on a loaded machine CPU seconds still stretch (shared
caches, memory bandwidth), so quote the load with the figures.  The baseline, measured in the same run, is the
cheapest possible pose drawing: every frame's skeleton segments (already
projected) drawn white in ONE ``cv2.polylines`` call per frame, no map, no
projection, no colours, no painter's order.  Targets (the renderer's speed budget): 2,000
pose frames/s at 128x128, 300 at 768x512, 500 ego-motion frames/s at 128x128.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from mad_sim.data.root import data_root  # noqa: E402

cv2.setNumThreads(1)

REPO = Path(__file__).resolve().parents[1]
DATA = data_root()


MEDIANS = {}
"""Median CPU seconds of each timed run, by label (printed beside the best-of figures)."""


def best(fn, repeats: int, label: str = ""):
    cpu, wall = [], []
    out = None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    if label:
        MEDIANS[label] = float(np.median(cpu))
    return min(cpu), min(wall), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args()
    from mad_sim.model.cpu_paths import describe  # the CPU fast paths this machine gets

    print(f"machine: {describe()}", flush=True)

    from mad_sim.data import load_scenario
    from mad_sim.render.bev import render_bev
    from mad_sim.render.draw import agent_strokes
    from mad_sim.render.ego_motion import EgoMotionRenderer
    from mad_sim.render.pose import PoseRenderer
    from mad_sim.world.state import WorldState

    path = DATA / "womd" / "womd_scenario_input.tfrecord"
    if not path.is_file():
        print(f"missing {path}", file=sys.stderr)
        return 1
    sc = load_scenario(path)
    vp, steps = sc.sdc_index, sc.num_steps
    results = {
        "scenario": sc.scenario_id,
        "tracks": sc.num_tracks,
        "frames_per_run": steps,
        "load_avg_1min_start": os.getloadavg()[0],
    }

    for w, h in ((128, 128), (768, 512)):
        r = PoseRenderer(w, h)
        r.render_scenario(sc, vp, 0, steps)  # warm the map cache
        cpu, wall, frames = best(lambda r=r: r.render_scenario(sc, vp, 0, steps), args.repeats, "pose")
        geo = r.last_geometry
        results[f"pose_{w}x{h}_fps_cpu"] = steps / cpu
        results[f"pose_{w}x{h}_fps_cpu_median"] = steps / MEDIANS["pose"]
        results[f"pose_{w}x{h}_fps_wall"] = steps / wall
        results[f"pose_{w}x{h}_visible_agents_per_frame"] = float(geo.visible.sum()) / steps
        # Baseline: the same skeleton segments, one white polylines call per frame.
        st = agent_strokes(geo, np.arange(len(geo.depth)), 1, 1)
        fixed = np.rint(np.stack([st.a, st.b], 1) * 16).astype(np.int32)
        cuts = np.searchsorted(st.frame, np.arange(steps + 1))

        def baseline(r=r, w=w, h=h, fixed=fixed, cuts=cuts):  # called by best() within this iteration
            out = np.zeros((steps, h, w, 3), np.uint8)
            for f in range(steps):
                cv2.polylines(out[f], fixed[cuts[f] : cuts[f + 1]], False, (255, 255, 255), r.style.line_width(w), cv2.LINE_8, 4)
            return out

        bcpu, _, _ = best(baseline, args.repeats)
        results[f"baseline_one_call_{w}x{h}_fps_cpu"] = steps / bcpu
        results[f"pose_{w}x{h}_vs_baseline"] = bcpu / cpu

    # One frame per call (what an environment step does): no batching over frames.
    state = WorldState.from_scenario(sc)
    r = PoseRenderer(128, 128)
    cpu, wall, _ = best(lambda: [r.render_state(state) for _ in range(steps)], args.repeats)
    results["pose_128x128_render_state_fps_cpu"] = steps / cpu

    traj = sc.tracks
    poses = np.concatenate([traj.xy[vp], traj.heading[vp][:, None]], 1)
    poses[:, :2] -= poses[0, :2]
    for w, h in ((128, 128), (768, 512)):
        e = EgoMotionRenderer(w, h, seed=0)
        cpu, wall, _ = best(lambda e=e: e.render(poses), args.repeats)
        results[f"ego_{w}x{h}_fps_cpu"] = steps / cpu
        results[f"ego_{w}x{h}_fps_wall"] = steps / wall
    states = [WorldState(scenario=sc, sim=sc.tracks, timestep=t, ego_index=vp) for t in range(steps)]
    cpu, wall, _ = best(lambda: [render_bev(s, 256) for s in states], args.repeats)
    results["bev_256_fps_cpu"] = steps / cpu
    results["load_avg_1min_end"] = os.getloadavg()[0]
    targets = {"pose_128x128_fps_cpu": 2000, "pose_768x512_fps_cpu": 300, "ego_128x128_fps_cpu": 500}
    for k, v in targets.items():
        results[k.replace("_fps_cpu", "_vs_target")] = results[k] / v
    if args.json:
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in results.items()}))
    else:
        for k, v in results.items():
            print(f"{k:<42} {v:>10.2f}" if isinstance(v, float) else f"{k:<42} {v:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
