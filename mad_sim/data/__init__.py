"""Scenario data layer of mad-sim (see DESIGN.md).

``load_scenarios(path_or_glob_or_list)`` streams :class:`Scenario` objects from
WOMD TFRecords and ScenarioNet pickles; ``load_scenario(path, index=0)`` returns
one.  Submodules: :mod:`.tfrecord` (framing), :mod:`.womd` (Scenario protos),
:mod:`.scenarionet` (pickle import), :mod:`.procedural` (generated scenes),
:mod:`.waymo_frame` (perception frames).  Nothing here imports torch.
"""

from mad_sim.data.scenario import Scenario, Trajectory, RoadMap, TrafficLights  # noqa: F401
from mad_sim.data.sources import load_scenario, load_scenarios  # noqa: F401

__all__ = ["Scenario", "Trajectory", "RoadMap", "TrafficLights", "load_scenario", "load_scenarios"]
