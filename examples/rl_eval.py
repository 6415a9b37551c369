"""Score ego policies on real scenes: return, route completion, collision and offroad rates.

    python examples/rl_eval.py --scenes corpus:val --policies zero,throttle,random,expert,idm

Every scene is driven once from its ``current_index`` with its logged SDC as
the ego and the other agents replayed from the log (``agents="log"``), by
each policy:

- ``zero``: the action held at 0 (no acceleration, no curvature: straight on at the initial speed);
- ``throttle``: full acceleration, straight;
- ``random``: uniform actions (seeded);
- ``expert``: the logged ego path tracked by the bicycle controller (:mod:`mad_sim.planners.expert`);
- ``idm``: the IDM lane-following planner (:mod:`mad_sim.planners.idm`), replanning every 5 steps;
- a trained stable-baselines3 model, through :func:`model_policy`.

Prints one row per policy: the mean return, collision (any overlap, and
at fault: :mod:`mad_sim.envs.reward`) and offroad rates over all scenes, and
route completion and the share of the route driven over the scenes whose
logged ego drives at least 2 m ahead (the others have no route to complete,
:mod:`mad_sim.envs.route`); ``--json`` writes the rows.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

ENV_KWARGS: Dict[str, Any] = dict(agents="log", action="bicycle", obs_mode="flat", num_agents=8, num_roadgraph_points=64)
"""The env the PPO example trains and evaluates on (flat observation for an MLP policy)."""

Policy = Callable[[Any, Any], np.ndarray]
"""``act(obs, env) -> action``; ``env`` is the unwrapped MADDriveEnv."""


def load_scenes(spec: str, limit: int | None = None) -> list:
    """The scenes of ``spec`` (``corpus:val``, a glob, a file, or several joined by commas) in memory, in order."""
    from mad_sim.data.sources import load_scenarios

    scenes = []
    for sc in load_scenarios(spec.split(",") if "," in spec else spec):
        scenes.append(sc)
        if limit is not None and len(scenes) >= limit:
            break
    return scenes


def make_policy(name: str, env: Any, seed: int = 0) -> Policy:
    """A baseline policy by name (see the module docstring)."""
    if name == "zero":
        return lambda obs, e: np.zeros(2, np.float32)
    if name == "throttle":
        return lambda obs, e: np.array([1.0, 0.0], np.float32)
    if name == "random":
        space = env.action_space
        space.seed(seed)
        return lambda obs, e: space.sample()
    if name in ("expert", "idm"):
        from mad_sim.planners import make_planner
        from mad_sim.planners.adapter import RecedingHorizonDriver

        driver = (
            RecedingHorizonDriver(make_planner("expert"), k=1, horizon=20)
            if name == "expert"
            else RecedingHorizonDriver(make_planner("idm"), k=6, horizon=30, replan_every=5)
        )

        def act(obs: Any, e: Any) -> np.ndarray:
            return driver.act(e)

        act.reset = driver.reset  # type: ignore[attr-defined]  # called by run_episodes at every reset
        return act
    raise ValueError(f"unknown policy {name!r} (zero, throttle, random, expert, idm)")


def model_policy(model: Any, normalize: Optional[Callable[[Any], Any]] = None) -> Policy:
    """A stable-baselines3 model's deterministic action (``normalize``: e.g. ``VecNormalize.normalize_obs``)."""
    if normalize is None:
        return lambda obs, e: model.predict(obs, deterministic=True)[0]
    return lambda obs, e: model.predict(normalize(obs), deterministic=True)[0]


def run_episodes(act: Policy, scenes: Sequence, env_kwargs: Dict[str, Any] | None = None, seed: int = 0) -> List[Dict[str, Any]]:
    """One episode per scene; a row each: return, steps, route_completed, collision, offroad, progress share."""
    import gymnasium as gym

    import mad_sim  # noqa: F401

    env = gym.make("MADDrive-v0", **(env_kwargs or ENV_KWARGS))
    rows = []
    for i, sc in enumerate(scenes):
        obs, info = env.reset(seed=seed + i, options={"scenario": sc})
        getattr(act, "reset", lambda: None)()
        total, steps = 0.0, 0
        while True:
            obs, r, term, trunc, info = env.step(act(obs, env.unwrapped))
            total += float(r)
            steps += 1
            if term or trunc:
                break
        completable = bool(env.unwrapped.route.completable)
        rows.append(
            {
                "scenario_id": sc.scenario_id,
                "return": total,
                "steps": steps,
                "completable": completable,
                "route_completed": float(info["route_completed"]),
                "collision": float(info["collision"]),
                "collision_at_fault": float(info["collision_at_fault"]),
                "offroad": float(info["offroad"]),
                "progress_share": float(info["route_progress"] / info["route_length"]) if completable else None,
            }
        )
    env.close()
    return rows


def summarise(name: str, rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Means over scenes (the rates are shares of episodes)."""

    def mean(k: str, only_completable: bool = False) -> float:
        vals = [r[k] for r in rows if r["completable"] or not only_completable]
        return float(np.mean(vals)) if vals else float("nan")

    return {
        "policy": name,
        "scenes": len(rows),
        "completable": int(sum(r["completable"] for r in rows)),
        "return": mean("return"),
        "return_std": float(np.std([r["return"] for r in rows])),
        "route_completion": mean("route_completed", True),
        "collision": mean("collision"),
        "collision_at_fault": mean("collision_at_fault"),
        "offroad": mean("offroad"),
        "progress_share": mean("progress_share", True),
        "steps": mean("steps"),
    }


def format_table(summaries: List[Dict[str, Any]]) -> str:
    head = (
        f"{'policy':10s} {'scenes':>6s} {'return':>14s} {'route compl.':>12s} {'collision':>9s} {'at fault':>8s} "
        f"{'offroad':>8s} {'progress':>8s}"
    )
    lines = [head]
    for s in summaries:
        lines.append(
            f"{s['policy']:10s} {s['scenes']:6d} {s['return']:7.2f} ± {s['return_std']:5.2f} "
            f"{s['route_completion']:12.2f} {s['collision']:9.2f} {s['collision_at_fault']:8.2f} "
            f"{s['offroad']:8.2f} {s['progress_share']:8.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", default="corpus:val")
    ap.add_argument("--limit", type=int, default=None, help="first N scenes only")
    ap.add_argument("--policies", default="zero,throttle,random,expert,idm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    scenes = load_scenes(args.scenes, args.limit)
    out = []
    for name in args.policies.split(","):
        import gymnasium as gym

        import mad_sim  # noqa: F401

        probe = gym.make("MADDrive-v0", **ENV_KWARGS)
        t = time.perf_counter()
        rows = run_episodes(make_policy(name, probe, args.seed), scenes, seed=args.seed)
        s = summarise(name, rows)
        s["wall_s"] = time.perf_counter() - t
        out.append(s)
        print(format_table([s]).splitlines()[1], f"({s['wall_s']:.0f} s)", flush=True)
    print(format_table(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
