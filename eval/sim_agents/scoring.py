"""Score one scenario's rollouts: features (:mod:`.features`) -> likelihoods and meta-metric (:mod:`.likelihood`).

A scene whose map has no road edge is scored without its road-edge features, with a logged warning
(see :mod:`.likelihood`).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional

import numpy as np
from mad_sim.eval.sim_agents.config import FeatureConfig
from mad_sim.eval.sim_agents.features import compute_features
from mad_sim.eval.sim_agents.likelihood import scenario_metrics
from mad_sim.eval.sim_agents.rollout_set import SimRollouts

from mad_sim.data.scenario import Scenario

log = logging.getLogger(__name__)


def score_rollouts(
    scenario: Scenario,
    rollouts: SimRollouts,
    config: Optional[Mapping[str, FeatureConfig]] = None,
    evaluated: Optional[np.ndarray] = None,
) -> Dict[str, Any]:
    """The scenario's row: ``scenario_id``, every value of :func:`~.likelihood.scenario_metrics`,
    ``has_traffic_lights`` (the log has any signal state) and ``evaluated_ids``."""
    log_f, sim_f = compute_features(scenario, rollouts, evaluated)
    row: Dict[str, Any] = {"scenario_id": scenario.scenario_id}
    row.update(scenario_metrics(log_f, sim_f, config))
    row["has_traffic_lights"] = bool(scenario.traffic_lights.valid.any())
    row["evaluated_ids"] = [int(i) for i in log_f.object_ids]
    if not log_f.has_road_edges:
        log.warning(
            "%s: the map has no road edge: distance to the road edge and offroad are not scored, nor the scene's meta-metric",
            scenario.source or scenario.scenario_id,
        )
    return row
