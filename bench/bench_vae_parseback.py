"""Parse-back through the VAE: print the table for one candidate pose representation, or compare several.

Renders real scenes' log pose videos from several vehicles' seats (17-frame
clips), round-trips them through the candidate VAE, parses the clean and the
decoded frames back into agents with the project's parser (closed-loop
priors) and compares with the log, per distance band; protocol and figures:
:mod:`mad_sim.model.parse.vae_parseback` and :mod:`mad_sim.model.parse.vae_parseback_report`.

Usage::

    python bench/bench_vae_parseback.py                      # shipped tiny VAE, default scenes
    python bench/bench_vae_parseback.py --no-vae             # clean-frame ceiling only
    python bench/bench_vae_parseback.py --data corpus:val --json runs/parseback.json
    python bench/bench_vae_parseback.py --vae-config vae/config.json --vae-weights vae.safetensors --patch 2
    python bench/bench_vae_parseback.py --candidate name=shipped --candidate name=w256,size=256,weights=runs/b.safetensors

``--candidate KEY=VAL,...`` (repeatable) runs several candidates on the same
clips; keys are this command's option names with ``_`` (``size``, ``width``,
``height``, ``hfov``, ``camera_height``, ``pitch``, ``preset``, ``weights``,
``vae_config``, ``vae_weights``, ``patch``, ``patch_t``, ``no_vae``) or a
:class:`~mad_sim.render.draw.PoseStyle` field (``line_px=2``, ``max_range_m=60``,
colours as ``r/g/b``), plus ``name``; what a candidate leaves out comes from
the other options.  ``--json OUT`` writes the report (one candidate) or
``{"candidates": [report, ...]}``, each report with a ``name``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from mad_sim.data import load_scenarios
from mad_sim.data.root import data_root
from mad_sim.errors import ConfigError
from mad_sim.io import write_text_atomic
from mad_sim.model.parse.vae_parseback import Protocol, Representation, measure
from mad_sim.model.parse.vae_parseback_report import (
    build_report,
    format_comparison,
    format_report,
    json_safe,
)
from mad_sim.render.draw import PoseStyle

SHARED = data_root()
DEFAULT_DATA = [str(SHARED / "womd" / "*scenario*.tfrecord"), str(SHARED / "scenarionet" / "*.pkl")]
"""The WOMD Scenario files (womd_scenario_input, motion_data_one_scenario) and the ScenarioNet pickle."""
CANDIDATE_KEYS = (
    "name",
    "size",
    "width",
    "height",
    "hfov",
    "camera_height",
    "pitch",
    "preset",
    "weights",
    "vae_config",
    "vae_weights",
    "patch",
    "patch_t",
    "no_vae",
)


def _style_value(name: str, text: str, default: Any) -> Any:
    if isinstance(default, bool):
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ConfigError(f"style {name}={text!r}: expected true/false")
        return text.lower() in ("1", "true", "yes")
    if isinstance(default, tuple):
        return tuple(int(x) for x in text.split("/"))
    return type(default)(text)


def parse_style(pairs: list[tuple[str, str]]) -> PoseStyle:
    """A :class:`PoseStyle` with the given ``(field, text)`` overrides (ConfigError names an unknown field)."""
    base = PoseStyle()
    fields = {f.name for f in dataclasses.fields(PoseStyle)}
    kw = {}
    for k, v in pairs:
        if k not in fields:
            raise ConfigError(f"unknown pose style field {k!r} (known: {', '.join(sorted(fields))})")
        kw[k] = _style_value(k, v, getattr(base, k))
    return dataclasses.replace(base, **kw)


def _pairs(text: str) -> list[tuple[str, str]]:
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise ConfigError(f"{item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        out.append((k.strip().replace("-", "_"), v.strip()))
    return out


def candidate_options(args: argparse.Namespace, text: str | None) -> dict[str, Any]:
    """The options of one candidate: ``args`` overridden by a ``--candidate`` text."""
    opts: dict[str, Any] = {k: getattr(args, k, None) for k in CANDIDATE_KEYS if k != "name"}
    opts["name"] = "candidate"
    style = _pairs(args.style or "")
    style_fields = {f.name for f in dataclasses.fields(PoseStyle)}
    for k, v in _pairs(text or ""):
        if k in style_fields:
            style.append((k, v))
        elif k not in CANDIDATE_KEYS:
            raise ConfigError(f"--candidate key {k!r} is not one of {', '.join(CANDIDATE_KEYS)} or a style field")
        elif k == "no_vae":
            opts[k] = v.lower() in ("1", "true", "yes")
        else:
            opts[k] = v
    opts["style"] = parse_style(style)
    if opts.get("size"):
        opts["width"] = opts["height"] = int(opts["size"])
    if text is None:
        opts["name"] = "no-vae" if opts["no_vae"] else Path(str(opts["weights"] or opts["vae_weights"] or "shipped")).stem
    return opts


def run_candidate(opts: dict[str, Any], scenarios: list, protocol: Protocol, data: Any, progress: bool) -> dict[str, Any]:
    from mad_sim.model.presets import get_preset

    mount = get_preset(str(opts["preset"]), path="").camera  # the camera left out is the preset's
    rep = Representation(
        width=int(opts["width"]),
        height=int(opts["height"]),
        hfov_deg=float(opts["hfov"] if opts["hfov"] is not None else mount.hfov_deg),
        mount_height=float(opts["camera_height"] if opts["camera_height"] is not None else mount.mount_height),
        pitch_deg=float(opts["pitch"] if opts["pitch"] is not None else mount.pitch_deg),
        style=opts["style"],
    )
    roundtrip = None
    if not opts["no_vae"]:
        from mad_sim.model.parse.vae_roundtrip import VaeRoundTrip, VaeSpec

        spec = VaeSpec(
            preset=opts["preset"],
            weights=opts["weights"],
            vae_config=opts["vae_config"],
            vae_weights=opts["vae_weights"],
            patch_size=int(opts["patch"]) if opts["patch"] else None,
            patch_size_t=int(opts["patch_t"]) if opts["patch_t"] else None,
        )
        roundtrip = VaeRoundTrip(spec)
    tic = time.perf_counter()
    result = measure(scenarios, rep, protocol, roundtrip, progress=progress)
    vae = None
    if roundtrip is not None:
        vae = {**roundtrip.describe(protocol.frames, rep.height, rep.width), "timing": roundtrip.timing()}
    report = build_report(result, rep, protocol, vae, data=data, wall_s=time.perf_counter() - tic, load=os.getloadavg())
    return {"name": opts["name"], **report}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--data", nargs="+", default=DEFAULT_DATA, help="load_scenarios spec(s): paths, globs, corpus:val")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--no-vae", dest="no_vae", action="store_true", help="clean-frame ceiling only")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--weights", help="the preset's backbone file or diffusers directory (default shipped; 'random')")
    ap.add_argument("--vae-config", dest="vae_config", help="diffusers AutoencoderKLLTXVideo config.json or folder")
    ap.add_argument("--vae-weights", dest="vae_weights", help="safetensors for --vae-config")
    ap.add_argument("--patch", help="transformer patch size for the token count (default: the preset's)")
    ap.add_argument("--patch-t", dest="patch_t", help="transformer temporal patch size")
    ap.add_argument("--size", help="square frame size (sets --width and --height)")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--hfov", type=float, help="horizontal field of view, degrees (default: the preset's pose camera)")
    ap.add_argument("--camera-height", dest="camera_height", type=float, help="metres (default: the preset's pose camera)")
    ap.add_argument("--pitch", type=float, help="downward tilt, degrees (default: the preset's pose camera)")
    ap.add_argument("--style", help="PoseStyle overrides, e.g. line_px=2,max_range_m=60")
    ap.add_argument("--prior", default="closed-loop", choices=("closed-loop", "log"))
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--seats", type=int, default=3, help="other vehicles' seats per scene besides the SDC")
    ap.add_argument("--clips-per-seat", dest="clips_per_seat", type=int, default=2)
    ap.add_argument("--max-clips", dest="max_clips", type=int)
    ap.add_argument("--min-pixels", dest="min_pixels", type=int, default=6)
    ap.add_argument("--no-detect", dest="detect", action="store_false", help="no entering-agent detection")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, help="torch threads")
    ap.add_argument("--candidate", action="append", help="KEY=VAL,... (repeatable): compare candidates")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    from mad_sim.model.cpu_paths import describe  # the CPU fast paths this machine gets

    print(f"machine: {describe()}", flush=True)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    protocol = Protocol(
        frames=args.frames,
        seats=args.seats,
        clips_per_seat=args.clips_per_seat,
        prior=args.prior,
        detect=args.detect,
        min_pixels=args.min_pixels,
        seed=args.seed,
        max_clips=args.max_clips,
    )
    data = args.data[0] if len(args.data) == 1 else list(args.data)
    scenarios = list(load_scenarios(data))
    print(f"{len(scenarios)} scenes from {data}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    reports = []
    for text in args.candidate or [None]:
        rep = run_candidate(candidate_options(args, text), scenarios, protocol, data, args.progress)
        print(format_report(rep, rep["name"]) + "\n", flush=True)
        reports.append(rep)
    if len(reports) > 1:
        print(format_comparison(reports, [r["name"] for r in reports]))
    if args.json:
        out = reports[0] if len(reports) == 1 else {"candidates": reports}
        write_text_atomic(args.json, json.dumps(json_safe(out), indent=1, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
