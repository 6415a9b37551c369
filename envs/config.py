"""`EnvConfig`: every option of ``MADDrive-v0``, one dataclass.

Each field is also a keyword of ``gym.make``; a YAML file sets any subset::

    gym.make("MADDrive-v0", config="configs/env/default.yaml", agents="idm")

Keywords win over the file.  Unknown keys and wrong types raise
:class:`~mad_sim.errors.ConfigError` naming the key (and the file).

Relative paths in the path keys (:data:`PATH_KEYS`: ``scenario`` and an
``appearance_weights`` LoRA file) are resolved by :func:`make_config` with
:func:`mad_sim.data.root.resolve_data_path`, in this order: under the data
root (``$MAD_SIM_DATA``, else ``../shared/data`` beside the checkout) when
something is there; else, for a key the YAML file set, under the file's
folder when something is there; else left relative to the working directory.
So ``scenario: womd/womd_scenario_input.tfrecord`` works from any directory.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Dict, Mapping, Optional, Union

from mad_sim.config import from_dict, load_config
from mad_sim.config_checks import require_choice, require_frames_8k1, require_positive
from mad_sim.data.root import resolve_data_path
from mad_sim.errors import ConfigError

ACTION_KINDS = ("bicycle", "trajectory", "delta")
RENDER_MODES = ("pose", "bev", "rgb_array", "human")
"""Declared render modes; ``rgb_array`` is the camera frame of the appearance synthesizer (:mod:`mad_sim.envs.rgb`),
``human`` the BEV in a pygame window (:mod:`mad_sim.envs.human_render`)."""
PROCEDURAL_KINDS = ("straight", "curve", "intersection")
PATH_KEYS = ("scenario", "appearance_weights")
"""Keys holding a data path, resolved by :func:`make_config` (module docstring)."""
APPEARANCE_WEIGHT_WORDS = ("auto", "shipped", "random")
"""``appearance_weights`` values that are no file."""


@dataclass
class EnvConfig:
    """Options of :class:`mad_sim.envs.drive.MADDriveEnv` (SI units).

    Scene:
      scenario: a file, glob, or None for a seeded procedural scene.
      procedural_kind: ``straight`` / ``curve`` / ``intersection`` or None
        (drawn at random) for procedural scenes.
      ego: ``"sdc"`` (the log's self-driving car) or a track index.
    Other agents:
      agents: name of a registered agent policy (``log``, ``idm``,
        ``constant_velocity``, ``mad``: :mod:`mad_sim.envs.agents`); an unknown
        name is a ConfigError at ``gym.make``.
      agent_options: settings of that policy, validated into its settings
        dataclass at ``gym.make`` (for ``mad``:
        :class:`~mad_sim.model.agents.settings.LearnedAgentSettings`, e.g.
        ``{"weights": "random", "chunk": 8}``); empty for the scripted ones.
      agent_horizon: steps the policy is asked for per call; its output is
        consumed over that many env steps before it is asked again.
    Ego action:
      action: ``bicycle`` (Box[-1,1]^2 -> acceleration, curvature),
        ``trajectory`` (waypoints, ego frame) or ``delta`` (Box[-1,1]^3 ->
        dx, dy, dyaw per step, ego frame).
      max_accel: m/s^2 for action 1.0; max_curvature: 1/m for action 1.0.
      trajectory_steps: waypoints per trajectory action (one per 0.1 s).
      max_delta_xy: metres per step for a delta action of 1.0;
        max_delta_yaw: radians per step.
    Observation:
      num_agents: K nearest agents reported; agent_radius: metres.
      num_roadgraph_points: P nearest map points; roadgraph_radius: metres;
        roadgraph_spacing: metres between resampled map points.
      obs_mode: ``dict`` (the Dict of feature arrays) or ``flat`` (one
        normalised float32 vector, :mod:`mad_sim.envs.observation`).
      pose_observation: add the ``pose`` frame (uint8 HxWx3).
      pose_width / pose_height: pixels of the pose frame.
    Reward (per step; metrics in ``info`` whatever the weights; :mod:`mad_sim.envs.reward`):
      reward_weights: term name -> weight (``progress``, ``route_completion``,
        ``collision``, ``offroad``, ``overspeed``, ``ttc``, ``jerk``,
        ``log_divergence``); names left out keep their defaults, unknown
        names fail at ``gym.make``.
      default_speed_limit: m/s where the route's lanes carry no speed limit
        (the logged ego's top speed there if higher).
    Episode:
      terminate_on_collision, terminate_on_offroad, terminate_on_route_completion
      (the goal at the end of the logged route reached); max_steps (None:
      until the log ends; ``gym.make``'s own ``max_episode_steps`` adds a
      TimeLimit wrapper instead); offroad_margin: metres beyond the road edge that
      still count as on the road.
    Rendering:
      render_mode: ``pose``, ``bev``, ``rgb_array`` or ``human`` (the BEV in a
        pygame window; needs pygame) (None: no rendering).
      bev_size: pixels of the square BEV frame; bev_extent_m: metres from its
      centre (the ego) to the nearest border.
    Camera frames (``rgb_array`` / ``rgb_observation``; see :mod:`mad_sim.envs.rgb`):
      rgb_observation: add the ``rgb`` camera frame (uint8 pose_height x pose_width x 3).
      prompt: text for the appearance synthesizer (``reset(options={"prompt": ...})``
        overrides it per episode); None for none, empty is an error.
      appearance_preset: backbone preset; appearance_weights: ``auto`` (shipped if
        present, else for tiny a random model with a warning), ``shipped``,
        ``random`` (untrained, for tests) or an appearance LoRA file.
      rgb_chunk_frames: frames per synthesis (8k + 1); rgb_steps: sampler steps;
      rgb_resync_m: metres (ego position vs the forecast the cached frame was
        drawn for) beyond which the cache restarts; None: never.
      rgb_threads: torch threads while synthesizing (None: torch's setting).
    """

    scenario: Optional[str] = None
    procedural_kind: Optional[str] = None
    ego: Union[int, str] = "sdc"
    agents: str = "log"
    agent_options: Dict[str, Any] = field(default_factory=dict)
    agent_horizon: int = 1
    action: str = "bicycle"
    max_accel: float = 6.0
    max_curvature: float = 0.3
    trajectory_steps: int = 10
    max_delta_xy: float = 4.0
    max_delta_yaw: float = 0.3
    num_agents: int = 16
    agent_radius: float = 60.0
    num_roadgraph_points: int = 128
    roadgraph_radius: float = 50.0
    roadgraph_spacing: float = 2.0
    obs_mode: str = "dict"
    pose_observation: bool = False
    pose_width: int = 128
    pose_height: int = 128
    reward_weights: Optional[Dict[str, float]] = None
    default_speed_limit: float = 15.0
    terminate_on_collision: bool = True
    terminate_on_offroad: bool = True
    terminate_on_route_completion: bool = True
    max_steps: Optional[int] = None
    offroad_margin: float = 0.5
    render_mode: Optional[str] = None
    bev_size: int = 256
    bev_extent_m: float = 30.0
    rgb_observation: bool = False
    prompt: Optional[str] = None
    appearance_preset: str = "tiny"
    appearance_weights: str = "auto"
    rgb_chunk_frames: int = 17
    rgb_steps: int = 4
    rgb_resync_m: Optional[float] = 1.0
    rgb_threads: Optional[int] = 1

    def __post_init__(self) -> None:
        require_choice("", "action", self.action, ACTION_KINDS)
        require_choice("", "obs_mode", self.obs_mode, ("dict", "flat"))
        if self.render_mode is not None:
            require_choice("", "render_mode", self.render_mode, RENDER_MODES)
        if self.procedural_kind is not None:
            require_choice("", "procedural_kind", self.procedural_kind, PROCEDURAL_KINDS)
        if isinstance(self.ego, str) and self.ego != "sdc":
            raise ConfigError(f"key 'ego': {self.ego!r} must be 'sdc' or a track index")
        positive = (
            "agent_horizon",
            "trajectory_steps",
            "num_agents",
            "num_roadgraph_points",
            "pose_width",
            "pose_height",
            "bev_size",
            "max_accel",
            "max_curvature",
            "max_delta_xy",
            "max_delta_yaw",
            "agent_radius",
            "roadgraph_radius",
            "roadgraph_spacing",
            "bev_extent_m",
            "default_speed_limit",
        )
        require_positive("", self, positive)
        require_frames_8k1("", "rgb_chunk_frames", self.rgb_chunk_frames, minimum=9)
        if self.rgb_steps < 2:
            raise ConfigError(f"key 'rgb_steps': the sampler needs at least 2 steps, got {self.rgb_steps}")
        if self.rgb_resync_m is not None and not self.rgb_resync_m > 0:
            raise ConfigError(f"key 'rgb_resync_m': must be > 0 or None, got {self.rgb_resync_m!r}")
        if self.prompt is not None and (not isinstance(self.prompt, str) or not self.prompt.strip()):
            raise ConfigError(
                f"key 'prompt': {self.prompt!r} is empty: leave it out (None) for no prompt, "
                f"or describe the scene (e.g. 'rainy night')"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"key 'max_steps': must be >= 1, got {self.max_steps}")


def resolve_paths(config: EnvConfig, folder: Optional[Path] = None, keywords: Collection[str] = ()) -> EnvConfig:
    """``config`` with the relative paths of its :data:`PATH_KEYS` resolved (module docstring): against the
    data root, then ``folder`` (the YAML file's; not for the keys in ``keywords``, which did not come from
    it), else left as they are.  The same object when nothing changes."""
    changes: Dict[str, Any] = {}
    for key in PATH_KEYS:
        value = getattr(config, key)
        if not isinstance(value, str) or (key == "appearance_weights" and value in APPEARANCE_WEIGHT_WORDS):
            continue
        bases = (folder,) if folder is not None and key not in keywords else ()
        resolved = resolve_data_path(value, *bases)
        if resolved != value:
            changes[key] = resolved
    return dataclasses.replace(config, **changes) if changes else config


def make_config(config: Union[None, str, EnvConfig, Mapping[str, Any]] = None, **overrides: Any) -> EnvConfig:
    """Build an :class:`EnvConfig` from a YAML path / mapping / config plus keyword overrides; relative paths
    are resolved as the module docstring says (a YAML file's own ones against its folder too)."""
    if isinstance(config, EnvConfig):
        return resolve_paths(dataclasses.replace(config, **overrides) if overrides else config)
    if config is None:
        return resolve_paths(from_dict(overrides, EnvConfig, source="gym.make keywords"))
    if isinstance(config, Mapping):
        return resolve_paths(from_dict({**config, **overrides}, EnvConfig, source="config mapping"))
    loaded = load_config(str(config), EnvConfig, overrides=overrides)
    return resolve_paths(loaded, Path(os.path.expanduser(str(config))).resolve().parent, keywords=overrides)
