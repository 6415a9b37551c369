"""``MADDrive-v0``: closed-loop driving in a pose-space world seeded from logs.

Registered by ``import mad_sim``; every :class:`~mad_sim.envs.config.EnvConfig`
field is a keyword of ``gym.make``.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

import gymnasium as gym
import mad_sim.envs.observation as obs_mod
import numpy as np
from mad_sim.envs.actions import EgoStep, make_action_adapter
from mad_sim.envs.agents import AgentPolicy, AgentStream, agent_settings, make_agent_policy
from mad_sim.envs.config import RENDER_MODES, EnvConfig, make_config
from mad_sim.envs.human_render import HumanWindow, require_pygame
from mad_sim.envs.local_map import LocalMap, MapIndex
from mad_sim.envs.offroad import RoadEdgeProbe
from mad_sim.envs.reward import LinearReward, StepMetrics, collision_at_fault, ego_overlaps, has_road_edges, time_to_collision
from mad_sim.envs.rgb import EgoMotion, RGBCamera, check_prompt, wants_rgb
from mad_sim.envs.route import Route
from mad_sim.envs.scenes import ScenarioSource

from mad_sim.data.frames import wrap_angle
from mad_sim.data.scenario import DT, Scenario
from mad_sim.errors import ConfigError, EnvStateError
from mad_sim.world.state import WorldState

if TYPE_CHECKING:
    from mad_sim.render.pose import PoseRenderer

log = logging.getLogger(__name__)


class MADDriveEnv(gym.Env):
    """Drive the ego through a log (or a procedural scene) while a policy moves everyone else.

    **Reset** ``reset(seed=None, options={"scenario": path | glob | Scenario, "ego": index | "sdc",
    "prompt": text, "first_frame": uint8 [H, W, 3]})`` (``prompt`` / ``first_frame``: the camera's
    text and first RGB frame, see :mod:`mad_sim.envs.rgb`).
    Without a scenario (in the options or the config) a procedural scene is
    generated from the env's seeded generator; a file or glob is drawn from
    with the same generator.  The simulation starts at the log's
    ``current_index`` (the steps before it are history, copied from the log);
    it is truncated when the log ends (or after ``max_steps``); each reset sets
    ``spec.max_episode_steps`` to that episode's step count unless ``gym.make``
    was given one.

    **Actions** (``action=``; see :mod:`mad_sim.envs.actions`):

    - ``bicycle`` (default) ``Box[-1, 1]^2`` float32: ``[accel, curvature]``
      scaled by ``max_accel`` (6 m/s^2) and ``max_curvature`` (0.3 1/m).
    - ``trajectory`` ``Box[-60, 60]^(trajectory_steps x 2)`` float32: ego-frame
      waypoints at 0.1 s spacing, tracked by pure pursuit + a speed loop.
    - ``delta`` ``Box[-1, 1]^3`` float32: ``[dx, dy, dyaw]`` per step in the ego
      frame, scaled by ``max_delta_xy`` (m) and ``max_delta_yaw`` (rad).

    Non-finite or wrongly shaped actions raise :class:`~mad_sim.errors.ActionError`.

    **Other agents** (``agents=``): ``log``, ``idm``, ``constant_velocity``,
    ``mad`` (learned; its settings in ``agent_options``) or any name added with
    :func:`mad_sim.envs.register_agent_policy`; the policy
    (:attr:`agent_policy`, an :class:`~mad_sim.envs.agents.AgentPolicy`) is
    asked for ``agent_horizon`` steps per call.  An unknown name or bad
    ``agent_options`` is a ConfigError at ``gym.make``.

    **Observation**: a flat Dict, see :mod:`mad_sim.envs.observation`
    (``ego`` [13] f32, ``agents`` [K, 11] f32 + ``agents_mask`` [K] i8,
    ``roadgraph`` [P, 11] f32 + ``roadgraph_mask`` [P] i8, optionally ``pose``
    [H, W, 3] u8 and ``rgb`` [H, W, 3] u8), every Box with finite physical
    bounds; ``obs_mode="flat"``: one float32 vector in [-1, 1] of length
    ``13 + 12 K + 12 P`` (the layout in :mod:`mad_sim.envs.observation`).

    **Reward** (:mod:`mad_sim.envs.reward`): a sum of named terms times weights
    (``reward_weights`` sets any of them by name), per step:

    ==================  ====================================================  ======  ======
    term                value                                                 unit    weight
    ==================  ====================================================  ======  ======
    progress            metres gained along the route (the logged ego path),  m       0.1
                        counted only up to its goal (the end of the log)
    route_completion    1 on the step the goal is reached (terminal success,  0/1     10.0
                        ``info["route_completed"]``)
    collision           1 when the ego's box overlaps another agent's while   0/1     -10.0
                        it moves and that agent is not behind it (at fault:
                        ``info["collision_at_fault"]``; any overlap ends the episode)
    offroad             1 when the ego is beyond the road edge                0/1     -10.0
    overspeed           speed above the lane speed limit along the route      m/s     -0.05
                        (where lanes have none: ``default_speed_limit``, 15 m/s,
                        or the logged ego's top speed if higher)
    ttc                 ``max(0, 1 - TTC / 3 s)``, TTC to the agent ahead     [0, 1]  0
    jerk                ``|jerk|``                                            m/s^3   0
    log_divergence      distance to the logged ego position                   m       0
    ==================  ====================================================  ======  ======

    Completion needs the ego within 1 m of the goal along the route and 4 m of
    it laterally; a route with under 2 m ahead (the logged ego stood still)
    cannot be completed (:mod:`mad_sim.envs.route`).  Terminates on
    collision / offroad / route completion when configured (all three by default).

    **Info**: every metric each step (:class:`~mad_sim.envs.reward.StepMetrics`:
    ``route_completed``, ``route_length``, ``speed_limit``, ``ttc``...), the
    unweighted ``reward_terms``, plus ``scenario_id``, ``timestep`` and ``agent_queries``.

    **Render modes**: ``pose`` (the pose frame seen from the ego, 128x128 by
    default), ``bev`` (a top-down view centred on the ego, 60 m across by default:
    :mod:`mad_sim.render.bev`) and ``rgb_array`` (the camera frame of the
    appearance synthesizer, synthesized in chunks and cached: :mod:`mad_sim.envs.rgb`),
    all ``[H, W, 3]`` uint8; ``human`` shows the BEV in a pygame window after every
    reset and step (:mod:`mad_sim.envs.human_render`; needs pygame).  Only ``rgb_array`` / ``rgb_observation`` load the
    appearance model.

    Stepping before ``reset``, after termination/truncation, or after
    ``close`` raises :class:`~mad_sim.errors.EnvStateError`; ``close`` twice is fine.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": int(round(1 / DT))}

    def __init__(self, config: Any = None, render_mode: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__()
        self.config: EnvConfig = make_config(config, **kwargs)
        self.agent_settings: Any = agent_settings(self.config)
        """``agent_options`` validated into the settings dataclass of ``agents`` (None for the scripted ones)."""
        if render_mode is not None:
            if render_mode not in RENDER_MODES:
                raise ConfigError(f"render_mode {render_mode!r} is not one of {list(RENDER_MODES)}")
            self.config.render_mode = render_mode
        self.render_mode = self.config.render_mode
        self.adapter = make_action_adapter(self.config)
        self.action_space = self.adapter.space
        self.observation_space = obs_mod.observation_space(self.config)
        self._pack = obs_mod.ObservationPacker(self.config)
        self.reward_fn = LinearReward(self.config.reward_weights)
        """The reward: ``reward_fn(metrics) -> float``; ``reward_fn.weights`` holds every term's weight."""
        self._spec_steps: Optional[int] = None
        self._source = ScenarioSource(self.config.procedural_kind)
        self._map_index: Optional[MapIndex] = None
        self._pose_renderer: Optional[PoseRenderer] = None
        self._rgb: Optional[RGBCamera] = RGBCamera(self.config) if wants_rgb(self.config) else None
        self._window: Optional[HumanWindow] = None
        if self.render_mode == "human":
            require_pygame()
        self.state: Optional[WorldState] = None
        self._stream: Optional[AgentStream] = None
        self._done = False
        self._closed = False
        self._steps = 0

    # ------------------------------------------------------------------ reset
    def reset(
        self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None
    ) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
        if self._closed:
            raise EnvStateError("reset() after close()")
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"scenario", "ego", "prompt", "first_frame"}
        if unknown:
            raise ConfigError(f"reset options: unknown key(s) {sorted(unknown)} (known: ego, first_frame, prompt, scenario)")
        if self._rgb is not None:  # its own generator: the env's random stream is not consumed
            self._rgb.reset(int(self.np_random.spawn(1)[0].integers(2**62)), options.get("prompt"), options.get("first_frame"))
        else:
            check_prompt(options.get("prompt"), "reset option 'prompt'")
            if options.get("first_frame") is not None:
                raise ConfigError(
                    "reset option 'first_frame': the env makes no camera frames; "
                    "use render_mode='rgb_array' or rgb_observation=True"
                )
        scenario = self._source.draw(self.np_random, options.get("scenario", self.config.scenario))
        ego = options.get("ego", self.config.ego)
        ego_index = scenario.sdc_index if ego == "sdc" else int(ego)
        self.state = WorldState.from_scenario(scenario, ego_index=ego_index)
        self._start_step = self.state.timestep
        self._agent_stream().reset(self.state, self.np_random)  # learned agents draw their noise from the reseeded generator
        index = self._map_index
        if index is None or index.roadmap is not scenario.roadmap:  # per-map structures, kept across resets
            index = self._map_index = MapIndex.build(scenario.roadmap, self.config.roadgraph_spacing)
        e = self.state.ego()
        xy, yaw = e.xy[0].copy(), float(e.heading[0])
        self._local = LocalMap(
            scenario.roadmap, index.points, radius=max(self.config.roadgraph_radius, 40.0) + 15.0, refresh=10.0, index=index
        )
        self._local.update(xy)
        self._edge_probe = RoadEdgeProbe(self._local)
        self._offroad_enabled = has_road_edges(scenario.roadmap)
        self._edge_d: Optional[float] = None
        self._edge_xy = xy
        log_ego = scenario.tracks
        self.route = Route(
            log_ego.xy[ego_index], log_ego.valid[ego_index], xy, yaw, scenario.roadmap, self.config.default_speed_limit
        )
        self._route_s0 = self.route.start
        self._prev_s = min(self._route_s0, self.route.goal)
        self._route_now = self.route.project_segment(xy)
        self._completed = False
        self._set_spec_steps()
        self._speed = float(np.dot(e.velocity[0], [np.cos(yaw), np.sin(yaw)]))
        self._accel = 0.0
        self._curvature = 0.0
        self._yaw_rate = 0.0
        self._done = False
        self._steps = 0
        self.last_metrics = self._measure(progress=0.0, jerk=0.0)
        if self.render_mode == "human":
            self._show_human()
        return self._observation(), self._info()

    # ------------------------------------------------------------------- step
    def step(self, action: Any) -> Tuple[Dict[str, np.ndarray], float, bool, bool, Dict[str, Any]]:
        if self._closed:
            raise EnvStateError("step() after close()")
        if self.state is None:
            raise EnvStateError("step() before reset()")
        if self._done:
            raise EnvStateError("step() after the episode ended (terminated or truncated): call reset()")
        s = self.state
        stream = self._stream
        assert stream is not None  # made by reset()
        t = s.timestep
        ego = s.ego_index
        sim = s.sim
        yaw = float(sim.heading[ego, t])
        nxt = self.ego_step(action)
        stream.observe(s, action, nxt)  # learned agents condition on the ego's intended motion
        controlled = np.ones(s.num_agents, bool)
        controlled[ego] = False
        agents = stream.next_step(s, controlled)
        # the agents' column as the policy gave it (write_step copies), then the sizes and the ego on top
        valid = agents.valid[:, 0]
        grow = valid & ~sim.valid[:, t]  # agents entering the scene bring their own size
        s.write_step(t + 1, agents.xyz[:, 0], agents.heading[:, 0], agents.velocity[:, 0], valid)
        if grow.any():
            sim.size[grow, t + 1] = agents.size[grow, 0]
        h = nxt.heading
        sim.xyz[ego, t + 1] = (nxt.xy[0], nxt.xy[1], sim.xyz[ego, t, 2])
        sim.heading[ego, t + 1] = h
        sim.velocity[ego, t + 1] = (nxt.speed * math.cos(h), nxt.speed * math.sin(h))
        sim.valid[ego, t + 1] = True
        s.timestep = t + 1
        self._steps += 1
        jerk = (nxt.accel - self._accel) / DT
        self._yaw_rate = float(wrap_angle(nxt.heading - yaw)) / DT
        self._speed, self._accel, self._curvature = nxt.speed, nxt.accel, nxt.curvature
        self._local.update(nxt.xy)
        self._route_now = self.route.project_segment(nxt.xy)
        s_now = min(self._route_now[0], self.route.goal)  # no progress beyond the goal
        completed = not self._completed and self.route.completed(self._route_now[0], self._route_now[1])
        self._completed = self._completed or completed
        m = self._measure(progress=s_now - self._prev_s, jerk=jerk, completed=completed)
        self._prev_s = s_now
        self.last_metrics = m
        r = self.reward_fn(m)
        terminated = bool(
            (m.collision and self.config.terminate_on_collision)
            or (m.offroad and self.config.terminate_on_offroad)
            or (completed and self.config.terminate_on_route_completion)
        )
        truncated = bool(
            s.remaining_log_steps <= 0 or (self.config.max_steps is not None and self._steps >= self.config.max_steps)
        )
        self._done = terminated or truncated
        if self.render_mode == "human":
            self._show_human()
        return self._observation(), r, terminated, truncated, self._info()

    def ego_step(self, action: Any) -> EgoStep:
        """The ego's next step under ``action`` from the present state (nothing changes; ActionError for a bad
        action).  :meth:`step` moves the ego by exactly this; a vector env asks it before stepping."""
        if self.state is None:
            raise EnvStateError("ego_step() before reset()")
        s = self.state
        t, ego = s.timestep, s.ego_index
        return self.adapter.step(s.sim.xyz[ego, t, :2].copy(), float(s.sim.heading[ego, t]), self._speed, action)

    # ---------------------------------------------------------------- helpers
    def _agent_stream(self) -> AgentStream:
        if self._stream is None:
            policy = make_agent_policy(self.config.agents, self.config, self.np_random, self.agent_settings)
            self._stream = AgentStream(policy, self.config.agent_horizon)
        return self._stream

    def _set_spec_steps(self) -> None:
        """``spec.max_episode_steps`` := this episode's steps (the log's remaining steps, capped by
        ``max_steps``), unless ``gym.make`` set one (then a TimeLimit wrapper enforces it)."""
        assert self.state is not None
        steps = int(self.state.remaining_log_steps)
        if self.config.max_steps is not None:
            steps = min(steps, int(self.config.max_steps))
        spec = self.spec
        if spec is not None and (spec.max_episode_steps is None or spec.max_episode_steps == self._spec_steps):
            spec.max_episode_steps = self._spec_steps = steps

    def _measure(self, progress: float, jerk: float, completed: bool = False) -> StepMetrics:
        s = self.state
        assert s is not None  # the helpers run between reset() and the end of the episode
        t, ego = s.timestep, s.ego_index
        xy = s.sim.xy[:, t]
        hits = ego_overlaps(xy, s.sim.heading[:, t], s.sim.size[:, t], s.sim.valid[:, t], ego)
        collision = bool(hits.size)
        offroad = False
        if self._offroad_enabled:
            offroad = self._offroad(xy[ego])
        s_route, lateral, route_yaw, seg = self._route_now
        limit = float(self.route.speed_limit[seg])
        ttc = time_to_collision(
            xy, s.sim.heading[:, t], s.sim.velocity[:, t], s.sim.size[:, t], s.sim.valid[:, t], ego, self._speed
        )
        logv = s.log.valid[ego, t]
        div = float(np.linalg.norm(xy[ego] - s.log.xy[ego, t])) if logv else float("nan")
        return StepMetrics(
            collision=collision,
            offroad=offroad,
            progress=float(progress),
            route_progress=float(min(s_route, self.route.goal) - self._route_s0),
            route_lateral=lateral,
            route_heading_error=float(wrap_angle(s.sim.heading[ego, t] - route_yaw)),
            speed=self._speed,
            accel=self._accel,
            jerk=float(jerk),
            curvature=self._curvature,
            log_divergence=div,
            route_length=self.route.length,
            route_completed=completed,
            speed_limit=limit,
            overspeed=max(0.0, self._speed - limit),
            ttc=ttc,
            collision_at_fault=collision_at_fault(xy, s.sim.heading[:, t], hits, ego, self._speed),
        )

    def _offroad(self, xy: np.ndarray) -> bool:
        """Signed road-edge distance > ``offroad_margin``.

        The signed distance changes by at most the distance travelled (it is
        1-Lipschitz), so it is recomputed only once the ego has moved far
        enough since the last evaluation to possibly cross the margin.
        """
        margin = self.config.offroad_margin
        moved = float(np.hypot(*(xy - self._edge_xy))) if self._edge_d is not None else np.inf
        if self._edge_d is None or abs(self._edge_d - margin) <= moved:
            d = self._edge_probe.signed(xy)  # == road_edge_distance(xy[None], self._local.roadmap)[0]
            self._edge_d = d if np.isfinite(d) else -np.inf
            self._edge_xy = np.asarray(xy, np.float64).copy()
        return bool(self._edge_d > margin)

    def _observation(self) -> Any:
        s, c, m = self.state, self.config, self.last_metrics
        assert s is not None
        t, ego = s.timestep, s.ego_index
        ego_xy = s.sim.xy[ego, t]
        ego_yaw = float(s.sim.heading[ego, t])
        size = s.sim.size[ego, t]
        s_now = min(self._route_now[0], self.route.goal)
        log_ahead = float(self.route.log_s[min(t, len(self.route.log_s) - 1)]) - s_now
        ego_vec = obs_mod.ego_features(
            self._speed,
            self._accel,
            self._yaw_rate,
            self._curvature,
            float(size[0]),
            float(size[1]),
            m.route_progress,
            m.route_lateral,
            m.route_heading_error,
            s.remaining_log_steps * DT,
            m.speed_limit,
            self.route.goal - s_now,
            log_ahead,
        )
        agents = obs_mod.agent_features(
            s.sim.xy[:, t],
            s.sim.heading[:, t],
            s.sim.velocity[:, t],
            s.sim.size[:, t],
            s.scenario.object_types,
            s.sim.valid[:, t],
            ego,
            ego_xy,
            ego_yaw,
            c.num_agents,
            c.agent_radius,
        )
        road = obs_mod.roadgraph_features(self._local.points, ego_xy, ego_yaw, c.num_roadgraph_points, c.roadgraph_radius)
        pose = self._render_pose() if c.pose_observation else None
        rgb = self._render_rgb() if c.rgb_observation else None
        return self._pack(ego_vec, agents, road, pose, rgb)

    def _info(self) -> Dict[str, Any]:
        s, stream = self.state, self._stream
        assert s is not None and stream is not None
        info: Dict[str, Any] = self.last_metrics.as_info()
        info["reward_terms"] = self.reward_fn.terms(self.last_metrics)
        info["scenario_id"] = s.scenario.scenario_id
        info["timestep"] = int(s.timestep)
        info["agent_queries"] = int(stream.queries)
        learned = stream.learned_mask
        if learned is not None:  # track indices the learned predictor moved this step
            info["learned_agents"] = np.flatnonzero(learned).tolist()
        measured = stream.measured_mask
        if measured is not None:  # the learned agents whose state fused a parsed model frame this step
            info["measured_agents"] = np.flatnonzero(measured).tolist()
        return info

    def _render_pose(self) -> np.ndarray:
        if self._pose_renderer is None:
            from mad_sim.render.pose import PoseRenderer

            self._pose_renderer = PoseRenderer(width=self.config.pose_width, height=self.config.pose_height)
        assert self.state is not None
        return np.ascontiguousarray(self._pose_renderer.render_state(self.state), dtype=np.uint8)

    def _render_rgb(self) -> np.ndarray:
        """The camera frame of the present step (one synthesis per chunk, :mod:`mad_sim.envs.rgb`)."""
        if self._pose_renderer is None:
            self._render_pose()
        pose, camera = self._pose_renderer, self._rgb
        assert pose is not None and camera is not None  # rgb modes make the camera in __init__
        return camera.frame(
            self.state, EgoMotion(self._speed, self._accel, self._curvature), lambda state, t: pose.render_state(state, t=t)
        )

    @property
    def rgb_camera(self) -> Optional[RGBCamera]:
        """The camera (its ``stats`` count syntheses and cache hits); None when the env makes no RGB."""
        return self._rgb

    # ----------------------------------------------------------------- render
    def render(self) -> Optional[np.ndarray]:
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode: pass render_mode='pose', 'bev', 'rgb_array' or 'human' to gym.make")
            return None
        if self.state is None:
            raise EnvStateError("render() before reset()")
        if self.render_mode == "pose":
            return self._render_pose()
        if self.render_mode == "rgb_array":
            return self._render_rgb()
        if self.render_mode == "human":  # shown by reset() and step() already (Gymnasium's convention)
            return None
        return self._render_bev()

    def _render_bev(self) -> np.ndarray:
        from mad_sim.render.bev import render_bev

        assert self.state is not None
        return np.ascontiguousarray(
            render_bev(self.state, size=self.config.bev_size, extent_m=self.config.bev_extent_m), dtype=np.uint8
        )

    def _show_human(self) -> None:
        if self._window is None:
            self._window = HumanWindow(self.metadata["render_fps"])
        self._window.show(self._render_bev())

    def close(self) -> None:
        self._closed = True
        self._pose_renderer = None
        if self._window is not None:
            self._window.close()
            self._window = None
        if self._rgb is not None:
            self._rgb.close()
        super().close()

    # --------------------------------------------------------------- accessors
    @property
    def agent_policy(self) -> AgentPolicy:
        """The policy moving the other agents (built on first use: the first reset, or here)."""
        return self._agent_stream().policy

    @property
    def agent_queries(self) -> int:
        """Calls to the agent policy this episode (a policy returning k steps is asked every k steps)."""
        return 0 if self._stream is None else int(self._stream.queries)

    def requery_agents(self) -> None:
        """Drop the agent steps buffered from the policy's last call: the next step asks it again."""
        if self._stream is not None:
            self._stream.requery()

    @property
    def running(self) -> bool:
        """True between ``reset`` and the end of the episode (terminated, truncated or closed)."""
        return self.state is not None and not self._done and not self._closed

    @property
    def ego_speed(self) -> float:
        """The ego's signed speed along its heading (m/s) at the present step."""
        if self.state is None:
            raise EnvStateError("no ego speed before reset()")
        return float(self._speed)

    @property
    def scenario(self) -> Scenario:
        if self.state is None:
            raise EnvStateError("no scenario before reset()")
        return self.state.scenario
