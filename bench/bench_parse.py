"""Parse-back speed and accuracy, and odometry accuracy, on rendered WOMD log frames (prints figures; asserts nothing).

Parsing: the log is rendered from the SDC at steps 20, 25, ..., 90; the prior
is the log one step earlier with uniform noise (+-1 m / +-10 deg: the
*wide* protocol; +-0.3 m / +-3 deg: the *narrow* one, a closed loop whose
prior is the previous frame's fit) and, with entering detection on, 20% of
the visible agents hidden (they must be detected as entering).  Printed per
distance band: median / p90 position error of visible known agents after the
fit, the same for the constant-velocity prediction from the perturbed prior
(measured in the same run), and the error split across / along the camera
ray; then found rate, entering recall / precision.

Speed: CPU and wall milliseconds per :meth:`PoseParser.parse` call (the
rendering and the evaluation around it are not counted), for

* ``exhaustive`` -- the baseline, measured in the same run: the search as it
  was before the fast path (levels 0.5 m x 7 x 7 x 5 deg x 7 = 343
  candidates, then 27 + 27, then the 27-candidate refine level), every
  candidate scored by :func:`~mad_sim.model.parse.skeleton_fit.score` (exact
  projection, two bilinear lookups per sample);
* ``default`` -- :class:`ParseConfig` defaults (+-1.5 m / +-15 deg search);
* ``narrow`` -- :meth:`ParseConfig.narrow` (+-0.4 m / +-4 deg, the fine levels only);

with entering detection off (the closed loop's setting) unless marked.
The machine's load average is printed with the figures: on a shared 2-core
box wall time tracks the load, CPU time much less.

Odometry: ADE / FDE of the recovered SDC trajectory against the log over 17
and 33 frames from several start steps, against two baselines from the same
run: standing still, and constant velocity from the log's first step; clean
and degraded (generated-looking) frames.

Usage: python bench/bench_parse.py [--data PATH] [--sizes 128] [--degrade] [--no-odometry]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Dict, Sequence, Tuple

import numpy as np

from mad_sim.data import load_scenario
from mad_sim.data.root import data_root
from mad_sim.model.evaluation.parse import ParseEval, degrade, evaluate_parse
from mad_sim.model.parse.config import ParseConfig
from mad_sim.model.parse.odometry import estimate_ego_motion, trajectory_in_first_frame
from mad_sim.model.parse.parser import PoseParser
from mad_sim.model.parse.pixels import pixel_maps
from mad_sim.model.parse.search import Level
from mad_sim.model.parse.skeleton_fit import body_samples, score, template
from mad_sim.render.pose import PoseRenderer

DEFAULT = data_root() / "womd" / "womd_scenario_input.tfrecord"
EXHAUSTIVE_LEVELS = ((0.5, 7, 5.0, 7), (0.2, 3, 2.0, 3), (0.08, 3, 0.8, 3))
STEPS = range(20, 91, 5)


class ExhaustiveParser(PoseParser):
    """The baseline: every candidate of every level scored by :func:`skeleton_fit.score` on dense distance maps."""

    def __init__(self, renderer: PoseRenderer, detect: bool = False) -> None:
        super().__init__(
            renderer=renderer,
            config=ParseConfig(
                search_radius_m=0.0, search_yaw_deg=0.0, levels=EXHAUSTIVE_LEVELS, small_agent_px=0.0, detect=detect
            ),
        )

    def parse(self, frame, *args, **kw):
        self._dense = pixel_maps(frame, self.tau, self.config.pixels)
        return super().parse(frame, *args, **kw)

    def _search(self, cmaps, act, start, pred, pred_xyz, size, types, occ, levels: Sequence[Level], per_edge, small=None):
        best = np.asarray(start, np.float64).copy()
        cam = self.camera
        for c, sel in self._groups(act, types):
            rows = act[sel]
            tpl = template(c, per_edge)
            body = body_samples(c, size[rows], per_edge)
            depth = cam.to_camera(pred_xyz[rows])[:, 2]
            cur = best[sel]
            for lv in levels:
                offs = np.concatenate([np.repeat(lv.xy, lv.yaw.size, 0), np.tile(lv.yaw, lv.xy.shape[0])[:, None]], 1)
                cand = cur[:, None, :] + offs[None]
                sc = score(
                    cam,
                    self._dense,
                    c,
                    body,
                    tpl.colour,
                    cand,
                    pred_xyz[rows, 2],
                    size[rows, 2],
                    depth,
                    occ,
                    pred[sel],
                    self.config.score,
                )
                cur = cand[np.arange(rows.size), np.argmin(sc.cost, 1)]
            best[sel] = cur
        return best


def _timed(parser: PoseParser) -> Dict[str, float]:
    """Wrap ``parser.parse`` to accumulate CPU and wall seconds and calls."""
    acc = {"cpu": 0.0, "wall": 0.0, "calls": 0}
    inner = parser.parse

    def parse(*a, **k):
        c0, w0 = time.process_time(), time.perf_counter()
        out = inner(*a, **k)
        acc["cpu"] += time.process_time() - c0
        acc["wall"] += time.perf_counter() - w0
        acc["calls"] += 1
        return out

    parser.parse = parse  # type: ignore[method-assign]
    return acc


def run_parse(sc, parser: PoseParser, degraded: bool, narrow: bool, hide: bool) -> Tuple[ParseEval, Dict[str, float]]:
    acc = _timed(parser)
    noise, yaw = (0.3, 3.0) if narrow else (1.0, 10.0)
    ev = evaluate_parse(
        sc,
        STEPS,
        parser,
        np.random.default_rng(0),
        pos_noise=noise,
        yaw_noise=np.radians(yaw),
        hide_frac=0.2 if hide else 0.0,
        degrade_frames=degraded,
    )
    return ev, acc


def print_accuracy(title: str, ev: ParseEval, detect: bool) -> None:
    print(f"\n-- {title}: {ev.frames} frames, {len(ev.errors)} visible known agents --")
    fit, base = ev.band_stats(), ev.band_stats(which="prior_errors")
    lat, rad = ev.band_stats(which="lateral"), ev.band_stats(which="radial")
    print(
        f"{'band':>9} {'n':>4} {'fit med':>8} {'fit p90':>8} {'prior med':>9} {'prior p90':>9} {'across med':>10} "
        f"{'along med':>9}"
    )
    for k in fit:
        print(
            f"{k:>9} {fit[k]['n']:>4} {fit[k]['median']:>8.2f} {fit[k]['p90']:>8.2f} {base[k]['median']:>9.2f} "
            f"{base[k]['p90']:>9.2f} {lat[k]['median']:>10.2f} {rad[k]['median']:>9.2f}"
        )
    print(
        f"found (reported visible) {ev.found_rate:.2f}; visible wrongly 'left' {ev.left_false}; "
        f"vehicle yaw error median {np.degrees(np.nanmedian(ev.yaw_errors)):.1f} deg"
    )
    if detect:
        print(
            f"entering: recall {ev.recall:.2f} ({int(np.sum(ev.hidden_found))}/{len(ev.hidden_found)} hidden), "
            f"precision {ev.precision:.2f} ({ev.true_detections}/{ev.detections} detections)"
        )


def bench_parse(sc, width: int, degraded: bool) -> None:
    tag = f"{width}x{width}{' degraded' if degraded else ''}"
    print(f"\n== parse {tag} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs) ==")
    r = PoseRenderer(width, width)
    runs = [
        # name, parser, protocol narrow?, entering detection?
        ("exhaustive", ExhaustiveParser(r), False, False),
        ("default", PoseParser(renderer=r, config=ParseConfig(detect=False)), False, False),
        ("exhaustive", ExhaustiveParser(r), True, False),
        ("narrow", PoseParser(renderer=r, config=ParseConfig.narrow(detect=False)), True, False),
        ("default", PoseParser(renderer=r, config=ParseConfig(detect=False)), True, False),
        ("default+detect", PoseParser(renderer=r, config=ParseConfig(detect=True)), False, True),
    ]
    times = []
    base: Dict[bool, float] = {}
    for name, parser, narrow, detect in runs:
        ev, acc = run_parse(sc, parser, degraded, narrow, detect)
        proto = "narrow +-0.3 m/3 deg" if narrow else "wide +-1 m/10 deg"
        print_accuracy(f"{name} search, {proto} prior", ev, detect)
        cpu, wall = acc["cpu"] / acc["calls"] * 1000, acc["wall"] / acc["calls"] * 1000
        if name == "exhaustive":
            base[narrow] = cpu
        times.append((name, proto, cpu, wall, base.get(narrow, float("nan")) / cpu))
    print(f"\nparse time per frame, {tag} (load average now {os.getloadavg()[0]:.1f}):")
    print(f"{'search':>15} {'prior':>22} {'cpu ms':>7} {'wall ms':>8} {'speed-up (cpu) vs exhaustive':>29}")
    for name, proto, cpu, wall, ratio in times:
        print(f"{name:>15} {proto:>22} {cpu:>7.1f} {wall:>8.1f} {ratio:>29.1f}")


def bench_odometry(sc, width: int, degraded: bool) -> None:
    r = PoseRenderer(width, width)
    e = sc.sdc_index
    rng = np.random.default_rng(0)
    print(f"\n== odometry {width}x{width}{' degraded' if degraded else ''} (SDC) ==")
    print(f"{'t0':>3} {'F':>3} {'dist m':>6} {'ADE':>6} {'FDE':>6} {'still ADE':>9} {'CV ADE':>7} {'cpu ms/frame':>12}")
    for frames in (17, 33):
        for t0 in (10, 25, 40, 55):
            if t0 + frames > sc.num_steps:
                continue
            video = r.render_scenario(sc, e, t0, t0 + frames)
            if degraded:
                video = np.stack([degrade(f, rng) for f in video])
            tic = time.process_time()
            est = estimate_ego_motion(video, r.camera)
            ms = (time.process_time() - tic) / frames * 1000
            gt = trajectory_in_first_frame(sc.tracks.xy[e, t0 : t0 + frames], sc.tracks.heading[e, t0 : t0 + frames])
            err = np.hypot(*(est[:, :2] - gt[:, :2]).T)
            still = np.hypot(*gt[:, :2].T).mean()
            cv = np.arange(frames)[:, None] * gt[1, :2]
            cv_ade = np.hypot(*(cv - gt[:, :2]).T).mean()
            print(
                f"{t0:>3} {frames:>3} {np.hypot(*gt[-1, :2]):>6.1f} {err.mean():>6.2f} {err[-1]:>6.2f} {still:>9.2f} "
                f"{cv_ade:>7.2f} {ms:>12.0f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT))
    ap.add_argument("--sizes", default="128")
    ap.add_argument("--degrade", action="store_true", help="also run on degraded (generated-looking) frames")
    ap.add_argument("--no-odometry", action="store_true", help="parse figures only")
    args = ap.parse_args()
    from mad_sim.model.cpu_paths import describe  # the CPU fast paths this machine gets

    print(f"machine: {describe()}", flush=True)
    sc = load_scenario(args.data)
    for w in (int(x) for x in args.sizes.split(",")):
        for deg in (False, True) if args.degrade else (False,):
            bench_parse(sc, w, deg)
            if not args.no_odometry:
                bench_odometry(sc, w, deg)


if __name__ == "__main__":
    main()
