"""Likelihood of the log under the rollouts' feature histograms, the meta-metric, and the scenario's row.

**Histogram estimate** (one population = one object): values are clipped
into ``[min_val, max_val]`` and binned on ``num_bins`` equal bins (each
``[lo, hi)``, the last one closed); ``p_k = (n_k + c) / sum_j (n_j + c)`` with
``n_k`` the simulated samples in bin ``k`` and ``c`` the pseudocount; the log
value's log-likelihood is ``log p_k`` of its bin.  A NaN sample (the
finite-difference pads at the trajectory's end: the last simulated step's
speeds, the last two steps' accelerations) counts in the LAST bin: Waymo's
``tf.clip_by_value`` keeps NaN and ``tfp.stats.histogram`` (``find_bins``:
an upper-bound ``searchsorted``, clipped to the last bin) puts it there,
checked in TensorFlow 2.13 / tensorflow-probability 0.21 (``[nan, 1, -100]``
clipped to ``[0, 25]`` on 10 bins counts ``[2, 0, ..., 0, 1]``); numpy's
``searchsorted`` places it the same way.  Logged NaNs are never scored
(their steps are invalid).  On the shared test submission every feature
array agrees with Waymo's NaN for NaN, and every likelihood to 3e-5
(``tests/eval/test_sim_agents_official.py``).

**Per-feature likelihood** of a scenario: ``exp`` of the mean log-likelihood
over the scored (object, step) pairs: speeds need the log valid at ``t-1``
and ``t+1`` of the future (accelerations ``t-2 .. t+2``); distance to the
nearest object and to the road edge need the log valid at ``t``; time to
collision and traffic-light violation count vehicles only.  Collision,
offroad and red-light violation are per object: the indicator "at some
log-valid future step" of the log is scored under the Bernoulli of the R
rollouts' indicators; the likelihood is ``exp`` of the mean over objects.
A feature with nothing to score is NaN.  On a map without road edges
(``has_road_edges`` False) the distance to the road edge and offroad are
not scored (NaN, listed in ``skipped_features``), and neither are the
offroad rate, the map-based bucket and the meta-metric, whose weights need
every feature: such a scene drops out of those means in :func:`aggregate`
(``num_scenarios_without_road_edge`` counts them) instead of stopping the run.

**Meta-metric** ``sum_i w_i L_i`` with the weights of :mod:`.config`;
buckets (kinematic / interactive / map-based) are ``sum w L / sum w`` over
their features.  **ADE** is the mean of the per-(rollout, object) ADE,
**minADE** the minimum over rollouts of the objects' mean ADE (one joint
scene is picked, not one rollout per object).  **Rates**: the fraction of
(rollout, object) pairs that collide / go off the road / run a red light at
some log-valid step.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import numpy as np
from mad_sim.eval.sim_agents.config import BUCKETS, FEATURES, FeatureConfig, metric_config
from mad_sim.eval.sim_agents.features import MetricFeatures
from mad_sim.eval.sim_agents.kinematics import kinematic_validity

from mad_sim.data.scenario import ObjectType


def histogram_log_likelihood(cfg: FeatureConfig, log_samples: np.ndarray, sim_samples: np.ndarray) -> np.ndarray:
    """``[B, L]`` log-likelihood of ``log_samples [B, L]`` under the histogram of ``sim_samples [B, S]`` (per row)."""
    if cfg.estimator == "bernoulli":
        lo, hi, bins = -0.5, 1.5, 2
        log_samples = np.asarray(log_samples, np.float64)
        sim_samples = np.asarray(sim_samples, np.float64)
    else:
        lo, hi, bins = cfg.min_val, cfg.max_val, cfg.num_bins
    edges = np.linspace(lo, hi, bins + 1).astype(np.float32).astype(np.float64)

    def bin_of(x: np.ndarray) -> np.ndarray:
        x = np.clip(np.asarray(x, np.float64), lo, hi)
        return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)

    sim_bins = bin_of(sim_samples)
    b = sim_bins.shape[0]
    counts = np.zeros((b, bins))
    np.add.at(counts, (np.repeat(np.arange(b), sim_bins.shape[1]), sim_bins.reshape(-1)), 1.0)
    probs = (counts + cfg.pseudocount) / (counts + cfg.pseudocount).sum(1, keepdims=True)
    return np.log(np.take_along_axis(probs, bin_of(log_samples), 1))


def timeseries_log_likelihood(cfg: FeatureConfig, log_values: np.ndarray, sim_values: np.ndarray) -> np.ndarray:
    """``[E, T]`` log-likelihood of the log's ``[E, T]`` values under the rollouts' ``[R, E, T]`` (per object)."""
    r, e, t = sim_values.shape
    if cfg.independent_timesteps:
        return histogram_log_likelihood(cfg, log_values, np.transpose(sim_values, (1, 0, 2)).reshape(e, r * t))
    ll = histogram_log_likelihood(cfg, log_values.reshape(e * t, 1), np.transpose(sim_values, (1, 2, 0)).reshape(e * t, r))
    return ll.reshape(e, t)


def _mean_where(x: np.ndarray, valid: np.ndarray) -> float:
    n = int(valid.sum())
    return float(np.where(valid, x, 0.0).sum() / n) if n else float("nan")


def scenario_metrics(
    log: MetricFeatures, sim: MetricFeatures, config: Optional[Mapping[str, FeatureConfig]] = None
) -> Dict[str, Any]:
    """The per-feature likelihoods (``<feature>_likelihood``), ``metametric``, buckets, ADE / minADE and rates."""
    cfg = dict(config or metric_config())
    valid = log.valid
    speed_ok, accel_ok = kinematic_validity(valid)
    vehicle = (log.object_types == int(ObjectType.VEHICLE))[:, None] & valid
    out: Dict[str, Any] = {}

    def series(name: str, ok: np.ndarray) -> None:
        ll = timeseries_log_likelihood(cfg[name], getattr(log, name)[0], getattr(sim, name))
        out[f"{name}_likelihood"] = float(np.exp(_mean_where(ll, ok)))

    def indicator(name: str, per_step: str, ok: np.ndarray) -> np.ndarray:
        sim_ind = (getattr(sim, per_step) & ok[None]).any(-1)  # [R, E]
        log_ind = (getattr(log, per_step)[0] & ok).any(-1)  # [E]
        ll = histogram_log_likelihood(cfg[name], log_ind[:, None], sim_ind.T)[:, 0]
        out[f"{name}_likelihood"] = float(np.exp(ll.mean())) if ll.size else float("nan")
        return sim_ind

    series("linear_speed", speed_ok)
    series("angular_speed", speed_ok)
    series("linear_acceleration", accel_ok)
    series("angular_acceleration", accel_ok)
    series("distance_to_nearest_object", valid)
    series("time_to_collision", vehicle)
    collided = indicator("collision_indication", "collision_per_step", valid)
    if log.has_road_edges:
        series("distance_to_road_edge", valid)
        offroad = indicator("offroad_indication", "offroad_per_step", valid)
    else:
        out["distance_to_road_edge_likelihood"] = out["offroad_indication_likelihood"] = float("nan")
        offroad = np.zeros((0, 0), bool)
    indicator("traffic_light_violation", "traffic_light_violation_per_step", vehicle)
    ran_red = (sim.traffic_light_violation_per_step & valid[None]).any(-1)
    out["metametric"] = float(sum(cfg[f].weight * out[f"{f}_likelihood"] for f in FEATURES))
    for bucket, names in BUCKETS.items():
        w = sum(cfg[f].weight for f in names)
        out[f"{bucket}_metrics"] = float(sum(cfg[f].weight * out[f"{f}_likelihood"] for f in names) / w)
    ade = sim.ade
    out["average_displacement_error"] = float(np.nanmean(ade)) if np.isfinite(ade).any() else float("nan")
    out["min_average_displacement_error"] = float(np.nanmin(np.nanmean(ade, 1))) if np.isfinite(ade).any() else float("nan")
    out["simulated_collision_rate"] = float(collided.mean()) if collided.size else float("nan")
    out["simulated_offroad_rate"] = float(offroad.mean()) if offroad.size else float("nan")
    out["simulated_traffic_light_violation_rate"] = float(ran_red.mean()) if ran_red.size else float("nan")
    out["skipped_features"] = [] if log.has_road_edges else ["distance_to_road_edge", "offroad_indication"]
    out["num_evaluated_objects"] = int(len(log.object_ids))
    out["num_rollouts"] = int(sim.ade.shape[0])
    return out


METRIC_KEYS = tuple(f"{f}_likelihood" for f in FEATURES) + (
    "metametric",
    "kinematic_metrics",
    "interactive_metrics",
    "map_based_metrics",
    "average_displacement_error",
    "min_average_displacement_error",
    "simulated_collision_rate",
    "simulated_offroad_rate",
    "simulated_traffic_light_violation_rate",
)
"""Per-scenario values that :func:`aggregate` averages."""


def aggregate(rows: List[Mapping[str, Any]]) -> Dict[str, Any]:
    """Mean over scenarios of every :data:`METRIC_KEYS` value (NaN / None entries left out), and the count."""
    out: Dict[str, Any] = {}
    for key in METRIC_KEYS:
        v = np.array([np.nan if r.get(key) is None else r[key] for r in rows], np.float64)
        v = v[np.isfinite(v)]
        out[key] = float(v.mean()) if v.size else None
    out["num_scenarios"] = len(rows)
    out["num_scenarios_without_road_edge"] = sum("distance_to_road_edge" in r.get("skipped_features", ()) for r in rows)
    return out
