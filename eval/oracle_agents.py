"""Oracle learned agents: the closed loop of ``agents="mad"`` with a *perfect* motion model.

To split the learned agents' error into the motion model's and the
representation's (VAE + parser + tracking), the forecast is replaced by the
**logged future** seen from the ego's intended camera path, everything else
(request, parse, tracking, fallback) unchanged:

- ``mad_log_oracle``: the logged future frames as drawn by the pose renderer
  (what a perfect model that draws clean frames would give);
- ``mad_vae_oracle``: the same frames encoded and decoded by the tiny
  backbone's VAE (a perfect motion model through this representation).

The log is only the truth while the ego follows it, so use these with an
expert ego (``scripts/closed_loop_sanity.py`` does).  Past the end of the log
the last logged frame is repeated.  Importing this module registers both
names with :func:`mad_sim.envs.agents.register_agent_policy`; their
``agent_options`` are :class:`~mad_sim.model.agents.settings.LearnedAgentSettings`.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np
from mad_sim.envs.agents import agent_policy_names, register_agent_policy

from mad_sim.model.agents.learned import LearnedAgents
from mad_sim.model.agents.predictor_service import ForecastRequest, ServiceStats
from mad_sim.model.agents.prior import logged_future, render_future
from mad_sim.model.agents.settings import LearnedAgentSettings
from mad_sim.world.state import WorldState

ORACLES = ("mad_log_oracle", "mad_vae_oracle")
"""Agent-policy names registered by this module."""


class LogOracleAgents(LearnedAgents):
    """:class:`LearnedAgents` whose forecasts are the logged future (module doc); it is its own service.

    Args:
      settings: the learned agents' settings (camera size, frames, chunk, tracking, fallback, ...).
      rng / action_kind: as :class:`LearnedAgents`.
      vae: a backbone whose VAE every forecast goes through (``mad_vae_oracle``), or None.
    """

    def __init__(
        self,
        settings: LearnedAgentSettings,
        rng: Optional[np.random.Generator] = None,
        action_kind: str = "bicycle",
        vae: Any = None,
    ) -> None:
        self.stats_service = ServiceStats()
        self.vae = vae
        self._at: Optional[tuple] = None
        super().__init__(settings, service=self, rng=rng, action_kind=action_kind)  # type: ignore[arg-type]

    def _build_request(self, state: WorldState, plan: np.ndarray) -> ForecastRequest:
        self._at = (state, plan.copy())
        return super()._build_request(state, plan)

    def forecast(self, requests: Sequence[ForecastRequest]) -> List[np.ndarray]:
        """The logged future ``[F, H, W, 3]`` of the state the last request was built at (one request per step)."""
        if self._at is None:
            raise RuntimeError("LogOracleAgents.forecast before a request was built")
        state, plan = self._at
        frames = logged_future_frames(self.renderer, state, plan)
        if self.vae is not None:
            from mad_sim.eval.forecast_parseback import vae_roundtrip

            frames = vae_roundtrip(self.vae, frames)
        self.stats_service.calls += 1
        self.stats_service.requests += len(requests)
        return [frames for _ in requests]


def logged_future_frames(renderer: Any, state: WorldState, plan: np.ndarray) -> np.ndarray:
    """uint8 ``[F, H, W, 3]``: the logged future along ``plan`` drawn from the ego's camera
    (:func:`~mad_sim.model.agents.prior.logged_future`)."""
    return render_future(renderer, state, logged_future(state, plan), int(plan.shape[0]))


def _factory(vae: bool):
    def make(config: Any, rng: np.random.Generator, settings: Optional[LearnedAgentSettings] = None) -> LogOracleAgents:
        s = settings if settings is not None else LearnedAgentSettings()
        backbone = None
        if vae:
            from mad_sim.model.backbone_loading import load_backbone

            backbone = load_backbone(s.preset, device=s.device, weights=None if s.weights in ("auto", "shipped") else s.weights)
        return LogOracleAgents(s, rng=rng, action_kind=config.action, vae=backbone)

    make.__name__ = "make_vae_oracle" if vae else "make_log_oracle"
    return make


for _name, _vae in zip(ORACLES, (False, True)):
    if _name not in agent_policy_names():
        register_agent_policy(_name, _factory(_vae), settings=LearnedAgentSettings)

__all__ = ["ORACLES", "LogOracleAgents", "logged_future_frames"]
