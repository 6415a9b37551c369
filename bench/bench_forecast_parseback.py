"""Forecast parse-back on real validation scenes: the learned agents' parsed futures against the log (issue 14).

From the SDC's seat at context steps ``--steps`` of each scene, the learned
agents forecast ``future_frames`` pose frames (17 for tiny, 1.6 s) along the
logged ego path and parse them back into agent states exactly as in closed
loop; a constant-velocity future of the same agents is drawn by the same
renderer and parsed the same way (``cv_parsed``), scored raw too
(``cv_raw``), and the logged future drawn and parsed gives the parser's
ceiling (``log_parsed``), and the same through the model's VAE the representation's
ceiling (``vae_log``).  Vehicles within ``--radius`` m in view are scored at
``--horizons`` steps: recall within ``--gate`` m and the error (m) of the
found ones.  Protocol: :mod:`mad_sim.eval.forecast_parseback`.

Usage::

    python bench/bench_forecast_parseback.py                       # six Waymax val scenes, shipped weights
    python bench/bench_forecast_parseback.py --out runs/forecast_parseback.json --agent-option sampler_steps=8
    python bench/bench_forecast_parseback.py --data corpus:val --weights PATH --lora runs/motion.safetensors

``--agent-option KEY=VALUE`` (repeatable) sets any field of
:class:`~mad_sim.model.agents.settings.LearnedAgentSettings` (values read as
YAML; an unknown key is an error naming the known ones).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List

import numpy as np

from mad_sim.data.root import waymax_validation_files
from mad_sim.data.scenario import DT

DEFAULT_DATA = waymax_validation_files()
"""The six Waymax validation scenarios (never trained on)."""


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def agent_settings(args: argparse.Namespace) -> Any:
    """:class:`LearnedAgentSettings` from ``--weights / --lora / --threads`` and the ``--agent-option`` pairs."""
    from mad_sim.cli.demo import parse_options
    from mad_sim.config import from_dict
    from mad_sim.model.agents.settings import LearnedAgentSettings

    options: Dict[str, Any] = {"weights": args.weights, "threads": args.threads}
    if args.lora:
        options["lora"] = args.lora
    options.update(parse_options(args.agent_option))
    return from_dict(options, LearnedAgentSettings, source="--agent-option")


def format_table(report: Dict[str, Any]) -> str:
    """A :func:`~mad_sim.eval.forecast_parseback.measure` report's summary as a table (per source, horizon)."""
    p = report["protocol"]
    lines = [
        f"forecast parse-back: {report['num_contexts']} contexts on {len(report['scenes'])} scenes "
        f"(t in {list(p['steps'])}), vehicles within {p['radius_m']:g} m in view, gate {p['gate_m']:g} m",
        f"weights: {report['weights']} ({report['sampler_steps']} sampler steps)",
    ]

    def num(x: Any, fmt: str) -> str:
        return "-" if x is None or not np.isfinite(x) else format(x, fmt)

    for key, title in (("summary", "all scored vehicles"), ("summary_moving", f"moving >= {p['moving_mps']:g} m/s at t")):
        lines.append(
            f"{title:18s} {'k':>3s} {'s':>4s} {'counted':>8s} {'found':>6s} {'fit':>5s} {'matched':>8s} {'recall':>7s} "
            f"{'fit rec':>7s} {'median m':>9s} {'p90 m':>7s}"
        )
        for src, per_k in report[key].items():
            for k, r in per_k.items():
                lines.append(
                    f"  {src:16s} {int(k):3d} {int(k) * DT:4.1f} {r['counted']:8d} {r['found']:6d} {r['fit']:5d} "
                    f"{r['matched']:8d} {num(r['recall'], '7.3f')} {num(r['fit_recall'], '7.3f')} "
                    f"{num(r['median_m'], '9.2f')} {num(r['p90_m'], '7.2f')}"
                )
    fits = ", ".join(f"{src} {v['fitted'] / max(v['fitted'] + v['lost'], 1):.3f}" for src, v in report.get("parser", {}).items())
    lines.append(f"parser per-frame fit rate (all tracked agents): {fits}")
    sec = report["seconds"]
    lines.append(f"seconds: total {sec['total']:.1f}, " + ", ".join(f"{s} {sec[s]:.1f}" for s in sec if s != "total"))
    return "\n".join(lines)


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--data", nargs="+", default=DEFAULT_DATA, help="load_scenarios spec(s) (default: the six Waymax val scenes)")
    ap.add_argument("--steps", type=_ints, default=(10, 30, 50), help="context steps t per scene, e.g. 10,30,50")
    ap.add_argument("--horizons", type=_ints, default=(5, 10, 16), help="steps after t scored (0.1 s each)")
    ap.add_argument("--radius", type=float, default=30.0, help="metres from the ego at t: vehicles scored")
    ap.add_argument("--gate", type=float, default=2.0, help="metres: a found agent this close to the log is matched")
    ap.add_argument("--moving", type=float, default=1.0, help="m/s at t: the 'moving' summary keeps faster vehicles")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default="auto", help="auto / shipped, random, or a base safetensors path")
    ap.add_argument("--lora", help="motion LoRA safetensors (default: the shipped one)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the sampler")
    ap.add_argument("--agent-option", action="append", default=[], metavar="KEY=VALUE", help="a LearnedAgentSettings field")
    ap.add_argument("--out", help="write the JSON report here")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    args = ap.parse_args(argv)

    import torch
    from mad_sim.eval.forecast_parseback import ParsebackProtocol, measure

    from mad_sim.data import load_scenarios
    from mad_sim.io import write_text_atomic
    from mad_sim.model.parse.vae_parseback_report import json_safe

    torch.set_num_threads(args.threads)
    settings = agent_settings(args)
    protocol = ParsebackProtocol(
        steps=args.steps, horizons=args.horizons, radius_m=args.radius, gate_m=args.gate, seed=args.seed, moving_mps=args.moving
    )
    data = args.data[0] if len(args.data) == 1 else list(args.data)
    scenarios = list(load_scenarios(data))
    load = os.getloadavg()[0]
    print(f"{len(scenarios)} scenes; load average {load:.2f} on {os.cpu_count()} CPUs; torch threads {args.threads}", flush=True)
    report, _ = measure(scenarios, settings, protocol, progress=args.progress)
    report["load_average"] = [load, os.getloadavg()[0]]
    report["command"] = " ".join(sys.argv if argv is None else ["bench/bench_forecast_parseback.py", *argv])
    print(format_table(report))
    if args.out:
        write_text_atomic(args.out, json.dumps(json_safe(report), indent=1, allow_nan=False))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
