"""Settings of :class:`~mad_sim.model.parse.parser.PoseParser`: :class:`ParseConfig` (search extent, levels, verdicts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

import numpy as np

from mad_sim.errors import ConfigError
from mad_sim.model.parse.pixels import PixelThresholds
from mad_sim.model.parse.search import Level as SearchLevel
from mad_sim.model.parse.search import line, square
from mad_sim.model.parse.skeleton_fit import ScoreParams

Level = Tuple[float, int, float, int]
"""One search level: ``(step_xy metres, n_xy, step_yaw degrees, n_yaw)``."""


@dataclass(frozen=True)
class ParseConfig:
    """Parser settings.

    The search around each agent's prediction runs in three parts
    (:mod:`mad_sim.model.parse.search`), each level centred on the previous best:

    1. *coarse position*: a square grid of ``coarse_step_m`` spanning
       ``+-search_radius_m``, heading fixed, nearest-pixel lookups,
       ``coarse_per_edge`` samples per edge;
    2. *coarse heading*: ``coarse_yaw_step_deg`` steps spanning
       ``+-search_yaw_deg``, times a 3 x 3 grid of half the coarse step;
    3. the fine ``levels`` (bilinear, ``per_edge`` samples), then
       ``refine_level`` after the occlusion map is rebuilt from the fits.

    Part 1 (2) is left out when the fine levels alone reach
    ``search_radius_m`` (``search_yaw_deg``); both are left out for agents
    whose prediction already explains the frame (*early exit*: residual at
    most ``early_exit_px`` and inlier fraction at least ``early_exit_inliers``).
    The defaults search +-1.5 m / +-15 deg (a prior known to about a metre and
    ten degrees, as in ``bench/bench_parse.py``); a closed loop whose prior is
    the previous frame's fit can ask for a narrow search (:meth:`narrow`).

    Attributes:
      tau_px: distance truncation in pixels (0: ``max(2, width / 40)``).
      search_radius_m: half-width of the position search around the prediction, metres.
      search_yaw_deg: half-width of the heading search, degrees.
      coarse_step_m, coarse_yaw_step_deg: steps of the coarse parts.
      coarse_per_edge: samples per skeleton edge in the coarse parts.
      early_exit_px, early_exit_inliers: a prediction this good skips the coarse parts.
      levels: fine levels ``(step_xy m, n_xy, step_yaw deg, n_yaw)``.
      refine_level: the level re-run after the occlusion map is rebuilt from the first-pass fits.
      per_edge: samples per skeleton edge (fine levels and the verdicts).
      small_agent_px, small_per_edge: agents whose predicted skeleton spans fewer pixels than
        ``small_agent_px`` (larger side of its box on screen) are searched with ``small_per_edge``
        samples per edge (their edges are a few pixels long; the verdicts still use ``per_edge``).
      min_observed: samples that must be observed for a verdict (visible or left).
      min_inlier_frac: fraction of observed samples within ``inlier_px`` for an agent to count as found.
      chunk: bound on agents x candidates x samples evaluated at once (memory).
      score: cost weights.
      pixels: colour-class thresholds.
      detect: look for entering agents.
    """

    tau_px: float = 0.0
    search_radius_m: float = 1.5
    search_yaw_deg: float = 15.0
    coarse_step_m: float = 0.5
    coarse_yaw_step_deg: float = 5.0
    coarse_per_edge: int = 2
    early_exit_px: float = 0.5
    early_exit_inliers: float = 0.9
    levels: Tuple[Level, ...] = ((0.2, 3, 2.0, 3), (0.08, 3, 0.8, 3))
    refine_level: Level = (0.15, 3, 1.5, 3)
    per_edge: int = 4
    small_agent_px: float = 12.0
    small_per_edge: int = 2
    min_observed: int = 12
    min_inlier_frac: float = 0.5
    chunk: int = 1_500_000
    score: ScoreParams = field(default_factory=ScoreParams)
    pixels: PixelThresholds = field(default_factory=PixelThresholds)
    detect: bool = True

    def tau(self, width: int) -> float:
        return float(self.tau_px) if self.tau_px > 0 else max(2.0, width / 40.0)

    def __post_init__(self) -> None:
        for name in ("search_radius_m", "search_yaw_deg", "coarse_step_m", "coarse_yaw_step_deg"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0 or (v == 0 and "step" in name):
                raise ConfigError(f"ParseConfig.{name}={v!r}: must be a finite number >= 0 (steps > 0)")
        if min(self.coarse_per_edge, self.per_edge, self.small_per_edge) < 1:
            raise ConfigError(
                f"ParseConfig: per_edge={self.per_edge}, coarse_per_edge={self.coarse_per_edge}, "
                f"small_per_edge={self.small_per_edge} must be >= 1"
            )

    @classmethod
    def narrow(cls, search_radius_m: float = 0.4, search_yaw_deg: float = 4.0, **kw) -> "ParseConfig":
        """A search for a prior that is already close (the previous frame's fit in a closed loop).

        The defaults are within the fine levels' reach (about +-0.43 m /
        +-4.3 deg), so no coarse part runs.
        """
        return cls(search_radius_m=search_radius_m, search_yaw_deg=search_yaw_deg, **kw)

    def fine_reach(self) -> Tuple[float, float]:
        """(metres, degrees) the fine levels and the refine level can move a pose in all."""
        lv = tuple(self.levels) + (self.refine_level,)
        return (sum(lev[0] * (lev[1] - 1) / 2.0 for lev in lv), sum(lev[2] * (lev[3] - 1) / 2.0 for lev in lv))

    def coarse_levels(self) -> Tuple[SearchLevel, ...]:
        """The coarse parts 1 and 2 (see the class docstring) that this configuration needs."""
        reach_m, reach_deg = self.fine_reach()
        out = []
        if self.search_radius_m > reach_m:
            n = 2 * int(np.ceil(self.search_radius_m / self.coarse_step_m - 1e-9)) + 1
            out.append(SearchLevel(np.zeros(1), square(self.coarse_step_m, n), bilinear=False))
        if self.search_yaw_deg > reach_deg:
            n = 2 * int(np.ceil(self.search_yaw_deg / self.coarse_yaw_step_deg - 1e-9)) + 1
            out.append(
                SearchLevel(line(np.radians(self.coarse_yaw_step_deg), n), square(0.5 * self.coarse_step_m, 3), bilinear=False)
            )
        return tuple(out)


__all__ = ["Level", "ParseConfig"]
