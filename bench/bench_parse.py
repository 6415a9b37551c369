"""Parse-back and odometry accuracy on rendered WOMD log frames (prints figures; asserts nothing).

Parsing: the log is rendered from the SDC at steps 20, 25, ..., 90; the prior
is the log one step earlier with +-1 m / +-10 deg uniform noise and 20% of
the visible agents hidden (they must be detected as entering).  Printed per
distance band: median / p90 position error of visible known agents after the
fit, the same for the constant-velocity prediction from the perturbed prior
(the baseline, measured in the same run), and the error split across / along
the camera ray; then found rate, entering recall / precision, time per frame.

Odometry: ADE / FDE of the recovered SDC trajectory against the log over 17
and 33 frames from several start steps, against two baselines from the same
run: standing still, and constant velocity from the log's first step.

Usage: python bench/bench_parse.py [--data PATH] [--sizes 128,256] [--degrade]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from mad_sim.data import load_scenario
from mad_sim.model.odometry import estimate_ego_motion, trajectory_in_first_frame
from mad_sim.model.parse import PoseParser
from mad_sim.model.parse_eval import degrade, evaluate_parse
from mad_sim.render.pose import PoseRenderer

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "womd" / "womd_scenario_input.tfrecord"


def bench_parse(sc, width: int, degraded: bool) -> None:
    parser = PoseParser(renderer=PoseRenderer(width, width))
    tic = time.perf_counter()
    ev = evaluate_parse(sc, range(20, 91, 5), parser, np.random.default_rng(0), degrade_frames=degraded)
    per_frame = (time.perf_counter() - tic) / ev.frames
    tag = f"{width}x{width}{' degraded' if degraded else ''}"
    print(f"\n== parse {tag}: {ev.frames} frames, {len(ev.errors)} visible known agents ==")
    fit, base = ev.band_stats(), ev.band_stats(which="prior_errors")
    lat, rad = ev.band_stats(which="lateral"), ev.band_stats(which="radial")
    print(f"{'band':>9} {'n':>4} {'fit med':>8} {'fit p90':>8} {'prior med':>9} {'prior p90':>9} {'across med':>10} "
          f"{'along med':>9}")
    for k in fit:
        print(f"{k:>9} {fit[k]['n']:>4} {fit[k]['median']:>8.2f} {fit[k]['p90']:>8.2f} {base[k]['median']:>9.2f} "
              f"{base[k]['p90']:>9.2f} {lat[k]['median']:>10.2f} {rad[k]['median']:>9.2f}")
    print(f"found (reported visible) {ev.found_rate:.2f}; visible wrongly 'left' {ev.left_false}; "
          f"vehicle yaw error median {np.degrees(np.nanmedian(ev.yaw_errors)):.1f} deg")
    print(f"entering: recall {ev.recall:.2f} ({int(np.sum(ev.hidden_found))}/{len(ev.hidden_found)} hidden), "
          f"precision {ev.precision:.2f} ({ev.true_detections}/{ev.detections} detections)")
    print(f"time per frame (render + parse): {per_frame * 1000:.0f} ms")


def bench_odometry(sc, width: int, degraded: bool) -> None:
    r = PoseRenderer(width, width)
    e = sc.sdc_index
    rng = np.random.default_rng(0)
    print(f"\n== odometry {width}x{width}{' degraded' if degraded else ''} (SDC) ==")
    print(f"{'t0':>3} {'F':>3} {'dist m':>6} {'ADE':>6} {'FDE':>6} {'still ADE':>9} {'CV ADE':>7} {'ms/frame':>8}")
    for frames in (17, 33):
        for t0 in (10, 25, 40, 55):
            if t0 + frames > sc.num_steps:
                continue
            video = r.render_scenario(sc, e, t0, t0 + frames)
            if degraded:
                video = np.stack([degrade(f, rng) for f in video])
            tic = time.perf_counter()
            est = estimate_ego_motion(video, r.camera)
            ms = (time.perf_counter() - tic) / frames * 1000
            gt = trajectory_in_first_frame(sc.tracks.xy[e, t0:t0 + frames], sc.tracks.heading[e, t0:t0 + frames])
            err = np.hypot(*(est[:, :2] - gt[:, :2]).T)
            still = np.hypot(*gt[:, :2].T).mean()
            cv = np.arange(frames)[:, None] * gt[1, :2]
            cv_ade = np.hypot(*(cv - gt[:, :2]).T).mean()
            print(f"{t0:>3} {frames:>3} {np.hypot(*gt[-1, :2]):>6.1f} {err.mean():>6.2f} {err[-1]:>6.2f} {still:>9.2f} "
                  f"{cv_ade:>7.2f} {ms:>8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT))
    ap.add_argument("--sizes", default="128,256")
    ap.add_argument("--degrade", action="store_true", help="also run on degraded (generated-looking) frames")
    args = ap.parse_args()
    sc = load_scenario(args.data)
    for w in (int(x) for x in args.sizes.split(",")):
        for deg in ((False, True) if args.degrade else (False,)):
            bench_parse(sc, w, deg)
            bench_odometry(sc, w, deg)


if __name__ == "__main__":
    main()
