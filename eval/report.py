"""Results as a text table, a JSON file (atomic) and matplotlib figures."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from mad_sim.eval.open_loop import json_safe

from mad_sim.io import atomic_path, write_text_atomic


def table(results: Dict[str, Dict[str, Any]], keys: Sequence[str]) -> str:
    """One row per planner with the aggregate ``keys`` (``-`` where unscored)."""
    head = ["planner"] + list(keys)
    rows = [head]
    for name, res in results.items():
        agg = res["aggregate"]
        rows.append(
            [name]
            + ["-" if agg.get(k) is None else (f"{agg[k]:.3f}" if isinstance(agg[k], float) else str(agg[k])) for k in keys]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)


def results_document(results: Dict[str, Dict[str, Any]], meta: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One planner: ``{"aggregate", "scenarios", "meta"}``; several: ``{"planners": {name: ...}, "meta"}``."""
    if len(results) == 1:
        doc = dict(next(iter(results.values())))
        doc["planner"] = next(iter(results))
    else:
        doc = {"planners": results}
    if meta:
        doc["meta"] = meta
    return json_safe(doc)


def write_json(path: Union[str, os.PathLike], doc: Dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")


def plot_metric_bars(results: Dict[str, Dict[str, Any]], keys: Sequence[str], path: Union[str, os.PathLike]) -> None:
    """A bar group per metric, one bar per planner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, len(keys), figsize=(2.6 * len(keys), 3.0), squeeze=False)
    for ax, key in zip(axes[0], keys):
        vals = [results[n]["aggregate"].get(key) for n in names]
        ax.bar(range(len(names)), [np.nan if v is None else v for v in vals], color=plt.cm.tab10(np.arange(len(names))))
        ax.set_xticks(range(len(names)), names, rotation=30)
        ax.set_title(key)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_plan_bev(
    scenario: Any,
    plan_xy_world: np.ndarray,
    probabilities: np.ndarray,
    t0: int,
    horizon: int,
    path: Union[str, os.PathLike],
    title: str = "",
) -> None:
    """Top-down view: map polylines (grey), the K planned trajectories (colour, width by probability),
    the logged ego future (black dashed) and the other agents at t0 (dots).  World frame, metres."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rm = scenario.roadmap
    ego = scenario.sdc_index
    tr = scenario.tracks
    fut = tr.xy[ego, t0 : t0 + horizon + 1][tr.valid[ego, t0 : t0 + horizon + 1]]
    centre = tr.xy[ego, t0]
    extent = max(30.0, float(np.abs(np.concatenate([plan_xy_world.reshape(-1, 2), fut]) - centre).max()) + 10.0)
    fig, ax = plt.subplots(figsize=(5, 5))
    for m in range(rm.num_features):
        pl = rm.polyline(m)
        if len(pl) > 1 and np.abs(pl[:, :2] - centre).min(0).max() < extent:
            ax.plot(pl[:, 0], pl[:, 1], color="0.8", lw=0.6, zorder=1)
    others = tr.valid[:, t0] & (np.arange(tr.num_objects) != ego)
    ax.scatter(tr.xy[others, t0, 0], tr.xy[others, t0, 1], s=6, color="tab:blue", zorder=2)
    colors = plt.cm.viridis(np.linspace(0, 1, len(plan_xy_world)))
    for k, (xy, p) in enumerate(zip(plan_xy_world, probabilities)):
        ax.plot(xy[:, 0], xy[:, 1], color=colors[k], lw=1 + 4 * float(p), zorder=3, label=f"{k}: p={p:.2f}")
    if len(fut):
        ax.plot(fut[:, 0], fut[:, 1], "k--", lw=1.5, zorder=4, label="log")
    ax.set_xlim(centre[0] - extent, centre[0] + extent)
    ax.set_ylim(centre[1] - extent, centre[1] + extent)
    ax.set_aspect("equal")
    ax.legend(fontsize=6, loc="upper right")
    ax.set_title(title or scenario.scenario_id, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_scenarios(
    spec: Any, planners: List[str], k: int, horizon: int, out_dir: Union[str, os.PathLike], limit: int = 8
) -> List[Path]:
    """BEV plots of each planner's K trajectories on the first ``limit`` scenarios of ``spec``."""
    from mad_sim.planners import context_from_scenario, make_planner

    from mad_sim.data.frames import ego_to_world
    from mad_sim.data.sources import load_scenarios

    out = []
    for i, scenario in enumerate(load_scenarios(spec)):
        if i >= limit:
            break
        ctx = context_from_scenario(scenario, horizon=horizon)
        for name in planners:
            plan = make_planner(name).plan(ctx, k, horizon)
            world = ego_to_world(plan.xy, ctx.origin_xy, ctx.origin_yaw)
            path = Path(out_dir) / f"{scenario.scenario_id}_{name}.png"
            plot_plan_bev(
                scenario,
                world,
                plan.probabilities,
                scenario.current_index,
                horizon,
                path,
                title=f"{scenario.scenario_id} {name} K={k}",
            )
            out.append(path)
    return out
