"""The WOSAC metric configuration: per-feature estimator, histogram range and meta-metric weight.

These are the values of the Waymo Open Sim Agents Challenge 2025 configuration
(``challenge_2025_sim_agents_config.textproto``), restated here:

=============================  ==========  ===============  =====  ======  ===========  ======
feature                        estimator   range            bins   pseudo  independent  weight
=============================  ==========  ===============  =====  ======  ===========  ======
linear_speed (m/s)             histogram   [0, 25]          10     0.1     yes          0.05
linear_acceleration (m/s^2)    histogram   [-12, 12]        11     0.1     yes          0.05
angular_speed (rad/s)          histogram   [-0.628, 0.628]  11     0.1     yes          0.05
angular_acceleration (rad/s^2) histogram   [-3.14, 3.14]    11     0.1     yes          0.05
distance_to_nearest_object (m) histogram   [-5, 40]         10     0.1     yes          0.10
collision_indication           bernoulli   -                -      0.001   -            0.25
time_to_collision (s)          histogram   [0, 5]           10     0.1     yes          0.10
distance_to_road_edge (m)      histogram   [-20, 40]        10     0.1     yes          0.05
offroad_indication             bernoulli   -                -      0.001   -            0.25
traffic_light_violation        bernoulli   -                -      0.001   -            0.05
=============================  ==========  ===============  =====  ======  ===========  ======

The weights sum to 1.  ``independent`` (``independent_timesteps``) means the
simulated values of one object at all steps and in all rollouts form ONE
histogram (``R * T`` samples) that every logged step of that object is scored
under; otherwise each step would get its own histogram of the R rollouts.
Objects are never pooled (``aggregate_objects`` is false for the sim-agents
challenge).  The Bernoulli estimator is the histogram with two bins
``[-0.5, 0.5), [0.5, 1.5]`` over the 0/1 indicator, with the proto's default
pseudocount 0.001 (the textproto leaves it unset).

Buckets (the leaderboard's sub-scores, each the weight-normalised average of
its likelihoods): kinematic = the four speed / acceleration features,
interactive = distance to nearest object, collision, time to collision,
map-based = distance to road edge, offroad, traffic-light violation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class FeatureConfig:
    """How one feature is turned into a likelihood.

    ``estimator``: ``"histogram"`` or ``"bernoulli"``; ``min_val`` / ``max_val`` / ``num_bins``: the
    histogram's range (values are clipped into it) and bin count; ``pseudocount``: added to every
    bin's count before normalising; ``independent_timesteps``: pool all steps (see the module
    docstring); ``weight``: the feature's share of the meta-metric.
    """

    estimator: str
    weight: float
    min_val: float = 0.0
    max_val: float = 1.0
    num_bins: int = 2
    pseudocount: float = 0.001
    independent_timesteps: bool = True


KINEMATIC = ("linear_speed", "linear_acceleration", "angular_speed", "angular_acceleration")
INTERACTIVE = ("distance_to_nearest_object", "collision_indication", "time_to_collision")
MAP_BASED = ("distance_to_road_edge", "offroad_indication", "traffic_light_violation")
FEATURES: Tuple[str, ...] = KINEMATIC + INTERACTIVE + MAP_BASED
BUCKETS: Dict[str, Tuple[str, ...]] = {"kinematic": KINEMATIC, "interactive": INTERACTIVE, "map_based": MAP_BASED}


def _hist(lo: float, hi: float, bins: int, weight: float) -> FeatureConfig:
    return FeatureConfig("histogram", weight, lo, hi, bins, 0.1, True)


WOSAC_2025: Dict[str, FeatureConfig] = {
    "linear_speed": _hist(0.0, 25.0, 10, 0.05),
    "linear_acceleration": _hist(-12.0, 12.0, 11, 0.05),
    "angular_speed": _hist(-0.628, 0.628, 11, 0.05),
    "angular_acceleration": _hist(-3.14, 3.14, 11, 0.05),
    "distance_to_nearest_object": _hist(-5.0, 40.0, 10, 0.10),
    "collision_indication": FeatureConfig("bernoulli", 0.25),
    "time_to_collision": _hist(0.0, 5.0, 10, 0.10),
    "distance_to_road_edge": _hist(-20.0, 40.0, 10, 0.05),
    "offroad_indication": FeatureConfig("bernoulli", 0.25),
    "traffic_light_violation": FeatureConfig("bernoulli", 0.05),
}
"""The 2025 sim-agents challenge configuration (the table of the module docstring)."""


def metric_config(name: Optional[str] = None) -> Dict[str, FeatureConfig]:
    """The configuration called ``name`` (only ``"wosac2025"``, the default); ConfigError otherwise."""
    from mad_sim.errors import ConfigError

    if name in (None, "wosac2025"):
        return dict(WOSAC_2025)
    raise ConfigError(f"unknown sim-agents metric config {name!r} (known: wosac2025)")
