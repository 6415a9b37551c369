"""Parse-back figures: band statistics, the targets (:data:`TARGETS`), the JSON report and the printed table.

Turns the :class:`~mad_sim.model.parse.vae_parseback_scoring.Samples` of a
:func:`~mad_sim.model.parse.vae_parseback.measure` run into, per band
(:data:`~mad_sim.model.parse.vae_parseback.BANDS`, plus ``0-30 m`` for the
targets and ``all``):

* ``visible``, ``found``, ``recall``: visible vehicle-frames, those found (gated), their ratio;
* ``detections``, ``true_detections``, ``precision``;
* ``pos_median`` / ``pos_p90`` (m), ``yaw_median_deg``: errors of the found ones;
* ``tracked``, ``track_median`` / ``track_p90`` (m): visible vehicles still tracked and the tracked set's
  ungated errors; ``prior_median`` (m): the same vehicles' error of the parser's prediction from its prior
  alone (no image: the baseline the fit must beat); ``tracked_share`` (of the visible), ``never_tracked_share``
  (never in the prior: for the
  closed loop, not in view at the anchor), ``recall_tracked`` / ``recall_untracked`` (found among the
  tracked / among the others, through entering detection);
* ``lane_pixels``, ``lane_recall``: clean line pixels and the share the frames keep within 1 px;
  ``lit_pixels``, ``line_precision``: the frames' lit pixels away from agents and the share on a line.

:data:`TARGETS`: what a pose representation must keep through the VAE for
the parser to rebuild the world from generated frames (within 30 m: recall
>= 0.9, median position error <= 0.5 m, lane-line recall >= 0.85 after the VAE).  Report keys
(:func:`build_report`): ``representation``, ``protocol``, ``data``,
``scenes``, ``clips``, ``frames``, ``vae`` (compression, latent shape,
patch, ``tokens`` per clip, ``timing``; None with ``--no-vae``), ``clean``
and ``after_vae`` (``{"bands": {name: stats}, "lane_kinds": {...}}``;
``after_vae`` None with ``--no-vae``), ``targets`` (list of ``{name, metric,
op, target, value, met, ceiling, ceiling_met}``), ``wall_s``, ``load``.  :func:`json_safe` writes NaN
(an empty band) as null.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mad_sim.model.parse.vae_parseback import ParsebackResult, Protocol, Representation
from mad_sim.model.parse.vae_parseback_scoring import (
    BANDS,
    LINE_KINDS,
    Samples,
    band_name,
)

NEAR_BAND = "0-30 m"
TARGETS = (
    ("vehicle recall within 30 m", "recall", ">=", 0.9),
    ("median position error within 30 m (m)", "pos_median", "<=", 0.5),
    ("lane-line recall within 30 m", "lane_recall", ">=", 0.85),
)
REPORT_KEYS = (
    "representation",
    "protocol",
    "data",
    "scenes",
    "clips",
    "frames",
    "vae",
    "clean",
    "after_vae",
    "targets",
    "wall_s",
    "load",
)


def _share(x: np.ndarray) -> float:
    return float(np.mean(x)) if x.size else float("nan")


def _stats(
    rng: np.ndarray,
    found: np.ndarray,
    err: np.ndarray,
    yerr: np.ndarray,
    in_prior: np.ndarray,
    tracked: np.ndarray,
    terr: np.ndarray,
    perr: np.ndarray,
    det_true: np.ndarray,
    lane_total: int,
    lane_kept: int,
    lit_total: int,
    lit_on_line: int,
) -> dict[str, float]:
    nan = float("nan")
    e, y, t, p = err[found], yerr[found], terr[tracked], perr[tracked]
    nd = int(det_true.size)
    return {
        "visible": int(rng.size),
        "found": int(found.sum()),
        "recall": float(found.mean()) if rng.size else nan,
        "detections": nd,
        "true_detections": int(det_true.sum()),
        "precision": float(det_true.mean()) if nd else nan,
        "pos_median": float(np.median(e)) if e.size else nan,
        "pos_p90": float(np.percentile(e, 90)) if e.size else nan,
        "yaw_median_deg": float(np.degrees(np.median(y))) if y.size else nan,
        "tracked": int(tracked.sum()),
        "tracked_share": _share(tracked),
        "never_tracked_share": _share(~in_prior),
        "recall_tracked": _share(found[tracked]),
        "recall_untracked": _share(found[~tracked]),
        "track_median": float(np.median(t)) if t.size else nan,
        "track_p90": float(np.percentile(t, 90)) if t.size else nan,
        "prior_median": float(np.median(p)) if p.size else nan,
        "lane_pixels": int(lane_total),
        "lane_recall": lane_kept / lane_total if lane_total else nan,
        "lit_pixels": int(lit_total),
        "line_precision": lit_on_line / lit_total if lit_total else nan,
    }


def band_stats(s: Samples) -> dict[str, Any]:
    """``{"bands": {band: stats}, "lane_kinds": {kind: recall}}`` (module doc) of one frame source."""
    r, f = np.asarray(s.range, np.float64), np.asarray(s.found, bool)
    err, yerr = np.asarray(s.err, np.float64), np.asarray(s.yaw_err, np.float64)
    tr, terr = np.asarray(s.tracked, bool), np.asarray(s.track_err, np.float64)
    ip, perr = np.asarray(s.in_prior, bool), np.asarray(s.prior_err, np.float64)
    dr, dt = np.asarray(s.det_range, np.float64), np.asarray(s.det_true, bool)
    # (name, lo, hi, lane-count slots): the bands, the targets' 0-30 m, and everything (the last slot).
    sel = [(band_name(lo, hi), lo, hi, [i]) for i, (lo, hi) in enumerate(BANDS)]
    sel += [(NEAR_BAND, 0.0, 30.0, [i for i, (lo, hi) in enumerate(BANDS) if hi <= 30.0]), ("all", -np.inf, np.inf, [-1])]
    out: dict[str, dict[str, float]] = {}
    for name, lo, hi, lanes in sel:
        m, md = (r >= lo) & (r < hi), (dr >= lo) & (dr < hi)
        px = [int(a[lanes].sum()) for a in (s.lane_total, s.lane_kept, s.lit_total, s.lit_on_line)]
        out[name] = _stats(r[m], f[m], err[m], yerr[m], ip[m], tr[m] & ~np.isnan(terr[m]), terr[m], perr[m], dt[md], *px)
    kinds = {k: (float(s.kind_kept[i] / s.kind_total[i]) if s.kind_total[i] else float("nan")) for i, k in enumerate(LINE_KINDS)}
    return {"bands": out, "lane_kinds": kinds, "frames": s.frames}


def _check(value: float, op: str, target: float) -> bool:
    return bool(np.isfinite(value) and (value >= target if op == ">=" else value <= target))


def targets(after: dict[str, Any] | None, clean: dict[str, Any]) -> list[dict[str, Any]]:
    """The :data:`TARGETS` on the ``0-30 m`` figures after the VAE (``value``; None without a VAE) and on the
    clean frames (``ceiling``)."""
    out = []
    for name, key, op, target in TARGETS:
        c = clean["bands"][NEAR_BAND][key]
        v = after["bands"][NEAR_BAND][key] if after is not None else None
        out.append(
            {
                "name": name,
                "metric": key,
                "op": op,
                "target": target,
                "value": v,
                "met": _check(v, op, target) if v is not None else None,
                "ceiling": c,
                "ceiling_met": _check(c, op, target),
            }
        )
    return out


def build_report(
    result: ParsebackResult,
    rep: Representation,
    protocol: Protocol,
    vae: dict[str, Any] | None,
    data: Any = None,
    wall_s: float | None = None,
    load: Sequence[float] | None = None,
) -> dict[str, Any]:
    """The JSON-ready report (keys :data:`REPORT_KEYS`) of a :func:`~mad_sim.model.parse.vae_parseback.measure` result."""
    import dataclasses

    clean = band_stats(result.clean)
    after = band_stats(result.vae) if result.vae is not None else None
    return {
        "representation": rep.to_dict(),
        "protocol": dataclasses.asdict(protocol),
        "data": data,
        "scenes": result.scenes,
        "clips": result.clips,
        "frames": clean["frames"],
        "vae": vae,
        "clean": clean,
        "after_vae": after,
        "targets": targets(after, clean),
        "wall_s": wall_s,
        "load": list(load) if load is not None else None,
    }


def json_safe(x: Any) -> Any:
    """``x`` with NaN / inf floats turned into None and numpy scalars into Python ones (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    return x


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None or not np.isfinite(x) else format(x, fmt)


COLUMNS = (
    ("recall", "recall", ".2f"),
    ("prec", "precision", ".2f"),
    ("posMed", "pos_median", ".2f"),
    ("posP90", "pos_p90", ".2f"),
    ("yawDeg", "yaw_median_deg", ".1f"),
    ("trkMed", "track_median", ".2f"),
    ("priMed", "prior_median", ".2f"),
    ("trk%", "tracked_share", ".2f"),
    ("lane", "lane_recall", ".2f"),
    ("lnPrec", "line_precision", ".2f"),
)
"""Printed columns: (header, stats key, format); the legend is :data:`LEGEND`."""
LEGEND = (
    "vis: visible vehicle-frames; recall/prec: vehicles found within the gate / detections that match; "
    "posMed/posP90 (m), yawDeg: errors of the found; trkMed (m): the tracked set's error, ungated; "
    "priMed (m): its prior's prediction alone; "
    "trk%: visible vehicles still tracked; lane: clean line pixels kept within 1 px; lnPrec: lit pixels "
    "away from agents that lie on a line"
)


def format_report(report: dict[str, Any], title: str = "") -> str:
    """The printed table: per band the clean-frame ceiling and the figures after the VAE, then tokens, timing, targets."""
    clean, after = report["clean"], report["after_vae"]
    rep = report["representation"]
    lines = [
        (
            f"== parse-back {title}: {rep['width']}x{rep['height']}, hfov {rep['hfov_deg']:g} deg, camera "
            f"{rep['mount_height']:g} m, pitch {rep['pitch_deg']:g} deg; {report['scenes']} scenes, "
            f"{len(report['clips'])} clips, {report['frames']} frames; prior {report['protocol']['prior']} =="
        )
    ]
    sources = [("clean (ceiling)", clean)] + ([("after VAE", after)] if after is not None else [])
    head = f"{'band':>8} {'vis':>5} | " + " | ".join(" ".join(f"{c[0]:>6}" for c in COLUMNS) for _ in sources)
    lines.append(" " * 17 + " | ".join(f"{n:^{7 * len(COLUMNS) - 1}}" for n, _ in sources))
    lines.append(head)
    for band in clean["bands"]:
        cells = [" ".join(f"{_f(src['bands'][band][k], fmt):>6}" for _, k, fmt in COLUMNS) for _, src in sources]
        lines.append(f"{band:>8} {clean['bands'][band]['visible']:>5} | " + " | ".join(cells))
    lines.append(LEGEND)
    for name, src in sources:
        kinds = ", ".join(f"{k} {_f(v, '.2f')}" for k, v in src["lane_kinds"].items())
        lines.append(f"lane recall by kind within 50 m, {name}: {kinds}")
    vae = report.get("vae")
    if vae:
        t = vae.get("timing") or {}
        lines.append(
            f"VAE {vae['spatial_ratio']}x/{vae['temporal_ratio']}x, latents {vae['latent_shape']}, patch "
            f"{vae['patch']}: {vae['tokens']} tokens per {report['protocol']['frames']}-frame clip; encode "
            f"{_f(t.get('encode_ms_median'), '.0f')} ms + decode {_f(t.get('decode_ms_median'), '.0f')} ms "
            f"(median wall, {t.get('threads')} threads)"
        )
    for tg in report["targets"]:
        v = "not measured" if tg["value"] is None else f"{_f(tg['value'], '.3f')} {'met' if tg['met'] else 'NOT MET'}"
        lines.append(
            f"target {tg['name']} {tg['op']} {tg['target']:g}: after VAE {v}; ceiling "
            f"{_f(tg['ceiling'], '.3f')} {'met' if tg['ceiling_met'] else 'NOT MET'}"
        )
    if report.get("wall_s") is not None:
        load = report.get("load")
        lines.append(f"wall {report['wall_s']:.1f} s" + (f", load average {load[0]:.2f}" if load else ""))
    return "\n".join(lines)


def format_comparison(reports: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """One line per candidate: the within-30 m figures after the VAE (or clean), tokens and VAE time."""
    lines = [
        (
            f"{'candidate':>20} {'tokens':>6} {'vae ms':>7} {'recall':>7} {'pos med':>7} {'lane':>6} "
            f"{'ceil rec':>8} {'ceil pos':>8} targets"
        )
    ]
    for name, r in zip(names, reports):
        src = r["after_vae"] or r["clean"]
        b, c = src["bands"][NEAR_BAND], r["clean"]["bands"][NEAR_BAND]
        vae = r.get("vae") or {}
        t = (vae.get("timing") or {}).get("total_ms_median")
        met = sum(bool(tg["met"] if tg["value"] is not None else tg["ceiling_met"]) for tg in r["targets"])
        lines.append(
            f"{name:>20} {vae.get('tokens', '-'):>6} {_f(t, '.0f'):>7} {_f(b['recall'], '.2f'):>7} "
            f"{_f(b['pos_median'], '.2f'):>7} {_f(b['lane_recall'], '.2f'):>6} {_f(c['recall'], '.2f'):>8} "
            f"{_f(c['pos_median'], '.2f'):>8} {met}/{len(r['targets'])}"
        )
    return "\n".join(lines)


__all__ = [
    "NEAR_BAND",
    "REPORT_KEYS",
    "TARGETS",
    "band_stats",
    "build_report",
    "format_comparison",
    "format_report",
    "json_safe",
    "targets",
]
