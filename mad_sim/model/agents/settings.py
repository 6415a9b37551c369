"""Settings of the learned agents (``agents="mad"``): :class:`LearnedAgentSettings`, validated on creation.

See :mod:`mad_sim.model.agents.learned` for what each setting does.  Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

from mad_sim.config_checks import require_choice, require_frames_8k1, require_positive
from mad_sim.errors import ConfigError
from mad_sim.model.agents.tracking import TrackingNoise
from mad_sim.world.scripted import SCRIPTED_POLICIES

PRECISIONS = ("auto", "float32", "bfloat16")
"""Names the ``precision`` setting accepts."""
FALLBACKS = tuple(sorted(SCRIPTED_POLICIES))
"""Names the ``fallback`` setting accepts: the scripted policies of :mod:`mad_sim.world.scripted`."""


@dataclass
class LearnedAgentSettings:
    """Options of the learned agents (SI units; steps are 0.1 s).

    Attributes:
      preset, weights, lora, device, threads: the model (see :func:`~mad_sim.model.agents.predictor_service.load_predictor`);
        ``threads`` torch threads while sampling (None: torch's default).
      merge_lora: merge the motion LoRA into the base weights for inference (same frames, less CPU).
      precision: ``auto`` (default: bfloat16 on CPUs with native bf16, float32 elsewhere; see
        :func:`mad_sim.model.cpu_paths.resolve_precision`), ``float32`` or ``bfloat16`` (CPU autocast: faster
        where bf16 is native, not bit-identical, much slower where it is emulated).
      sampler_steps: flow-matching sampler steps per prediction (None: the preset's, 4 for tiny).
      size: pose frames are ``size x size`` pixels (multiple of 32).
      history_frames / future_frames: frames in / out of the model (8k+1).
      chunk: steps taken from each prediction before predicting again (<= future_frames).
      ego_conditioning: condition on the ego-motion video of the intended motion.
      tolerance_m: early re-prediction when the intended ego path departs from the assumed one by more.
      min_interval: steps between two predictions at least (early ones included).
      view_range_m: agents farther than this are never learned-driven.
      fallback: scripted policy for everyone else: ``idm``, ``log`` or ``constant_velocity``.
      prior_strength: in (0, 1]; below 1 each forecast starts from the constant-velocity prior
        (every agent at its present velocity, the ego along its intended path,
        :mod:`mad_sim.model.agents.prior`) noised to that share of the sampler's schedule, and runs
        only that share of the steps (SDEdit); 1.0 samples from pure noise.
      tracking: fuse each parsed frame with a constant-velocity Kalman filter per agent (gated; see
        :mod:`mad_sim.model.agents.tracking`) instead of taking the parse as the agent's state.
      tracking_noise: the filter's :class:`~mad_sim.model.agents.tracking.TrackingNoise` (a mapping of
        its fields in YAML / ``agent_options``).
      detect_entering: let the parser look for entering agents (counted in :attr:`LearnedAgents.stats`;
        the env's agent rows are fixed, so they are not spawned).
    """

    preset: str = "tiny"
    weights: str = "auto"
    lora: Optional[str] = None
    device: Optional[str] = None
    threads: Optional[int] = None
    merge_lora: bool = True
    precision: str = "auto"
    sampler_steps: Optional[int] = None
    size: int = 128
    history_frames: int = 9
    future_frames: int = 17
    chunk: int = 16
    ego_conditioning: bool = True
    tolerance_m: float = 1.0
    min_interval: int = 2
    view_range_m: float = 60.0
    fallback: str = "idm"
    detect_entering: bool = False
    prior_strength: float = 1.0
    tracking: bool = True
    tracking_noise: TrackingNoise = field(default_factory=TrackingNoise)

    def __post_init__(self) -> None:
        if isinstance(self.tracking_noise, dict):
            names = {f.name for f in fields(TrackingNoise)}
            unknown = sorted(set(self.tracking_noise) - names)
            if unknown:
                raise ConfigError(f"learned agents: tracking_noise has unknown key(s) {unknown} (known: {sorted(names)})")
            self.tracking_noise = TrackingNoise(**self.tracking_noise)
        for name in ("history_frames", "future_frames"):
            require_frames_8k1("learned agents: ", name, getattr(self, name))
        if self.size < 32 or self.size % 32:
            raise ConfigError(f"learned agents: size={self.size} must be a positive multiple of 32")
        if not 1 <= self.chunk <= self.future_frames:
            raise ConfigError(f"learned agents: chunk={self.chunk} must be in [1, future_frames={self.future_frames}]")
        require_choice("learned agents: ", "fallback", self.fallback, sorted(FALLBACKS))
        require_choice("learned agents: ", "precision", self.precision, PRECISIONS)
        require_positive("learned agents: ", self, ("tolerance_m", "view_range_m", "min_interval"))
        if not 0.0 < self.prior_strength <= 1.0:
            raise ConfigError(f"learned agents: prior_strength={self.prior_strength} must be in (0, 1]")
        if self.sampler_steps is not None and self.sampler_steps < 2:
            raise ConfigError(f"learned agents: sampler_steps={self.sampler_steps} must be >= 2 (or None: the preset's)")


__all__ = ["FALLBACKS", "PRECISIONS", "LearnedAgentSettings"]
