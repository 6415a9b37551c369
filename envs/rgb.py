"""Camera (RGB) frames for ``MADDrive-v0``, on demand: the appearance synthesizer behind a chunk cache.

Nothing here imports torch or the model at import time.  The synthesizer
(:class:`mad_sim.model.appearance.synthesizer.AppearanceSynthesizer`) is loaded the first
time a frame is asked for, and only by an env configured with
``render_mode="rgb_array"`` or ``rgb_observation=True``; an env that uses pose
or state observations never builds an :class:`RGBCamera`, so it never loads or
runs the appearance adapter.

**Chunks.**  Frames come from an :class:`~mad_sim.model.appearance.synthesizer.RGBChunkCache`:
asking for the frame of step ``t`` synthesizes the ``F = rgb_chunk_frames``
frames of steps ``t .. t + F - 1`` in one call (``F - 1`` new ones when it
continues the previous chunk), so asking every step costs one synthesis per
``F - 1`` steps.  A later chunk is hard-conditioned on the last frame of the
one before, so the scene keeps its look across chunks.

**Pose lookahead.**  The pose frames of the future steps of a chunk are not
known yet when it is synthesized, so they are rendered from a forecast of the
present state (world frame, ``dt = 0.1`` s):

* the ego holds its last applied acceleration ``a`` and curvature ``kappa``
  (the bicycle model of :func:`mad_sim.world.dynamics.bicycle_step`,
  semi-implicit, no limits, like the env's own ego step: ``v_k = v_{k-1} + a dt``, ``yaw_k = yaw_{k-1} + kappa v_k dt``,
  ``p_k = p_{k-1} + v_k dt (cos yaw_k, sin yaw_k)``); with a constant bicycle
  action this is exactly where the ego goes;
* every other valid agent moves at constant velocity with its heading held;
* steps past the log's end repeat the last frame.

**Resynchronisation.**  Each step, before a cached frame is served, the ego's
real pose is compared with the forecast the frame was drawn for; when it is
more than ``rgb_resync_m`` metres away (or its heading differs by more than
``rgb_resync_m / 20 m`` radians, i.e. a point 20 m ahead moves that far
sideways), the frames from this step on are dropped and a new chunk starts
here, hard-conditioned on the previous step's frame.  ``rgb_resync_m=None``
never resynchronises (frames then show the forecast, at most ``F - 1`` steps old).

**Threads.**  Synthesis runs with ``rgb_threads`` torch threads (default 1),
restored afterwards: on a busy 2-core machine two threads made a 9-frame 64 px
synthesis of the tiny model 25-50x slower (12-23 s against 0.5 s) than one.

**Weights** (``appearance_weights``): ``"shipped"`` loads the ``appearance_preset``
backbone's shipped weights and ``mad_sim/weights/<preset>_appearance.safetensors``
(:class:`~mad_sim.errors.PresetError` when the preset has none); a path is an
appearance LoRA file on the shipped backbone; ``"random"`` is an untrained
random model for tests and plumbing (noise-like frames); ``"auto"`` (the
default) is ``"shipped"`` when the adapter and the shipped backbone both exist and,
for the ``tiny`` preset only, ``"random"`` with a warning otherwise (other presets without an
adapter raise PresetError).  :attr:`RGBCamera.weights` says which was used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

import numpy as np

from mad_sim.data.scenario import DT
from mad_sim.errors import ConfigError
from mad_sim.world.state import WorldState

if TYPE_CHECKING:  # pragma: no cover
    from mad_sim.envs.config import EnvConfig

log = logging.getLogger(__name__)

RESYNC_LOOKAHEAD_M = 20.0
"""Heading tolerance = ``rgb_resync_m / RESYNC_LOOKAHEAD_M`` rad (lateral shift of a point this far ahead)."""

PoseAt = Callable[[WorldState, int], np.ndarray]
"""``pose_at(state, t) -> [H, W, 3] uint8``: the pose frame of step ``t`` of ``state`` seen from its ego."""


def check_prompt(prompt: Optional[str], what: str = "prompt") -> Optional[str]:
    """``None`` or a non-blank string (the rule of :func:`mad_sim.model.appearance.synthesizer.check_prompt`, without torch)."""
    if prompt is None:
        return None
    if not isinstance(prompt, str):
        raise ConfigError(f"{what}: must be a string or None, got {type(prompt).__name__}")
    if not prompt.strip():
        raise ConfigError(f"{what}: prompt is empty: pass None for no prompt, or describe the scene (e.g. 'rainy night')")
    return prompt


def wants_rgb(config: "EnvConfig") -> bool:
    """True when the env will ever need camera frames (``render_mode="rgb_array"`` or ``rgb_observation``)."""
    return config.render_mode == "rgb_array" or bool(config.rgb_observation)


@dataclass
class EgoMotion:
    """The ego's last applied motion: speed m/s, acceleration m/s^2, curvature 1/m."""

    speed: float
    accel: float
    curvature: float


