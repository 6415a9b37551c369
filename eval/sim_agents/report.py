"""The benchmark's results: printed table, JSON document, plots (per-feature likelihood bars; rollouts vs log in BEV)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from mad_sim.eval.sim_agents.config import FEATURES
from mad_sim.eval.sim_agents.rollout_set import SimRollouts

from mad_sim.io import atomic_path

TABLE_KEYS = (
    "metametric",
    "kinematic_metrics",
    "interactive_metrics",
    "map_based_metrics",
    "min_average_displacement_error",
    "simulated_collision_rate",
    "simulated_offroad_rate",
    "num_scenarios",
)
PROBE_TABLE_KEYS = (
    "scenarios_probed",
    "followers",
    "min_gap_log_ego",
    "min_gap_brake",
    "speed_drop_log_ego",
    "speed_drop_brake",
    "reaction_speed_drop",
    "rear_end_rate",
)


def table(results: Dict[str, Dict[str, Any]], keys: Sequence[str] = TABLE_KEYS, part: Optional[str] = None) -> str:
    """One row per policy of its aggregate ``keys`` (``part="probe"``: the probe's aggregate)."""
    from mad_sim.eval.report import table as _table

    if part:
        results = {n: r[part] for n, r in results.items() if part in r}
    return _table(results, list(keys))


def probe_notes(results: Dict[str, Dict[str, Any]]) -> str:
    """Lines naming the scenarios the probe could not measure: no follower of the ego in its lane, or an ego
    standing still (the probe's rows are the same for every policy, so the first policy's are read)."""
    rows: List[Dict[str, Any]] = next((r["probe"]["scenarios"] for r in results.values() if "probe" in r), [])
    lines = [f"probe: {sum(r['status'] == 'ok' for r in rows)} of {len(rows)} scenarios probed"]
    for status, what in (
        ("no_followers", "without a follower of the ego in its lane (values null)"),
        ("ego_still", "where the ego stands still at the current step (left out of the means)"),
    ):
        ids = [r["scenario_id"] for r in rows if r["status"] == status]
        if ids:
            more = f" and {len(ids) - 8} more" if len(ids) > 8 else ""
            lines.append(f"probe: {len(ids)} {what}: {', '.join(ids[:8])}{more}")
    return "\n".join(lines)


def document(results: Dict[str, Dict[str, Any]], meta: Dict[str, Any]) -> Dict[str, Any]:
    """``{"policies": {name: {"aggregate", "scenarios", "probe"?}}, "meta"}`` with NaN turned into null."""
    from mad_sim.eval.open_loop import json_safe

    return json_safe({"policies": results, "meta": meta})


def plot_likelihood_bars(results: Dict[str, Dict[str, Any]], path: Union[str, "os.PathLike[str]"]) -> None:
    """Grouped bars: for every feature, each policy's aggregate likelihood (and the meta-metric)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [f"{f}_likelihood" for f in FEATURES] + ["metametric"]
    names = list(results)
    x = np.arange(len(keys))
    w = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(12, 4))
    for i, n in enumerate(names):
        vals = [results[n]["aggregate"].get(k) for k in keys]
        ax.bar(x + i * w, [np.nan if v is None else v for v in vals], w, label=n)
    ax.set_xticks(x + w * (len(names) - 1) / 2, [k.replace("_likelihood", "") for k in keys], rotation=35, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("likelihood")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_rollouts_bev(scenario: Any, rollouts: SimRollouts, path: Union[str, "os.PathLike[str]"], title: str = "") -> None:
    """Top-down view (world frame, m): map polylines (grey), each object's rollouts (thin, colour per
    object) and its logged future (black dashed), around the ego."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr, t0 = scenario.tracks, scenario.current_index
    centre = tr.xy[scenario.sdc_index, t0]
    extent = 60.0
    fig, ax = plt.subplots(figsize=(6, 6))
    rm = scenario.roadmap
    for m in range(rm.num_features):
        pl = rm.polyline(m)
        if len(pl) > 1 and np.abs(pl[:, :2] - centre).min(0).max() < extent:
            ax.plot(pl[:, 0], pl[:, 1], color="0.8", lw=0.6, zorder=1)
    index = {int(i): n for n, i in enumerate(scenario.track_ids)}
    colors = plt.cm.tab20(np.linspace(0, 1, max(rollouts.num_objects, 1)))
    fut = slice(t0 + 1, t0 + 1 + rollouts.num_steps)
    for a, oid in enumerate(rollouts.object_ids):
        row = index[int(oid)]
        if np.abs(tr.xy[row, t0] - centre).max() > extent:
            continue
        for r in range(rollouts.num_rollouts):
            ax.plot(rollouts.xy[r, a, :, 0], rollouts.xy[r, a, :, 1], color=colors[a], lw=0.5, alpha=0.5, zorder=2)
        ok = tr.valid[row, fut]
        ax.plot(tr.xy[row, fut][ok, 0], tr.xy[row, fut][ok, 1], "k--", lw=0.8, zorder=3)
    ax.set_xlim(centre[0] - extent, centre[0] + extent)
    ax.set_ylim(centre[1] - extent, centre[1] + extent)
    ax.set_aspect("equal")
    ax.set_title(title or scenario.scenario_id, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def write_plots(
    results: Dict[str, Dict[str, Any]],
    spec: Any,
    out_dir: Union[str, "os.PathLike[str]"],
    rollout_settings: Any,
    scenario_id: Optional[str] = None,
) -> Path:
    """The likelihood bars and, for ``scenario_id`` (default: the first scenario of ``spec``), one BEV per policy."""
    from mad_sim.eval.sim_agents.rollouts import simulate

    from mad_sim.data.sources import load_scenarios

    out = Path(out_dir)
    plot_likelihood_bars(results, out / "sim_agents_likelihoods.png")
    for scenario in load_scenarios(spec):
        if scenario_id is not None and scenario.scenario_id != scenario_id:
            continue
        for name in results:
            ro = simulate(scenario, name, rollout_settings)
            plot_rollouts_bev(
                scenario,
                ro,
                out / f"{scenario.scenario_id}_{name}_rollouts.png",
                title=f"{scenario.scenario_id} {name}: {ro.num_rollouts} rollouts vs log",
            )
        break
    return out
