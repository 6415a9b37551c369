"""Scenario data layer of mad-sim: scenes in, :class:`Scenario` out (the bottom layer, with ``world``; no torch).

``load_scenarios(spec)`` streams :class:`Scenario` objects from a file, glob,
folder, corpus split (``"corpus:val"``) or a list of those, reading each file in
the format its content shows; ``load_scenario(spec, index=0)`` returns one.

Formats (:mod:`.formats` tells them apart): WOMD ``Scenario`` TFRecords
(:mod:`.womd`, framing in :mod:`.tfrecord`), ScenarioNet / MetaDrive pickles in
their three generations and nuScenes scenes (:mod:`.scenarionet`), Waymax
``SimulatorState`` pickles (:mod:`.waymax`; in-memory states with
:func:`scenario_from_waymax`), GPUDrive and Nocturne JSON (:mod:`.gpudrive_json`).
Pickles are read by allow-list unpicklers (:mod:`.safe_pickle`).  The real
scenes of the data root form one corpus with a train / val split by scene
(:mod:`.corpus`).  Also: :mod:`.procedural` (generated scenes),
:mod:`.waymo_frame` (perception frames), :mod:`.dashcam` (camera video).
Nothing here imports torch.
"""

from mad_sim.data.scenario import RoadMap, Scenario, TrafficLights, Trajectory  # noqa: F401
from mad_sim.data.sources import load_scenario, load_scenarios  # noqa: F401
from mad_sim.data.waymax import scenario_from_waymax  # noqa: F401

__all__ = ["RoadMap", "Scenario", "TrafficLights", "Trajectory", "load_scenario", "load_scenarios", "scenario_from_waymax"]