def forecast_state(state: WorldState, ego: EgoMotion, num_steps: int) -> WorldState:
    """A copy of ``state`` whose columns ``t + 1 .. t + num_steps - 1`` hold the forecast (module doc).

    Columns past the log's end are not written (callers repeat the last frame).
    """
    out = state.copy()
    t = state.timestep
    k = min(int(num_steps) - 1, out.sim.num_steps - 1 - t)
    if k <= 0:
        return out
    sim = out.sim
    steps = np.arange(1, k + 1, dtype=np.float64)
    cols = t + np.arange(1, k + 1)
    # everyone: constant velocity, heading held
    sim.xyz[:, cols] = sim.xyz[:, t, None] + np.concatenate(
        [sim.velocity[:, t, None] * (steps[None, :, None] * DT), np.zeros((sim.num_objects, k, 1))], axis=-1
    )
    sim.heading[:, cols] = sim.heading[:, t, None]
    sim.velocity[:, cols] = sim.velocity[:, t, None]
    sim.size[:, cols] = sim.size[:, t, None]
    sim.valid[:, cols] = sim.valid[:, t, None]
    # the ego: bicycle model holding acceleration and curvature (signed speed, as the env's ego step)
    e = state.ego_index
    v = ego.speed + ego.accel * DT * steps
    yaw = sim.heading[e, t] + np.cumsum(ego.curvature * v * DT)
    xy = sim.xyz[e, t, :2] + np.cumsum(np.stack([v * DT * np.cos(yaw), v * DT * np.sin(yaw)], -1), axis=0)
    sim.xyz[e, cols, :2] = xy
    sim.heading[e, cols] = np.arctan2(np.sin(yaw), np.cos(yaw))
    sim.velocity[e, cols] = np.stack([v * np.cos(yaw), v * np.sin(yaw)], -1)
    return out


_SHARED: dict = {}
"""Loaded synthesizers by (preset, weights, size): envs of one process share one model (it holds no episode state)."""


def load_synthesizer(config: "EnvConfig"):
    """The :class:`~mad_sim.model.appearance.synthesizer.AppearanceSynthesizer` ``config`` asks for (see the module doc).

    Loaded once per process for each (preset, weights, size) and shared.
    """
    size = (config.pose_height, config.pose_width)
    key = (config.appearance_preset, resolve_weights(config), size)
    if key not in _SHARED:
        _SHARED[key] = _load(config, size)
    return _SHARED[key]


def resolve_weights(config: "EnvConfig") -> str:
    """``"shipped"``, ``"random"`` or a LoRA path: what ``appearance_weights`` means now (``auto`` resolved).

    Checks files only (nothing is loaded); PresetError when the asked-for adapter file is missing.
    """
    from mad_sim.model.appearance.synthesizer import appearance_lora_path, check_appearance_lora
    from mad_sim.model.backbone import shipped_weights

    w, preset = config.appearance_weights, config.appearance_preset
    if w == "random":
        return w
    if w == "auto":
        if preset != "tiny" or (appearance_lora_path(preset).is_file() and shipped_weights(preset).is_file()):
            check_appearance_lora(preset)
            return "shipped"
        log.warning(
            "no shipped tiny backbone + appearance adapter (%s, %s): RGB frames come from an untrained random "
            "model (appearance_weights='auto'; pass 'shipped' to make this an error)",
            shipped_weights(preset),
            appearance_lora_path(preset),
        )
        return "random"
    check_appearance_lora(preset, None if w == "shipped" else w)
    return w


def _load(config: "EnvConfig", size: tuple):
    from mad_sim.model.appearance.synthesizer import AppearanceSynthesizer

    weights = resolve_weights(config)
    if weights == "random":
        log.warning("RGB frames from an untrained random appearance model")
        synth = AppearanceSynthesizer.random(size=size, preset=config.appearance_preset)
    else:
        synth = AppearanceSynthesizer.from_pretrained(config.appearance_preset, lora=None if weights == "shipped" else weights)
    if tuple(synth.size) != size:
        raise ConfigError(
            f"keys 'pose_height'/'pose_width': the {config.appearance_preset} appearance adapter renders "
            f"{synth.size[0]}x{synth.size[1]} pixels, the env's pose frames are {size[0]}x{size[1]}: "
            f"set pose_height={synth.size[0]}, pose_width={synth.size[1]}"
        )
    return synth


class RGBCamera:
    """The env's camera: lazy synthesizer, one chunk cache per episode, forecast pose lookahead.

    Args:
      config: the env's :class:`~mad_sim.envs.config.EnvConfig` (``appearance_*``, ``rgb_*``, ``prompt``).
      synthesizer: an already loaded synthesizer (default: :func:`load_synthesizer` on first use).
    """

    def __init__(self, config: "EnvConfig", synthesizer=None) -> None:
        self.config = config
        self._synth = synthesizer
        self._cache = None
        self._forecast: dict[int, tuple[np.ndarray, float]] = {}  # step -> (ego xy, ego yaw) its frame was drawn for
        self.resyncs = 0
        self._episode: Dict[str, Any] = dict(prompt=check_prompt(config.prompt, "key 'prompt'"), seed=0, first_frame=None)
        # fail fast on a missing adapter (a file check, nothing is loaded); "given" for an injected synthesizer
        self.weights = resolve_weights(config) if synthesizer is None else "given"

    @property
    def loaded(self) -> bool:
        return self._synth is not None

    @property
    def stats(self):
        """The cache's :class:`~mad_sim.model.appearance.synthesizer.CacheStats` (None before the first frame)."""
        return None if self._cache is None else self._cache.stats

    def _ensure(self):
        if self._cache is None:
            from mad_sim.model.appearance.synthesizer import RGBChunkCache

            if self._synth is None:
                self._synth = load_synthesizer(self.config)
            c = self.config
            self._cache = RGBChunkCache(self._synth, chunk_frames=c.rgb_chunk_frames, steps=c.rgb_steps)
            self._cache.reset(**self._episode)
        return self._cache

    def reset(self, seed: int, prompt: Optional[str] = None, first_frame: Optional[np.ndarray] = None) -> None:
        """New episode: drop every frame; noise seed ``seed``; ``prompt`` (None: the config's) and first RGB frame.

        With a loaded synthesizer a bad first frame raises here (ShapeError);
        otherwise it is checked when the synthesizer loads, at the first frame.
        """
        if prompt is None:
            prompt = check_prompt(self.config.prompt, "key 'prompt'")
        else:
            prompt = check_prompt(prompt, "reset option 'prompt'")
        self._episode = dict(prompt=prompt, seed=int(seed), first_frame=first_frame)
        self._forecast.clear()
        self.resyncs = 0
        if self._cache is not None:
            self._cache.reset(**self._episode)

    def frame(self, state: WorldState, ego: EgoMotion, pose_at: PoseAt) -> np.ndarray:
        """RGB frame ``[H, W, 3]`` uint8 of ``state``'s present step (synthesized on a cache miss)."""
        cache = self._ensure()
        t = state.timestep
        tol = self.config.rgb_resync_m
        if tol is not None and cache.cached(t) and t in self._forecast:
            xy_f, yaw_f = self._forecast[t]
            e = state.ego_index
            d = float(np.hypot(*(state.sim.xyz[e, t, :2] - xy_f)))
            dyaw = abs(float(np.angle(np.exp(1j * (state.sim.heading[e, t] - yaw_f)))))
            if d > tol or dyaw > tol / RESYNC_LOOKAHEAD_M:
                cache.truncate(t)
                self.resyncs += 1

        def lookahead(n: int) -> np.ndarray:
            for k in [k for k in self._forecast if k < t]:
                del self._forecast[k]
            fut = forecast_state(state, ego, n)
            last = fut.sim.num_steps - 1
            frames = []
            e = fut.ego_index
            for k in range(t, t + n):
                s = min(k, last)
                if k == s:
                    frames.append(np.asarray(pose_at(fut, s), np.uint8))
                    self._forecast[k] = (fut.sim.xyz[e, s, :2].copy(), float(fut.sim.heading[e, s]))
                else:  # past the log's end: the last frame again
                    frames.append(frames[-1])
            return np.stack(frames)

        if not self.config.rgb_threads:
            return cache.frame(t, lookahead)
        import torch

        old = torch.get_num_threads()
        torch.set_num_threads(int(self.config.rgb_threads))
        try:
            return cache.frame(t, lookahead)
        finally:
            torch.set_num_threads(old)

    def close(self) -> None:
        self._cache = None
        self._synth = None
